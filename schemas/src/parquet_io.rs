//! Parquet shards: zstd-compressed writing under a temporary name, and reading with a schema
//! check that names the file and the column when a shard does not match its row type.

use std::{
    fs::File,
    marker::PhantomData,
    path::{Path, PathBuf},
};

use anyhow::{bail, Context, Result};
use arrow::{datatypes::DataType, record_batch::RecordBatch};
use parquet::{
    arrow::{arrow_reader::ParquetRecordBatchReaderBuilder, ArrowWriter},
    basic::{Compression, ZstdLevel},
    file::properties::WriterProperties,
};

use crate::{
    commit::{rename_into_place, tmp_path},
    shard::{ShardRow, SCHEMA_KEY},
};

/// Rows buffered before they are encoded as one Parquet row group.
const ROW_GROUP_ROWS: usize = 1024;

/// Writes rows of `T` into one Parquet file. Data goes to `<path>.tmp`; only
/// [`ShardWriter::finish`] renames it to `path`, so a crash never leaves a complete-looking
/// shard behind.
pub struct ShardWriter<T: ShardRow> {
    path: PathBuf,
    tmp: PathBuf,
    writer: Option<ArrowWriter<File>>,
    buffer: Vec<T>,
    rows: u64,
    _row: PhantomData<T>,
}

impl<T: ShardRow> ShardWriter<T> {
    pub fn create(path: impl Into<PathBuf>) -> Result<Self> {
        let path = path.into();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating shard folder {}", dir.display()))?;
        }
        let tmp = tmp_path(&path);
        let file =
            File::create(&tmp).with_context(|| format!("creating shard {}", tmp.display()))?;
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(3)?))
            .set_created_by(format!("spice-rs {}", env!("CARGO_PKG_VERSION")))
            .build();
        let writer = ArrowWriter::try_new(file, T::schema(), Some(props))
            .with_context(|| format!("opening Parquet writer for {}", tmp.display()))?;
        Ok(Self { path, tmp, writer: Some(writer), buffer: Vec::new(), rows: 0, _row: PhantomData })
    }

    pub fn write(&mut self, row: T) -> Result<()> {
        self.buffer.push(row);
        if self.buffer.len() >= ROW_GROUP_ROWS {
            self.flush()?;
        }
        Ok(())
    }

    pub fn write_all(&mut self, rows: impl IntoIterator<Item = T>) -> Result<()> {
        for row in rows {
            self.write(row)?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let batch = to_batch(&self.buffer)?;
        let writer = self.writer.as_mut().expect("writer is open until finish");
        writer.write(&batch).with_context(|| format!("writing {}", self.tmp.display()))?;
        writer.flush().with_context(|| format!("writing {}", self.tmp.display()))?;
        self.rows += self.buffer.len() as u64;
        self.buffer.clear();
        Ok(())
    }

    /// Rows written so far (buffered included).
    pub fn rows(&self) -> u64 {
        self.rows + self.buffer.len() as u64
    }

    /// Close the file, fsync it and rename it into place. Returns the row count.
    pub fn finish(mut self) -> Result<u64> {
        self.flush()?;
        let writer = self.writer.take().expect("writer is open until finish");
        let file =
            writer.into_inner().with_context(|| format!("closing {}", self.tmp.display()))?;
        file.sync_all().with_context(|| format!("syncing {}", self.tmp.display()))?;
        drop(file);
        rename_into_place(&self.tmp, &self.path)?;
        Ok(self.rows)
    }
}

fn to_batch<T: ShardRow>(rows: &[T]) -> Result<RecordBatch> {
    let fields = T::fields();
    let batch = serde_arrow::to_record_batch(&fields, &rows)
        .with_context(|| format!("encoding {} rows as Arrow", T::FOLDER))?;
    // serde_arrow builds the batch without our metadata; attach the full schema.
    Ok(batch.with_schema(T::schema())?)
}

/// Write all `rows` to `path` in one go (temporary name, then rename).
pub fn write_shard<T: ShardRow>(path: impl Into<PathBuf>, rows: &[T]) -> Result<u64> {
    let path = path.into();
    let written = ShardWriter::<T>::create(&path).and_then(|mut writer| {
        writer.write_all(rows.iter().cloned())?;
        writer.finish()
    });
    if written.is_err() {
        // Half a shard (a full disk) is of no use to anyone: it goes.
        let _ = std::fs::remove_file(tmp_path(&path));
    }
    written
}

/// Read every row of one shard, after checking that its schema is `T`'s.
pub fn read_shard<T: ShardRow>(path: &Path) -> Result<Vec<T>> {
    let file = File::open(path).with_context(|| format!("opening shard {}", path.display()))?;
    decode_shard(path, file)
}

/// Decode the rows of a shard already read into memory (`path` names it in errors).
pub fn read_shard_bytes<T: ShardRow>(path: &Path, bytes: bytes::Bytes) -> Result<Vec<T>> {
    decode_shard(path, bytes)
}

fn decode_shard<T: ShardRow, R: parquet::file::reader::ChunkReader + 'static>(
    path: &Path,
    source: R,
) -> Result<Vec<T>> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(source).with_context(|| {
        format!("{} is not a readable Parquet file (corrupt or truncated?)", path.display())
    })?;
    check_schema::<T>(path, builder.schema())?;
    let reader = builder
        .with_batch_size(ROW_GROUP_ROWS)
        .build()
        .with_context(|| format!("reading {}", path.display()))?;
    let mut rows = Vec::new();
    for (i, batch) in reader.enumerate() {
        let batch =
            batch.with_context(|| format!("{}: corrupt record batch {i}", path.display()))?;
        let part: Vec<T> = serde_arrow::from_record_batch(&batch).with_context(|| {
            format!("{}: batch {i} does not decode as {} rows", path.display(), T::schema_id())
        })?;
        rows.extend(part);
    }
    Ok(rows)
}

/// Check a file's Arrow schema against the row type: schema id, then every column's presence
/// and type. The error names the file and the first column that does not fit.
pub fn check_schema<T: ShardRow>(path: &Path, found: &arrow::datatypes::Schema) -> Result<()> {
    let want_id = T::schema_id();
    match found.metadata().get(SCHEMA_KEY) {
        Some(id) if *id == want_id => {}
        Some(id) => bail!(
            "{}: shard has schema `{id}`, expected `{want_id}` (written by another version of \
             spice-rs? rerun the stage that wrote it with --force)",
            path.display()
        ),
        None => bail!(
            "{}: not a spice-rs `{want_id}` shard (no `{SCHEMA_KEY}` metadata)",
            path.display()
        ),
    }
    for want in T::fields() {
        let Ok(have) = found.field_with_name(want.name()) else {
            bail!(
                "{}: column `{}` is missing (expected {})",
                path.display(),
                want.name(),
                want.data_type()
            );
        };
        if !same_type(have.data_type(), want.data_type()) {
            bail!(
                "{}: column `{}` has type {}, expected {}",
                path.display(),
                want.name(),
                have.data_type(),
                want.data_type()
            );
        }
    }
    Ok(())
}

/// Types match up to the names of list item fields (readers differ on `item`/`element`).
fn same_type(a: &DataType, b: &DataType) -> bool {
    match (a, b) {
        (DataType::List(x), DataType::List(y))
        | (DataType::LargeList(x), DataType::LargeList(y)) => {
            same_type(x.data_type(), y.data_type())
        }
        _ => a == b,
    }
}

/// The Parquet shards of a folder, sorted by name (`part-00000.parquet`, …). Temporary files
/// of unfinished writers are never included, nor other Parquet files a stage keeps beside its
/// shards (`eval/summary.parquet`).
pub fn shard_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("reading shard folder {} (has its stage run?)", dir.display()))?;
    for entry in entries {
        let path = entry?.path();
        let is_part =
            path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("part-"));
        if is_part && path.extension().is_some_and(|e| e == "parquet") && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Read every shard of a folder, in file order.
pub fn read_folder<T: ShardRow>(dir: &Path) -> Result<Vec<T>> {
    let mut rows = Vec::new();
    for file in shard_files(dir)? {
        rows.extend(read_shard::<T>(&file)?);
    }
    Ok(rows)
}
