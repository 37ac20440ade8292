//! `spice-update`: the policy-gradient step of SPICE (METHOD.md, step 9). One model, one
//! optimizer, both roles' trajectories in the same Dr. GRPO step.
//!
//! - [`input`]: reading `scored/` (committed parts only, rows checked) into [`TrainRow`]s;
//! - [`loss`]: the clipped surrogate with a constant normaliser, and the optional k3 KL term;
//! - [`train`]: πθ_old / π_ref scoring, mini-batches, micro-batch accumulation, AdamW steps;
//! - [`save`]: the next policy's checkpoint folder and its optimizer state, committed last;
//! - [`prune`]: the `[checkpoint]` disk bounds, applied once the update has committed;
//! - [`stage`]: the stage itself, files in and out.

pub mod data_parallel;
pub mod input;
pub mod launch;
pub mod loss;
pub mod prune;
pub mod save;
pub mod stage;
pub mod train;

pub use input::TrainRow;
pub use loss::{dr_grpo_loss, LossParts, LossSettings};
pub use save::SavePoint;
pub use spice_schemas::vocab::Role;
pub use stage::{run, run_rank, run_with, Dist, Outcome, UpdateOptions};
pub use train::{run_epochs, score_old, score_reference, train_step, ScoreOptions, UpdateSettings};
