//! Log-probabilities of given completion tokens, for scoring and for training.
//!
//! Each row may carry the temperature its completion was sampled at (the `_at` methods): its
//! log-probs are then those of softmax(logits / T), the distribution generation drew from and
//! recorded log-probs of (`sample::sample_batch`), as TRL and verl score a policy sampled at a
//! temperature. Without temperatures every row is scored at 1.
//!
//! Rows are right-padded (prompt then completion), so plain causal attention is exact and the
//! fused attention kernel applies. Only the hidden states that predict completion tokens
//! reach the LM head, and the head runs in chunks of positions with the log-sum-exp taken
//! chunk by chunk, so full-vocabulary logits for a whole batch never exist at once. For
//! training, [`Policy::accumulate_gradients`] also recomputes each head chunk in the backward
//! pass (and, with activation checkpointing, each decoder layer), so memory stays bounded.

use anyhow::{bail, Result};
use tch::{Device, Kind, Tensor};

use crate::model::{cast, AttnMode};
use crate::policy::Policy;
use crate::sample::inverse_temperature;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScoreRow {
    pub prompt_ids: Vec<u32>,
    pub completion_ids: Vec<u32>,
}

/// Per-token log-probs of a batch of completions.
pub struct TokenLogprobs {
    /// [batch, max_completion_len], f32; 0 past each row's completion.
    pub logprobs: Tensor,
    /// [batch, max_completion_len], f32: 1 on completion tokens, 0 on padding.
    pub mask: Tensor,
}

/// Options of a training pass.
#[derive(Debug, Clone, Copy)]
pub struct GradOptions {
    /// Rows per forward/backward pass.
    pub micro_batch: usize,
    /// Recompute each decoder layer in the backward pass instead of storing its activations.
    pub checkpointing: bool,
}

/// Positions per LM-head chunk, so one chunk's logits stay near `budget` floats.
fn head_chunk(batch: i64, vocab: i64) -> i64 {
    let budget: i64 = 32 << 20; // 32 Mi floats = 128 MiB of f32 logits
    (budget / (batch * vocab)).max(1)
}

/// Inputs of one batch laid out for scoring.
struct Layout {
    ids: Tensor,       // [b, L] right-padded
    positions: Tensor, // [b, L]
    gather: Tensor,    // [b, C]: position whose hidden state predicts completion token j
    targets: Tensor,   // [b, C]
    mask: Tensor,      // [b, C]
    /// [b, 1, 1]: 1 / each row's sampling temperature; None when every row is at 1.
    inv_temperature: Option<Tensor>,
}

/// `temperatures` of a batch of `rows` rows: empty (all at 1) or one per row.
fn check_temperatures(rows: usize, temperatures: &[f64]) -> Result<()> {
    if !temperatures.is_empty() && temperatures.len() != rows {
        bail!(
            "{} temperatures for {rows} score rows (give none, or one per row)",
            temperatures.len()
        );
    }
    if let Some(t) = temperatures.iter().find(|t| !(t.is_finite() && **t >= 0.0)) {
        bail!("sampling temperature {t} is not a finite number >= 0");
    }
    Ok(())
}

fn layout(rows: &[ScoreRow], temperatures: &[f64], vocab: usize, device: Device) -> Result<Layout> {
    check_temperatures(rows.len(), temperatures)?;
    let b = rows.len();
    let l = rows.iter().map(|r| r.prompt_ids.len() + r.completion_ids.len()).max().unwrap_or(0);
    let c = rows.iter().map(|r| r.completion_ids.len()).max().unwrap_or(0);
    let (mut ids, mut gather, mut targets, mut mask) =
        (vec![0i64; b * l], vec![0i64; b * c], vec![0i64; b * c], vec![0f32; b * c]);
    for (i, r) in rows.iter().enumerate() {
        if r.prompt_ids.is_empty() {
            bail!("score row {i} has an empty prompt (the first token has no prediction)");
        }
        for (j, &t) in r.prompt_ids.iter().chain(&r.completion_ids).enumerate() {
            if t as usize >= vocab {
                bail!("score row {i}: token id {t} is outside the vocabulary ({vocab})");
            }
            ids[i * l + j] = t as i64;
        }
        let p = r.prompt_ids.len();
        for j in 0..c {
            gather[i * c + j] = (p - 1 + j.min(r.completion_ids.len().saturating_sub(1))) as i64;
            if j < r.completion_ids.len() {
                targets[i * c + j] = r.completion_ids[j] as i64;
                mask[i * c + j] = 1.0;
            }
        }
    }
    let (b, l, c) = (b as i64, l as i64, c as i64);
    let t = |v: &[i64], n: i64| Tensor::from_slice(v).view([b, n]).to_device(device);
    let inv: Vec<f32> = temperatures.iter().map(|&t| inverse_temperature(t)).collect();
    let inv_temperature = inv
        .iter()
        .any(|&x| x != 1.0)
        .then(|| Tensor::from_slice(&inv).view([b, 1, 1]).to_device(device));
    Ok(Layout {
        inv_temperature,
        ids: t(&ids, l),
        positions: Tensor::arange(l, (Kind::Int64, device)).unsqueeze(0).expand([b, l], false),
        gather: t(&gather, c),
        targets: t(&targets, c),
        mask: Tensor::from_slice(&mask).view([b, c]).to_device(device),
    })
}

impl Policy {
    /// Log-probs of `targets` [b, c] from `hidden` [b, c, h] through the LM head, chunk by
    /// chunk over positions, at each row's temperature (`inv_temperature` [b, 1, 1]: logits
    /// times 1/T, as generation does). Differentiable when grad mode is on.
    fn head_logprobs(
        &self,
        hidden: &Tensor,
        targets: &Tensor,
        inv_temperature: Option<&Tensor>,
    ) -> Tensor {
        let (b, c) = (targets.size()[0], targets.size()[1]);
        let vocab = self.config().vocab_size as i64;
        let chunk = head_chunk(b, vocab);
        let head = self.model.master().lm_head().to_kind(self.compute_kind());
        let mut parts = Vec::new();
        let mut start = 0;
        while start < c {
            let n = chunk.min(c - start);
            let h = hidden.narrow(1, start, n);
            let logits = head.forward(&h).to_kind(Kind::Float); // [b, n, vocab]
            let logits = match inv_temperature {
                Some(inv) => logits * inv,
                None => logits,
            };
            let lse = logits.logsumexp([-1], false); // [b, n]
            let tgt = logits.gather(-1, &targets.narrow(1, start, n).unsqueeze(-1), false);
            parts.push(tgt.squeeze_dim(-1) - lse);
            start += n;
        }
        if parts.is_empty() {
            return Tensor::zeros([b, 0], (Kind::Float, hidden.device()));
        }
        Tensor::cat(&parts, 1)
    }

    /// Hidden states [b, c, h] that predict each completion token (after the final norm).
    fn completion_hidden(&self, lay: &Layout) -> Tensor {
        let w = self.model.weights(self.compute_kind());
        completion_positions(&w.forward(&lay.ids, &lay.positions, AttnMode::Causal, None), lay)
    }

    /// Per-token log-probs of each row's completion given its prompt, in one pass over the
    /// rows. With grad mode on (the default) the result carries autograd to the f32 master
    /// weights; for batches too large to keep every activation, use
    /// [`Policy::accumulate_gradients`] or [`Policy::score`].
    pub fn sequence_logprobs(&self, rows: &[ScoreRow]) -> Result<TokenLogprobs> {
        self.sequence_logprobs_at(rows, &[])
    }

    /// [`Policy::sequence_logprobs`] with row i's log-probs at temperature `temperatures[i]`
    /// (empty: all at 1).
    pub fn sequence_logprobs_at(
        &self,
        rows: &[ScoreRow],
        temperatures: &[f64],
    ) -> Result<TokenLogprobs> {
        let lay = layout(rows, temperatures, self.config().vocab_size, self.device())?;
        let hidden = self.completion_hidden(&lay);
        let logprobs =
            self.head_logprobs(&hidden, &lay.targets, lay.inv_temperature.as_ref()) * &lay.mask;
        Ok(TokenLogprobs { logprobs, mask: lay.mask })
    }

    /// Log-probs without gradients, `micro_batch` rows at a time: one Vec per row, as long
    /// as its completion.
    pub fn score(&self, rows: &[ScoreRow], micro_batch: usize) -> Result<Vec<Vec<f32>>> {
        self.score_at(rows, &[], micro_batch)
    }

    /// [`Policy::score`] with row i's log-probs at temperature `temperatures[i]` (empty: all
    /// at 1): what generation recorded for a row sampled at that temperature.
    pub fn score_at(
        &self,
        rows: &[ScoreRow],
        temperatures: &[f64],
        micro_batch: usize,
    ) -> Result<Vec<Vec<f32>>> {
        check_temperatures(rows.len(), temperatures)?;
        let mut out = Vec::with_capacity(rows.len());
        let mb_size = micro_batch.max(1);
        tch::no_grad(|| -> Result<()> {
            for (k, mb) in rows.chunks(mb_size).enumerate() {
                let temps = temperatures.get(k * mb_size..k * mb_size + mb.len()).unwrap_or(&[]);
                let lp = self.sequence_logprobs_at(mb, temps)?.logprobs.to_device(Device::Cpu);
                for (i, r) in mb.iter().enumerate() {
                    let v: Vec<f32> = Vec::try_from(lp.get(i as i64))?;
                    out.push(v[..r.completion_ids.len()].to_vec());
                }
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// Forward and backward over `rows` in micro-batches, accumulating gradients into the
    /// master weights (call the optimizer afterwards). `loss` receives the indices of the
    /// micro-batch's rows in `rows` and their log-probs, and returns a scalar to minimise;
    /// the sum of those scalars is returned.
    ///
    /// The LM head is recomputed chunk by chunk in the backward pass, so no more than one
    /// chunk of logits is alive; with `checkpointing`, decoder layers are too (only each
    /// layer's input is kept).
    pub fn accumulate_gradients(
        &self,
        rows: &[ScoreRow],
        opts: GradOptions,
        loss: &mut dyn FnMut(&[usize], &TokenLogprobs) -> Result<Tensor>,
    ) -> Result<f64> {
        self.accumulate_gradients_at(rows, &[], opts, loss)
    }

    /// [`Policy::accumulate_gradients`] with row i's log-probs at temperature
    /// `temperatures[i]` (empty: all at 1).
    pub fn accumulate_gradients_at(
        &self,
        rows: &[ScoreRow],
        temperatures: &[f64],
        opts: GradOptions,
        loss: &mut dyn FnMut(&[usize], &TokenLogprobs) -> Result<Tensor>,
    ) -> Result<f64> {
        check_temperatures(rows.len(), temperatures)?;
        let mut total = 0.0;
        let mb = opts.micro_batch.max(1);
        for (k, chunk) in rows.chunks(mb).enumerate() {
            let idx: Vec<usize> = (k * mb..k * mb + chunk.len()).collect();
            let temps = temperatures.get(k * mb..k * mb + chunk.len()).unwrap_or(&[]);
            let lay = layout(chunk, temps, self.config().vocab_size, self.device())?;
            let inv_t = lay.inv_temperature.as_ref();
            // 1. Hidden states that predict completion tokens: with their graph, or (when
            //    checkpointing) without, keeping only each layer's input.
            let (hidden, saved) = if opts.checkpointing {
                let (h, saved) = tch::no_grad(|| self.forward_saving_layer_inputs(&lay));
                (h, Some(saved))
            } else {
                (self.completion_hidden(&lay), None)
            };
            // 2. Log-probs without a graph; the loss sees them as a leaf.
            let lp_values = tch::no_grad(|| self.head_logprobs(&hidden, &lay.targets, inv_t));
            let lp_leaf = lp_values.detach().set_requires_grad(true);
            let lp =
                TokenLogprobs { logprobs: &lp_leaf * &lay.mask, mask: lay.mask.shallow_clone() };
            let l = loss(&idx, &lp)?;
            total += l.double_value(&[]);
            l.backward();
            let g_lp = lp_leaf.grad() * &lay.mask; // [b, c]
                                                   // 3. The head again, chunk by chunk, with its graph: gradients reach the head
                                                   //    weights and the hidden states.
            let h_leaf = hidden.detach().set_requires_grad(true);
            let (b, c) = (g_lp.size()[0], g_lp.size()[1]);
            let chunk_len = head_chunk(b, self.config().vocab_size as i64);
            let mut start = 0;
            while start < c {
                let n = chunk_len.min(c - start);
                let part = self.head_logprobs(
                    &h_leaf.narrow(1, start, n),
                    &lay.targets.narrow(1, start, n),
                    inv_t,
                );
                (part * g_lp.narrow(1, start, n)).sum(Kind::Float).backward();
                start += n;
            }
            let g_hidden = h_leaf.grad();
            // 4. The body.
            match saved {
                None => (hidden * g_hidden).sum(Kind::Float).backward(),
                Some(saved) => self.backward_checkpointed(&lay, saved, g_hidden),
            }
        }
        Ok(total)
    }

    /// Forward without a graph, returning the completion hidden states and every decoder
    /// layer's input, then the last layer's output ([b, L, h] each).
    fn forward_saving_layer_inputs(&self, lay: &Layout) -> (Tensor, Vec<Tensor>) {
        let w = self.model.weights(self.compute_kind());
        let mut saved = Vec::with_capacity(w.layers().len() + 1);
        let hidden = w.forward(&lay.ids, &lay.positions, AttnMode::Causal, Some(&mut saved));
        (completion_positions(&hidden, lay), saved)
    }

    /// Backward through the final norm, each layer (recomputed from its saved input, last
    /// first) and the embedding, given the gradient of the completion hidden states.
    fn backward_checkpointed(&self, lay: &Layout, saved: Vec<Tensor>, g_hidden: Tensor) {
        let n_layers = saved.len() - 1;
        let x_last = saved[n_layers].detach().set_requires_grad(true);
        let (master, kind) = (self.model.master(), self.compute_kind());
        let hidden = completion_positions(&master.norm().to_kind(kind).forward(&x_last), lay);
        (hidden * g_hidden).sum(Kind::Float).backward();
        let mut g = x_last.grad();
        let (cos, sin) = master.rope().cos_sin(&lay.positions);
        for l in (0..n_layers).rev() {
            let x = saved[l].detach().set_requires_grad(true);
            // One layer's compute-dtype copy at a time.
            let layer = master.layers()[l].to_kind(kind);
            let y = layer.forward(&x, &cos, &sin, &mut AttnMode::Causal);
            (y * &g).sum(Kind::Float).backward();
            g = x.grad();
        }
        let w_embed = cast(master.embed_tokens(), kind);
        let e = Tensor::embedding(&w_embed, &lay.ids, -1, false, false);
        (e * g).sum(Kind::Float).backward();
    }
}

/// The rows of `hidden` [b, L, h] that predict completion tokens: [b, c, h].
fn completion_positions(hidden: &Tensor, lay: &Layout) -> Tensor {
    let (b, c) = (lay.gather.size()[0], lay.gather.size()[1]);
    let hsize = hidden.size()[2];
    hidden.gather(1, &lay.gather.unsqueeze(-1).expand([b, c, hsize], false), false)
}
