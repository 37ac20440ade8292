//! What Slurm knows about our jobs: `squeue -t all` (finished jobs stay listed for the
//! cluster's MinJobAge), then `sacct` for those it no longer lists, when accounting is on.

use std::collections::BTreeMap;
use std::process::Command;

use anyhow::{bail, Context, Result};

/// One job or array task as Slurm reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskState {
    /// Array task (`3`, or `[0-3]` while the array is pending as one record), None for a
    /// plain job.
    pub task: Option<String>,
    /// `PENDING`, `RUNNING`, `COMPLETED`, `FAILED`, `CANCELLED`, `TIMEOUT`, …
    pub state: String,
    /// squeue's reason (`Dependency`, `DependencyNeverSatisfied`, `NonZeroExitCode`, …).
    pub reason: String,
}

/// Job id → its tasks.
pub type Jobs = BTreeMap<String, Vec<TaskState>>;

/// A stage's job, summed over its tasks.
#[derive(Debug, Clone, PartialEq)]
pub enum JobState {
    Queued,
    Running,
    /// Every task completed (the stage still decides "done" from its manifests).
    Completed,
    /// Tasks that failed, with their state: (task, state, reason).
    Failed(Vec<TaskState>),
    Cancelled(String),
    /// Slurm no longer knows the job.
    Unknown,
}

impl JobState {
    /// Still in the queue: a dependency on it is meaningful.
    pub fn live(&self) -> bool {
        matches!(self, JobState::Queued | JobState::Running)
    }
}

const LIVE: &[&str] =
    &["PENDING", "CONFIGURING", "REQUEUED", "RESIZING", "SUSPENDED", "REQUEUE_HOLD", "REQUEUE_FED"];
const RUNNING: &[&str] = &["RUNNING", "COMPLETING", "STAGE_OUT", "SIGNALING"];

pub fn summarize(tasks: Option<&Vec<TaskState>>) -> JobState {
    let Some(tasks) = tasks.filter(|t| !t.is_empty()) else { return JobState::Unknown };
    let failed: Vec<TaskState> = tasks
        .iter()
        .filter(|t| !LIVE.contains(&t.state.as_str()) && !RUNNING.contains(&t.state.as_str()))
        .filter(|t| t.state != "COMPLETED" && t.state != "CANCELLED")
        .cloned()
        .collect();
    if !failed.is_empty() {
        return JobState::Failed(failed);
    }
    if let Some(c) = tasks.iter().find(|t| t.state == "CANCELLED") {
        return JobState::Cancelled(c.reason.clone());
    }
    if tasks.iter().any(|t| RUNNING.contains(&t.state.as_str())) {
        return JobState::Running;
    }
    if tasks.iter().any(|t| LIVE.contains(&t.state.as_str())) {
        return JobState::Queued;
    }
    JobState::Completed
}

/// Parse `squeue -h -o %i|%T|%r` (or `sacct -P -o JobID,State`) lines.
pub fn parse(text: &str) -> Jobs {
    let mut jobs = Jobs::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let mut f = line.split('|');
        let (Some(id), Some(state)) = (f.next(), f.next()) else { continue };
        let reason = f.next().unwrap_or("").to_string();
        // sacct writes `CANCELLED by 0`; squeue one word.
        let state = state.split_whitespace().next().unwrap_or("").to_string();
        let (job, task) = match id.split_once('_') {
            Some((j, t)) => (j.to_string(), Some(t.to_string())),
            None => (id.to_string(), None),
        };
        // sacct also lists steps (`12.batch`): the job line is enough.
        if job.contains('.') || task.as_deref().is_some_and(|t| t.contains('.')) {
            continue;
        }
        jobs.entry(job).or_default().push(TaskState { task, state, reason });
    }
    jobs
}

/// The states of `ids`: squeue first, sacct for the rest (ignored when accounting is off).
pub fn query(ids: &[String]) -> Result<Jobs> {
    if ids.is_empty() {
        return Ok(Jobs::new());
    }
    let user = std::env::var("USER").ok().or_else(|| std::env::var("LOGNAME").ok());
    let mut squeue = Command::new("squeue");
    squeue.args(["-h", "-t", "all", "-o", "%i|%T|%r"]);
    if let Some(u) = &user {
        squeue.args(["-u", u]);
    }
    let out = squeue.output().context("running squeue (is Slurm on PATH?)")?;
    if !out.status.success() {
        bail!("squeue failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    let mut jobs: Jobs = parse(&String::from_utf8_lossy(&out.stdout))
        .into_iter()
        .filter(|(id, _)| ids.contains(id))
        .collect();
    let missing: Vec<&str> =
        ids.iter().filter(|id| !jobs.contains_key(*id)).map(String::as_str).collect();
    if !missing.is_empty() {
        let out = Command::new("sacct")
            .args(["-n", "-X", "-P", "-o", "JobID,State", "-j", &missing.join(",")])
            .output();
        if let Some(out) = out.ok().filter(|o| o.status.success()) {
            jobs.extend(
                parse(&String::from_utf8_lossy(&out.stdout))
                    .into_iter()
                    .filter(|(id, _)| ids.contains(id)),
            );
        }
    }
    Ok(jobs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrays_and_failures_are_summed_per_job() {
        let jobs = parse(
            "3|CANCELLED|DependencyNeverSatisfied\n1_0|COMPLETED|None\n1_1|FAILED|NonZeroExitCode\n\
             2|FAILED|NonZeroExitCode\n4_[0-3]|PENDING|Dependency\n5_0|RUNNING|None\n5_1|PENDING|None\n\
             6|COMPLETED|None\n7.batch|COMPLETED|\n",
        );
        assert_eq!(jobs["1"].len(), 2);
        match summarize(jobs.get("1")) {
            JobState::Failed(t) => assert_eq!(t[0].task.as_deref(), Some("1")),
            s => panic!("{s:?}"),
        }
        assert_eq!(
            summarize(jobs.get("3")),
            JobState::Cancelled("DependencyNeverSatisfied".into())
        );
        assert_eq!(summarize(jobs.get("4")), JobState::Queued);
        assert_eq!(summarize(jobs.get("5")), JobState::Running);
        assert_eq!(summarize(jobs.get("6")), JobState::Completed);
        assert_eq!(summarize(jobs.get("9")), JobState::Unknown);
        assert!(!jobs.contains_key("7"), "job steps are not jobs");
        assert!(JobState::Queued.live() && !JobState::Completed.live());
    }

    #[test]
    fn sacct_states_with_words_after_them() {
        let jobs = parse("8|CANCELLED by 0\n9|TIMEOUT\n");
        assert_eq!(summarize(jobs.get("8")), JobState::Cancelled(String::new()));
        assert!(matches!(summarize(jobs.get("9")), JobState::Failed(_)));
    }
}
