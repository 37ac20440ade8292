//! `spice-score` end to end: Challenger attempts filtered by the binary, Reasoner
//! answers committed by hand, scored/ and its manifest read back and checked against
//! METHOD.md (the K = 8 reward table, the ablation rewards, Dr. GRPO advantages, T_R).

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::*;
use serde_json::{json, Value};
use spice_schemas::rows::{ChallengerRow, RolloutRow, ScoredRow};
use spice_schemas::{RunConfig, ShardRow};

const DOCS: u32 = 9;
const K: u32 = 8;

/// METHOD.md: with K = 8, r_C for p̂ = 0 or 1 → 0.044, 1/8 → 0.372, 2/8 → 0.823, 3/8 → 0.988,
/// 4/8 → 1.0 (symmetric around 1/2).
const K8_TABLE: [f32; 5] = [0.044, 0.372, 0.823, 0.988, 1.0];

/// Document j (0..9) has four attempts: a0 valid (MCQ for even j, free-form for odd), which
/// the Reasoner answers correctly j times of 8; a1 invalid; a2 valid free-form, answered
/// correctly 8 − j times; a3 valid but not selected (so never answered).
fn table_attempts() -> Vec<Vec<ChallengerRow>> {
    let mut a = Vec::new();
    let mut b = Vec::new();
    for j in 0..DOCS {
        let first = if j % 2 == 0 { ("mcq", MCQ) } else { ("free_form", FREE) };
        a.push(attempt(j, 0, first.0, first.1, true));
        a.push(attempt(j, 1, "mcq", NO_JSON, true));
        b.push(attempt(j, 2, "free_form", FREE, true));
        b.push(attempt(j, 3, "mcq", MCQ, false));
    }
    vec![a, b]
}

/// K answers to one task, `correct` of them right, written in a scrambled sample order.
fn answers(doc: u32, attempt: u32, mcq: bool, correct: u32) -> Vec<RolloutRow> {
    let (right, wrong) = if mcq { (MCQ_RIGHT, MCQ_WRONG) } else { (FREE_RIGHT, FREE_WRONG) };
    (0..K)
        .map(|i| (i * 3) % K)
        .map(|s| answer(&task_id(doc, attempt), doc, s, if s < correct { right } else { wrong }))
        .collect()
}

fn table_answers() -> Vec<Vec<RolloutRow>> {
    let mut parts = vec![Vec::new(), Vec::new()];
    for j in 0..DOCS {
        parts[0].extend(answers(j, 0, j % 2 == 0, j));
        parts[1].extend(answers(j, 2, false, K - j));
    }
    parts
}

/// A run folder with filtered tasks and committed rollouts, ready to score.
fn table_run(cfg: &RunConfig) -> Run {
    let run = Run::new(cfg);
    run.commit::<ChallengerRow>(&table_attempts());
    filter_ok(&run, &[]);
    run.commit::<RolloutRow>(&table_answers());
    run
}

fn row<'a>(rows: &'a [ScoredRow], role: &str, doc: u32, attempt: u32) -> &'a ScoredRow {
    rows.iter()
        .find(|r| {
            r.role == role
                && r.task_id == task_id(doc, attempt)
                && (role == "reasoner" || r.sample == attempt)
        })
        .unwrap_or_else(|| panic!("no {role} row for d{doc} a{attempt}"))
}

/// The task of each document whose answers are in T_R.
fn reasoner_batch(rows: &[ScoredRow]) -> BTreeMap<u32, String> {
    let mut chosen: BTreeMap<u32, BTreeSet<String>> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.role == "reasoner" && r.in_batch) {
        chosen.entry(r.doc_slot).or_default().insert(r.task_id.clone());
    }
    chosen
        .into_iter()
        .map(|(d, ids)| {
            assert_eq!(ids.len(), 1, "document {d} has {} tasks in T_R: {ids:?}", ids.len());
            (d, ids.into_iter().next().unwrap())
        })
        .collect()
}

#[test]
fn variance_reward_reproduces_the_k8_table() {
    let run = table_run(&RunConfig::default());
    run.stage_ok(SCORE, &[]);
    let rows = run.scored();

    for j in 0..DOCS {
        for (attempt, correct) in [(0, j), (2, K - j)] {
            let c = row(&rows, "challenger", j, attempt);
            let want = K8_TABLE[correct.min(K - correct) as usize];
            assert!(
                (c.reward - want).abs() < 5e-4,
                "d{j} a{attempt}: p̂ = {correct}/8, r_C = {}, table {want}",
                c.reward
            );
            assert_eq!(c.pass_rate, Some(correct as f32 / K as f32));
            assert!(c.valid && c.in_batch && c.correct.is_none());
            assert_eq!(c.group_id, format!("d{j:03}"));
        }
        let invalid = row(&rows, "challenger", j, 1);
        assert_eq!((invalid.reward, invalid.valid, invalid.pass_rate), (-0.1, false, None));
        assert!(
            !rows.iter().any(|r| r.task_id == task_id(j, 3)),
            "an unselected task is neither in T_C nor answered"
        );
    }

    // Reasoner rows: 1 for a right answer, 0 otherwise; p̂ of the task; sorted by sample.
    for j in 0..DOCS {
        let task: Vec<&ScoredRow> =
            rows.iter().filter(|r| r.role == "reasoner" && r.task_id == task_id(j, 0)).collect();
        assert_eq!(task.iter().map(|r| r.sample).collect::<Vec<_>>(), (0..K).collect::<Vec<_>>());
        for r in &task {
            let right = r.sample < j;
            assert_eq!(
                (r.correct, r.reward),
                (Some(right), if right { 1.0 } else { 0.0 }),
                "d{j} answer {}",
                r.sample
            );
            assert_eq!(r.pass_rate, Some(j as f32 / 8.0));
            assert_eq!(r.group_id, task_id(j, 0));
            assert_eq!(
                r.extracted.as_deref(),
                Some(match (j % 2 == 0, right) {
                    (true, true) => "C",
                    (true, false) => "B",
                    (false, true) => "6",
                    (false, false) => "8",
                })
            );
        }
    }

    // Dr. GRPO: advantage = reward − the group's mean, so every group sums to zero.
    let mut groups: BTreeMap<(String, String), Vec<&ScoredRow>> = BTreeMap::new();
    for r in &rows {
        groups.entry((r.role.clone(), r.group_id.clone())).or_default().push(r);
    }
    assert_eq!(groups.len(), DOCS as usize * 3, "9 Challenger groups and 18 answered tasks");
    for ((role, g), members) in &groups {
        let mean = members.iter().map(|r| r.reward as f64).sum::<f64>() / members.len() as f64;
        for r in members {
            assert!((r.advantage as f64 - (r.reward as f64 - mean)).abs() < 1e-6, "{role} {g}");
        }
        let sum: f64 = members.iter().map(|r| r.advantage as f64).sum();
        assert!(sum.abs() < 1e-5, "{role} group {g}: advantages sum to {sum}");
    }

    // T_R: exactly one valid selected task per document, with all its K answers.
    let chosen = reasoner_batch(&rows);
    assert_eq!(chosen.len(), DOCS as usize);
    for (d, id) in &chosen {
        assert!(*id == task_id(*d, 0) || *id == task_id(*d, 2), "{id}");
        assert_eq!(
            rows.iter().filter(|r| r.in_batch && r.role == "reasoner" && r.doc_slot == *d).count(),
            K as usize
        );
    }

    // Tokens and log-probs are the sampled ones, copied from the source rows.
    let c = row(&rows, "challenger", 4, 2);
    let src = attempt(4, 2, "free_form", FREE, true);
    assert_eq!(
        (&c.prompt_ids, &c.completion_ids, &c.logprobs),
        (&src.prompt_ids, &src.completion_ids, &src.logprobs)
    );
    assert_eq!((c.finish_reason.as_str(), c.policy_id.as_str()), ("stop", "model@abc"));
    let r = rows
        .iter()
        .find(|r| r.role == "reasoner" && r.task_id == task_id(4, 2) && r.sample == 5)
        .unwrap();
    let src = answer(&task_id(4, 2), 4, 5, "");
    assert_eq!(
        (&r.prompt_ids, &r.completion_ids, &r.logprobs),
        (&src.prompt_ids, &src.completion_ids, &src.logprobs)
    );

    // The manifest's numbers.
    let m = run.manifest(ScoredRow::FOLDER);
    assert_eq!(m.stage, "verify-score");
    let names: Vec<&str> = m.inputs.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["tasks", "rollouts", "challenger"]);
    assert_eq!(m.rows as usize, rows.len());
    assert_eq!(rows.len(), (DOCS * 3 + DOCS * 2 * K) as usize);
    let metric = |k: &str| m.metrics.get(k).cloned().unwrap_or(Value::Null);
    assert_eq!(
        (metric("tasks"), metric("valid_tasks"), metric("answered_tasks")),
        (json!(36), json!(27), json!(18))
    );
    assert_eq!(metric("mean_pass_rate"), json!(0.5));
    assert_eq!(metric("pass_rate_zero_share"), json!(2.0 / 18.0));
    assert_eq!(metric("pass_rate_one_share"), json!(2.0 / 18.0));
    assert_eq!(metric("pass_rate_mid_share"), json!(14.0 / 18.0));
    assert_eq!(metric("reasoner_accuracy"), json!(0.5));
    assert_eq!(
        (metric("in_batch_challenger"), metric("in_batch_reasoner")),
        (json!(27), json!(72))
    );
    let want_mean_rc: f64 =
        (0..DOCS).map(|j| 2.0 * K8_TABLE[j.min(K - j) as usize] as f64 - 0.1).sum::<f64>() / 27.0;
    assert!((metric("mean_challenger_reward").as_f64().unwrap() - want_mean_rc).abs() < 2e-3);
    assert!(metric("mean_advantage_challenger").as_f64().unwrap().abs() < 1e-6);
    assert!(metric("mean_advantage_reasoner").as_f64().unwrap().abs() < 1e-6);
    assert!(metric("seconds").as_f64().is_some() && metric("verify_seconds").as_f64().is_some());
}

#[test]
fn each_reward_variant_at_one_pass_rate() {
    let run = table_run(&RunConfig::default());
    run.stage_ok(SCORE, &[]);
    // (variant, r_C at p̂ = 2/8, r_C at p̂ = 0 and at p̂ = 1), from METHOD.md's ablation table.
    for (variant, quarter, ends) in
        [("absolute_zero", 0.75, 0.0), ("threshold", 1.0, 0.0), ("r_zero", 0.5, 0.0)]
    {
        let mut cfg = RunConfig::default();
        cfg.reward.challenger_reward = variant.parse().unwrap();
        cfg.reward.invalid_penalty = -0.25;
        run.set_config(&cfg);
        let log = run.stage_ok(SCORE, &[]);
        assert!(log.contains("configuration changed"), "a new [reward] reruns score: {log}");
        let rows = run.scored();
        assert!((row(&rows, "challenger", 2, 0).reward - quarter).abs() < 1e-6, "{variant}");
        assert_eq!(row(&rows, "challenger", 0, 0).reward, ends, "{variant} at p̂ = 0");
        assert_eq!(row(&rows, "challenger", 8, 0).reward, ends, "{variant} at p̂ = 1");
        assert_eq!(
            row(&rows, "challenger", 2, 1).reward,
            -0.25,
            "{variant}: the configured invalid penalty"
        );
    }
}

#[test]
fn group_scaling_divides_by_the_group_std() {
    let mut cfg = RunConfig::default();
    cfg.reward.scale_rewards = spice_schemas::vocab::ScaleRewards::Group;
    let run = table_run(&cfg);
    run.stage_ok(SCORE, &[]);
    let rows = run.scored();
    // d2 a0: 2 of 8 right, std = sqrt(p̂(1 − p̂)) = sqrt(3)/4.
    let right = rows
        .iter()
        .find(|r| r.role == "reasoner" && r.task_id == task_id(2, 0) && r.sample == 0)
        .unwrap();
    let want = 0.75 / (3.0f64.sqrt() / 4.0);
    assert!((right.advantage as f64 - want).abs() < 1e-5, "{} vs {want}", right.advantage);
}

#[test]
fn the_reasoner_batch_is_seeded_and_reproducible() {
    let run = table_run(&RunConfig::default());
    run.stage_ok(SCORE, &[]);
    let first = reasoner_batch(&run.scored());
    run.stage_ok(SCORE, &["--force"]);
    assert_eq!(reasoner_batch(&run.scored()), first, "a forced rerun draws the same tasks");

    // Other run seeds draw other tasks, each of the two candidates about half the time.
    let mut picks_a0 = 0;
    let mut draws = BTreeSet::new();
    let seeds = 1..=12u64;
    for seed in seeds.clone() {
        let log = run.stage_ok(SCORE, &["--seed", &seed.to_string()]);
        assert!(log.contains("seed changed"), "{log}");
        let chosen = reasoner_batch(&run.scored());
        picks_a0 += chosen.iter().filter(|(d, id)| **id == task_id(**d, 0)).count();
        draws.insert(chosen);
    }
    assert!(draws.len() > 6, "12 seeds gave only {} distinct batches", draws.len());
    let share = picks_a0 as f64 / (seeds.count() * DOCS as usize) as f64;
    assert!((0.3..0.7).contains(&share), "a0 drawn {share:.2} of the time; expected about 1/2");
}

#[test]
fn rerun_is_a_no_op_and_changed_rollouts_rerun() {
    let run = table_run(&RunConfig::default());
    run.stage_ok(SCORE, &[]);
    let first = run.manifest_bytes(ScoredRow::FOLDER);
    let log = run.stage_ok(SCORE, &[]);
    assert!(log.contains("is done"), "{log}");
    assert_eq!(run.manifest_bytes(ScoredRow::FOLDER), first);

    // One more right answer for d4 a0 (4/8 → 5/8).
    let mut parts = table_answers();
    let r = parts[0].iter_mut().find(|r| r.task_id == task_id(4, 0) && r.sample == 4).unwrap();
    r.completion = MCQ_RIGHT.into();
    run.commit::<RolloutRow>(&parts);
    let log = run.stage_ok(SCORE, &[]);
    assert!(log.contains("inputs changed: rollouts"), "{log}");
    let rows = run.scored();
    assert_eq!(row(&rows, "challenger", 4, 0).pass_rate, Some(5.0 / 8.0));
    assert!((row(&rows, "challenger", 4, 0).reward - 0.988).abs() < 5e-4);
}

#[test]
fn inconsistent_inputs_are_named_and_the_finished_output_survives() {
    let run = table_run(&RunConfig::default());
    run.stage_ok(SCORE, &[]);
    let finished = run.manifest_bytes(ScoredRow::FOLDER);

    // A valid selected task without answers.
    let mut parts = table_answers();
    parts[1].retain(|r| r.task_id != task_id(5, 2));
    run.commit::<RolloutRow>(&parts);
    let err = run.stage_err(SCORE, &[]);
    assert!(
        err.contains(&task_id(5, 2)) && err.contains("no answers") && err.contains("rollouts"),
        "{err}"
    );
    assert_eq!(run.manifest_bytes(ScoredRow::FOLDER), finished, "the old output is still finished");

    // Answers to a task that does not exist.
    let mut parts = table_answers();
    parts[1].push(answer("i0002-d099-a0000", 99, 0, FREE_RIGHT));
    run.commit::<RolloutRow>(&parts);
    let err = run.stage_err(SCORE, &[]);
    assert!(err.contains("i0002-d099-a0000") && err.contains("part-00001.parquet"), "{err}");

    // Answers to an invalid task.
    let mut parts = table_answers();
    parts[0].push(answer(&task_id(3, 1), 3, 0, FREE_RIGHT));
    run.commit::<RolloutRow>(&parts);
    let err = run.stage_err(SCORE, &[]);
    assert!(err.contains(&task_id(3, 1)) && err.contains("invalid"), "{err}");

    // The same answer twice.
    let mut parts = table_answers();
    let dup = parts[0][0].clone();
    parts[1].push(dup);
    run.commit::<RolloutRow>(&parts);
    let err = run.stage_err(SCORE, &[]);
    assert!(err.contains("appears twice"), "{err}");

    // An unfinished rollouts folder: one part's manifest is gone.
    run.commit::<RolloutRow>(&table_answers());
    std::fs::remove_file(run.folder(RolloutRow::FOLDER).join("_manifest.part-00001-of-00002.json"))
        .unwrap();
    let err = run.stage_err(SCORE, &[]);
    assert!(
        err.contains("rollouts") && err.contains("not finished") && err.contains("spice-rollout"),
        "{err}"
    );
    assert_eq!(run.manifest_bytes(ScoredRow::FOLDER), finished);
}

#[test]
fn sharded_stages_give_the_rows_of_one_whole_run() {
    let whole = table_run(&RunConfig::default());
    whole.stage_ok(SCORE, &[]);

    let split = Run::new(&RunConfig::default());
    split.commit::<ChallengerRow>(&table_attempts());
    for part in ["0/2", "1/2"] {
        filter_ok(&split, &["--shard", part]);
    }
    split.commit::<RolloutRow>(&table_answers());
    for part in ["0/2", "1/2"] {
        split.stage_ok(SCORE, &["--shard", part]);
    }
    let key = |r: &ScoredRow| (r.role.clone(), r.task_id.clone(), r.sample);
    let mut a = whole.scored();
    let mut b = split.scored();
    a.sort_by_key(key);
    b.sort_by_key(key);
    assert_eq!(a, b);
}

#[test]
fn help_lists_the_stage_flags() {
    assert_help_lists_stage_flags(SCORE);
}
