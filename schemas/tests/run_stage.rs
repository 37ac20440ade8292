//! `run_stage` and the manifest's metric structs: a finished part is skipped, a step that
//! fails — before or after `begin` — never removes it and leaves no half-written shard, and
//! the metrics read back typed — from older manifests too.

mod common;

use std::path::Path;

use spice_schemas::{
    commit::tmp_path,
    metrics::{FilterMetrics, ScoreMetrics, UpdateMetrics},
    rows::RolloutRow,
    run_stage, Manifest, ShardSpec, StageOutput,
};

fn output(dir: &Path, input: &Path) -> StageOutput {
    StageOutput::new(dir, "verify-filter", ShardSpec::WHOLE)
        .input("challenger", input)
        .unwrap()
        .config(&serde_json::json!({ "num_generations": 4 }))
        .seed(3)
}

fn metrics(valid: u64) -> FilterMetrics {
    FilterMetrics { attempts: 8, valid, valid_rate: Some(valid as f64 / 8.0), ..Default::default() }
}

#[test]
fn runs_skips_and_keeps_a_finished_part_on_bad_input() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, input) = (tmp.path().join("tasks"), tmp.path().join("input.txt"));
    std::fs::write(&input, "v1").unwrap();

    let done = run_stage::<RolloutRow, _>(output(&dir, &input), false, |part| {
        part.begin()?.write_all(common::rollouts())?;
        Ok(metrics(5))
    })
    .unwrap();
    let (manifest, m) = done.expect("a missing part runs");
    assert_eq!(manifest.rows, common::rollouts().len() as u64);
    assert_eq!(manifest.metrics_as::<FilterMetrics>().unwrap(), m);
    assert_eq!(manifest.metric("valid"), Some(5.0));

    // Done for these inputs: the step does not run.
    let again = run_stage::<RolloutRow, FilterMetrics>(output(&dir, &input), false, |_| {
        panic!("a finished part must be skipped")
    });
    assert!(again.unwrap().is_none());

    // The input changed and the step finds it bad before `begin`: the finished part stays.
    std::fs::write(&input, "v2").unwrap();
    let bad = run_stage::<RolloutRow, FilterMetrics>(output(&dir, &input), false, |_| {
        anyhow::bail!("row 3 of the input has no `completion`")
    });
    assert!(bad.unwrap_err().to_string().contains("row 3"));
    let kept = Manifest::read(&dir.join("_manifest.json")).unwrap();
    assert_eq!(kept, manifest);
    assert!(dir.join("part-00000.parquet").is_file());
}

#[test]
fn a_step_failing_after_begin_keeps_the_finished_part_and_leaves_no_half_written_shard() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, input) = (tmp.path().join("tasks"), tmp.path().join("input.txt"));
    std::fs::write(&input, "v1").unwrap();
    run_stage::<RolloutRow, _>(output(&dir, &input), false, |part| {
        part.begin()?.write_all(common::rollouts())?;
        Ok(metrics(5))
    })
    .unwrap();

    let finished = Manifest::read(&dir.join("_manifest.json")).unwrap();
    let shard = std::fs::read(dir.join("part-00000.parquet")).unwrap();

    // A corpus that turns out to give nothing, found while streaming it into the shard.
    let failed = run_stage::<RolloutRow, FilterMetrics>(output(&dir, &input), true, |part| {
        part.begin()?.write_all(common::rollouts().into_iter().take(2))?;
        anyhow::bail!("the corpus gave no passage")
    });
    assert!(failed.is_err());
    assert_eq!(Manifest::read(&dir.join("_manifest.json")).unwrap(), finished);
    assert_eq!(std::fs::read(dir.join("part-00000.parquet")).unwrap(), shard);
    assert!(!tmp_path(&dir.join("part-00000.parquet")).exists(), "half-written shard left");

    // A step that never began may not commit.
    let never = run_stage::<RolloutRow, _>(output(&dir, &input), true, |_| Ok(metrics(1)));
    assert!(never.unwrap_err().to_string().contains("without calling begin()"));
}

#[test]
fn metrics_of_older_manifests_read_with_defaults_and_old_names() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, input) = (tmp.path().join("scored"), tmp.path().join("input.txt"));
    std::fs::write(&input, "v1").unwrap();
    let m = output(&dir, &input).commit(&spice_schemas::metrics::NoMetrics {}).unwrap();

    // An older manifest: `mean_r_c` before it was renamed, no `verify_seconds` yet.
    let mut old = m.clone();
    old.metrics =
        serde_json::from_str(r#"{"tasks": 6, "mean_r_c": 0.25, "mean_pass_rate": null}"#).unwrap();
    let s: ScoreMetrics = old.metrics_as().unwrap();
    assert_eq!((s.tasks, s.mean_challenger_reward, s.mean_pass_rate), (6, Some(0.25), None));
    assert_eq!(s.verify_seconds, 0.0);

    old.metrics = serde_json::from_str(r#"{"loss": -0.5, "grad_norm": 2.0}"#).unwrap();
    let u: UpdateMetrics = old.metrics_as().unwrap();
    assert_eq!((u.mean_loss, u.final_grad_norm), (-0.5, 2.0));

    // A field of the wrong type is named.
    old.metrics = serde_json::from_str(r#"{"tasks": "six"}"#).unwrap();
    let err = old.metrics_as::<ScoreMetrics>().unwrap_err().to_string();
    assert!(err.contains("`tasks`") && err.contains("verify-filter"), "{err}");
}

#[test]
fn a_diverged_loss_is_written_as_null_and_reads_back_as_nan() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, input) = (tmp.path().join("update"), tmp.path().join("input.txt"));
    std::fs::write(&input, "v1").unwrap();
    let metrics = UpdateMetrics { steps: 2, mean_loss: f64::NAN, ..Default::default() };
    let m = output(&dir, &input).commit(&metrics).unwrap();
    let text = std::fs::read_to_string(dir.join("_manifest.json")).unwrap();
    assert!(text.contains("\"mean_loss\": null"), "{text}");
    let back: UpdateMetrics =
        Manifest::read(&dir.join("_manifest.json")).unwrap().metrics_as().unwrap();
    assert!(back.mean_loss.is_nan());
    assert_eq!(back.steps, 2);
    assert_eq!(m.metric("steps"), Some(2.0));
}
