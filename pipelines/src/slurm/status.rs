//! `spice slurm status`: one line per stage — done from its manifests, otherwise what Slurm
//! says about the job last submitted for it.

use std::path::PathBuf;

use anyhow::{Context, Result};
use spice_schemas::{layout::RunLayout, RunConfig};

use super::jobs::{plan, Job};
use super::queue::{query, summarize, JobState};
use super::script::log_path;
use super::StatusArgs;
use crate::summary::summarize as summarize_iteration;

/// The status of one stage.
pub struct Row {
    pub key: String,
    pub done: bool,
    pub job: Option<String>,
    /// `done`, `queued`, `running`, `failed`, `cancelled`, `completed` (but no manifests),
    /// `gone` (Slurm forgot the job), `not submitted`.
    pub state: &'static str,
    /// Reason, and log paths of failed tasks.
    pub note: String,
    pub logs: Vec<PathBuf>,
}

pub fn run(args: &StatusArgs) -> Result<()> {
    let layout = RunLayout::new(&args.run);
    let cfg = RunConfig::load(&layout.config())
        .context("this run folder has no run.toml: submit it first")?;
    let run = std::fs::canonicalize(&args.run)?;
    let iterations = args.iterations.unwrap_or(cfg.run.iterations);
    let jobs = plan(&run, &cfg, iterations);
    let rows = report(&jobs)?;
    print_report(&rows);
    for iter in 0..iterations {
        let dir = layout.iter_dir(iter);
        if rows.iter().any(|r| r.key == format!("iter-{iter:04}/update") && r.done) {
            println!("{}", summarize_iteration(&dir, iter)?.line());
        }
    }
    Ok(())
}

/// The status of every job of the plan. Stages never submitted and not done are listed only
/// up to the first such stage, so a long run's status stays short.
pub fn report(jobs: &[Job]) -> Result<Vec<Row>> {
    let records = jobs.iter().map(Job::read_record).collect::<Result<Vec<_>>>()?;
    let ids: Vec<String> = records.iter().flatten().map(|r| r.job_id.clone()).collect();
    let states = match query(&ids) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("(queue state unavailable: {e:#})");
            Default::default()
        }
    };
    let mut rows = Vec::new();
    let mut unsubmitted_shown = false;
    for (job, rec) in jobs.iter().zip(&records) {
        let id = rec.as_ref().map(|r| r.job_id.clone());
        let mut row = Row {
            key: job.key.clone(),
            done: false,
            job: id.clone(),
            state: "",
            note: String::new(),
            logs: vec![],
        };
        if job.done()? {
            row.done = true;
            row.state = "done";
            rows.push(row);
            continue;
        }
        let Some(id) = id else {
            if !unsubmitted_shown {
                row.state = "not submitted";
                rows.push(row);
                unsubmitted_shown = true;
            }
            continue;
        };
        match summarize(states.get(&id)) {
            JobState::Queued => {
                row.state = "queued";
                row.note = states[&id].first().map(|t| t.reason.clone()).unwrap_or_default();
            }
            JobState::Running => row.state = "running",
            JobState::Completed => {
                row.state = "completed";
                row.note = "the job ended well but the stage left no complete manifests".into();
            }
            JobState::Cancelled(reason) => {
                row.state = "cancelled";
                row.note = if reason == "DependencyNeverSatisfied" {
                    "an earlier stage failed (DependencyNeverSatisfied)".into()
                } else {
                    reason
                };
            }
            JobState::Failed(tasks) => {
                row.state = "failed";
                row.note = tasks
                    .iter()
                    .map(|t| format!("{} {}", t.state, t.reason))
                    .collect::<Vec<_>>()
                    .join(", ");
                row.logs = tasks
                    .iter()
                    .map(|t| {
                        log_path(&job.log, &id, t.task.as_deref().filter(|_| job.call.parts > 1))
                    })
                    .collect();
            }
            JobState::Unknown => {
                row.state = "gone";
                row.note = "Slurm no longer knows the job; submit again".into();
            }
        }
        rows.push(row);
    }
    Ok(rows)
}

/// `KEY  STATE  job ID  note`, then `  log: PATH` lines of failed tasks.
pub fn print_report(rows: &[Row]) {
    let width = rows.iter().map(|r| r.key.len()).max().unwrap_or(0);
    for r in rows {
        let job = r.job.as_ref().map(|j| format!("job {j}")).unwrap_or_default();
        let line = format!("{:width$}  {:13}  {:10}  {}", r.key, r.state, job, r.note);
        println!("{}", line.trim_end());
        for l in &r.logs {
            println!("{:width$}  log: {}", "", l.display());
        }
    }
}
