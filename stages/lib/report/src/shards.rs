//! Which shards the report reads, and lazy Polars scans over them.
//!
//! Only folders whose stage has committed (every part's manifest written) are read, so an
//! iteration that is still running shows empty cells rather than half a stage's numbers.
//! Every shard's footer is checked against its row type first: a file that is not Parquet,
//! or one of another schema, is an error naming the file (and the column).

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use polars::prelude::{
    col, concat, lit, DataFrame, DataType, Expr, LazyFrame, PlRefPath, ScanArgsParquet, UnionArgs,
};
use spice_schemas::{
    layout::RunLayout, manifest::folder_complete, parquet_io::check_schema, Manifest, ShardRow,
};

/// Name of the column every scan gets: the iteration of the folder the shard lies in.
pub const ITER: &str = "iter";

/// The committed shard files of one kind of folder (`tasks`, `eval-checkpoint`, …) over the
/// iterations of a run.
pub struct Shards {
    pub folder: &'static str,
    /// Iterations whose folder has committed.
    pub complete: Vec<u32>,
    pub files: Vec<(u32, PathBuf)>,
}

impl Shards {
    /// Shards of folder `name` in every iteration where it is complete, after checking each
    /// footer against `T`.
    pub fn find<T: ShardRow>(
        layout: &RunLayout,
        iterations: &[u32],
        name: &'static str,
    ) -> Result<Self> {
        let (mut files, mut done) = (Vec::new(), Vec::new());
        for &it in iterations {
            let dir = layout.folder(it, name);
            let Some(manifests) = complete(&dir)? else {
                continue;
            };
            done.push(it);
            // The part files the manifests list: not a leftover of an earlier split of the
            // stage, nor other files kept beside the shards (`eval/summary.parquet`).
            let mut parts: Vec<PathBuf> = manifests
                .iter()
                .flat_map(|m| m.outputs.iter())
                .filter(|o| o.file.starts_with("part-") && o.file.ends_with(".parquet"))
                .map(|o| dir.join(&o.file))
                .collect();
            parts.sort();
            for file in parts {
                if !file.is_file() {
                    bail!("{}: listed in the folder's manifest but missing", file.display());
                }
                check_footer::<T>(&file)?;
                files.push((it, file));
            }
        }
        Ok(Self { folder: name, complete: done, files })
    }

    /// One lazy frame over every shard, with the columns `columns` and [`ITER`]; `None`
    /// when no iteration has this folder yet.
    pub fn scan(&self, columns: &[&str]) -> Result<Option<LazyFrame>> {
        if self.files.is_empty() {
            return Ok(None);
        }
        let frames = self
            .files
            .iter()
            .map(|(it, file)| scan_one(file, *it, columns))
            .collect::<Result<Vec<_>>>()?;
        let all = concat(frames, UnionArgs::default())
            .with_context(|| format!("combining the `{}` shards", self.folder))?;
        Ok(Some(all))
    }

    /// Run `query` over the scan of `columns`. When Polars fails (a shard corrupt past its
    /// footer), each shard is run alone to name the one that fails.
    pub fn collect(
        &self,
        columns: &[&str],
        query: impl Fn(LazyFrame) -> LazyFrame,
    ) -> Result<Option<DataFrame>> {
        let Some(lf) = self.scan(columns)? else {
            return Ok(None);
        };
        match query(lf).collect() {
            Ok(df) => Ok(Some(df)),
            Err(e) => {
                for (it, file) in &self.files {
                    if let Err(one) =
                        scan_one(file, *it, columns).and_then(|lf| Ok(query(lf).collect()?))
                    {
                        return Err(one)
                            .with_context(|| format!("{}: cannot be read", file.display()));
                    }
                }
                Err(e).with_context(|| format!("reading the `{}` shards", self.folder))
            }
        }
    }
}

/// Manifests of a folder when every part has committed, else `None`.
pub fn complete(dir: &Path) -> Result<Option<Vec<Manifest>>> {
    folder_complete(dir).with_context(|| format!("reading the manifests of {}", dir.display()))
}

fn scan_one(file: &Path, iteration: u32, columns: &[&str]) -> Result<LazyFrame> {
    let path = PlRefPath::try_from_path(file)
        .with_context(|| format!("{}: not a usable path", file.display()))?;
    let args = ScanArgsParquet { glob: false, ..Default::default() };
    let lf = LazyFrame::scan_parquet(path, args)
        .with_context(|| format!("{}: cannot be scanned", file.display()))?;
    let mut exprs: Vec<Expr> = columns.iter().map(|c| col(*c)).collect();
    exprs.push(lit(iteration).cast(DataType::UInt32).alias(ITER));
    Ok(lf.select(exprs))
}

/// The footer alone: readable Parquet, and the schema (id, columns, types) of `T`.
fn check_footer<T: ShardRow>(file: &Path) -> Result<()> {
    let f = File::open(file).with_context(|| format!("opening shard {}", file.display()))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(f).with_context(|| {
        format!("{} is not a readable Parquet file (corrupt or truncated?)", file.display())
    })?;
    check_schema::<T>(file, builder.schema())
}
