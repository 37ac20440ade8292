//! `spice slurm iterate`: write the scripts, submit what is neither done nor queued, and
//! optionally wait for the queue to drain.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use spice_schemas::commit::write_atomic;
use spice_schemas::{layout::RunLayout, RunConfig};

use super::jobs::{crossplay_plan, plan, Job, Record};
use super::queue::{query, summarize, Jobs};
use super::script::{quote, render, ScriptInput, TEMPLATE};
use super::status::{print_report, report};
use super::{SlurmCrossplayArgs, SlurmIterateArgs};
use crate::plan::BINARIES;

pub fn run(args: &SlurmIterateArgs) -> Result<()> {
    let cfg = crate::freeze_config(&args.common).context("preparing the run folder")?;
    let iterations = args.common.iterations.unwrap_or(cfg.run.iterations);
    let sub = Submission {
        run: &args.common.run,
        bin_dir: args.common.bin_dir.as_deref(),
        template: args.template.as_deref(),
        device: args.common.device.as_deref(),
        force: args.common.force,
        dry_run: args.dry_run,
        wait: args.wait,
        poll: args.poll,
    };
    let what = format!(
        "spice slurm iterate: run {{run}} (profile `{}`), {iterations} iteration(s)",
        cfg.run.name
    );
    submit_plan(&sub, &cfg, &what, |run| plan(run, &cfg, iterations))
}

/// `spice slurm crossplay`: the cells of `spice crossplay` as jobs.
pub fn crossplay(args: &SlurmCrossplayArgs) -> Result<()> {
    let cx = &args.cross;
    let layout = RunLayout::new(&cx.run);
    let cfg = RunConfig::load(&layout.config())
        .context("this run folder has no run.toml: make the run first")?;
    let plan = crate::crossplay::plan(cx, &cfg, &layout)?;
    crate::crossplay::write_plan(&layout, &plan)?;
    let sub = Submission {
        run: &cx.run,
        bin_dir: cx.bin_dir.as_deref(),
        template: args.template.as_deref(),
        device: cx.device.as_deref(),
        force: cx.force,
        dry_run: args.dry_run,
        wait: args.wait,
        poll: args.poll,
    };
    let what = format!(
        "spice slurm crossplay: run {{run}}, policies {:?}, fixed Reasoner {}, fixed Challenger \
         {}, {} cell(s)",
        plan.policies,
        plan.fixed_reasoner,
        plan.fixed_challenger,
        plan.cells.len()
    );
    submit_plan(&sub, &cfg, &what, |run| crossplay_plan(run, &cfg, &plan))?;
    if args.wait && !args.dry_run {
        crate::crossplay::finish(&layout, &plan)?;
    }
    Ok(())
}

/// What a submission needs besides its jobs.
pub struct Submission<'a> {
    pub run: &'a Path,
    pub bin_dir: Option<&'a Path>,
    pub template: Option<&'a Path>,
    pub device: Option<&'a str>,
    pub force: bool,
    pub dry_run: bool,
    pub wait: bool,
    pub poll: f64,
}

/// Write the scripts of the jobs `jobs(run)` gives, and submit what is neither done nor
/// queued, each after the job it waits for; `what` heads the log (`{run}` is the run folder).
pub fn submit_plan(
    sub: &Submission,
    cfg: &RunConfig,
    what: &str,
    jobs: impl FnOnce(&Path) -> Vec<Job>,
) -> Result<()> {
    let setup = Setup::prepare(sub, jobs)?;
    let jobs = &setup.jobs;
    eprintln!(
        "{}, {} job(s) in the plan{}",
        what.replace("{run}", &setup.run.display().to_string()),
        jobs.len(),
        if sub.dry_run { ", dry run" } else { "" }
    );

    let records: Vec<Option<Record>> = jobs.iter().map(Job::read_record).collect::<Result<_>>()?;
    let states = queue_states(&records, sub.dry_run)?;

    // The job id (or, in a dry run, the shell variable) each stage's dependants wait for.
    let mut waits_for: Vec<Option<String>> = vec![None; jobs.len()];
    let (mut done, mut queued, mut submitted) = (0, 0, 0);
    for (i, job) in jobs.iter().enumerate() {
        setup.write_script(sub, cfg, job)?;
        if !sub.force && job.done()? {
            done += 1;
            continue;
        }
        if let Some(id) = live_job(job, records[i].as_ref(), &states) {
            waits_for[i] = Some(id);
            queued += 1;
            continue;
        }
        let after = job.after.and_then(|a| waits_for[a].clone());
        let argv = sbatch_argv(job, after.as_deref());
        let id = if sub.dry_run {
            print_dry_run(i, job, &argv)
        } else {
            submit(job, &argv, after, submitted)?
        };
        waits_for[i] = Some(id);
        submitted += 1;
    }
    let verb = if sub.dry_run { "to submit" } else { "submitted" };
    eprintln!(
        "spice slurm: {done} stage(s) done, {queued} already queued, {submitted} {verb}; \
         scripts in {}",
        setup.run.join("slurm").display()
    );
    if sub.wait && !sub.dry_run {
        let ids: Vec<String> = waits_for.into_iter().flatten().collect();
        wait_until_done(&ids, jobs, sub.poll)?;
    }
    Ok(())
}

/// What every job's script needs, resolved once per call, and the jobs of the plan.
struct Setup {
    run: PathBuf,
    bin_dir: PathBuf,
    /// The folder the jobs start in: this one.
    chdir: PathBuf,
    template: String,
    jobs: Vec<Job>,
}

impl Setup {
    fn prepare(sub: &Submission, jobs: impl FnOnce(&Path) -> Vec<Job>) -> Result<Setup> {
        let run = std::fs::canonicalize(sub.run)
            .with_context(|| format!("resolving {}", sub.run.display()))?;
        let bin_dir = match sub.bin_dir {
            Some(d) => std::fs::canonicalize(d)
                .with_context(|| format!("resolving --bin-dir {}", d.display()))?,
            None => std::env::current_exe()?.parent().map(Path::to_path_buf).unwrap_or_default(),
        };
        let template = match sub.template {
            Some(p) => std::fs::read_to_string(p)
                .with_context(|| format!("reading the sbatch template {}", p.display()))?,
            None => TEMPLATE.to_string(),
        };
        let jobs = jobs(&run);
        check_binaries(&bin_dir, &jobs)?;
        let chdir = std::env::current_dir()?;
        Ok(Setup { run, bin_dir, chdir, template, jobs })
    }

    /// Writes the job's sbatch script (always, so it matches the config) and makes its log
    /// folder.
    fn write_script(&self, sub: &Submission, cfg: &RunConfig, job: &Job) -> Result<()> {
        let res = cfg.slurm.for_stage(job.call.name);
        let input = ScriptInput {
            call: &job.call,
            key: &job.key,
            run: &self.run,
            bin_dir: &self.bin_dir,
            chdir: &self.chdir,
            device: sub.device,
            force: sub.force,
            log: &job.log,
        };
        let text = render(&self.template, &input, &res)
            .with_context(|| format!("writing the script of {}", job.key))?;
        write_atomic(&job.script, text.as_bytes())?;
        let logs = job.log.parent().expect("a log has a folder");
        std::fs::create_dir_all(logs).with_context(|| format!("creating {}", logs.display()))
    }
}

/// Every stage binary the jobs call must be in `bin_dir` before anything is submitted.
fn check_binaries(bin_dir: &Path, jobs: &[Job]) -> Result<()> {
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
    Ok(())
}

/// The queue's state of every recorded job.
fn queue_states(records: &[Option<Record>], dry_run: bool) -> Result<Jobs> {
    let ids: Vec<String> = records.iter().flatten().map(|r| r.job_id.clone()).collect();
    match query(&ids) {
        Ok(s) => Ok(s),
        // A dry run also works where Slurm is not installed.
        Err(e) if dry_run => {
            eprintln!("(no queue state: {e:#})");
            Ok(Default::default())
        }
        Err(e) => Err(e),
    }
}

/// The id of the job's recorded submission if it is still queued or running.
fn live_job(job: &Job, record: Option<&Record>, states: &Jobs) -> Option<String> {
    let r = record?;
    let state = summarize(states.get(&r.job_id));
    if !state.live() {
        return None;
    }
    eprintln!("{}: job {} already {:?}", job.key, r.job_id, state);
    Some(r.job_id.clone())
}

/// sbatch's arguments for the job, waiting for `after` to succeed.
fn sbatch_argv(job: &Job, after: Option<&str>) -> Vec<String> {
    let mut argv = vec!["--parsable".to_string(), "--kill-on-invalid-dep=yes".to_string()];
    if let Some(a) = after {
        argv.push(format!("--dependency=afterok:{a}"));
    }
    argv.push(job.script.display().to_string());
    argv
}

/// Prints the job's sbatch command as a shell line and returns the variable (`$JOB_i`) that
/// holds its id there.
fn print_dry_run(i: usize, job: &Job, argv: &[String]) -> String {
    let var = format!("JOB_{i}");
    // Printed as shell lines that can be run as they are: `$JOB_n` must expand.
    let shown: Vec<String> = argv
        .iter()
        .map(|a| if a.contains("afterok:$JOB_") { a.clone() } else { quote(a) })
        .collect();
    println!("{var}=$(sbatch {})  # {}", shown.join(" "), job.key);
    format!("${var}")
}

/// Submits the job and records its id next to the script, so a later call finds it queued.
/// `earlier`: jobs this call has already submitted (for the error message).
fn submit(job: &Job, argv: &[String], after: Option<String>, earlier: usize) -> Result<String> {
    let id = sbatch(argv).with_context(|| {
        format!(
            "submitting {} ({} earlier job(s) of this call are submitted and recorded; submitting \
             again skips them)",
            job.key, earlier
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
    Ok(id)
}

/// `--wait`: waits for the queue to drain, prints the status and fails unless every stage is
/// done.
fn wait_until_done(ids: &[String], jobs: &[Job], poll: f64) -> Result<()> {
    wait(ids, Duration::from_secs_f64(poll.max(0.2)))?;
    let rows = report(jobs)?;
    print_report(&rows);
    let not_done: Vec<&str> = rows.iter().filter(|r| !r.done).map(|r| r.key.as_str()).collect();
    if !not_done.is_empty() {
        bail!("{} stage(s) not done: {}", not_done.len(), not_done.join(", "));
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
