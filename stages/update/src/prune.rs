//! The disk bounds of `[checkpoint]` (`keep`, `keep_optimizer`), applied by iteration N's
//! update once its own folders have committed.
//!
//! Only folders of iterations before N are pruned, and never the `keep` (`keep_optimizer`)
//! most recent committed ones up to N, which include N's own: so the checkpoint and optimizer
//! state the next iteration (or a resume) reads are never touched. A checkpoint whose
//! evaluation `eval.eval_every` schedules stays until `iter-K/eval-checkpoint/` has committed
//! (under Slurm that job runs beside the next iteration); a later update prunes it then. A
//! checkpoint whose policy `crossplay.policies` lists is kept for good.
//!
//! Pruning lives here rather than in the driver so that every way of running a stage (the
//! driver, Slurm jobs, a stage run by hand) bounds the disk the same way. A pruned folder
//! keeps its manifest (`spice_schemas::prune`): its digest, which later stages recorded, does
//! not change and nothing reads its files again, so the iterations that used it still read as
//! done and are not recomputed.

use std::path::PathBuf;

use anyhow::Result;
use spice_schemas::{
    layout::RunLayout,
    manifest::folder_complete,
    prune::{is_pruned, prunable, prune_folder},
    RunConfig,
};

/// What a prune removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `iter-K/checkpoint/`, bounded by `checkpoint.keep`.
    Checkpoint,
    /// `iter-K/optimizer/`, bounded by `checkpoint.keep_optimizer`.
    Optimizer,
}

/// One folder to prune.
#[derive(Debug, Clone)]
pub struct Target {
    pub kind: Kind,
    pub iteration: u32,
    pub dir: PathBuf,
    /// Bytes its files take now.
    pub bytes: u64,
    /// For the folder's `_pruned.json`.
    pub reason: String,
}

/// The folders the bounds remove after iteration `iter`'s update, without removing anything.
#[derive(Debug, Clone, Default)]
pub struct PrunePlan {
    pub targets: Vec<Target>,
}

impl PrunePlan {
    /// The folders over the bounds after iteration `iter`'s update has committed.
    pub fn after(layout: &RunLayout, cfg: &RunConfig, iter: u32) -> Result<PrunePlan> {
        let bounds = cfg.checkpoint.clone();
        let mut targets = Vec::new();
        for (kind, keep, key) in [
            (Kind::Checkpoint, bounds.keep, "checkpoint.keep"),
            (Kind::Optimizer, bounds.keep_optimizer, "checkpoint.keep_optimizer"),
        ] {
            if keep == 0 {
                continue;
            }
            let folder = |k: u32| match kind {
                Kind::Checkpoint => layout.checkpoint(k),
                Kind::Optimizer => layout.optimizer(k),
            };
            // Committed folders up to this iteration, newest first; the first `keep` stay.
            let mut committed: Vec<u32> = layout
                .iterations()
                .into_iter()
                .filter(|k| *k <= iter && folder(*k).join("_manifest.json").is_file())
                .collect();
            committed.reverse();
            for &k in committed.iter().skip(keep as usize) {
                let dir = folder(k);
                let (files, bytes) = prunable(&dir)?;
                if files.is_empty() && is_pruned(&dir) {
                    continue;
                }
                if kind == Kind::Checkpoint
                    && cfg.eval.evaluates_checkpoint(k)
                    && folder_complete(&layout.iter_dir(k).join("eval-checkpoint"))?.is_none()
                {
                    tracing::info!(
                        "keeping {} for now: its evaluation (eval.eval_every) has not finished",
                        dir.display()
                    );
                    continue;
                }
                // Policy k + 1 is checkpoint k: cross-play compares the policies it lists.
                if kind == Kind::Checkpoint && cfg.crossplay.policies.contains(&(k + 1)) {
                    tracing::info!(
                        "keeping {}: crossplay.policies compares policy {}",
                        dir.display(),
                        k + 1
                    );
                    continue;
                }
                let reason = format!("{key} = {keep}, after iteration {iter}'s update");
                targets.push(Target { kind, iteration: k, dir, bytes, reason });
            }
        }
        Ok(PrunePlan { targets })
    }

    pub fn count(&self, kind: Kind) -> u64 {
        self.targets.iter().filter(|t| t.kind == kind).count() as u64
    }

    pub fn bytes(&self) -> u64 {
        self.targets.iter().map(|t| t.bytes).sum()
    }

    /// Prune every target, logging each; returns the bytes freed.
    pub fn execute(&self) -> Result<u64> {
        let mut freed = 0;
        for t in &self.targets {
            let bytes = prune_folder(&t.dir, &t.reason)?;
            freed += bytes;
            tracing::info!(
                folder = %t.dir.display(),
                mib = bytes as f64 / (1 << 20) as f64,
                "pruned ({})",
                t.reason
            );
        }
        if !self.targets.is_empty() {
            tracing::info!(
                checkpoints = self.count(Kind::Checkpoint),
                optimizers = self.count(Kind::Optimizer),
                mib = freed as f64 / (1 << 20) as f64,
                "pruned the folders over the [checkpoint] bounds"
            );
        }
        Ok(freed)
    }
}
