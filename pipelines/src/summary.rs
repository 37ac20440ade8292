//! One line per iteration, read from the stages' manifests: what `spice iterate` prints and
//! appends to `<run>/summary.jsonl` (one JSON object per iteration, for Polars/DuckDB).

use std::path::Path;

use anyhow::Result;
use serde::Serialize;
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

/// The first of `names` that some manifest of the folder has: summed over parts for counts
/// (`sum`), else averaged weighted by rows.
fn metric(ms: &[Manifest], names: &[&str], sum: bool) -> Option<f64> {
    for name in names {
        let vals: Vec<(f64, f64)> =
            ms.iter().filter_map(|m| Some((m.metric(name)?, m.rows as f64))).collect();
        if vals.is_empty() {
            continue;
        }
        if sum {
            return Some(vals.iter().map(|v| v.0).sum());
        }
        let w: f64 = vals.iter().map(|v| v.1).sum();
        return Some(if w > 0.0 {
            vals.iter().map(|v| v.0 * v.1).sum::<f64>() / w
        } else {
            vals.iter().map(|v| v.0).sum::<f64>() / vals.len() as f64
        });
    }
    None
}

pub fn summarize(iter_dir: &Path, iteration: u32) -> Result<IterationSummary> {
    let read = |name: &str| -> Result<Vec<Manifest>> {
        Ok(folder_complete(&iter_dir.join(name))?.unwrap_or_default())
    };
    let (ch, tasks, roll, scored, update) =
        (read("challenger")?, read("tasks")?, read("rollouts")?, read("scored")?, read("update")?);
    // `checkpoint/` is written by the update stage inside its own timed span, so its
    // manifest's seconds are already part of `update`'s and are not added again.
    let minutes = [&ch, &tasks, &roll, &scored, &update, &read("eval")?, &read("eval-checkpoint")?]
        .iter()
        .flat_map(|ms| ms.iter().map(|m| m.seconds))
        .sum::<f64>()
        / 60.0;
    Ok(IterationSummary {
        iteration,
        documents: metric(&ch, &["documents"], true),
        attempts: metric(&ch, &["attempts"], true),
        valid_task_rate: metric(&tasks, &["valid_rate"], false).or(metric(
            &ch,
            &["valid_rate"],
            false,
        )),
        reasoner_answers: metric(&roll, &["answers"], true),
        mean_pass_rate: metric(&scored, &["mean_pass_rate"], false),
        mean_challenger_reward: metric(&scored, &["mean_challenger_reward", "mean_r_c"], false),
        reasoner_accuracy: metric(&scored, &["reasoner_accuracy"], false),
        loss: metric(&update, &["mean_loss", "loss"], false),
        grad_norm: metric(&update, &["final_grad_norm", "grad_norm"], false),
        eval: accuracies(&read("eval-checkpoint")?),
        eval_base: accuracies(&read("eval")?),
        minutes,
    })
}

/// `<benchmark>/accuracy` metrics of an evaluation's manifest.
fn accuracies(ms: &[Manifest]) -> std::collections::BTreeMap<String, f64> {
    ms.iter()
        .flat_map(|m| m.metrics.iter())
        .filter_map(|(k, v)| Some((k.strip_suffix("/accuracy")?.to_string(), v.as_f64()?)))
        .collect()
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
