//! Reading a stage's input folder: only when every part has committed, only the files its
//! manifests record, each checked against the size and digest its manifest recorded, and
//! with each row's file and row number kept for error messages. Every stage reads its inputs
//! through here.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::{
    integrity::{check_bytes, check_file, corruption_error, Depth, FileState},
    manifest::{Manifest, OutputFile},
    parquet_io::read_shard_bytes,
    ShardRow, ShardSpec,
};

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

/// A Parquet file of a committed folder, with what its manifest recorded about it.
#[derive(Debug, Clone)]
pub struct CommittedFile {
    pub path: PathBuf,
    /// The manifest that lists it.
    pub manifest: PathBuf,
    pub record: OutputFile,
    /// The stage that writes the folder, for messages.
    producer: String,
}

impl CommittedFile {
    /// The file's rows, after checking its size and digest against the manifest (one read:
    /// the digest is taken over the bytes that are then decoded).
    pub fn read_rows<T: ShardRow>(&self) -> Result<Vec<T>> {
        let bytes = std::fs::read(&self.path)
            .with_context(|| format!("reading shard {}", self.path.display()))?;
        let state = check_bytes(&self.record, &bytes);
        if !state.is_intact() {
            return Err(corruption_error(&self.path, &self.manifest, &state, &self.producer));
        }
        read_shard_bytes(&self.path, bytes::Bytes::from(bytes))
    }
}

/// The Parquet files of a committed shard folder, in part order. Refuses, naming what is
/// missing or damaged, a folder that does not exist, has no manifest, lacks some of its
/// parts, or whose manifest lists a file that is gone or has another size than it recorded
/// (the digest is checked when the rows are read, [`CommittedFile::read_rows`]). `producer`
/// names the stage that writes the folder (`spice-challenge`, …) for the error message.
///
/// Manifests of an older split of the folder (another part count) are not part of its output:
/// the split of the first manifest in name order counts.
pub fn committed_files(dir: &Path, producer: &str) -> Result<Vec<CommittedFile>> {
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
    let mut files: Vec<CommittedFile> = Vec::new();
    for m in ours {
        let manifest = dir.join(m.shard.manifest_file());
        for out in m.outputs.iter().filter(|o| o.file.ends_with(".parquet")) {
            let path = dir.join(&out.file);
            match check_file(dir, out, Depth::Size)? {
                FileState::Intact => {}
                FileState::Missing => bail!(
                    "{}: its manifest lists {} but the file is gone; rerun `{producer}` with \
                     --force",
                    dir.display(),
                    out.file
                ),
                state => return Err(corruption_error(&path, &manifest, &state, producer)),
            }
            files.push(CommittedFile {
                path,
                manifest: manifest.clone(),
                record: out.clone(),
                producer: producer.to_string(),
            });
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    files.dedup_by(|a, b| a.path == b.path);
    Ok(files)
}

/// Every row of a committed folder, in file order, each with its location. Each file is
/// checked against its manifest's digest as it is read.
pub fn read_committed<T: ShardRow>(dir: &Path, producer: &str) -> Result<Vec<Located<T>>> {
    let mut rows = Vec::new();
    for file in committed_files(dir, producer)? {
        let part = file.read_rows::<T>()?;
        rows.extend(
            part.into_iter()
                .enumerate()
                .map(|(row, value)| Located { at: RowAt { file: file.path.clone(), row }, value }),
        );
    }
    Ok(rows)
}

/// [`read_committed`] without the locations, for stages whose errors name rows by their ids.
pub fn read_committed_rows<T: ShardRow>(dir: &Path, producer: &str) -> Result<Vec<T>> {
    Ok(read_committed(dir, producer)?.into_iter().map(|l| l.value).collect())
}
