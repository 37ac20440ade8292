//! The Challenger stage (METHOD.md, steps 1–3).
//!
//! 1. [`documents::sample`]: B chunks drawn uniformly for the iteration (seeded), so every
//!    shard of the stage agrees on which document sits in which slot.
//! 2. [`formats`]: per attempt, the task format — asked of the model with the prompt set's
//!    `format.jinja` (the paper's first prompt), or drawn with the attempt's seed.
//! 3. [`rounds`]: attempts in rounds across all open documents, until each has a valid task
//!    (and at least G attempts) or `max_attempts` is reached; validity by the verifier's own
//!    parser (`spice-filter` stays the stage of record).
//! 4. [`select`]: G trajectories per document, keeping the valid:invalid ratio.

pub mod documents;
pub mod formats;
pub mod rounds;
pub mod select;
mod stage;

pub use stage::run;
