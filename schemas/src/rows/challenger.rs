use serde::{Deserialize, Serialize};

use crate::shard::ShardRow;

/// `challenger/`: one raw Challenger attempt for one sampled document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChallengerRow {
    pub iteration: u32,
    /// Position of the document in this iteration's sample (0..B); the Challenger's group.
    pub doc_slot: u32,
    /// `chunks/` row this attempt was grounded in (empty with `grounding = "none"`).
    pub chunk_id: String,
    /// Attempt number for this document (0..max_attempts).
    pub attempt: u32,
    /// `mcq` or `free_form`, as chosen by the format step (or forced by config).
    pub task_kind: String,
    /// Answer type asked for in free-form tasks (`integer`, `expression`, …).
    pub answer_type: Option<String>,
    /// The format-choice completion (the paper's first prompt), when the model chose.
    pub format_completion: Option<String>,
    /// Prompt set used (`paper` or `compact`).
    pub prompt_set: String,
    /// Rendered prompt text (chat template applied) and its token ids. The prompt ends with
    /// `response_prefix` when the prompt set starts the answer for the model.
    pub prompt: String,
    pub prompt_ids: Vec<u32>,
    /// The start of the answer written into the prompt (e.g. `{"question": "`), which small
    /// models need to answer in JSON at all; the task is parsed from prefix + completion.
    pub response_prefix: String,
    /// The task the Challenger wrote, its token ids and their sampling log-probs.
    pub completion: String,
    pub completion_ids: Vec<u32>,
    pub logprobs: Vec<f32>,
    /// `stop` or `length`.
    pub finish_reason: String,
    pub seed: u64,
    pub policy_id: String,
    /// Whether the parser already found a valid task here (`spice-filter` decides).
    pub parsed_valid: bool,
    /// One of the G trajectories kept for training (valid:invalid ratio preserved).
    pub selected: bool,
}

impl ShardRow for ChallengerRow {
    const FOLDER: &'static str = "challenger";
    const VERSION: u32 = 2;
}
