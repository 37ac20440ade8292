//! In f32 on a CPU, what the generation stages write does not depend on how they are split or
//! batched: the Challenger's attempts and the Reasoner's answers of a run with `run.shards` 1,
//! 2 or 3 and with other `challenger.batch_size` / `reasoner.batch_size` are the same rows —
//! tokens, texts, sampling log-probs, bit for bit. The stage binaries run as `spice iterate`
//! and Slurm run them, part by part with `--shard I/N`, on the tiny random model; the Reasoner
//! answers tasks written by hand (a random model never writes a valid one).
//!
//! bf16 makes no such promise (its GEMMs round differently with the number of rows), and the
//! manifests say which kind of run they come from (`batch_invariant`).

mod common;
use common::tiny::setup;
use common::*;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use spice_schemas::metrics::{GenerationMetrics, NoMetrics};
use spice_schemas::parquet_io::write_shard;
use spice_schemas::rows::{ChallengerRow, RolloutRow, TaskRow};
use spice_schemas::{read_folder, Manifest, RunConfig, ShardRow, ShardSpec, StageOutput};

fn stage(bin: &str, run: &Path, extra: &[String]) {
    let out = Command::new(bin_dir().join(bin))
        .current_dir(repo())
        .arg("--run")
        .arg(run)
        .args(["--iter", "0"])
        .args(extra)
        .env("SPICE_LM_THREADS", "1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", failure(&format!("{bin} {extra:?}"), &out));
}

/// Run `bin` over `shards` parts, one process per part.
fn sharded(bin: &str, run: &Path, shards: u32) {
    for i in 0..shards {
        let mut extra = vec!["--device".to_string(), "cpu".into()];
        if shards > 1 {
            extra.extend(["--shard".to_string(), format!("{i}/{shards}")]);
        }
        stage(bin, run, &extra);
    }
}

/// Valid tasks of iteration 0, as `spice-filter` would write them: four MCQs and free-form
/// questions, every one kept for training.
fn tasks() -> Vec<TaskRow> {
    let questions = [
        ("mcq", "Which river is the longest?", vec!["Alpha0", "Alpha1", "Alpha2", "Alpha3"]),
        ("free_form", "How long is the river Alpha2, in km?", vec![]),
        ("mcq", "How many towns stand on its banks?", vec!["One", "Two", "Three", "Four"]),
        ("free_form", "For how many weeks does Alpha4 freeze?", vec![]),
        ("free_form", "What is 17 + 25?", vec![]),
    ];
    questions
        .iter()
        .enumerate()
        .map(|(i, (kind, q, options))| TaskRow {
            task_id: format!("i0000-d{i:03}-a0000"),
            iteration: 0,
            doc_slot: i as u32,
            chunk_id: format!("chunk-{i}"),
            attempt: 0,
            selected: true,
            valid: true,
            invalid_reason: None,
            invalid_detail: None,
            task_kind: kind.to_string(),
            question: Some(q.to_string()),
            options: options.iter().map(|o| o.to_string()).collect(),
            answer: Some(if options.is_empty() { "42".into() } else { "C".into() }),
            answer_type: options.is_empty().then(|| "integer".to_string()),
            raw_json: None,
            policy_id: "model@abc".into(),
        })
        .collect()
}

fn write_tasks(run: &Path) {
    let dir = run.join("iter-0000").join(TaskRow::FOLDER);
    let out = StageOutput::new(&dir, "filter", ShardSpec::WHOLE)
        .iteration(0)
        .schema(TaskRow::schema_id());
    out.begin().unwrap();
    write_shard(out.part_path(), &tasks()).unwrap();
    out.commit(&NoMetrics {}).unwrap();
}

/// What a run generated, in a canonical order: every Challenger attempt by (document,
/// attempt), every Reasoner answer by (task, sample).
struct Generated {
    challenger: Vec<ChallengerRow>,
    rollouts: Vec<RolloutRow>,
}

/// One run of chunk → challenge → (tasks by hand) → rollout with `overrides` of the tiny
/// profile, the generation stages split into `shards` parts.
fn generate(profile: &Path, root: &Path, shards: u32, overrides: &[String]) -> Generated {
    let cfg = RunConfig::load(profile).unwrap().with_overrides(overrides).unwrap();
    std::fs::create_dir_all(root).unwrap();
    std::fs::write(root.join("run.toml"), cfg.to_toml()).unwrap();
    stage("spice-chunk", root, &[]);
    sharded("spice-challenge", root, shards);
    write_tasks(root);
    sharded("spice-rollout", root, shards);
    let iter = root.join("iter-0000");
    let mut challenger: Vec<ChallengerRow> = read_folder(&iter.join("challenger")).unwrap();
    challenger.sort_by_key(|r| (r.doc_slot, r.attempt));
    let mut rollouts: Vec<RolloutRow> = read_folder(&iter.join("rollouts")).unwrap();
    rollouts.sort_by(|a, b| (&a.task_id, a.sample).cmp(&(&b.task_id, b.sample)));
    for folder in ["challenger", "rollouts"] {
        let manifests = Manifest::read_all(&iter.join(folder)).unwrap();
        assert_eq!(manifests.len(), shards as usize, "{folder}: one manifest per part");
        for m in manifests {
            let g: GenerationMetrics = m.metrics_as().unwrap();
            let f32_run = cfg.run.dtype == spice_schemas::vocab::Dtype::F32;
            let invariant = f32_run && cfg.run.batch_invariant;
            assert_eq!(g.batch_invariant, invariant, "{folder} part {}", m.shard.index);
            // The tiny model's EOS is its ChatML end of turn, so it is the one stop token.
            assert_eq!(g.stop_token_ids, [2], "{folder} part {}", m.shard.index);
        }
    }
    Generated { challenger, rollouts }
}

fn same_challenger(a: &ChallengerRow, b: &ChallengerRow) -> bool {
    (a.doc_slot, a.attempt, &a.chunk_id, &a.task_kind, &a.answer_type, &a.prompt_ids)
        == (b.doc_slot, b.attempt, &b.chunk_id, &b.task_kind, &b.answer_type, &b.prompt_ids)
        && (&a.completion, &a.completion_ids, &a.finish_reason, a.seed, a.selected)
            == (&b.completion, &b.completion_ids, &b.finish_reason, b.seed, b.selected)
        && bits(&a.logprobs) == bits(&b.logprobs)
}

fn same_rollout(a: &RolloutRow, b: &RolloutRow) -> bool {
    (&a.task_id, a.sample, &a.prompt_ids, &a.completion, &a.completion_ids)
        == (&b.task_id, b.sample, &b.prompt_ids, &b.completion, &b.completion_ids)
        && (&a.finish_reason, a.seed) == (&b.finish_reason, b.seed)
        && bits(&a.logprobs) == bits(&b.logprobs)
}

fn bits(x: &[f32]) -> Vec<u32> {
    x.iter().map(|v| v.to_bits()).collect()
}

#[test]
fn f32_generation_is_the_same_for_any_shard_count_and_batch_size() {
    let tmp = tempfile::tempdir().unwrap();
    // Four answers per task, so a task's answers share a prefill and land in several decode
    // batches, and answers long enough that some stop early and free their slots.
    let profile = setup(tmp.path(), 11, "", "");
    let base =
        ["reasoner.num_generations=4".to_string(), "reasoner.max_completion_length=128".into()];
    // (shards, challenger.batch_size, reasoner.batch_size); the profile's batch sizes are 4.
    let variants: [(u32, u32, u32); 6] =
        [(1, 4, 4), (2, 4, 4), (3, 4, 4), (1, 1, 1), (1, 3, 7), (2, 2, 16)];
    let t0 = Instant::now();
    let mut reference: Option<Generated> = None;
    for (k, &(shards, cb, rb)) in variants.iter().enumerate() {
        let mut overrides = base.to_vec();
        overrides.extend([
            format!("run.shards={shards}"),
            format!("challenger.batch_size={cb}"),
            format!("reasoner.batch_size={rb}"),
        ]);
        let got = generate(&profile, &tmp.path().join(format!("run{k}")), shards, &overrides);
        assert!(!got.challenger.is_empty());
        assert_eq!(got.rollouts.len(), 4 * tasks().len());
        let Some(want) = &reference else {
            let stopped = got.rollouts.iter().filter(|r| r.finish_reason == "stop").count();
            assert!(stopped > 0, "no answer stopped early: no slot was ever refilled");
            println!(
                "reference: {} Challenger attempts, {} Reasoner answers ({stopped} stopped early)",
                got.challenger.len(),
                got.rollouts.len()
            );
            reference = Some(got);
            continue;
        };
        let what = format!("run.shards = {shards}, batch sizes {cb}/{rb}");
        assert_eq!(got.challenger.len(), want.challenger.len(), "{what}: Challenger attempts");
        for (a, b) in got.challenger.iter().zip(&want.challenger) {
            assert!(
                same_challenger(a, b),
                "{what}: Challenger attempt {}/{} differs:\n{a:?}\nvs\n{b:?}",
                a.doc_slot,
                a.attempt
            );
        }
        assert_eq!(got.rollouts.len(), want.rollouts.len(), "{what}: Reasoner answers");
        for (a, b) in got.rollouts.iter().zip(&want.rollouts) {
            assert!(
                same_rollout(a, b),
                "{what}: answer {} of {} differs:\n{a:?}\nvs\n{b:?}",
                a.sample,
                a.task_id
            );
        }
        println!("{what}: identical rows");
    }
    // A bf16 run says that its rows depend on how they were batched.
    generate(
        &profile,
        &tmp.path().join("bf16"),
        1,
        &[base[0].clone(), base[1].clone(), "run.dtype=\"bf16\"".into()],
    );
    // So does an f32 run that turned the invariant path off for speed (`generate` checks
    // the manifests); it generates as many rows.
    let shared = generate(
        &profile,
        &tmp.path().join("shared"),
        2,
        &[base[0].clone(), base[1].clone(), "run.batch_invariant=false".into()],
    );
    let want = reference.as_ref().unwrap();
    assert_eq!(shared.rollouts.len(), want.rollouts.len());
    assert_eq!(shared.challenger.len(), want.challenger.len());
    println!("{} runs in {:.1} s", variants.len() + 2, t0.elapsed().as_secs_f64());
}
