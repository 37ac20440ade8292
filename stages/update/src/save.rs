//! Writing iteration N's result: `iter-N/optimizer/` (AdamW moments and step) and
//! `iter-N/checkpoint/` (the next policy, a plain Hugging Face model folder). Each is written
//! into its `.tmp` folder, renamed into place and committed by its own manifest, the optimizer
//! first. So whatever moment a kill interrupts, a checkpoint that reads as finished has its
//! optimizer state committed beside it, and a checkpoint without `_manifest.json` is never
//! taken as a policy.
//!
//! A sharded optimizer (ZeRO-1) is written by every rank: each puts its shard file into
//! `optimizer.tmp/` ([`save_optimizer_shards`]), and rank 0 adds the settings file and commits.

use std::path::Path;

use anyhow::{Context, Result};
use spice_dist::ProcessGroup;
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
    /// The optimizer state is in `optimizer.tmp/`.
    OptimizerWritten,
    /// `optimizer/` is in place with its manifest; `checkpoint.tmp/` is not renamed yet.
    OptimizerCommitted,
    /// `checkpoint.tmp/` has become `checkpoint/`; its manifest is not written yet.
    FolderRenamed,
    /// `checkpoint/` has its manifest; the update's own manifest is not written yet.
    CheckpointCommitted,
}

/// Where the save commits: the model folder and the optimizer folder, each with the stage's
/// inputs and configuration.
pub struct SaveOutputs {
    pub checkpoint: StageOutput,
    pub optimizer: StageOutput,
}

/// Save `opt` and `policy` into `out`'s folders and commit them, the optimizer first.
/// `interrupt` is called at each [`SavePoint`]; an error from it aborts the save there.
/// Returns the checkpoint's manifest.
pub fn save_checkpoint(
    policy: &Policy,
    opt: &AdamW,
    out: SaveOutputs,
    metrics: &CheckpointMetrics,
    interrupt: &mut dyn FnMut(SavePoint) -> Result<()>,
) -> Result<Manifest> {
    let ckpt = out.checkpoint.dir().to_path_buf();
    let opt_dir = out.optimizer.dir().to_path_buf();
    remove_leftovers(&ckpt)?;
    if opt.shard().is_none() {
        // (A sharded optimizer's `optimizer.tmp/` holds the shards the ranks just wrote.)
        remove_leftovers(&opt_dir)?;
    }

    let ckpt_tmp = tmp_path(&ckpt);
    let opt_tmp = tmp_path(&opt_dir);
    // A save that fails (a full disk) takes its half-written folders with it, so the space
    // they held is free again; a killed one leaves them to `remove_leftovers`.
    let discard = |e: anyhow::Error| {
        for tmp in [&ckpt_tmp, &opt_tmp] {
            let _ = std::fs::remove_dir_all(tmp);
        }
        e
    };
    spice_lm::checkpoint::save(policy, &ckpt_tmp).map_err(discard)?;
    // The policy's own folder (the previous checkpoint) had a manifest, and the model saver
    // copies every small file: this folder's manifest must only ever be the one written below.
    for name in files_in(&ckpt_tmp)? {
        if name.starts_with("_manifest") {
            std::fs::remove_file(ckpt_tmp.join(&name))
                .with_context(|| format!("removing {name} from {}", ckpt_tmp.display()))?;
        }
    }
    interrupt(SavePoint::WeightsWritten)?;

    if opt.shard().is_some() {
        opt.save_meta(&opt_tmp).map_err(discard)?;
    } else {
        opt.save(&opt_tmp).map_err(discard)?;
    }
    interrupt(SavePoint::OptimizerWritten)?;
    replace_folder(&opt_tmp, &opt_dir)?;
    commit_listing(out.optimizer, metrics)?;
    interrupt(SavePoint::OptimizerCommitted)?;

    replace_folder(&ckpt_tmp, &ckpt)?;
    interrupt(SavePoint::FolderRenamed)?;
    let manifest = commit_listing(out.checkpoint, metrics)?;
    interrupt(SavePoint::CheckpointCommitted)?;
    Ok(manifest)
}

/// Every rank of a sharded optimizer writes its shard into `<opt_dir>.tmp/`, which rank 0
/// empties first; returns once every rank's shard is written, so rank 0 can go on to commit.
pub fn save_optimizer_shards(opt: &AdamW, opt_dir: &Path, group: &ProcessGroup) -> Result<()> {
    let tmp = tmp_path(opt_dir);
    if group.rank() == 0 {
        remove_leftovers(opt_dir)?;
        std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    }
    group.barrier()?;
    opt.save_shard(&tmp).with_context(|| {
        format!("rank {} of {}: saving its optimizer shard", group.rank(), group.world())
    })?;
    group.barrier()
}

/// Put the finished `tmp` folder in the place of `dir`, whose unfinished content goes.
fn replace_folder(tmp: &Path, dir: &Path) -> Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)
            .with_context(|| format!("removing the unfinished {}", dir.display()))?;
    }
    rename_into_place(tmp, dir)
}

/// Commit `out` with every file of its folder listed.
fn commit_listing(out: StageOutput, metrics: &CheckpointMetrics) -> Result<Manifest> {
    let files = files_in(out.dir())?;
    let listed: Vec<(&str, u64)> = files.iter().map(|f| (f.as_str(), 0)).collect();
    out.commit_with_files(&listed, metrics)
}

/// What an earlier, killed save may have left beside `dir`: `<dir>.tmp/`, and the model
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
