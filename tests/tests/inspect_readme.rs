//! The README's "Inspecting a run" snippets work as printed: every ```sql block runs through
//! the `duckdb` Python package and every ```python block (Polars) with the project venv's
//! Python, against a real run of the default model reached as `data/runs/smoke`, as the
//! README writes it. Each must succeed and print a non-empty result, and the numbers of the
//! SQL results whose columns say what they count are checked against the shards.

mod common;
use common::smoke_run::{inspect_run, INSPECT_ITERATIONS};
use common::*;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde_json::Value;
use spice_schemas::{
    read_folder,
    rows::{ScoredRow, TaskRow, UpdateMetricsRow},
};

const SECTION: &str = "## Inspecting a run";
/// The run folder the snippets name.
const RUN_AS_PRINTED: &str = "data/runs/smoke";

struct Snippet {
    lang: String,
    code: String,
    line: usize,
}

/// Fenced ```sql and ```python blocks of the README section, with their line numbers.
fn snippets(readme: &str) -> Vec<Snippet> {
    let start = readme
        .lines()
        .position(|l| l.trim_end() == SECTION)
        .expect("README has an 'Inspecting a run' section");
    let mut out = Vec::new();
    let mut open: Option<Snippet> = None;
    for (i, line) in readme.lines().enumerate().skip(start + 1) {
        if open.is_none() && line.starts_with("## ") {
            break;
        }
        match (&mut open, line.trim_start().strip_prefix("```")) {
            (None, Some(lang)) => {
                open = Some(Snippet {
                    lang: lang.trim().to_string(),
                    code: String::new(),
                    line: i + 2,
                })
            }
            (Some(_), Some(rest)) if rest.trim().is_empty() => {
                let s = open.take().unwrap();
                if s.lang == "sql" || s.lang == "python" {
                    out.push(s);
                }
            }
            (Some(s), _) => {
                s.code.push_str(line);
                s.code.push('\n');
            }
            (None, None) => {}
        }
    }
    assert!(open.is_none(), "README: unclosed code block in '{SECTION}'");
    out
}

/// Runs one SQL snippet with DuckDB, prints its table as a reader would see it, and returns
/// the result as JSON for the checks.
const DUCKDB_RUNNER: &str = r#"
import duckdb, json, sys
rel = duckdb.sql(open(sys.argv[1]).read())
rows = rel.fetchall()
print(rel)
print("RESULT " + json.dumps({"columns": rel.columns, "rows": rows}, default=str))
"#;

type Table = Vec<BTreeMap<String, Value>>;

fn parse_result(stdout: &str) -> Table {
    let line =
        stdout.lines().find_map(|l| l.strip_prefix("RESULT ")).expect("the runner's result line");
    let v: Value = serde_json::from_str(line).unwrap();
    let cols: Vec<String> =
        v["columns"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_string()).collect();
    v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| cols.iter().cloned().zip(r.as_array().unwrap().iter().cloned()).collect())
        .collect()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * (1.0 + b.abs())
}

/// Which shard facts a result's columns claim; checks them and names what it checked.
fn check_against_shards(run: &Path, table: &Table) -> Vec<&'static str> {
    let mut checked = Vec::new();
    let Some(first) = table.first() else { return checked };
    let has = |cols: &[&str]| cols.iter().all(|c| first.contains_key(*c));
    let iters = 0..INSPECT_ITERATIONS;
    let read_tasks =
        |i: u32| read_folder::<TaskRow>(&run.join(format!("iter-{i:04}/tasks"))).unwrap();
    let read_scored =
        |i: u32| read_folder::<ScoredRow>(&run.join(format!("iter-{i:04}/scored"))).unwrap();
    let int = |v: &Value| v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"));
    let iteration = |r: &BTreeMap<String, Value>| int(&r["iteration"]) as u32;

    if has(&["iteration", "tasks", "valid_tasks"]) {
        assert_eq!(table.len(), INSPECT_ITERATIONS as usize, "one row per iteration");
        for r in table {
            let tasks = read_tasks(iteration(r));
            assert_eq!(int(&r["tasks"]), tasks.len() as u64, "tasks: {r:?}");
            assert_eq!(
                int(&r["valid_tasks"]),
                tasks.iter().filter(|t| t.valid).count() as u64,
                "valid tasks: {r:?}"
            );
        }
        checked.push("tasks and valid tasks per iteration");
    }
    if has(&["iteration", "invalid_reason", "n"]) {
        let mut want = BTreeMap::new();
        for i in iters.clone() {
            for t in read_tasks(i).into_iter().filter(|t| !t.valid) {
                *want.entry((i, t.invalid_reason.unwrap())).or_insert(0u64) += 1;
            }
        }
        let got: BTreeMap<(u32, String), u64> = table
            .iter()
            .map(|r| {
                ((iteration(r), r["invalid_reason"].as_str().unwrap().to_string()), int(&r["n"]))
            })
            .collect();
        assert_eq!(got, want, "invalid tasks by (iteration, reason)");
        checked.push("invalid reasons per iteration");
    }
    if has(&["iteration", "role", "trajectories", "mean_reward"]) {
        for r in table {
            let rows: Vec<ScoredRow> = read_scored(iteration(r))
                .into_iter()
                .filter(|s| s.role == r["role"].as_str().unwrap())
                .collect();
            assert_eq!(int(&r["trajectories"]), rows.len() as u64, "trajectories: {r:?}");
            let mean = rows.iter().map(|s| s.reward as f64).sum::<f64>() / rows.len() as f64;
            assert!(close(r["mean_reward"].as_f64().unwrap(), mean), "{r:?}: mean reward {mean}");
            if r["role"] == "reasoner" {
                let acc = rows.iter().filter(|s| s.correct == Some(true)).count() as f64
                    / rows.len() as f64;
                assert!(close(r["accuracy"].as_f64().unwrap(), acc), "{r:?}: accuracy {acc}");
            }
        }
        checked.push("rewards and Reasoner accuracy per iteration and role");
    }
    if has(&["iteration", "step", "loss"]) {
        let mut n = 0;
        for i in iters {
            let rows: Vec<UpdateMetricsRow> =
                read_folder(&run.join(format!("iter-{i:04}/update"))).unwrap();
            for u in rows {
                let r = table
                    .iter()
                    .find(|r| iteration(r) == i && int(&r["step"]) == u.step as u64)
                    .unwrap_or_else(|| panic!("no row for iteration {i} step {}", u.step));
                assert!(close(r["loss"].as_f64().unwrap(), u.loss), "{r:?}: loss {}", u.loss);
                n += 1;
            }
        }
        assert_eq!(table.len(), n, "one row per update step");
        checked.push("update loss per step");
    }
    checked
}

#[test]
fn readme_inspection_snippets_run_as_printed() {
    let Some(run) = inspect_run() else { return };
    let python = repo().join(".venv/bin/python");
    let probe = Command::new(&python).args(["-c", "import duckdb, polars"]).output();
    assert!(
        probe.as_ref().is_ok_and(|o| o.status.success()),
        "{} cannot import duckdb and polars (run `just setup`, which installs pipelines/requirements.txt): {:?}",
        python.display(),
        probe.map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
    );
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let snippets = snippets(&readme);
    let count = |lang: &str| snippets.iter().filter(|s| s.lang == lang).count();
    assert!(count("sql") >= 3 && count("python") >= 1, "README '{SECTION}': too few snippets");

    // The snippets name `data/runs/smoke` relative to the repository root: give them a root
    // where that path is the test's run.
    let root = tempfile::tempdir().unwrap();
    let runs = root.path().join(RUN_AS_PRINTED);
    std::fs::create_dir_all(runs.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(&run, &runs).unwrap();
    std::fs::write(root.path().join("duckdb_runner.py"), DUCKDB_RUNNER).unwrap();

    let mut checked = Vec::new();
    for (n, s) in snippets.iter().enumerate() {
        assert!(
            s.code.contains(RUN_AS_PRINTED),
            "README line {}: snippet does not read {RUN_AS_PRINTED}",
            s.line
        );
        let file =
            root.path().join(format!("snippet{n}.{}", if s.lang == "sql" { "sql" } else { "py" }));
        std::fs::write(&file, &s.code).unwrap();
        let mut cmd = Command::new(&python);
        if s.lang == "sql" {
            cmd.arg("duckdb_runner.py");
        }
        let out = cmd.arg(&file).current_dir(root.path()).output().unwrap();
        let (so, se) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(
            out.status.success(),
            "README line {} ({}) failed:\n{}\n{se}",
            s.line,
            s.lang,
            s.code
        );
        println!(
            "--- README line {} ({}) ---\n{}",
            s.line,
            s.lang,
            so.lines().filter(|l| !l.starts_with("RESULT ")).collect::<Vec<_>>().join("\n")
        );
        if s.lang == "sql" {
            let table = parse_result(&so);
            assert!(
                !table.is_empty(),
                "README line {}: the query returned no rows:\n{}",
                s.line,
                s.code
            );
            checked.extend(check_against_shards(&run, &table));
        } else {
            assert!(!so.trim().is_empty(), "README line {}: the snippet printed nothing", s.line);
        }
    }
    println!("checked against the shards: {checked:?}");
    assert!(
        checked.len() >= 3,
        "the README lost the snippets whose numbers are checked: {checked:?}"
    );
}

#[test]
fn snippets_are_found_in_the_section_only() {
    let readme = "# x\n```sql\nSELECT 0\n```\n## Inspecting a run\ntext\n```sql\nSELECT 1\n```\n\
                  ```python\nprint(2)\n```\n```\nplain\n```\n## Next\n```sql\nSELECT 3\n```\n";
    let s = snippets(readme);
    assert_eq!(
        s.iter().map(|s| (s.lang.as_str(), s.code.as_str())).collect::<Vec<_>>(),
        [("sql", "SELECT 1\n"), ("python", "print(2)\n")]
    );
    assert_eq!(s[0].line, 8);
}
