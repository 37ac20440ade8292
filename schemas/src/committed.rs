//! Reading a stage's input folder: only when every part has committed, only the files its
//! manifests record, and with each row's file and row number kept for error messages. Every
//! stage reads its inputs through here.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

use crate::{manifest::Manifest, read_shard, ShardRow, ShardSpec};

/// Where a row came from: `<file> row <n>` (0-based, in file order).
#[derive(Debug, Clone)]
pub struct RowAt {
    pub file: PathBuf,
    pub row: usize,
}

impl fmt::Display for RowAt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} row {}", self.file.display(), self.row)
    }
}

/// A row and where it came from.
#[derive(Debug, Clone)]
pub struct Located<T> {
    pub at: RowAt,
    pub value: T,
}

/// The Parquet files of a committed shard folder, in part order. Refuses, naming what is
/// missing, a folder that does not exist, has no manifest, lacks some of its parts, or whose
/// manifest lists a file that is gone. `producer` names the stage that writes the folder
/// (`spice-challenge`, …) for the error message.
///
/// Manifests of an older split of the folder (another part count) are not part of its output:
/// the split of the first manifest in name order counts.
pub fn committed_files(dir: &Path, producer: &str) -> Result<Vec<PathBuf>> {
    if !dir.is_dir() {
        bail!("{} does not exist: run `{producer}` for this iteration first", dir.display());
    }
    let manifests = Manifest::read_all(dir)?;
    let Some(first) = manifests.first() else {
        bail!(
            "{} is not finished: it has no _manifest.json (is `{producer}` still running, or was \
             it killed?); run it again",
            dir.display()
        );
    };
    let count = first.shard.count;
    let ours: Vec<&Manifest> = manifests.iter().filter(|m| m.shard.count == count).collect();
    let missing: Vec<String> = (0..count)
        .filter(|i| !ours.iter().any(|m| m.shard.index == *i))
        .map(|index| ShardSpec { index, count }.manifest_file())
        .collect();
    if !missing.is_empty() {
        bail!(
            "{} is not finished: {} of {count} part(s) have not committed, so it is incomplete \
             (missing {}); is `{producer}` still running, or did a part fail? run it for those \
             parts",
            dir.display(),
            missing.len(),
            missing.join(", ")
        );
    }
    let mut files = Vec::new();
    for m in ours {
        for out in m.outputs.iter().filter(|o| o.file.ends_with(".parquet")) {
            let path = dir.join(&out.file);
            if !path.is_file() {
                bail!(
                    "{}: its manifest lists {} but the file is gone; rerun `{producer}` with \
                     --force",
                    dir.display(),
                    out.file
                );
            }
            files.push(path);
        }
    }
    files.sort();
    files.dedup();
    Ok(files)
}

/// Every row of a committed folder, in file order, each with its location.
pub fn read_committed<T: ShardRow>(dir: &Path, producer: &str) -> Result<Vec<Located<T>>> {
    let mut rows = Vec::new();
    for file in committed_files(dir, producer)? {
        let part = read_shard::<T>(&file)?;
        rows.extend(
            part.into_iter()
                .enumerate()
                .map(|(row, value)| Located { at: RowAt { file: file.clone(), row }, value }),
        );
    }
    Ok(rows)
}

/// [`read_committed`] without the locations, for stages whose errors name rows by their ids.
pub fn read_committed_rows<T: ShardRow>(dir: &Path, producer: &str) -> Result<Vec<T>> {
    Ok(read_committed(dir, producer)?.into_iter().map(|l| l.value).collect())
}
