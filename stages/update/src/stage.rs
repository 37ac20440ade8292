//! The `spice-update` stage: `iter-N/scored/` and the iteration's policy in, `iter-N/update/`
//! (one metrics row per optimizer step) and `iter-N/checkpoint/` (the next policy, with the
//! optimizer state) out. Both folders commit only after the work is complete; the update's
//! manifest is the last thing written.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde::Serialize;
use spice_lm::optim::{META_FILE, STATE_FILE};
use spice_lm::{AdamW, Device, Kind, Policy};
use spice_schemas::vocab::{ChallengerTraining, Role};
use spice_schemas::{
    committed_files,
    config::UpdateSection,
    metrics::{CheckpointMetrics, UpdateMetrics},
    rows::{ScoredRow, UpdateMetricsRow},
    Manifest, ShardRow, ShardSpec, ShardWriter, StageOutput, Status,
};
use spice_stage::StageCtx;

use crate::input::{check_vocab, read_scored, TrainRow};
use crate::save::{save_checkpoint, SavePoint};
use crate::train::{
    adamw_config, peak_rss_mib, run_epochs, score_old, score_reference, single_step, Mismatch,
    RoleTemperatures, UpdateSettings,
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
    /// The roles' sampling temperatures the rows are scored at; left out at 1, so updates
    /// recorded before they were scored at their temperature keep their config digest.
    #[serde(skip_serializing_if = "RoleTemperatures::is_one")]
    temperatures: RoleTemperatures,
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
    let plan = Plan::new(ctx, opts)?;
    if !ctx.force
        && matches!(plan.out_update.status()?, Status::Done(_))
        && matches!(plan.out_ckpt.status()?, Status::Done(_))
    {
        tracing::info!(
            iteration = ctx.iter,
            "update and checkpoint are already done (--force redoes them)"
        );
        return Ok(Outcome::AlreadyDone);
    }
    // Everything that can reject the input happens before the old manifests are removed, so
    // bad input never takes a finished update away.
    let selection = read_scored(&plan.scored, ctx.iter, plan.train_challenger)?;
    let mut rows = selection.rows;
    let device = spice_lm::parse_device(&ctx.device)?;
    let (policy, mut opt, resumed) = plan.load(ctx, device, &rows, selection.frozen_skipped)?;
    let label = spice_lm::device_label(device);
    let (out_update, out_ckpt) = (plan.out_update.device(&label), plan.out_ckpt.device(&label));
    // Both folders read as unfinished from here until their manifests are written.
    out_update.begin()?;
    out_ckpt.begin()?;

    let reference = plan.reference.as_deref().map(|r| (r, plan.kind));
    let trained = train(&policy, &mut opt, &mut rows, &plan.settings, reference)?;
    let mut writer = ShardWriter::<UpdateMetricsRow>::create(out_update.part_path())?;
    writer.write_all(trained.steps.iter().cloned())?;
    writer.finish()?;

    let t_save = Instant::now();
    let ckpt_metrics = CheckpointMetrics {
        optimizer_step: opt.step as u64,
        optimizer_resumed: resumed,
        trained_sequences: rows.len() as u64,
        steps: trained.steps.len() as u64,
    };
    save_checkpoint(&policy, &opt, out_ckpt, &ckpt_metrics, interrupt)?;

    let report = UpdateReport {
        rows: &rows,
        selection: (selection.read, selection.frozen_skipped),
        opt: &opt,
        resumed,
        timings: Timings {
            save: t_save.elapsed().as_secs_f64(),
            total: t_start.elapsed().as_secs_f64(),
            ..trained.timings
        },
        trained: &trained,
        device,
        compute: policy.compute_kind(),
    };
    let manifest = out_update.commit(&report.metrics())?;
    tracing::info!(
        steps = trained.steps.len(),
        sequences = rows.len(),
        tokens = report.tokens(),
        mean_loss = report.mean(|s| s.loss),
        seconds = t_start.elapsed().as_secs_f64(),
        "update done"
    );
    Ok(Outcome::Updated(Box::new(manifest)))
}

/// What the update will do and where it writes, from `run.toml` and the flags; reads nothing
/// but digests.
struct Plan {
    scored: PathBuf,
    policy_dir: PathBuf,
    settings: UpdateSettings,
    kind: Kind,
    train_challenger: bool,
    /// π_ref for the KL term (the run's initial model), when β > 0.
    reference: Option<PathBuf>,
    out_update: StageOutput,
    out_ckpt: StageOutput,
}

impl Plan {
    fn new(ctx: &StageCtx, opts: &UpdateOptions) -> Result<Plan> {
        if ctx.shard != ShardSpec::WHOLE {
            bail!(
                "spice-update is one optimizer over the whole batch and is not split into \
                 parts: run it with --shard 0/1 (got {})",
                ctx.shard
            );
        }
        let cfg = &ctx.cfg;
        let scored = ctx.folder(ScoredRow::FOLDER);
        // Refuse an unfinished folder before digesting anything, with the reason.
        committed_files(&scored, "spice-score")?;
        let policy_dir = ctx.policy_dir()?;
        let settings = UpdateSettings::from_config(cfg, ctx.iter, ctx.seed);
        let dtype = opts.dtype.clone().unwrap_or_else(|| cfg.run.dtype.as_str().to_string());
        let kind = spice_lm::parse_dtype(&dtype)?;
        let reference = (settings.beta > 0.0).then(|| cfg.run.model.clone());
        let record = ConfigRecord {
            update: &cfg.update,
            challenger_training: cfg.challenger.training,
            max_completion_length: settings.max_completion_length,
            dtype: &dtype,
            reference: reference.as_deref(),
            temperatures: settings.temperatures,
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
        Ok(Plan {
            train_challenger: cfg.challenger.training == ChallengerTraining::SelfPlay,
            scored,
            policy_dir,
            settings,
            kind,
            reference,
            out_update,
            out_ckpt,
        })
    }

    /// The policy on `device`, checked against the rows' token ids, and AdamW with the
    /// previous iteration's moments when there are any (whether they were loaded).
    fn load(
        &self,
        ctx: &StageCtx,
        device: Device,
        rows: &[TrainRow],
        frozen_skipped: usize,
    ) -> Result<(Policy, AdamW, bool)> {
        let t_load = Instant::now();
        let policy = Policy::load(&self.policy_dir, device, self.kind)
            .with_context(|| format!("loading the policy {}", self.policy_dir.display()))?;
        check_vocab(rows, policy.config().vocab_size)?;
        let mut opt = AdamW::new(policy.var_store(), adamw_config(&ctx.cfg));
        let resumed = load_optimizer(&mut opt, &self.policy_dir, ctx.iter)?;
        tracing::info!(
            policy = %self.policy_dir.display(),
            device = %spice_lm::device_label(device),
            compute = ?policy.compute_kind(),
            sequences = rows.len(),
            frozen_challenger_rows = frozen_skipped,
            optimizer = if resumed { "resumed" } else { "fresh" },
            seconds = t_load.elapsed().as_secs_f64(),
            "update: policy loaded"
        );
        Ok((policy, opt, resumed))
    }
}

/// The optimizer steps of one iteration and what was measured on the way.
struct Trained {
    steps: Vec<UpdateMetricsRow>,
    mismatch: Mismatch,
    /// Whether πθ_old came from the step's own forward pass.
    single: bool,
    /// Scoring, reference and training times (save and total are filled in later).
    timings: Timings,
}

/// Score πθ_old and π_ref (its folder, loaded in the requested dtype) as needed, then run the
/// epochs of optimizer steps.
fn train(
    policy: &Policy,
    opt: &mut AdamW,
    rows: &mut [TrainRow],
    settings: &UpdateSettings,
    reference: Option<(&Path, Kind)>,
) -> Result<Trained> {
    let single = single_step(rows.len(), settings);
    let (mismatch, score, reference) =
        score_old_and_reference(policy, rows, reference, single, settings)?;
    let t_train = Instant::now();
    let total = rows.len() as u64 * settings.ppo_epochs as u64;
    let bar = spice_stage::progress(total, "update", "sequences");
    let run = run_epochs(policy, opt, rows, settings, Some(&bar))?;
    bar.finish();
    let train = t_train.elapsed().as_secs_f64();
    // A single step measured πθ_old against the sampling log-probs in its own forward pass.
    let mismatch =
        mismatch.or_else(|| run.first().map(|s| s.sampling_mismatch)).unwrap_or_default();
    tracing::info!(
        mean_abs = mismatch.mean_abs,
        max_abs = mismatch.max_abs,
        "|πθ_old − sampling| log-prob difference"
    );
    Ok(Trained {
        steps: run.into_iter().map(|s| s.metrics).collect(),
        mismatch,
        single,
        timings: Timings { score, reference, train, save: 0.0, total: 0.0 },
    })
}

/// πθ_old for every row, unless a single step measures it in its own forward pass, and π_ref
/// (the run's initial model) when β > 0. Returns the πθ_old mismatch when it was scored here,
/// and the seconds each took.
fn score_old_and_reference(
    policy: &Policy,
    rows: &mut [TrainRow],
    reference: Option<(&Path, Kind)>,
    single: bool,
    settings: &UpdateSettings,
) -> Result<(Option<Mismatch>, f64, f64)> {
    let (temps, micro) = (settings.temperatures, settings.micro_batch_size);
    let t_score = Instant::now();
    let mut mismatch = None;
    if !single {
        let bar = spice_stage::progress(rows.len() as u64, "scoring πθ_old", "sequences");
        mismatch = Some(score_old(policy, rows, temps, micro, Some(&bar))?);
        bar.finish();
    }
    let score_seconds = t_score.elapsed().as_secs_f64();
    let t_ref = Instant::now();
    if let Some((r, kind)) = reference {
        let ref_policy = Policy::load(r, policy.device(), kind)
            .with_context(|| format!("loading the reference model {}", r.display()))?;
        let bar = spice_stage::progress(rows.len() as u64, "scoring π_ref", "sequences");
        score_reference(&ref_policy, rows, temps, micro, Some(&bar))?;
        bar.finish();
    }
    Ok((mismatch, score_seconds, t_ref.elapsed().as_secs_f64()))
}

/// Wall time of each phase of the update, in seconds.
#[derive(Debug, Clone, Copy)]
struct Timings {
    score: f64,
    reference: f64,
    train: f64,
    save: f64,
    total: f64,
}

/// What one update did, for its manifest.
struct UpdateReport<'a> {
    trained: &'a Trained,
    rows: &'a [TrainRow],
    /// Rows read from `scored/`, and Challenger rows left out because the Challenger is frozen.
    selection: (usize, usize),
    opt: &'a AdamW,
    resumed: bool,
    timings: Timings,
    device: Device,
    compute: Kind,
}

impl UpdateReport<'_> {
    fn tokens(&self) -> u64 {
        self.trained.steps.iter().map(|s| s.tokens).sum()
    }

    fn mean(&self, f: fn(&UpdateMetricsRow) -> f64) -> f64 {
        let steps = &self.trained.steps;
        steps.iter().map(f).sum::<f64>() / steps.len().max(1) as f64
    }

    fn metrics(&self) -> UpdateMetrics {
        let (steps, t, mismatch) = (&self.trained.steps, &self.timings, self.trained.mismatch);
        let tokens = self.tokens();
        let count = |role| self.rows.iter().filter(|r| r.role == role).count() as u64;
        let old =
            if self.trained.single { "step forward pass" } else { "scored before the first step" };
        UpdateMetrics {
            steps: steps.len() as u64,
            rows_read: self.selection.0 as u64,
            sequences: self.rows.len() as u64,
            challenger_sequences: count(Role::Challenger),
            reasoner_sequences: count(Role::Reasoner),
            frozen_challenger_rows_skipped: self.selection.1 as u64,
            tokens,
            mean_loss: self.mean(|s| s.loss),
            mean_pg_loss: self.mean(|s| s.pg_loss),
            mean_kl: self.mean(|s| s.kl),
            mean_clip_fraction: self.mean(|s| s.clip_fraction),
            final_grad_norm: steps.last().map(|s| s.grad_norm).unwrap_or(0.0),
            learning_rate: self.opt.config.lr,
            optimizer_step: self.opt.step as u64,
            optimizer_resumed: self.resumed,
            logprob_mismatch_mean_abs: mismatch.mean_abs,
            logprob_mismatch_max_abs: mismatch.max_abs,
            old_logprobs: old.to_string(),
            score_seconds: t.score,
            reference_seconds: t.reference,
            train_seconds: t.train,
            save_seconds: t.save,
            seconds: t.total,
            tokens_per_second: if t.train > 0.0 { tokens as f64 / t.train } else { 0.0 },
            peak_rss_mib: peak_rss_mib(),
            device: format!("{:?}", self.device),
            compute_dtype: format!("{:?}", self.compute),
        }
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
