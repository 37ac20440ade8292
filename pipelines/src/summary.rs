//! One line per iteration, read from the stages' manifests: what `spice iterate` prints and
//! appends to `<run>/summary.jsonl` (one JSON object per iteration, for Polars/DuckDB).

use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;
use spice_schemas::metrics::{
    ChallengeMetrics, EvalMetrics, FilterMetrics, RolloutMetrics, ScoreMetrics, StageMetrics,
    UpdateMetrics,
};
use spice_schemas::{manifest::folder_complete, Manifest};

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct IterationSummary {
    pub iteration: u32,
    pub documents: Option<f64>,
    pub attempts: Option<f64>,
    pub valid_task_rate: Option<f64>,
    pub reasoner_answers: Option<f64>,
    pub mean_pass_rate: Option<f64>,
    pub mean_challenger_reward: Option<f64>,
    pub reasoner_accuracy: Option<f64>,
    pub loss: Option<f64>,
    pub grad_norm: Option<f64>,
    /// Accuracy per benchmark of the checkpoint this iteration wrote (`eval-checkpoint/`),
    /// and of the initial model with iteration 0 (`eval/`), when evaluated.
    pub eval: std::collections::BTreeMap<String, f64>,
    pub eval_base: std::collections::BTreeMap<String, f64>,
    /// Wall time of the iteration's stages, summed over parts.
    pub minutes: f64,
}

/// Every committed part of a folder with its metrics.
fn parts<M: StageMetrics>(dir: &Path) -> Result<Vec<(Manifest, M)>> {
    let manifests = folder_complete(dir)?.unwrap_or_default();
    manifests
        .into_iter()
        .map(|m| {
            let metrics = m.metrics_as::<M>().with_context(|| format!("in {}", dir.display()))?;
            Ok((m, metrics))
        })
        .collect()
}

/// Wall time of a folder's parts.
fn seconds<M>(parts: &[(Manifest, M)]) -> f64 {
    parts.iter().map(|(m, _)| m.seconds).sum()
}

/// A count summed over parts; `None` when the folder has no committed part.
fn sum<M>(parts: &[(Manifest, M)], f: impl Fn(&M) -> u64) -> Option<f64> {
    (!parts.is_empty()).then(|| parts.iter().map(|(_, m)| f(m) as f64).sum())
}

/// A rate or mean over parts, weighted by each part's rows; `None` when no part has it.
fn weighted<M>(parts: &[(Manifest, M)], f: impl Fn(&M) -> Option<f64>) -> Option<f64> {
    let vals: Vec<(f64, f64)> =
        parts.iter().filter_map(|(man, m)| Some((f(m)?, man.rows as f64))).collect();
    if vals.is_empty() {
        return None;
    }
    let w: f64 = vals.iter().map(|v| v.1).sum();
    Some(if w > 0.0 {
        vals.iter().map(|v| v.0 * v.1).sum::<f64>() / w
    } else {
        vals.iter().map(|v| v.0).sum::<f64>() / vals.len() as f64
    })
}

pub fn summarize(iter_dir: &Path, iteration: u32) -> Result<IterationSummary> {
    let ch = parts::<ChallengeMetrics>(&iter_dir.join("challenger"))?;
    let tasks = parts::<FilterMetrics>(&iter_dir.join("tasks"))?;
    let roll = parts::<RolloutMetrics>(&iter_dir.join("rollouts"))?;
    let scored = parts::<ScoreMetrics>(&iter_dir.join("scored"))?;
    let update = parts::<UpdateMetrics>(&iter_dir.join("update"))?;
    let eval = parts::<EvalMetrics>(&iter_dir.join("eval"))?;
    let eval_ckpt = parts::<EvalMetrics>(&iter_dir.join("eval-checkpoint"))?;
    // `checkpoint/` is written by the update stage inside its own timed span, so its
    // manifest's seconds are already part of `update`'s and are not added again.
    let minutes = (seconds(&ch)
        + seconds(&tasks)
        + seconds(&roll)
        + seconds(&scored)
        + seconds(&update)
        + seconds(&eval)
        + seconds(&eval_ckpt))
        / 60.0;
    Ok(IterationSummary {
        iteration,
        documents: sum(&ch, |m| m.documents),
        attempts: sum(&ch, |m| m.attempts),
        valid_task_rate: weighted(&tasks, |m| m.valid_rate)
            .or(weighted(&ch, |m| Some(m.valid_rate))),
        reasoner_answers: sum(&roll, |m| m.answers),
        mean_pass_rate: weighted(&scored, |m| m.mean_pass_rate),
        mean_challenger_reward: weighted(&scored, |m| m.mean_challenger_reward),
        reasoner_accuracy: weighted(&scored, |m| m.reasoner_accuracy),
        loss: weighted(&update, |m| Some(m.mean_loss)),
        grad_norm: weighted(&update, |m| Some(m.final_grad_norm)),
        eval: accuracies(&eval_ckpt),
        eval_base: accuracies(&eval),
        minutes,
    })
}

/// Accuracy per benchmark of an evaluation (one part).
fn accuracies(parts: &[(Manifest, EvalMetrics)]) -> std::collections::BTreeMap<String, f64> {
    parts.iter().flat_map(|(_, m)| m.accuracies()).collect()
}

impl IterationSummary {
    /// `iter 0003: 8 docs, valid 62%, pass 0.41, r_C 0.55, acc 0.38, loss -0.0012, 7.2 min`
    pub fn line(&self) -> String {
        let pct = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{:.0}%", 100.0 * v));
        let num = |v: Option<f64>, p: usize| v.map_or("-".to_string(), |v| format!("{v:.p$}"));
        let evals: String = self
            .eval_base
            .iter()
            .map(|(b, a)| format!(", base {b} {:.1}%", 100.0 * a))
            .chain(self.eval.iter().map(|(b, a)| format!(", eval {b} {:.1}%", 100.0 * a)))
            .collect();
        format!(
            "iter {:04}: {} documents, {} attempts, valid tasks {}, {} answers, mean pass rate {}, mean r_C {}, Reasoner accuracy {}, loss {}{evals}, {:.1} min",
            self.iteration,
            num(self.documents, 0),
            num(self.attempts, 0),
            pct(self.valid_task_rate),
            num(self.reasoner_answers, 0),
            num(self.mean_pass_rate, 3),
            num(self.mean_challenger_reward, 3),
            pct(self.reasoner_accuracy),
            num(self.loss, 5),
            self.minutes
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A one-part folder whose manifest took `seconds`.
    fn stage(iter_dir: &Path, folder: &str, seconds: f64) {
        let dir = iter_dir.join(folder);
        std::fs::create_dir_all(&dir).unwrap();
        let m = serde_json::json!({
            "stage": folder, "version": "0", "schema": null, "iteration": 0,
            "shard": {"index": 0, "count": 1}, "seed": 0, "config_digest": "",
            "inputs": [], "outputs": [], "output_digest": "", "rows": 0,
            "started_at": "", "finished_at": "", "seconds": seconds, "host": "h",
            "metrics": {}
        });
        std::fs::write(dir.join("_manifest.json"), m.to_string()).unwrap();
    }

    #[test]
    fn minutes_count_the_checkpoint_inside_the_update_once() {
        let tmp = tempfile::TempDir::new().unwrap();
        for (folder, s) in
            [("challenger", 60.0), ("tasks", 6.0), ("rollouts", 120.0), ("scored", 6.0)]
        {
            stage(tmp.path(), folder, s);
        }
        stage(tmp.path(), "update", 180.0);
        stage(tmp.path(), "checkpoint", 30.0); // written within the update's 180 s
        let s = summarize(tmp.path(), 0).unwrap();
        assert!((s.minutes - 372.0 / 60.0).abs() < 1e-12, "{}", s.minutes);
    }
}
