//! The commit protocol: outputs are written under temporary names and renamed into place,
//! and the manifest is written last. A folder (or a part of one) is *done* when its manifest
//! exists and records the same input digests and config digest as the run about to start.
//!
//! ```no_run
//! # use spice_schemas::{StageOutput, ShardSpec, rows::TaskRow, ShardWriter, metrics::NoMetrics};
//! # fn main() -> anyhow::Result<()> {
//! # let (dir, cfg, force) = (std::path::Path::new("x"), serde_json::json!({}), false);
//! let out = StageOutput::new(dir, "verify-filter", ShardSpec::WHOLE)
//!     .input("challenger", std::path::Path::new("iter-0000/challenger"))?
//!     .config(&cfg)
//!     .seed(7);
//! if out.skip(force)? { return Ok(()); }
//! // ... read and check every input ...
//! out.begin()?;
//! let mut w = ShardWriter::<TaskRow>::create(out.part_path())?;
//! // ... w.write(row)? ...
//! w.finish()?;
//! out.commit(&NoMetrics {})?;
//! # Ok(()) }
//! ```

use std::{
    path::{Path, PathBuf},
    time::{Instant, SystemTime},
};

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::{
    digest::{digest_path, sha256_bytes, sha256_file, sha256_json, InputDigest},
    integrity::size_of,
    manifest::{host_name, Manifest, OutputFile},
    metrics::StageMetrics,
    shard::ShardSpec,
};

/// `<path>.tmp`: where a file is written before it is renamed into place.
pub fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Rename `tmp` onto `path` (atomic on one filesystem) and sync the folder entry.
pub fn rename_into_place(tmp: &Path, path: &Path) -> Result<()> {
    std::fs::rename(tmp, path)
        .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    if let Some(dir) = path.parent() {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// Write a small file (JSON, TOML) atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let tmp = tmp_path(path);
    if let Err(e) = std::fs::write(&tmp, bytes) {
        // Half a file (a full disk) is of no use to anyone: it goes.
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("writing {}", tmp.display()));
    }
    rename_into_place(&tmp, path)
}

/// The run folder that holds `dir`: its nearest ancestor with a `run.toml`.
pub fn run_root(dir: &Path) -> Option<PathBuf> {
    let dir = std::path::absolute(dir).ok()?;
    dir.ancestors().find(|a| a.join("run.toml").is_file()).map(Path::to_path_buf)
}

/// `path` relative to the run folder of the output folder `out_dir` when it lies inside it
/// (`iter-0002/tasks`), else as given.
fn run_relative(out_dir: &Path, path: &Path) -> PathBuf {
    let (Some(root), Ok(abs)) = (run_root(out_dir), std::path::absolute(path)) else {
        return path.to_path_buf();
    };
    match abs.strip_prefix(&root) {
        Ok(rel) if !rel.as_os_str().is_empty() => rel.to_path_buf(),
        _ => path.to_path_buf(),
    }
}

/// Whether a stage part must run.
#[derive(Debug, Clone, PartialEq)]
pub enum Status {
    /// Committed with the same inputs and config: nothing to do.
    Done(Box<Manifest>),
    /// Committed, but with other inputs or config (the reason says which).
    Stale(String),
    /// Never committed (or died before committing).
    Missing,
}

/// One part of one stage's output folder, from the start of the work to its manifest.
pub struct StageOutput {
    dir: PathBuf,
    stage: String,
    shard: ShardSpec,
    iteration: Option<u32>,
    schema: Option<String>,
    inputs: Vec<InputDigest>,
    config_digest: String,
    seed: u64,
    device: Option<String>,
    started: Instant,
    started_at: SystemTime,
}

impl StageOutput {
    pub fn new(dir: &Path, stage: &str, shard: ShardSpec) -> Self {
        Self {
            dir: dir.to_path_buf(),
            stage: stage.to_string(),
            shard,
            iteration: None,
            schema: None,
            inputs: Vec::new(),
            config_digest: sha256_bytes(b""),
            seed: 0,
            device: None,
            started: Instant::now(),
            started_at: SystemTime::now(),
        }
    }

    /// Record an input (file or folder) by content digest, and by its path relative to the
    /// run folder when it lies inside it, so a moved run keeps its records.
    pub fn input(mut self, name: &str, path: &Path) -> Result<Self> {
        let digest = digest_path(path).with_context(|| format!("digesting input `{name}`"))?;
        let path = run_relative(&self.dir, path);
        self.inputs.push(InputDigest { name: name.to_string(), path, digest });
        Ok(self)
    }

    /// Record the configuration the stage depends on.
    pub fn config<T: Serialize>(mut self, config: &T) -> Self {
        self.config_digest = sha256_json(config);
        self
    }

    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Record the device the stage computes on (`cpu`, `cuda:0`). Not part of what makes a
    /// part done: a run resumed on another device keeps what it finished.
    pub fn device(mut self, device: &str) -> Self {
        self.device = Some(device.to_string());
        self
    }

    pub fn iteration(mut self, iteration: u32) -> Self {
        self.iteration = Some(iteration);
        self
    }

    pub fn schema(mut self, schema_id: String) -> Self {
        self.schema = Some(schema_id);
        self
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn shard(&self) -> ShardSpec {
        self.shard
    }

    /// This part's Parquet file.
    pub fn part_path(&self) -> PathBuf {
        self.dir.join(self.shard.part_file())
    }

    pub fn manifest_path(&self) -> PathBuf {
        self.dir.join(self.shard.manifest_file())
    }

    /// Compare what is on disk with what this run would produce. A pruned folder whose
    /// manifest matches is done: its files were removed on purpose (`crate::prune`).
    pub fn status(&self) -> Result<Status> {
        let path = self.manifest_path();
        if !path.exists() {
            return Ok(Status::Missing);
        }
        let m = Manifest::read(&path)?;
        if m.stage != self.stage {
            return Ok(Status::Stale(format!("written by stage `{}`", m.stage)));
        }
        if m.config_digest != self.config_digest {
            return Ok(Status::Stale("configuration changed".into()));
        }
        if m.seed != self.seed {
            return Ok(Status::Stale(format!("seed changed ({} -> {})", m.seed, self.seed)));
        }
        // Inputs are their content: the same digests under another path (a moved run, a
        // model copied elsewhere) are the same inputs.
        let same = |a: &InputDigest, b: &InputDigest| a.name == b.name && a.digest == b.digest;
        let changed: Vec<&str> = self
            .inputs
            .iter()
            .filter(|i| !m.inputs.iter().any(|r| same(r, i)))
            .map(|i| i.name.as_str())
            .collect();
        if !changed.is_empty() || m.inputs.len() != self.inputs.len() {
            let what = if changed.is_empty() { "their number".into() } else { changed.join(", ") };
            return Ok(Status::Stale(format!("inputs changed: {what}")));
        }
        // A folder pruned on purpose (`prune.rs`) lost its files, not what it was made from.
        let pruned = crate::prune::is_pruned(&self.dir);
        for out in &m.outputs {
            if !pruned && !self.dir.join(&out.file).exists() {
                return Ok(Status::Stale(format!("output {} is missing", out.file)));
            }
        }
        Ok(Status::Done(Box::new(m)))
    }

    /// Whether this part can be skipped: committed for the same inputs and configuration, and
    /// not `force`d. Logs why a part that exists must be redone. Changes nothing on disk: a
    /// stale or missing part is cleared only by [`StageOutput::begin`].
    pub fn skip(&self, force: bool) -> Result<bool> {
        if force {
            return Ok(false);
        }
        match self.status()? {
            Status::Done(_) => {
                tracing::info!(
                    "{} is done for these inputs and configuration (--force redoes it)",
                    self.dir.display()
                );
                Ok(true)
            }
            Status::Stale(why) => {
                tracing::info!("redoing {}: {why}", self.dir.display());
                Ok(false)
            }
            Status::Missing => Ok(false),
        }
    }

    /// Start writing this part: its old manifest and any temporary files go, so the folder
    /// reads as unfinished until [`StageOutput::commit`]. A stage calls this only once every
    /// input has been read and checked, so bad input never removes a finished output.
    pub fn begin(&self) -> Result<()> {
        self.unfinish()?;
        // Only this part's leftovers: other parts of a sharded stage may be writing now.
        for path in [tmp_path(&self.part_path()), tmp_path(&self.manifest_path())] {
            if path.exists() {
                std::fs::remove_file(&path)
                    .with_context(|| format!("removing leftover {}", path.display()))?;
            }
        }
        Ok(())
    }

    /// Remove the part's manifest, if any: from here the part reads as unfinished.
    pub fn unfinish(&self) -> Result<()> {
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("creating output folder {}", self.dir.display()))?;
        let manifest = self.manifest_path();
        if manifest.exists() {
            std::fs::remove_file(&manifest)
                .with_context(|| format!("removing stale {}", manifest.display()))?;
        }
        Ok(())
    }

    /// Write the manifest last, recording every output file of this part (the part's
    /// Parquet file when present, plus `extra_files` written by the stage).
    pub fn commit_with_files(
        self,
        extra_files: &[(&str, u64)],
        metrics: &impl StageMetrics,
    ) -> Result<Manifest> {
        let metrics = match serde_json::to_value(metrics)? {
            serde_json::Value::Object(map) => map,
            other => bail!("stage metrics must serialize to a JSON object, not {other}"),
        };
        let mut outputs = Vec::new();
        let part = self.part_path();
        if part.exists() {
            let rows = parquet_rows(&part)?;
            outputs.push(OutputFile {
                file: self.shard.part_file(),
                rows,
                bytes: size_of(&part)?,
                digest: sha256_file(&part)?,
            });
        }
        for (file, rows) in extra_files {
            let path = self.dir.join(file);
            let digest = digest_path(&path)?;
            let bytes = size_of(&path).with_context(|| format!("sizing {}", path.display()))?;
            outputs.push(OutputFile { file: file.to_string(), rows: *rows, bytes, digest });
        }
        let listing: Vec<String> =
            outputs.iter().map(|o| format!("{}\t{}", o.file, o.digest)).collect();
        let finished_at = SystemTime::now();
        let manifest = Manifest {
            stage: self.stage,
            version: env!("CARGO_PKG_VERSION").to_string(),
            schema: self.schema,
            iteration: self.iteration,
            shard: self.shard,
            seed: self.seed,
            config_digest: self.config_digest,
            inputs: self.inputs,
            rows: outputs.iter().map(|o| o.rows).sum(),
            output_digest: sha256_bytes(listing.join("\n").as_bytes()),
            outputs,
            started_at: humantime::format_rfc3339_seconds(self.started_at).to_string(),
            finished_at: humantime::format_rfc3339_seconds(finished_at).to_string(),
            seconds: self.started.elapsed().as_secs_f64(),
            host: host_name(),
            device: self.device,
            metrics,
        };
        let path = self.dir.join(self.shard.manifest_file());
        let json = serde_json::to_vec_pretty(&manifest)?;
        write_atomic(&path, &json)?;
        Ok(manifest)
    }

    /// Write the manifest for a part whose only output is its Parquet file.
    pub fn commit(self, metrics: &impl StageMetrics) -> Result<Manifest> {
        self.commit_with_files(&[], metrics)
    }
}

fn parquet_rows(path: &Path) -> Result<u64> {
    let file = std::fs::File::open(path)?;
    let reader = parquet::file::serialized_reader::SerializedFileReader::new(file)
        .with_context(|| format!("{} is not a readable Parquet file", path.display()))?;
    use parquet::file::reader::FileReader;
    Ok(reader.metadata().file_metadata().num_rows() as u64)
}
