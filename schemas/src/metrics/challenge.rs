use serde::{Deserialize, Serialize};

use super::GenerationMetrics;

/// `challenger/`: the Challenger's attempts, before the verifier has judged them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ChallengeMetrics {
    pub documents: u64,
    pub attempts: u64,
    /// Generation rounds run to reach `num_generations` valid attempts per document.
    pub rounds: u64,
    /// Attempts that parsed, and their share of all attempts (0 without attempts).
    pub valid_attempts: u64,
    pub valid_rate: f64,
    pub documents_with_valid_task: u64,
    pub prompt_set: String,
    pub policy_id: String,
    /// The task-writing pass.
    #[serde(flatten)]
    pub generation: GenerationMetrics,
    /// The format-choice pass of the paper prompts (`format_rows`, …), when it ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format_rows: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format_new_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format_generation_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format_tokens_per_second: Option<f64>,
}

impl ChallengeMetrics {
    /// Record the format-choice pass.
    pub fn set_format(&mut self, g: GenerationMetrics) {
        self.format_rows = Some(g.rows);
        self.format_new_tokens = Some(g.new_tokens);
        self.format_generation_seconds = Some(g.generation_seconds);
        self.format_tokens_per_second = Some(g.tokens_per_second);
    }
}

impl crate::metrics::StageMetrics for ChallengeMetrics {}
