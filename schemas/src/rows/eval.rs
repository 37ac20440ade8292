use serde::{Deserialize, Serialize};

use crate::shard::ShardRow;

/// `eval/`: one sampled answer to one benchmark question.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalRow {
    /// Benchmark name (file stem or preset name) and the question's id within it.
    pub benchmark: String,
    pub question_id: String,
    pub subject: Option<String>,
    /// `mcq` or `free_form`.
    pub task_kind: String,
    /// Sample number (0 for greedy pass@1; 0..k for avg@k).
    pub sample: u32,
    pub prompt: String,
    pub completion: String,
    pub completion_tokens: u32,
    pub finish_reason: String,
    pub gold: String,
    pub extracted: Option<String>,
    pub correct: bool,
    pub seed: u64,
    pub policy_id: String,
}

impl ShardRow for EvalRow {
    const FOLDER: &'static str = "eval";
    const VERSION: u32 = 1;
}
