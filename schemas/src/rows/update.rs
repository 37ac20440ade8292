use serde::{Deserialize, Serialize};

use crate::shard::ShardRow;

/// `update/`: one optimizer step of the policy update.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpdateMetricsRow {
    pub iteration: u32,
    /// PPO epoch over the batch (0..ppo_epochs) and optimizer step within the iteration.
    pub epoch: u32,
    pub step: u32,
    /// Total loss, its policy-gradient part and the KL part (0 when beta = 0).
    pub loss: f64,
    pub pg_loss: f64,
    pub kl: f64,
    /// Gradient norm before clipping to `max_grad_norm`.
    pub grad_norm: f64,
    /// Share of completion tokens whose ratio was clipped.
    pub clip_fraction: f64,
    pub learning_rate: f64,
    pub sequences: u32,
    pub tokens: u64,
    pub challenger_sequences: u32,
    pub reasoner_sequences: u32,
    pub challenger_mean_reward: f64,
    pub challenger_mean_advantage: f64,
    pub reasoner_mean_reward: f64,
    pub reasoner_mean_advantage: f64,
    pub seconds: f64,
    pub tokens_per_second: f64,
    /// Peak resident memory of the process so far, in MiB.
    pub peak_rss_mib: f64,
}

impl ShardRow for UpdateMetricsRow {
    const FOLDER: &'static str = "update";
    const VERSION: u32 = 1;
}
