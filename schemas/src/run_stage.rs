//! [`run_stage`]: the lifecycle every stage part goes through, written once, so that a stage's
//! own code is only its step of the method.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

use crate::{
    commit::tmp_path, metrics::StageMetrics, parquet_io::write_shard, Manifest, ShardRow,
    ShardWriter, StageOutput,
};

/// A file written beside the shard at commit time: its name, and what writes it (returns rows).
type ExtraFile = (String, Box<dyn FnOnce(&Path) -> Result<u64>>);

/// One stage part while its step runs: the output it will commit and, once [`Part::begin`]
/// has been called, the writer of its shard.
///
/// Nothing the step does replaces a finished output: the shard is written under its
/// temporary name, and the old manifest goes only when the step has succeeded, just before
/// the new files are renamed into place and the new manifest is written.
pub struct Part<R: ShardRow> {
    out: Option<StageOutput>,
    writer: Option<ShardWriter<R>>,
    extra_files: Vec<ExtraFile>,
}

impl<R: ShardRow> Part<R> {
    fn output(&self) -> &StageOutput {
        self.out.as_ref().expect("a part's output is taken only by commit")
    }

    /// The folder the part writes into.
    pub fn dir(&self) -> &Path {
        self.output().dir()
    }

    /// Record the device the step computes on (`cpu`, `cuda:0`).
    pub fn device(&mut self, device: &str) {
        self.out = self.out.take().map(|o| o.device(device));
    }

    /// Every input has been read and checked: open the part's shard for writing (under its
    /// temporary name).
    pub fn begin(&mut self) -> Result<&mut ShardWriter<R>> {
        if self.writer.is_none() {
            self.writer = Some(ShardWriter::create(self.output().part_path())?);
        }
        Ok(self.writer.as_mut().expect("just opened"))
    }

    /// A Parquet file `name` beside the shard (a summary), written at commit and listed in
    /// the manifest.
    pub fn extra_shard<T: ShardRow + 'static>(&mut self, name: &str, rows: Vec<T>) {
        let file = name.to_string();
        let write = move |dir: &Path| write_shard(dir.join(&file), &rows);
        self.extra_files.push((name.to_string(), Box::new(write)));
    }

    fn commit(mut self, metrics: &impl StageMetrics) -> Result<Manifest> {
        let Some(writer) = self.writer.take() else {
            bail!("{}: the stage committed without calling begin()", self.dir().display());
        };
        let out = self.out.take().expect("committed once");
        // From here the part reads as unfinished until its new manifest is written.
        out.unfinish()?;
        writer.finish()?;
        let mut files = Vec::new();
        for (name, write) in self.extra_files {
            files.push((name, write(out.dir())?));
        }
        let files: Vec<(&str, u64)> = files.iter().map(|(f, n)| (f.as_str(), *n)).collect();
        out.commit_with_files(&files, metrics)
    }

    fn part_path(&self) -> PathBuf {
        self.output().part_path()
    }
}

/// Run one stage part: skip it when it is already done for these inputs and configuration
/// (unless `force`); otherwise run `step`, which reads and checks every input, calls
/// [`Part::begin`] and writes its rows, and returns its metrics; then put the new files in
/// place and write the manifest last. An error in the step leaves a finished output as it was
/// — bad input never removes one — and removes the step's half-written shard. Returns the
/// manifest and metrics, or `None` if skipped.
pub fn run_stage<R: ShardRow, M: StageMetrics>(
    out: StageOutput,
    force: bool,
    step: impl FnOnce(&mut Part<R>) -> Result<M>,
) -> Result<Option<(Manifest, M)>> {
    if out.skip(force)? {
        return Ok(None);
    }
    let mut part = Part { out: Some(out), writer: None, extra_files: Vec::new() };
    let metrics = match step(&mut part) {
        Ok(m) => m,
        Err(e) => {
            if part.writer.take().is_some() {
                let _ = std::fs::remove_file(tmp_path(&part.part_path()));
            }
            return Err(e);
        }
    };
    // A commit that fails (a full disk) leaves no half-written shard taking space.
    let shard_tmp = tmp_path(&part.part_path());
    let manifest = part.commit(&metrics).inspect_err(|_| {
        let _ = std::fs::remove_file(&shard_tmp);
    })?;
    Ok(Some((manifest, metrics)))
}
