//! Shards written by our code are read by the real DuckDB and Polars Python packages, with the
//! expected column names and types.

mod common;

use std::{path::PathBuf, process::Command};

use spice_schemas::{parquet_io::write_shard, ShardRow};

/// The project venv's Python (installed by `just setup`). `just test` exports SPICE_PYTHON;
/// under a bare `cargo test` the venv is looked up beside the workspace.
fn python() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("SPICE_PYTHON") {
        return Some(PathBuf::from(p));
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
    venv.exists().then_some(venv)
}

const SCRIPT: &str = r#"
import json, sys
import duckdb, polars as pl
out = {}
for folder in sys.argv[1:]:
    con = duckdb.connect()
    duck = con.execute(f"DESCRIBE SELECT * FROM '{folder}/*.parquet'").fetchall()
    n_duck = con.execute(f"SELECT count(*) FROM '{folder}/*.parquet'").fetchone()[0]
    df = pl.read_parquet(f"{folder}/*.parquet")
    out[folder] = {
        "duckdb": [[name, typ] for name, typ, *_ in duck],
        "duckdb_rows": n_duck,
        "polars": [[name, str(dtype)] for name, dtype in df.schema.items()],
        "polars_rows": df.height,
    }
print(json.dumps(out))
"#;

/// The DuckDB and Polars type names our Arrow types must come out as.
fn expected(dt: &arrow::datatypes::DataType) -> (String, String) {
    use arrow::datatypes::DataType::*;
    match dt {
        Utf8 => ("VARCHAR".into(), "String".into()),
        Boolean => ("BOOLEAN".into(), "Boolean".into()),
        UInt32 => ("UINTEGER".into(), "UInt32".into()),
        UInt64 => ("UBIGINT".into(), "UInt64".into()),
        Float32 => ("FLOAT".into(), "Float32".into()),
        Float64 => ("DOUBLE".into(), "Float64".into()),
        List(item) => {
            let (d, p) = expected(item.data_type());
            (format!("{d}[]"), format!("List({p})"))
        }
        other => panic!("no reader mapping for {other}"),
    }
}

#[test]
fn duckdb_and_polars_read_every_shard_type() {
    let Some(python) = python() else {
        println!("SKIP duckdb_and_polars_read_every_shard_type: no project venv (run `just setup`, or set SPICE_PYTHON)");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let mut folders: Vec<(PathBuf, Vec<arrow::datatypes::FieldRef>, usize)> = Vec::new();
    fn add<T: ShardRow>(
        tmp: &std::path::Path,
        rows: Vec<T>,
        out: &mut Vec<(PathBuf, Vec<arrow::datatypes::FieldRef>, usize)>,
    ) {
        let dir = tmp.join(T::FOLDER);
        write_shard(dir.join("part-00000.parquet"), &rows).unwrap();
        out.push((dir, T::fields(), rows.len()));
    }
    add(tmp.path(), common::chunks(), &mut folders);
    add(tmp.path(), common::challenger(), &mut folders);
    add(tmp.path(), common::tasks(), &mut folders);
    add(tmp.path(), common::rollouts(), &mut folders);
    add(tmp.path(), common::scored(), &mut folders);
    add(tmp.path(), common::update(), &mut folders);
    add(tmp.path(), common::eval(), &mut folders);

    let output = Command::new(&python)
        .arg("-c")
        .arg(SCRIPT)
        .args(folders.iter().map(|(d, _, _)| d))
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", python.display()));
    assert!(
        output.status.success(),
        "{} could not read the shards (are duckdb and polars installed? `just setup`):\n{}",
        python.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let seen: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    for (dir, fields, rows) in &folders {
        let got = &seen[dir.to_str().unwrap()];
        assert_eq!(got["duckdb_rows"], *rows as u64);
        assert_eq!(got["polars_rows"], *rows as u64);
        for (reader, idx) in [("duckdb", 0), ("polars", 1)] {
            let cols = got[reader].as_array().unwrap();
            assert_eq!(
                cols.len(),
                fields.len(),
                "{reader} sees other columns in {}",
                dir.display()
            );
            for (col, field) in cols.iter().zip(fields) {
                let want = expected(field.data_type());
                let want = if idx == 0 { want.0 } else { want.1 };
                assert_eq!(
                    col[0],
                    field.name().as_str(),
                    "{reader}: column order/name in {}",
                    dir.display()
                );
                assert_eq!(
                    col[1],
                    want.as_str(),
                    "{reader}: type of {}.{}",
                    dir.display(),
                    field.name()
                );
            }
        }
    }
    println!(
        "duckdb and polars read {} shard types with the expected names and types",
        folders.len()
    );
}
