use serde::{Deserialize, Serialize};

/// `scored/`: rewards and advantages, the numbers self-play is steered by.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ScoreMetrics {
    pub documents: u64,
    pub tasks: u64,
    pub valid_tasks: u64,
    pub selected_tasks: u64,
    pub selected_valid_tasks: u64,
    /// Valid tasks with Reasoner answers, and those with a number of answers other than K.
    pub answered_tasks: u64,
    pub tasks_with_other_than_k_answers: u64,
    pub answers: u64,
    /// Mean p̂ over answered tasks, and the shares of p̂ = 0, 0 < p̂ < 1 and p̂ = 1.
    pub mean_pass_rate: Option<f64>,
    pub pass_rate_zero_share: Option<f64>,
    pub pass_rate_mid_share: Option<f64>,
    pub pass_rate_one_share: Option<f64>,
    /// Over all answers, and over the answers in the Reasoner's training batch.
    pub reasoner_accuracy: Option<f64>,
    pub reasoner_accuracy_in_batch: Option<f64>,
    pub answer_extracted_rate: Option<f64>,
    #[serde(alias = "mean_r_c")]
    pub mean_challenger_reward: Option<f64>,
    pub mean_advantage_challenger: Option<f64>,
    pub mean_advantage_reasoner: Option<f64>,
    /// Rows that go into the update, per role.
    pub in_batch_challenger: u64,
    pub in_batch_reasoner: u64,
    pub documents_in_reasoner_batch: u64,
    pub verify_seconds: f64,
    pub seconds: f64,
}

impl crate::metrics::StageMetrics for ScoreMetrics {}
