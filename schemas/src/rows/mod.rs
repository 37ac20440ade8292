//! One row type per shard folder of an iteration (see ARCHITECTURE.md, "The run folder").
//!
//! Token ids and sampling log-probs sit next to the text, so the update recomputes exactly
//! what was sampled and an auditor sees exactly what the model saw. Every generated row
//! carries its seed and the id of the policy that produced it.

mod challenger;
mod chunk;
mod eval;
mod rollout;
mod scored;
mod task;
mod update;

pub use challenger::ChallengerRow;
pub use chunk::ChunkRow;
pub use eval::EvalRow;
pub use rollout::RolloutRow;
pub use scored::ScoredRow;
pub use task::TaskRow;
pub use update::UpdateMetricsRow;
