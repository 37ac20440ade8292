//! `spice crossplay` end to end: on the tiny random model, every cell of both curves is made
//! under `<run>/crossplay/` with the policies it names, the Challengers write only for the
//! held-out documents (which no training iteration drew), a second call is a no-op, and an
//! unknown policy is refused by name; on the default model's smoke run, the pass rates of
//! `crossplay.csv` recount exactly from the cells' shards in DuckDB.

mod common;
use common::smoke_run::inspect_run;
use common::tiny::setup;
use common::*;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;
use spice_schemas::{
    manifest::folder_complete,
    read_folder,
    rows::{ChallengerRow, ScoredRow, TaskRow},
};

fn spice(args: &[&str], run: &Path) -> Output {
    Command::new(bin_dir().join("spice"))
        .current_dir(repo())
        .args(args)
        .arg("--run")
        .arg(run)
        .env("SPICE_LM_THREADS", "1")
        .output()
        .unwrap()
}

fn ok(what: &str, out: Output) -> String {
    assert!(out.status.success(), "{}", failure(what, &out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The `policy` input a folder's manifest records: its path and digest.
fn policy_input(dir: &Path) -> (String, String) {
    let m =
        folder_complete(dir).unwrap().unwrap_or_else(|| panic!("{} not committed", dir.display()));
    let input = m[0].inputs.iter().find(|i| i.name == "policy").expect("a policy input");
    (input.path.display().to_string(), input.digest.clone())
}

/// Every number of crossplay.json equals DuckDB's recount from the shards (1e-9 relative for
/// the means, exact for counts); returns the recount.
fn assert_recounts(run: &Path) -> Vec<Value> {
    let python = repo().join(".venv/bin/python");
    let o = Command::new(&python)
        .arg(repo().join("tests/tests/crossplay_duckdb.py"))
        .arg(run)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e} (run `just setup`)", python.display()));
    assert!(
        o.status.success(),
        "the DuckDB recount failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let duck: Value = serde_json::from_slice(&o.stdout).unwrap();
    let ours: Value = serde_json::from_str(
        &std::fs::read_to_string(run.join("crossplay/crossplay.json")).unwrap(),
    )
    .unwrap();
    let (ours, cells) = (ours.as_array().unwrap(), duck["cells"].as_array().unwrap());
    assert_eq!(ours.len(), cells.len(), "cells: ours {ours:?}\nDuckDB {cells:?}");
    assert_eq!(duck["csv_rows"].as_u64(), Some(ours.len() as u64), "crossplay.csv rows in Polars");
    for (a, b) in ours.iter().zip(cells) {
        for (k, v) in b.as_object().unwrap() {
            let mine = &a[k];
            let same = match (mine.as_f64(), v.as_f64()) {
                (Some(x), Some(y)) => (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1e-3),
                _ => mine == v,
            };
            assert!(
                same,
                "cell {}:{} {k}: ours {mine}, DuckDB {v}",
                b["challenger"], b["reasoner"]
            );
        }
    }
    cells.clone()
}

#[test]
fn tiny_crossplay_makes_every_cell_on_held_out_documents_and_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let profile = setup(tmp.path(), 7, "", "[crossplay]\nheldout_documents = 2\n");
    let run = tmp.path().join("run");
    ok(
        "spice iterate",
        Command::new(bin_dir().join("spice"))
            .current_dir(repo())
            .args(["iterate", "--config"])
            .arg(&profile)
            .arg("--run")
            .arg(&run)
            .env("SPICE_LM_THREADS", "1")
            .output()
            .unwrap(),
    );

    // Policies 0 (initial), 1 and 2 (the two checkpoints); fixed Reasoner 2, fixed Challenger 0.
    let args = ["crossplay", "--fixed-reasoner", "2", "--fixed-challenger", "0"];
    let stdout = ok("spice crossplay", spice(&args, &run));
    println!("{stdout}");
    let want: BTreeSet<(u32, u32)> = [(0, 2), (1, 2), (2, 2), (0, 0), (0, 1)].into();
    let cx = run.join("crossplay");
    let mut made = BTreeSet::new();
    for c in 0..3u32 {
        for r in 0..3u32 {
            if cx.join(format!("challenger-{c:04}/reasoner-{r:04}/scored/_manifest.json")).exists()
            {
                made.insert((c, r));
            }
        }
    }
    assert_eq!(made, want, "both curves' cells, and no other");

    // Each cell's Challenger and Reasoner are the policies it names.
    // Policy p is what iteration p sampled with (recorded by its own manifests for 0 and 1),
    // and the last checkpoint for 2.
    let policy = |p: u32| match p {
        0 | 1 => policy_input(&run.join(format!("iter-{p:04}/challenger"))).0,
        _ => "iter-0001/checkpoint".to_string(),
    };
    assert_eq!(policy(1), "iter-0000/checkpoint");
    for &(c, r) in &want {
        let ch = policy_input(&cx.join(format!("challenger-{c:04}/challenger")));
        let re = policy_input(&cx.join(format!("challenger-{c:04}/reasoner-{r:04}/rollouts")));
        assert_eq!(ch.0, policy(c), "Challenger of cell {c}:{r}");
        assert_eq!(re.0, policy(r), "Reasoner of cell {c}:{r}");
    }

    // The cross-play documents: the same two chunks for every Challenger, never drawn by a
    // training iteration; every attempt has its task row, and rows name their iteration C.
    let held: BTreeSet<String> = (0..3u32)
        .flat_map(|c| {
            let rows: Vec<ChallengerRow> =
                read_folder(&cx.join(format!("challenger-{c:04}/challenger"))).unwrap();
            let tasks: Vec<TaskRow> =
                read_folder(&cx.join(format!("challenger-{c:04}/tasks"))).unwrap();
            assert_eq!(tasks.len(), rows.len());
            assert!(rows.iter().all(|r| r.iteration == c));
            let ids: BTreeSet<String> = rows.into_iter().map(|r| r.chunk_id).collect();
            assert_eq!(ids.len(), 2, "challenger {c}: {ids:?}");
            ids
        })
        .collect();
    assert_eq!(held.len(), 2, "every Challenger writes for the same documents: {held:?}");
    for it in 0..2 {
        let rows: Vec<ChallengerRow> =
            read_folder(&run.join(format!("iter-{it:04}/challenger"))).unwrap();
        for r in rows {
            assert!(!held.contains(&r.chunk_id), "iteration {it} drew held-out {}", r.chunk_id);
        }
    }
    // A random model writes no valid task, so no cell has answers; the Challenger rows are
    // scored all the same (with the invalid-task penalty).
    let scored: Vec<ScoredRow> =
        read_folder(&cx.join("challenger-0001/reasoner-0002/scored")).unwrap();
    assert!(!scored.is_empty() && scored.iter().all(|r| r.role == "challenger"));
    let cells = assert_recounts(&run);
    assert_eq!(cells.len(), want.len());
    // `spice report` draws both curves and keeps the table beside its own.
    ok("spice report", spice(&["report"], &run));
    for f in ["crossplay.csv", "crossplay.png", "crossplay.svg"] {
        assert!(run.join("report").join(f).is_file(), "report/{f}");
    }
    assert_eq!(
        std::fs::read_to_string(run.join("report/crossplay.csv")).unwrap(),
        std::fs::read_to_string(cx.join("crossplay.csv")).unwrap()
    );

    // Done means done; an unknown policy is refused by name, before anything runs.
    let manifests = |d: &Path| std::fs::read_to_string(d.join("_manifest.json")).unwrap();
    let before = manifests(&cx.join("challenger-0001/reasoner-0002/scored"));
    ok("spice crossplay again", spice(&args, &run));
    assert_eq!(before, manifests(&cx.join("challenger-0001/reasoner-0002/scored")));
    let out = spice(&["crossplay", "--policies", "0,5"], &run);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("policy 5"), "{err}");
}

#[test]
fn smoke_crossplay_pass_rates_recount_from_the_shards() {
    let Some(run) = inspect_run() else { return };
    // The smoke run's two iterations give policies 0, 1 and 2; the default fixed Reasoner and
    // Challenger are the initial model.
    let stdout = ok("spice crossplay", spice(&["crossplay", "--policies", "0,2"], &run));
    println!("{stdout}");
    let cells = assert_recounts(&run);
    assert_eq!(cells.len(), 3, "(0,0) (2,0) (0,2): {cells:?}");
    let answers: u64 = cells.iter().map(|c| c["answers"].as_u64().unwrap()).sum();
    println!("cross-play answers over the cells: {answers}");
}
