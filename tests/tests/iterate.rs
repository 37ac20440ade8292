//! The SPICE iteration end to end, through `spice iterate` and the stage binaries, on a tiny
//! random model the test sets up: every shard with the row counts the config implies, two
//! runs with one seed give identical shards, a killed run resumes to the same shards, and a
//! finished run is a no-op, also after `[checkpoint] keep` pruned its older checkpoints.
//!
//! A random model never writes a valid task, so these runs have no Reasoner answers; the
//! real default model's smoke run (`smoke.rs`) covers that path.

mod common;
use common::tiny::{digests, setup, DOCS, G, MAX_ATTEMPTS};
use common::*;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use spice_schemas::{
    manifest::folder_complete,
    read_folder,
    rows::{ChallengerRow, RolloutRow, ScoredRow, TaskRow, UpdateMetricsRow},
};

fn iterate(profile: &Path, run: &Path) -> Command {
    let mut c = Command::new(bin_dir().join("spice"));
    c.current_dir(repo())
        .args(["iterate", "--config"])
        .arg(profile)
        .arg("--run")
        .arg(run)
        .env("SPICE_LM_THREADS", "1");
    c
}

fn run_ok(mut c: Command) -> String {
    let out = c.output().unwrap();
    assert!(out.status.success(), "{}", failure("spice iterate", &out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const FOLDERS: &[&str] =
    &["challenger", "tasks", "rollouts", "scored", "update", "checkpoint", "optimizer"];

#[test]
fn tiny_run_has_every_shard_is_reproducible_and_resumes_after_a_kill() {
    let tmp = tempfile::tempdir().unwrap();
    let profile = setup(tmp.path(), 99, "", "");

    // 1. A full run: every shard, with the row counts the config implies.
    let run_a = tmp.path().join("a");
    let t0 = Instant::now();
    let stdout = run_ok(iterate(&profile, &run_a));
    println!("two tiny iterations in {:.1} s:\n{stdout}", t0.elapsed().as_secs_f64());
    assert_eq!(stdout.lines().filter(|l| l.starts_with("iter ")).count(), 2, "{stdout}");
    assert!(stdout.contains("base arith ") && stdout.contains("eval arith "), "{stdout}");
    for iter in 0..2u32 {
        let dir = run_a.join(format!("iter-{iter:04}"));
        let ch: Vec<ChallengerRow> = read_folder(&dir.join("challenger")).unwrap();
        let tasks: Vec<TaskRow> = read_folder(&dir.join("tasks")).unwrap();
        let roll: Vec<RolloutRow> = read_folder(&dir.join("rollouts")).unwrap();
        let scored: Vec<ScoredRow> = read_folder(&dir.join("scored")).unwrap();
        let upd: Vec<UpdateMetricsRow> = read_folder(&dir.join("update")).unwrap();
        let slots: std::collections::BTreeSet<u32> = ch.iter().map(|r| r.doc_slot).collect();
        assert_eq!(slots.len(), DOCS);
        for s in &slots {
            let rows: Vec<&ChallengerRow> = ch.iter().filter(|r| r.doc_slot == *s).collect();
            let valid = rows.iter().any(|r| r.parsed_valid);
            assert!(rows.len() <= MAX_ATTEMPTS);
            if !valid {
                assert_eq!(rows.len(), MAX_ATTEMPTS, "no valid task: every attempt is used");
            }
            assert_eq!(rows.iter().filter(|r| r.selected).count(), G.min(rows.len()));
        }
        assert_eq!(tasks.len(), ch.len(), "one task row per attempt");
        let answered = tasks.iter().filter(|t| t.valid && t.selected).count();
        assert_eq!(roll.len(), 2 * answered, "K answers per valid kept task");
        let c_rows = scored.iter().filter(|r| r.role == "challenger").count();
        assert_eq!(c_rows, ch.iter().filter(|r| r.selected).count());
        assert_eq!(scored.len() - c_rows, roll.len());
        assert!(
            !upd.is_empty() && upd.iter().all(|u| u.loss.is_finite() && u.grad_norm.is_finite())
        );
        assert!(
            dir.join("checkpoint/config.json").exists()
                && dir.join("checkpoint/_manifest.json").exists()
        );
        // Evaluated as configured: the base model once, every iteration's checkpoint.
        assert!(folder_complete(&dir.join("eval-checkpoint")).unwrap().is_some());
        assert_eq!(folder_complete(&dir.join("eval")).unwrap().is_some(), iter == 0);
        // Every stage that runs the model says where it ran; the others say nothing.
        for (f, device) in [
            ("challenger", Some("cpu")),
            ("rollouts", Some("cpu")),
            ("update", Some("cpu")),
            ("checkpoint", Some("cpu")),
            ("optimizer", Some("cpu")),
            ("eval-checkpoint", Some("cpu")),
            ("tasks", None),
            ("scored", None),
        ] {
            for m in folder_complete(&dir.join(f)).unwrap().unwrap() {
                assert_eq!(m.device.as_deref(), device, "{f} manifest of iteration {iter}");
            }
        }
        // The second iteration samples with the first one's checkpoint.
        if iter == 1 {
            assert!(ch[0].policy_id.starts_with("checkpoint@"), "{}", ch[0].policy_id);
        }
    }
    let a = digests(&run_a, FOLDERS);
    let events = tensorboard_files(&run_a);
    assert_tensorboard_matches_the_shards(&run_a);

    // 2. Done means done: a second call changes nothing.
    let before: Vec<String> = FOLDERS
        .iter()
        .map(|f| {
            std::fs::read_to_string(run_a.join(format!("iter-0001/{f}/_manifest.json"))).unwrap()
        })
        .collect();
    run_ok(iterate(&profile, &run_a));
    let after: Vec<String> = FOLDERS
        .iter()
        .map(|f| {
            std::fs::read_to_string(run_a.join(format!("iter-0001/{f}/_manifest.json"))).unwrap()
        })
        .collect();
    assert_eq!(before, after, "a finished run must be a no-op");
    assert_eq!(events, tensorboard_files(&run_a), "the event files are rewritten identically");
    // `spice summarize` by hand (what Slurm jobs call) rebuilds both from the shards alone.
    let summary = std::fs::read(run_a.join("summary.jsonl")).unwrap();
    std::fs::remove_dir_all(run_a.join("tensorboard")).unwrap();
    std::fs::remove_file(run_a.join("summary.jsonl")).unwrap();
    let mut summarize = Command::new(bin_dir().join("spice"));
    summarize.args(["summarize", "--run"]).arg(&run_a);
    run_ok(summarize);
    assert_eq!(std::fs::read(run_a.join("summary.jsonl")).unwrap(), summary);
    assert_eq!(events, tensorboard_files(&run_a), "spice summarize writes the same events");

    // 3. Same seed, new folder: identical shards.
    let run_b = tmp.path().join("b");
    run_ok(iterate(&profile, &run_b));
    assert_eq!(a, digests(&run_b, FOLDERS), "two runs with one seed differ");

    // 4. Killed at several points, then resumed: identical shards again.
    for (k, marker) in [
        "chunks/_manifest.json",
        "iter-0000/tasks/_manifest.json",
        "iter-0000/scored/_manifest.json",
        "iter-0001/challenger/_manifest.json",
    ]
    .iter()
    .enumerate()
    {
        let run_c = tmp.path().join(format!("c{k}"));
        let mut cmd = iterate(&profile, &run_c);
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let mut child = cmd.spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(300);
        while !run_c.join(marker).exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        // The whole group: the driver and the stage it is running.
        let _ = Command::new("kill").args(["-9", "--", &format!("-{}", child.id())]).status();
        let _ = child.wait();
        run_ok(iterate(&profile, &run_c));
        assert_eq!(a, digests(&run_c, FOLDERS), "resumed run (killed after {marker}) differs");
        println!("killed after {marker}: resumed to identical shards");
    }
}

/// Every manifest under `run`, by path, with its content.
fn manifests(run: &Path) -> Vec<(String, String)> {
    fn walk(dir: &Path, out: &mut Vec<(String, String)>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.file_name().unwrap().to_string_lossy().starts_with("_manifest") {
                out.push((p.display().to_string(), std::fs::read_to_string(&p).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(run, &mut out);
    out.sort();
    out
}

#[test]
fn pruned_iterations_read_as_done_and_are_not_rerun() {
    let tmp = tempfile::tempdir().unwrap();
    let profile = setup(tmp.path(), 5, "", "[checkpoint]\nkeep = 1\n");
    let run = tmp.path().join("run");
    let t0 = Instant::now();
    let mut c = iterate(&profile, &run);
    c.args(["--iterations", "3"]);
    run_ok(c);
    println!("three tiny iterations in {:.1} s", t0.elapsed().as_secs_f64());
    let layout = spice_schemas::layout::RunLayout::new(&run);
    for iter in 0..3 {
        // Only the newest checkpoint and optimizer state are whole; every checkpoint was
        // evaluated before it went (eval_every = 1).
        let whole = iter == 2;
        for dir in [layout.checkpoint(iter), layout.optimizer(iter)] {
            assert_eq!(spice_schemas::prune::is_pruned(&dir), !whole, "{}", dir.display());
            assert!(dir.join("_manifest.json").exists(), "{}", dir.display());
        }
        assert_eq!(layout.checkpoint(iter).join("model.safetensors").exists(), whole);
        let eval = layout.iter_dir(iter).join("eval-checkpoint");
        assert!(folder_complete(&eval).unwrap().is_some(), "iteration {iter} was not evaluated");
    }

    // The same command again: every stage of the pruned iterations reads as done, so no
    // manifest is rewritten (a stage that ran would write new times).
    let before = manifests(&run);
    assert!(before.len() > 20, "{}", before.len());
    let mut c = iterate(&profile, &run);
    c.args(["--iterations", "3"]);
    let stdout = run_ok(c);
    assert_eq!(stdout.lines().filter(|l| l.starts_with("iter ")).count(), 3, "{stdout}");
    assert_eq!(before, manifests(&run), "a pruned, finished run must be a no-op");

    // verify-run tells pruned folders from damaged ones.
    let out = Command::new(bin_dir().join("spice")).arg("verify-run").arg(&run).output().unwrap();
    assert!(out.status.success(), "{}", failure("spice verify-run", &out));
    let table = String::from_utf8_lossy(&out.stdout);
    let line = table.lines().find(|l| l.starts_with("iter-0000/checkpoint")).unwrap_or_default();
    assert!(line.ends_with("pruned"), "{table}");
}

/// The event files of a run's `tensorboard/`, by name, with their bytes.
fn tensorboard_files(run: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(run.join("tensorboard"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap())
        })
        .collect();
    v.sort();
    v
}

/// TensorBoard's own reader finds, in `<run>/tensorboard/`, every update step's metrics at
/// the optimizer's global step and each iteration's summary and evaluation at its iteration.
fn assert_tensorboard_matches_the_shards(run: &Path) {
    let python = repo().join(".venv/bin/python");
    let out = Command::new(&python)
        .arg(repo().join("tests/tests/tensorboard_read.py"))
        .arg(run.join("tensorboard"))
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e} (run `just setup`)", python.display()));
    assert!(
        out.status.success(),
        "reading the events with tensorboard failed (is it installed in .venv? `just setup` \
         installs it):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // TensorBoard stores f32; JSON text parsed back (serde_json without `float_roundtrip`)
    // may land one f64 ulp away, so every value is compared as the f32 it was written as.
    let tags: std::collections::BTreeMap<String, Vec<(i64, f64)>> =
        serde_json::from_slice(&out.stdout).unwrap();
    let series = |tag: &str| -> Vec<(i64, f32)> {
        let s = tags.get(tag).unwrap_or_else(|| panic!("no {tag} in {tags:?}"));
        s.iter().map(|&(step, v)| (step, v as f32)).collect()
    };
    let files = tensorboard_files(run);
    assert_eq!(files.len(), 2, "one event file per iteration");
    // Update steps, numbered by the optimizer across iterations.
    let mut want: Vec<(i64, f32)> = Vec::new();
    for iter in 0..2u32 {
        let rows: Vec<UpdateMetricsRow> =
            read_folder(&run.join(format!("iter-{iter:04}/update"))).unwrap();
        for r in rows {
            want.push(((want.len() + 1) as i64, r.loss as f32));
        }
    }
    assert_eq!(series("update/loss"), want);
    assert_eq!(series("update/grad_norm").len(), want.len());
    // The summary line of each iteration at its iteration.
    let summary = std::fs::read_to_string(run.join("summary.jsonl")).unwrap();
    for (iter, line) in summary.lines().enumerate() {
        let s: serde_json::Value = serde_json::from_str(line).unwrap();
        for (tag, value) in [
            ("iteration/valid_task_rate", &s["valid_task_rate"]),
            ("iteration/minutes", &s["minutes"]),
            ("eval/arith", &s["eval"]["arith"]),
        ] {
            let point = (iter as i64, value.as_f64().unwrap() as f32);
            assert!(series(tag).contains(&point), "{tag}: no {point:?} in {:?}", series(tag));
        }
    }
    assert_eq!(series("eval_base/arith").len(), 1, "the initial model, once");
    println!("tensorboard: {} scalar tags, {} update steps", tags.len(), want.len());
}
