//! `spice iterate` refuses a bad start before it writes anything: a missing profile, an
//! unknown `--set` key, a `--run` that is a file, and an override that contradicts the
//! run.toml of an existing run. Nothing already there is changed.

mod common;
use common::*;

use std::path::Path;
use std::process::{Command, Output};

fn iterate(run: &Path, extra: &[&str]) -> Output {
    Command::new(bin_dir().join("spice"))
        .current_dir(repo())
        .arg("iterate")
        .args(extra)
        .arg("--run")
        .arg(run)
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap()
}

fn refused(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "expected a refusal, got success:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn bad_starts_are_refused_before_anything_is_written() {
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();

    // A profile that does not exist: named in the error, and no run folder made.
    let run = tmp.path().join("typo");
    let se = refused(&iterate(&run, &["--config", "pipelines/no-such-profile.toml"]));
    assert!(se.contains("pipelines/no-such-profile.toml"), "{se}");
    assert!(!run.exists(), "a refused start left {}", run.display());

    // An unknown key in --set: the key is named, and again nothing is written.
    let se = refused(&iterate(
        &run,
        &["--config", "pipelines/smoke.toml", "--set", "run.no_such_key=1"],
    ));
    assert!(se.contains("no_such_key"), "{se}");
    assert!(!run.exists(), "a refused start left {}", run.display());

    // --run names a file: said so, and the file is untouched.
    let file = tmp.path().join("notes.txt");
    std::fs::write(&file, "my notes").unwrap();
    let se = refused(&iterate(&file, &["--config", "pipelines/smoke.toml"]));
    assert!(se.contains("is a file, not a run folder") && se.contains("notes.txt"), "{se}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "my notes");

    // An existing run whose run.toml says seed 0: a --set that changes it is refused and
    // run.toml keeps its bytes.
    let existing = tmp.path().join("existing");
    std::fs::create_dir_all(&existing).unwrap();
    let cfg = Command::new(bin_dir().join("spice"))
        .current_dir(repo())
        .args(["config", "--config", "pipelines/smoke.toml", "--set", "run.seed=0"])
        .output()
        .unwrap();
    assert!(cfg.status.success(), "{}", failure("spice config", &cfg));
    std::fs::write(existing.join("run.toml"), &cfg.stdout).unwrap();
    let se = refused(&iterate(&existing, &["--set", "run.seed=7"]));
    assert!(se.contains("already exists with other values"), "{se}");
    assert_eq!(std::fs::read(existing.join("run.toml")).unwrap(), cfg.stdout);
}
