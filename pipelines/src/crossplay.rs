//! `spice crossplay`: the co-evolution analysis of a run (the paper's Figure 3). Challengers
//! of several iterations write tasks for the run's cross-play documents, and Reasoners of
//! several iterations answer them:
//! - a fixed Reasoner against the Challengers of the compared policies (do later Challengers
//!   write harder tasks?);
//! - the tasks of a fixed Challenger against the Reasoners of the compared policies (do later
//!   Reasoners pass more?).
//!
//! Each cell runs the ordinary stages with `--crossplay C:R` under `<run>/crossplay/`, so it
//! resumes like an iteration; the numbers come from its shards (`spice_report::crossplay`) and
//! go to `<run>/crossplay/crossplay.csv` and `.json`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use spice_report::crossplay::{self, CrossplayPlan, CrossplayRow};
use spice_schemas::{commit::write_atomic, layout::RunLayout, prune::is_pruned, RunConfig};
use spice_stage::Cell;

use crate::iterate::run_stage;
use crate::plan::crossplay_call;

#[derive(clap::Args)]
#[command(after_help = "Policy i is the model that played iteration i: 0 is the initial model, \
i > 0 the checkpoint iteration i - 1's update wrote. Defaults come from the run's [crossplay] \
section. Results: <run>/crossplay/crossplay.csv and crossplay.json, and the cross-play plots of \
`spice report`.")]
pub struct CrossplayArgs {
    /// Run folder (made by `spice iterate`).
    #[arg(long, default_value = "data/runs/default")]
    pub run: PathBuf,
    /// Policies compared, e.g. `0,5,10` (default: crossplay.policies, else every policy the
    /// run has).
    #[arg(long, value_delimiter = ',')]
    pub policies: Option<Vec<u32>>,
    /// The Reasoner that answers every compared Challenger's tasks (default:
    /// crossplay.fixed_reasoner).
    #[arg(long)]
    pub fixed_reasoner: Option<u32>,
    /// The Challenger whose tasks every compared Reasoner answers (default:
    /// crossplay.fixed_challenger).
    #[arg(long)]
    pub fixed_challenger: Option<u32>,
    /// Device for every stage (`auto|cpu|cuda:N`), overriding `run.device`.
    #[arg(long)]
    pub device: Option<String>,
    /// Redo cells even when their manifests say they are done.
    #[arg(long)]
    pub force: bool,
    /// Folder of the stage binaries (default: the folder of this binary).
    #[arg(long)]
    pub bin_dir: Option<PathBuf>,
}

/// What a cross-play run compares.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub policies: Vec<u32>,
    pub fixed_reasoner: u32,
    pub fixed_challenger: u32,
    /// Every cell, Challenger-major.
    pub cells: Vec<Cell>,
}

impl Plan {
    /// The cells of both curves: the fixed Reasoner with every compared Challenger, and every
    /// compared Reasoner with the fixed Challenger.
    pub fn new(policies: Vec<u32>, fixed_reasoner: u32, fixed_challenger: u32) -> Plan {
        let mut cells = BTreeSet::new();
        for &p in &policies {
            cells.insert(Cell { challenger: p, reasoner: fixed_reasoner });
            cells.insert(Cell { challenger: fixed_challenger, reasoner: p });
        }
        Plan { policies, fixed_reasoner, fixed_challenger, cells: cells.into_iter().collect() }
    }
}

/// Policies of the run that a stage can load: the initial model, and every committed,
/// unpruned checkpoint's iteration + 1.
pub fn available_policies(layout: &RunLayout) -> Vec<u32> {
    let mut p = vec![0];
    for it in layout.iterations() {
        let ckpt = layout.checkpoint(it);
        if ckpt.join("_manifest.json").exists() && !is_pruned(&ckpt) {
            p.push(it + 1);
        }
    }
    p
}

/// The plan from the flags and the run's `[crossplay]`, each policy checked against the run.
pub fn plan(args: &CrossplayArgs, cfg: &RunConfig, layout: &RunLayout) -> Result<Plan> {
    let available = available_policies(layout);
    let cx = &cfg.crossplay;
    let mut policies = match &args.policies {
        Some(p) => p.clone(),
        None if !cx.policies.is_empty() => cx.policies.clone(),
        None => available.clone(),
    };
    policies.sort_unstable();
    policies.dedup();
    let fixed_reasoner = args.fixed_reasoner.unwrap_or(cx.fixed_reasoner);
    let fixed_challenger = args.fixed_challenger.unwrap_or(cx.fixed_challenger);
    for p in policies.iter().chain([&fixed_reasoner, &fixed_challenger]) {
        if !available.contains(p) {
            let ckpt = layout.checkpoint(p.saturating_sub(1));
            let why = if is_pruned(&ckpt) {
                format!("{} was pruned ([checkpoint] keep)", ckpt.display())
            } else {
                format!("{} is not a finished checkpoint", ckpt.display())
            };
            bail!(
                "policy {p} (the model that played iteration {p}) cannot be loaded: {why}; this \
                 run has policies {available:?}"
            );
        }
    }
    Ok(Plan::new(policies, fixed_reasoner, fixed_challenger))
}

pub fn run(args: &CrossplayArgs) -> Result<()> {
    let layout = RunLayout::new(&args.run);
    if !layout.config().exists() {
        bail!(
            "{} has no run.toml: give the folder of a run (`spice iterate --run DIR`)",
            args.run.display()
        );
    }
    let cfg = RunConfig::load(&layout.config())?;
    let bin_dir = match &args.bin_dir {
        Some(d) => d.clone(),
        None => std::env::current_exe()?.parent().map(Path::to_path_buf).unwrap_or_default(),
    };
    let plan = plan(args, &cfg, &layout)?;
    write_plan(&layout, &plan)?;
    let (documents, held_out) = cfg.crossplay.document_count();
    eprintln!(
        "spice crossplay: run {}, policies {:?}, fixed Reasoner {}, fixed Challenger {}, {} \
         cell(s), {} document(s) {}",
        args.run.display(),
        plan.policies,
        plan.fixed_reasoner,
        plan.fixed_challenger,
        plan.cells.len(),
        documents,
        if held_out { "held out of training" } else { "drawn by seed" }
    );
    if !held_out {
        eprintln!(
            "spice crossplay: warning: this run holds out no documents \
             (crossplay.heldout_documents = 0), so training may have drawn some of the {documents} \
             cross-play documents; set it before training a run meant for cross-play"
        );
    }
    let device = args.device.as_deref();
    let shards = cfg.run.shards.max(1);
    let mut challengers_done = BTreeSet::new();
    for (i, cell) in plan.cells.iter().enumerate() {
        eprintln!(
            "==> cell {}/{}: Challenger policy {}, Reasoner policy {}",
            i + 1,
            plan.cells.len(),
            cell.challenger,
            cell.reasoner
        );
        let mut calls = Vec::new();
        // A Challenger's tasks serve every Reasoner of its row of cells.
        if challengers_done.insert(cell.challenger) {
            calls.push(crossplay_call(&args.run, cell, "challenge", shards));
            calls.push(crossplay_call(&args.run, cell, "filter", 1));
        }
        calls.push(crossplay_call(&args.run, cell, "rollout", shards));
        calls.push(crossplay_call(&args.run, cell, "score", 1));
        for c in calls {
            run_stage(&bin_dir, &args.run, &c, device, args.force)?;
        }
    }
    finish(&layout, &plan)
}

/// `<run>/crossplay/plan.json`: what the report's figure compares.
pub fn write_plan(layout: &RunLayout, plan: &Plan) -> Result<()> {
    let record = CrossplayPlan {
        policies: plan.policies.clone(),
        fixed_reasoner: plan.fixed_reasoner,
        fixed_challenger: plan.fixed_challenger,
    };
    write_atomic(
        &layout.root.join("crossplay").join(crossplay::PLAN_FILE),
        (serde_json::to_string_pretty(&record)? + "\n").as_bytes(),
    )
}

/// Count the finished cells, write the results and print both curves.
pub fn finish(layout: &RunLayout, plan: &Plan) -> Result<()> {
    let rows = crossplay::read(&layout.root)?;
    let written = write_results(layout, &rows)?;
    print!("{}", crossplay::table(&rows, plan.fixed_reasoner, plan.fixed_challenger));
    eprintln!("spice crossplay: {} cell(s); {}", rows.len(), written.display());
    Ok(())
}

/// `<run>/crossplay/crossplay.csv` and `crossplay.json`, rewritten atomically.
fn write_results(layout: &RunLayout, rows: &[CrossplayRow]) -> Result<PathBuf> {
    let dir = layout.root.join("crossplay");
    let csv = dir.join(crossplay::CSV_FILE);
    write_atomic(&csv, crossplay::csv(rows).as_bytes())?;
    let json = serde_json::to_string_pretty(rows).context("cross-play rows as JSON")? + "\n";
    write_atomic(&dir.join(crossplay::JSON_FILE), json.as_bytes())?;
    Ok(csv)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_curves_share_their_crossing_cell() {
        let p = Plan::new(vec![0, 2, 4], 0, 4);
        let cells: Vec<(u32, u32)> = p.cells.iter().map(|c| (c.challenger, c.reasoner)).collect();
        // Fixed Reasoner 0: (0,0) (2,0) (4,0); fixed Challenger 4: (4,0) (4,2) (4,4).
        assert_eq!(cells, [(0, 0), (2, 0), (4, 0), (4, 2), (4, 4)]);
    }
}
