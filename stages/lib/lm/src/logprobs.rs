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
//!
//! With a shared prefix ([`GradOptions::shared_prefix`], [`Policy::score_with`]) a micro-batch
//! whose rows start alike — a Challenger document's G attempts, which differ only in the
//! format they ask for after the document, a task's K answers — is packed with each common
//! prompt prefix once: its tokens go through every layer once instead of once per row, and in
//! the backward pass the gradients of all its rows flow into that one copy. Log-probs and
//! gradients equal the padded layout's up to f32 rounding.

use anyhow::{bail, Result};
use tch::{Device, Kind, Tensor};

use crate::model::{cast, AttnMode, SharedPrefix};
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
    /// Forward each common prompt prefix of a micro-batch once for all its rows (see
    /// [`SharedPrefix`]); rows share only within a micro-batch, so order them with
    /// [`shared_prefix_order`].
    pub shared_prefix: bool,
}

/// Positions per LM-head chunk, so one chunk's logits stay near `budget` floats.
fn head_chunk(batch: i64, vocab: i64) -> i64 {
    let budget: i64 = 32 << 20; // 32 Mi floats = 128 MiB of f32 logits
    (budget / (batch * vocab)).max(1)
}

/// Inputs of one micro-batch laid out for scoring: right-padded rows [b, L], or (with a
/// shared prefix) one packed sequence [1, T].
struct Layout {
    ids: Tensor,
    positions: Tensor,
    /// [b * C]: flat index (into the [b·L] or [T] tokens) of the hidden state that predicts
    /// completion token j of row i.
    gather: Tensor,
    targets: Tensor, // [b, C]
    mask: Tensor,    // [b, C]
    /// [b, 1, 1]: 1 / each row's sampling temperature; None when every row is at 1.
    inv_temperature: Option<Tensor>,
    shared: Option<SharedPrefix>,
}

impl Layout {
    /// How the micro-batch's queries attend.
    fn attn(&self) -> AttnMode<'_> {
        match &self.shared {
            Some(sp) => AttnMode::SharedPrefix(sp),
            None => AttnMode::Causal,
        }
    }

    /// A micro-batch of `rows`: packed with each common prompt prefix once when asked and
    /// some rows share one, else right-padded.
    fn new(
        rows: &[&ScoreRow],
        temperatures: &[f64],
        shared_prefix: bool,
        vocab: usize,
        device: Device,
    ) -> Result<Layout> {
        check_temperatures(rows.len(), temperatures)?;
        check_rows(rows, vocab)?;
        let mut lay = match shared_groups(rows, shared_prefix) {
            Some(groups) => shared_layout(rows, &groups, device),
            None => padded_layout(rows, device),
        };
        let inv: Vec<f32> = temperatures.iter().map(|&t| inverse_temperature(t)).collect();
        lay.inv_temperature = inv
            .iter()
            .any(|&x| x != 1.0)
            .then(|| Tensor::from_slice(&inv).view([rows.len() as i64, 1, 1]).to_device(device));
        Ok(lay)
    }

    /// The shared-prefix mask in the dtype attention runs in (`Policy::attention_kind`),
    /// cast once here instead of in every layer.
    fn with_mask_in(mut self, kind: Kind) -> Layout {
        if let Some(sp) = self.shared.as_mut() {
            sp.mask = sp.mask.to_kind(kind);
        }
        self
    }
}

/// The prefix groups of a micro-batch of `rows` when it is packed with a shared prefix:
/// asked for, some rows share a prompt prefix, and there is a completion to score.
fn shared_groups(rows: &[&ScoreRow], shared_prefix: bool) -> Option<PrefixGroups> {
    if !shared_prefix || !rows.iter().any(|r| !r.completion_ids.is_empty()) {
        return None;
    }
    Some(PrefixGroups::of(rows)).filter(PrefixGroups::any_shared)
}

/// The tokens (padding not counted) the body runs over when `rows` go through in
/// micro-batches of `micro_batch` neighbours: every row's prompt and completion, or with a
/// shared prefix each group's shared prefix once.
pub fn forwarded_tokens(rows: &[ScoreRow], micro_batch: usize, shared_prefix: bool) -> usize {
    micro_batches(rows.len(), micro_batch)
        .iter()
        .map(|idx| {
            let mb: Vec<&ScoreRow> = idx.iter().map(|&i| &rows[i]).collect();
            let all: usize = mb.iter().map(|r| r.prompt_ids.len() + r.completion_ids.len()).sum();
            match shared_groups(&mb, shared_prefix) {
                // Each row's shared prefix counted once per group, not once per row.
                Some(g) => {
                    all - (0..mb.len()).map(|i| g.prefix_of(i)).sum::<usize>()
                        + g.shared.iter().sum::<usize>()
                }
                None => all,
            }
        })
        .sum()
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

fn check_rows(rows: &[&ScoreRow], vocab: usize) -> Result<()> {
    for (i, r) in rows.iter().enumerate() {
        if r.prompt_ids.is_empty() {
            bail!("score row {i} has an empty prompt (the first token has no prediction)");
        }
        if let Some(t) =
            r.prompt_ids.iter().chain(&r.completion_ids).find(|&&t| t as usize >= vocab)
        {
            bail!("score row {i}: token id {t} is outside the vocabulary ({vocab})");
        }
    }
    Ok(())
}

/// Targets and mask [b, C] of the rows' completions, right-padded.
fn completion_targets(rows: &[&ScoreRow], c: usize, device: Device) -> (Tensor, Tensor) {
    let b = rows.len();
    let (mut targets, mut mask) = (vec![0i64; b * c], vec![0f32; b * c]);
    for (i, r) in rows.iter().enumerate() {
        for (j, &t) in r.completion_ids.iter().enumerate() {
            targets[i * c + j] = t as i64;
            mask[i * c + j] = 1.0;
        }
    }
    let shape = [b as i64, c as i64];
    (
        Tensor::from_slice(&targets).view(shape).to_device(device),
        Tensor::from_slice(&mask).view(shape).to_device(device),
    )
}

/// Each row prompt then completion, right-padded to the longest: plain causal attention is
/// exact.
fn padded_layout(rows: &[&ScoreRow], device: Device) -> Layout {
    let b = rows.len();
    let l = rows.iter().map(|r| r.prompt_ids.len() + r.completion_ids.len()).max().unwrap_or(0);
    let c = rows.iter().map(|r| r.completion_ids.len()).max().unwrap_or(0);
    let (mut ids, mut gather) = (vec![0i64; b * l], vec![0i64; b * c]);
    for (i, r) in rows.iter().enumerate() {
        for (j, &t) in r.prompt_ids.iter().chain(&r.completion_ids).enumerate() {
            ids[i * l + j] = t as i64;
        }
        let p = r.prompt_ids.len();
        for j in 0..c {
            let at = p - 1 + j.min(r.completion_ids.len().saturating_sub(1));
            gather[i * c + j] = (i * l + at) as i64;
        }
    }
    let (targets, mask) = completion_targets(rows, c, device);
    let (b, l) = (b as i64, l as i64);
    Layout {
        ids: Tensor::from_slice(&ids).view([b, l]).to_device(device),
        positions: Tensor::arange(l, (Kind::Int64, device)).unsqueeze(0).expand([b, l], false),
        gather: Tensor::from_slice(&gather).to_device(device),
        targets,
        mask,
        inv_temperature: None,
        shared: None,
    }
}

/// Rows of a micro-batch grouped by a shared prompt prefix: a document's attempts share the
/// document even where the rest of their prompts differ (the format asked for).
struct PrefixGroups {
    /// The group of each row.
    group_of_row: Vec<usize>,
    /// Each group's first row, whose prompt holds the shared prefix.
    first: Vec<usize>,
    /// Each group's shared prefix length (a lone row's whole prompt).
    shared: Vec<usize>,
    members: Vec<usize>,
}

fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

impl PrefixGroups {
    /// Greedily, in row order: a row joins the group where it saves the most tokens (the
    /// group's prefix shrinks to what the row shares with it), or starts its own.
    fn of(rows: &[&ScoreRow]) -> PrefixGroups {
        let mut g = PrefixGroups {
            group_of_row: Vec::with_capacity(rows.len()),
            first: Vec::new(),
            shared: Vec::new(),
            members: Vec::new(),
        };
        for (i, r) in rows.iter().enumerate() {
            let best = (0..g.first.len())
                .map(|k| {
                    let own = &rows[g.first[k]].prompt_ids[..g.shared[k]];
                    let s = common_prefix(own, &r.prompt_ids);
                    // Tokens saved with the row in the group, less those saved without it.
                    let gain =
                        (g.members[k] * s) as i64 - ((g.members[k] - 1) * g.shared[k]) as i64;
                    (gain, s, k)
                })
                .max();
            match best {
                Some((gain, s, k)) if gain > 0 => {
                    g.shared[k] = s;
                    g.members[k] += 1;
                    g.group_of_row.push(k);
                }
                _ => {
                    g.group_of_row.push(g.first.len());
                    g.first.push(i);
                    g.shared.push(r.prompt_ids.len());
                    g.members.push(1);
                }
            }
        }
        g
    }

    fn any_shared(&self) -> bool {
        self.members.iter().any(|&m| m > 1)
    }

    /// The shared prefix length of row `i`'s group.
    fn prefix_of(&self, i: usize) -> usize {
        self.shared[self.group_of_row[i]]
    }
}

/// One packed sequence (see [`SharedPrefix`]): each group's shared prefix once, right-padded
/// to the longest; then every row's suffix — the rest of its prompt, then its completion —
/// right-padded to the longest, at the positions it has after the prefix. Completion token j
/// is predicted by the token before it: in the suffix, or the prefix's last token when the
/// whole prompt is shared and j = 0.
fn shared_layout(rows: &[&ScoreRow], groups: &PrefixGroups, device: Device) -> Layout {
    let (g, n) = (groups.first.len(), rows.len());
    let p = groups.shared.iter().copied().max().unwrap_or(0);
    let suffix =
        |i: usize| rows[i].prompt_ids.len() - groups.prefix_of(i) + rows[i].completion_ids.len();
    let u = (0..n).map(suffix).max().unwrap_or(0);
    let t = g * p + n * u;
    let (mut ids, mut positions, c) = (vec![0i64; t], vec![0i64; t], {
        rows.iter().map(|r| r.completion_ids.len()).max().unwrap_or(0)
    });
    let mut gather = vec![0i64; n * c];
    for k in 0..g {
        let prompt = &rows[groups.first[k]].prompt_ids[..groups.shared[k]];
        for j in 0..p {
            ids[k * p + j] = prompt.get(j).map_or(0, |&x| x as i64);
            positions[k * p + j] = j as i64;
        }
    }
    for (i, r) in rows.iter().enumerate() {
        let (k, s, len) = (groups.group_of_row[i], groups.prefix_of(i), r.completion_ids.len());
        let (prompt_len, base) = (r.prompt_ids.len(), g * p + i * u);
        let tokens: Vec<u32> = r.prompt_ids[s..].iter().chain(&r.completion_ids).copied().collect();
        for j in 0..u {
            ids[base + j] = tokens.get(j).map_or(0, |&x| x as i64);
            positions[base + j] = (s + j) as i64;
        }
        for j in 0..c {
            // Sequence position of the token that predicts completion token j.
            let at = prompt_len - 1 + j.min(len.saturating_sub(1));
            gather[i * c + j] = if at < s { k * p + at } else { base + at - s } as i64;
        }
    }
    let (targets, mask) = completion_targets(rows, c, device);
    let (g, n, p, u) = (g as i64, n as i64, p as i64, u as i64);
    let prefix_lens: Vec<i64> = (0..rows.len()).map(|i| groups.prefix_of(i) as i64).collect();
    let prefix_lens = Tensor::from_slice(&prefix_lens).to_device(device).view([n, 1, 1, 1]);
    let see_prefix = Tensor::arange(p, (Kind::Int64, device))
        .view([1, 1, 1, p])
        .lt_tensor(&prefix_lens)
        .expand([n, 1, u, p], false);
    let see_self = Tensor::ones([u, u], (Kind::Bool, device))
        .tril(0)
        .view([1, 1, u, u])
        .expand([n, 1, u, u], false);
    let group_of_row: Vec<i64> = groups.group_of_row.iter().map(|&k| k as i64).collect();
    Layout {
        ids: Tensor::from_slice(&ids).view([1, t as i64]).to_device(device),
        positions: Tensor::from_slice(&positions).view([1, t as i64]).to_device(device),
        gather: Tensor::from_slice(&gather).to_device(device),
        targets,
        mask,
        inv_temperature: None,
        shared: Some(SharedPrefix {
            groups: g,
            prefix_len: p,
            rows: n,
            suffix_len: u,
            group_of_row: Tensor::from_slice(&group_of_row).to_device(device),
            mask: Tensor::zeros([n, 1, u, p + u], (Kind::Float, device)).masked_fill(
                &Tensor::cat(&[see_prefix, see_self], 3).logical_not(),
                f64::NEG_INFINITY,
            ),
        }),
    }
}

/// The order in which rows share prompts best within micro-batches of neighbours: prompts in
/// token order, so rows with a common prefix (one prompt template, one document) are next to
/// each other, shorter completions first among equal prompts.
pub fn shared_prefix_order(a: &ScoreRow, b: &ScoreRow) -> std::cmp::Ordering {
    a.prompt_ids.cmp(&b.prompt_ids).then(a.completion_ids.len().cmp(&b.completion_ids.len()))
}

/// The micro-batches of `rows`: `micro_batch` neighbours at a time, as row indices.
fn micro_batches(n: usize, micro_batch: usize) -> Vec<Vec<usize>> {
    let mb = micro_batch.max(1);
    (0..n).step_by(mb).map(|s| (s..(s + mb).min(n)).collect()).collect()
}

/// The temperatures of rows `idx` (empty when all are at 1).
fn temperatures_of(temperatures: &[f64], idx: &[usize]) -> Vec<f64> {
    if temperatures.is_empty() {
        Vec::new()
    } else {
        idx.iter().map(|&i| temperatures[i]).collect()
    }
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
        completion_positions(&w.forward(&lay.ids, &lay.positions, lay.attn(), None), lay)
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
        let rows: Vec<&ScoreRow> = rows.iter().collect();
        let lay = Layout::new(&rows, temperatures, false, self.config().vocab_size, self.device())?;
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
        self.score_with(rows, temperatures, micro_batch, false)
    }

    /// [`Policy::score_at`], with each common prompt prefix of a micro-batch forwarded once
    /// when `shared_prefix` (see [`GradOptions::shared_prefix`]).
    pub fn score_with(
        &self,
        rows: &[ScoreRow],
        temperatures: &[f64],
        micro_batch: usize,
        shared_prefix: bool,
    ) -> Result<Vec<Vec<f32>>> {
        check_temperatures(rows.len(), temperatures)?;
        let mut out = Vec::with_capacity(rows.len());
        tch::no_grad(|| -> Result<()> {
            for idx in micro_batches(rows.len(), micro_batch) {
                let mb: Vec<&ScoreRow> = idx.iter().map(|&i| &rows[i]).collect();
                let temps = temperatures_of(temperatures, &idx);
                let lay = Layout::new(
                    &mb,
                    &temps,
                    shared_prefix,
                    self.config().vocab_size,
                    self.device(),
                )?
                .with_mask_in(self.attention_kind());
                let hidden = self.completion_hidden(&lay);
                let inv_t = lay.inv_temperature.as_ref();
                let lp = self.head_logprobs(&hidden, &lay.targets, inv_t).to_device(Device::Cpu);
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
        for idx in micro_batches(rows.len(), opts.micro_batch) {
            let chunk: Vec<&ScoreRow> = idx.iter().map(|&i| &rows[i]).collect();
            let temps = temperatures_of(temperatures, &idx);
            let (vocab, device) = (self.config().vocab_size, self.device());
            let lay = Layout::new(&chunk, &temps, opts.shared_prefix, vocab, device)?
                .with_mask_in(self.attention_kind());
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
        let hidden = w.forward(&lay.ids, &lay.positions, lay.attn(), Some(&mut saved));
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
            let y = layer.forward(&x, &cos, &sin, &mut lay.attn());
            (y * &g).sum(Kind::Float).backward();
            g = x.grad();
        }
        let w_embed = cast(master.embed_tokens(), kind);
        let e = Tensor::embedding(&w_embed, &lay.ids, -1, false, false);
        (e * g).sum(Kind::Float).backward();
    }
}

/// The hidden states (of [b, L, h] or [1, T, h]) that predict completion tokens: [b, C, h].
fn completion_positions(hidden: &Tensor, lay: &Layout) -> Tensor {
    let (b, c) = (lay.targets.size()[0], lay.targets.size()[1]);
    let hsize = hidden.size()[2];
    hidden.reshape([-1, hsize]).index_select(0, &lay.gather).view([b, c, hsize])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(p: &[u32], c: &[u32]) -> ScoreRow {
        ScoreRow { prompt_ids: p.to_vec(), completion_ids: c.to_vec() }
    }

    #[test]
    fn repeated_prompts_are_packed_once_and_distinct_ones_stay_padded() {
        let doc = [5, 6, 7, 8];
        let rows = [row(&doc, &[1, 2, 3]), row(&[9, 9], &[4]), row(&doc, &[5, 6])];
        let refs: Vec<&ScoreRow> = rows.iter().collect();
        let lay = Layout::new(&refs, &[], true, 100, Device::Cpu).unwrap();
        let sp = lay.shared.as_ref().expect("a repeated prompt is shared");
        // Two prompts padded to 4, three completions padded to 3: 2·4 + 3·3 tokens, not 3·7.
        assert_eq!((sp.groups, sp.prefix_len, sp.rows, sp.suffix_len), (2, 4, 3, 3));
        assert_eq!(lay.ids.size(), [1, 17]);
        let ids: Vec<i64> = Vec::try_from(lay.ids.view([-1])).unwrap();
        assert_eq!(ids, [5, 6, 7, 8, 9, 9, 0, 0, 1, 2, 3, 4, 0, 0, 5, 6, 0]);
        let pos: Vec<i64> = Vec::try_from(lay.positions.view([-1])).unwrap();
        assert_eq!(&pos[8..], [4, 5, 6, 2, 3, 4, 4, 5, 6]);
        // Completion token 0 from its prompt's last token, then from the completion itself.
        let gather: Vec<i64> = Vec::try_from(&lay.gather).unwrap();
        assert_eq!(gather, [3, 8, 9, 5, 5, 5, 3, 14, 14]);
        let group: Vec<i64> = Vec::try_from(&sp.group_of_row).unwrap();
        assert_eq!(group, [0, 1, 0]);
        // Row 1 (prompt of 2) sees 2 prompt keys, then its completion causally.
        let m: Vec<f32> = Vec::try_from(sp.mask.get(1).get(0).get(1)).unwrap();
        let inf = f32::NEG_INFINITY;
        assert_eq!(m, [0.0, 0.0, inf, inf, 0.0, 0.0, inf]);

        let distinct = [row(&doc, &[1]), row(&[9], &[2])];
        let refs: Vec<&ScoreRow> = distinct.iter().collect();
        assert!(Layout::new(&refs, &[], true, 100, Device::Cpu).unwrap().shared.is_none());
        let refs: Vec<&ScoreRow> = rows.iter().collect();
        assert!(Layout::new(&refs, &[], false, 100, Device::Cpu).unwrap().shared.is_none());

        // Tokens the body runs over, padding not counted: 4 + 2 prompt tokens and 6
        // completion tokens when shared; every row's 7 + 3 + 6 otherwise, or when the two rows
        // of `doc` fall in different micro-batches.
        assert_eq!(forwarded_tokens(&rows, 3, true), 12);
        assert_eq!(forwarded_tokens(&rows, 3, false), 16);
        assert_eq!(forwarded_tokens(&rows, 2, true), 16);
        assert_eq!(forwarded_tokens(&distinct, 2, true), 7);
    }

    #[test]
    fn prompts_with_a_common_prefix_share_it_and_keep_their_rest() {
        // Two prompts that start with the same 4 tokens (one document, two formats).
        let rows = [row(&[5, 6, 7, 8, 1], &[2]), row(&[5, 6, 7, 8, 3, 4], &[5, 6])];
        let refs: Vec<&ScoreRow> = rows.iter().collect();
        let lay = Layout::new(&refs, &[], true, 100, Device::Cpu).unwrap();
        let sp = lay.shared.as_ref().expect("a common prefix is shared");
        // One prefix of 4, suffixes [1, 2] and [3, 4, 5, 6] padded to 4: 4 + 2·4 tokens.
        assert_eq!((sp.groups, sp.prefix_len, sp.rows, sp.suffix_len), (1, 4, 2, 4));
        let ids: Vec<i64> = Vec::try_from(lay.ids.view([-1])).unwrap();
        assert_eq!(ids, [5, 6, 7, 8, 1, 2, 0, 0, 3, 4, 5, 6]);
        let pos: Vec<i64> = Vec::try_from(lay.positions.view([-1])).unwrap();
        assert_eq!(pos, [0, 1, 2, 3, 4, 5, 6, 7, 4, 5, 6, 7]);
        // Row 0's completion token from its own prompt's last token (suffix index 0); row 1's
        // tokens from suffix positions 1 and 2.
        let gather: Vec<i64> = Vec::try_from(&lay.gather).unwrap();
        assert_eq!(gather, [4, 4, 9, 10]);
        assert_eq!(forwarded_tokens(&rows, 2, true), 4 + 2 + 4);
        assert_eq!(forwarded_tokens(&rows, 2, false), 6 + 8);
        // A third row with the same 4-token start joins the group.
        let three = [rows[0].clone(), rows[1].clone(), row(&[5, 6, 7, 8, 9], &[1])];
        let refs: Vec<&ScoreRow> = three.iter().collect();
        let g = PrefixGroups::of(&refs);
        assert_eq!((g.group_of_row.clone(), g.shared.clone()), (vec![0, 0, 0], vec![4]));
    }
}
