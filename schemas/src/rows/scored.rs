use serde::{Deserialize, Serialize};

use crate::shard::ShardRow;

/// `scored/`: one trajectory of either role with its reward and group advantage — everything
/// the update needs (tokens and sampling log-probs included), so `spice-update` reads only
/// this folder and the policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoredRow {
    pub iteration: u32,
    /// `challenger` or `reasoner`.
    pub role: String,
    /// Advantage group: the document (`d012`) for the Challenger, the task for the Reasoner.
    pub group_id: String,
    pub task_id: String,
    pub doc_slot: u32,
    /// Attempt number (Challenger) or answer number (Reasoner).
    pub sample: u32,
    /// Whether this trajectory is in the training batch (T_C, or T_R's one task per document).
    pub in_batch: bool,
    /// Challenger: task validity. Reasoner: always true.
    pub valid: bool,
    /// Reasoner: the extracted answer and its verdict against the gold answer.
    pub extracted: Option<String>,
    pub correct: Option<bool>,
    /// Reasoner pass rate p̂ over the task's K answers (both roles; None for invalid tasks).
    pub pass_rate: Option<f32>,
    pub reward: f32,
    pub advantage: f32,
    pub prompt_ids: Vec<u32>,
    pub completion_ids: Vec<u32>,
    pub logprobs: Vec<f32>,
    pub finish_reason: String,
    pub policy_id: String,
}

impl ShardRow for ScoredRow {
    const FOLDER: &'static str = "scored";
    const VERSION: u32 = 1;
}
