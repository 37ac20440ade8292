use serde::{Deserialize, Serialize};

/// `update/`: the policy-gradient steps of one iteration (per-step numbers are in its
/// `part-00000.parquet`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct UpdateMetrics {
    pub steps: u64,
    /// Rows read from `scored/`, the sequences trained on (per role), and Challenger rows
    /// left out because the Challenger is frozen.
    pub rows_read: u64,
    pub sequences: u64,
    pub challenger_sequences: u64,
    pub reasoner_sequences: u64,
    pub frozen_challenger_rows_skipped: u64,
    /// Completion tokens trained on (the loss's tokens), over every step.
    pub tokens: u64,
    /// Prompt and completion tokens of the sequences of every step, and of them those the
    /// model ran over: with `update.shared_prefix` each distinct prompt of a micro-batch
    /// once, so `forwarded_tokens / sequence_tokens` is what sharing left of the work.
    pub sequence_tokens: u64,
    pub forwarded_tokens: u64,
    /// Data-parallel ranks that ran the update (1: one process), and the c10d backend.
    pub world_size: u32,
    pub dist_backend: Option<String>,
    /// ZeRO stage the update ran at (1: AdamW's moments sharded over the ranks; 0 with one
    /// process or `update.zero_stage = 0`), and the bytes of moments rank 0 held.
    pub zero_stage: u32,
    pub optimizer_state_bytes: u64,
    /// Means over steps.
    #[serde(alias = "loss", deserialize_with = "super::null_as_nan")]
    pub mean_loss: f64,
    #[serde(deserialize_with = "super::null_as_nan")]
    pub mean_pg_loss: f64,
    #[serde(deserialize_with = "super::null_as_nan")]
    pub mean_kl: f64,
    #[serde(deserialize_with = "super::null_as_nan")]
    pub mean_clip_fraction: f64,
    #[serde(alias = "grad_norm", deserialize_with = "super::null_as_nan")]
    pub final_grad_norm: f64,
    pub learning_rate: f64,
    pub optimizer_step: u64,
    pub optimizer_resumed: bool,
    /// |log πθ_old − log π_sampling| over completion tokens: how far the update's model
    /// drifts from the one that generated.
    #[serde(deserialize_with = "super::null_as_nan")]
    pub logprob_mismatch_mean_abs: f64,
    #[serde(deserialize_with = "super::null_as_nan")]
    pub logprob_mismatch_max_abs: f64,
    /// Where πθ_old came from (`step forward pass` or `scored before the first step`).
    pub old_logprobs: String,
    pub score_seconds: f64,
    pub reference_seconds: f64,
    pub train_seconds: f64,
    pub save_seconds: f64,
    pub seconds: f64,
    /// Trained tokens per second of training.
    pub tokens_per_second: f64,
    pub peak_rss_mib: f64,
    pub device: String,
    /// The dtype the step multiplied in, and why (bf16 is asked for to be fast: on a CPU
    /// where its GEMMs are slower than f32's, the update computes in f32).
    pub compute_dtype: String,
    pub compute_reason: String,
    /// GEMM rates of this machine measured at the start of the update (a 1024³ matmul, best
    /// of 3): f32, and bf16 where it was asked for (null otherwise).
    pub matmul_f32_gflops: f64,
    pub matmul_bf16_gflops: Option<f64>,
    /// Trainable parameters, and the model FLOP/s of training: 6 × parameters ×
    /// `forwarded_tokens` / `train_seconds` (recomputation not counted).
    pub parameters: u64,
    pub model_gflops_per_second: f64,
    /// `model_gflops_per_second` over the measured GEMM rate of `compute_dtype`: the share
    /// of the machine's matmul peak the update reached.
    pub peak_fraction: f64,
    /// Older `checkpoint/` and `optimizer/` folders this update pruned once it had committed
    /// (the `[checkpoint]` bounds), and the bytes they held.
    pub pruned_checkpoints: u64,
    pub pruned_optimizers: u64,
    pub pruned_bytes: u64,
}

impl crate::metrics::StageMetrics for UpdateMetrics {}

/// `checkpoint/` (the policy the next iteration starts from) and `optimizer/` (the AdamW
/// state it resumes), one record for both.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CheckpointMetrics {
    pub optimizer_step: u64,
    pub optimizer_resumed: bool,
    pub trained_sequences: u64,
    pub steps: u64,
}

impl crate::metrics::StageMetrics for CheckpointMetrics {}
