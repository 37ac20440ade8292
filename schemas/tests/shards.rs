//! Every shard type round-trips through Parquet; wrong or corrupt shards are clear errors.

mod common;

use std::path::Path;

use spice_schemas::{
    parquet_io::{read_folder, read_shard, write_shard},
    rows::*,
    ShardRow,
};

fn round_trip<T: ShardRow + PartialEq + std::fmt::Debug>(rows: Vec<T>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(T::FOLDER).join("part-00000.parquet");
    assert_eq!(write_shard(&path, &rows).unwrap(), rows.len() as u64);
    assert!(!path.with_extension("parquet.tmp").exists(), "temporary file left behind");
    let back: Vec<T> = read_shard(&path).unwrap();
    assert_eq!(back, rows, "{} rows changed through Parquet", T::FOLDER);
}

#[test]
fn every_shard_type_round_trips() {
    round_trip(common::chunks());
    round_trip(common::challenger());
    round_trip(common::tasks());
    round_trip(common::rollouts());
    round_trip(common::scored());
    round_trip(common::update());
    round_trip(common::eval());
}

#[test]
fn many_rows_span_row_groups_and_folders_read_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let rows: Vec<RolloutRow> = (0..2500)
        .map(|i| {
            let mut r = common::rollouts()[i % 8].clone();
            r.sample = i as u32;
            r
        })
        .collect();
    write_shard(dir.path().join("part-00001.parquet"), &rows[1200..]).unwrap();
    write_shard(dir.path().join("part-00000.parquet"), &rows[..1200]).unwrap();
    // An unfinished writer's file must never be read.
    std::fs::write(dir.path().join("part-00002.parquet.tmp"), b"half").unwrap();
    let back: Vec<RolloutRow> = read_folder(dir.path()).unwrap();
    assert_eq!(back, rows);
}

fn err_text<T: std::fmt::Debug>(r: anyhow::Result<T>) -> String {
    format!("{:#}", r.expect_err("expected an error"))
}

#[test]
fn wrong_schema_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("part-00000.parquet");
    write_shard(&path, &common::tasks()).unwrap();
    let msg = err_text(read_shard::<RolloutRow>(&path));
    assert!(
        msg.contains("part-00000.parquet") && msg.contains("tasks/1") && msg.contains("rollouts/1"),
        "{msg}"
    );
}

#[test]
fn missing_or_mistyped_column_is_named() {
    use arrow::{array::*, datatypes::*, record_batch::RecordBatch};
    use std::sync::Arc;
    // A `chunks/1` shard whose `n_tokens` is a string and which lacks `text`.
    let mut fields: Vec<Field> = ChunkRow::fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .filter(|f| f.name() != "text")
        .collect();
    for f in fields.iter_mut() {
        if f.name() == "n_tokens" {
            *f = Field::new("n_tokens", DataType::Utf8, false);
        }
    }
    let schema =
        Arc::new(Schema::new_with_metadata(fields.clone(), ChunkRow::schema().metadata().clone()));
    let columns: Vec<ArrayRef> = fields
        .iter()
        .map(|f| -> ArrayRef {
            match f.data_type() {
                DataType::Utf8 => Arc::new(StringArray::from(vec!["x"])),
                DataType::UInt64 => Arc::new(UInt64Array::from(vec![1])),
                DataType::UInt32 => Arc::new(UInt32Array::from(vec![1])),
                t => panic!("unexpected {t}"),
            }
        })
        .collect();
    let batch = RecordBatch::try_new(schema.clone(), columns).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("part-00000.parquet");
    let mut w =
        parquet::arrow::ArrowWriter::try_new(std::fs::File::create(&path).unwrap(), schema, None)
            .unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    let msg = err_text(read_shard::<ChunkRow>(&path));
    assert!(
        msg.contains("part-00000.parquet") && msg.contains("`n_tokens`") && msg.contains("Utf8"),
        "{msg}"
    );
}

#[test]
fn corrupt_and_absent_shards_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("part-00000.parquet");
    write_shard(&path, &common::rollouts()).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let msg = err_text(read_shard::<RolloutRow>(&path));
    assert!(msg.contains("part-00000.parquet") && msg.contains("corrupt"), "{msg}");
    let missing = Path::new("/nonexistent/part-00000.parquet");
    assert!(err_text(read_shard::<RolloutRow>(missing)).contains("/nonexistent/part-00000.parquet"));
    assert!(err_text(read_folder::<RolloutRow>(Path::new("/nonexistent/tasks")))
        .contains("/nonexistent/tasks"));
}
