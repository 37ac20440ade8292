use serde::{Deserialize, Serialize};

/// Totals of one generation pass (Challenger, Reasoner or evaluation), flattened into the
/// metrics of the stage that generated.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GenerationMetrics {
    /// Generated rows (completions).
    pub rows: u64,
    pub new_tokens: u64,
    /// Prompt tokens of all rows, and those run through a prefill: once per distinct prompt,
    /// shared by its G or K samples.
    pub prompt_tokens: u64,
    pub prefill_tokens: u64,
    /// Wall time of those prefills, a share of `generation_seconds` (the rest is decoding and
    /// sampling; 0 in manifests written before this field).
    pub prefill_seconds: f64,
    /// Rows decoded together at most (the batch size, or fewer where the KV cache budget
    /// or the number of rows bound it).
    pub max_live_rows: u64,
    /// Wall time inside generation, without loading and writing.
    pub generation_seconds: f64,
    /// `new_tokens / generation_seconds` (0 when no time was spent).
    pub tokens_per_second: f64,
    /// Token ids that ended a completion (finish reason `stop`): the model's EOS ids, then the
    /// chat template's end-of-turn token when prompts were rendered with the template and it
    /// is not an EOS.
    pub stop_token_ids: Vec<u32>,
    /// Whether each completion depends only on its prompt and seed, not on the other rows it
    /// was generated with: true for f32 on a CPU. bf16 (and any dtype on a GPU) rounds
    /// differently with the batch, so its completions can change with `run.shards` and the
    /// role's `batch_size` (manifests written before this field read false).
    pub batch_invariant: bool,
    /// Peak resident memory of the stage's process when its generation ended, in MiB: the
    /// model, its KV cache and libtorch (0 where the OS does not say, and in manifests written
    /// before this field).
    pub peak_rss_mib: f64,
}

/// Also a view of the metrics of any stage that flattens it in.
impl crate::metrics::StageMetrics for GenerationMetrics {}

impl GenerationMetrics {
    pub fn new(rows: u64, new_tokens: u64, seconds: f64) -> Self {
        let tokens_per_second = if seconds > 0.0 { new_tokens as f64 / seconds } else { 0.0 };
        GenerationMetrics {
            rows,
            new_tokens,
            generation_seconds: seconds,
            tokens_per_second,
            ..Default::default()
        }
    }

    /// Both passes together (the rates are recomputed from the sums; stop tokens are the
    /// union, and the passes are batch-invariant only if each one is).
    pub fn add(&mut self, other: GenerationMetrics) {
        // A pass that never ran (the default value) says nothing about batch invariance.
        let ran = |g: &GenerationMetrics| g.rows > 0 || !g.stop_token_ids.is_empty();
        let batch_invariant = match (ran(self), ran(&other)) {
            (false, _) => other.batch_invariant,
            (true, false) => self.batch_invariant,
            (true, true) => self.batch_invariant && other.batch_invariant,
        };
        let mut sum = GenerationMetrics::new(
            self.rows + other.rows,
            self.new_tokens + other.new_tokens,
            self.generation_seconds + other.generation_seconds,
        );
        sum.prompt_tokens = self.prompt_tokens + other.prompt_tokens;
        sum.prefill_tokens = self.prefill_tokens + other.prefill_tokens;
        sum.prefill_seconds = self.prefill_seconds + other.prefill_seconds;
        sum.max_live_rows = self.max_live_rows.max(other.max_live_rows);
        sum.stop_token_ids = std::mem::take(&mut self.stop_token_ids);
        for id in other.stop_token_ids {
            if !sum.stop_token_ids.contains(&id) {
                sum.stop_token_ids.push(id);
            }
        }
        sum.batch_invariant = batch_invariant;
        sum.peak_rss_mib = self.peak_rss_mib.max(other.peak_rss_mib);
        *self = sum;
    }
}
