//! The update loop: πθ_old (and π_ref) scored once, then `ppo_epochs` passes over the batch in
//! shuffled mini-batches, one AdamW step per mini-batch, gradients accumulated over
//! micro-batches. Free of files, so tests can drive several iterations in one process.
//!
//! When the update is a single step over the whole batch (the paper's setting: one epoch,
//! `mini_batch_size = 0`), πθ_old is the step's own forward pass, detached — the ratio is
//! exactly 1 either way, and the separate scoring pass (a third of the update's compute) is
//! skipped; the distance to the sampling log-probs is measured in that same pass.

use std::time::Instant;

use anyhow::{bail, Result};
use indicatif::ProgressBar;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use spice_dist::ProcessGroup;
use spice_lm::optim::AdamWConfig;
use spice_lm::tch::{Device, Tensor};
use spice_lm::{shared_prefix_order, AdamW, GradOptions, Policy, ScoreRow, TokenLogprobs};
use spice_schemas::{rows::UpdateMetricsRow, RunConfig};

use serde::Serialize;

use crate::data_parallel::{
    all_gather_parameters, all_reduce_max, all_reduce_sum, reduce_gradients, share,
};
use crate::input::TrainRow;
use crate::loss::{dr_grpo_loss, LossSettings};
use spice_schemas::vocab::{LossType, LrSchedulerType, Role};

/// The knobs of one iteration's update (from `run.toml`'s `[update]`, `[challenger]` and
/// `[reasoner]`).
#[derive(Debug, Clone, PartialEq)]
pub struct UpdateSettings {
    /// The objective (`update.loss_type`).
    pub loss_type: LossType,
    pub epsilon: f64,
    pub beta: f64,
    /// Clip the gradient norm to this (no clipping when ≤ 0).
    pub max_grad_norm: f64,
    pub ppo_epochs: u32,
    /// Sequences per optimizer step; 0 = the whole batch.
    pub mini_batch_size: usize,
    /// Sequences per forward/backward pass.
    pub micro_batch_size: usize,
    pub gradient_checkpointing: bool,
    /// Forward each common prompt prefix of a micro-batch once (`update.shared_prefix`).
    pub shared_prefix: bool,
    /// L of the Dr. GRPO constant L · N: the longest completion either role may generate, so
    /// both roles' tokens weigh the same.
    pub max_completion_length: usize,
    pub iteration: u32,
    /// Run seed; each epoch's shuffle is derived from it.
    pub seed: u64,
    /// The temperature each role sampled at: its rows are scored (πθ, πθ_old, π_ref) under
    /// softmax(logits / T), the distribution their tokens were drawn from.
    pub temperatures: RoleTemperatures,
}

/// The sampling temperature of each role (`challenger.temperature`, `reasoner.temperature`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RoleTemperatures {
    pub challenger: f64,
    pub reasoner: f64,
}

impl Default for RoleTemperatures {
    fn default() -> Self {
        RoleTemperatures { challenger: 1.0, reasoner: 1.0 }
    }
}

impl RoleTemperatures {
    pub fn of(&self, role: Role) -> f64 {
        match role {
            Role::Challenger => self.challenger,
            Role::Reasoner => self.reasoner,
        }
    }

    /// Both at 1 (the paper's setting), where scoring is the plain softmax.
    pub fn is_one(&self) -> bool {
        *self == RoleTemperatures::default()
    }

    /// The temperature of each of `rows`, in order.
    pub fn rows<'a>(&self, rows: impl IntoIterator<Item = &'a TrainRow>) -> Vec<f64> {
        rows.into_iter().map(|r| self.of(r.role)).collect()
    }
}

impl UpdateSettings {
    pub fn from_config(cfg: &RunConfig, iteration: u32, seed: u64) -> UpdateSettings {
        let u = &cfg.update;
        UpdateSettings {
            loss_type: u.loss_type,
            epsilon: u.epsilon,
            beta: u.beta,
            max_grad_norm: u.max_grad_norm,
            ppo_epochs: u.ppo_epochs,
            mini_batch_size: u.mini_batch_size as usize,
            micro_batch_size: u.micro_batch_size.max(1) as usize,
            gradient_checkpointing: u.gradient_checkpointing,
            shared_prefix: u.shared_prefix,
            max_completion_length: cfg
                .challenger
                .max_completion_length
                .max(cfg.reasoner.max_completion_length)
                as usize,
            iteration,
            seed,
            temperatures: RoleTemperatures {
                challenger: cfg.challenger.temperature,
                reasoner: cfg.reasoner.temperature,
            },
        }
    }
}

/// AdamW settings from `[update]`.
pub fn adamw_config(cfg: &RunConfig) -> AdamWConfig {
    let u = &cfg.update;
    AdamWConfig {
        // `constant` (the paper): the same rate at every iteration.
        lr: match u.lr_scheduler_type {
            LrSchedulerType::Constant => u.learning_rate,
        },
        beta1: u.adam_beta1,
        beta2: u.adam_beta2,
        eps: u.adam_epsilon,
        weight_decay: u.weight_decay,
    }
}

/// How far the recomputed πθ_old is from the log-probs recorded at sampling: non-zero values
/// come from kernel differences between generation and training (bf16, batch shapes) — or
/// from rows that another policy sampled.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Mismatch {
    pub mean_abs: f64,
    pub max_abs: f64,
    pub tokens: u64,
}

/// Running sums of |current − sampling| over completion tokens, for a [`Mismatch`].
#[derive(Debug, Clone, Copy, Default)]
struct MismatchSum {
    sum: f64,
    max: f64,
    tokens: u64,
}

impl MismatchSum {
    /// One row: its current log-probs against those recorded at sampling.
    fn add(&mut self, current: &[f32], sampling: &[f32]) {
        for (a, b) in current.iter().zip(sampling) {
            let d = (*a as f64 - *b as f64).abs();
            self.sum += d;
            self.max = self.max.max(d);
            self.tokens += 1;
        }
    }

    fn finish(&self) -> Mismatch {
        let n = self.tokens;
        Mismatch {
            mean_abs: if n > 0 { self.sum / n as f64 } else { 0.0 },
            max_abs: self.max,
            tokens: n,
        }
    }
}

/// How the rows of a batch are ordered into micro-batches of neighbours: shortest first, or
/// with a shared prefix in prompt order, so rows that start alike are together.
fn order_rows(rows: &[TrainRow], order: &mut [usize], shared_prefix: bool) {
    if shared_prefix {
        order.sort_by(|&a, &b| shared_prefix_order(&rows[a].tokens, &rows[b].tokens));
    } else {
        order.sort_by_key(|&i| rows[i].total_len());
    }
}

/// Score every row's completion with `policy` (no gradients) at its role's temperature,
/// in micro-batches ordered by [`order_rows`], and hand each row its log-probs.
fn score_rows(
    policy: &Policy,
    rows: &mut [TrainRow],
    opts: ScoreOptions,
    bar: Option<&ProgressBar>,
    mut put: impl FnMut(&mut TrainRow, Vec<f32>),
) -> Result<()> {
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order_rows(rows, &mut order, opts.shared_prefix);
    let micro_batch = opts.micro_batch.max(1);
    // With several ranks each scores its share and the log-probs are then exchanged.
    let mine = match opts.dist {
        Some(g) => &order[share(order.len(), micro_batch, g.rank(), g.world())],
        None => &order[..],
    };
    let mut scored_rows = Vec::with_capacity(mine.len());
    for chunk in mine.chunks(micro_batch) {
        let batch: Vec<ScoreRow> = chunk.iter().map(|&i| rows[i].tokens.clone()).collect();
        let temps = opts.temperatures.rows(chunk.iter().map(|&i| &rows[i]));
        let scored = policy.score_with(&batch, &temps, micro_batch, opts.shared_prefix)?;
        scored_rows.extend(chunk.iter().copied().zip(scored));
        if let Some(b) = bar {
            b.inc(chunk.len() as u64);
        }
    }
    if let Some(g) = opts.dist {
        scored_rows = exchange_logprobs(g, rows, scored_rows)?;
    }
    for (i, lp) in scored_rows {
        put(&mut rows[i], lp);
    }
    Ok(())
}

/// Every rank's scored rows for every rank: each fills its rows of a zero [rows, C] table and
/// the tables are summed (each entry has one writer, so the sum is exact).
fn exchange_logprobs(
    group: &ProcessGroup,
    rows: &[TrainRow],
    mine: Vec<(usize, Vec<f32>)>,
) -> Result<Vec<(usize, Vec<f32>)>> {
    let c = rows.iter().map(|r| r.completion_len()).max().unwrap_or(0).max(1);
    let mut table = vec![0f32; rows.len() * c];
    for (i, lp) in &mine {
        table[i * c..i * c + lp.len()].copy_from_slice(lp);
    }
    let t = Tensor::from_slice(&table);
    group.all_reduce(&t, spice_dist::ReduceOp::Sum)?;
    let table = Vec::<f32>::try_from(&t)?;
    Ok(rows
        .iter()
        .enumerate()
        .map(|(i, r)| (i, table[i * c..i * c + r.completion_len()].to_vec()))
        .collect())
}

/// How [`score_old`] and [`score_reference`] batch their rows, and the ranks that share the
/// work (none: this process scores every row).
#[derive(Clone, Copy)]
pub struct ScoreOptions<'a> {
    /// Each role's sampling temperature, which its rows are scored at.
    pub temperatures: RoleTemperatures,
    pub micro_batch: usize,
    pub shared_prefix: bool,
    pub dist: Option<&'a ProcessGroup>,
}

impl UpdateSettings {
    /// The scoring options of these settings, on one process.
    pub fn score_options(&self) -> ScoreOptions<'static> {
        ScoreOptions {
            temperatures: self.temperatures,
            micro_batch: self.micro_batch_size,
            shared_prefix: self.shared_prefix,
            dist: None,
        }
    }
}

/// Recompute πθ_old with the iteration's policy, as verl does, and measure its distance to
/// the sampling log-probs.
pub fn score_old(
    policy: &Policy,
    rows: &mut [TrainRow],
    opts: ScoreOptions,
    bar: Option<&ProgressBar>,
) -> Result<Mismatch> {
    let mut mismatch = MismatchSum::default();
    score_rows(policy, rows, opts, bar, |row, lp| {
        mismatch.add(&lp, &row.sampling_logprobs);
        row.old_logprobs = lp;
    })?;
    Ok(mismatch.finish())
}

/// Score π_ref (the run's initial model) for the KL term, at the same temperatures.
pub fn score_reference(
    reference: &Policy,
    rows: &mut [TrainRow],
    opts: ScoreOptions,
    bar: Option<&ProgressBar>,
) -> Result<()> {
    score_rows(reference, rows, opts, bar, |row, lp| row.ref_logprobs = Some(lp))
}

/// The mini-batches of one epoch: a seeded shuffle of the rows, cut into `mini_batch_size`
/// pieces (the last may be smaller). Within a mini-batch rows are ordered by [`order_rows`]
/// so micro-batches waste little padding (and share prompts); the order does not change the
/// summed loss.
pub fn mini_batches(rows: &[TrainRow], s: &UpdateSettings, epoch: u32) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..rows.len()).collect();
    let seed = spice_stage::derive_seed(s.seed, s.iteration, "update", epoch as u64);
    order.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed));
    let size = if s.mini_batch_size == 0 { rows.len().max(1) } else { s.mini_batch_size };
    order
        .chunks(size)
        .map(|c| {
            let mut c = c.to_vec();
            order_rows(rows, &mut c, s.shared_prefix);
            c
        })
        .collect()
}

/// [b, C] tensor of per-row values padded with 0 to C.
fn padded(values: &[&[f32]], c: usize, device: Device) -> Tensor {
    let mut flat = vec![0f32; values.len() * c];
    for (i, v) in values.iter().enumerate() {
        let n = v.len().min(c);
        flat[i * c..i * c + n].copy_from_slice(&v[..n]);
    }
    Tensor::from_slice(&flat).view([values.len() as i64, c as i64]).to_device(device)
}

/// Position of this step in the iteration, for its metrics row.
#[derive(Debug, Clone, Copy)]
pub struct StepIndex {
    pub epoch: u32,
    pub step: u32,
}

/// Where the ratio's πθ_old comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OldLogprobs {
    /// Each row's `old_logprobs`, scored by [`score_old`] before the first step.
    Scored,
    /// The step's own forward pass, detached: exact when the policy has not moved since
    /// the rows were assigned πθ_old, i.e. a single step over the batch (one epoch, one
    /// mini-batch), and it saves a forward pass over the whole batch.
    Current,
}

/// One optimizer step's metrics, and how far the policy it started from is from the
/// sampling log-probs of its rows.
#[derive(Debug, Clone)]
pub struct Step {
    pub metrics: UpdateMetricsRow,
    pub sampling_mismatch: Mismatch,
    /// Prompt and completion tokens of the step's sequences, and of them those the body ran
    /// over (each shared prompt once per micro-batch; see `spice_lm::forwarded_tokens`).
    pub sequence_tokens: u64,
    pub forwarded_tokens: u64,
}

/// What one optimizer step works on: the rows `members` of `rows`, with the update's
/// settings, where πθ_old comes from, and the step's place in the iteration.
#[derive(Debug, Clone, Copy)]
pub struct StepInput<'a> {
    pub rows: &'a [TrainRow],
    pub members: &'a [usize],
    pub settings: &'a UpdateSettings,
    pub old_from: OldLogprobs,
    pub at: StepIndex,
    /// The ranks that share the step (none: this process runs all of it).
    pub dist: Option<&'a ProcessGroup>,
}

impl StepInput<'_> {
    /// Row `k` of the step's batch.
    fn row(&self, k: usize) -> &TrainRow {
        &self.rows[self.members[k]]
    }

    /// Every row has the log-probs the step's loss reads; fails before any compute if not.
    fn check_rows(&self) -> Result<()> {
        for &i in self.members {
            let r = &self.rows[i];
            if self.old_from == OldLogprobs::Scored && r.old_logprobs.len() != r.completion_len() {
                bail!("{}: no πθ_old log-probs (score the rows before the update)", r.origin);
            }
            if self.settings.beta > 0.0
                && r.ref_logprobs.as_ref().is_none_or(|v| v.len() != r.completion_len())
            {
                bail!("{}: beta > 0 but the row has no reference log-probs", r.origin);
            }
        }
        Ok(())
    }

    /// The loss settings of this step: the Dr. GRPO constant L · N counts its rows.
    fn loss_settings(&self) -> LossSettings {
        let s = self.settings;
        LossSettings {
            epsilon: s.epsilon,
            beta: s.beta,
            normaliser: (s.max_completion_length * self.members.len()) as f64,
        }
    }
}

/// One optimizer step: zero the gradients, accumulate the Dr. GRPO loss over micro-batches
/// (forward and backward), clip, step.
pub fn train_step(
    policy: &Policy,
    opt: &mut AdamW,
    input: &StepInput<'_>,
    bar: Option<&ProgressBar>,
) -> Result<Step> {
    let t0 = Instant::now();
    let device = policy.device();
    let s = input.settings;
    // The Dr. GRPO constant counts the whole step's rows, on every rank.
    let loss_settings = input.loss_settings();
    input.check_rows()?;
    let full = input;
    let local_members = match input.dist {
        Some(g) => {
            &input.members[share(input.members.len(), s.micro_batch_size, g.rank(), g.world())]
        }
        None => input.members,
    };
    let local = StepInput { members: local_members, ..*input };
    let input = &local;
    let batch: Vec<ScoreRow> =
        input.members.iter().map(|&i| input.rows[i].tokens.clone()).collect();
    let temps = s.temperatures.rows(input.members.iter().map(|&i| &input.rows[i]));
    let mut sums = StepSums::default();

    opt.zero_grad();
    let grad = GradOptions {
        micro_batch: s.micro_batch_size,
        checkpointing: s.gradient_checkpointing,
        shared_prefix: s.shared_prefix,
    };
    let loss = policy.accumulate_gradients_at(&batch, &temps, grad, &mut |idx, lp| {
        let loss = micro_batch_loss(input, &loss_settings, idx, lp, device, &mut sums)?;
        if let Some(b) = bar {
            b.inc(idx.len() as u64);
        }
        Ok(loss)
    })?;
    let sequence_tokens: usize =
        batch.iter().map(|r| r.prompt_ids.len() + r.completion_ids.len()).sum();
    let forwarded = spice_lm::forwarded_tokens(&batch, s.micro_batch_size, s.shared_prefix);
    let mut totals = [loss, sequence_tokens as f64, forwarded as f64];
    if let Some(g) = input.dist {
        reduce_gradients(g, opt)?;
        sums.all_reduce(g)?;
        all_reduce_sum(g, &mut totals)?;
    }
    let [loss, sequence_tokens, forwarded] = totals;
    let max_norm = if s.max_grad_norm > 0.0 { s.max_grad_norm } else { f64::INFINITY };
    let grad_norm = match input.dist {
        // A sharded optimizer sees its own elements' gradients: the norm sums every rank's.
        Some(g) if opt.shard().is_some() => opt.clip_grad_norm_with(max_norm, &mut |sq| {
            let mut v = [sq];
            all_reduce_sum(g, &mut v)?;
            Ok(v[0])
        })?,
        _ => opt.clip_grad_norm(max_norm),
    };
    opt.step();
    if let Some(g) = input.dist {
        all_gather_parameters(g, opt)?;
    }
    let outcome = Outcome {
        loss,
        grad_norm,
        learning_rate: opt.config.lr,
        seconds: t0.elapsed().as_secs_f64(),
    };
    let metrics = step_metrics(full, &loss_settings, &sums, &outcome);
    Ok(Step {
        metrics,
        sampling_mismatch: sums.mismatch.finish(),
        sequence_tokens: sequence_tokens as u64,
        forwarded_tokens: forwarded as u64,
    })
}

/// What the loss terms of a step's micro-batches add up to.
#[derive(Debug, Clone, Copy, Default)]
struct StepSums {
    pg: f64,
    kl: f64,
    clipped: f64,
    tokens: f64,
    /// Distance of the current log-probs (the policy the step starts from) to the sampling
    /// ones.
    mismatch: MismatchSum,
}

impl StepSums {
    /// The whole step's sums from every rank's share.
    fn all_reduce(&mut self, group: &ProcessGroup) -> Result<()> {
        let m = &mut self.mismatch;
        let mut v = [self.pg, self.kl, self.clipped, self.tokens, m.sum, m.tokens as f64];
        all_reduce_sum(group, &mut v)?;
        [self.pg, self.kl, self.clipped, self.tokens, m.sum] = [v[0], v[1], v[2], v[3], v[4]];
        m.tokens = v[5] as u64;
        m.max = all_reduce_max(group, m.max)?;
        Ok(())
    }
}

/// The step's result as the optimizer saw it.
struct Outcome {
    loss: f64,
    grad_norm: f64,
    learning_rate: f64,
    seconds: f64,
}

/// The loss of one micro-batch, the rows `idx` of the step's batch, given their current
/// log-probs `lp` [b, C]; its sums are added to `sums`.
fn micro_batch_loss(
    input: &StepInput<'_>,
    loss_settings: &LossSettings,
    idx: &[usize],
    lp: &TokenLogprobs,
    device: Device,
    sums: &mut StepSums,
) -> Result<Tensor> {
    let c = lp.logprobs.size()[1] as usize;
    let mb: Vec<&TrainRow> = idx.iter().map(|&k| input.row(k)).collect();
    // Current log-probs on the host, for the distance to the sampling ones.
    let current: Vec<Vec<f32>> = Vec::try_from(lp.logprobs.detach().to_device(Device::Cpu))?;
    for (r, cur) in mb.iter().zip(&current) {
        sums.mismatch.add(cur, &r.sampling_logprobs);
    }
    let old = match input.old_from {
        OldLogprobs::Scored => {
            let old: Vec<&[f32]> = mb.iter().map(|r| r.old_logprobs.as_slice()).collect();
            padded(&old, c, device)
        }
        OldLogprobs::Current => lp.logprobs.detach(),
    };
    let adv: Vec<f32> = mb.iter().map(|r| r.advantage).collect();
    let adv = Tensor::from_slice(&adv).unsqueeze(1).to_device(device); // [b, 1]
    let reference = (input.settings.beta > 0.0).then(|| {
        let r: Vec<&[f32]> = mb.iter().map(|r| r.ref_logprobs.as_deref().unwrap_or(&[])).collect();
        padded(&r, c, device)
    });
    let parts = match input.settings.loss_type {
        LossType::DrGrpo => dr_grpo_loss(lp, &old, &adv, reference.as_ref(), loss_settings),
    };
    sums.pg += parts.pg_sum;
    sums.kl += parts.kl_sum;
    sums.clipped += parts.clipped;
    sums.tokens += parts.tokens;
    Ok(parts.loss)
}

/// The step's metrics row.
fn step_metrics(
    input: &StepInput<'_>,
    loss_settings: &LossSettings,
    sums: &StepSums,
    out: &Outcome,
) -> UpdateMetricsRow {
    let (c_n, c_reward, c_adv) = role_stats(input, Role::Challenger);
    let (r_n, r_reward, r_adv) = role_stats(input, Role::Reasoner);
    let tokens = sums.tokens;
    UpdateMetricsRow {
        iteration: input.settings.iteration,
        epoch: input.at.epoch,
        step: input.at.step,
        loss: out.loss,
        pg_loss: sums.pg / loss_settings.normaliser,
        // The KL estimate per token, as TRL logs it; its share of `loss` is β·Σkl / (L·N).
        kl: if tokens > 0.0 { sums.kl / tokens } else { 0.0 },
        grad_norm: out.grad_norm,
        clip_fraction: if tokens > 0.0 { sums.clipped / tokens } else { 0.0 },
        learning_rate: out.learning_rate,
        sequences: input.members.len() as u32,
        tokens: tokens as u64,
        challenger_sequences: c_n,
        reasoner_sequences: r_n,
        challenger_mean_reward: c_reward,
        challenger_mean_advantage: c_adv,
        reasoner_mean_reward: r_reward,
        reasoner_mean_advantage: r_adv,
        seconds: out.seconds,
        tokens_per_second: if out.seconds > 0.0 { tokens / out.seconds } else { 0.0 },
        peak_rss_mib: peak_rss_mib(),
    }
}

/// Rows of `role` in the step: how many, their mean reward and mean advantage.
fn role_stats(input: &StepInput<'_>, role: Role) -> (u32, f64, f64) {
    let of: Vec<&TrainRow> =
        input.members.iter().map(|&i| &input.rows[i]).filter(|r| r.role == role).collect();
    let n = of.len();
    let mean = |f: fn(&TrainRow) -> f32| {
        if n == 0 {
            0.0
        } else {
            of.iter().map(|r| f(r) as f64).sum::<f64>() / n as f64
        }
    };
    (n as u32, mean(|r| r.reward), mean(|r| r.advantage))
}

/// Whether the whole update is one optimizer step over the whole batch, so πθ_old is the
/// policy of that step's own forward pass ([`OldLogprobs::Current`]).
pub fn single_step(rows: usize, s: &UpdateSettings) -> bool {
    s.ppo_epochs == 1 && (s.mini_batch_size == 0 || s.mini_batch_size >= rows)
}

/// Every epoch and mini-batch of one iteration. Unless the update is a
/// [`single_step`], `rows` must have their πθ_old log-probs ([`score_old`]); with β > 0, their
/// π_ref log-probs ([`score_reference`]).
pub fn run_epochs(
    policy: &Policy,
    opt: &mut AdamW,
    rows: &[TrainRow],
    s: &UpdateSettings,
    dist: Option<&ProcessGroup>,
    bar: Option<&ProgressBar>,
) -> Result<Vec<Step>> {
    let mut steps = Vec::new();
    if rows.is_empty() {
        return Ok(steps);
    }
    let all_scored = rows.iter().all(|r| r.old_logprobs.len() == r.completion_len());
    let old_from = if single_step(rows.len(), s) && !all_scored {
        OldLogprobs::Current
    } else {
        OldLogprobs::Scored
    };
    let mut step = 0;
    for epoch in 0..s.ppo_epochs {
        for members in mini_batches(rows, s, epoch) {
            let input = StepInput {
                rows,
                members: &members,
                settings: s,
                old_from,
                at: StepIndex { epoch, step },
                dist,
            };
            let out = train_step(policy, opt, &input, bar)?;
            let m = &out.metrics;
            tracing::debug!(
                epoch,
                step,
                loss = m.loss,
                grad_norm = m.grad_norm,
                clip_fraction = m.clip_fraction,
                "optimizer step"
            );
            steps.push(out);
            step += 1;
        }
    }
    Ok(steps)
}

/// Peak resident memory of this process so far, in MiB (0 where the OS does not say).
pub fn peak_rss_mib() -> f64 {
    spice_lm::bench::peak_rss().map(|b| b as f64 / (1024.0 * 1024.0)).unwrap_or(0.0)
}
