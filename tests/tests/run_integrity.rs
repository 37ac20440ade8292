//! A finished run stays finished wherever it lives, and a damaged one says so: on the tiny
//! random model, a copied run reruns nothing, a committed shard with two flipped bytes stops
//! the stage that reads it with the file and both digests, and `spice verify-run --repair`
//! followed by `spice iterate` regenerates exactly the damaged folder.

mod common;
use common::tiny::setup;
use common::*;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

fn spice(run: &Path, args: &[&str]) -> Output {
    Command::new(bin_dir().join("spice"))
        .current_dir(repo())
        .args(args)
        .arg("--run")
        .arg(run)
        .env("SPICE_LM_THREADS", "1")
        .output()
        .unwrap()
}

fn iterate_once(profile: &Path, run: &Path) -> String {
    let profile = profile.display().to_string();
    let out = spice(run, &["iterate", "--config", &profile, "--iterations", "1"]);
    assert!(out.status.success(), "{}", failure("spice iterate", &out));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Every manifest of a run, by run-relative path: what a rerun would rewrite.
fn manifests(run: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![run.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            if p.is_dir() {
                stack.push(p);
            } else if name.starts_with("_manifest") && name.ends_with(".json") {
                let rel = p.strip_prefix(run).unwrap().display().to_string();
                out.insert(rel, std::fs::read_to_string(&p).unwrap());
            }
        }
    }
    out
}

#[test]
fn a_copied_run_reruns_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let profile = setup(tmp.path(), 5, "", "");
    let run = tmp.path().join("scratch/run");
    iterate_once(&profile, &run);
    let before = manifests(&run);
    assert!(before.len() >= 8, "{before:?}");

    // `cp -r` to project storage, as on a cluster; the original goes away.
    let moved = tmp.path().join("project/run");
    std::fs::create_dir_all(moved.parent().unwrap()).unwrap();
    let cp = Command::new("cp").arg("-r").arg(&run).arg(&moved).status().unwrap();
    assert!(cp.success());
    std::fs::remove_dir_all(&run).unwrap();

    let log = iterate_once(&profile, &moved);
    assert!(!log.contains("redoing"), "a moved run redid stages:\n{log}");
    assert_eq!(before, manifests(&moved), "a moved run rewrote manifests:\n{log}");
    let rollouts = spice_schemas::Manifest::read(&moved.join("iter-0000/rollouts/_manifest.json"));
    let tasks = rollouts.unwrap().inputs.into_iter().find(|i| i.name == "tasks").unwrap();
    assert_eq!(tasks.path, Path::new("iter-0000/tasks"), "inputs inside the run are run-relative");

    let out = spice(&moved, &["verify-run"]);
    assert!(out.status.success(), "{}", failure("spice verify-run", &out));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("iter-0000/checkpoint") && table.contains("ok"), "{table}");
    assert!(!table.contains("damaged") && !table.contains("stale"), "{table}");
}

#[test]
fn a_damaged_shard_is_refused_named_and_regenerated() {
    let tmp = tempfile::tempdir().unwrap();
    let profile = setup(tmp.path(), 6, "", "");
    let run = tmp.path().join("run");
    iterate_once(&profile, &run);
    let before = manifests(&run);

    // Two bytes flipped in the middle of a committed shard that later stages read.
    let part = run.join("iter-0000/challenger/part-00000.parquet");
    let good = std::fs::read(&part).unwrap();
    let mut bad = good.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x5a;
    bad[mid + 1] ^= 0x5a;
    std::fs::write(&part, &bad).unwrap();
    let found = spice_schemas::digest::sha256_file(&part).unwrap();
    let recorded = spice_schemas::digest::sha256_bytes(&good);

    // The stage that reads it refuses, naming the file and both digests, and keeps its own
    // finished output.
    let score = Command::new(bin_dir().join("spice-score"))
        .args(["--iter", "0", "--force", "--run"])
        .arg(&run)
        .output()
        .unwrap();
    assert!(!score.status.success(), "spice-score took a damaged shard as input");
    let err = String::from_utf8_lossy(&score.stderr);
    for want in [part.display().to_string(), recorded.clone(), found.clone()] {
        assert!(err.contains(&want), "`{want}` missing from:\n{err}");
    }
    assert_eq!(
        before["iter-0000/scored/_manifest.json"],
        manifests(&run)["iter-0000/scored/_manifest.json"]
    );

    // verify-run finds it and fails; --repair marks it unfinished.
    let out = spice(&run, &["verify-run"]);
    assert!(!out.status.success(), "verify-run passed a damaged run");
    let said =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(said.contains("iter-0000/challenger") && said.contains("damaged"), "{said}");
    assert!(said.contains(&found) && said.contains(&recorded), "{said}");
    let out = spice(&run, &["verify-run", "--repair"]);
    assert!(out.status.success(), "{}", failure("spice verify-run --repair", &out));

    // The same iterate regenerates the shard, identical to the original, and nothing
    // downstream changes (its inputs' content is the same again).
    let log = iterate_once(&profile, &run);
    assert_eq!(std::fs::read(&part).unwrap(), good, "regenerated shard differs:\n{log}");
    let after = manifests(&run);
    for (file, text) in &before {
        if !file.starts_with("iter-0000/challenger/") {
            assert_eq!(&after[file], text, "{file} was rewritten:\n{log}");
        }
    }
    let out = spice(&run, &["verify-run"]);
    assert!(out.status.success(), "{}", failure("spice verify-run after repair", &out));
}
