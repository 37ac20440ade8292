//! `spice`: the driver of a SPICE run. It runs each stage binary as its own process, so every
//! stage can also run alone, on another machine, or as a Slurm job.

mod crossplay;
mod doctor;
mod iterate;
mod plan;
mod report;
mod show;
mod slurm;
mod summarize;
mod summary;
mod tensorboard;
mod verify_run;

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Parser;
use spice_schemas::{commit::write_atomic, layout::RunLayout, RunConfig};

#[derive(Parser)]
#[command(name = "spice", version, about = "Run SPICE iterations")]
enum Cli {
    /// Run SPICE iterations: chunk → challenge → filter → rollout → score → update.
    Iterate(IterateArgs),
    /// Run the same stages as Slurm jobs (`spice slurm iterate`), or show their status.
    #[command(subcommand)]
    Slurm(slurm::SlurmCmd),
    /// Cross-play: Challengers and Reasoners of different iterations against each other on
    /// documents held out of training (do later Challengers write harder tasks, and do later
    /// Reasoners pass more?).
    Crossplay(crossplay::CrossplayArgs),
    /// Print one example of an iteration: the document, the task the Challenger wrote from it,
    /// and the Reasoner's answers with their verdicts.
    Show(show::ShowArgs),
    /// Per-iteration report of a run: a table of its numbers (CSV and JSON too) and plots,
    /// written into <run>/report/.
    Report(report::ReportArgs),
    /// What this machine and build give the stages: libtorch and its CUDA backend, driver,
    /// GPUs, cuDNN, NCCL, the CPU's ISA and matmul path, threads, what `device = "auto"`
    /// picks and why, and how each model stage binary links libtorch.
    Doctor(doctor::DoctorArgs),
    /// Check every committed folder of a run against its manifests (parts, sizes, content
    /// digests, inputs) and say what must be redone; `--repair` marks damaged parts
    /// unfinished so the next `spice iterate` redoes them.
    VerifyRun(verify_run::VerifyRunArgs),
    /// Rewrite `<run>/summary.jsonl` and `<run>/tensorboard/` from the run's finished
    /// iterations (the driver does it after each iteration; Slurm jobs call it as they end).
    Summarize(summarize::SummarizeArgs),
    /// Print the effective run configuration (defaults + profile + overrides) as TOML.
    Config {
        /// Profile (pipelines/*.toml).
        #[arg(long, default_value = "pipelines/cpu.toml")]
        config: PathBuf,
        /// `section.key=value` overrides, e.g. `--set update.learning_rate=1e-5`.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
    },
}

#[derive(clap::Args)]
struct IterateArgs {
    /// Profile (pipelines/*.toml); ignored when the run folder already has its run.toml.
    #[arg(long, default_value = "pipelines/cpu.toml")]
    config: PathBuf,
    /// Run folder.
    #[arg(long, default_value = "data/runs/default")]
    run: PathBuf,
    /// Iterations to run (default: `run.iterations` of the config).
    #[arg(long)]
    iterations: Option<u32>,
    /// `section.key=value` overrides of the profile.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// Redo stages even when their manifests say they are done.
    #[arg(long)]
    force: bool,
    /// Device for every stage (`auto|cpu|cuda:N`), overriding `run.device`.
    #[arg(long)]
    device: Option<String>,
    /// Folder of the stage binaries (default: the folder of this binary).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
}

fn main() -> Result<()> {
    match Cli::parse() {
        Cli::Config { config, overrides } => {
            let cfg = RunConfig::load(&config)?.with_overrides(&overrides)?;
            print!("{}", cfg.to_toml());
            // Printing works without the inputs; a run will not start without them.
            if let Err(e) = cfg.check_inputs() {
                eprintln!("note: {e:#}");
            }
        }
        Cli::Iterate(args) => {
            let cfg = freeze_config(&args).context("preparing the run folder")?;
            iterate::run(&args, &cfg)?
        }
        Cli::Slurm(cmd) => slurm::run(cmd)?,
        Cli::Crossplay(args) => crossplay::run(&args)?,
        Cli::Report(args) => report::run(&args)?,
        Cli::Show(args) => show::run(&args)?,
        Cli::Doctor(args) => doctor::run(&args)?,
        Cli::VerifyRun(args) => verify_run::run(&args)?,
        Cli::Summarize(args) => summarize::run(&args)?,
    }
    Ok(())
}

/// Freeze the run's configuration into `<run>/run.toml` and its prompt templates into
/// `<run>/prompts/` (an existing run keeps its own, and a conflicting override is an error
/// rather than a silent change of a running experiment). A run whose model or corpus is
/// missing is refused before anything is written, with what is missing and how to get it.
fn freeze_config(args: &IterateArgs) -> Result<RunConfig> {
    let layout = RunLayout::new(&args.run);
    if layout.root.exists() && !layout.root.is_dir() {
        bail!("--run {}: is a file, not a run folder", layout.root.display());
    }
    // A new run reads its profile (and refuses a bad --set) before writing anything, so a
    // typo leaves no half-made run folder behind.
    let new = if layout.config().exists() {
        None
    } else {
        let cfg = RunConfig::load(&args.config)?.with_overrides(&args.overrides)?;
        cfg.check_inputs()?;
        Some(cfg)
    };
    let prompts = layout.root.join("prompts");
    if !prompts.exists() {
        let src = spice_prompt::Prompts::locate(None)?;
        copy_dir(src.root(), &prompts)
            .with_context(|| format!("copying prompt templates into {}", prompts.display()))?;
    }
    if let Some(wanted) = new {
        write_atomic(&layout.config(), wanted.to_toml().as_bytes())?;
        return Ok(wanted);
    }
    let frozen = RunConfig::load(&layout.config())?;
    let frozen_with = frozen.with_overrides(&args.overrides)?;
    if frozen_with != frozen {
        bail!(
            "{} already exists with other values than --set gives; start a new --run folder \
             or edit run.toml deliberately",
            layout.config().display()
        );
    }
    frozen.check_inputs()?;
    Ok(frozen)
}

/// Copy a folder of template folders (`<src>/<set>/<file>`), through a temporary name.
fn copy_dir(src: &std::path::Path, dst: &std::path::Path) -> Result<()> {
    let tmp = spice_schemas::commit::tmp_path(dst);
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp)
            .with_context(|| format!("removing leftover {}", tmp.display()))?;
    }
    let copied = copy_files(src, &tmp);
    if copied.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    copied?;
    spice_schemas::commit::rename_into_place(&tmp, dst)
}

fn copy_files(src: &std::path::Path, tmp: &std::path::Path) -> Result<()> {
    for entry in walk(src)? {
        let rel = entry.strip_prefix(src)?;
        let to = tmp.join(rel);
        let dir = to.parent().expect("a file has a parent");
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        std::fs::copy(&entry, &to)
            .with_context(|| format!("copying {} to {}", entry.display(), to.display()))?;
    }
    Ok(())
}

fn walk(dir: &std::path::Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let p = e?.path();
        if p.is_dir() {
            out.extend(walk(&p)?);
        } else {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}
