//! The commit protocol: a writer that dies leaves nothing that looks finished; "done" follows
//! content digests of inputs and config; `--force` redoes.

mod common;

use std::{path::Path, process::Command};

use spice_schemas::{
    commit::Status, digest::digest_path, manifest::folder_complete, rows::RolloutRow, ShardSpec,
    ShardWriter, StageOutput,
};

const DIE_ENV: &str = "SPICE_TEST_DIE_MIDWAY";

fn stage(dir: &Path, input: &Path, lr: f64) -> StageOutput {
    StageOutput::new(dir, "rollout", ShardSpec::WHOLE)
        .input("tasks", input)
        .unwrap()
        .config(&serde_json::json!({ "learning_rate": lr }))
        .seed(7)
}

fn write_rows(out: &StageOutput, n: usize) -> anyhow::Result<()> {
    let mut w = ShardWriter::<RolloutRow>::create(out.part_path())?;
    for i in 0..n {
        let mut r = common::rollouts()[i % 8].clone();
        r.sample = i as u32;
        w.write(r)?;
        if i == n / 2 && std::env::var_os(DIE_ENV).is_some() {
            // Killed mid-write: no unwinding, no destructors, like SIGKILL.
            std::process::abort();
        }
    }
    w.finish()?;
    Ok(())
}

/// Runs only as the child of `writer_killed_midway_leaves_nothing_finished`.
#[test]
fn child_writer_that_dies() {
    let Some(dir) = std::env::var_os(DIE_ENV) else { return };
    let dir = Path::new(&dir);
    let out = stage(&dir.join("out"), &dir.join("input.txt"), 1e-6);
    assert!(!out.skip(false).unwrap());
    out.begin().unwrap();
    write_rows(&out, 5000).unwrap();
    out.commit(&spice_schemas::metrics::NoMetrics {}).unwrap();
}

#[test]
fn writer_killed_midway_leaves_nothing_finished() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("input.txt"), "tasks v1").unwrap();
    let status = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_writer_that_dies", "--nocapture", "--test-threads=1"])
        .env(DIE_ENV, tmp.path())
        .status()
        .unwrap();
    assert!(!status.success(), "the child was meant to die mid-write");

    let out_dir = tmp.path().join("out");
    let out = stage(&out_dir, &tmp.path().join("input.txt"), 1e-6);
    assert_eq!(out.status().unwrap(), Status::Missing);
    assert!(folder_complete(&out_dir).unwrap().is_none());
    assert!(
        !out_dir.join("part-00000.parquet").exists(),
        "a half-written shard has the final name"
    );
    assert!(
        out_dir.join("part-00000.parquet.tmp").exists(),
        "the child should have died while writing"
    );
    // Rerunning cleans up and finishes.
    assert!(!out.skip(false).unwrap());
    out.begin().unwrap();
    assert!(!out_dir.join("part-00000.parquet.tmp").exists());
    write_rows(&out, 5000).unwrap();
    let m = out.commit(&spice_schemas::metrics::NoMetrics {}).unwrap();
    assert_eq!(m.rows, 5000);
    assert!(folder_complete(&out_dir).unwrap().is_some());
}

#[test]
fn done_follows_inputs_config_and_force() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("input.txt");
    std::fs::write(&input, "tasks v1").unwrap();
    let out_dir = tmp.path().join("out");

    let out = stage(&out_dir, &input, 1e-6);
    assert!(!out.skip(false).unwrap());
    out.begin().unwrap();
    write_rows(&out, 10).unwrap();
    let first = out.commit(&spice_schemas::metrics::NoMetrics {}).unwrap();
    assert_eq!(first.rows, 10);

    // Same inputs and config: done, and the manifest says what it did.
    let again = stage(&out_dir, &input, 1e-6);
    assert!(matches!(again.status().unwrap(), Status::Done(_)));
    assert!(again.skip(false).unwrap());

    // A changed config or input makes it stale.
    assert!(
        matches!(stage(&out_dir, &input, 1e-5).status().unwrap(), Status::Stale(s) if s.contains("configuration"))
    );
    std::fs::write(&input, "tasks v2").unwrap();
    assert!(
        matches!(stage(&out_dir, &input, 1e-6).status().unwrap(), Status::Stale(s) if s.contains("tasks"))
    );
    std::fs::write(&input, "tasks v1").unwrap();

    // A deleted output makes it stale too.
    let again = stage(&out_dir, &input, 1e-6);
    assert!(again.skip(false).unwrap());
    // --force redoes: the manifest goes first, so the folder reads unfinished meanwhile.
    assert!(!again.skip(true).unwrap());
    again.begin().unwrap();
    assert_eq!(again.status().unwrap(), Status::Missing);
}

#[test]
fn digests_change_when_inputs_change() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("model");
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::write(dir.join("config.json"), "{}").unwrap();
    std::fs::write(dir.join("sub/weights.bin"), [0u8; 64]).unwrap();
    let d0 = digest_path(&dir).unwrap();
    assert_eq!(d0, digest_path(&dir).unwrap(), "digest is deterministic");
    std::fs::write(dir.join("sub/weights.bin"), [1u8; 64]).unwrap();
    let d1 = digest_path(&dir).unwrap();
    assert_ne!(d0, d1, "content change");
    std::fs::rename(dir.join("config.json"), dir.join("config2.json")).unwrap();
    assert_ne!(d1, digest_path(&dir).unwrap(), "rename");
    // Temporary files of unfinished writers do not count.
    let d2 = digest_path(&dir).unwrap();
    std::fs::write(dir.join("x.tmp"), "partial").unwrap();
    assert_eq!(d2, digest_path(&dir).unwrap());
    assert!(
        format!("{:#}", digest_path(&tmp.path().join("absent")).unwrap_err()).contains("absent")
    );
}

#[test]
fn sharded_folder_completes_when_every_part_commits() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("input.txt");
    std::fs::write(&input, "x").unwrap();
    let out_dir = tmp.path().join("rollouts");
    for index in 0..3 {
        assert!(folder_complete(&out_dir).unwrap().is_none());
        let out = StageOutput::new(&out_dir, "rollout", ShardSpec { index, count: 3 })
            .input("tasks", &input)
            .unwrap();
        assert!(!out.skip(false).unwrap());
        out.begin().unwrap();
        write_rows(&out, 3 + index as usize).unwrap();
        out.commit(&spice_schemas::metrics::NoMetrics {}).unwrap();
    }
    let manifests = folder_complete(&out_dir).unwrap().expect("all parts committed");
    assert_eq!(manifests.iter().map(|m| m.rows).sum::<u64>(), 3 + 4 + 5);
    // A committed folder is digested from its manifests, and changes when a part is redone.
    let d0 = digest_path(&out_dir).unwrap();
    let out = StageOutput::new(&out_dir, "rollout", ShardSpec { index: 1, count: 3 })
        .input("tasks", &input)
        .unwrap();
    assert!(!out.skip(true).unwrap());
    out.begin().unwrap();
    write_rows(&out, 9).unwrap();
    out.commit(&spice_schemas::metrics::NoMetrics {}).unwrap();
    assert_ne!(d0, digest_path(&out_dir).unwrap());
}

#[test]
fn a_damaged_committed_shard_is_an_error_naming_the_file_and_both_digests() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("input.txt");
    std::fs::write(&input, "tasks").unwrap();
    let dir = tmp.path().join("rollouts");
    let out = stage(&dir, &input, 1e-6);
    out.begin().unwrap();
    write_rows(&out, 40).unwrap();
    let m = out.commit(&spice_schemas::metrics::NoMetrics {}).unwrap();
    let part = dir.join("part-00000.parquet");
    assert_eq!(m.outputs[0].bytes, std::fs::metadata(&part).unwrap().len());
    let rows = spice_schemas::read_committed_rows::<RolloutRow>(&dir, "spice-rollout").unwrap();
    assert_eq!(rows.len(), 40);

    // Two bytes flipped in the middle: same size, other content.
    let mut bytes = std::fs::read(&part).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    bytes[mid + 1] ^= 0xff;
    std::fs::write(&part, &bytes).unwrap();
    let found = spice_schemas::digest::sha256_file(&part).unwrap();
    let err = format!(
        "{:#}",
        spice_schemas::read_committed_rows::<RolloutRow>(&dir, "spice-rollout").unwrap_err()
    );
    for want in [part.display().to_string(), m.outputs[0].digest.clone(), found, "--force".into()] {
        assert!(err.contains(&want), "`{want}` missing from: {err}");
    }

    // Cut short: caught by its size, before anything is read.
    std::fs::write(&part, &bytes[..mid]).unwrap();
    let err = format!("{:#}", spice_schemas::committed_files(&dir, "spice-rollout").unwrap_err());
    assert!(err.contains("is corrupt") && err.contains(&format!("size {mid} bytes")), "{err}");
}

#[test]
fn inputs_inside_a_run_are_recorded_run_relative_and_done_survives_a_move() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    std::fs::create_dir_all(run.join("iter-0000/tasks")).unwrap();
    std::fs::write(run.join("run.toml"), "").unwrap();
    std::fs::write(run.join("iter-0000/tasks/t.txt"), "tasks").unwrap();
    let outside = tmp.path().join("model.txt");
    std::fs::write(&outside, "weights").unwrap();
    let stage_in = |run: &Path| {
        StageOutput::new(&run.join("iter-0000/rollouts"), "rollout", ShardSpec::WHOLE)
            .input("tasks", &run.join("iter-0000/tasks"))
            .unwrap()
            .input("policy", &outside)
            .unwrap()
            .seed(7)
    };
    let out = stage_in(&run);
    out.begin().unwrap();
    write_rows(&out, 4).unwrap();
    let m = out.commit(&spice_schemas::metrics::NoMetrics {}).unwrap();
    assert_eq!(m.inputs[0].path, Path::new("iter-0000/tasks"));
    assert_eq!(m.inputs[1].path, outside, "an input outside the run keeps its path");

    let moved = tmp.path().join("elsewhere/run");
    std::fs::create_dir_all(moved.parent().unwrap()).unwrap();
    std::fs::rename(&run, &moved).unwrap();
    assert!(matches!(stage_in(&moved).status().unwrap(), Status::Done(_)));
    // Content still decides: a changed input is stale wherever the run lives.
    std::fs::write(moved.join("iter-0000/tasks/t.txt"), "other tasks").unwrap();
    assert!(matches!(stage_in(&moved).status().unwrap(), Status::Stale(s) if s.contains("tasks")));
}

#[test]
fn a_pruned_folder_keeps_its_digest_and_reads_as_done() {
    use spice_schemas::metrics::NoMetrics;
    use spice_schemas::prune::{is_pruned, prune_folder, read_pruned, refuse_pruned, PRUNED_FILE};
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("input.txt");
    std::fs::write(&input, "x").unwrap();
    let dir = tmp.path().join("checkpoint");
    let out = stage(&dir, &input, 1e-6);
    let err = format!("{:#}", prune_folder(&tmp.path().join("absent"), "test").unwrap_err());
    assert!(err.contains("absent"), "{err}");
    out.begin().unwrap();
    std::fs::write(dir.join("model.safetensors"), [7u8; 1000]).unwrap();
    std::fs::write(dir.join("config.json"), "{}").unwrap();
    assert!(prune_folder(&dir, "test").is_err(), "an uncommitted folder is not pruned");
    out.commit_with_files(&[("config.json", 0), ("model.safetensors", 0)], &NoMetrics {}).unwrap();
    let digest = digest_path(&dir).unwrap();

    assert_eq!(prune_folder(&dir, "keep = 1 in a test").unwrap(), 1002);
    let mut left: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["_manifest.json", PRUNED_FILE]);
    assert_eq!(digest, digest_path(&dir).unwrap(), "what later stages recorded still holds");
    assert!(matches!(stage(&dir, &input, 1e-6).status().unwrap(), Status::Done(_)));
    // Other inputs or settings still make it stale.
    assert!(matches!(stage(&dir, &input, 1e-5).status().unwrap(), Status::Stale(_)));
    let rec = read_pruned(&dir).unwrap().unwrap();
    assert_eq!((rec.bytes, rec.files.len()), (1002, 2));
    let err = format!("{:#}", refuse_pruned(&dir).unwrap_err());
    assert!(err.contains("was pruned") && err.contains("keep = 1 in a test"), "{err}");
    assert_eq!(prune_folder(&dir, "again").unwrap(), 0);
    assert_eq!(read_pruned(&dir).unwrap().unwrap().reason, "keep = 1 in a test");

    // A prune killed after its marker: the next one removes the rest.
    std::fs::write(dir.join("model.safetensors"), [7u8; 10]).unwrap();
    assert!(is_pruned(&dir));
    assert_eq!(prune_folder(&dir, "again").unwrap(), 10);
    assert!(!dir.join("model.safetensors").exists());
    refuse_pruned(&tmp.path().join("input-folder-never-pruned")).unwrap();
}
