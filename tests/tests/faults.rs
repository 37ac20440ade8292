//! Faults a run must survive, on the tiny random model of `iterate.rs`, one iteration with
//! evaluation:
//!
//! 1. SIGKILL of the whole process group (driver and stage) at a random moment inside each
//!    stage, then the same command again: the resumed run equals an uninterrupted one,
//!    `spice verify-run` passes, and no temporary file reads as finished.
//! 2. A full disk (the run folder on a small tmpfs): `spice iterate` fails saying which file it
//!    was writing, nothing that reads as finished is damaged, and once the filesystem has grown
//!    the same command completes to the uninterrupted run's shards.

mod common;
use common::tiny::{digests_of, setup};
use common::*;

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

const FOLDERS: &[&str] = &[
    "challenger",
    "tasks",
    "rollouts",
    "scored",
    "update",
    "checkpoint",
    "optimizer",
    "eval",
    "eval-checkpoint",
];

/// The two tests measure times and sizes of whole runs: one at a time on a small machine.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// `spice iterate` of one iteration of the tiny profile into `run`.
fn iterate(profile: &Path, run: &Path) -> Command {
    let mut c = Command::new(bin_dir().join("spice"));
    c.current_dir(repo())
        .args(["iterate", "--iterations", "1", "--config"])
        .arg(profile)
        .arg("--run")
        .arg(run)
        .env("SPICE_LM_THREADS", "1");
    c
}

fn verify_run(run: &Path) -> Output {
    Command::new(bin_dir().join("spice")).arg("verify-run").arg(run).output().unwrap()
}

/// The stage a driver's `==> iter 0000 rollout: …` line starts (`iter 0000 rollout`).
fn stage_of(line: &str) -> Option<String> {
    let rest = line.strip_prefix("==> ")?;
    Some(rest.split(':').next()?.to_string())
}

/// A driver in its own process group, with its stderr (and its stages') read as it comes,
/// each line with the second it arrived.
struct Watched {
    child: Child,
    t0: Instant,
    log: Arc<Mutex<Vec<(f64, String)>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Watched {
    fn start(mut cmd: Command) -> Self {
        cmd.stdout(Stdio::null()).stderr(Stdio::piped());
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let t0 = Instant::now();
        let mut child = cmd.spawn().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        let reader = std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push((t0.elapsed().as_secs_f64(), line));
            }
        });
        Self { child, t0, log, reader: Some(reader) }
    }

    fn secs(&self) -> f64 {
        self.t0.elapsed().as_secs_f64()
    }

    fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// The stage whose `==>` line came last.
    fn stage(&self) -> Option<String> {
        self.log.lock().unwrap().iter().rev().find_map(|(_, l)| stage_of(l))
    }

    /// SIGKILL to the whole group: the driver and the stage it is running.
    fn kill(&mut self) {
        let _ = Command::new("kill").args(["-9", "--", &format!("-{}", self.child.id())]).status();
    }

    fn wait(mut self) -> (std::process::ExitStatus, Vec<(f64, String)>) {
        let status = self.child.wait().unwrap();
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        let log = std::mem::take(&mut *self.log.lock().unwrap());
        (status, log)
    }
}

/// A small xorshift generator: the trials are reproducible from the printed seed.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Run-relative paths of every entry under `run` whose name satisfies `pick`, sorted.
fn find(run: &Path, pick: &dyn Fn(&Path) -> bool) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![run.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            if pick(&p) {
                out.push(p.strip_prefix(run).unwrap().display().to_string());
            }
            if p.is_dir() {
                stack.push(p);
            }
        }
    }
    out.sort();
    out
}

fn is_tmp(p: &Path) -> bool {
    p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.ends_with(".tmp"))
}

/// Folders with a manifest, by run-relative path without the iteration prefix.
fn committed(run: &Path) -> Vec<String> {
    let manifests = find(run, &|p: &Path| {
        p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n == "_manifest.json")
    });
    manifests
        .iter()
        .map(|m| {
            let dir = Path::new(m).parent().unwrap().display().to_string();
            dir.strip_prefix("iter-0000/").map(str::to_string).unwrap_or(dir)
        })
        .collect()
}

/// Temporary entries that would read as finished: a `.tmp` folder holding a manifest, or a
/// manifest that lists a `.tmp` file.
fn finished_looking_tmp(run: &Path) -> Vec<String> {
    let mut bad = Vec::new();
    for t in find(run, &is_tmp) {
        let p = run.join(&t);
        if p.is_dir() && p.join("_manifest.json").exists() {
            bad.push(format!("{t} has a manifest"));
        }
    }
    for m in find(run, &|p: &Path| {
        p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("_manifest"))
    }) {
        let text = std::fs::read_to_string(run.join(&m)).unwrap_or_default();
        if text.contains(".tmp\"") {
            bad.push(format!("{m} lists a .tmp file"));
        }
    }
    bad
}

/// The uninterrupted run: its digests and, from its log, when each stage ran.
struct Reference {
    digests: Vec<(String, String)>,
    /// Each stage's window: name, what starts it, from, to (seconds from the start).
    windows: Vec<(&'static str, Event, f64, f64)>,
    bytes: u64,
    /// Page-rounded bytes of the run after each writer in order (driver setup, each stage,
    /// the summary), and the writer's name.
    growth: Vec<(&'static str, u64)>,
}

/// What starts a stage's window: the driver's `==>` line, or (for the checkpoint save) the
/// update's metrics shard, written when training ends.
#[derive(Clone, Copy)]
enum Event {
    Line(&'static str),
    File(&'static str),
}

/// Bytes a list of run-relative files and folders take on a tmpfs.
fn pages_of(run: &Path, entries: &[&str]) -> u64 {
    entries
        .iter()
        .map(|e| {
            let p = run.join(e);
            if p.is_dir() {
                tmpfs_bytes(&p)
            } else {
                std::fs::metadata(&p).map_or(0, |m| m.len().div_ceil(4096) * 4096)
            }
        })
        .sum()
}

/// Bytes `run` takes on a tmpfs: every file rounded up to whole pages.
fn tmpfs_bytes(run: &Path) -> u64 {
    find(run, &|p: &Path| p.is_file())
        .iter()
        .map(|f| std::fs::metadata(run.join(f)).unwrap().len().div_ceil(4096) * 4096)
        .sum()
}

fn reference(profile: &Path, run: &Path) -> Reference {
    let t = Instant::now();
    let mut w = Watched::start(iterate(profile, run));
    // The update writes its metrics shard when training ends; then it saves the checkpoint.
    let update_part = run.join("iter-0000/update/part-00000.parquet");
    let mut saving = None;
    while w.running() {
        if saving.is_none() && update_part.exists() {
            saving = Some(w.secs());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let end = w.secs();
    let (status, log) = w.wait();
    let text: Vec<&str> = log.iter().map(|(_, l)| l.as_str()).collect();
    assert!(status.success(), "reference run failed ({status}):\n{}", text.join("\n"));
    let at = |stage: &str| {
        log.iter()
            .find(|(_, l)| stage_of(l).as_deref() == Some(stage))
            .map(|(t, _)| *t)
            .unwrap_or_else(|| panic!("no `==> {stage}` line in:\n{}", text.join("\n")))
    };
    let saving = saving.expect("the update shard was never seen");
    let line = |stage: &'static str| (Event::Line(stage), at(stage));
    let starts = [
        ("chunk", line("chunk")),
        ("challenge", line("iter 0000 challenge")),
        ("filter", line("iter 0000 filter")),
        ("rollout", line("iter 0000 rollout")),
        ("score", line("iter 0000 score")),
        ("update", line("iter 0000 update")),
        ("checkpoint save", (Event::File("iter-0000/update/part-00000.parquet"), saving)),
        ("eval", line("iter 0000 eval")),
        ("end", (Event::Line(""), end)),
    ];
    let windows = starts.windows(2).map(|p| (p[0].0, p[0].1 .0, p[0].1 .1, p[1].1 .1)).collect();
    println!("reference run (one iteration) in {:.1} s", t.elapsed().as_secs_f64());
    let writers: [(&'static str, &[&str]); 10] = [
        ("driver setup", &["run.toml", "prompts"]),
        ("chunk", &["chunks"]),
        ("challenge", &["iter-0000/challenger"]),
        ("filter", &["iter-0000/tasks"]),
        ("rollout", &["iter-0000/rollouts"]),
        ("score", &["iter-0000/scored"]),
        ("update", &["iter-0000/update", "iter-0000/optimizer", "iter-0000/checkpoint"]),
        ("eval", &["iter-0000/eval"]),
        ("eval checkpoint", &["iter-0000/eval-checkpoint"]),
        ("summary", &["summary.jsonl"]),
    ];
    let mut total = 0;
    let growth = writers
        .iter()
        .map(|(name, entries)| {
            total += pages_of(run, entries);
            (*name, total)
        })
        .collect();
    Reference { digests: digests_of(run, FOLDERS, 1), windows, bytes: tmpfs_bytes(run), growth }
}

#[test]
fn killed_at_random_moments_in_every_stage_resumes_to_the_same_run() {
    let _one = serial();
    let tmp = tempfile::tempdir().unwrap();
    let profile = setup(tmp.path(), 11, "", "");
    let r = reference(&profile, &tmp.path().join("ref"));
    for (stage, _, from, to) in &r.windows {
        println!("  window {stage:<16} {from:7.2} .. {to:7.2} s");
    }

    let trials: usize =
        std::env::var("SPICE_KILL_TRIALS").ok().and_then(|v| v.parse().ok()).unwrap_or(8);
    let seed: u64 =
        std::env::var("SPICE_KILL_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or_else(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
                as u64
        }) | 1;
    println!("kill trials: {trials}, SPICE_KILL_SEED={seed}");
    let mut rng = XorShift(seed);
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    for k in 0..trials {
        // A uniform moment of the stage's reference window, timed from the moment this run
        // starts the stage: stage start-up times vary too much between runs to time a kill
        // from the start of the run.
        let (target, event, from, to) = r.windows[k % r.windows.len()];
        let offset = rng.unit() * (to - from);
        let run = tmp.path().join(format!("trial-{k:02}"));
        let mut w = Watched::start(iterate(&profile, &run));
        let deadline = Instant::now() + Duration::from_secs(300);
        while w.running() && Instant::now() < deadline {
            let started = match event {
                Event::Line(stage) => {
                    w.log.lock().unwrap().iter().any(|(_, l)| stage_of(l).as_deref() == Some(stage))
                }
                Event::File(f) => run.join(f).exists(),
            };
            if started {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let at = w.secs() + offset;
        while w.running() && w.secs() < at {
            std::thread::sleep(Duration::from_millis(1));
        }
        let killed_at = w.secs();
        let alive = w.running();
        let mut hit = w.stage().unwrap_or_else(|| "driver start".into());
        w.kill();
        let _ = w.wait();
        if !alive {
            hit = "(run had finished)".into();
        } else if hit == "iter 0000 update"
            && run.join("iter-0000/update/part-00000.parquet").exists()
        {
            hit = "iter 0000 update (saving)".into();
        }
        let at_kill = committed(&run).join(",");
        let tmp_at_kill = find(&run, &is_tmp).join(",");

        let out = iterate(&profile, &run).output().unwrap();
        let result = if !out.status.success() {
            failure("resumed spice iterate", &out)
        } else if digests_of(&run, FOLDERS, 1) != r.digests {
            let d = digests_of(&run, FOLDERS, 1);
            let diff: Vec<String> = d
                .iter()
                .zip(&r.digests)
                .filter(|(a, b)| a != b)
                .map(|(a, b)| format!("{} {} != {}", a.0, a.1, b.1))
                .collect();
            format!("differs from the reference: {}", diff.join("; "))
        } else {
            let v = verify_run(&run);
            let bad = finished_looking_tmp(&run);
            if !v.status.success() {
                failure("spice verify-run", &v)
            } else if !bad.is_empty() {
                format!("temporary files read as finished: {}", bad.join(", "))
            } else {
                "identical".to_string()
            }
        };
        let left = find(&run, &is_tmp).join(",");
        println!(
            "trial {k:2}  {target:<16} +{offset:5.3} s = {killed_at:6.2} s  running: {hit:<27} committed: \
             [{at_kill}]  tmp: [{tmp_at_kill}]  -> {}{}",
            result.lines().next().unwrap_or_default(),
            if left.is_empty() { String::new() } else { format!(" (left after resume: {left})") }
        );
        if result != "identical" {
            failures.push(format!("trial {k} ({target}, {killed_at:.2} s, {hit}): {result}"));
        }
        rows.push((target, hit, result == "identical"));
        let _ = std::fs::remove_dir_all(&run);
    }

    println!("\nper stage window (trials, identical):");
    for (stage, _, _, _) in &r.windows {
        let of: Vec<_> = rows.iter().filter(|r| r.0 == *stage).collect();
        let ok = of.iter().filter(|r| r.2).count();
        println!("  {stage:<16} {:3} {:3}", of.len(), ok);
    }
    println!("per running stage at the kill (trials, identical):");
    let mut hits: Vec<&String> = rows.iter().map(|r| &r.1).collect();
    hits.sort();
    hits.dedup();
    for h in hits {
        let of: Vec<_> = rows.iter().filter(|r| &r.1 == h).collect();
        println!("  {h:<27} {:3} {:3}", of.len(), of.iter().filter(|r| r.2).count());
    }
    println!("ran {trials} trials; SPICE_KILL_TRIALS=24 for the full report");
    assert!(failures.is_empty(), "{} trial(s) failed:\n{}", failures.len(), failures.join("\n\n"));
}

/// A tmpfs mounted for the test, unmounted when dropped (also on a panic).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, bytes: u64) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(dir)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(dir.to_path_buf()))
    }

    fn resize(&self, bytes: u64) {
        let st = Command::new("mount")
            .args(["-o", &format!("remount,size={bytes}")])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(st.success(), "remounting {} failed", self.0.display());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_fails_naming_the_file_keeps_finished_folders_and_resumes() {
    let _one = serial();
    let tmp = tempfile::tempdir().unwrap();
    let Some(probe) = Tmpfs::mount(&tmp.path().join("probe"), 1 << 20) else {
        println!("SKIPPED: cannot mount a tmpfs here (needs root/CAP_SYS_ADMIN)");
        return;
    };
    drop(probe);
    let profile = setup(tmp.path(), 12, "", "");
    let r = reference(&profile, &tmp.path().join("ref"));
    println!("reference run: {} kB on a tmpfs", r.bytes / 1024);

    // One size per writer: what the run holds before it, plus half of what it adds, so the
    // disk fills while it writes.
    let mut sizes = Vec::new();
    let mut before = 0;
    for (name, after) in &r.growth {
        let half = (after - before) / 2 / 4096 * 4096;
        if after > &before {
            sizes.push((*name, before + half));
        }
        before = *after;
    }
    let mut failures = Vec::new();
    for (k, (aimed, size)) in sizes.into_iter().enumerate() {
        let size = size.max(4096);
        let mnt = tmp.path().join(format!("disk-{k}"));
        let fs = Tmpfs::mount(&mnt, size).expect("a tmpfs mounted before");
        let run = mnt.join("run");
        let out = iterate(&profile, &run).output().unwrap();
        let se = String::from_utf8_lossy(&out.stderr).into_owned();
        let blocks = errors(&se);
        // The driver's own `… failed (exit status: 1)` is not what the stage said.
        let (stage_errors, driver): (Vec<&String>, Vec<&String>) =
            blocks.iter().partition(|b| !b.contains(" failed (exit status"));
        let stage = if driver.is_empty() {
            "driver".to_string()
        } else {
            se.lines().rev().find_map(stage_of).unwrap_or_default()
        };
        let error = stage_errors.first().map(|e| e.as_str()).unwrap_or("(no error of its own)");
        let mut problems = Vec::new();
        if out.status.success() {
            problems.push("spice iterate succeeded".to_string());
        }
        if !error.contains("No space left on device") {
            problems.push(format!("its error does not say `No space left on device`:\n{se}"));
        }
        if !error.contains(&mnt.display().to_string()) {
            problems.push(format!("its error does not name the file it was writing: {error}"));
        }
        let finished = committed(&run);
        let verified = if run.join("run.toml").exists() {
            let v = verify_run(&run);
            if v.status.success() {
                "verify-run ok".to_string()
            } else {
                problems.push(failure("spice verify-run", &v));
                "verify-run FAILED".to_string()
            }
        } else if finished.is_empty() {
            "no run.toml, nothing committed".to_string()
        } else {
            problems.push("manifests without a run.toml".into());
            "no run.toml".to_string()
        };
        let left = find(&run, &is_tmp).join(",");

        fs.resize(r.bytes * 8 + (64 << 20));
        let again = iterate(&profile, &run).output().unwrap();
        let rerun = if !again.status.success() {
            problems.push(failure("spice iterate after growing the disk", &again));
            "rerun FAILED"
        } else if digests_of(&run, FOLDERS, 1) != r.digests {
            problems.push("rerun differs from the reference".into());
            "rerun differs"
        } else {
            "rerun identical"
        };
        println!(
            "{size:8} B ({:3}%), aimed at {aimed:<16} failed in {stage:<20} {verified}; committed \
             [{}]; tmp left [{left}]; {rerun}\n      {error}",
            size * 100 / r.bytes,
            finished.join(",")
        );
        if !problems.is_empty() {
            failures.push(format!("{size} B (aimed at {aimed}): {}", problems.join("\n")));
        }
        drop(fs);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The `Error: …` reports in a stderr, each with its `Caused by:` chain on one line, without
/// backtraces.
fn errors(stderr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur: Option<Vec<String>> = None;
    for line in stderr.lines() {
        if let Some(rest) = line.strip_prefix("Error: ") {
            out.extend(cur.take().map(|c| c.join(" | ")));
            cur = Some(vec![rest.to_string()]);
        } else if let Some(c) = cur.as_mut() {
            let l = line.trim();
            if l.starts_with("Stack backtrace:") || line.starts_with("==> ") {
                out.extend(cur.take().map(|c| c.join(" | ")));
            } else if !l.is_empty() && l != "Caused by:" {
                c.push(
                    l.trim_start_matches(|ch: char| ch.is_ascii_digit() || ch == ':').trim().into(),
                );
            }
        }
    }
    out.extend(cur.map(|c| c.join(" | ")));
    out
}
