//! `spice slurm`: the stages of a run as Slurm jobs. The jobs run the same binaries with the
//! same arguments as `spice iterate` (both come from `plan.rs`), chained with
//! `--dependency=afterok`, so a run can move between a workstation and a cluster.
//!
//! Run folder: `<run>/slurm/chunk.sbatch`, `<run>/slurm/iter-0003/rollout.sbatch` (the
//! scripts, kept for audit), `rollout.job` (the id of the job last submitted for it) and
//! `logs/rollout-<job>_<task>.log`.

mod jobs;
mod queue;
mod script;
mod status;
mod submit;

use std::path::PathBuf;

use anyhow::Result;

use crate::IterateArgs;

#[derive(clap::Subcommand)]
pub enum SlurmCmd {
    /// Write one sbatch script per stage into `<run>/slurm/` and submit what is neither done
    /// nor queued, chained with `--dependency=afterok`. Split stages are job arrays over
    /// `--shard I/N`; resources come from the `[slurm]` section of the config.
    Iterate(SlurmIterateArgs),
    /// Submit the cells of `spice crossplay` as jobs: per Challenger policy challenge →
    /// filter, then per cell rollout → score; again submits only what is neither done nor
    /// queued. With --wait, writes crossplay.csv when the queue has drained (or run `spice
    /// crossplay` afterwards: it finds every cell done).
    Crossplay(SlurmCrossplayArgs),
    /// Per iteration and stage: done (manifests), queued, running, failed (with the log
    /// path) or cancelled, with job ids.
    Status(StatusArgs),
}

#[derive(clap::Args)]
pub struct SlurmIterateArgs {
    #[command(flatten)]
    pub common: IterateArgs,
    /// Write the scripts and print the sbatch commands without submitting.
    #[arg(long)]
    pub dry_run: bool,
    /// Wait until the submitted jobs have left the queue, print the status and fail unless
    /// every stage is done.
    #[arg(long)]
    pub wait: bool,
    /// Seconds between queue polls with --wait.
    #[arg(long, default_value_t = 2.0)]
    pub poll: f64,
    /// sbatch template (default: the one built in, from pipelines/slurm/stage.sbatch).
    #[arg(long)]
    pub template: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct SlurmCrossplayArgs {
    #[command(flatten)]
    pub cross: crate::crossplay::CrossplayArgs,
    /// Write the scripts and print the sbatch commands without submitting.
    #[arg(long)]
    pub dry_run: bool,
    /// Wait until the submitted jobs have left the queue, then write the results.
    #[arg(long)]
    pub wait: bool,
    /// Seconds between queue polls with --wait.
    #[arg(long, default_value_t = 2.0)]
    pub poll: f64,
    /// sbatch template (default: the one built in, from pipelines/slurm/stage.sbatch).
    #[arg(long)]
    pub template: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct StatusArgs {
    /// Run folder.
    #[arg(long, default_value = "data/runs/default")]
    pub run: PathBuf,
    /// Iterations to show (default: `run.iterations` of the run's run.toml).
    #[arg(long)]
    pub iterations: Option<u32>,
}

pub fn run(cmd: SlurmCmd) -> Result<()> {
    match cmd {
        SlurmCmd::Iterate(args) => submit::run(&args),
        SlurmCmd::Crossplay(args) => submit::crossplay(&args),
        SlurmCmd::Status(args) => status::run(&args),
    }
}
