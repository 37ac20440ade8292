//! The `metrics` object of each stage's `_manifest.json`, one struct per stage.
//!
//! A stage fills its struct and [`crate::StageOutput::commit`] writes it; readers (the
//! iteration summary, the report, `spice show`) take it back with [`crate::Manifest::metrics_as`].
//! Every struct reads with `#[serde(default)]`, so a manifest written before a field existed
//! still reads (the field takes its default); renamed fields keep their old name as an alias.
//! A number that has nothing to average over is `None`, written as JSON `null`.

mod challenge;
mod chunk;
mod eval;
mod filter;
mod generation;
mod rollout;
mod score;
mod update;

pub use challenge::ChallengeMetrics;
pub use chunk::ChunkMetrics;
pub use eval::EvalMetrics;
pub use filter::FilterMetrics;
pub use generation::GenerationMetrics;
pub use rollout::RolloutMetrics;
pub use score::ScoreMetrics;
pub use update::{CheckpointMetrics, UpdateMetrics};

use serde::{de::DeserializeOwned, Serialize};

/// The metrics of one kind of manifest.
pub trait StageMetrics: Serialize + DeserializeOwned + Default {}

/// A manifest without stage-specific numbers (test fixtures, hand-made folders).
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NoMetrics {}

impl StageMetrics for NoMetrics {}

/// For numbers that may be NaN (a diverged loss): JSON has no NaN, so it is written as `null`,
/// and `null` reads back as NaN.
pub fn null_as_nan<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    use serde::Deserialize;
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// `a / b`, or `None` when there is nothing to divide by.
pub fn ratio(a: usize, b: usize) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

/// The mean of `xs`, or `None` when empty.
pub fn mean(xs: &[f64]) -> Option<f64> {
    (!xs.is_empty()).then(|| xs.iter().sum::<f64>() / xs.len() as f64)
}
