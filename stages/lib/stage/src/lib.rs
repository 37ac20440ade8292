//! What every SPICE stage binary shares (ARCHITECTURE.md, "Cross-cutting concerns"):
//!
//! - [`StageArgs`]: the common flags `--run DIR --iter N --device --seed --shard I/N --force`;
//! - [`StageCtx`]: the run folder, its frozen `run.toml` and the flags resolved against it;
//! - [`Cell`]: a cross-play cell, which the generation and scoring stages run like an
//!   iteration under `<run>/crossplay/`;
//! - [`derive_seed`]: seeds from (run seed, iteration, stage, row), so a rerun reproduces rows;
//! - [`progress`]: a progress bar on a terminal, plain periodic lines elsewhere (Slurm logs);
//! - [`init_logging`]: `tracing` to stderr.
//!
//! The commit protocol itself (skip, begin, commit, and `run_stage` around a stage's step),
//! reading committed inputs and the manifest's metric structs live in `spice-schemas`,
//! beside the manifest they read and write.

mod args;
pub mod cell;
mod logging;
pub mod progress;
mod seed;

pub use args::{StageArgs, StageCtx};
pub use cell::{Cell, CellArgs};
pub use logging::init_logging;
pub use progress::progress;
pub use seed::derive_seed;
