//! `spice show` on a real run of the default model: what it prints is what the shards hold —
//! the document, the task (valid or not, with its reason), and every Reasoner answer with its
//! verdict — and a wrong task id or iteration fails with an error that lists what exists.

mod common;
use common::smoke_run::{inspect_run, INSPECT_ITERATIONS};
use common::*;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;
use spice_schemas::{
    read_folder,
    rows::{ChallengerRow, ChunkRow, RolloutRow, ScoredRow, TaskRow},
};

fn show(run: &Path, args: &[&str]) -> Output {
    Command::new(bin_dir().join("spice"))
        .arg("show")
        .arg("--run")
        .arg(run)
        .args(args)
        .output()
        .unwrap()
}

fn stdout_of(out: &Output) -> String {
    assert!(out.status.success(), "spice show failed:\n{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout.clone()).unwrap()
}

struct Shards {
    tasks: Vec<TaskRow>,
    challenger: Vec<ChallengerRow>,
    rollouts: Vec<RolloutRow>,
    scored: Vec<ScoredRow>,
}

fn shards(run: &Path, iter: u32) -> Shards {
    let dir = run.join(format!("iter-{iter:04}"));
    Shards {
        tasks: read_folder(&dir.join("tasks")).unwrap(),
        challenger: read_folder(&dir.join("challenger")).unwrap(),
        rollouts: read_folder(&dir.join("rollouts")).unwrap(),
        scored: read_folder(&dir.join("scored")).unwrap(),
    }
}

fn assert_has(text: &str, want: &str, what: &str) {
    assert!(text.contains(want), "{what} not printed: {want:?}\n--- output ---\n{text}");
}

#[test]
fn show_prints_the_document_the_task_and_every_answer() {
    let Some(run) = inspect_run() else { return };
    let chunks: BTreeMap<String, ChunkRow> = read_folder::<ChunkRow>(&run.join("chunks"))
        .unwrap()
        .into_iter()
        .map(|c| (c.chunk_id.clone(), c))
        .collect();
    let mut answered_tasks = 0;
    for iter in 0..INSPECT_ITERATIONS {
        let s = shards(&run, iter);
        let out = stdout_of(&show(&run, &["--iter", &iter.to_string(), "--full"]));
        println!("{out}");
        let header = out.lines().next().unwrap();
        let id = header.strip_prefix("Task ").and_then(|h| h.split(' ').next()).expect(header);
        let task = s.tasks.iter().find(|t| t.task_id == id).expect("the picked task is in tasks/");
        assert_has(header, &format!("of iteration {iter}"), "the iteration");
        assert_has(&out, "picked: ", "why the task was picked");

        // The picked task has answers whenever some task of the iteration has.
        let mine: Vec<&RolloutRow> = s.rollouts.iter().filter(|r| r.task_id == id).collect();
        assert_eq!(
            mine.is_empty(),
            s.rollouts.is_empty(),
            "picked {id} without answers though others have some"
        );
        answered_tasks += !mine.is_empty() as usize;

        assert_has(&out, chunks[&task.chunk_id].text.trim_end(), "the document text");
        let attempt = s
            .challenger
            .iter()
            .find(|c| c.doc_slot == task.doc_slot && c.attempt == task.attempt)
            .unwrap();
        assert_has(&out, attempt.completion.trim_end(), "the Challenger's completion");
        if let Some(q) = &task.question {
            assert_has(&out, q, "the question");
        }
        for (letter, o) in ["A. ", "B. ", "C. ", "D. "].iter().zip(&task.options) {
            assert_has(&out, &format!("{letter}{o}"), "an option");
        }
        for r in &mine {
            assert_has(&out, r.completion.trim_end(), "a Reasoner answer");
            let sc = s
                .scored
                .iter()
                .find(|x| x.role == "reasoner" && x.task_id == id && x.sample == r.sample)
                .unwrap();
            let verdict = if sc.correct == Some(true) { "correct" } else { "wrong" };
            assert_has(&out, &format!("answer {}: {verdict}", r.sample), "the verdict");
            if let Some(e) = &sc.extracted {
                assert_has(&out, &format!("extracted `{e}`"), "the extracted answer");
            }
        }
        // Every other task of the iteration is listed for the reader to pick.
        for t in &s.tasks {
            assert_has(&out, &t.task_id, "a task id of the iteration");
        }
    }
    println!(
        "{answered_tasks} of {INSPECT_ITERATIONS} iterations showed a task with Reasoner answers"
    );
}

#[test]
fn show_json_holds_what_the_shards_hold() {
    let Some(run) = inspect_run() else { return };
    for iter in 0..INSPECT_ITERATIONS {
        let s = shards(&run, iter);
        for task in &s.tasks {
            let out = stdout_of(&show(&run, &["--task", &task.task_id, "--format", "json"]));
            let v: Value = serde_json::from_str(&out).unwrap();
            assert_eq!(v["iteration"], iter, "the iteration comes from the task id");
            assert_eq!(v["task"]["task_id"], task.task_id.as_str());
            assert_eq!(v["task"]["valid"], task.valid);
            assert_eq!(v["task"]["question"], serde_json::to_value(&task.question).unwrap());
            assert_eq!(
                v["task"]["invalid_reason"],
                serde_json::to_value(&task.invalid_reason).unwrap()
            );
            let attempt = s
                .challenger
                .iter()
                .find(|c| c.doc_slot == task.doc_slot && c.attempt == task.attempt)
                .unwrap();
            assert_eq!(v["attempt"]["completion"], attempt.completion.as_str());
            assert_eq!(v["attempt"]["tokens"], attempt.completion_ids.len());
            let score =
                s.scored.iter().find(|x| x.role == "challenger" && x.task_id == task.task_id);
            // f32 values travel as their shortest decimal: compare them as f32.
            let f32_of = |v: &Value| v.as_f64().map(|x| x as f32);
            assert_eq!(f32_of(&v["challenger_score"]["reward"]), score.map(|x| x.reward));
            let mut rollouts: Vec<&RolloutRow> =
                s.rollouts.iter().filter(|r| r.task_id == task.task_id).collect();
            rollouts.sort_by_key(|r| r.sample);
            let answers = v["answers"].as_array().unwrap();
            assert_eq!(answers.len(), rollouts.len(), "{}", task.task_id);
            for (a, r) in answers.iter().zip(rollouts) {
                let sc = s
                    .scored
                    .iter()
                    .find(|x| {
                        x.role == "reasoner" && x.task_id == r.task_id && x.sample == r.sample
                    })
                    .unwrap();
                assert_eq!(a["completion"], r.completion.as_str());
                assert_eq!(a["correct"], serde_json::to_value(sc.correct).unwrap());
                assert_eq!(a["extracted"], serde_json::to_value(&sc.extracted).unwrap());
                assert_eq!(f32_of(&a["reward"]), Some(sc.reward));
                assert_eq!(f32_of(&a["advantage"]), Some(sc.advantage));
                assert_eq!(a["tokens"], r.completion_ids.len());
            }
            assert_eq!(v["other_tasks"].as_array().unwrap().len(), s.tasks.len() - 1);
        }
    }
}

#[test]
fn show_an_invalid_task_prints_its_reason_and_raw_completion() {
    let Some(run) = inspect_run() else { return };
    let (iter, task) = (0..INSPECT_ITERATIONS)
        .flat_map(|i| shards(&run, i).tasks.into_iter().map(move |t| (i, t)))
        .find(|(_, t)| !t.valid)
        .expect("the small model writes some invalid tasks in two iterations");
    let s = shards(&run, iter);
    let out = stdout_of(&show(&run, &["--task", &task.task_id, "--full"]));
    println!("{out}");
    assert!(out.starts_with(&format!("Task {} of iteration {iter}", task.task_id)), "{out}");
    assert_has(
        &out,
        &format!("no: {}", task.invalid_reason.as_deref().unwrap()),
        "the invalid reason",
    );
    if let Some(d) = &task.invalid_detail {
        assert_has(&out, d, "the invalid detail");
    }
    let attempt = s
        .challenger
        .iter()
        .find(|c| c.doc_slot == task.doc_slot && c.attempt == task.attempt)
        .unwrap();
    assert_has(&out, attempt.completion.trim_end(), "the raw completion");
    assert!(!out.contains("picked:"), "a task asked for is not 'picked'");
}

#[test]
fn show_names_an_unknown_task_or_iteration_and_lists_what_exists() {
    let Some(run) = inspect_run() else { return };
    let s = shards(&run, 0);
    let out = show(&run, &["--iter", "0", "--task", "i0000-d999-a0999"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_has(&err, "no task `i0000-d999-a0999` in iteration 0", "the unknown id");
    assert_has(&err, &s.tasks[0].task_id, "a task id that exists");

    let out = show(&run, &["--iter", "99"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let have: Vec<String> = (0..INSPECT_ITERATIONS).map(|i| i.to_string()).collect();
    assert_has(
        &err,
        &format!(
            "iteration 99 is not in run {}; its iterations: {}",
            run.display(),
            have.join(", ")
        ),
        "the iterations",
    );

    // --list prints one line per task of the iteration.
    let out = stdout_of(&show(&run, &["--iter", "0", "--list"]));
    assert_eq!(out.lines().count(), s.tasks.len() + 1, "{out}");
    for t in &s.tasks {
        assert_has(&out, &t.task_id, "a task id");
    }
}
