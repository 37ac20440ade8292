//! The `spice-update` stage: `iter-N/scored/`, the iteration's policy and the previous
//! iteration's optimizer state in; `iter-N/update/` (one metrics row per optimizer step),
//! `iter-N/optimizer/` (AdamW state) and `iter-N/checkpoint/` (the next policy, a plain model
//! folder) out. Every folder commits only after the work is complete; the update's manifest is
//! the last thing written, and only then are folders over the `[checkpoint]` bounds pruned.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde::Serialize;
use spice_dist::ProcessGroup;
use spice_lm::optim::{has_state as has_optimizer_state, META_FILE, STATE_FILE};
use spice_lm::{AdamW, Device, Kind, Policy, TrainingCompute};
use spice_schemas::vocab::{ChallengerTraining, Role};
use spice_schemas::{
    committed_files,
    config::UpdateSection,
    metrics::{CheckpointMetrics, UpdateMetrics},
    prune::{is_pruned, refuse_pruned},
    rows::{ScoredRow, UpdateMetricsRow},
    Manifest, ShardRow, ShardSpec, ShardWriter, StageOutput, Status,
};
use spice_stage::StageCtx;

use crate::input::{check_vocab, read_scored, TrainRow};
use crate::prune::{Kind as Pruned, PrunePlan};
use crate::save::{save_checkpoint, save_optimizer_shards, SaveOutputs, SavePoint};
use crate::train::{
    adamw_config, peak_rss_mib, run_epochs, score_old, score_reference, single_step, Mismatch,
    RoleTemperatures, ScoreOptions, UpdateSettings,
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
    /// Every folder was already committed with the same inputs and config.
    AlreadyDone,
    /// The update ran; the manifest of `update/`.
    Updated(Box<Manifest>),
    /// This process was data-parallel rank `.0` (not 0) of the update; rank 0 committed it.
    Rank(usize),
}

/// This process's place in a data-parallel update.
#[derive(Debug, Clone, Copy)]
pub struct Dist<'a> {
    pub group: &'a ProcessGroup,
    /// Which of this node's GPUs the rank drives.
    pub local_rank: usize,
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
    run_inner(ctx, opts, None, interrupt)
}

/// [`run`] as one rank of a data-parallel update: every rank trains on its share of each
/// step's micro-batches and takes the same step; rank 0 alone writes and commits, after every
/// rank has finished training.
pub fn run_rank(ctx: &StageCtx, opts: &UpdateOptions, dist: Dist<'_>) -> Result<Outcome> {
    run_inner(ctx, opts, Some(dist), &mut |_| Ok(()))
}

fn run_inner(
    ctx: &StageCtx,
    opts: &UpdateOptions,
    dist: Option<Dist<'_>>,
    interrupt: &mut dyn FnMut(SavePoint) -> Result<()>,
) -> Result<Outcome> {
    let t_start = Instant::now();
    let rank = dist.map_or(0, |d| d.group.rank());
    let plan = Plan::new(ctx, opts)?;
    if !ctx.force && plan.done()? {
        tracing::info!(
            iteration = ctx.iter,
            "update and checkpoint are already done (--force redoes them)"
        );
        // A prune a kill interrupted, or bounds lowered since, are applied now.
        prune(&over_bounds(ctx));
        return Ok(Outcome::AlreadyDone);
    }
    // Everything that can reject the input happens before the old manifests are removed, so
    // bad input never takes a finished update away.
    let selection = read_scored(&plan.scored, ctx.iter, plan.train_challenger)?;
    let mut rows = selection.rows;
    let mut device = spice_lm::parse_device(&ctx.device)?;
    if let (Some(d), Device::Cuda(_)) = (dist, device) {
        // One GPU per rank: its local rank among the node's GPUs, or the one GPU it sees
        // when the launcher hid the others (Slurm's --gpus-per-task).
        let visible = spice_lm::tch::Cuda::device_count().max(1) as usize;
        device = Device::Cuda(d.local_rank % visible);
    }
    let (policy, mut opt, resumed, compute) =
        plan.load(ctx, device, &rows, selection.frozen_skipped, dist.map(|d| d.group))?;
    let label = spice_lm::device_label(device);
    let out_update = plan.out_update.device(&label);
    let saved = SaveOutputs {
        checkpoint: plan.out_ckpt.device(&label),
        optimizer: plan.out_opt.device(&label),
    };
    if rank == 0 {
        // Every folder reads as unfinished from here until its manifest is written.
        out_update.begin()?;
        saved.optimizer.begin()?;
        saved.checkpoint.begin()?;
    }

    let reference = plan.reference.as_deref().map(|r| (r, compute.kind));
    let group = dist.map(|d| d.group);
    let trained = train(&policy, &mut opt, &mut rows, &plan.settings, reference, group)?;
    if let Some(g) = group {
        // Nothing is committed unless every rank got here.
        g.barrier()?;
        if opt.shard().is_some() {
            save_optimizer_shards(&opt, saved.optimizer.dir(), g)?;
        }
        if rank != 0 {
            tracing::info!(rank, "update: rank done; rank 0 writes the checkpoint");
            return Ok(Outcome::Rank(rank));
        }
    }
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
    save_checkpoint(&policy, &opt, saved, &ckpt_metrics, interrupt)?;
    // Planned now, done once the update has committed: the manifest records what goes.
    let over = over_bounds(ctx);

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
        compute: &compute,
        parameters: policy.parameter_count(),
        prune: &over,
        dist: group,
    };
    let manifest = out_update.commit(&report.metrics())?;
    prune(&over);
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

/// The folders over the `[checkpoint]` bounds after this iteration's update. Housekeeping
/// never fails an update: a folder that cannot be read is kept, with a warning.
fn over_bounds(ctx: &StageCtx) -> PrunePlan {
    PrunePlan::after(&ctx.layout, &ctx.cfg, ctx.iter).unwrap_or_else(|e| {
        tracing::warn!("not pruning old checkpoints ([checkpoint] bounds): {e:#}");
        PrunePlan::default()
    })
}

/// Prune `plan`'s folders; a failure is a warning (the next update tries again).
fn prune(plan: &PrunePlan) {
    if let Err(e) = plan.execute() {
        tracing::warn!("pruning old checkpoints ([checkpoint] bounds) stopped: {e:#}");
    }
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
    /// Where the AdamW state to resume from is.
    optimizer: OptimizerSource,
    out_update: StageOutput,
    out_ckpt: StageOutput,
    out_opt: StageOutput,
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
        let optimizer = OptimizerSource::find(ctx, &policy_dir)?;
        let settings = UpdateSettings::from_config(cfg, ctx.iter, ctx.seed);
        let dtype = opts.dtype.clone().unwrap_or_else(|| cfg.run.dtype.as_str().to_string());
        let kind = spice_lm::parse_dtype(&dtype)?;
        let reference = (settings.beta > 0.0).then(|| cfg.run.model.clone());
        // How many processes share the update, and whether they shard the optimizer, does not
        // change what it computes.
        let update = UpdateSection { processes: 1, zero_stage: 1, ..cfg.update.clone() };
        let record = ConfigRecord {
            update: &update,
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
            // A run from before `optimizer/` kept the state in the policy folder, whose
            // digest is recorded already; so is the state of a policy that has none.
            if let OptimizerSource::Folder(dir) = &optimizer {
                out = out.input("optimizer", dir)?;
            }
            Ok(out)
        };
        let out_update =
            output(ctx.folder(UpdateMetricsRow::FOLDER))?.schema(UpdateMetricsRow::schema_id());
        let out_ckpt = output(ctx.layout.checkpoint(ctx.iter))?;
        let out_opt = output(ctx.layout.optimizer(ctx.iter))?;
        Ok(Plan {
            train_challenger: cfg.challenger.training == ChallengerTraining::SelfPlay,
            scored,
            policy_dir,
            settings,
            kind,
            reference,
            optimizer,
            out_update,
            out_ckpt,
            out_opt,
        })
    }

    /// Whether every folder of this update is committed for these inputs and settings. A
    /// folder pruned since reads as done; so does a checkpoint of a run made before
    /// `optimizer/` existed, whose optimizer state it holds itself.
    fn done(&self) -> Result<bool> {
        let done =
            |out: &StageOutput| -> Result<bool> { Ok(matches!(out.status()?, Status::Done(_))) };
        if !done(&self.out_update)? || !done(&self.out_ckpt)? {
            return Ok(false);
        }
        let ckpt = self.out_ckpt.dir();
        Ok(done(&self.out_opt)?
            || (!self.out_opt.dir().exists() && (is_pruned(ckpt) || has_optimizer_state(ckpt))))
    }

    /// The policy on `device`, checked against the rows' token ids, and AdamW with the
    /// previous iteration's moments when there are any (whether they were loaded).
    fn load(
        &self,
        ctx: &StageCtx,
        device: Device,
        rows: &[TrainRow],
        frozen_skipped: usize,
        group: Option<&ProcessGroup>,
    ) -> Result<(Policy, AdamW, bool, TrainingCompute)> {
        let t_load = Instant::now();
        refuse_pruned(&self.policy_dir)?;
        // The GEMM rates of this machine, measured now: they choose the compute dtype
        // (bf16 on a CPU only with AMX, whose bf16 GEMMs are the faster ones) and are the peak
        // the step is compared with.
        let compute = TrainingCompute::measure(device, self.kind);
        tracing::info!(
            f32_gflops = compute.f32_flops / 1e9,
            bf16_gflops = compute.bf16_flops.map(|b| b / 1e9),
            "update computes in {}",
            compute.reason
        );
        let policy = Policy::load(&self.policy_dir, device, compute.kind)
            .with_context(|| format!("loading the policy {}", self.policy_dir.display()))?;
        check_vocab(rows, policy.config().vocab_size)?;
        let config = adamw_config(&ctx.cfg);
        let mut opt = match group {
            // ZeRO-1: this rank's optimizer keeps the moments of its shard only.
            Some(g) if ctx.cfg.update.zero_stage == 1 => {
                AdamW::sharded(policy.var_store(), config, g.rank(), g.world())
            }
            _ => AdamW::new(policy.var_store(), config),
        };
        let resumed = self.optimizer.load(&mut opt, ctx.iter)?;
        tracing::info!(
            policy = %self.policy_dir.display(),
            device = %spice_lm::device_label(device),
            compute = ?policy.compute_kind(),
            sequences = rows.len(),
            frozen_challenger_rows = frozen_skipped,
            optimizer = if resumed { "resumed" } else { "fresh" },
            optimizer_state_elements = opt.state_elements(),
            seconds = t_load.elapsed().as_secs_f64(),
            "update: policy loaded"
        );
        Ok((policy, opt, resumed, compute))
    }
}

/// The optimizer steps of one iteration and what was measured on the way.
struct Trained {
    steps: Vec<UpdateMetricsRow>,
    /// Prompt and completion tokens over every step, and those the body ran over.
    sequence_tokens: u64,
    forwarded_tokens: u64,
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
    dist: Option<&ProcessGroup>,
) -> Result<Trained> {
    let single = single_step(rows.len(), settings);
    let (mismatch, score, reference) =
        score_old_and_reference(policy, rows, reference, single, settings, dist)?;
    let t_train = Instant::now();
    let total = rows.len() as u64 * settings.ppo_epochs as u64;
    let bar = progress(total, "update", dist);
    let run = run_epochs(policy, opt, rows, settings, dist, Some(&bar))?;
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
        sequence_tokens: run.iter().map(|s| s.sequence_tokens).sum(),
        forwarded_tokens: run.iter().map(|s| s.forwarded_tokens).sum(),
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
    dist: Option<&ProcessGroup>,
) -> Result<(Option<Mismatch>, f64, f64)> {
    let opts = ScoreOptions { dist, ..settings.score_options() };
    let t_score = Instant::now();
    let mut mismatch = None;
    if !single {
        let bar = progress(rows.len() as u64, "scoring πθ_old", dist);
        mismatch = Some(score_old(policy, rows, opts, Some(&bar))?);
        bar.finish();
    }
    let score_seconds = t_score.elapsed().as_secs_f64();
    let t_ref = Instant::now();
    if let Some((r, kind)) = reference {
        let ref_policy = Policy::load(r, policy.device(), kind)
            .with_context(|| format!("loading the reference model {}", r.display()))?;
        let bar = progress(rows.len() as u64, "scoring π_ref", dist);
        score_reference(&ref_policy, rows, opts, Some(&bar))?;
        bar.finish();
    }
    Ok((mismatch, score_seconds, t_ref.elapsed().as_secs_f64()))
}

/// A progress bar over sequences, drawn by rank 0 only (it counts rank 0's share).
fn progress(len: u64, what: &str, dist: Option<&ProcessGroup>) -> indicatif::ProgressBar {
    let bar = spice_stage::progress(len, what, "sequences");
    if let Some(g) = dist {
        if g.rank() == 0 {
            bar.set_length(len.div_ceil(g.world() as u64));
        } else {
            bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
        }
    }
    bar
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
    /// The compute dtype and the GEMM rates measured for it.
    compute: &'a TrainingCompute,
    /// Trainable parameters (P of the 6·P·tokens model FLOPs).
    parameters: u64,
    /// Folders over the `[checkpoint]` bounds, pruned once the update has committed.
    prune: &'a PrunePlan,
    /// The data-parallel group the update ran in, if any.
    dist: Option<&'a ProcessGroup>,
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
        // Model FLOPs of training: 6 per parameter per token the body ran over (forward 2,
        // backward 4) — prompts included, a shared prompt once; recomputation under gradient
        // checkpointing is not counted, as in MFU.
        let forwarded = self.trained.forwarded_tokens;
        let model_flops = if t.train > 0.0 {
            6.0 * self.parameters as f64 * forwarded as f64 / t.train
        } else {
            0.0
        };
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
            sequence_tokens: self.trained.sequence_tokens,
            forwarded_tokens: forwarded,
            world_size: self.dist.map_or(1, |g| g.world() as u32),
            dist_backend: self.dist.map(|g| g.backend().name().to_string()),
            zero_stage: u32::from(self.opt.shard().is_some()),
            // Two f32 moments per element.
            optimizer_state_bytes: self.opt.state_elements() as u64 * 8,
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
            compute_dtype: format!("{:?}", self.compute.kind),
            compute_reason: self.compute.reason.clone(),
            matmul_f32_gflops: self.compute.f32_flops / 1e9,
            matmul_bf16_gflops: self.compute.bf16_flops.map(|b| b / 1e9),
            parameters: self.parameters,
            model_gflops_per_second: model_flops / 1e9,
            // Each rank measured its own share of the machine (its cores, or its GPU).
            peak_fraction: model_flops
                / (self.compute.peak_flops() * self.dist.map_or(1.0, |g| g.world() as f64)),
            pruned_checkpoints: self.prune.count(Pruned::Checkpoint),
            pruned_optimizers: self.prune.count(Pruned::Optimizer),
            pruned_bytes: self.prune.bytes(),
        }
    }
}

/// Where the AdamW state this update resumes from lives.
#[derive(Debug, Clone, PartialEq)]
enum OptimizerSource {
    /// Iteration 0 starts the run's optimizer.
    Start,
    /// `iter-(N-1)/optimizer/`, committed (and possibly pruned since).
    Folder(PathBuf),
    /// A run made before `optimizer/` existed: the state inside `iter-(N-1)/checkpoint/`.
    InCheckpoint(PathBuf),
    /// The previous checkpoint has no optimizer state (a folder written by something else).
    Missing(PathBuf),
}

impl OptimizerSource {
    fn find(ctx: &StageCtx, policy_dir: &Path) -> Result<OptimizerSource> {
        if ctx.iter == 0 {
            return Ok(OptimizerSource::Start);
        }
        let dir = ctx.layout.optimizer(ctx.iter - 1);
        if dir.join("_manifest.json").is_file() {
            return Ok(OptimizerSource::Folder(dir));
        }
        if dir.exists() {
            bail!(
                "{} is not finished (it has no _manifest.json) although {} is: was iteration \
                 {}'s update killed while it ran again? Run it again (--force), or remove {} to \
                 start AdamW with fresh moments",
                dir.display(),
                policy_dir.display(),
                ctx.iter - 1,
                dir.display()
            );
        }
        if has_optimizer_state(policy_dir) {
            return Ok(OptimizerSource::InCheckpoint(policy_dir.to_path_buf()));
        }
        Ok(OptimizerSource::Missing(policy_dir.to_path_buf()))
    }

    /// Restore AdamW's moments and step into `opt` (the run's settings win over the saved
    /// ones, which are the same unless run.toml changed). Returns whether state was loaded.
    fn load(&self, opt: &mut AdamW, iteration: u32) -> Result<bool> {
        let dir = match self {
            OptimizerSource::Start => return Ok(false),
            OptimizerSource::Missing(policy) => {
                tracing::warn!(
                    "{} has no optimizer state beside it ({STATE_FILE}, {META_FILE}): AdamW \
                     starts with fresh moments",
                    policy.display()
                );
                return Ok(false);
            }
            OptimizerSource::Folder(dir) => {
                refuse_pruned(dir).with_context(|| {
                    format!(
                        "resuming AdamW for iteration {iteration}; to redo it with fresh moments \
                         instead, remove {}",
                        dir.display()
                    )
                })?;
                dir
            }
            OptimizerSource::InCheckpoint(dir) => {
                tracing::info!(
                    "{}: a run from before optimizer/ folders, resuming AdamW from the state \
                     inside it",
                    dir.display()
                );
                dir
            }
        };
        opt.load(dir, true)
            .with_context(|| format!("restoring the optimizer state of {}", dir.display()))?;
        Ok(true)
    }
}
