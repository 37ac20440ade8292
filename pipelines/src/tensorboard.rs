//! `<run>/tensorboard/`: each finished iteration as a TensorBoard event file, so a running run
//! can be watched with `tensorboard --logdir <run>/tensorboard`.
//!
//! - `update/*` at the optimizer's global step: every metric of every update step (the rows
//!   of `update/`);
//! - `iteration/*` at the iteration: the summary line (`summary.jsonl`), and `eval/<benchmark>`
//!   for the checkpoint the iteration wrote (`eval_base/<benchmark>` for the initial model).
//!
//! One file per iteration, `events.out.tfevents.iter-NNNN.spice`, rewritten atomically from
//! the committed shards whenever the driver finishes an iteration, so a resumed or rerun
//! driver writes the same events and a reader never sees half a file.

use std::path::{Path, PathBuf};

use anyhow::Result;
use spice_schemas::{
    layout::RunLayout, manifest::folder_complete, metrics::UpdateMetrics, read_folder,
    rows::UpdateMetricsRow, ShardRow,
};
use spice_tensorboard::{write_event_file, Event, Scalar};

use crate::summary::IterationSummary;

/// The event file of iteration `iter`.
pub fn event_file(layout: &RunLayout, iter: u32) -> PathBuf {
    layout.root.join("tensorboard").join(format!("events.out.tfevents.iter-{iter:04}.spice"))
}

/// Write iteration `iter`'s events (its update rows and summary).
pub fn write_iteration(layout: &RunLayout, summary: &IterationSummary) -> Result<()> {
    let iter = summary.iteration;
    let dir = layout.folder(iter, UpdateMetricsRow::FOLDER);
    // The update's commit time dates every event of the iteration: rewriting the file gives
    // the same bytes.
    let wall_time = modified_seconds(&dir.join("_manifest.json"));
    let mut events = Vec::new();
    if let Some(manifests) = folder_complete(&dir)? {
        let rows: Vec<UpdateMetricsRow> = read_folder(&dir)?;
        // The optimizer's step count after this update: its steps end there.
        let after = manifests
            .first()
            .and_then(|m| m.metrics_as::<UpdateMetrics>().ok())
            .map(|u| u.optimizer_step as i64)
            .unwrap_or(rows.len() as i64);
        let first = after - rows.len() as i64 + 1;
        for (k, r) in rows.iter().enumerate() {
            events.push(Event::scalars(wall_time, first + k as i64, update_scalars(r)));
        }
    }
    events.push(Event::scalars(wall_time, iter as i64, summary_scalars(summary)));
    write_event_file(&event_file(layout, iter), wall_time, &events)
}

fn scalar(tag: &str, value: f64) -> Scalar {
    Scalar { tag: tag.to_string(), value: value as f32 }
}

fn update_scalars(r: &UpdateMetricsRow) -> Vec<Scalar> {
    vec![
        scalar("update/loss", r.loss),
        scalar("update/pg_loss", r.pg_loss),
        scalar("update/kl", r.kl),
        scalar("update/grad_norm", r.grad_norm),
        scalar("update/clip_fraction", r.clip_fraction),
        scalar("update/learning_rate", r.learning_rate),
        scalar("update/challenger_mean_reward", r.challenger_mean_reward),
        scalar("update/reasoner_mean_reward", r.reasoner_mean_reward),
        scalar("update/tokens", r.tokens as f64),
        scalar("update/tokens_per_second", r.tokens_per_second),
        scalar("update/peak_rss_mib", r.peak_rss_mib),
    ]
}

fn summary_scalars(s: &IterationSummary) -> Vec<Scalar> {
    let mut out: Vec<Scalar> = [
        ("documents", s.documents),
        ("attempts", s.attempts),
        ("valid_task_rate", s.valid_task_rate),
        ("reasoner_answers", s.reasoner_answers),
        ("mean_pass_rate", s.mean_pass_rate),
        ("mean_challenger_reward", s.mean_challenger_reward),
        ("reasoner_accuracy", s.reasoner_accuracy),
        ("loss", s.loss),
        ("grad_norm", s.grad_norm),
        ("minutes", Some(s.minutes)),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| scalar(&format!("iteration/{k}"), v)))
    .collect();
    for (bench, acc) in &s.eval {
        out.push(scalar(&format!("eval/{bench}"), *acc));
    }
    for (bench, acc) in &s.eval_base {
        out.push(scalar(&format!("eval_base/{bench}"), *acc));
    }
    out
}

/// Seconds since the epoch of `path`'s last change (0 when it cannot be read).
fn modified_seconds(path: &Path) -> f64 {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}
