use serde::{Deserialize, Serialize};

use crate::shard::ShardRow;

/// `tasks/`: a Challenger attempt parsed and validated — valid or not, with the reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRow {
    /// `i0003-d012-a0005`: iteration, document slot, attempt.
    pub task_id: String,
    pub iteration: u32,
    pub doc_slot: u32,
    pub chunk_id: String,
    pub attempt: u32,
    /// One of the G Challenger trajectories trained on (copied from `challenger/`).
    pub selected: bool,
    pub valid: bool,
    /// Machine-readable reason when invalid (`no_json`, `missing_field`, `bad_letter`, …).
    pub invalid_reason: Option<String>,
    pub invalid_detail: Option<String>,
    /// `mcq` or `free_form`.
    pub task_kind: String,
    pub question: Option<String>,
    /// The four options A–D of an MCQ, empty for free-form tasks.
    pub options: Vec<String>,
    /// Gold answer: the letter for an MCQ, the scalar answer for free-form.
    pub answer: Option<String>,
    pub answer_type: Option<String>,
    /// The JSON object the Challenger wrote, re-serialised, for audit.
    pub raw_json: Option<String>,
    pub policy_id: String,
}

impl ShardRow for TaskRow {
    const FOLDER: &'static str = "tasks";
    const VERSION: u32 = 1;
}
