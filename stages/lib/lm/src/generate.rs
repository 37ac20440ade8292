//! Batched generation with a KV cache.
//!
//! Requests are sorted by prompt length and run in batches of left-padded prompts. Each row
//! samples on the CPU from its own seeded RNG (see `sample.rs`), so its tokens depend only on
//! its seed and prompt. Rows that finish are dropped from the batch (and from the KV cache)
//! at once, so they stop costing compute.
//!
//! What a [`Generation`] holds:
//! - `token_ids`: the completion, including the EOS token when the row ended on one, and up
//!   to and including the token that completed a stop string (a token may carry text past
//!   the stop string; nothing is cut inside a token);
//! - `logprobs`: for each of those tokens, its log-probability under the model's own
//!   distribution at temperature 1 — log-softmax of the raw logits, before temperature,
//!   top-k or top-p. This is π_old of the token, what the Dr. GRPO ratio πθ/π_old needs,
//!   whatever sampling filters were used;
//! - `text`: the completion decoded without special tokens.

use std::time::Instant;

use anyhow::{bail, Result};
use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use crate::kv_cache::KvCache;
use crate::model::{AttnMode, Weights};
use crate::policy::Policy;
use crate::sample::{row_rng, sample_batch, SamplingParams};
use rand::Rng;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenRequest {
    pub prompt_ids: Vec<u32>,
    pub seed: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FinishReason {
    /// An EOS token or a stop string.
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
    /// Log-prob of each token of `token_ids` at temperature 1 (see the module notes).
    pub logprobs: Vec<f32>,
    pub finish_reason: FinishReason,
    pub text: String,
}

/// Totals of one `generate` call, for throughput reports.
#[derive(Debug, Clone, Copy, Default)]
pub struct GenStats {
    pub new_tokens: usize,
    pub seconds: f64,
}

/// Live rows at or below which a CPU decode step reads bf16 weights when bf16 was asked for
/// but the CPU computes it in f32. A decode step of few rows is a matrix-vector product,
/// bound by memory bandwidth: libtorch's bf16 GEMV reads half the bytes and runs 2–3× faster
/// than f32 here, while from about 8 rows on its emulated bf16 GEMM falls behind f32
/// (measured on a 2-core AVX2 machine; `just bench` shows both).
pub const NARROW_DECODE_ROWS: usize = 4;

/// The weights a decode step multiplies with: the compute dtype's, and (CPU, bf16 asked for)
/// bf16 copies for steps of at most [`NARROW_DECODE_ROWS`] rows.
struct StepWeights<'a> {
    wide: &'a Weights,
    narrow: Option<&'a Weights>,
}

impl StepWeights<'_> {
    fn for_rows(&self, rows: usize) -> &Weights {
        match self.narrow {
            Some(n) if rows <= NARROW_DECODE_ROWS => n,
            _ => self.wide,
        }
    }
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

/// One row being generated.
struct Row {
    index: usize,
    rng: rand_chacha::ChaCha8Rng,
    prompt_len: i64,
    tokens: Vec<u32>,
    logprobs: Vec<f32>,
    finish: Option<FinishReason>,
}

impl Row {
    /// Request `index`, nothing generated yet.
    fn new(index: usize, request: &GenRequest) -> Row {
        Row {
            index,
            rng: row_rng(request.seed),
            prompt_len: request.prompt_ids.len() as i64,
            tokens: Vec::new(),
            logprobs: Vec::new(),
            finish: None,
        }
    }
}

/// A batch of prompts padded on the left to `p` tokens: token ids (padded with `pad`),
/// positions (each prompt's from 0), and the key mask of a cache of `p + max_new` columns,
/// −∞ on the padding so no row attends to it.
fn left_padded(
    prompts: &[&[u32]],
    p: usize,
    max_new: usize,
    pad: i64,
) -> (Vec<i64>, Vec<i64>, Vec<f32>) {
    let b = prompts.len();
    let mut ids = vec![pad; b * p];
    let mut pos = vec![0i64; b * p];
    let mut key_mask = vec![0f32; b * (p + max_new)];
    for (r, prompt) in prompts.iter().enumerate() {
        // Row r's prompt occupies the last prompt.len() columns of [0, p).
        let off = p - prompt.len();
        for (j, &t) in prompt.iter().enumerate() {
            ids[r * p + off + j] = t as i64;
            pos[r * p + off + j] = j as i64;
        }
        key_mask[r * (p + max_new)..r * (p + max_new) + off].fill(f32::NEG_INFINITY);
    }
    (ids, pos, key_mask)
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
        // Similar lengths together waste less compute on padding; output order is restored.
        let mut order: Vec<usize> = (0..requests.len()).collect();
        order.sort_by_key(|&i| requests[i].prompt_ids.len());
        let mut out: Vec<Option<Generation>> = vec![None; requests.len()];
        let mut stats = GenStats::default();
        tch::no_grad(|| -> Result<()> {
            let t0 = Instant::now();
            // Compute-dtype copies of the weights, made once per call.
            let mut w = self.model.weights(self.compute_kind());
            if self.device() == Device::Cpu {
                // Fewer, larger GEMMs: per-op overhead dominates small CPU batches. (On a GPU
                // the extra copy of the weights would cost memory for little gain.)
                w.fuse();
                w.to_onednn();
            }
            let narrow = self.narrow_decode_weights();
            tracing::trace!(seconds = t0.elapsed().as_secs_f64(), "compute weights ready");
            let weights = StepWeights { wide: &w, narrow: narrow.as_ref() };
            for chunk in order.chunks(batch_size) {
                for row in self.run_batch(&weights, requests, chunk, params, progress)? {
                    stats.new_tokens += row.tokens.len();
                    let text = self.tokenizer().decode(&row.tokens, true)?;
                    out[row.index] = Some(Generation {
                        token_ids: row.tokens,
                        logprobs: row.logprobs,
                        finish_reason: row.finish.unwrap_or(FinishReason::Length),
                        text,
                    });
                }
            }
            Ok(())
        })?;
        stats.seconds = start.elapsed().as_secs_f64();
        Ok((out.into_iter().map(|g| g.expect("every row generated")).collect(), stats))
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

    /// Generates the requests `indices` as one batch: a prefill of the left-padded prompts,
    /// then one decode step per new token until every row has finished.
    fn run_batch(
        &self,
        weights: &StepWeights<'_>,
        requests: &[GenRequest],
        indices: &[usize],
        params: &SamplingParams,
        progress: Option<&ProgressBar>,
    ) -> Result<Vec<Row>> {
        let rows: Vec<Row> = indices.iter().map(|&i| Row::new(i, &requests[i])).collect();
        let max_new = params.max_new_tokens as i64;
        if max_new == 0 {
            return Ok(rows);
        }
        let prompts: Vec<&[u32]> =
            indices.iter().map(|&i| requests[i].prompt_ids.as_slice()).collect();
        // The prefill has b × p rows per GEMM: the compute dtype's weights.
        let (mut cache, mut logits) = self.prefill(weights.wide, &prompts, max_new);

        let stop_window = params.stop_strings.iter().map(|s| s.len()).max().unwrap_or(0) + 8;
        let mut live = rows;
        let mut done = Vec::new();
        for _ in 0..max_new {
            self.sample_next(&mut live, &logits, params, max_new, stop_window)?;
            if live.iter().any(|r| r.finish.is_some()) {
                let fin = self.drop_finished(&mut live, &mut cache);
                if let Some(pb) = progress {
                    pb.inc(fin.len() as u64);
                }
                done.extend(fin);
                if live.is_empty() {
                    break;
                }
            }
            logits = self.decode_step(weights, &live, &mut cache);
        }
        done.extend(live);
        Ok(done)
    }

    /// Runs the left-padded prompts through the model with weights `w`: the KV cache (with
    /// room for `max_new` more tokens per row) and each row's next-token logits [b, vocab].
    fn prefill(&self, w: &Weights, prompts: &[&[u32]], max_new: i64) -> (KvCache, Tensor) {
        let device = self.device();
        let cfg = self.config();
        let b = prompts.len() as i64;
        let p = prompts.iter().map(|x| x.len()).max().unwrap() as i64;
        let pad = self.eos_ids().first().copied().unwrap_or(0) as i64;
        let (ids, pos, key_mask) = left_padded(prompts, p as usize, max_new as usize, pad);
        let attn_kind = if device == Device::Cpu { Kind::Float } else { self.compute_kind() };
        let mut cache = KvCache::new(
            cfg.num_hidden_layers,
            b,
            cfg.num_kv_heads() as i64,
            p + max_new,
            cfg.head_dim() as i64,
            attn_kind,
            device,
        );
        cache.key_mask = Tensor::from_slice(&key_mask).view([b, p + max_new]).to_device(device);
        let ids = Tensor::from_slice(&ids).view([b, p]).to_device(device);
        let pos = Tensor::from_slice(&pos).view([b, p]).to_device(device);
        let t0 = Instant::now();
        let hidden = w.forward(&ids, &pos, AttnMode::Cached(&mut cache), None);
        let logits = w.last_logits(&hidden); // [b, vocab]
        tracing::trace!(batch = b, prompt = p, seconds = t0.elapsed().as_secs_f64(), "prefill");
        (cache, logits)
    }

    /// Samples one token for every live row from `logits` and marks the rows it finishes.
    fn sample_next(
        &self,
        live: &mut [Row],
        logits: &Tensor,
        params: &SamplingParams,
        max_new: i64,
        stop_window: usize,
    ) -> Result<()> {
        // One draw per live row from its own stream; the choice happens on the device.
        let draws: Vec<f64> = live.iter_mut().map(|r| r.rng.random::<f64>()).collect();
        let (tokens, lps) = sample_batch(logits, params, &draws);
        for (row, (tok, lp)) in live.iter_mut().zip(tokens.into_iter().zip(lps)) {
            row.tokens.push(tok);
            row.logprobs.push(lp);
            if self.eos_ids().contains(&tok) || self.hits_stop(row, params, stop_window)? {
                row.finish = Some(FinishReason::Stop);
            } else if row.tokens.len() as i64 >= max_new {
                row.finish = Some(FinishReason::Length);
            }
        }
        Ok(())
    }

    /// Takes the finished rows out of `live` and, unless none is left, out of the cache, so
    /// they stop costing compute. Returns them.
    fn drop_finished(&self, live: &mut Vec<Row>, cache: &mut KvCache) -> Vec<Row> {
        let keep: Vec<i64> = live
            .iter()
            .enumerate()
            .filter(|(_, r)| r.finish.is_none())
            .map(|(i, _)| i as i64)
            .collect();
        let (fin, still): (Vec<Row>, Vec<Row>) =
            std::mem::take(live).into_iter().partition(|r| r.finish.is_some());
        *live = still;
        if !live.is_empty() {
            cache.keep_rows(&Tensor::from_slice(&keep).to_device(self.device()));
        }
        fin
    }

    /// One token per live row, its newest, at its own position through the model: the next
    /// logits [live, vocab].
    fn decode_step(&self, weights: &StepWeights<'_>, live: &[Row], cache: &mut KvCache) -> Tensor {
        let device = self.device();
        let bl = live.len() as i64;
        let next: Vec<i64> = live.iter().map(|r| *r.tokens.last().unwrap() as i64).collect();
        let next_pos: Vec<i64> =
            live.iter().map(|r| r.prompt_len + r.tokens.len() as i64 - 1).collect();
        let ids = Tensor::from_slice(&next).view([bl, 1]).to_device(device);
        let pos = Tensor::from_slice(&next_pos).view([bl, 1]).to_device(device);
        let t0 = Instant::now();
        let w = weights.for_rows(live.len());
        let hidden = w.forward(&ids, &pos, AttnMode::Cached(cache), None);
        let logits = w.last_logits(&hidden);
        tracing::trace!(batch = bl, seconds = t0.elapsed().as_secs_f64(), "decode step");
        logits
    }

    /// Whether the newest token completed one of the stop strings. Only a tail of the
    /// completion is decoded: every token adds at least one byte, so a stop string of n bytes
    /// ends within the last n tokens (plus a margin for tokens that split characters).
    fn hits_stop(&self, row: &Row, params: &SamplingParams, window: usize) -> Result<bool> {
        if params.stop_strings.is_empty() {
            return Ok(false);
        }
        let from = row.tokens.len().saturating_sub(window);
        let tail = self.tokenizer().decode(&row.tokens[from..], false)?;
        Ok(params.stop_strings.iter().any(|s| !s.is_empty() && tail.contains(s.as_str())))
    }
}
