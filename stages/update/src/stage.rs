//! The `spice-update` stage: `iter-N/scored/` and the iteration's policy in, `iter-N/update/`
//! (one metrics row per optimizer step) and `iter-N/checkpoint/` (the next policy, with the
//! optimizer state) out. Both folders commit only after the work is complete; the update's
//! manifest is the last thing written.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde::Serialize;
use serde_json::{json, Map, Value};
use spice_lm::optim::{META_FILE, STATE_FILE};
use spice_lm::{AdamW, Device, Kind, Policy};
use spice_schemas::vocab::{ChallengerTraining, Role};
use spice_schemas::{
    committed_files,
    config::UpdateSection,
    rows::{ScoredRow, UpdateMetricsRow},
    Manifest, ShardRow, ShardSpec, ShardWriter, StageOutput, Status,
};
use spice_stage::StageCtx;

use crate::input::{check_vocab, read_scored, TrainRow};
use crate::save::{save_checkpoint, SavePoint};
use crate::train::{
    adamw_config, peak_rss_mib, run_epochs, score_old, score_reference, single_step, Mismatch,
    UpdateSettings,
};

/// Stage name in the manifests.
pub const STAGE: &str = "update";

/// Flags of `spice-update` beyond the common ones.
#[derive(Debug, Clone, Default)]
pub struct UpdateOptions {
    /// Compute dtype (`bf16`, `f32`); default `run.dtype`.
    pub dtype: Option<String>,
}

/// What a run of the stage did.
#[derive(Debug)]
pub enum Outcome {
    /// Both folders were already committed with the same inputs and config.
    AlreadyDone,
    /// The update ran; the manifest of `update/`.
    Updated(Box<Manifest>),
}

/// Everything the result depends on besides the inputs' content and the seed.
#[derive(Serialize)]
struct ConfigRecord<'a> {
    update: &'a UpdateSection,
    challenger_training: ChallengerTraining,
    max_completion_length: usize,
    dtype: &'a str,
    reference: Option<&'a Path>,
}

pub fn run(ctx: &StageCtx, opts: &UpdateOptions) -> Result<Outcome> {
    run_with(ctx, opts, &mut |_| Ok(()))
}

/// [`run`], with `interrupt` called at each point of the checkpoint save (tests use it to
/// simulate a kill there).
pub fn run_with(
    ctx: &StageCtx,
    opts: &UpdateOptions,
    interrupt: &mut dyn FnMut(SavePoint) -> Result<()>,
) -> Result<Outcome> {
    let t_start = Instant::now();
    if ctx.shard != ShardSpec::WHOLE {
        bail!(
            "spice-update is one optimizer over the whole batch and is not split into parts: \
             run it with --shard 0/1 (got {})",
            ctx.shard
        );
    }
    let cfg = &ctx.cfg;
    let scored = ctx.folder(ScoredRow::FOLDER);
    // Refuse an unfinished folder before digesting anything, with the reason.
    committed_files(&scored, "spice-score")?;
    let policy_dir = ctx.policy_dir()?;
    let settings = UpdateSettings::from_config(cfg, ctx.iter, ctx.seed);
    let dtype = opts.dtype.clone().unwrap_or_else(|| cfg.run.dtype.clone());
    let kind = spice_lm::parse_dtype(&dtype)?;
    let train_challenger = cfg.challenger.training == ChallengerTraining::SelfPlay;
    let reference = (settings.beta > 0.0).then(|| cfg.run.model.clone());
    let record = ConfigRecord {
        update: &cfg.update,
        challenger_training: cfg.challenger.training,
        max_completion_length: settings.max_completion_length,
        dtype: &dtype,
        reference: reference.as_deref(),
    };

    let output = |dir: PathBuf| -> Result<StageOutput> {
        let mut out = StageOutput::new(&dir, STAGE, ShardSpec::WHOLE)
            .input("scored", &scored)?
            .input("policy", &policy_dir)?
            .config(&record)
            .seed(ctx.seed)
            .iteration(ctx.iter);
        if let Some(r) = &reference {
            out = out.input("reference", r)?;
        }
        Ok(out)
    };
    let out_update =
        output(ctx.folder(UpdateMetricsRow::FOLDER))?.schema(UpdateMetricsRow::schema_id());
    let out_ckpt = output(ctx.layout.checkpoint(ctx.iter))?;
    if !ctx.force
        && matches!(out_update.status()?, Status::Done(_))
        && matches!(out_ckpt.status()?, Status::Done(_))
    {
        tracing::info!(
            iteration = ctx.iter,
            "update and checkpoint are already done (--force redoes them)"
        );
        return Ok(Outcome::AlreadyDone);
    }

    // Everything that can reject the input happens before the old manifests are removed, so
    // bad input never takes a finished update away.
    let selection = read_scored(&scored, ctx.iter, train_challenger)?;
    let mut rows = selection.rows;
    let device = spice_lm::parse_device(&ctx.device)?;
    let label = spice_lm::device_label(device);
    let (out_update, out_ckpt) = (out_update.device(&label), out_ckpt.device(&label));
    let t_load = Instant::now();
    let policy = Policy::load(&policy_dir, device, kind)
        .with_context(|| format!("loading the policy {}", policy_dir.display()))?;
    check_vocab(&rows, policy.config().vocab_size)?;
    let mut opt = AdamW::new(policy.var_store(), adamw_config(cfg));
    let resumed = load_optimizer(&mut opt, &policy_dir, ctx.iter)?;
    tracing::info!(
        policy = %policy_dir.display(),
        device = %label,
        compute = ?policy.compute_kind(),
        sequences = rows.len(),
        frozen_challenger_rows = selection.frozen_skipped,
        optimizer = if resumed { "resumed" } else { "fresh" },
        seconds = t_load.elapsed().as_secs_f64(),
        "update: policy loaded"
    );
    // Both folders read as unfinished from here until their manifests are written.
    out_update.begin()?;
    out_ckpt.begin()?;

    let micro = settings.micro_batch_size;
    let single = single_step(rows.len(), &settings);
    let (mismatch, score_seconds, reference_seconds) =
        score_old_and_reference(&policy, &mut rows, reference.as_deref(), single, micro, kind)?;

    let t_train = Instant::now();
    let total = rows.len() as u64 * settings.ppo_epochs as u64;
    let bar = spice_stage::progress(total, "update", "sequences");
    let run = run_epochs(&policy, &mut opt, &rows, &settings, Some(&bar))?;
    bar.finish();
    let train_seconds = t_train.elapsed().as_secs_f64();
    // A single step measured πθ_old against the sampling log-probs in its own forward pass.
    let mismatch =
        mismatch.or_else(|| run.first().map(|s| s.sampling_mismatch)).unwrap_or_default();
    tracing::info!(
        mean_abs = mismatch.mean_abs,
        max_abs = mismatch.max_abs,
        "|πθ_old − sampling| log-prob difference"
    );
    let steps: Vec<UpdateMetricsRow> = run.into_iter().map(|s| s.metrics).collect();

    let mut writer = ShardWriter::<UpdateMetricsRow>::create(out_update.part_path())?;
    writer.write_all(steps.iter().cloned())?;
    writer.finish()?;

    let t_save = Instant::now();
    let ckpt_metrics = Map::from_iter([
        ("optimizer_step".to_string(), json!(opt.step)),
        ("optimizer_resumed".to_string(), json!(resumed)),
        ("trained_sequences".to_string(), json!(rows.len())),
        ("steps".to_string(), json!(steps.len())),
    ]);
    save_checkpoint(&policy, &opt, out_ckpt, ckpt_metrics, interrupt)?;
    let save_seconds = t_save.elapsed().as_secs_f64();

    let timings = Timings {
        score: score_seconds,
        reference: reference_seconds,
        train: train_seconds,
        save: save_seconds,
        total: t_start.elapsed().as_secs_f64(),
    };
    let report = UpdateReport {
        steps: &steps,
        rows: &rows,
        selection: (selection.read, selection.frozen_skipped),
        opt: &opt,
        resumed,
        mismatch,
        single,
        timings,
        device,
        compute: policy.compute_kind(),
    };
    let metrics = report.metrics();
    let manifest = out_update.commit(metrics)?;
    tracing::info!(
        steps = steps.len(),
        sequences = rows.len(),
        tokens = report.tokens(),
        mean_loss = report.mean(|s| s.loss),
        seconds = t_start.elapsed().as_secs_f64(),
        "update done"
    );
    Ok(Outcome::Updated(Box::new(manifest)))
}

/// πθ_old for every row, unless a single step measures it in its own forward pass, and π_ref
/// (the run's initial model) when β > 0. Returns the πθ_old mismatch when it was scored here,
/// and the seconds each took.
fn score_old_and_reference(
    policy: &Policy,
    rows: &mut [TrainRow],
    reference: Option<&Path>,
    single: bool,
    micro: usize,
    kind: Kind,
) -> Result<(Option<Mismatch>, f64, f64)> {
    let t_score = Instant::now();
    let mut mismatch = None;
    if !single {
        let bar = spice_stage::progress(rows.len() as u64, "scoring πθ_old", "sequences");
        mismatch = Some(score_old(policy, rows, micro, Some(&bar))?);
        bar.finish();
    }
    let score_seconds = t_score.elapsed().as_secs_f64();
    let t_ref = Instant::now();
    if let Some(r) = reference {
        let ref_policy = Policy::load(r, policy.device(), kind)
            .with_context(|| format!("loading the reference model {}", r.display()))?;
        let bar = spice_stage::progress(rows.len() as u64, "scoring π_ref", "sequences");
        score_reference(&ref_policy, rows, micro, Some(&bar))?;
        bar.finish();
    }
    Ok((mismatch, score_seconds, t_ref.elapsed().as_secs_f64()))
}

/// Wall time of each phase of the update, in seconds.
struct Timings {
    score: f64,
    reference: f64,
    train: f64,
    save: f64,
    total: f64,
}

/// What one update did, for its manifest.
struct UpdateReport<'a> {
    steps: &'a [UpdateMetricsRow],
    rows: &'a [TrainRow],
    /// Rows read from `scored/`, and Challenger rows left out because the Challenger is frozen.
    selection: (usize, usize),
    opt: &'a AdamW,
    resumed: bool,
    mismatch: Mismatch,
    /// Whether πθ_old came from the step's own forward pass.
    single: bool,
    timings: Timings,
    device: Device,
    compute: Kind,
}

impl UpdateReport<'_> {
    fn tokens(&self) -> u64 {
        self.steps.iter().map(|s| s.tokens).sum()
    }

    fn mean(&self, f: fn(&UpdateMetricsRow) -> f64) -> f64 {
        self.steps.iter().map(f).sum::<f64>() / self.steps.len().max(1) as f64
    }

    fn metrics(&self) -> Map<String, Value> {
        let (steps, t) = (self.steps, &self.timings);
        let tokens = self.tokens();
        let count = |role| self.rows.iter().filter(|r| r.role == role).count();
        let old = if self.single { "step forward pass" } else { "scored before the first step" };
        let tokens_per_second = if t.train > 0.0 { tokens as f64 / t.train } else { 0.0 };
        [
            ("steps", json!(steps.len())),
            ("rows_read", json!(self.selection.0)),
            ("sequences", json!(self.rows.len())),
            ("challenger_sequences", json!(count(Role::Challenger))),
            ("reasoner_sequences", json!(count(Role::Reasoner))),
            ("frozen_challenger_rows_skipped", json!(self.selection.1)),
            ("tokens", json!(tokens)),
            ("mean_loss", json!(self.mean(|s| s.loss))),
            ("mean_pg_loss", json!(self.mean(|s| s.pg_loss))),
            ("mean_kl", json!(self.mean(|s| s.kl))),
            ("mean_clip_fraction", json!(self.mean(|s| s.clip_fraction))),
            ("final_grad_norm", json!(steps.last().map(|s| s.grad_norm).unwrap_or(0.0))),
            ("learning_rate", json!(self.opt.config.lr)),
            ("optimizer_step", json!(self.opt.step)),
            ("optimizer_resumed", json!(self.resumed)),
            ("logprob_mismatch_mean_abs", json!(self.mismatch.mean_abs)),
            ("logprob_mismatch_max_abs", json!(self.mismatch.max_abs)),
            ("old_logprobs", json!(old)),
            ("score_seconds", json!(t.score)),
            ("reference_seconds", json!(t.reference)),
            ("train_seconds", json!(t.train)),
            ("save_seconds", json!(t.save)),
            ("seconds", json!(t.total)),
            ("tokens_per_second", json!(tokens_per_second)),
            ("peak_rss_mib", json!(peak_rss_mib())),
            ("device", json!(format!("{:?}", self.device))),
            ("compute_dtype", json!(format!("{:?}", self.compute))),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }
}

/// Restore AdamW's moments from the previous iteration's checkpoint. Iteration 0 (the
/// initial model) starts fresh; so does a later one whose policy folder has no optimizer
/// state (a checkpoint written by something else), with a warning. Returns whether it loaded.
fn load_optimizer(opt: &mut AdamW, policy_dir: &Path, iteration: u32) -> Result<bool> {
    if iteration == 0 {
        return Ok(false);
    }
    if !policy_dir.join(STATE_FILE).is_file() || !policy_dir.join(META_FILE).is_file() {
        tracing::warn!(
            "{} has no optimizer state ({STATE_FILE}, {META_FILE}): AdamW starts with fresh moments",
            policy_dir.display()
        );
        return Ok(false);
    }
    // The run's settings win over the saved ones (they are the same unless run.toml changed).
    opt.load(policy_dir, true)
        .with_context(|| format!("restoring the optimizer state of {}", policy_dir.display()))?;
    Ok(true)
}
