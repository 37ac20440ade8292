//! The numbers that come from the rows of the shards, one Polars query per folder, grouped by
//! iteration. README.md defines each number; the query here is that definition.

use std::collections::{BTreeMap, HashMap};

use anyhow::{Context, Result};
use polars::prelude::*;
use spice_schemas::{
    layout::RunLayout,
    rows::{ChallengerRow, EvalRow, RolloutRow, ScoredRow, TaskRow, UpdateMetricsRow},
    ShardRow,
};

use spice_schemas::vocab::Role;

use crate::diversity::Diversity;
use crate::interval::{wilson, Z95};
use crate::numbers::IterationReport;
use crate::shards::{Shards, ITER};

/// Fill `reports` (one per iteration, in `iterations` order) from the shards of the run.
pub fn fill(
    layout: &RunLayout,
    iterations: &[u32],
    reports: &mut BTreeMap<u32, IterationReport>,
) -> Result<()> {
    challenger(
        &Shards::find::<ChallengerRow>(layout, iterations, ChallengerRow::FOLDER)?,
        reports,
    )?;
    tasks(&Shards::find::<TaskRow>(layout, iterations, TaskRow::FOLDER)?, reports)?;
    rollouts(&Shards::find::<RolloutRow>(layout, iterations, RolloutRow::FOLDER)?, reports)?;
    scored(&Shards::find::<ScoredRow>(layout, iterations, ScoredRow::FOLDER)?, reports)?;
    update(
        &Shards::find::<UpdateMetricsRow>(layout, iterations, UpdateMetricsRow::FOLDER)?,
        reports,
    )?;
    let before = Shards::find::<EvalRow>(layout, iterations, "eval")?;
    let after = Shards::find::<EvalRow>(layout, iterations, "eval-checkpoint")?;
    for (shards, after) in [(before, false), (after, true)] {
        for Accuracy { iter, benchmark, correct, answers } in eval(&shards)? {
            let r = report(reports, iter);
            let (acc, n, lo, hi) = if after {
                (
                    &mut r.eval_after,
                    &mut r.eval_after_answers,
                    &mut r.eval_after_lo,
                    &mut r.eval_after_hi,
                )
            } else {
                (
                    &mut r.eval_before,
                    &mut r.eval_before_answers,
                    &mut r.eval_before_lo,
                    &mut r.eval_before_hi,
                )
            };
            if answers == 0 {
                continue;
            }
            acc.insert(benchmark.clone(), correct as f64 / answers as f64);
            n.insert(benchmark.clone(), answers);
            if let Some((l, h)) = wilson(correct, answers, Z95) {
                lo.insert(benchmark.clone(), l);
                hi.insert(benchmark, h);
            }
        }
    }
    Ok(())
}

/// The 95% Wilson interval of `successes` out of `n`, as two cells.
fn interval(successes: Option<u64>, n: Option<u64>) -> (Option<f64>, Option<f64>) {
    match successes.zip(n).and_then(|(k, n)| wilson(k, n, Z95)) {
        Some((lo, hi)) => (Some(lo), Some(hi)),
        None => (None, None),
    }
}

fn report(reports: &mut BTreeMap<u32, IterationReport>, it: u32) -> &mut IterationReport {
    reports.entry(it).or_insert_with(|| IterationReport { iteration: it, ..Default::default() })
}

/// Counts of a committed folder are 0, not empty, in an iteration that has no rows.
fn zero_counts(
    shards: &Shards,
    reports: &mut BTreeMap<u32, IterationReport>,
    set: impl Fn(&mut IterationReport),
) {
    for &it in &shards.complete {
        set(report(reports, it));
    }
}

fn challenger(s: &Shards, reports: &mut BTreeMap<u32, IterationReport>) -> Result<()> {
    zero_counts(s, reports, |r| {
        r.documents = Some(0);
        r.attempts = Some(0);
    });
    let df = s.collect(&["doc_slot", "completion_ids"], |lf| {
        lf.group_by([col(ITER)]).agg([
            col("doc_slot").n_unique().alias("documents"),
            len().alias("attempts"),
            col("completion_ids").list().len().cast(DataType::Float64).mean().alias("tokens"),
        ])
    })?;
    for row in ByIter::of(df)? {
        let r = report(reports, row.iter);
        r.documents = row.u64("documents")?;
        r.attempts = row.u64("attempts")?;
        r.challenger_completion_tokens = row.f64("tokens")?;
    }
    Ok(())
}

fn tasks(s: &Shards, reports: &mut BTreeMap<u32, IterationReport>) -> Result<()> {
    zero_counts(s, reports, |r| {
        (r.valid_tasks, r.mcq_attempts, r.mcq_valid) = (Some(0), Some(0), Some(0));
        (r.free_form_attempts, r.free_form_valid, r.distinct_questions) =
            (Some(0), Some(0), Some(0));
    });
    let cols = ["valid", "task_kind", "invalid_reason", "question"];
    let count = |e: Expr| e.cast(DataType::UInt64).sum();
    let kind = |k: &str| col("task_kind").eq(lit(k.to_string()));
    let df = s.collect(&cols, |lf| {
        lf.group_by([col(ITER)]).agg([
            count(col("valid")).alias("valid"),
            col("valid").count().cast(DataType::UInt64).alias("rows"),
            col("valid").cast(DataType::Float64).mean().alias("valid_rate"),
            count(kind("mcq")).alias("mcq"),
            count(kind("mcq").and(col("valid"))).alias("mcq_valid"),
            count(kind("free_form")).alias("free_form"),
            count(kind("free_form").and(col("valid"))).alias("free_form_valid"),
        ])
    })?;
    for row in ByIter::of(df)? {
        let r = report(reports, row.iter);
        r.valid_tasks = row.u64("valid")?;
        r.valid_task_rate = row.f64("valid_rate")?;
        (r.valid_task_rate_lo, r.valid_task_rate_hi) =
            interval(row.u64("valid")?, row.u64("rows")?);
        r.mcq_attempts = row.u64("mcq")?;
        r.mcq_valid = row.u64("mcq_valid")?;
        r.free_form_attempts = row.u64("free_form")?;
        r.free_form_valid = row.u64("free_form_valid")?;
    }
    let reasons = s.collect(&cols, |lf| {
        lf.filter(col("valid").not())
            .group_by([col(ITER), col("invalid_reason").fill_null(lit("(none)")).alias("reason")])
            .agg([len().cast(DataType::UInt64).alias("n")])
    })?;
    if let Some(df) = reasons {
        let (its, names, ns) = (u32s(&df, ITER)?, strs(&df, "reason")?, u64s(&df, "n")?);
        for ((it, name), n) in its.into_iter().zip(names).zip(ns) {
            report(reports, it).invalid_reasons.insert(name.unwrap_or_default(), n.unwrap_or(0));
        }
    }
    // Question diversity over the valid tasks, whose question the verifier requires.
    let questions =
        s.collect(&cols, |lf| lf.filter(col("valid")).select([col(ITER), col("question")]))?;
    if let Some(df) = questions {
        let mut by_iter: BTreeMap<u32, Vec<String>> = BTreeMap::new();
        for (it, q) in u32s(&df, ITER)?.into_iter().zip(strs(&df, "question")?) {
            by_iter.entry(it).or_default().push(q.unwrap_or_default());
        }
        for (it, qs) in by_iter {
            let d = Diversity::of(&qs);
            let r = report(reports, it);
            r.distinct_questions = Some(d.distinct);
            r.question_overlap = d.overlap;
        }
    }
    Ok(())
}

fn rollouts(s: &Shards, reports: &mut BTreeMap<u32, IterationReport>) -> Result<()> {
    let df = s.collect(&["completion_ids"], |lf| {
        lf.group_by([col(ITER)]).agg([col("completion_ids")
            .list()
            .len()
            .cast(DataType::Float64)
            .mean()
            .alias("tokens")])
    })?;
    for row in ByIter::of(df)? {
        report(reports, row.iter).reasoner_completion_tokens = row.f64("tokens")?;
    }
    Ok(())
}

fn scored(s: &Shards, reports: &mut BTreeMap<u32, IterationReport>) -> Result<()> {
    zero_counts(s, reports, |r| {
        r.answered_tasks = Some(0);
        r.reasoner_answers = Some(0);
        r.challenger_groups = Some(0);
        r.reasoner_groups = Some(0);
    });
    let cols = ["role", "group_id", "task_id", "in_batch", "correct", "reward", "advantage"];
    let reasoner = || col("role").eq(lit(Role::Reasoner.as_str()));
    let answers = s.collect(&cols, |lf| {
        lf.filter(reasoner()).group_by([col(ITER)]).agg([
            len().alias("answers"),
            col("correct").cast(DataType::Float64).mean().alias("accuracy"),
            // The interval is over the answers with a verdict, as the mean is.
            col("correct").cast(DataType::UInt64).sum().alias("correct"),
            col("correct").count().cast(DataType::UInt64).alias("judged"),
        ])
    })?;
    for row in ByIter::of(answers)? {
        let r = report(reports, row.iter);
        r.reasoner_answers = row.u64("answers")?;
        r.reasoner_accuracy = row.f64("accuracy")?;
        (r.reasoner_accuracy_lo, r.reasoner_accuracy_hi) =
            interval(row.u64("correct")?, row.u64("judged")?);
    }
    // Advantage groups of the training batch: a group has no learning signal when none of its
    // in-batch advantages differs from 0 (a NaN differs).
    let groups = s.collect(&cols, |lf| {
        lf.filter(col("in_batch"))
            .group_by([col(ITER), col("role"), col("group_id")])
            .agg([col("advantage")
                .neq(lit(0.0))
                .cast(DataType::UInt64)
                .sum()
                .eq(lit(0u64))
                .alias("zero")])
            .group_by([col(ITER), col("role")])
            .agg([
                len().cast(DataType::UInt64).alias("groups"),
                col("zero").cast(DataType::Float64).mean().alias("share"),
            ])
    })?;
    if let Some(df) = groups {
        let (its, roles) = (u32s(&df, ITER)?, strs(&df, "role")?);
        let (ns, shares) = (u64s(&df, "groups")?, f64s(&df, "share")?);
        for (((it, role), n), share) in its.into_iter().zip(roles).zip(ns).zip(shares) {
            let r = report(reports, it);
            match role.as_deref() {
                Some(role) if role == Role::Challenger.as_str() => {
                    (r.challenger_groups, r.challenger_zero_advantage_share) = (n, share);
                }
                Some(role) if role == Role::Reasoner.as_str() => {
                    (r.reasoner_groups, r.reasoner_zero_advantage_share) = (n, share);
                }
                _ => {}
            }
        }
    }
    // p̂ of a task: the share of its Reasoner answers judged correct.
    let per_task = |lf: LazyFrame| {
        lf.filter(reasoner())
            .group_by([col(ITER), col("task_id")])
            .agg([col("correct").cast(DataType::Float64).mean().alias("p"), len().alias("k")])
    };
    let shares = s.collect(&cols, |lf| {
        let p = || col("p");
        let share = |e: Expr| e.cast(DataType::Float64).mean();
        per_task(lf).group_by([col(ITER)]).agg([
            len().alias("tasks"),
            p().mean().alias("mean"),
            share(p().eq(lit(0.0))).alias("zero"),
            share(p().gt(lit(0.0)).and(p().lt(lit(1.0)))).alias("mid"),
            share(p().eq(lit(1.0))).alias("one"),
        ])
    })?;
    for row in ByIter::of(shares)? {
        let r = report(reports, row.iter);
        r.answered_tasks = row.u64("tasks")?;
        r.mean_pass_rate = row.f64("mean")?;
        r.pass_rate_zero_share = row.f64("zero")?;
        r.pass_rate_mid_share = row.f64("mid")?;
        r.pass_rate_one_share = row.f64("one")?;
    }
    if let Some(df) =
        s.collect(&cols, |lf| per_task(lf).sort([ITER, "task_id"], Default::default()))?
    {
        for ((it, p), k) in u32s(&df, ITER)?.into_iter().zip(f64s(&df, "p")?).zip(u64s(&df, "k")?) {
            let r = report(reports, it);
            r.pass_rates.extend(p);
            r.answers_per_task = r.answers_per_task.max(k);
        }
    }
    let r_c = s.collect(&cols, |lf| {
        lf.filter(col("role").eq(lit(Role::Challenger.as_str())).and(col("in_batch")))
            .group_by([col(ITER)])
            .agg([col("reward").cast(DataType::Float64).mean().alias("r_c")])
    })?;
    for row in ByIter::of(r_c)? {
        report(reports, row.iter).mean_challenger_reward = row.f64("r_c")?;
    }
    Ok(())
}

fn update(s: &Shards, reports: &mut BTreeMap<u32, IterationReport>) -> Result<()> {
    zero_counts(s, reports, |r| r.update_steps = Some(0));
    let cols = ["epoch", "step", "loss", "grad_norm", "peak_rss_mib"];
    let df = s.collect(&cols, |lf| {
        lf.group_by([col(ITER)]).agg([
            len().alias("steps"),
            col("loss").mean().alias("loss"),
            col("grad_norm")
                .sort_by([col("epoch"), col("step")], SortMultipleOptions::default())
                .last()
                .alias("grad_norm"),
            col("peak_rss_mib").max().alias("rss"),
        ])
    })?;
    for row in ByIter::of(df)? {
        let r = report(reports, row.iter);
        r.update_steps = row.u64("steps")?;
        r.loss = row.f64("loss")?;
        r.grad_norm = row.f64("grad_norm")?;
        r.update_peak_rss_mib = row.f64("rss")?;
    }
    Ok(())
}

/// Answers of one benchmark in one iteration's `eval/` or `eval-checkpoint/`, and how many
/// were judged correct: the accuracy spice-eval reports is `correct / answers`.
struct Accuracy {
    iter: u32,
    benchmark: String,
    correct: u64,
    answers: u64,
}

fn eval(s: &Shards) -> Result<Vec<Accuracy>> {
    let Some(df) = s.collect(&["benchmark", "correct"], |lf| {
        lf.group_by([col(ITER), col("benchmark")]).agg([
            col("correct").cast(DataType::UInt64).sum().alias("correct"),
            len().cast(DataType::UInt64).alias("answers"),
        ])
    })?
    else {
        return Ok(Vec::new());
    };
    let (its, benches) = (u32s(&df, ITER)?, strs(&df, "benchmark")?);
    let (correct, answers) = (u64s(&df, "correct")?, u64s(&df, "answers")?);
    Ok(its
        .into_iter()
        .zip(benches)
        .zip(correct.into_iter().zip(answers))
        .filter_map(|((iter, benchmark), (k, n))| {
            Some(Accuracy { iter, benchmark: benchmark?, correct: k.unwrap_or(0), answers: n? })
        })
        .collect())
}

/// One row of a frame grouped by [`ITER`].
struct ByIter {
    iter: u32,
    values: HashMap<String, AnyValue<'static>>,
}

impl ByIter {
    fn of(df: Option<DataFrame>) -> Result<Vec<ByIter>> {
        let Some(df) = df else {
            return Ok(Vec::new());
        };
        let its = u32s(&df, ITER)?;
        let mut rows = Vec::with_capacity(its.len());
        for (i, it) in its.into_iter().enumerate() {
            let mut values = HashMap::new();
            for c in df.columns() {
                values.insert(c.name().to_string(), c.get(i)?.into_static());
            }
            rows.push(ByIter { iter: it, values });
        }
        Ok(rows)
    }

    fn f64(&self, name: &str) -> Result<Option<f64>> {
        let v = self
            .values
            .get(name)
            .with_context(|| format!("no column `{name}` in the aggregate"))?;
        Ok(if v.is_null() { None } else { v.extract::<f64>() })
    }

    fn u64(&self, name: &str) -> Result<Option<u64>> {
        let v = self
            .values
            .get(name)
            .with_context(|| format!("no column `{name}` in the aggregate"))?;
        Ok(if v.is_null() { None } else { v.extract::<u64>() })
    }
}

fn u32s(df: &DataFrame, name: &str) -> Result<Vec<u32>> {
    Ok(df.column(name)?.u32()?.iter().map(|v| v.unwrap_or_default()).collect())
}

fn u64s(df: &DataFrame, name: &str) -> Result<Vec<Option<u64>>> {
    Ok(df.column(name)?.cast(&DataType::UInt64)?.u64()?.iter().collect())
}

fn f64s(df: &DataFrame, name: &str) -> Result<Vec<Option<f64>>> {
    Ok(df.column(name)?.cast(&DataType::Float64)?.f64()?.iter().collect())
}

fn strs(df: &DataFrame, name: &str) -> Result<Vec<Option<String>>> {
    Ok(df.column(name)?.str()?.iter().map(|s| s.map(str::to_string)).collect())
}
