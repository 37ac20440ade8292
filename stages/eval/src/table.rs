//! Benchmark files as rows of JSON objects: JSONL (one object a line) or Parquet (each row
//! converted column by column), so the presets read both the same way.

use std::path::Path;

use anyhow::{bail, Context, Result};
use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::DataType;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::{Map, Value};

/// The rows of a benchmark file and the column names (in file order).
pub struct Table {
    pub columns: Vec<String>,
    pub rows: Vec<Map<String, Value>>,
}

/// Read `.jsonl` / `.json` (JSON lines) or `.parquet`.
pub fn read_table(path: &Path) -> Result<Table> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_ascii_lowercase();
    if name.ends_with(".parquet") {
        read_parquet(path)
    } else if name.ends_with(".jsonl") || name.ends_with(".json") || name.ends_with(".ndjson") {
        read_jsonl(path)
    } else {
        bail!("{}: unknown benchmark file type (expected .parquet or .jsonl)", path.display())
    }
}

fn read_jsonl(path: &Path) -> Result<Table> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut columns: Vec<String> = Vec::new();
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(line)
            .with_context(|| format!("{}: line {} is not valid JSON", path.display(), i + 1))?;
        let Value::Object(obj) = v else {
            bail!("{}: line {} is not a JSON object", path.display(), i + 1);
        };
        for k in obj.keys() {
            if !columns.contains(k) {
                columns.push(k.clone());
            }
        }
        rows.push(obj);
    }
    Ok(Table { columns, rows })
}

fn read_parquet(path: &Path) -> Result<Table> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)
        .with_context(|| format!("{} is not a readable Parquet file", path.display()))?;
    let columns: Vec<String> = builder.schema().fields().iter().map(|f| f.name().clone()).collect();
    let reader = builder.build().with_context(|| format!("reading {}", path.display()))?;
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch.with_context(|| format!("{}: corrupt record batch", path.display()))?;
        for r in 0..batch.num_rows() {
            let mut obj = Map::new();
            for (c, name) in columns.iter().enumerate() {
                let v = cell(batch.column(c), r)
                    .with_context(|| format!("{}: row {r}, column `{name}`", path.display()))?;
                obj.insert(name.clone(), v);
            }
            rows.push(obj);
        }
    }
    Ok(Table { columns, rows })
}

/// One Arrow value as JSON: strings, numbers, booleans and lists of them (what benchmark
/// files hold); any other type as its display text.
fn cell(a: &ArrayRef, r: usize) -> Result<Value> {
    if a.is_null(r) {
        return Ok(Value::Null);
    }
    Ok(match a.data_type() {
        DataType::Utf8 => Value::String(a.as_string::<i32>().value(r).to_string()),
        DataType::LargeUtf8 => Value::String(a.as_string::<i64>().value(r).to_string()),
        DataType::Utf8View => Value::String(a.as_string_view().value(r).to_string()),
        DataType::Boolean => Value::Bool(a.as_boolean().value(r)),
        DataType::List(_) => list(&a.as_list::<i32>().value(r))?,
        DataType::LargeList(_) => list(&a.as_list::<i64>().value(r))?,
        t if t.is_integer() => {
            let c = arrow::compute::cast(&a.slice(r, 1), &DataType::Int64)?;
            Value::from(c.as_primitive::<arrow::datatypes::Int64Type>().value(0))
        }
        t if t.is_floating() => {
            let c = arrow::compute::cast(&a.slice(r, 1), &DataType::Float64)?;
            Value::from(c.as_primitive::<arrow::datatypes::Float64Type>().value(0))
        }
        _ => {
            let f = arrow::util::display::ArrayFormatter::try_new(a.as_ref(), &Default::default())?;
            Value::String(f.value(r).to_string())
        }
    })
}

fn list(a: &ArrayRef) -> Result<Value> {
    Ok(Value::Array((0..a.len()).map(|i| cell(a, i)).collect::<Result<_>>()?))
}
