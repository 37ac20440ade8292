//! The smoke profile on the real default model and corpus: one full iteration through
//! `spice iterate`, as `just iterate --config pipelines/smoke.toml` runs it. Skipped, with a
//! message, where `just setup` has not put the model and corpus in `data/`.

mod common;
use common::*;

use std::process::Command;
use std::time::Instant;

use spice_schemas::{
    manifest::folder_complete,
    read_folder,
    rows::{ChallengerRow, RolloutRow, ScoredRow, TaskRow},
};

#[test]
fn smoke_profile_runs_one_iteration_on_the_default_model() {
    let model = repo().join("data/models/smollm2-135m-instruct/config.json");
    let corpus = repo().join("data/corpus/.complete");
    if !model.exists() || !corpus.exists() {
        println!("SKIPPED: the default model or corpus is not in data/ (run `just setup`)");
        return;
    }
    // Under target/, not the system temp folder: the iteration writes 1.6 GB (f32 weights in
    // checkpoint/, Adam moments in optimizer/), more than a small /tmp may hold.
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let run = tmp.path().join("smoke");
    let t0 = Instant::now();
    let out = Command::new(bin_dir().join("spice"))
        .current_dir(repo())
        .args(["iterate", "--config", "pipelines/smoke.toml", "--run"])
        .arg(&run)
        .output()
        .unwrap();
    let so = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", failure("the smoke run", &out));
    println!("smoke iteration in {:.1} min:\n{so}", t0.elapsed().as_secs_f64() / 60.0);
    let line = so.lines().find(|l| l.starts_with("iter 0000")).expect("a summary line");
    assert!(line.contains("loss") && !line.contains("loss -,") && !line.contains("NaN"), "{line}");

    let dir = run.join("iter-0000");
    for f in ["challenger", "tasks", "rollouts", "scored", "update", "checkpoint"] {
        assert!(folder_complete(&dir.join(f)).unwrap().is_some(), "{f} not committed");
    }
    let ch: Vec<ChallengerRow> = read_folder(&dir.join("challenger")).unwrap();
    let tasks: Vec<TaskRow> = read_folder(&dir.join("tasks")).unwrap();
    let roll: Vec<RolloutRow> = read_folder(&dir.join("rollouts")).unwrap();
    let scored: Vec<ScoredRow> = read_folder(&dir.join("scored")).unwrap();
    // The real model writes English, and its prompts carry the chunk's text.
    assert!(ch
        .iter()
        .all(|r| !r.completion_ids.is_empty() && r.completion_ids.len() == r.logprobs.len()));
    assert!(ch.iter().all(|r| r.logprobs.iter().all(|l| l.is_finite() && *l <= 0.0)));
    let valid = tasks.iter().filter(|t| t.valid).count();
    println!(
        "{} attempts, {} valid tasks ({:.0}%), {} Reasoner answers, {} scored rows",
        ch.len(),
        valid,
        100.0 * valid as f64 / ch.len().max(1) as f64,
        roll.len(),
        scored.len()
    );
    let reasons: std::collections::BTreeMap<String, usize> = tasks
        .iter()
        .filter_map(|t| t.invalid_reason.clone())
        .fold(Default::default(), |mut m, r| {
            *m.entry(r).or_default() += 1;
            m
        });
    println!("invalid reasons: {reasons:?}");
    assert_eq!(roll.len(), 4 * tasks.iter().filter(|t| t.valid && t.selected).count());
    assert!(run.join("iter-0000/checkpoint/model.safetensors").exists());
}
