//! The stage invocations of a run, in order: what the local driver runs as processes (and
//! what a scheduler would submit as jobs).

use std::path::{Path, PathBuf};

use spice_schemas::RunConfig;
use spice_stage::Cell;

/// One stage of an iteration, possibly split into parts (`--shard I/N`).
#[derive(Debug, Clone, PartialEq)]
pub struct StageCall {
    /// Short name for logs and summaries: `chunk`, `challenge`, `filter`, …
    pub name: &'static str,
    /// The stage's binary.
    pub bin: &'static str,
    /// Iteration, or None for the run-level chunking.
    pub iter: Option<u32>,
    /// The flag that passes `iter`: `--iter`, or `--checkpoint-of` for evaluating the
    /// checkpoint an iteration's update wrote.
    pub iter_flag: &'static str,
    /// Parts this stage is split into (1 = not sharded).
    pub parts: u32,
    /// The folder whose manifests say whether the stage is done.
    pub output: PathBuf,
    /// A cross-play cell (`--crossplay C:R`) instead of an iteration.
    pub cell: Option<Cell>,
}

impl StageCall {
    /// Whether finishing this stage changes the run's summary (`spice summarize`): an
    /// iteration's update, or an evaluation.
    pub fn summarizes(&self) -> bool {
        self.cell.is_none() && matches!(self.name, "update" | "eval")
    }

    /// Command-line arguments of part `part`.
    pub fn args(&self, run: &Path, part: u32, device: Option<&str>, force: bool) -> Vec<String> {
        let mut a = vec!["--run".to_string(), run.display().to_string()];
        if let Some(i) = self.iter {
            a.extend([self.iter_flag.to_string(), i.to_string()]);
        }
        if let Some(c) = self.cell {
            a.extend(["--crossplay".to_string(), c.to_string()]);
        }
        if self.parts > 1 {
            a.extend(["--shard".to_string(), format!("{part}/{}", self.parts)]);
        }
        if let Some(d) = device {
            a.extend(["--device".to_string(), d.to_string()]);
        }
        if force {
            a.push("--force".to_string());
        }
        a
    }
}

/// The run-level stage: chunking the corpus once for all iterations.
pub fn chunk_call(run: &Path) -> StageCall {
    StageCall {
        name: "chunk",
        bin: "spice-chunk",
        iter: None,
        iter_flag: "--iter",
        parts: 1,
        output: run.join("chunks"),
        cell: None,
    }
}

/// The stages of iteration `iter`: challenge → filter → rollout → score → update.
/// Generation stages are split into `run.shards` parts.
pub fn iteration_calls(run: &Path, cfg: &RunConfig, iter: u32) -> Vec<StageCall> {
    let dir = run.join(format!("iter-{iter:04}"));
    let n = cfg.run.shards.max(1);
    let call = |name, bin, parts, out: &str| StageCall {
        name,
        bin,
        iter: Some(iter),
        iter_flag: "--iter",
        parts,
        output: dir.join(out),
        cell: None,
    };
    vec![
        call("challenge", "spice-challenge", n, "challenger"),
        call("filter", "spice-filter", 1, "tasks"),
        call("rollout", "spice-rollout", n, "rollouts"),
        call("score", "spice-score", 1, "scored"),
        call("update", "spice-update", 1, "update"),
    ]
}

/// Evaluations after iteration `iter` with `eval.eval_every = N > 0` and benchmarks set: the
/// initial model once (with iteration 0, into `iter-0000/eval/`), and the checkpoint of
/// every N-th iteration (into `iter-NNNN/eval-checkpoint/`), so a report shows the curve.
pub fn eval_calls(run: &Path, cfg: &RunConfig, iter: u32) -> Vec<StageCall> {
    if cfg.eval.eval_every == 0 || cfg.eval.benchmarks.is_empty() {
        return Vec::new();
    }
    let dir = run.join(format!("iter-{iter:04}"));
    let mut calls = Vec::new();
    let call = |iter_flag, out: &str| StageCall {
        name: "eval",
        bin: "spice-eval",
        iter: Some(iter),
        iter_flag,
        parts: 1,
        output: dir.join(out),
        cell: None,
    };
    if iter == 0 {
        calls.push(call("--iter", "eval"));
    }
    if cfg.eval.evaluates_checkpoint(iter) {
        calls.push(call("--checkpoint-of", "eval-checkpoint"));
    }
    calls
}

/// Stage `name` (`challenge`, `filter`, `rollout` or `score`) of cross-play cell `cell`.
pub fn crossplay_call(run: &Path, cell: &Cell, name: &'static str, parts: u32) -> StageCall {
    let (bin, folder) = match name {
        "challenge" => ("spice-challenge", "challenger"),
        "filter" => ("spice-filter", "tasks"),
        "rollout" => ("spice-rollout", "rollouts"),
        "score" => ("spice-score", "scored"),
        other => unreachable!("{other} is not a cross-play stage"),
    };
    StageCall {
        name,
        bin,
        iter: None,
        iter_flag: "--iter",
        parts,
        output: cell.folder(run, folder),
        cell: Some(*cell),
    }
}

/// Every stage binary a run needs.
pub const BINARIES: &[&str] = &[
    "spice-chunk",
    "spice-challenge",
    "spice-filter",
    "spice-rollout",
    "spice-score",
    "spice-update",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sharded_stages_get_parts_and_flags() {
        let mut cfg = RunConfig::default();
        cfg.run.shards = 3;
        let calls = iteration_calls(Path::new("r"), &cfg, 2);
        let names: Vec<&str> = calls.iter().map(|c| c.name).collect();
        assert_eq!(names, ["challenge", "filter", "rollout", "score", "update"]);
        assert_eq!(calls[0].parts, 3);
        assert_eq!(calls[1].parts, 1);
        assert_eq!(
            calls[0].args(Path::new("r"), 1, Some("cpu"), true),
            ["--run", "r", "--iter", "2", "--shard", "1/3", "--device", "cpu", "--force"]
        );
        assert_eq!(calls[3].args(Path::new("r"), 0, None, false), ["--run", "r", "--iter", "2"]);
        assert_eq!(calls[3].bin, "spice-score");
        assert_eq!(calls[4].output, Path::new("r/iter-0002/update"));
    }

    #[test]
    fn evaluations_follow_eval_every() {
        let mut cfg = RunConfig::default();
        assert!(eval_calls(Path::new("r"), &cfg, 0).is_empty(), "off by default");
        cfg.eval.eval_every = 2;
        cfg.eval.benchmarks = vec!["b.jsonl".into()];
        let args = |i| -> Vec<Vec<String>> {
            eval_calls(Path::new("r"), &cfg, i)
                .iter()
                .map(|c| c.args(Path::new("r"), 0, None, false))
                .collect()
        };
        assert_eq!(args(0), vec![vec!["--run", "r", "--iter", "0"]], "the base model first");
        assert_eq!(args(1), vec![vec!["--run", "r", "--checkpoint-of", "1"]]);
        assert!(args(2).is_empty());
        assert_eq!(args(3), vec![vec!["--run", "r", "--checkpoint-of", "3"]]);
    }
}
