//! The per-iteration report of a SPICE run: numbers computed from every shard of the run with
//! Polars (and stage times from the manifests), shown as a table, written as CSV and JSON, and
//! drawn as plots. README.md defines each number.
//!
//! Only folders whose stage has committed are read, so a run that is still going shows empty
//! cells for its unfinished stages; a shard that cannot be read is an error naming the file.

pub mod crossplay;
mod crossplay_plot;
mod diversity;
mod from_manifests;
mod from_rows;
mod interval;
mod numbers;
mod plots;
mod shards;
mod table;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use spice_schemas::{commit::write_atomic, layout::RunLayout};

pub use diversity::Diversity;
pub use interval::{wilson, Z95};
pub use numbers::{IterationReport, PerStage};

/// Files of the report folder besides the plots.
pub const CSV_FILE: &str = "report.csv";
pub const JSON_FILE: &str = "report.json";

#[derive(Debug, Clone)]
pub struct Report {
    pub run: PathBuf,
    /// One entry per `iter-NNNN` folder, ascending.
    pub iterations: Vec<IterationReport>,
}

impl Report {
    /// Read the run folder `run`.
    pub fn build(run: &Path) -> Result<Report> {
        let layout = RunLayout::new(run);
        let iterations = layout.iterations();
        if iterations.is_empty() {
            if !run.is_dir() {
                bail!(
                    "{} does not exist: give the folder of a run (`spice iterate --run DIR`)",
                    run.display()
                );
            }
            if !layout.config().exists() {
                bail!(
                    "{} is not a run folder: it has no run.toml and no iter-NNNN folders",
                    run.display()
                );
            }
        }
        let mut by_iter: BTreeMap<u32, IterationReport> = iterations
            .iter()
            .map(|&it| (it, IterationReport { iteration: it, ..Default::default() }))
            .collect();
        from_rows::fill(&layout, &iterations, &mut by_iter)
            .with_context(|| format!("reporting on {}", run.display()))?;
        from_manifests::fill(&layout, &iterations, &mut by_iter)?;
        Ok(Report { run: run.to_path_buf(), iterations: by_iter.into_values().collect() })
    }

    /// Numbers as rows, iterations as columns.
    pub fn table(&self) -> String {
        table::table(&self.iterations)
    }

    /// One line per iteration; maps (`invalid/<reason>`, `minutes/<stage>`,
    /// `eval_after/<benchmark>`, …) flattened into columns.
    pub fn csv(&self) -> String {
        table::csv(&self.iterations)
    }

    /// A JSON array, one object per iteration.
    pub fn json(&self) -> String {
        serde_json::to_string_pretty(&self.iterations).expect("numbers and strings serialise")
            + "\n"
    }

    /// Write `report.csv`, `report.json` and (with `plots`) the plots into `out`; returns the
    /// files written.
    pub fn write(&self, out: &Path, plots: bool) -> Result<Vec<PathBuf>> {
        std::fs::create_dir_all(out)
            .with_context(|| format!("creating the report folder {}", out.display()))?;
        let mut files = vec![out.join(CSV_FILE), out.join(JSON_FILE)];
        write_atomic(&files[0], self.csv().as_bytes())?;
        write_atomic(&files[1], self.json().as_bytes())?;
        if plots && !self.iterations.is_empty() {
            files.extend(plots::write_all(out, &self.iterations)?);
        }
        // Cross-play (`spice crossplay`), when the run has some.
        let cells = crossplay::read(&self.run)?;
        if !cells.is_empty() {
            let csv = out.join(crossplay::CSV_FILE);
            write_atomic(&csv, crossplay::csv(&cells).as_bytes())?;
            files.push(csv);
            if let (true, Some(plan)) = (plots, crossplay::CrossplayPlan::read(&self.run)?) {
                files.extend(crossplay_plot::write(out, &cells, &plan)?);
            }
        }
        Ok(files)
    }
}
