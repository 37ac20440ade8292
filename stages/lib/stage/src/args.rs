use std::path::PathBuf;

use crate::cell::Cell;
use crate::derive_seed;
use anyhow::{bail, Context, Result};
use spice_schemas::{
    integrity::{check_file, corruption_error, Depth},
    layout::RunLayout,
    RunConfig, ShardSpec,
};

/// Flags every stage takes. The configuration itself comes from `<run>/run.toml`; flags only
/// pick the iteration and part, and override the device and seed.
#[derive(clap::Args, Debug, Clone)]
pub struct StageArgs {
    /// Run folder (holds `run.toml`, written by `spice iterate`).
    #[arg(long)]
    pub run: PathBuf,
    /// Iteration (0-based).
    #[arg(long, default_value_t = 0)]
    pub iter: u32,
    /// `auto` (CUDA when visible), `cpu` or `cuda:N`; default: `run.device` of run.toml.
    #[arg(long)]
    pub device: Option<String>,
    /// Run seed; default: `run.seed` of run.toml.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Which part of this stage to run, `I/N` (Slurm array task I of N).
    #[arg(long, default_value = "0/1")]
    pub shard: ShardSpec,
    /// Redo the work even when the manifest says it is done.
    #[arg(long)]
    pub force: bool,
}

/// A stage's view of the run: layout, frozen config, and the resolved flags.
#[derive(Debug, Clone)]
pub struct StageCtx {
    pub layout: RunLayout,
    pub cfg: RunConfig,
    pub iter: u32,
    pub shard: ShardSpec,
    pub force: bool,
    /// The run seed (flag, else run.toml).
    pub seed: u64,
    /// The device string (flag, else run.toml).
    pub device: String,
    /// The run's own seed, which `seed` is derived from in a cross-play cell.
    pub run_seed: u64,
    /// The cross-play cell this stage runs, instead of an iteration (`cell.rs`).
    pub cell: Option<Cell>,
}

impl StageCtx {
    pub fn load(args: &StageArgs) -> Result<StageCtx> {
        let layout = RunLayout::new(&args.run);
        let path = layout.config();
        if !path.exists() {
            bail!(
                "{} does not exist: create the run with `spice iterate --run {}` (or copy a \
                 profile from pipelines/ there)",
                path.display(),
                args.run.display()
            );
        }
        let cfg = RunConfig::load(&path).with_context(|| format!("loading {}", path.display()))?;
        let seed = args.seed.unwrap_or(cfg.run.seed);
        Ok(StageCtx {
            seed,
            run_seed: seed,
            cell: None,
            device: args.device.clone().unwrap_or_else(|| cfg.run.device.clone()),
            layout,
            cfg,
            iter: args.iter,
            shard: args.shard,
            force: args.force,
        })
    }

    /// Run cross-play cell `cell` (when given) instead of an iteration: the Challenger's
    /// policy C stands in for the iteration, the shard folders move under `<run>/crossplay/`,
    /// and every seed derives from a cross-play seed, so a cell never repeats the draws of
    /// the iteration whose number it shares.
    pub fn in_cell(mut self, cell: Option<Cell>) -> StageCtx {
        if let Some(c) = cell {
            self.iter = c.challenger;
            self.seed = derive_seed(self.run_seed, 0, "crossplay", 0);
            self.cell = Some(c);
        }
        self
    }

    /// The policy this iteration samples with (the Challenger's, in a cross-play cell).
    pub fn policy_dir(&self) -> Result<PathBuf> {
        self.policy_of(self.iter)
    }

    /// The policy that answers: this iteration's, or Reasoner policy R in a cross-play cell.
    pub fn reasoner_policy_dir(&self) -> Result<PathBuf> {
        self.policy_of(self.cell.map_or(self.iter, |c| c.reasoner))
    }

    /// The policy iteration `iter` samples with: the initial model, else the previous
    /// iteration's checkpoint (which must be committed). A checkpoint pruned since
    /// (`[checkpoint] keep`) is returned too: its digest is still that of its manifest, so a
    /// finished stage reads as done; loading it is refused with the reason
    /// (`spice_schemas::prune::refuse_pruned`).
    pub fn policy_of(&self, iter: u32) -> Result<PathBuf> {
        let dir = self.layout.policy_for(iter, &self.cfg.run.model);
        if iter > 0 && !dir.join("_manifest.json").exists() {
            bail!(
                "the policy of iteration {} is {}, which is not finished: run iteration {}'s \
                 update first",
                iter,
                dir.display(),
                iter - 1
            );
        }
        if iter > 0 && spice_schemas::prune::is_pruned(&dir) {
            return Ok(dir);
        }
        if iter > 0 {
            check_checkpoint(&dir)?;
        }
        if !dir.join("config.json").exists() {
            bail!(
                "model folder {} has no config.json (run `just setup` for the default model, or \
                 set run.model)",
                dir.display()
            );
        }
        Ok(dir)
    }

    /// A shard folder of this iteration (`challenger`, `tasks`, …), or of the cross-play cell.
    pub fn folder(&self, name: &str) -> PathBuf {
        match self.cell {
            Some(c) => c.folder(&self.layout.root, name),
            None => self.layout.folder(self.iter, name),
        }
    }
}

/// A committed checkpoint's files against their manifest, by size: a checkpoint can be many
/// GB and is loaded by every stage, so its digests are checked by `spice verify-run`, while a
/// truncated or half-copied weight file is caught here for free.
fn check_checkpoint(dir: &std::path::Path) -> Result<()> {
    let manifest_path = dir.join("_manifest.json");
    let manifest = spice_schemas::Manifest::read(&manifest_path)?;
    for out in &manifest.outputs {
        let state = check_file(dir, out, Depth::Size)?;
        if !state.is_intact() {
            return Err(corruption_error(
                &dir.join(&out.file),
                &manifest_path,
                &state,
                "spice-update",
            ));
        }
    }
    Ok(())
}
