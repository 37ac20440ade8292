//! The `[checkpoint]` disk bounds: which folders an update prunes, that pruned iterations
//! still read as done, and that a checkpoint waits for its scheduled evaluation.

mod common;

use common::*;
use spice_schemas::{
    metrics::NoMetrics,
    prune::{is_pruned, read_pruned, refuse_pruned, PRUNED_FILE},
    Manifest, ShardSpec, StageOutput,
};
use spice_update::{Outcome, UpdateOptions};

fn update(run: &TestRun, iter: u32, force: bool) -> Outcome {
    spice_update::run(&run.ctx(iter, force), &UpdateOptions::default()).unwrap()
}

/// File names in `dir`, sorted.
fn names(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn keep_bounds_checkpoints_and_optimizers_and_pruned_iterations_stay_done() {
    let run = make_run(&["checkpoint.keep=2"]);
    let layout = run.layout();
    for iter in 0..4 {
        run.write_scored(iter, &scored_rows(iter, iter as u64 + 1));
        assert!(matches!(update(&run, iter, false), Outcome::Updated(_)));
        for k in 0..=iter {
            // The two newest checkpoints and the newest optimizer state stay whole.
            let (ckpt, opt) = (layout.checkpoint(k), layout.optimizer(k));
            let ckpt_kept = k + 2 > iter;
            assert_eq!(is_pruned(&ckpt), !ckpt_kept, "checkpoint {k} after update {iter}");
            assert_eq!(ckpt.join("model.safetensors").exists(), ckpt_kept);
            assert_eq!(is_pruned(&opt), k != iter, "optimizer {k} after update {iter}");
            for dir in [ckpt, opt] {
                if is_pruned(&dir) {
                    assert_eq!(names(&dir), ["_manifest.json", PRUNED_FILE], "{}", dir.display());
                }
            }
        }
        let m = run.update_manifest(iter);
        let (c, o) = (u64::from(iter >= 2), u64::from(iter >= 1));
        assert_eq!(m.metric("pruned_checkpoints"), Some(c as f64), "update {iter}");
        assert_eq!(m.metric("pruned_optimizers"), Some(o as f64), "update {iter}");
        let bytes = m.metric("pruned_bytes").unwrap();
        assert_eq!(bytes > 0.0, c + o > 0, "update {iter}: {bytes} bytes");
    }
    let rec = read_pruned(&layout.checkpoint(1)).unwrap().unwrap();
    println!("{}: {rec:?}", layout.checkpoint(1).display());
    assert!(
        rec.reason.contains("checkpoint.keep = 2")
            && rec.files.contains(&"model.safetensors".into())
    );
    assert!(rec.bytes > 0);

    // Pruned iterations still read as done, and nothing of theirs is rewritten.
    let manifests = || -> Vec<Vec<u8>> {
        (0..4)
            .flat_map(|k| ["update", "checkpoint", "optimizer"].map(|f| (k, f)))
            .map(|(k, f)| std::fs::read(layout.folder(k, f).join("_manifest.json")).unwrap())
            .collect()
    };
    let before = manifests();
    for iter in 0..4 {
        assert!(matches!(update(&run, iter, false), Outcome::AlreadyDone), "update {iter}");
    }
    assert_eq!(before, manifests());
    // The next iteration starts from the newest checkpoint; a pruned one is still a policy
    // folder as far as digests go, but loading it is refused with the reason.
    run.ctx(4, false).policy_dir().unwrap();
    assert_eq!(run.ctx(1, false).policy_dir().unwrap(), layout.checkpoint(0));
    let err = format!("{:#}", refuse_pruned(&layout.checkpoint(0)).unwrap_err());
    assert!(err.contains("was pruned") && err.contains("checkpoint.keep = 2"), "{err}");
    // Redoing a pruned iteration is refused before anything is removed.
    let err = spice_update::run(&run.ctx(1, true), &UpdateOptions::default()).unwrap_err();
    let err = format!("{err:#}");
    println!("{err}");
    assert!(err.contains("was pruned") && err.contains("iter-0000/checkpoint"), "{err}");
    assert_eq!(before, manifests());
}

#[test]
fn a_checkpoint_is_kept_until_its_scheduled_evaluation_has_run() {
    let run = make_run(&[
        "checkpoint.keep=1",
        "checkpoint.keep_optimizer=0",
        "eval.eval_every=1",
        "eval.benchmarks=[\"bench.jsonl\"]",
    ]);
    let layout = run.layout();
    for iter in 0..2 {
        run.write_scored(iter, &scored_rows(iter, iter as u64 + 1));
        update(&run, iter, false);
    }
    assert!(!is_pruned(&layout.checkpoint(0)), "its evaluation has not run");
    assert_eq!(run.update_manifest(1).metric("pruned_checkpoints"), Some(0.0));
    // keep_optimizer = 0 keeps every optimizer folder.
    assert!(!is_pruned(&layout.optimizer(0)));

    // Once iter-0000/eval-checkpoint/ has committed, the next pass (a rerun of a finished
    // update, as the driver does on resume) prunes it.
    let eval =
        StageOutput::new(&layout.iter_dir(0).join("eval-checkpoint"), "eval", ShardSpec::WHOLE);
    eval.begin().unwrap();
    eval.commit_with_files(&[], &NoMetrics {}).unwrap();
    assert!(matches!(update(&run, 1, false), Outcome::AlreadyDone));
    assert!(is_pruned(&layout.checkpoint(0)));
    assert!(!is_pruned(&layout.checkpoint(1)));
    // What iteration 1 recorded of its policy is unchanged.
    let m = Manifest::read(&layout.folder(1, "update").join("_manifest.json")).unwrap();
    let policy = m.inputs.iter().find(|i| i.name == "policy").unwrap();
    assert_eq!(policy.digest, spice_schemas::digest::digest_path(&layout.checkpoint(0)).unwrap());
}

#[test]
fn a_checkpoint_crossplay_compares_is_never_pruned() {
    // Policy 1 is iteration 0's checkpoint; policy 3 would be iteration 2's.
    let run = make_run(&["checkpoint.keep=1", "crossplay.policies=[0, 1, 3]"]);
    let layout = run.layout();
    for iter in 0..3 {
        run.write_scored(iter, &scored_rows(iter, iter as u64 + 1));
        update(&run, iter, false);
    }
    assert!(!is_pruned(&layout.checkpoint(0)), "crossplay.policies lists policy 1");
    assert!(is_pruned(&layout.checkpoint(1)), "over checkpoint.keep and not compared");
    assert!(!is_pruned(&layout.checkpoint(2)), "the newest");
}
