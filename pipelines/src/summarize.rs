//! `spice summarize`: rewrite `<run>/summary.jsonl` and `<run>/tensorboard/` from every
//! iteration whose update has committed. `spice iterate` calls it after each iteration; on a
//! cluster, the update and checkpoint-evaluation jobs that `spice slurm iterate` submits call
//! it as they finish, so both files follow a Slurm run as they follow a local one.

use std::fs::File;
use std::path::PathBuf;

use anyhow::{Context, Result};
use spice_schemas::{commit::write_atomic, layout::RunLayout, manifest::folder_complete};

use crate::summary::{summarize, IterationSummary};

#[derive(clap::Args)]
pub struct SummarizeArgs {
    /// Run folder.
    #[arg(long, default_value = "data/runs/default")]
    pub run: PathBuf,
}

pub fn run(args: &SummarizeArgs) -> Result<()> {
    let written = write_run(&RunLayout::new(&args.run))?;
    eprintln!(
        "summarize: {} finished iteration(s) into {} and {}",
        written.len(),
        args.run.join("summary.jsonl").display(),
        args.run.join("tensorboard").display()
    );
    Ok(())
}

/// Summaries of the run's finished iterations, written to `summary.jsonl` (one object per
/// line, atomically) and as one TensorBoard event file per iteration.
pub fn write_run(layout: &RunLayout) -> Result<Vec<IterationSummary>> {
    // Two Slurm jobs (an iteration's update, the previous one's evaluation) can finish
    // together; the lock keeps their rewrites from sharing a temporary file.
    std::fs::create_dir_all(&layout.root)?;
    let lock_path = layout.root.join(".summarize.lock");
    let lock =
        File::create(&lock_path).with_context(|| format!("creating {}", lock_path.display()))?;
    lock.lock().with_context(|| format!("locking {}", lock_path.display()))?;
    let mut summaries = Vec::new();
    let mut text = String::new();
    for iter in layout.iterations() {
        let dir = layout.iter_dir(iter);
        if folder_complete(&dir.join("update"))?.is_none() {
            continue;
        }
        let summary = summarize(&dir, iter)?;
        text.push_str(&serde_json::to_string(&summary)?);
        text.push('\n');
        crate::tensorboard::write_iteration(layout, &summary)?;
        summaries.push(summary);
    }
    write_atomic(&layout.root.join("summary.jsonl"), text.as_bytes())?;
    Ok(summaries)
}
