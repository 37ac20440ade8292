//! Generation: requests in, completions out, through the continuous-batching engine of
//! `engine.rs` (shared prefill per distinct prompt, slots refilled as samples finish, a KV
//! cache sized to a token budget). Each sample draws from its own seeded stream (see
//! `sample.rs`), so its tokens depend only on its seed and prompt.
//!
//! What a [`Generation`] holds:
//! - `token_ids`: the completion, including the stop token when the row ended on one (an EOS
//!   id or one of `SamplingParams::stop_token_ids`, such as the chat template's end-of-turn
//!   token), and up to and including the token that completed a stop string (a token may carry
//!   text past the stop string; nothing is cut inside a token);
//! - `logprobs`: for each of those tokens, its log-probability under the distribution it was
//!   sampled from at the sampling temperature T — log-softmax of logits / T (of the raw logits
//!   for greedy), before top-k or top-p. This is π_old of the token as the update scores it
//!   (`Policy::score_at` at the same T), what the Dr. GRPO ratio πθ/π_old needs; top-k and
//!   top-p are not reflected in it (the run config refuses them for trained roles);
//! - `text`: the completion decoded without special tokens.

use std::sync::Mutex;
use std::time::Instant;

use anyhow::{bail, Result};
use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};
use tch::{Device, Kind};

use crate::engine::{Engine, EngineStats, Plan};
use crate::kv_cache::KvCache;
use crate::model::Weights;
use crate::policy::Policy;
use crate::prefix_cache::PrefixCache;
use crate::sample::SamplingParams;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenRequest {
    pub prompt_ids: Vec<u32>,
    pub seed: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FinishReason {
    /// An EOS token, a stop token (the chat template's end of turn) or a stop string.
    Stop,
    /// `max_new_tokens` reached.
    Length,
}

impl FinishReason {
    pub fn as_str(&self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Generation {
    pub token_ids: Vec<u32>,
    /// Log-prob of each token of `token_ids` at the sampling temperature (see the module notes).
    pub logprobs: Vec<f32>,
    pub finish_reason: FinishReason,
    pub text: String,
}

/// Totals of one `generate` call, for throughput reports.
#[derive(Debug, Clone, Copy, Default)]
pub struct GenStats {
    pub new_tokens: usize,
    pub seconds: f64,
    /// What the engine shared and how many slots it ran.
    pub engine: EngineStats,
}

/// Live rows at or below which a CPU decode step reads bf16 weights when bf16 was asked for
/// but the CPU computes it in f32. A decode step of few rows is a matrix-vector product,
/// bound by memory bandwidth: libtorch's bf16 GEMV reads half the bytes and runs 2–3× faster
/// than f32 here, while from about 8 rows on its emulated bf16 GEMM falls behind f32
/// (measured on a 2-core AVX2 machine; `just bench` shows both).
pub const NARROW_DECODE_ROWS: usize = 4;

/// Rows of one projection GEMM in a decode step of batch-invariant generation: oneDNN's f32
/// GEMM gives each row the same bits for any number of rows up to this (measured up to about
/// 60 on SmolLM2-135M's and the tiny test models' shapes, on a 2-core AVX2 machine), and other
/// bits beyond. Wider steps run in blocks of this many rows.
pub const INVARIANT_DECODE_ROWS: i64 = 32;

/// The weights a decode step multiplies with: the compute dtype's, and (CPU, bf16 asked for)
/// bf16 copies for steps of at most [`NARROW_DECODE_ROWS`] rows.
pub(crate) struct StepWeights<'a> {
    pub wide: &'a Weights,
    pub narrow: Option<&'a Weights>,
    /// Shared prefixes of earlier calls (generation-only policies).
    pub prefixes: Option<&'a Mutex<PrefixCache>>,
}

/// The weights generation multiplies with, made from the master weights: the compute dtype's
/// (on a CPU fused and packed for oneDNN) and the narrow-decode bf16 copies. Each `generate`
/// call makes its own, unless [`Policy::generation_only`] made them once for the process.
pub(crate) struct GenerationWeights {
    wide: Weights,
    narrow: Option<Weights>,
    /// Prefixes prefilled by earlier calls, valid as long as these weights are.
    prefixes: Mutex<PrefixCache>,
}

impl GenerationWeights {
    fn step(&self) -> StepWeights<'_> {
        StepWeights {
            wide: &self.wide,
            narrow: self.narrow.as_ref(),
            prefixes: Some(&self.prefixes),
        }
    }
}

impl StepWeights<'_> {
    pub fn for_rows(&self, rows: usize) -> &Weights {
        match self.narrow {
            Some(n) if rows <= NARROW_DECODE_ROWS => n,
            _ => self.wide,
        }
    }
}

/// A progress bar that draws nowhere, for callers (and tests) that only read its counts.
pub fn hidden_progress() -> ProgressBar {
    ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::hidden())
}

/// How generation multiplies by the weights for `dtype` asked on `device`, on a CPU with or
/// without native bf16: the choices `generate` makes below, in words (for `spice doctor`).
pub fn matmul_path(device: Device, dtype: Kind, native_bf16: bool) -> String {
    if device != Device::Cpu {
        return format!("{dtype:?} GEMMs on {} (cuBLAS)", crate::device::device_label(device));
    }
    let onednn = tch::utils::has_mkldnn();
    let packed = if onednn {
        "fused projections packed for oneDNN"
    } else {
        "fused projections (no oneDNN in this libtorch)"
    };
    match (dtype, crate::device::compute_kind_on(device, dtype, native_bf16)) {
        (Kind::Float, _) => format!("f32 GEMMs, {packed}"),
        (Kind::BFloat16, Kind::BFloat16) if native_bf16 => {
            "bf16 GEMMs on the CPU's native bf16 instructions, fused projections".into()
        }
        (Kind::BFloat16, Kind::BFloat16) => {
            "bf16 GEMMs emulated in software (SPICE_LM_FORCE_BF16 is set): slow".into()
        }
        (Kind::BFloat16, _) => format!(
            "no native bf16 here: f32 GEMMs with {packed} for steps of more than \
             {NARROW_DECODE_ROWS} rows; bf16 weights (half the bytes) for decode steps of at \
             most {NARROW_DECODE_ROWS} rows"
        ),
        (other, _) => format!("{other:?} GEMMs"),
    }
}

impl Policy {
    /// Generate a completion for every request; results come back in request order.
    pub fn generate(
        &self,
        requests: &[GenRequest],
        params: &SamplingParams,
        batch_size: usize,
        progress: Option<&ProgressBar>,
    ) -> Result<Vec<Generation>> {
        Ok(self.generate_with_stats(requests, params, batch_size, progress)?.0)
    }

    pub fn generate_with_stats(
        &self,
        requests: &[GenRequest],
        params: &SamplingParams,
        batch_size: usize,
        progress: Option<&ProgressBar>,
    ) -> Result<(Vec<Generation>, GenStats)> {
        if batch_size == 0 {
            bail!("batch_size must be at least 1");
        }
        if let Some(i) = requests.iter().position(|r| r.prompt_ids.is_empty()) {
            bail!("request {i} has an empty prompt (at least one token is needed)");
        }
        let vocab = self.config().vocab_size as u32;
        for (i, r) in requests.iter().enumerate() {
            if let Some(t) = r.prompt_ids.iter().find(|&&t| t >= vocab) {
                bail!("request {i}: token id {t} is outside the vocabulary ({vocab})");
            }
        }
        let start = Instant::now();
        let mut out: Vec<Option<Generation>> = vec![None; requests.len()];
        let mut stats = GenStats::default();
        let capacity =
            requests.iter().map(|r| r.prompt_ids.len()).max().unwrap_or(0) + params.max_new_tokens;
        let plan = Plan::new(batch_size, requests.len(), capacity, self.kv_budget_tokens());
        tch::no_grad(|| -> Result<()> {
            let made;
            let prepared = match &self.generation {
                Some(g) => g,
                None => {
                    made = self.generation_weights();
                    &made
                }
            };
            let weights = prepared.step();
            let (rows, engine) =
                Engine::new(self, &weights, requests, params, plan, progress).run()?;
            for row in rows {
                let text = self.tokenizer().decode(&row.tokens, true)?;
                out[row.index] = Some(Generation {
                    token_ids: row.tokens,
                    logprobs: row.logprobs,
                    finish_reason: row.finish.unwrap_or(FinishReason::Length),
                    text,
                });
            }
            stats.engine = engine;
            Ok(())
        })?;
        stats.new_tokens = stats.engine.new_tokens;
        stats.seconds = start.elapsed().as_secs_f64();
        tracing::debug!(
            slots = plan.slots,
            capacity = plan.capacity,
            kv_budget_tokens = plan.budget_tokens,
            prompt_tokens = stats.engine.prompt_tokens,
            prefill_tokens = stats.engine.prefill_tokens,
            "generation plan"
        );
        Ok((out.into_iter().map(|g| g.expect("every row generated")).collect(), stats))
    }

    /// The weights generation multiplies with, made from the master weights (no gradients).
    fn generation_weights(&self) -> GenerationWeights {
        tch::no_grad(|| {
            let t0 = Instant::now();
            let mut w = self.model.weights(self.compute_kind());
            if self.device() == Device::Cpu {
                // Fewer, larger GEMMs: per-op overhead dominates small CPU batches. (On a GPU
                // the extra copy of the weights would cost memory for little gain.) Packed
                // for oneDNN; batch-invariant: decode GEMMs in blocks of rows whose sums do
                // not change with the number of rows.
                let invariant = self.batch_invariant();
                let packed = w.fuse_and_pack(invariant.then_some(INVARIANT_DECODE_ROWS));
                if invariant && !packed {
                    tracing::warn!(
                        "this model's projections could not be packed for oneDNN (biases on \
                         only some of them): its rows may round differently with the batch"
                    );
                }
            }
            let narrow = self.narrow_decode_weights();
            tracing::trace!(seconds = t0.elapsed().as_secs_f64(), "compute weights ready");
            GenerationWeights { wide: w, narrow, prefixes: Mutex::default() }
        })
    }

    /// Make the generation weights once, for every later `generate` call, and release the
    /// trainable f32 master weights: a stage that only generates (challenge, rollout, eval)
    /// then holds one copy of the model instead of two (on a CPU the master weights are
    /// about as large as the fused, packed copy generation reads). Call it after the
    /// settings that shape those weights ([`Policy::set_batch_invariant`]); scoring, training
    /// and saving need the master weights and are not possible afterwards. Tokens and
    /// log-probs are the same as without it.
    pub fn generation_only(&mut self) {
        if self.generation.is_none() {
            self.generation = Some(self.generation_weights());
            self.model.release_master();
        }
    }

    /// Whether [`Policy::generation_only`] released the master weights.
    pub fn is_generation_only(&self) -> bool {
        self.generation.is_some()
    }

    /// Whether what a sample generates is independent of the other samples of its `generate`
    /// call — batch size, KV budget, and so the shard count of a stage: f32 on a CPU (with
    /// oneDNN), where the engine keeps a row's arithmetic the same whatever the other rows
    /// (see `engine.rs`; tested across slots, arrival orders and stage shards). bf16 is
    /// not: bf16 GEMMs round differently with the number of rows, and on a CPU without native bf16, decode steps of at most [`NARROW_DECODE_ROWS`]
    /// rows read bf16 weights while wider ones compute in f32. On a GPU no such guarantee is
    /// made: cuBLAS may pick other kernels for other batch shapes. Off, too, after
    /// [`Policy::set_batch_invariant`]`(false)`, which takes the faster shared path in f32.
    pub fn batch_invariant(&self) -> bool {
        self.batch_invariant_allowed
            && self.device() == Device::Cpu
            && self.dtype() == Kind::Float
            && tch::utils::has_mkldnn()
    }

    /// Tokens the KV cache of one `generate` call may hold: the policy's setting, else half
    /// of the memory free now on its device.
    pub fn kv_budget_tokens(&self) -> usize {
        let cfg = self.config();
        let per_token = KvCache::bytes_per_token(
            cfg.num_hidden_layers,
            cfg.num_kv_heads() as i64,
            cfg.head_dim() as i64,
            self.attention_kind(),
        );
        self.kv_cache_tokens().unwrap_or_else(|| {
            let free = crate::device::free_memory_bytes(self.device());
            (free / 2 / per_token.max(1)) as usize
        })
    }

    /// The dtype attention and its cache run in: f32 on a CPU even for bf16 compute (see
    /// `model::attention`), the compute dtype elsewhere.
    pub fn attention_kind(&self) -> Kind {
        if self.device() == Device::Cpu {
            Kind::Float
        } else {
            self.compute_kind()
        }
    }

    /// bf16 copies of the weights for decode steps of few rows, when bf16 was asked for on a
    /// CPU that computes it in f32 (see [`NARROW_DECODE_ROWS`]).
    fn narrow_decode_weights(&self) -> Option<Weights> {
        let emulated = self.device() == Device::Cpu
            && self.dtype() == Kind::BFloat16
            && self.compute_kind() == Kind::Float;
        emulated.then(|| {
            let mut w = self.model.weights(Kind::BFloat16);
            w.fuse();
            w
        })
    }

    /// Whether the newest token completed one of the stop strings. Only a tail of the
    /// completion is decoded: every token adds at least one byte, so a stop string of n bytes
    /// ends within the last n tokens (plus a margin for tokens that split characters).
    pub(crate) fn hits_stop(
        &self,
        tokens: &[u32],
        params: &SamplingParams,
        window: usize,
    ) -> Result<bool> {
        if params.stop_strings.is_empty() {
            return Ok(false);
        }
        let from = tokens.len().saturating_sub(window);
        let tail = self.tokenizer().decode(&tokens[from..], false)?;
        Ok(params.stop_strings.iter().any(|s| !s.is_empty() && tail.contains(s.as_str())))
    }
}
