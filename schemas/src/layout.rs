//! Where things live in a run folder (ARCHITECTURE.md, "The run folder").
//!
//! ```text
//! <run>/run.toml                     frozen config of the run (with overrides)
//! <run>/chunks/                      the chunked corpus (shared by all iterations)
//! <run>/iter-0003/challenger/ tasks/ rollouts/ scored/ update/ eval/
//! <run>/iter-0003/checkpoint/        policy after this iteration's update: a plain Hugging
//!                                    Face model folder (+ _manifest.json)
//! <run>/iter-0003/optimizer/         its AdamW state, read by the next iteration's update
//! ```
//!
//! `[checkpoint]` of run.toml bounds how many of the last two are kept; a pruned one keeps
//! only its `_manifest.json` and `_pruned.json` (`crate::prune`).

use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct RunLayout {
    pub root: PathBuf,
}

impl RunLayout {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn config(&self) -> PathBuf {
        self.root.join("run.toml")
    }

    pub fn chunks(&self) -> PathBuf {
        self.root.join("chunks")
    }

    pub fn iter_dir(&self, iteration: u32) -> PathBuf {
        self.root.join(format!("iter-{iteration:04}"))
    }

    /// A shard folder of an iteration: `challenger`, `tasks`, `rollouts`, `scored`, `update`,
    /// `eval`.
    pub fn folder(&self, iteration: u32, name: &str) -> PathBuf {
        self.iter_dir(iteration).join(name)
    }

    /// The model folder iteration `iteration`'s update writes: what a Hugging Face loader
    /// reads, and nothing else.
    pub fn checkpoint(&self, iteration: u32) -> PathBuf {
        self.iter_dir(iteration).join("checkpoint")
    }

    /// The optimizer state (AdamW moments and step) beside that checkpoint, which the next
    /// iteration's update resumes from. Runs made before this folder existed kept it inside
    /// `checkpoint/`.
    pub fn optimizer(&self, iteration: u32) -> PathBuf {
        self.iter_dir(iteration).join("optimizer")
    }

    /// The policy that iteration `iteration` samples with: the initial model for iteration
    /// 0, else the previous iteration's checkpoint.
    pub fn policy_for(&self, iteration: u32, initial: &Path) -> PathBuf {
        if iteration == 0 {
            initial.to_path_buf()
        } else {
            self.checkpoint(iteration - 1)
        }
    }

    /// Iterations present in the run folder, ascending.
    pub fn iterations(&self) -> Vec<u32> {
        let mut found: Vec<u32> = std::fs::read_dir(&self.root)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str()?.strip_prefix("iter-")?.parse().ok())
            .collect();
        found.sort_unstable();
        found
    }
}

/// Policy id recorded in rows: the folder's name and the first 12 hex digits of its digest,
/// e.g. `checkpoint@3fa2c0d91b7e`.
pub fn policy_id(folder: &Path, digest: &str) -> String {
    let name = folder.file_name().and_then(|n| n.to_str()).unwrap_or("policy");
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    format!("{name}@{}", &hex[..hex.len().min(12)])
}
