//! `spice-update`: one Dr. GRPO update of the policy on an iteration's scored trajectories.

use anyhow::Result;
use clap::Parser;
use spice_schemas::metrics::UpdateMetrics;
use spice_stage::{StageArgs, StageCtx};
use spice_update::launch::{self, Part};
use spice_update::{Dist, Outcome, UpdateOptions};

/// Update the policy on both roles' trajectories of one iteration (Dr. GRPO, one optimizer).
///
/// Reads <run>/iter-N/scored/ (every part committed) and the iteration's policy (the initial
/// model for iteration 0, else iter-(N-1)/checkpoint/, resuming AdamW from
/// iter-(N-1)/optimizer/). Writes <run>/iter-N/update/part-00000.parquet (one row per
/// optimizer step: loss, KL, gradient norm, clip fraction, tokens/s, peak memory),
/// <run>/iter-N/optimizer/ (AdamW state) and <run>/iter-N/checkpoint/ (the next policy, a
/// plain Hugging Face folder), then prunes older folders over run.toml's [checkpoint] bounds
/// (keep, keep_optimizer). Training settings come from run.toml's [update] section: epsilon,
/// beta, learning_rate, max_grad_norm, ppo_epochs, mini_batch_size, micro_batch_size,
/// gradient_checkpointing, AdamW betas/epsilon/weight decay. A finished update is not redone
/// unless its inputs or settings changed, or --force is given.
///
/// Data parallel: with update.processes = N it starts N local ranks of itself (like torchrun);
/// started by a launcher that sets RANK/WORLD_SIZE/MASTER_ADDR/MASTER_PORT (torchrun, or ours)
/// or by `srun` (SLURM_PROCID/SLURM_NTASKS, rank 0 on the first node), it is one rank. Ranks
/// split each step's micro-batches and sum gradients through c10d: Gloo on CPU, NCCL on CUDA
/// with one GPU per rank (cuda:LOCAL_RANK). SPICE_DIST_TIMEOUT (seconds, default 1800) bounds
/// every collective; a rank that fails or hangs fails the update and nothing is committed.
#[derive(Parser, Debug)]
#[command(name = "spice-update", version, verbatim_doc_comment)]
struct Cli {
    #[command(flatten)]
    stage: StageArgs,
    /// Compute dtype of the forward/backward passes, `bf16` or `f32` (master weights are
    /// always f32); default: `run.dtype` of run.toml.
    #[arg(long)]
    dtype: Option<String>,
}

fn main() -> Result<()> {
    spice_stage::init_logging();
    let cli = Cli::parse();
    spice_lm::device::use_all_cores();
    let ctx = StageCtx::load(&cli.stage)?;
    let opts = UpdateOptions { dtype: cli.dtype };
    let outcome = match Part::find(ctx.cfg.update.processes)? {
        Part::Single => spice_update::run(&ctx, &opts)?,
        Part::Launcher(n) => return launch::launch_local(n),
        Part::Rank(t) => {
            let device = spice_lm::parse_device(&ctx.device)?;
            let group = launch::join(&t, device)?;
            spice_update::run_rank(&ctx, &opts, Dist { group: &group, local_rank: t.local_rank })?
        }
    };
    match outcome {
        Outcome::AlreadyDone | Outcome::Rank(_) => {}
        Outcome::Updated(manifest) => {
            let m: UpdateMetrics = manifest.metrics_as()?;
            eprintln!(
                "update of iteration {}: {} steps over {} sequences, mean loss {:.4e}, final grad \
                 norm {:.3}, {:.0} tokens/s, {:.1} s, peak RSS {:.0} MiB",
                ctx.iter,
                m.steps,
                m.sequences,
                m.mean_loss,
                m.final_grad_norm,
                m.tokens_per_second,
                m.seconds,
                m.peak_rss_mib,
            );
        }
    }
    Ok(())
}
