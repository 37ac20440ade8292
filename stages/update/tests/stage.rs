//! The stage's files: outputs and manifests, reruns, interrupted saves, bad input, the binary.

mod common;

use common::*;
use spice_schemas::{rows::ScoredRow, Manifest, ShardRow, ShardSpec, ShardWriter, StageOutput};
use spice_update::{Outcome, SavePoint, UpdateOptions};

fn err_text(r: anyhow::Result<Outcome>) -> String {
    format!("{:#}", r.expect_err("the update must refuse"))
}

#[test]
fn writes_metrics_and_a_committed_checkpoint_and_a_rerun_is_a_no_op() {
    let run = make_run(&["update.ppo_epochs=2", "update.mini_batch_size=7"]);
    run.write_scored(0, &scored_rows(0, 1));
    let out = spice_update::run(&run.ctx(0, false), &UpdateOptions::default()).unwrap();
    let Outcome::Updated(m) = out else { panic!("expected an update") };

    // 14 rows in the batch, mini-batches of 7, two epochs: 4 steps.
    let steps = run.update_rows(0);
    assert_eq!(steps.len(), 4);
    for (i, s) in steps.iter().enumerate() {
        assert_eq!((s.step, s.epoch, s.sequences), (i as u32, i as u32 / 2, 7));
        assert_eq!(s.challenger_sequences + s.reasoner_sequences, 7);
        assert!(s.tokens > 0 && s.peak_rss_mib > 0.0 && s.seconds > 0.0, "{s:?}");
        assert!((0.0..=1.0).contains(&s.clip_fraction), "{s:?}");
    }
    // The first step's ratios are 1: nothing is clipped, and the gradient is not zero.
    assert_eq!(steps[0].clip_fraction, 0.0);
    assert!(steps[0].grad_norm > 0.0);
    // Every row is trained once per epoch.
    assert_eq!(steps.iter().map(|s| s.challenger_sequences).sum::<u32>(), 12);
    assert_eq!(m.metric("steps"), Some(4.0));
    assert_eq!(m.metric("sequences"), Some(14.0));
    assert_eq!(m.metric("rows_read"), Some(15.0));
    assert_eq!(m.metric("final_grad_norm"), Some(steps[3].grad_norm));
    for key in
        ["mean_loss", "seconds", "tokens_per_second", "peak_rss_mib", "logprob_mismatch_mean_abs"]
    {
        assert!(m.metric(key).is_some(), "manifest metric {key}");
    }
    assert_eq!(m.outputs.len(), 1);
    assert_eq!(m.outputs[0].rows, 4);

    // The checkpoint: a committed model folder, next iteration's policy; the optimizer
    // state in its own committed folder beside it.
    let ckpt = run.checkpoint(0);
    let cm = Manifest::read(&ckpt.join("_manifest.json")).unwrap();
    let files: Vec<&str> = cm.outputs.iter().map(|o| o.file.as_str()).collect();
    for f in ["config.json", "model.safetensors", "tokenizer.json"] {
        assert!(files.contains(&f), "{f} missing from {files:?}");
    }
    assert!(!files.iter().any(|f| f.starts_with("_manifest") || f.starts_with("optimizer")));
    assert_eq!(cm.metric("optimizer_step"), Some(4.0));
    let om = Manifest::read(&run.layout().optimizer(0).join("_manifest.json")).unwrap();
    let files: Vec<&str> = om.outputs.iter().map(|o| o.file.as_str()).collect();
    assert_eq!(files, ["optimizer.json", "optimizer.safetensors"]);
    assert_eq!((om.metric("optimizer_step"), om.device.as_deref()), (Some(4.0), Some("cpu")));
    assert_eq!(run.ctx(1, false).policy_dir().unwrap(), ckpt);
    for leftover in ["checkpoint.tmp", "optimizer.tmp"] {
        assert!(!run.layout().iter_dir(0).join(leftover).exists(), "{leftover}");
    }

    // A rerun changes nothing.
    let manifests = || {
        ["update", "checkpoint", "optimizer"]
            .map(|f| std::fs::read(run.layout().folder(0, f).join("_manifest.json")).unwrap())
    };
    let before = manifests();
    let again = spice_update::run(&run.ctx(0, false), &UpdateOptions::default()).unwrap();
    assert!(matches!(again, Outcome::AlreadyDone));
    assert_eq!(before, manifests());

    // Changed input: redone.
    run.write_scored(0, &scored_rows(0, 2));
    let redo = spice_update::run(&run.ctx(0, false), &UpdateOptions::default()).unwrap();
    assert!(matches!(redo, Outcome::Updated(_)));
}

const SAVE_POINTS: [SavePoint; 5] = [
    SavePoint::WeightsWritten,
    SavePoint::OptimizerWritten,
    SavePoint::OptimizerCommitted,
    SavePoint::FolderRenamed,
    SavePoint::CheckpointCommitted,
];

/// A forced update of iteration `iter` killed at `point`.
fn kill_at(run: &TestRun, iter: u32, point: SavePoint) {
    let r = spice_update::run_with(&run.ctx(iter, true), &UpdateOptions::default(), &mut |p| {
        if p == point {
            anyhow::bail!("killed at {p:?}")
        }
        Ok(())
    });
    assert!(err_text(r).contains("killed"));
}

#[test]
fn a_save_killed_at_any_point_leaves_nothing_that_looks_done() {
    let run = make_run(&[]);
    run.write_scored(0, &scored_rows(0, 1));
    let committed = |dir: std::path::PathBuf| dir.join("_manifest.json").exists();
    for point in SAVE_POINTS {
        kill_at(&run, 0, point);
        let (ckpt, opt) = (run.checkpoint(0), run.layout().optimizer(0));
        // Never a finished checkpoint without its optimizer state.
        assert!(!committed(ckpt.clone()) || committed(opt.clone()), "{point:?}");
        assert!(!committed(run.layout().folder(0, "update")), "{point:?}");
        if point == SavePoint::CheckpointCommitted {
            run.ctx(1, false).policy_dir().unwrap();
        } else {
            assert!(!committed(ckpt), "{point:?}: checkpoint manifest exists");
            let next = run.ctx(1, false).policy_dir();
            assert!(
                next.is_err(),
                "{point:?}: iteration 1 would start from an unfinished checkpoint"
            );
            println!("killed at {point:?}: iteration 1 refuses with: {:#}", next.unwrap_err());
        }
        // Not done: a plain rerun does the work.
        let out = spice_update::run(&run.ctx(0, false), &UpdateOptions::default()).unwrap();
        assert!(matches!(out, Outcome::Updated(_)), "{point:?}");
        run.ctx(1, false).policy_dir().unwrap();
        assert!(committed(opt));
        assert!(!run.layout().iter_dir(0).join("checkpoint.tmp").exists());
        assert!(!run.layout().iter_dir(0).join("optimizer.tmp").exists());
    }
}

#[test]
fn a_resume_after_a_save_killed_at_any_point_equals_an_uninterrupted_run() {
    // Iteration 1's save is killed; the rerun resumes iteration 0's optimizer state, which no
    // kill point of iteration 1 may have touched (it is pruned only after 1 has committed).
    let clean = make_run(&[]);
    clean.write_scored(0, &scored_rows(0, 1));
    clean.write_scored(1, &scored_rows(1, 2));
    for iter in 0..2 {
        spice_update::run(&clean.ctx(iter, false), &UpdateOptions::default()).unwrap();
    }
    let want = load(&clean.checkpoint(1));
    for point in SAVE_POINTS {
        let run = make_run(&[]);
        run.write_scored(0, &scored_rows(0, 1));
        run.write_scored(1, &scored_rows(1, 2));
        spice_update::run(&run.ctx(0, false), &UpdateOptions::default()).unwrap();
        kill_at(&run, 1, point);
        assert!(run.layout().optimizer(0).join("optimizer.safetensors").exists(), "{point:?}");
        let out = spice_update::run(&run.ctx(1, false), &UpdateOptions::default()).unwrap();
        assert!(matches!(out, Outcome::Updated(_)), "{point:?}");
        assert_eq!(run.update_manifest(1).metric("optimizer_step"), Some(2.0), "{point:?}");
        let diff = max_param_diff(&load(&run.checkpoint(1)), &want);
        assert!(diff < 1e-6, "{point:?}: {diff}");
        // Only now does iteration 0's optimizer state go (checkpoint.keep_optimizer = 1).
        assert!(!run.layout().optimizer(0).join("optimizer.safetensors").exists(), "{point:?}");
    }
}

#[test]
fn iteration_one_checkpoint_does_not_inherit_its_parents_manifest() {
    // The policy of iteration 1 is a committed checkpoint with a manifest; the new checkpoint
    // must only get its own, written last.
    let run = make_run(&[]);
    run.write_scored(0, &scored_rows(0, 1));
    run.write_scored(1, &scored_rows(1, 2));
    spice_update::run(&run.ctx(0, false), &UpdateOptions::default()).unwrap();
    kill_at(&run, 1, SavePoint::FolderRenamed);
    assert!(!run.checkpoint(1).join("_manifest.json").exists());
    assert!(run.ctx(2, false).policy_dir().is_err());
}

#[test]
fn missing_or_unfinished_scored_folder_is_refused_by_name() {
    let run = make_run(&[]);
    let dir = run.scored_dir(0);
    let msg = err_text(spice_update::run(&run.ctx(0, false), &UpdateOptions::default()));
    assert!(msg.contains(&dir.display().to_string()) && msg.contains("does not exist"), "{msg}");

    // Rows written, manifest not (the scoring stage died).
    std::fs::create_dir_all(&dir).unwrap();
    spice_schemas::parquet_io::write_shard(dir.join("part-00000.parquet"), &scored_rows(0, 1))
        .unwrap();
    let msg = err_text(spice_update::run(&run.ctx(0, false), &UpdateOptions::default()));
    assert!(msg.contains(&dir.display().to_string()) && msg.contains("no _manifest.json"), "{msg}");

    // Two parts, one committed.
    let part = ShardSpec { index: 0, count: 2 };
    let out = StageOutput::new(&dir, "verify-score", part).schema(ScoredRow::schema_id());
    let mut w = ShardWriter::<ScoredRow>::create(out.part_path()).unwrap();
    w.write_all(scored_rows(0, 1)).unwrap();
    w.finish().unwrap();
    out.commit(&spice_schemas::metrics::NoMetrics {}).unwrap();
    let msg = err_text(spice_update::run(&run.ctx(0, false), &UpdateOptions::default()));
    assert!(
        msg.contains("_manifest.part-00001-of-00002.json") && msg.contains("incomplete"),
        "{msg}"
    );
    println!("{msg}");
}

#[test]
fn bad_rows_are_named_and_never_undo_a_finished_update() {
    let run = make_run(&[]);
    run.write_scored(0, &scored_rows(0, 1));
    spice_update::run(&run.ctx(0, false), &UpdateOptions::default()).unwrap();
    let update_manifest = run.layout().folder(0, "update").join("_manifest.json");
    let ckpt_manifest = run.checkpoint(0).join("_manifest.json");

    type Corruption = (&'static str, fn(&mut ScoredRow));
    let cases: [Corruption; 4] = [
        ("field `logprobs` has", |r| r.logprobs.pop().map(|_| ()).unwrap()),
        ("field `completion_ids` holds token id 5000", |r| r.completion_ids[0] = 5000),
        ("field `role`", |r| r.role = "critic".into()),
        ("field `iteration` is 3", |r| r.iteration = 3),
    ];
    for (want, spoil) in cases {
        let mut rows = scored_rows(0, 1);
        spoil(&mut rows[4]);
        run.write_scored(0, &rows);
        let msg = err_text(spice_update::run(&run.ctx(0, false), &UpdateOptions::default()));
        assert!(msg.contains(want) && msg.contains("part-00000.parquet row 4"), "{msg}");
        println!("{msg}");
        assert!(
            update_manifest.exists() && ckpt_manifest.exists(),
            "bad input removed a finished output"
        );
    }
}

#[test]
fn sharded_update_is_refused() {
    let run = make_run(&[]);
    run.write_scored(0, &scored_rows(0, 1));
    let mut ctx = run.ctx(0, false);
    ctx.shard = ShardSpec { index: 0, count: 2 };
    assert!(err_text(spice_update::run(&ctx, &UpdateOptions::default())).contains("--shard 0/1"));
}

#[test]
fn binary_updates_and_reports_errors() {
    let bin = env!("CARGO_BIN_EXE_spice-update");
    let help = std::process::Command::new(bin).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in ["--run", "--iter", "--device", "--seed", "--shard", "--force", "--dtype"] {
        assert!(help.contains(flag), "--help lacks {flag}:\n{help}");
    }

    let run = make_run(&[]);
    let out = std::process::Command::new(bin)
        .args(["--run", run.root.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&run.scored_dir(0).display().to_string()), "{stderr}");

    run.write_scored(0, &scored_rows(0, 1));
    let out = std::process::Command::new(bin)
        .args(["--run", run.root.to_str().unwrap(), "--iter", "0", "--dtype", "f32"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("update of iteration 0: 1 steps over 14 sequences"), "{stderr}");
    assert!(run.checkpoint(0).join("_manifest.json").exists());
}
