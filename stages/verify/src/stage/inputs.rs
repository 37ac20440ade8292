//! Reading a stage's input folder: only when every part has committed, only the files its
//! manifests record, and with each row's file and row number kept for error messages.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use spice_schemas::{manifest::folder_complete, read_shard, ShardRow};

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

/// Refuse a folder unless every part of the stage that writes it has committed. `producer`
/// names that stage for the error message (`spice-challenge`, …).
pub fn require_complete(dir: &Path, producer: &str) -> Result<Vec<PathBuf>> {
    if !dir.is_dir() {
        bail!(
            "{} does not exist: run `{producer}` for this iteration first",
            dir.display()
        );
    }
    let Some(manifests) = folder_complete(dir)? else {
        bail!(
            "{} is not finished: not every part has committed its _manifest (is `{producer}` \
             still running, or did a part fail? rerun it for this iteration)",
            dir.display()
        );
    };
    // Manifests of an older run with another part count are not part of this folder's output.
    let count = manifests[0].shard.count;
    let mut files = BTreeSet::new();
    for m in manifests.iter().filter(|m| m.shard.count == count) {
        for out in &m.outputs {
            if out.file.ends_with(".parquet") {
                files.insert(dir.join(&out.file));
            }
        }
    }
    Ok(files.into_iter().collect())
}

/// Every row of a committed folder, in file order, each with its location.
pub fn read_committed<T: ShardRow>(dir: &Path, producer: &str) -> Result<Vec<Located<T>>> {
    let mut rows = Vec::new();
    for file in require_complete(dir, producer)? {
        let part = read_shard::<T>(&file)?;
        rows.extend(part.into_iter().enumerate().map(|(row, value)| Located {
            at: RowAt {
                file: file.clone(),
                row,
            },
            value,
        }));
    }
    Ok(rows)
}
