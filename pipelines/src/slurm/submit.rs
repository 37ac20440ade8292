//! `spice slurm iterate`: write the scripts, submit what is neither done nor queued, and
//! optionally wait for the queue to drain.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use spice_schemas::commit::write_atomic;

use super::jobs::{plan, Job, Record};
use super::queue::{query, summarize};
use super::script::{quote, render, ScriptInput, TEMPLATE};
use super::status::{print_report, report};
use super::SlurmIterateArgs;
use crate::plan::BINARIES;

pub fn run(args: &SlurmIterateArgs) -> Result<()> {
    let common = &args.common;
    let cfg = crate::freeze_config(common).context("preparing the run folder")?;
    let run = std::fs::canonicalize(&common.run)
        .with_context(|| format!("resolving {}", common.run.display()))?;
    let bin_dir = match &common.bin_dir {
        Some(d) => std::fs::canonicalize(d)
            .with_context(|| format!("resolving --bin-dir {}", d.display()))?,
        None => std::env::current_exe()?.parent().map(Path::to_path_buf).unwrap_or_default(),
    };
    let template = match &args.template {
        Some(p) => std::fs::read_to_string(p)
            .with_context(|| format!("reading the sbatch template {}", p.display()))?,
        None => TEMPLATE.to_string(),
    };
    let iterations = common.iterations.unwrap_or(cfg.run.iterations);
    let jobs = plan(&run, &cfg, iterations);
    let missing: Vec<&str> = BINARIES
        .iter()
        .copied()
        .chain(jobs.iter().any(|j| j.call.bin == "spice-eval").then_some("spice-eval"))
        .filter(|b| !bin_dir.join(b).exists())
        .collect();
    if !missing.is_empty() {
        bail!(
            "stage binaries missing from {}: {} (build them with `cargo build --release --workspace`, or run \
             `just setup`); the jobs call them there",
            bin_dir.display(),
            missing.join(", ")
        );
    }
    let chdir = std::env::current_dir()?;
    eprintln!(
        "spice slurm iterate: run {} (profile `{}`), {} iteration(s), {} job(s) in the plan{}",
        run.display(),
        cfg.run.name,
        iterations,
        jobs.len(),
        if args.dry_run { ", dry run" } else { "" }
    );

    let records: Vec<Option<Record>> = jobs.iter().map(Job::read_record).collect::<Result<_>>()?;
    let ids: Vec<String> = records.iter().flatten().map(|r| r.job_id.clone()).collect();
    // A dry run also works where Slurm is not installed.
    let states = match query(&ids) {
        Ok(s) => s,
        Err(e) if args.dry_run => {
            eprintln!("(no queue state: {e:#})");
            Default::default()
        }
        Err(e) => return Err(e),
    };

    // The job id (or, in a dry run, the shell variable) each stage's dependants wait for.
    let mut waits_for: Vec<Option<String>> = vec![None; jobs.len()];
    let (mut done, mut queued, mut submitted) = (0, 0, Vec::new());
    for (i, job) in jobs.iter().enumerate() {
        let res = cfg.slurm.for_stage(job.call.name);
        let text = render(
            &template,
            &ScriptInput {
                call: &job.call,
                key: &job.key,
                run: &run,
                bin_dir: &bin_dir,
                chdir: &chdir,
                device: common.device.as_deref(),
                force: common.force,
                log: &job.log,
            },
            &res,
        )
        .with_context(|| format!("writing the script of {}", job.key))?;
        write_atomic(&job.script, text.as_bytes())?;
        let logs = job.log.parent().expect("a log has a folder");
        std::fs::create_dir_all(logs).with_context(|| format!("creating {}", logs.display()))?;

        if !common.force && job.done()? {
            done += 1;
            continue;
        }
        if let Some(r) = &records[i] {
            let state = summarize(states.get(&r.job_id));
            if state.live() {
                eprintln!("{}: job {} already {:?}", job.key, r.job_id, state);
                waits_for[i] = Some(r.job_id.clone());
                queued += 1;
                continue;
            }
        }
        let after = job.after.and_then(|a| waits_for[a].clone());
        let mut argv = vec!["--parsable".to_string(), "--kill-on-invalid-dep=yes".to_string()];
        if let Some(a) = &after {
            argv.push(format!("--dependency=afterok:{a}"));
        }
        argv.push(job.script.display().to_string());
        if args.dry_run {
            let var = format!("JOB_{i}");
            // Printed as shell lines that can be run as they are: `$JOB_n` must expand.
            let shown: Vec<String> = argv
                .iter()
                .map(|a| if a.contains("afterok:$JOB_") { a.clone() } else { quote(a) })
                .collect();
            println!("{var}=$(sbatch {})  # {}", shown.join(" "), job.key);
            waits_for[i] = Some(format!("${var}"));
            submitted.push(var);
            continue;
        }
        let id = sbatch(&argv).with_context(|| {
            format!(
                "submitting {} ({} earlier job(s) of this call are submitted and recorded; submitting \
                 again skips them)",
                job.key,
                submitted.len()
            )
        })?;
        job.write_record(&Record {
            job_id: id.clone(),
            parts: job.call.parts,
            after: after.clone(),
            submitted_at: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        })?;
        let array = if job.call.parts > 1 {
            format!(" (array 0-{})", job.call.parts - 1)
        } else {
            String::new()
        };
        let after_note = after.map(|a| format!(" after {a}")).unwrap_or_default();
        eprintln!("{}: submitted job {id}{array}{after_note}", job.key);
        waits_for[i] = Some(id.clone());
        submitted.push(id);
    }
    let verb = if args.dry_run { "to submit" } else { "submitted" };
    eprintln!(
        "spice slurm iterate: {done} stage(s) done, {queued} already queued, {} {verb}; scripts in {}",
        submitted.len(),
        run.join("slurm").display()
    );
    if args.wait && !args.dry_run {
        let ids: Vec<String> = waits_for.into_iter().flatten().collect();
        wait(&ids, Duration::from_secs_f64(args.poll.max(0.2)))?;
        let rows = report(&jobs)?;
        print_report(&rows);
        let not_done: Vec<&str> = rows.iter().filter(|r| !r.done).map(|r| r.key.as_str()).collect();
        if !not_done.is_empty() {
            bail!("{} stage(s) not done: {}", not_done.len(), not_done.join(", "));
        }
    }
    Ok(())
}

/// `sbatch --parsable …` → the job id (`123` or `123;cluster`).
fn sbatch(argv: &[String]) -> Result<String> {
    let out =
        Command::new("sbatch").args(argv).output().context("running sbatch (is Slurm on PATH?)")?;
    if !out.status.success() {
        bail!("sbatch {} failed: {}", argv.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let id = text.trim().split(';').next().unwrap_or("").to_string();
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
        bail!("sbatch printed {text:?}, not a job id");
    }
    Ok(id)
}

/// Poll the queue until none of `ids` is queued or running; a line whenever the counts move.
fn wait(ids: &[String], every: Duration) -> Result<()> {
    let t0 = Instant::now();
    let mut last = (usize::MAX, usize::MAX);
    loop {
        let states = query(ids)?;
        let (mut running, mut queued) = (0, 0);
        for id in ids {
            match summarize(states.get(id)) {
                super::queue::JobState::Running => running += 1,
                super::queue::JobState::Queued => queued += 1,
                _ => {}
            }
        }
        if (running, queued) != last {
            eprintln!(
                "[{:>5.0} s] {running} job(s) running, {queued} queued, {} finished",
                t0.elapsed().as_secs_f64(),
                ids.len() - running - queued
            );
            last = (running, queued);
        }
        if running + queued == 0 {
            return Ok(());
        }
        std::thread::sleep(every);
    }
}
