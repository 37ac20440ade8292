//! `spice-update`: one Dr. GRPO update of the policy on an iteration's scored trajectories.

use anyhow::Result;
use clap::Parser;
use spice_schemas::metrics::UpdateMetrics;
use spice_stage::{StageArgs, StageCtx};
use spice_update::{Outcome, UpdateOptions};

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
    match spice_update::run(&ctx, &UpdateOptions { dtype: cli.dtype })? {
        Outcome::AlreadyDone => {}
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
