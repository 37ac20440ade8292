use serde::{Deserialize, Serialize};

use crate::shard::ShardRow;

/// `rollouts/`: one of the K Reasoner answers to a valid task (the document is never shown).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutRow {
    pub task_id: String,
    pub iteration: u32,
    pub doc_slot: u32,
    /// Answer number within the task's group (0..K).
    pub sample: u32,
    pub prompt: String,
    pub prompt_ids: Vec<u32>,
    pub completion: String,
    pub completion_ids: Vec<u32>,
    pub logprobs: Vec<f32>,
    pub finish_reason: String,
    pub seed: u64,
    pub policy_id: String,
}

impl ShardRow for RolloutRow {
    const FOLDER: &'static str = "rollouts";
    const VERSION: u32 = 1;
}
