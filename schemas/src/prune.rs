//! Pruning a committed folder on purpose, to bound a run's disk use (`[checkpoint]` of
//! run.toml): its files are removed, its `_manifest.json` stays, and `_pruned.json` beside it
//! says what went, why and when.
//!
//! Keeping the manifest keeps the folder's digest (a committed folder is digested from its
//! manifests, `digest.rs`), so a stage that recorded the folder as an input still reads as
//! done without the files being read again, and so does the stage that wrote it
//! ([`crate::StageOutput::status`] accepts the missing files of a pruned folder). What needs
//! the files themselves (loading the model, resuming the optimizer) refuses a pruned folder
//! with the reason ([`refuse_pruned`]).
//!
//! The marker is written before any file is removed, so a kill while pruning leaves a folder
//! that reads as pruned, and pruning it again removes the rest.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::{commit::write_atomic, manifest::Manifest};

/// The marker of a pruned folder.
pub const PRUNED_FILE: &str = "_pruned.json";

/// `_pruned.json`: what a prune removed from its folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrunedRecord {
    /// Why, e.g. `checkpoint.keep = 2, after iteration 7's update`.
    pub reason: String,
    pub pruned_at: String,
    /// Names of the files and folders removed, and their total size in bytes.
    pub files: Vec<String>,
    pub bytes: u64,
}

/// Whether `dir` has been pruned (or a prune of it has started).
pub fn is_pruned(dir: &Path) -> bool {
    dir.join(PRUNED_FILE).is_file()
}

/// The record of a pruned folder, or `None` for one that was not pruned.
pub fn read_pruned(dir: &Path) -> Result<Option<PrunedRecord>> {
    let path = dir.join(PRUNED_FILE);
    if !path.is_file() {
        return Ok(None);
    }
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let record = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a valid prune record", path.display()))?;
    Ok(Some(record))
}

/// What a prune of `dir` removes: every entry but its manifests and the marker (names,
/// sorted), and their total size in bytes.
pub fn prunable(dir: &Path) -> Result<(Vec<String>, u64)> {
    let mut names = Vec::new();
    let mut bytes = 0;
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_manifest = name.starts_with("_manifest") && name.ends_with(".json");
        if is_manifest || name == PRUNED_FILE {
            continue;
        }
        bytes += size(&entry.path())?;
        names.push(name);
    }
    names.sort();
    Ok((names, bytes))
}

/// Remove every file of the committed folder `dir` except its manifests, marking it pruned
/// first (`reason` goes into the marker). Returns the bytes freed; pruning a pruned folder
/// again only removes what a killed prune left.
pub fn prune_folder(dir: &Path, reason: &str) -> Result<u64> {
    if Manifest::read_all(dir)?.is_empty() {
        bail!("{} has no manifest: only a committed folder is pruned", dir.display());
    }
    let (names, bytes) = prunable(dir)?;
    if names.is_empty() && is_pruned(dir) {
        return Ok(0);
    }
    if !is_pruned(dir) {
        let record = PrunedRecord {
            reason: reason.to_string(),
            pruned_at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
            files: names.clone(),
            bytes,
        };
        write_atomic(&dir.join(PRUNED_FILE), &serde_json::to_vec_pretty(&record)?)?;
    }
    for name in &names {
        let path = dir.join(name);
        let removed = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        removed.with_context(|| format!("pruning {}", path.display()))?;
    }
    Ok(bytes)
}

/// An error naming the prune when `dir` was pruned: its files are gone.
pub fn refuse_pruned(dir: &Path) -> Result<()> {
    if let Some(r) = read_pruned(dir)? {
        bail!(
            "{} was pruned at {} ({}): its files are gone, only its manifest is left. Keep more \
             with the [checkpoint] settings of run.toml (keep, keep_optimizer)",
            dir.display(),
            r.pruned_at,
            r.reason
        );
    }
    Ok(())
}

/// Bytes under `path` (a file, or a folder walked recursively).
fn size(path: &Path) -> Result<u64> {
    let meta =
        std::fs::symlink_metadata(path).with_context(|| format!("reading {}", path.display()))?;
    if !meta.is_dir() {
        return Ok(meta.len());
    }
    let mut total = 0;
    let entries: Vec<PathBuf> = std::fs::read_dir(path)
        .with_context(|| format!("listing {}", path.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    for p in entries {
        total += size(&p)?;
    }
    Ok(total)
}
