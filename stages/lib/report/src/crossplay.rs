//! Cross-play numbers (`spice crossplay`): one row per cell, a Challenger policy's tasks for
//! the cross-play documents answered by a Reasoner policy, counted from the cell's shards.
//! README.md defines each number; the counts here are that definition.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use spice_schemas::{
    read_committed_rows,
    rows::{ScoredRow, TaskRow},
    vocab::Role,
    ShardRow,
};

use crate::interval::{wilson, Z95};
use crate::shards::complete;

pub const CSV_FILE: &str = "crossplay.csv";
pub const JSON_FILE: &str = "crossplay.json";
/// What the last `spice crossplay` compared, for the report's figure.
pub const PLAN_FILE: &str = "plan.json";

/// The policies a cross-play compares, and the fixed Reasoner and Challenger of its curves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CrossplayPlan {
    pub policies: Vec<u32>,
    pub fixed_reasoner: u32,
    pub fixed_challenger: u32,
}

impl CrossplayPlan {
    /// `<run>/crossplay/plan.json`, when a cross-play has been planned.
    pub fn read(run: &Path) -> Result<Option<CrossplayPlan>> {
        let path = run.join("crossplay").join(PLAN_FILE);
        if !path.exists() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let plan = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a cross-play plan", path.display()))?;
        Ok(Some(plan))
    }
}

/// One cell: Challenger policy `challenger`'s tasks answered by Reasoner policy `reasoner`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CrossplayRow {
    pub challenger: u32,
    pub reasoner: u32,
    /// The Challenger's side (`tasks/`): documents, attempts, valid ones and their share.
    pub documents: u64,
    pub attempts: u64,
    pub valid_tasks: u64,
    pub valid_task_rate: Option<f64>,
    /// The Reasoner's side (`scored/`): tasks answered, answers, correct answers.
    pub answered_tasks: u64,
    pub answers: u64,
    pub correct: u64,
    /// correct / answers, with its 95% Wilson interval over the answers.
    pub pass_rate: Option<f64>,
    pub pass_rate_lo: Option<f64>,
    pub pass_rate_hi: Option<f64>,
    /// Shares of answered tasks whose pass rate p̂ is 0, strictly between, and 1.
    pub pass_rate_zero_share: Option<f64>,
    pub pass_rate_mid_share: Option<f64>,
    pub pass_rate_one_share: Option<f64>,
    /// Mean Challenger reward r_C over the kept attempts (the Challenger rows of `scored/`).
    pub mean_challenger_reward: Option<f64>,
}

/// Every cell of `<run>/crossplay/` whose `scored/` has committed, by (Challenger, Reasoner).
pub fn read(run: &Path) -> Result<Vec<CrossplayRow>> {
    let mut rows = Vec::new();
    for (challenger, reasoner, cell) in cells(&run.join("crossplay"))? {
        let tasks_dir =
            cell.parent().expect("a cell lies in its Challenger's folder").join(TaskRow::FOLDER);
        let scored_dir = cell.join(ScoredRow::FOLDER);
        if complete(&scored_dir)?.is_none() || complete(&tasks_dir)?.is_none() {
            continue;
        }
        let tasks: Vec<TaskRow> = read_committed_rows(&tasks_dir, "spice-filter")?;
        let scored: Vec<ScoredRow> = read_committed_rows(&scored_dir, "spice-score")?;
        rows.push(
            count(challenger, reasoner, &tasks, &scored)
                .with_context(|| format!("counting {}", cell.display()))?,
        );
    }
    Ok(rows)
}

/// `(challenger, reasoner, cell folder)` of every `challenger-C/reasoner-R` folder, sorted.
fn cells(root: &Path) -> Result<Vec<(u32, u32, PathBuf)>> {
    let mut out = Vec::new();
    if !root.is_dir() {
        return Ok(out);
    }
    let number = |p: &Path, prefix: &str| -> Option<u32> {
        p.file_name()?.to_str()?.strip_prefix(prefix)?.parse().ok()
    };
    for c in std::fs::read_dir(root).with_context(|| format!("listing {}", root.display()))? {
        let c = c?.path();
        let Some(ci) = number(&c, "challenger-") else { continue };
        for r in std::fs::read_dir(&c).with_context(|| format!("listing {}", c.display()))? {
            let r = r?.path();
            if let Some(ri) = number(&r, "reasoner-") {
                out.push((ci, ri, r));
            }
        }
    }
    out.sort();
    Ok(out)
}

fn count(
    challenger: u32,
    reasoner: u32,
    tasks: &[TaskRow],
    scored: &[ScoredRow],
) -> Result<CrossplayRow> {
    let share = |a: u64, b: u64| (b > 0).then(|| a as f64 / b as f64);
    let attempts = tasks.len() as u64;
    let valid_tasks = tasks.iter().filter(|t| t.valid).count() as u64;
    let mut documents: Vec<u32> = tasks.iter().map(|t| t.doc_slot).collect();
    documents.sort_unstable();
    documents.dedup();
    // Per answered task: (answers, correct).
    let mut per_task: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    let (mut reward_sum, mut kept) = (0.0f64, 0u64);
    for r in scored {
        if r.role == Role::Reasoner.as_str() {
            let e = per_task.entry(r.task_id.as_str()).or_default();
            e.0 += 1;
            e.1 += r.correct.unwrap_or(false) as u64;
        } else {
            reward_sum += r.reward as f64;
            kept += 1;
        }
    }
    let answers: u64 = per_task.values().map(|e| e.0).sum();
    let correct: u64 = per_task.values().map(|e| e.1).sum();
    let n_tasks = per_task.len() as u64;
    let (zero, one) = per_task
        .values()
        .fold((0u64, 0u64), |(z, o), &(n, c)| (z + (c == 0) as u64, o + (c == n) as u64));
    let interval = wilson(correct, answers, Z95);
    Ok(CrossplayRow {
        challenger,
        reasoner,
        documents: documents.len() as u64,
        attempts,
        valid_tasks,
        valid_task_rate: share(valid_tasks, attempts),
        answered_tasks: n_tasks,
        answers,
        correct,
        pass_rate: share(correct, answers),
        pass_rate_lo: interval.map(|i| i.0),
        pass_rate_hi: interval.map(|i| i.1),
        pass_rate_zero_share: share(zero, n_tasks),
        pass_rate_mid_share: share(n_tasks - zero - one, n_tasks),
        pass_rate_one_share: share(one, n_tasks),
        mean_challenger_reward: (kept > 0).then(|| reward_sum / kept as f64),
    })
}

/// The rows as CSV, one line per cell (empty cells for undefined numbers).
pub fn csv(rows: &[CrossplayRow]) -> String {
    let mut out = String::from(
        "challenger,reasoner,documents,attempts,valid_tasks,valid_task_rate,answered_tasks,\
         answers,correct,pass_rate,pass_rate_lo,pass_rate_hi,pass_rate_zero_share,\
         pass_rate_mid_share,pass_rate_one_share,mean_challenger_reward\n",
    );
    let f = |v: Option<f64>| v.map(|x| format!("{x}")).unwrap_or_default();
    for r in rows {
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
            r.challenger,
            r.reasoner,
            r.documents,
            r.attempts,
            r.valid_tasks,
            f(r.valid_task_rate),
            r.answered_tasks,
            r.answers,
            r.correct,
            f(r.pass_rate),
            f(r.pass_rate_lo),
            f(r.pass_rate_hi),
            f(r.pass_rate_zero_share),
            f(r.pass_rate_mid_share),
            f(r.pass_rate_one_share),
            f(r.mean_challenger_reward),
        ));
    }
    out
}

/// The two curves as text: the fixed Reasoner against each Challenger, and each Reasoner
/// against the fixed Challenger's tasks.
pub fn table(rows: &[CrossplayRow], fixed_reasoner: u32, fixed_challenger: u32) -> String {
    let pct = |v: Option<f64>| v.map(|x| format!("{:5.1}%", 100.0 * x)).unwrap_or("    -".into());
    let line = |r: &CrossplayRow| {
        format!(
            "{:>10} {:>8} {:>10} {:>7} {:>8}  [{}, {}] {:>8}\n",
            r.challenger,
            r.reasoner,
            pct(r.valid_task_rate),
            r.answers,
            pct(r.pass_rate),
            pct(r.pass_rate_lo),
            pct(r.pass_rate_hi),
            r.mean_challenger_reward.map(|x| format!("{x:.3}")).unwrap_or("-".into()),
        )
    };
    let header = format!(
        "{:>10} {:>8} {:>10} {:>7} {:>8}  {:<16} {:>8}\n",
        "challenger", "reasoner", "valid", "answers", "pass", "95% interval", "r_C"
    );
    let mut out = format!("fixed Reasoner (policy {fixed_reasoner}) x Challengers:\n{header}");
    for r in rows.iter().filter(|r| r.reasoner == fixed_reasoner) {
        out.push_str(&line(r));
    }
    out.push_str(&format!("\nfixed Challenger (policy {fixed_challenger}) x Reasoners:\n{header}"));
    for r in rows.iter().filter(|r| r.challenger == fixed_challenger) {
        out.push_str(&line(r));
    }
    out
}
