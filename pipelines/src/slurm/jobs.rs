//! The jobs of a run in submission order, each with the job it waits for, and the record of
//! the job id last submitted for it.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use spice_schemas::{commit::write_atomic, manifest::folder_complete, vocab::Grounding, RunConfig};

use crate::plan::{chunk_call, crossplay_call, eval_calls, iteration_calls, StageCall};

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

/// The jobs of a cross-play: per Challenger, challenge → filter; per cell, rollout → score
/// after its Challenger's filter. Cells run beside each other.
pub fn crossplay_plan(run: &Path, cfg: &RunConfig, plan: &crate::crossplay::Plan) -> Vec<Job> {
    let shards = cfg.run.shards.max(1);
    let mut jobs: Vec<Job> = Vec::new();
    let mut filters = std::collections::BTreeMap::new();
    let push = |call: StageCall, after: Option<usize>, jobs: &mut Vec<Job>| -> usize {
        // `crossplay/challenger-0003[/reasoner-0000]/<stage>`, as the folders lie.
        let folder = call.output.parent().expect("a stage folder lies in its cell");
        let rel = folder.strip_prefix(run).expect("cells lie in the run").to_path_buf();
        let dir = run.join("slurm").join(&rel);
        let key = format!("{}/{}", rel.display(), call.name);
        let log = log_pattern(&dir.join("logs"), call.name, call.parts);
        jobs.push(Job {
            key,
            after,
            script: dir.join(format!("{}.sbatch", call.name)),
            record: dir.join(format!("{}.job", call.name)),
            log,
            call,
        });
        jobs.len() - 1
    };
    for cell in &plan.cells {
        let filter = match filters.get(&cell.challenger) {
            Some(&f) => f,
            None => {
                let c = push(crossplay_call(run, cell, "challenge", shards), None, &mut jobs);
                let f = push(crossplay_call(run, cell, "filter", 1), Some(c), &mut jobs);
                filters.insert(cell.challenger, f);
                f
            }
        };
        let r = push(crossplay_call(run, cell, "rollout", shards), Some(filter), &mut jobs);
        push(crossplay_call(run, cell, "score", 1), Some(r), &mut jobs);
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

        let cx = crate::crossplay::Plan::new(vec![0, 2], 0, 2);
        let jobs = crossplay_plan(Path::new("/r"), &cfg, &cx);
        let keys: Vec<(&str, Option<&str>)> =
            jobs.iter().map(|j| (j.key.as_str(), j.after.map(|a| jobs[a].key.as_str()))).collect();
        let c0 = "crossplay/challenger-0000";
        let c2 = "crossplay/challenger-0002";
        let k = |s: &str| s.to_string();
        let want = [
            (k(&format!("{c0}/challenge")), None),
            (k(&format!("{c0}/filter")), Some(k(&format!("{c0}/challenge")))),
            (k(&format!("{c0}/reasoner-0000/rollout")), Some(k(&format!("{c0}/filter")))),
            (
                k(&format!("{c0}/reasoner-0000/score")),
                Some(k(&format!("{c0}/reasoner-0000/rollout"))),
            ),
            (k(&format!("{c2}/challenge")), None),
            (k(&format!("{c2}/filter")), Some(k(&format!("{c2}/challenge")))),
            (k(&format!("{c2}/reasoner-0000/rollout")), Some(k(&format!("{c2}/filter")))),
            (
                k(&format!("{c2}/reasoner-0000/score")),
                Some(k(&format!("{c2}/reasoner-0000/rollout"))),
            ),
            (k(&format!("{c2}/reasoner-0002/rollout")), Some(k(&format!("{c2}/filter")))),
            (
                k(&format!("{c2}/reasoner-0002/score")),
                Some(k(&format!("{c2}/reasoner-0002/rollout"))),
            ),
        ];
        let got: Vec<(String, Option<String>)> =
            keys.iter().map(|(a, b)| (a.to_string(), b.map(str::to_string))).collect();
        assert_eq!(got, want);
        assert_eq!(
            jobs[2].script,
            Path::new("/r/slurm/crossplay/challenger-0000/reasoner-0000/rollout.sbatch")
        );
        assert_eq!(
            jobs[0].call.args(Path::new("/r"), 1, None, false),
            ["--run", "/r", "--crossplay", "0:0", "--shard", "1/2"]
        );

        cfg.challenger.grounding = Grounding::None;
        let jobs = plan(Path::new("/r"), &cfg, 1);
        assert_eq!((jobs[0].key.as_str(), jobs[0].after), ("iter-0000/challenge", None));
    }
}
