//! Benchmark files the tests write themselves, in the column layouts users have, and the
//! tiny random Llama fixture of spice-lm as the model.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, ListBuilder, StringArray, StringBuilder};
use arrow::record_batch::RecordBatch;
use serde_json::{json, Value};
use spice_eval::{BenchSpec, EvalOptions};

pub fn tiny_model() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../lib/lm/fixtures/tiny-llama3")
}

pub fn write_jsonl(path: &Path, rows: &[Value]) {
    let text: String = rows.iter().map(|r| format!("{r}\n")).collect();
    std::fs::write(path, text).unwrap();
}

/// `n` two-number sums as a custom layout: `q`, `a` (an integer), `topic`, `key`.
pub fn arithmetic_rows(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            let (a, b) = (11 + 7 * i as i64 % 80, 23 + 13 * i as i64 % 70);
            json!({"q": format!("What is {a} + {b}?"), "a": a + b, "topic": if i % 2 == 0 { "even" } else { "odd" }, "key": format!("sum-{i}")})
        })
        .collect()
}

/// A string column (None = null).
pub fn strings(v: &[Option<&str>]) -> ArrayRef {
    Arc::new(StringArray::from(v.to_vec()))
}

pub fn ints(v: &[i64]) -> ArrayRef {
    Arc::new(Int64Array::from(v.to_vec()))
}

pub fn string_lists(v: &[Vec<&str>]) -> ArrayRef {
    let mut b = ListBuilder::new(StringBuilder::new());
    for list in v {
        for s in list {
            b.values().append_value(s);
        }
        b.append(true);
    }
    Arc::new(b.finish())
}

pub fn write_parquet(path: &Path, columns: Vec<(&str, ArrayRef)>) {
    let batch =
        RecordBatch::try_from_iter(columns.into_iter().map(|(n, a)| (n.to_string(), a))).unwrap();
    let file = std::fs::File::create(path).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

/// Six MMLU-Pro questions with 4 to 10 options; gold given as a letter.
pub fn write_mmlu_pro(path: &Path) -> Vec<String> {
    let n_opts = [4usize, 10, 5, 6, 4, 10];
    let opts: Vec<Vec<String>> =
        n_opts.iter().map(|&n| (0..n).map(|j| format!("choice {j}")).collect()).collect();
    let golds: Vec<String> = n_opts
        .iter()
        .enumerate()
        .map(|(i, &n)| ((b'A' + (i % n) as u8) as char).to_string())
        .collect();
    let opt_refs: Vec<Vec<&str>> =
        opts.iter().map(|o| o.iter().map(String::as_str).collect()).collect();
    write_parquet(
        path,
        vec![
            ("question_id", ints(&[70, 71, 72, 73, 74, 75])),
            (
                "question",
                strings(&(0..6).map(|_| Some("Which choice is right?")).collect::<Vec<_>>()),
            ),
            ("options", string_lists(&opt_refs)),
            ("answer", strings(&golds.iter().map(|g| Some(g.as_str())).collect::<Vec<_>>())),
            ("answer_index", ints(&(0..6).map(|i| (i % n_opts[i]) as i64).collect::<Vec<_>>())),
            (
                "category",
                strings(&[
                    Some("law"),
                    Some("math"),
                    Some("law"),
                    Some("math"),
                    Some("law"),
                    Some("physics"),
                ]),
            ),
        ],
    );
    golds
}

/// Options for a CPU evaluation of the tiny model with short answers.
pub fn options(model: &Path, benches: &[&Path], out: &Path) -> EvalOptions {
    EvalOptions {
        model: model.to_path_buf(),
        benches: benches
            .iter()
            .map(|p| p.to_str().unwrap().parse::<BenchSpec>().unwrap())
            .collect(),
        out: out.to_path_buf(),
        preset: None,
        columns: None,
        samples: 1,
        temperature: 0.0,
        max_new_tokens: 12,
        limit: 0,
        batch_size: 8,
        kv_cache_tokens: None,
        device: "cpu".into(),
        dtype: "f32".into(),
        batch_invariant: true,
        seed: 5,
        force: false,
        run: None,
    }
}
