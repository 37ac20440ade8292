//! `spice`: the driver of a SPICE run. It runs each stage binary as its own process, so every
//! stage can also run alone, on another machine, or as a Slurm job.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Parser;
use spice_schemas::{commit::write_atomic, layout::RunLayout, RunConfig};

#[derive(Parser)]
#[command(name = "spice", version, about = "Run SPICE iterations")]
enum Cli {
    /// Run SPICE iterations: chunk → challenge → filter → rollout → score → update.
    Iterate(IterateArgs),
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
}

/// The stage binaries an iteration runs, in order.
const STAGES: &[&str] = &["spice-chunk", "spice-challenge", "spice-verify", "spice-rollout", "spice-update"];

fn main() -> Result<()> {
    match Cli::parse() {
        Cli::Config { config, overrides } => {
            let cfg = RunConfig::load(&config)?.with_overrides(&overrides)?;
            print!("{}", cfg.to_toml());
        }
        Cli::Iterate(args) => iterate(args)?,
    }
    Ok(())
}

/// Freeze the run's configuration into `<run>/run.toml` (an existing run keeps its own, and a
/// conflicting override is an error rather than a silent change of a running experiment).
fn freeze_config(args: &IterateArgs) -> Result<RunConfig> {
    let layout = RunLayout::new(&args.run);
    let wanted = RunConfig::load(&args.config)?.with_overrides(&args.overrides)?;
    if layout.config().exists() {
        let frozen = RunConfig::load(&layout.config())?;
        let frozen_with = frozen.with_overrides(&args.overrides)?;
        if frozen_with != frozen {
            bail!(
                "{} already exists with other values than --set gives; start a new --run folder \
                 or edit run.toml deliberately",
                layout.config().display()
            );
        }
        return Ok(frozen);
    }
    write_atomic(&layout.config(), wanted.to_toml().as_bytes())?;
    Ok(wanted)
}

fn iterate(args: IterateArgs) -> Result<()> {
    let cfg = freeze_config(&args).context("preparing the run folder")?;
    let bin_dir = std::env::current_exe()?.parent().map(Path::to_path_buf).unwrap_or_default();
    let missing: Vec<&str> = STAGES.iter().copied().filter(|s| !bin_dir.join(s).exists()).collect();
    if !missing.is_empty() {
        bail!(
            "run folder {} is prepared ({} iteration(s) of profile `{}`), but these stage \
             binaries are not part of this build yet: {}",
            args.run.display(),
            args.iterations.unwrap_or(cfg.run.iterations),
            cfg.run.name,
            missing.join(", ")
        );
    }
    bail!("the iteration driver is not implemented in this version")
}
