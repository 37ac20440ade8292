//! Writing `iter-N/checkpoint/`, the next iteration's policy: the Hugging Face folder and the
//! optimizer state go to `checkpoint.tmp/`, the folder is renamed into place, and its
//! manifest is written last — so a checkpoint without `_manifest.json` is never taken as a
//! policy, whatever moment a kill interrupted.

use std::path::Path;

use anyhow::{Context, Result};
use spice_lm::{AdamW, Policy};
use spice_schemas::{
    commit::{rename_into_place, tmp_path},
    metrics::CheckpointMetrics,
    Manifest, StageOutput,
};

/// Moments of the save at which a test can simulate a kill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SavePoint {
    /// The weights and model files are in `checkpoint.tmp/`.
    WeightsWritten,
    /// The optimizer state is there too.
    OptimizerWritten,
    /// `checkpoint.tmp/` has become `checkpoint/`; its manifest is not written yet.
    FolderRenamed,
}

/// Save `policy` and `opt` as `out`'s folder and commit it. `interrupt` is called at each
/// [`SavePoint`]; an error from it aborts the save there.
pub fn save_checkpoint(
    policy: &Policy,
    opt: &AdamW,
    out: StageOutput,
    metrics: &CheckpointMetrics,
    interrupt: &mut dyn FnMut(SavePoint) -> Result<()>,
) -> Result<Manifest> {
    let dir = out.dir().to_path_buf();
    let tmp = tmp_path(&dir);
    remove_leftovers(&dir)?;
    spice_lm::checkpoint::save(policy, &tmp)?;
    // The policy's own folder (the previous checkpoint) had a manifest, and the model saver
    // copies every small file: this folder's manifest must only ever be the one written below.
    for name in files_in(&tmp)? {
        if name.starts_with("_manifest") {
            std::fs::remove_file(tmp.join(&name))
                .with_context(|| format!("removing {name} from {}", tmp.display()))?;
        }
    }
    interrupt(SavePoint::WeightsWritten)?;
    opt.save(&tmp)?;
    interrupt(SavePoint::OptimizerWritten)?;
    if dir.exists() {
        std::fs::remove_dir_all(&dir)
            .with_context(|| format!("removing the unfinished {}", dir.display()))?;
    }
    rename_into_place(&tmp, &dir)?;
    interrupt(SavePoint::FolderRenamed)?;
    let files = files_in(&dir)?;
    let listed: Vec<(&str, u64)> = files.iter().map(|f| (f.as_str(), 0)).collect();
    out.commit_with_files(&listed, metrics)
}

/// What an earlier, killed save may have left beside `dir`: `checkpoint.tmp/`, and the model
/// saver's own temporary folders.
fn remove_leftovers(dir: &Path) -> Result<()> {
    let tmp = tmp_path(dir);
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp)
            .with_context(|| format!("removing leftover {}", tmp.display()))?;
    }
    let Some(parent) = dir.parent() else { return Ok(()) };
    let Ok(entries) = std::fs::read_dir(parent) else { return Ok(()) };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if (name.starts_with(".checkpoint-") || name == ".old-checkpoint.tmp")
            && entry.path().is_dir()
        {
            std::fs::remove_dir_all(entry.path())
                .with_context(|| format!("removing leftover {}", entry.path().display()))?;
        }
    }
    Ok(())
}

/// Names of the regular files directly in `dir`, sorted.
fn files_in(dir: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    names.sort();
    Ok(names)
}
