//! One small real run on the default model, shared by the tests that inspect a run folder
//! (report, show, README snippets): two iterations of `pipelines/smoke.toml` in cargo's test
//! scratch folder. `spice iterate` resumes and is a no-op on a finished run, so the first test
//! that asks makes it and later ones (in this or another test binary) reuse it; a run made by
//! older stage binaries or another smoke profile is made again (the `spice` binary itself is
//! left out of the stamp: it relinks whenever the report or show code changes).

use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;
use std::time::Instant;

use super::{bin_dir, repo};

pub const INSPECT_ITERATIONS: u32 = 2;
const STAMP: &str = ".made-by";

static LOCK: Mutex<()> = Mutex::new(());

/// The run folder, or `None` (after printing SKIPPED) where `just setup` has not installed the
/// default model and corpus.
pub fn inspect_run() -> Option<PathBuf> {
    let model = repo().join("data/models/smollm2-135m-instruct/config.json");
    if !model.exists() || !repo().join("data/corpus/.complete").exists() {
        println!("SKIPPED: the default model or corpus is not in data/ (run `just setup`)");
        return None;
    }
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let run = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("inspect-run");
    let spice = bin_dir().join("spice");
    let mut stamp = std::fs::read_to_string(repo().join("pipelines/smoke.toml")).unwrap();
    for bin in [
        "spice-chunk",
        "spice-challenge",
        "spice-filter",
        "spice-rollout",
        "spice-score",
        "spice-update",
    ] {
        let meta = std::fs::metadata(bin_dir().join(bin)).expect("the stage binaries");
        stamp += &format!("\n{bin} {:?} {}", meta.modified().unwrap(), meta.len());
    }
    if std::fs::read_to_string(run.join(STAMP)).ok().as_deref() != Some(stamp.as_str())
        && run.exists()
    {
        std::fs::remove_dir_all(&run).unwrap();
    }
    let t0 = Instant::now();
    let out = Command::new(&spice)
        .current_dir(repo())
        .args(["iterate", "--config", "pipelines/smoke.toml", "--iterations"])
        .arg(INSPECT_ITERATIONS.to_string())
        .args(["--set", "challenger.documents_per_iteration=3", "--run"])
        .arg(&run)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", super::failure("the inspection run", &out));
    std::fs::write(run.join(STAMP), stamp).unwrap();
    println!(
        "inspection run {} ready in {:.1} min:\n{}",
        run.display(),
        t0.elapsed().as_secs_f64() / 60.0,
        String::from_utf8_lossy(&out.stdout)
    );
    Some(run)
}
