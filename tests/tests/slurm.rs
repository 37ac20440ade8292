//! `spice slurm` against a real single-node Slurm (`pipelines/slurm/test-cluster.sh`, which
//! installs Debian's slurmctld/slurmd/munge when missing): a tiny two-iteration run submitted
//! as jobs gives the same shards as `spice iterate` with the same seed, and a failing stage
//! is reported with its log while its dependants are cancelled instead of run.
//!
//! Where the daemons cannot run (no root, no packages), each test prints `SKIPPED: <reason>`
//! and passes; nothing stands in for Slurm.

mod common;
use common::tiny::{digests, setup};
use common::*;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

/// A cluster of this test's own (private folder, free ports), stopped when dropped.
struct Cluster {
    dir: tempfile::TempDir,
    conf: PathBuf,
}

impl Cluster {
    fn start() -> Result<Cluster, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let ports: Vec<String> = (0..2)
            .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
            .collect::<Vec<_>>() // hold both so they differ
            .iter()
            .map(|l| l.local_addr().unwrap().port().to_string())
            .collect();
        let t0 = Instant::now();
        let out = Command::new("bash")
            .arg(repo().join("pipelines/slurm/test-cluster.sh"))
            .arg("start")
            .arg(dir.path())
            .args(&ports)
            .output()
            .map_err(|e| format!("running test-cluster.sh: {e}"))?;
        let cluster = Cluster { conf: dir.path().join("slurm.conf"), dir };
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            let tail: Vec<&str> = err.lines().rev().take(5).collect();
            return Err(format!(
                "test-cluster.sh start failed ({}): {}",
                out.status,
                tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
            ));
        }
        println!("single-node Slurm idle after {:.1} s", t0.elapsed().as_secs_f64());
        Ok(cluster)
    }

    fn spice(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin_dir().join("spice"));
        c.current_dir(repo()).args(args).env("SLURM_CONF", &self.conf).env("SPICE_LM_THREADS", "1");
        c
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(repo().join("pipelines/slurm/test-cluster.sh"))
            .arg("stop")
            .arg(self.dir.path())
            .status();
    }
}

fn cluster_or_skip() -> Option<Cluster> {
    match Cluster::start() {
        Ok(c) => Some(c),
        Err(reason) => {
            println!("SKIPPED: no Slurm daemons on this machine: {reason}");
            None
        }
    }
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// Generation split in two parts (so the Slurm run has job arrays), small resources.
const SLURM_TAIL: &str = r#"[slurm]
time = "0:10:00"
cpus_per_task = 1
setup = ["export SPICE_TEST_SETUP=1"]

[crossplay]
heldout_documents = 2
"#;

const FOLDERS: &[&str] = &[
    "challenger",
    "tasks",
    "rollouts",
    "scored",
    "update",
    "checkpoint",
    "optimizer",
    "eval-checkpoint",
];

#[test]
fn slurm_run_gives_the_shards_of_a_local_run() {
    let Some(cluster) = cluster_or_skip() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let profile = setup(tmp.path(), 7, "shards = 2", SLURM_TAIL);
    // The update data-parallel on 2 ranks: local ranks of `update.processes` in the local
    // run, a 2-task job started by srun in the Slurm run.
    let toml = std::fs::read_to_string(&profile)
        .unwrap()
        .replace("micro_batch_size = 2\n", "micro_batch_size = 2\nprocesses = 2\n")
        + "\n[slurm.stages.update]\nntasks = 2\n";
    std::fs::write(&profile, toml).unwrap();
    let profile = profile.to_str().unwrap();
    let (local, remote) = (tmp.path().join("local"), tmp.path().join("slurm"));

    // The local run alongside the Slurm run: the same commands, one after another.
    let t0 = Instant::now();
    let mut local_run =
        cluster.spice(&["iterate", "--config", profile, "--run", local.to_str().unwrap()]);
    let local_child = local_run
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();

    // A dry run writes the scripts and submits nothing.
    let dry = cluster
        .spice(&[
            "slurm",
            "iterate",
            "--config",
            profile,
            "--run",
            remote.to_str().unwrap(),
            "--dry-run",
        ])
        .output()
        .unwrap();
    let (so, se) = text(&dry);
    assert!(dry.status.success(), "{se}");
    assert_eq!(so.lines().filter(|l| l.contains("$(sbatch --parsable")).count(), 14, "{so}");
    assert!(so.contains("--dependency=afterok:$JOB_0"), "{so}");
    assert!(remote.join("slurm/iter-0001/rollout.sbatch").exists());
    assert!(!remote.join("slurm/iter-0000/challenge.job").exists(), "a dry run submits nothing");

    let first = cluster
        .spice(&["slurm", "iterate", "--config", profile, "--run", remote.to_str().unwrap()])
        .output()
        .unwrap();
    let (_, se) = text(&first);
    assert!(first.status.success(), "spice slurm iterate failed:\n{se}");
    assert!(se.contains("0 stage(s) done, 0 already queued, 14 submitted"), "{se}");
    // Submitted again while the jobs are in the queue: nothing new goes in.
    let out = cluster
        .spice(&["slurm", "iterate", "--run", remote.to_str().unwrap(), "--wait", "--poll", "0.5"])
        .output()
        .unwrap();
    let (so, se) = text(&out);
    println!("slurm run in {:.1} s:\n{se}\n{so}", t0.elapsed().as_secs_f64());
    assert!(out.status.success(), "spice slurm iterate --wait failed:\n{se}\n{so}");
    let counts = se.lines().find(|l| l.contains(" already queued, ")).expect("a count line");
    let n: Vec<u32> =
        counts.split_whitespace().filter_map(|w| w.trim_end_matches(',').parse().ok()).collect();
    assert_eq!((n[0] + n[1], n[2]), (14, 0), "done + queued, submitted: {counts}");
    assert!(n[1] > 0, "some jobs still queued at the second call: {counts}");
    let script = std::fs::read_to_string(remote.join("slurm/iter-0000/rollout.sbatch")).unwrap();
    assert!(
        script.contains("#SBATCH --array=0-1") && script.contains("#SBATCH --time=0:10:00"),
        "{script}"
    );
    assert!(script.contains("export SPICE_TEST_SETUP=1"), "{script}");
    let update = std::fs::read_to_string(remote.join("slurm/iter-0000/update.sbatch")).unwrap();
    assert!(
        update.contains("#SBATCH --ntasks=2") && update.contains("srun --ntasks=2"),
        "{update}"
    );
    // Both array tasks wrote their own log.
    let logs: Vec<_> = std::fs::read_dir(remote.join("slurm/iter-0000/logs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with("rollout-"))
        .collect();
    assert_eq!(logs.len(), 2, "{logs:?}");

    let local_out = local_child.wait_with_output().unwrap();
    assert!(
        local_out.status.success(),
        "spice iterate failed:\n{}",
        String::from_utf8_lossy(&local_out.stderr)
    );
    assert_eq!(
        digests(&local, FOLDERS),
        digests(&remote, FOLDERS),
        "Slurm and local runs with one seed differ"
    );
    // Both updates ran on 2 ranks: the same split, the same sums, the same checkpoint bytes.
    for run in [&local, &remote] {
        for iter in 0..2 {
            let m = spice_schemas::Manifest::read(
                &run.join(format!("iter-{iter:04}/update/_manifest.json")),
            )
            .unwrap();
            assert_eq!(m.metric("world_size"), Some(2.0), "{} iteration {iter}", run.display());
        }
    }
    // The update and evaluation jobs refreshed the summary and the TensorBoard files: the
    // same iterations and numbers as the local driver's, all but the wall times.
    let summary = |run: &Path| -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(run.join("summary.jsonl")).unwrap();
        text.lines()
            .map(|l| {
                let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
                v.as_object_mut().unwrap().remove("minutes");
                v
            })
            .collect()
    };
    let (local_summary, remote_summary) = (summary(&local), summary(&remote));
    assert_eq!(remote_summary.len(), 2, "{remote_summary:?}");
    assert_eq!(local_summary, remote_summary, "summary.jsonl of the Slurm run");
    assert!(
        remote_summary.iter().all(|s| s["eval"].as_object().is_some_and(|e| !e.is_empty())),
        "every iteration's checkpoint evaluation is in the summary: {remote_summary:?}"
    );
    let events = |run: &Path| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(run.join("tensorboard"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        names.sort();
        names
    };
    assert_eq!(events(&remote), events(&local));
    assert_eq!(events(&remote).len(), 2, "{:?}", events(&remote));

    // Done is done: submitting again submits nothing; status lists every stage done.
    let again =
        cluster.spice(&["slurm", "iterate", "--run", remote.to_str().unwrap()]).output().unwrap();
    let (_, se) = text(&again);
    assert!(
        again.status.success() && se.contains("14 stage(s) done, 0 already queued, 0 submitted"),
        "{se}"
    );
    let status =
        cluster.spice(&["slurm", "status", "--run", remote.to_str().unwrap()]).output().unwrap();
    let (so, se) = text(&status);
    assert!(status.status.success(), "{se}");
    assert_eq!(
        so.lines().filter(|l| l.split_whitespace().nth(1) == Some("done")).count(),
        14,
        "{so}"
    );
    assert_eq!(
        so.lines().filter(|l| l.starts_with("iter ")).count(),
        2,
        "an iteration summary each:\n{so}"
    );

    // Cross-play as jobs gives the cells of a local cross-play.
    let cx = ["--policies", "0,2"];
    let local_cx = cluster
        .spice(&[&["crossplay", "--run", local.to_str().unwrap()][..], &cx[..]].concat())
        .output()
        .unwrap();
    assert!(local_cx.status.success(), "{}", failure("spice crossplay", &local_cx));
    let remote_cx = cluster
        .spice(
            &[
                &[
                    "slurm",
                    "crossplay",
                    "--run",
                    remote.to_str().unwrap(),
                    "--wait",
                    "--poll",
                    "0.5",
                ][..],
                &cx[..],
            ]
            .concat(),
        )
        .output()
        .unwrap();
    let (so, se) = text(&remote_cx);
    assert!(remote_cx.status.success(), "spice slurm crossplay failed:\n{se}\n{so}");
    assert!(se.contains("0 stage(s) done, 0 already queued, 10 submitted"), "{se}");
    assert!(remote.join("slurm/crossplay/challenger-0002/reasoner-0000/rollout.sbatch").exists());
    let cells = |run: &Path| -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (c, r) in [(0, 0), (2, 0), (0, 2)] {
            for f in ["challenger", "tasks", "rollouts", "scored"] {
                let dir = match f {
                    "challenger" | "tasks" => run.join(format!("crossplay/challenger-{c:04}/{f}")),
                    _ => run.join(format!("crossplay/challenger-{c:04}/reasoner-{r:04}/{f}")),
                };
                let mut ms = spice_schemas::manifest::folder_complete(&dir)
                    .unwrap()
                    .unwrap_or_else(|| panic!("{} not committed", dir.display()));
                ms.sort_by_key(|m| m.shard.index);
                out.extend(ms.into_iter().map(|m| (format!("{c}:{r} {f}"), m.output_digest)));
            }
        }
        out
    };
    assert_eq!(cells(&local), cells(&remote), "Slurm and local cross-play differ");
    assert_eq!(
        std::fs::read_to_string(local.join("crossplay/crossplay.csv")).unwrap(),
        std::fs::read_to_string(remote.join("crossplay/crossplay.csv")).unwrap()
    );
    println!("total {:.1} s", t0.elapsed().as_secs_f64());
}

#[test]
fn a_failed_stage_is_reported_and_its_dependants_do_not_run() {
    let Some(cluster) = cluster_or_skip() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let profile = setup(tmp.path(), 7, "shards = 2", SLURM_TAIL);
    // The filter job fails in its setup lines, before the stage starts.
    let mut text_ = std::fs::read_to_string(&profile).unwrap();
    text_.push_str(
        "\n[slurm.stages.filter]\nsetup = [\"echo filter setup fails >&2\", \"exit 3\"]\n",
    );
    std::fs::write(&profile, text_).unwrap();
    let run = tmp.path().join("run");
    let run_s = run.to_str().unwrap();
    let args = [
        "slurm",
        "iterate",
        "--config",
        profile.to_str().unwrap(),
        "--run",
        run_s,
        "--iterations",
        "1",
    ];
    let t0 = Instant::now();
    let out = cluster
        .spice(&[&args[..], &["--set", "eval.eval_every=0", "--wait", "--poll", "0.5"]].concat())
        .output()
        .unwrap();
    let (so, se) = text(&out);
    println!("failing run in {:.1} s:\n{se}\n{so}", t0.elapsed().as_secs_f64());
    assert!(!out.status.success(), "a failed stage must fail --wait");
    assert!(se.contains("4 stage(s) not done: iter-0000/filter, iter-0000/rollout, iter-0000/score, iter-0000/update"), "{se}");

    let status = cluster.spice(&["slurm", "status", "--run", run_s]).output().unwrap();
    let (so, se) = text(&status);
    assert!(status.status.success(), "{se}");
    println!("{so}");
    let state = |key: &str| -> Vec<String> {
        let line =
            so.lines().find(|l| l.starts_with(key)).unwrap_or_else(|| panic!("no {key} in\n{so}"));
        line.split_whitespace().map(String::from).collect()
    };
    assert_eq!(state("chunk")[1], "done");
    assert_eq!(state("iter-0000/challenge")[1], "done");
    assert_eq!(state("iter-0000/filter")[1], "failed");
    for k in ["iter-0000/rollout", "iter-0000/score", "iter-0000/update"] {
        assert_eq!(state(k)[1], "cancelled", "{so}");
    }
    let log =
        so.lines().find_map(|l| l.trim().strip_prefix("log: ")).expect("the failed job's log");
    let log_text = std::fs::read_to_string(log).unwrap();
    assert!(log_text.contains("filter setup fails"), "{log}: {log_text}");
    // Dependants never started: no part of their outputs exists.
    for f in ["rollouts", "scored", "update"] {
        assert!(!run.join("iter-0000").join(f).exists(), "{f} ran after a failed filter");
    }

    // Fixed, then submitted again: only what is not done goes in, and the run completes.
    let cfg_path = run.join("run.toml");
    let cfg = std::fs::read_to_string(&cfg_path).unwrap();
    let fixed: String = cfg
        .lines()
        .filter(|l| !l.contains("exit 3") && !l.contains("filter setup fails"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&cfg_path, fixed).unwrap();
    let out = cluster
        .spice(&[
            "slurm",
            "iterate",
            "--run",
            run_s,
            "--iterations",
            "1",
            "--wait",
            "--poll",
            "0.5",
        ])
        .output()
        .unwrap();
    let (so, se) = text(&out);
    assert!(out.status.success(), "resubmission failed:\n{se}\n{so}");
    assert!(se.contains("2 stage(s) done, 0 already queued, 4 submitted"), "{se}");
    println!("failure, report and resubmission in {:.1} s", t0.elapsed().as_secs_f64());
}
