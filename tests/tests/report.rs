//! `spice report`: every number it prints equals the same number computed independently with
//! DuckDB SQL over the same shards and manifests (tests/tests/report_duckdb.py), on a synthetic
//! run that exercises every number (sharded folders, an unfinished iteration, evaluations) and
//! on a real run of the default model, where the numbers the iteration summary also has must
//! agree with it. The plots are real PNG and SVG files, and report.csv / report.json load in
//! DuckDB and Polars. A corrupt or foreign shard is an error naming the file.

mod common;
use common::smoke_run::inspect_run;
use common::*;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::{json, Map, Value};
use spice_schemas::{
    manifest::OutputFile,
    rows::{ChallengerRow, EvalRow, RolloutRow, ScoredRow, TaskRow, UpdateMetricsRow},
    Manifest, ShardRow, ShardSpec, ShardWriter,
};

fn spice_report(run: &Path, args: &[&str]) -> Output {
    Command::new(bin_dir().join("spice"))
        .arg("report")
        .arg("--run")
        .arg(run)
        .args(args)
        .output()
        .unwrap()
}

fn report_json(run: &Path, out: &Path) -> Vec<Value> {
    let o = spice_report(run, &["--format", "json", "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "spice report failed:\n{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice::<Vec<Value>>(&o.stdout).expect("--format json prints a JSON array")
}

/// The DuckDB numbers (and, with `report_dir`, how DuckDB and Polars load the report files).
fn duckdb(run: &Path, report_dir: Option<&Path>) -> Value {
    let python = repo().join(".venv/bin/python");
    let mut cmd = Command::new(&python);
    cmd.arg(repo().join("tests/tests/report_duckdb.py")).arg(run);
    if let Some(d) = report_dir {
        cmd.arg(d);
    }
    let o = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e} (run `just setup`)", python.display()));
    assert!(
        o.status.success(),
        "the DuckDB computation failed (are `duckdb` and `polars` installed in .venv? pipelines/test.sh \
         installs them):\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

/// Equal up to float rounding: 1e-9 relative (or 1e-12 absolute, for sums that cancel to 0);
/// a key missing on one side counts as null.
fn same(path: &str, a: &Value, b: &Value, diffs: &mut Vec<String>) {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            let d = (x - y).abs();
            if !(d <= 1e-9 * x.abs().max(y.abs()) || d <= 1e-12) {
                diffs.push(format!("{path}: report {x} vs DuckDB {y}"));
            }
        }
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                same(
                    &format!("{path}.{k}"),
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                    diffs,
                );
            }
        }
        _ if a == b => {}
        _ => diffs.push(format!("{path}: report {a} vs DuckDB {b}")),
    }
}

fn assert_same_numbers(report: &[Value], duck: &Value) {
    let duck = duck["numbers"].as_array().unwrap();
    assert_eq!(
        report.len(),
        duck.len(),
        "iterations: report {} vs DuckDB {}",
        report.len(),
        duck.len()
    );
    let mut diffs = Vec::new();
    for (r, d) in report.iter().zip(duck) {
        same(&format!("iteration {}", r["iteration"]), r, d, &mut diffs);
    }
    assert!(diffs.is_empty(), "the report and DuckDB disagree:\n{}", diffs.join("\n"));
}

/// Every figure as a non-trivial PNG (magic bytes) and SVG.
fn assert_plots(dir: &Path) {
    for name in [
        "pass_rate",
        "difficulty",
        "valid_rate",
        "loss",
        "stage_time",
        "diversity",
        "zero_advantage",
        "eval",
    ] {
        let png = std::fs::read(dir.join(format!("{name}.png")))
            .unwrap_or_else(|e| panic!("{name}.png: {e}"));
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{name}.png is not a PNG");
        assert!(png.len() > 10_000, "{name}.png has only {} bytes", png.len());
        let svg = std::fs::read_to_string(dir.join(format!("{name}.svg"))).unwrap();
        assert!(
            svg.contains("<svg") && svg.trim_end().ends_with("</svg>"),
            "{name}.svg is not an SVG"
        );
        assert!(
            svg.len() > 3_000 && svg.contains("iteration"),
            "{name}.svg draws nothing: {} bytes",
            svg.len()
        );
    }
}

fn assert_files_load(duck: &Value, iterations: usize) {
    let f = &duck["files"];
    for k in ["duckdb_csv_rows", "duckdb_json_rows", "polars_csv_rows", "polars_json_rows"] {
        assert_eq!(f[k].as_u64(), Some(iterations as u64), "{k}: {f}");
    }
}

#[test]
fn synthetic_run_numbers_equal_duckdb() {
    let tmp = tempfile::TempDir::new().unwrap();
    let run = tmp.path().join("run");
    write_synthetic_run(&run);
    let out = tmp.path().join("report");
    let report = report_json(&run, &out);
    let duck = duckdb(&run, Some(&out));
    assert_same_numbers(&report, &duck);
    assert_files_load(&duck, 4);
    assert_plots(&out);

    // Every number is exercised: iterations 0–2 are complete, 3 stopped after the filter.
    for r in &report[..3] {
        for (k, v) in r.as_object().unwrap() {
            assert!(!v.is_null(), "iteration {}: {k} is empty", r["iteration"]);
        }
        for k in [
            "pass_rate_zero_share",
            "pass_rate_mid_share",
            "pass_rate_one_share",
            "question_overlap",
            "valid_task_rate",
            "challenger_zero_advantage_share",
            "reasoner_zero_advantage_share",
        ] {
            let v = r[k].as_f64().unwrap();
            assert!(
                v > 0.0 && v < 1.0,
                "iteration {}: {k} = {v} is not between 0 and 1",
                r["iteration"]
            );
        }
        assert!(r["invalid_reasons"].as_object().unwrap().len() >= 2, "{}", r["invalid_reasons"]);
        // Every document has two selected attempts in the batch, so one Challenger group each
        // (by group_id, not task); the Reasoner's batch is one task of some documents.
        assert_eq!(r["challenger_groups"], r["documents"]);
        let reasoner_groups = r["reasoner_groups"].as_u64().unwrap();
        assert!(reasoner_groups > 0 && reasoner_groups < r["answered_tasks"].as_u64().unwrap());
        // Intervals contain their proportion and are not points.
        for k in ["valid_task_rate", "reasoner_accuracy"] {
            let (lo, v, hi) = (
                r[format!("{k}_lo")].as_f64().unwrap(),
                r[k].as_f64().unwrap(),
                r[format!("{k}_hi")].as_f64().unwrap(),
            );
            assert!(
                lo < v && v < hi,
                "iteration {}: {k} {v} not inside [{lo}, {hi}]",
                r["iteration"]
            );
        }
        for stage in ["challenge", "rollout", "update"] {
            assert!(r["tokens_per_second"][stage].as_f64().unwrap() > 0.0);
        }
    }
    assert!(
        report.iter().any(|r| r["distinct_questions"].as_u64() < r["valid_tasks"].as_u64()),
        "no duplicate question"
    );
    // Peak memory: the largest of a stage's parts; none where no manifest recorded it.
    assert_eq!(report[0]["peak_rss_mib"]["challenge"], 900.0);
    assert_eq!(report[1]["peak_rss_mib"]["challenge"], 940.0);
    assert_eq!(report[0]["peak_rss_mib"]["rollout"], 700.0);
    assert!(report[1]["peak_rss_mib"]["rollout"].is_null());
    assert!(report[0]["peak_rss_mib"]["eval"].is_null());
    assert_eq!(report[0]["eval_before"].as_object().unwrap().len(), 2);
    assert_eq!(report[2]["eval_after"].as_object().unwrap().len(), 2);
    assert!(report[1]["eval_after"].as_object().unwrap().is_empty());
    for (it, key) in [(0, "eval_before"), (0, "eval_after"), (2, "eval_after")] {
        let r = &report[it];
        for (bench, n) in [("arith", 10), ("mcq", 8)] {
            assert_eq!(r[format!("{key}_answers")][bench], n, "iteration {it} {key}/{bench}");
            let (lo, v, hi) = (
                r[format!("{key}_lo")][bench].as_f64().unwrap(),
                r[key][bench].as_f64().unwrap(),
                r[format!("{key}_hi")][bench].as_f64().unwrap(),
            );
            assert!(0.0 <= lo && lo <= v && v <= hi && hi <= 1.0 && hi - lo > 0.2);
        }
    }
    assert!(report[1]["minutes"]["eval"].is_null());
    let last = &report[3];
    assert!(last["valid_tasks"].as_u64().unwrap() > 0);
    for k in
        ["reasoner_completion_tokens", "answered_tasks", "mean_pass_rate", "loss", "update_steps"]
    {
        assert!(last[k].is_null(), "iteration 3 has no committed {k} yet, got {}", last[k]);
    }

    // The table shows the same run: a column per iteration, a row per number.
    let o = spice_report(&run, &["--out", out.to_str().unwrap()]);
    assert!(o.status.success());
    let table = String::from_utf8(o.stdout).unwrap();
    let head = table.lines().next().unwrap();
    assert!(["iter 0", "iter 1", "iter 2", "iter 3"].iter().all(|c| head.contains(c)), "{head}");
    for label in [
        "valid-task rate",
        "invalid reason #1",
        "mean pass rate p̂",
        "mean r_C",
        "question 3-gram overlap",
        "loss",
        "arith, updated policy",
        "95% CI",
        "Challenger, all 0",
        "Reasoner, all 0",
    ] {
        assert!(table.contains(label), "no `{label}` row in:\n{table}");
    }
    let csv = spice_report(&run, &["--format", "csv", "--out", out.to_str().unwrap()]);
    let csv = String::from_utf8(csv.stdout).unwrap();
    assert_eq!(csv, std::fs::read_to_string(out.join("report.csv")).unwrap());
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    for col in [
        "reasoner_accuracy_lo",
        "reasoner_accuracy_hi",
        "challenger_zero_advantage_share",
        "reasoner_groups",
        "eval_after_lo/arith",
        "eval_after_hi/mcq",
        "eval_before_answers/arith",
    ] {
        assert!(header.contains(&col), "no CSV column {col} in {header:?}");
    }
}

#[test]
fn corrupt_or_foreign_shards_are_named() {
    let tmp = tempfile::TempDir::new().unwrap();
    let run = tmp.path().join("run");
    write_synthetic_run(&run);
    let out = tmp.path().join("report");

    let foreign = run.join("iter-0001/rollouts/part-00001.parquet");
    write_rows::<TaskRow>(&foreign, Vec::new());
    let o = spice_report(&run, &["--out", out.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains(foreign.to_str().unwrap()) && err.contains("tasks/1"),
        "{err}"
    );

    write_synthetic_run(&run);
    let corrupt = run.join("iter-0002/scored/part-00000.parquet");
    std::fs::write(&corrupt, b"not parquet at all").unwrap();
    let o = spice_report(&run, &["--out", out.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains(corrupt.to_str().unwrap()), "{err}");

    // Damage inside the data pages, the footer intact: Polars fails on the rows, and the
    // report then finds which file it was.
    write_synthetic_run(&run);
    let damaged = run.join("iter-0000/challenger/part-00000.parquet");
    let mut bytes = std::fs::read(&damaged).unwrap();
    let half = bytes.len() / 2;
    for b in &mut bytes[8..half] {
        *b = 0xAB;
    }
    std::fs::write(&damaged, bytes).unwrap();
    let o = spice_report(&run, &["--out", out.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains(damaged.to_str().unwrap()), "{err}");

    let o = spice_report(&tmp.path().join("nothing-here"), &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("does not exist"), "{err}");
}

#[test]
fn real_run_numbers_equal_duckdb_and_summary() {
    let Some(run) = inspect_run() else { return };
    let scratch = tempfile::TempDir::new_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let out = scratch.path().join("report");
    let report = report_json(&run, &out);
    let duck = duckdb(&run, Some(&out));
    assert_same_numbers(&report, &duck);
    assert_files_load(&duck, report.len());
    assert_plots(&out);

    // The same quantities as the summary line, which reads the manifests.
    let summary: Vec<Value> = std::fs::read_to_string(run.join("summary.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(summary.len(), report.len());
    let mut diffs = Vec::new();
    for (s, r) in summary.iter().zip(&report) {
        for (sk, rk, tol) in [
            ("documents", "documents", 0.0),
            ("attempts", "attempts", 0.0),
            ("valid_task_rate", "valid_task_rate", 1e-12),
            ("reasoner_answers", "reasoner_answers", 0.0),
            ("mean_pass_rate", "mean_pass_rate", 1e-12),
            ("reasoner_accuracy", "reasoner_accuracy", 1e-12),
            ("loss", "loss", 1e-12),
            ("grad_norm", "grad_norm", 1e-12),
            // Rows store r_C as f32, the manifest averages the f64 values.
            ("mean_challenger_reward", "mean_challenger_reward", 1e-6),
        ] {
            match (s[sk].as_f64(), r[rk].as_f64()) {
                (Some(a), Some(b)) if (a - b).abs() <= tol * a.abs().max(1.0) => {}
                (None, None) => {}
                (a, b) => diffs.push(format!(
                    "iteration {}: {sk}: summary {a:?} vs report {b:?}",
                    r["iteration"]
                )),
            }
        }
    }
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
}

// ---- a synthetic run ----------------------------------------------------------------------

/// xorshift64*: the synthetic run is the same on every machine without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545F4914F6CDD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
    fn pick<'a>(&mut self, v: &[&'a str]) -> &'a str {
        v[self.below(v.len() as u64) as usize]
    }
}

const REASONS: [&str; 4] = ["no_json", "missing_field", "bad_letter", "duplicate_options"];
/// Questions with shared wording, case and punctuation variants, a two-word one and one with
/// no words, so the diversity numbers have something to find.
const QUESTIONS: [&str; 9] = [
    "What is the value of mp.dps after the call?",
    "WHAT is the value of mp.dps after the call",
    "What is the value of mp.prec after the call?",
    "Which function returns the gamma of x in mpmath?",
    "Which function returns the zeta of x in mpmath?",
    "How many arguments does str.split take at most?",
    "Define eigenvalue?",
    "Is the Python GIL released during blocking I/O?",
    "?!",
];

fn write_rows<T: ShardRow>(path: &Path, rows: Vec<T>) {
    let mut w = ShardWriter::<T>::create(path.to_path_buf()).unwrap();
    w.write_all(rows).unwrap();
    w.finish().unwrap();
}

/// The folder's shard for part `part` of `parts` and its manifest (seconds and metrics given).
fn commit<T: ShardRow>(
    dir: &Path,
    it: u32,
    part: u32,
    parts: u32,
    rows: Vec<T>,
    seconds: f64,
    metrics: Value,
) {
    let spec = ShardSpec { index: part, count: parts };
    let n = rows.len() as u64;
    write_rows(&dir.join(spec.part_file()), rows);
    manifest(dir, it, spec, Some(T::schema_id()), n, seconds, metrics);
}

fn manifest(
    dir: &Path,
    it: u32,
    spec: ShardSpec,
    schema: Option<String>,
    rows: u64,
    seconds: f64,
    metrics: Value,
) {
    std::fs::create_dir_all(dir).unwrap();
    let m = Manifest {
        stage: dir.file_name().unwrap().to_string_lossy().into(),
        version: "0.1.0".into(),
        schema,
        iteration: Some(it),
        shard: spec,
        seed: 7,
        config_digest: "sha256:00".into(),
        inputs: Vec::new(),
        outputs: vec![OutputFile {
            file: spec.part_file(),
            rows,
            bytes: 0,
            digest: "sha256:00".into(),
        }],
        output_digest: "sha256:00".into(),
        rows,
        started_at: "2026-01-01T00:00:00Z".into(),
        finished_at: "2026-01-01T00:01:00Z".into(),
        seconds,
        host: "test".into(),
        device: None,
        metrics: match metrics {
            Value::Object(m) => m,
            _ => Map::new(),
        },
    };
    std::fs::write(dir.join(spec.manifest_file()), serde_json::to_vec_pretty(&m).unwrap()).unwrap();
}

fn ids(n: u64, rng: &mut Rng) -> Vec<u32> {
    (0..n).map(|_| rng.below(49_000) as u32).collect()
}

/// Four iterations: 0–2 complete (1 with its generation stages in two parts; evaluations in
/// 0 and 2; a stray tasks part in 2), 3 stopped after the filter with an uncommitted rollout
/// part.
fn write_synthetic_run(run: &Path) {
    if run.exists() {
        std::fs::remove_dir_all(run).unwrap();
    }
    std::fs::create_dir_all(run).unwrap();
    std::fs::write(run.join("run.toml"), "[run]\nname = \"synthetic\"\n").unwrap();
    let mut rng = Rng(0x5eed_1234_abcd);
    let k = 4u32;
    for it in 0..4u32 {
        let dir = run.join(format!("iter-{it:04}"));
        let parts = if it == 1 { 2 } else { 1 };
        let policy = format!("policy@{it:012}");
        let (mut challenger, mut tasks) = (vec![Vec::new(); parts as usize], Vec::new());
        let mut ch_tokens = 0u64;
        for doc in 0..(5 + it) {
            let attempts = 2 + rng.below(4) as u32;
            for a in 0..attempts {
                let kind = if rng.chance(0.5) { "mcq" } else { "free_form" };
                // The first attempts of three documents are valid, so every iteration has
                // tasks at p̂ = 0, between, and 1.
                let valid = (a == 0 && doc < 3) || rng.chance(0.35 + 0.1 * it as f64);
                let selected = a < 2;
                let len = 10 + rng.below(50);
                ch_tokens += len;
                let task_id = format!("i{it:04}-d{doc:03}-a{a:04}");
                challenger[(doc % parts) as usize].push(ChallengerRow {
                    iteration: it,
                    doc_slot: doc,
                    chunk_id: format!("c{doc}"),
                    attempt: a,
                    task_kind: kind.into(),
                    answer_type: (kind == "free_form").then(|| "integer".into()),
                    format_completion: None,
                    prompt_set: "compact".into(),
                    prompt: "p".into(),
                    prompt_ids: vec![1, 2, 3],
                    response_prefix: "{\"question\": \"".into(),
                    completion: "c".into(),
                    completion_ids: ids(len, &mut rng),
                    logprobs: vec![-0.5; len as usize],
                    finish_reason: if rng.chance(0.2) { "length" } else { "stop" }.into(),
                    seed: rng.next(),
                    policy_id: policy.clone(),
                    parsed_valid: valid,
                    selected,
                });
                let reason = (!valid).then(|| {
                    if rng.chance(0.1) {
                        None
                    } else {
                        Some(rng.pick(&REASONS).to_string())
                    }
                });
                tasks.push(TaskRow {
                    task_id,
                    iteration: it,
                    doc_slot: doc,
                    chunk_id: format!("c{doc}"),
                    attempt: a,
                    selected,
                    valid,
                    invalid_reason: reason.flatten(),
                    invalid_detail: (!valid).then(|| "detail".into()),
                    task_kind: kind.into(),
                    question: (valid || rng.chance(0.5)).then(|| rng.pick(&QUESTIONS).to_string()),
                    options: if kind == "mcq" {
                        vec!["a".into(), "b".into(), "c".into(), "d".into()]
                    } else {
                        Vec::new()
                    },
                    answer: valid.then(|| "B".into()),
                    answer_type: (kind == "free_form").then(|| "integer".into()),
                    raw_json: None,
                    policy_id: policy.clone(),
                });
            }
        }
        for (p, rows) in challenger.into_iter().enumerate() {
            let secs = 30.0 + 7.0 * p as f64 + it as f64;
            let m = json!({"new_tokens": ch_tokens / parts as u64 + p as u64, "generation_seconds": secs * 0.8, "peak_rss_mib": 900.0 + 40.0 * p as f64});
            commit(&dir.join("challenger"), it, p as u32, parts, rows, secs, m);
        }
        commit(&dir.join("tasks"), it, 0, 1, tasks.clone(), 0.5 + it as f64, json!({}));
        if it == 2 {
            // A leftover of an earlier split of the stage, listed by no manifest: not read.
            write_rows(&dir.join("tasks/part-00001.parquet"), tasks[..3].to_vec());
        }

        // Rollouts: K answers per valid selected task; the last iteration never commits them.
        let answered: Vec<&TaskRow> = tasks.iter().filter(|t| t.valid && t.selected).collect();
        let mut rollouts = vec![Vec::new(); parts as usize];
        let mut ro_tokens = 0u64;
        for (i, t) in answered.iter().enumerate() {
            for s in 0..k {
                let len = 5 + rng.below(80);
                ro_tokens += len;
                rollouts[i % parts as usize].push(RolloutRow {
                    task_id: t.task_id.clone(),
                    iteration: it,
                    doc_slot: t.doc_slot,
                    sample: s,
                    prompt: "q".into(),
                    prompt_ids: vec![4, 5],
                    completion: "a".into(),
                    completion_ids: ids(len, &mut rng),
                    logprobs: vec![-1.0; len as usize],
                    finish_reason: "stop".into(),
                    seed: rng.next(),
                    policy_id: policy.clone(),
                });
            }
        }
        if it == 3 {
            write_rows(&dir.join("rollouts/part-00000.parquet"), rollouts.concat());
            continue;
        }
        for (p, rows) in rollouts.into_iter().enumerate() {
            let secs = 50.0 + 3.0 * p as f64;
            // Iteration 1's rollouts come from before the peak was recorded.
            let m = if it == 1 {
                json!({"new_tokens": ro_tokens / parts as u64, "generation_seconds": secs - 1.0})
            } else {
                json!({"new_tokens": ro_tokens / parts as u64, "generation_seconds": secs - 1.0,
                       "peak_rss_mib": 700.0 + p as f64})
            };
            commit(&dir.join("rollouts"), it, p as u32, parts, rows, secs, m);
        }

        // Scored: r_C for every selected attempt (one extra row outside the batch), K verdicts
        // per answered task with p̂ spread over 0, 1/4, …, 1. Advantages are Dr. GRPO's
        // r − mean(r) over the group, so tasks at p̂ = 0 or 1, and documents whose selected
        // attempts earn the same r_C (both invalid), have none but 0 (one written as −0.0);
        // one p̂ = 1 task in seven has a single advantage of 1e-30, not 0.
        let mut scored = Vec::new();
        let mut p_hat: BTreeMap<String, f32> = BTreeMap::new();
        for (i, t) in answered.iter().enumerate() {
            let correct = [0, k, 1, 2, 0, 3, k][i % 7];
            let mean = correct as f32 / k as f32;
            p_hat.insert(t.task_id.clone(), mean);
            for s in 0..k {
                let reward = (s < correct) as u32 as f32;
                let advantage = match (i % 7, s) {
                    (0, 1) => -0.0,
                    (6, 0) => 1e-30,
                    _ => reward - mean,
                };
                scored.push(ScoredRow {
                    iteration: it,
                    role: "reasoner".into(),
                    group_id: t.task_id.clone(),
                    task_id: t.task_id.clone(),
                    doc_slot: t.doc_slot,
                    sample: s,
                    in_batch: t.attempt == 0,
                    valid: true,
                    extracted: Some("B".into()),
                    correct: Some(s < correct),
                    pass_rate: Some(mean),
                    reward,
                    advantage,
                    prompt_ids: vec![4, 5],
                    completion_ids: vec![6],
                    logprobs: vec![-1.0],
                    finish_reason: "stop".into(),
                    policy_id: policy.clone(),
                });
            }
        }
        let selected: Vec<(&TaskRow, Option<f32>, f32, bool)> = tasks
            .iter()
            .filter(|t| t.selected)
            .enumerate()
            .map(|(i, t)| {
                let p = p_hat.get(&t.task_id).copied();
                let reward = match p {
                    Some(p) => (-((p * (1.0 - p) - 0.25).powi(2)) / 0.02).exp(),
                    None => -0.1,
                };
                (t, p, reward, !(it == 1 && i == 0))
            })
            .collect();
        // Mean r_C of each document's attempts in the batch; the attempt outside it gets an
        // advantage the update never sees.
        let mut by_doc: BTreeMap<u32, (f32, f32)> = BTreeMap::new();
        for (t, _, reward, in_batch) in &selected {
            if *in_batch {
                let e = by_doc.entry(t.doc_slot).or_default();
                (e.0, e.1) = (e.0 + reward, e.1 + 1.0);
            }
        }
        for &(t, p, reward, in_batch) in &selected {
            let (sum, n) = by_doc.get(&t.doc_slot).copied().unwrap_or((0.0, 1.0));
            let advantage = if in_batch { reward - sum / n } else { 0.5 };
            scored.push(ScoredRow {
                iteration: it,
                role: "challenger".into(),
                group_id: format!("d{:03}", t.doc_slot),
                task_id: t.task_id.clone(),
                doc_slot: t.doc_slot,
                sample: t.attempt,
                in_batch,
                valid: t.valid,
                extracted: None,
                correct: None,
                pass_rate: p,
                reward,
                advantage,
                prompt_ids: vec![1],
                completion_ids: vec![2],
                logprobs: vec![-0.5],
                finish_reason: "stop".into(),
                policy_id: policy.clone(),
            });
        }
        commit(&dir.join("scored"), it, 0, 1, scored, 1.25, json!({}));

        // Update: steps written out of order, so "the last step" is not "the last row".
        let steps: Vec<UpdateMetricsRow> = [(1u32, 0u32), (0, 1), (0, 0)]
            .iter()
            .map(|&(epoch, step)| UpdateMetricsRow {
                iteration: it,
                epoch,
                step,
                loss: 0.01 * (rng.below(1000) as f64 - 500.0) / 7.0,
                pg_loss: 0.0,
                kl: 0.0,
                grad_norm: 0.5 + rng.below(1000) as f64 / 100.0,
                clip_fraction: 0.1,
                learning_rate: 1e-6,
                sequences: 8,
                tokens: 500,
                challenger_sequences: 4,
                reasoner_sequences: 4,
                challenger_mean_reward: 0.3,
                challenger_mean_advantage: 0.0,
                reasoner_mean_reward: 0.4,
                reasoner_mean_advantage: 0.0,
                seconds: 3.0,
                tokens_per_second: 166.0,
                peak_rss_mib: 900.0 + rng.below(300) as f64,
            })
            .collect();
        commit(
            &dir.join("update"),
            it,
            0,
            1,
            steps,
            40.0 + it as f64,
            json!({
                "tokens": 1500,
                "train_seconds": 9.5,
                "model_gflops_per_second": 2.0 + it as f64,
                "peak_fraction": 0.25 + 0.01 * it as f64
            }),
        );
        // Its time lies inside the update's: the report does not count it again.
        manifest(&dir.join("checkpoint"), it, ShardSpec::WHOLE, None, 0, 39.0, json!({}));

        let mut eval = |folder: &str, secs: f64| {
            let mut rows = Vec::new();
            for (bench, n) in [("arith", 10), ("mcq", 8)] {
                for q in 0..n {
                    rows.push(EvalRow {
                        benchmark: bench.into(),
                        question_id: format!("{bench}-{q}"),
                        subject: None,
                        task_kind: "free_form".into(),
                        sample: 0,
                        prompt: "q".into(),
                        completion: "a".into(),
                        completion_tokens: 10,
                        finish_reason: "stop".into(),
                        gold: "1".into(),
                        extracted: Some("1".into()),
                        correct: rng.chance(0.4),
                        seed: 0,
                        policy_id: policy.clone(),
                    });
                }
            }
            commit(
                &dir.join(folder),
                it,
                0,
                1,
                rows,
                secs,
                json!({"new_tokens": 180, "generation_seconds": secs / 2.0}),
            );
        };
        if it == 0 {
            eval("eval", 20.0);
        }
        if it != 1 {
            eval("eval-checkpoint", 22.0);
        }
    }
}
