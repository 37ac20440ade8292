//! The jobs of a run in submission order, each with the job it waits for, and the record of
//! the job id last submitted for it.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use spice_schemas::{commit::write_atomic, manifest::folder_complete, vocab::Grounding, RunConfig};

use crate::plan::{chunk_call, eval_calls, iteration_calls, StageCall};

use super::script::log_pattern;

pub struct Job {
    pub call: StageCall,
    /// `chunk`, `iter-0003/rollout`, `iter-0000/eval-checkpoint`.
    pub key: String,
    /// Index of the job this one runs after (`afterok`).
    pub after: Option<usize>,
    pub script: PathBuf,
    /// `<run>/slurm/iter-0003/rollout.job`.
    pub record: PathBuf,
    /// Log pattern with `%A_%a` / `%j`.
    pub log: PathBuf,
}

/// Every job of iterations `0..iterations`: chunk → (challenge → filter → rollout → score →
/// update)+, and evaluations after their iteration's update, off the main chain (a failed
/// evaluation stops no training).
pub fn plan(run: &Path, cfg: &RunConfig, iterations: u32) -> Vec<Job> {
    let slurm = run.join("slurm");
    let mut jobs: Vec<Job> = Vec::new();
    let push = |call: StageCall, after: Option<usize>, jobs: &mut Vec<Job>| -> usize {
        let name = if call.name == "eval" {
            call.output
                .file_name()
                .expect("an output folder has a name")
                .to_string_lossy()
                .to_string()
        } else {
            call.name.to_string()
        };
        let dir = match call.iter {
            Some(i) => slurm.join(format!("iter-{i:04}")),
            None => slurm.clone(),
        };
        let key = match call.iter {
            Some(i) => format!("iter-{i:04}/{name}"),
            None => name.clone(),
        };
        let log = log_pattern(&dir.join("logs"), &name, call.parts);
        jobs.push(Job {
            key,
            after,
            script: dir.join(format!("{name}.sbatch")),
            record: dir.join(format!("{name}.job")),
            log,
            call,
        });
        jobs.len() - 1
    };
    let mut last = None;
    if cfg.challenger.grounding == Grounding::Corpus {
        last = Some(push(chunk_call(run), None, &mut jobs));
    }
    for iter in 0..iterations {
        for call in iteration_calls(run, cfg, iter) {
            last = Some(push(call, last, &mut jobs));
        }
        for call in eval_calls(run, cfg, iter) {
            push(call, last, &mut jobs);
        }
    }
    jobs
}

impl Job {
    /// Every part's manifest is there.
    pub fn done(&self) -> Result<bool> {
        Ok(folder_complete(&self.call.output)
            .with_context(|| format!("reading the manifests of {}", self.call.output.display()))?
            .is_some())
    }

    pub fn read_record(&self) -> Result<Option<Record>> {
        if !self.record.exists() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&self.record)
            .with_context(|| format!("reading {}", self.record.display()))?;
        let r = serde_json::from_str(&text)
            .with_context(|| format!("parsing {}", self.record.display()))?;
        Ok(Some(r))
    }

    pub fn write_record(&self, r: &Record) -> Result<()> {
        write_atomic(&self.record, serde_json::to_string(r)?.as_bytes())
    }
}

/// The job last submitted for a stage.
#[derive(Debug, Serialize, Deserialize)]
pub struct Record {
    pub job_id: String,
    pub parts: u32,
    /// The job it was submitted to wait for.
    pub after: Option<String>,
    /// Seconds since the Unix epoch.
    pub submitted_at: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_runs_through_iterations_and_evaluations_hang_off_it() {
        let mut cfg = RunConfig::default();
        cfg.run.shards = 2;
        cfg.eval.eval_every = 1;
        cfg.eval.benchmarks = vec!["b.jsonl".into()];
        let jobs = plan(Path::new("/r"), &cfg, 2);
        let keys: Vec<&str> = jobs.iter().map(|j| j.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "chunk",
                "iter-0000/challenge",
                "iter-0000/filter",
                "iter-0000/rollout",
                "iter-0000/score",
                "iter-0000/update",
                "iter-0000/eval",
                "iter-0000/eval-checkpoint",
                "iter-0001/challenge",
                "iter-0001/filter",
                "iter-0001/rollout",
                "iter-0001/score",
                "iter-0001/update",
                "iter-0001/eval-checkpoint"
            ]
        );
        let after = |k: &str| {
            jobs[jobs.iter().position(|j| j.key == k).unwrap()].after.map(|i| jobs[i].key.as_str())
        };
        assert_eq!(after("chunk"), None);
        assert_eq!(after("iter-0000/challenge"), Some("chunk"));
        assert_eq!(after("iter-0000/eval"), Some("iter-0000/update"));
        assert_eq!(
            after("iter-0001/challenge"),
            Some("iter-0000/update"),
            "not after an evaluation"
        );
        assert_eq!(jobs[3].script, Path::new("/r/slurm/iter-0000/rollout.sbatch"));
        assert_eq!(jobs[3].log, Path::new("/r/slurm/iter-0000/logs/rollout-%A_%a.log"));
        assert_eq!(jobs[0].log, Path::new("/r/slurm/logs/chunk-%j.log"));

        cfg.challenger.grounding = Grounding::None;
        let jobs = plan(Path::new("/r"), &cfg, 1);
        assert_eq!((jobs[0].key.as_str(), jobs[0].after), ("iter-0000/challenge", None));
    }
}
