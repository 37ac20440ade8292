use serde::{Deserialize, Serialize};

use super::GenerationMetrics;

/// `rollouts/`: the Reasoner's K answers per valid task.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RolloutMetrics {
    pub tasks: u64,
    pub answers: u64,
    pub mean_completion_tokens: f64,
    /// Share of answers cut at `max_new_tokens`.
    pub length_finish_rate: f64,
    pub policy_id: String,
    #[serde(flatten)]
    pub generation: GenerationMetrics,
}

impl crate::metrics::StageMetrics for RolloutMetrics {}
