//! `spice-score`: `tasks/` + `rollouts/` + `challenger/` → `scored/` (METHOD.md steps
//! 5–8). Verifies every Reasoner answer, computes both roles' rewards and their group
//! advantages (Dr. GRPO: no std normalisation by default), and marks the training batch: every
//! selected Challenger attempt (T_C) and, per document, one valid task's answers (T_R).

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use anyhow::{anyhow, bail, Result};
use rayon::prelude::*;
use spice_reward::{
    challenger_reward, group_advantages, pass_rate, reasoner_reward, RewardParams, ScaleRewards,
};
use spice_schemas::config::RewardSection;
use spice_schemas::metrics::{mean, ratio, ScoreMetrics};
use spice_schemas::rows::{ChallengerRow, RolloutRow, ScoredRow, TaskRow};
use spice_schemas::vocab::Role;
use spice_schemas::{
    committed_files, read_committed, run_stage, Located, RowAt, ShardRow, ShardSpec, StageOutput,
};
use spice_stage::{derive_seed, StageCtx};
use spice_verify::{check_with_options, AnswerType, Check, TaskKind, MCQ_MAX_LETTER};
use tracing::{info, warn};

/// Stage name recorded in the manifest, and the stage name in T_R's seed.
pub const STAGE: &str = "verify-score";
const SEED_STAGE: &str = "score";

/// The reward settings of `[reward]`, parsed.
#[derive(Debug, Clone, Copy)]
pub struct Scoring {
    pub params: RewardParams,
    pub scale: ScaleRewards,
}

impl Scoring {
    pub fn from_config(r: &RewardSection) -> Scoring {
        Scoring {
            params: RewardParams {
                kind: r.challenger_reward,
                invalid_penalty: r.invalid_penalty,
                variance_target: r.variance_target,
                variance_width: r.variance_width,
            },
            scale: r.scale_rewards,
        }
    }
}

pub fn run(ctx: &StageCtx) -> Result<()> {
    let tasks_dir = ctx.folder(TaskRow::FOLDER);
    let rollouts_dir = ctx.folder(RolloutRow::FOLDER);
    let challenger_dir = ctx.folder(ChallengerRow::FOLDER);
    committed_files(&tasks_dir, "spice-filter")?;
    committed_files(&rollouts_dir, "spice-rollout")?;
    committed_files(&challenger_dir, "spice-challenge")?;
    let scoring = Scoring::from_config(&ctx.cfg.reward);
    let out = StageOutput::new(&ctx.folder(ScoredRow::FOLDER), STAGE, ctx.shard)
        .input("tasks", &tasks_dir)?
        .input("rollouts", &rollouts_dir)?
        .input("challenger", &challenger_dir)?
        .config(&ctx.cfg.reward)
        .seed(ctx.seed)
        .iteration(ctx.iter)
        .schema(ScoredRow::schema_id());
    let done = run_stage(out, ctx.force, |part| {
        let started = Instant::now();
        let docs = assemble(
            read_committed::<TaskRow>(&tasks_dir, "spice-filter")?,
            read_committed::<RolloutRow>(&rollouts_dir, "spice-rollout")?,
            read_committed::<ChallengerRow>(&challenger_dir, "spice-challenge")?,
            &rollouts_dir,
            ctx.iter,
            ctx.shard,
        )?;
        let verify_started = Instant::now();
        let verdicts = verify(&docs);
        let verify_seconds = verify_started.elapsed().as_secs_f64();
        let k = ctx.cfg.reasoner.num_generations as usize;
        let (rows, metrics) = score(&docs, &verdicts, &scoring, ctx.seed, ctx.iter, k);
        part.begin()?.write_all(rows)?;
        Ok(ScoreMetrics { verify_seconds, seconds: started.elapsed().as_secs_f64(), ..metrics })
    })?;
    if let Some((_, m)) = done {
        let nan = f64::NAN;
        info!(
            tasks = m.tasks,
            mean_pass_rate = m.mean_pass_rate.unwrap_or(nan),
            reasoner_accuracy = m.reasoner_accuracy.unwrap_or(nan),
            mean_challenger_reward = m.mean_challenger_reward.unwrap_or(nan),
            "wrote {}",
            ctx.folder(ScoredRow::FOLDER).display()
        );
    }
    Ok(())
}

/// One task of this part, with what scoring needs from the other folders.
struct Entry {
    task: Located<TaskRow>,
    /// Parsed `task_kind` / `answer_type` (valid tasks only).
    kind: TaskKind,
    answer_type: Option<AnswerType>,
    /// The Reasoner's answers, ordered by `sample`.
    rollouts: Vec<Located<RolloutRow>>,
    /// The Challenger attempt the task came from (selected tasks only: T_C needs its tokens).
    attempt: Option<Located<ChallengerRow>>,
}

/// This part's tasks by document (`doc_slot % N == I`), each document's tasks in attempt
/// order, after every consistency check between the three folders.
fn assemble(
    tasks: Vec<Located<TaskRow>>,
    rollouts: Vec<Located<RolloutRow>>,
    attempts: Vec<Located<ChallengerRow>>,
    rollouts_dir: &Path,
    iteration: u32,
    shard: ShardSpec,
) -> Result<Vec<Vec<Entry>>> {
    let (all, mut entries) = own_tasks(tasks, iteration, shard)?;
    attach_rollouts(&mut entries, &all, rollouts, iteration)?;
    attach_attempts(&mut entries, attempts, rollouts_dir, iteration, shard)?;
    Ok(group_by_document(entries))
}

fn wrong_iteration(at: &RowAt, found: u32, iteration: u32) -> anyhow::Error {
    anyhow!("{at}: field `iteration` is {found}, but this is iteration {iteration}")
}

/// Every task id of every part, with its document slot and location.
type AllTasks = HashMap<String, (u32, RowAt)>;

/// Every task id of every part, and this part's tasks in (document, attempt) order.
fn own_tasks(
    tasks: Vec<Located<TaskRow>>,
    iteration: u32,
    shard: ShardSpec,
) -> Result<(AllTasks, Vec<Entry>)> {
    // Every task id of every part, so a rollout of an unknown task is told from one of a task
    // another part scores.
    let mut all: AllTasks = HashMap::new();
    let mut entries: Vec<Entry> = Vec::new();
    for t in tasks {
        if t.value.iteration != iteration {
            return Err(wrong_iteration(&t.at, t.value.iteration, iteration));
        }
        if let Some((_, first)) = all.get(&t.value.task_id) {
            bail!("{} and {first}: task id {} appears twice", t.at, t.value.task_id);
        }
        all.insert(t.value.task_id.clone(), (t.value.doc_slot, t.at.clone()));
        if !shard.owns(t.value.doc_slot as usize) {
            continue;
        }
        let (kind, answer_type) =
            if t.value.valid { parse_kind(&t)? } else { (TaskKind::Any, None) };
        entries.push(Entry { task: t, kind, answer_type, rollouts: Vec::new(), attempt: None });
    }
    entries.sort_by_key(|e| (e.task.value.doc_slot, e.task.value.attempt));

    Ok((all, entries))
}

/// Each answer to its task, after checking it belongs to this iteration and document.
fn attach_rollouts(
    entries: &mut [Entry],
    all: &AllTasks,
    rollouts: Vec<Located<RolloutRow>>,
    iteration: u32,
) -> Result<()> {
    let index: HashMap<String, usize> =
        entries.iter().enumerate().map(|(i, e)| (e.task.value.task_id.clone(), i)).collect();
    for r in rollouts {
        let id = &r.value.task_id;
        let Some((doc_slot, _)) = all.get(id) else {
            bail!(
                "{}: rollout of task {id}, which is not in tasks/ (were the rollouts made from \
                 another filter run? rerun spice-rollout for this iteration)",
                r.at
            );
        };
        if r.value.iteration != iteration {
            return Err(wrong_iteration(&r.at, r.value.iteration, iteration));
        }
        if r.value.doc_slot != *doc_slot {
            bail!(
                "{}: field `doc_slot` is {}, but task {id} is from document slot {doc_slot}",
                r.at,
                r.value.doc_slot
            );
        }
        let Some(&i) = index.get(id) else { continue };
        if !entries[i].task.value.valid {
            bail!("{}: rollout of task {id}, which is invalid ({})", r.at, entries[i].task.at);
        }
        entries[i].rollouts.push(r);
    }

    Ok(())
}

/// Each selected task's Challenger attempt; every selected attempt must have its task, and
/// every valid selected task its answers.
fn attach_attempts(
    entries: &mut [Entry],
    attempts: Vec<Located<ChallengerRow>>,
    rollouts_dir: &Path,
    iteration: u32,
    shard: ShardSpec,
) -> Result<()> {
    let mut by_attempt: HashMap<(u32, u32), Located<ChallengerRow>> = HashMap::new();
    for a in attempts {
        if a.value.iteration != iteration {
            return Err(wrong_iteration(&a.at, a.value.iteration, iteration));
        }
        if shard.owns(a.value.doc_slot as usize) && a.value.selected {
            by_attempt.insert((a.value.doc_slot, a.value.attempt), a);
        }
    }

    for e in entries.iter_mut() {
        let t = &e.task.value;
        e.rollouts.sort_by_key(|r| r.value.sample);
        if let Some(pair) = e.rollouts.windows(2).find(|p| p[0].value.sample == p[1].value.sample) {
            bail!(
                "{} and {}: answer {} of task {} appears twice",
                pair[0].at,
                pair[1].at,
                pair[0].value.sample,
                t.task_id
            );
        }
        if t.valid && t.selected && e.rollouts.is_empty() {
            bail!(
                "task {} ({}) is valid and selected, but {} has no answers for it (rerun \
                 spice-rollout for this iteration)",
                t.task_id,
                e.task.at,
                rollouts_dir.display()
            );
        }
        if t.selected {
            e.attempt = by_attempt.remove(&(t.doc_slot, t.attempt));
            if e.attempt.is_none() {
                bail!(
                    "task {} ({}) is selected, but challenger/ has no selected attempt {} of \
                     document slot {} (were the tasks filtered from another challenger run? rerun \
                     spice-filter)",
                    t.task_id,
                    e.task.at,
                    t.attempt,
                    t.doc_slot
                );
            }
        }
    }
    if let Some(a) = by_attempt.values().next() {
        bail!(
            "{}: selected attempt {} of document slot {} has no selected task in tasks/ (rerun \
             spice-filter for this iteration)",
            a.at,
            a.value.attempt,
            a.value.doc_slot
        );
    }

    Ok(())
}

/// Consecutive entries of one document together.
fn group_by_document(entries: Vec<Entry>) -> Vec<Vec<Entry>> {
    let mut docs: Vec<Vec<Entry>> = Vec::new();
    for e in entries {
        match docs.last_mut() {
            Some(doc) if doc[0].task.value.doc_slot == e.task.value.doc_slot => doc.push(e),
            _ => docs.push(vec![e]),
        }
    }
    docs
}

/// `task_kind` and `answer_type` of a valid task row.
fn parse_kind(t: &Located<TaskRow>) -> Result<(TaskKind, Option<AnswerType>)> {
    let kind = match t.value.task_kind.parse() {
        Ok(k @ (TaskKind::Mcq | TaskKind::FreeForm)) => k,
        _ => bail!(
            "{}: field `task_kind` of valid task {} is {:?}, expected mcq or free_form",
            t.at,
            t.value.task_id,
            t.value.task_kind
        ),
    };
    let answer_type = match (&t.value.answer_type, kind) {
        (Some(a), TaskKind::FreeForm) => Some(a.parse().map_err(|_| {
            anyhow!("{}: field `answer_type` of task {} is {a:?}", t.at, t.value.task_id)
        })?),
        _ => None,
    };
    if t.value.answer.as_deref().is_none_or(|a| a.trim().is_empty()) {
        bail!("{}: valid task {} has no gold answer (field `answer`)", t.at, t.value.task_id);
    }
    Ok((kind, answer_type))
}

/// Every answer's verdict, `[document][task][answer]`, in parallel over tasks.
fn verify(docs: &[Vec<Entry>]) -> Vec<Vec<Vec<Check>>> {
    let total: usize = docs.iter().flatten().map(|e| e.rollouts.len()).sum();
    let pb = spice_stage::progress(total as u64, "score", "answers");
    let flat: Vec<&Entry> = docs.iter().flatten().collect();
    let checks: Vec<Vec<Check>> = flat
        .par_iter()
        .map(|e| {
            let gold = e.task.value.answer.as_deref().unwrap_or_default();
            let v: Vec<Check> = e
                .rollouts
                .iter()
                .map(|r| {
                    // The options' texts let an answer that names its option by text count.
                    let options = &e.task.value.options;
                    check_with_options(
                        gold,
                        &r.value.completion,
                        e.kind,
                        e.answer_type,
                        MCQ_MAX_LETTER,
                        options,
                    )
                })
                .collect();
            pb.inc(v.len() as u64);
            v
        })
        .collect();
    pb.finish();
    let mut it = checks.into_iter();
    docs.iter().map(|d| d.iter().map(|_| it.next().unwrap_or_default()).collect()).collect()
}

/// The training batch's one task of a document (T_R): uniform among its valid selected tasks,
/// from a seed of (run seed, iteration, document), so reruns pick the same one. `candidates`
/// are in attempt order.
fn pick_for_reasoner(
    candidates: &[usize],
    run_seed: u64,
    iteration: u32,
    doc_slot: u32,
) -> Option<usize> {
    if candidates.is_empty() {
        return None;
    }
    let s = derive_seed(run_seed, iteration, SEED_STAGE, doc_slot as u64);
    // The modulo bias is below len / 2^64.
    Some(candidates[(s % candidates.len() as u64) as usize])
}

/// Running sums for the manifest.
#[derive(Default)]
struct Tally {
    documents: usize,
    documents_in_t_r: usize,
    tasks: usize,
    valid: usize,
    selected: usize,
    selected_valid: usize,
    pass_rates: Vec<f64>,
    off_k: usize,
    answers: usize,
    correct: usize,
    extracted: usize,
    challenger_rewards: Vec<f64>,
    challenger_advantages: Vec<f64>,
    reasoner_advantages: Vec<f64>,
    reasoner_in_batch_correct: usize,
}

fn score(
    docs: &[Vec<Entry>],
    verdicts: &[Vec<Vec<Check>>],
    scoring: &Scoring,
    run_seed: u64,
    iteration: u32,
    k: usize,
) -> (Vec<ScoredRow>, ScoreMetrics) {
    let mut rows = Vec::new();
    let mut n = Tally::default();
    for (doc, checks) in docs.iter().zip(verdicts) {
        let doc_slot = doc[0].task.value.doc_slot;
        n.documents += 1;
        let p_hats: Vec<Option<f64>> = checks
            .iter()
            .map(|c| pass_rate(&c.iter().map(|c| c.equivalent).collect::<Vec<_>>()))
            .collect();
        let candidates: Vec<usize> = (0..doc.len())
            .filter(|&i| {
                let t = &doc[i].task.value;
                t.valid && t.selected && !doc[i].rollouts.is_empty()
            })
            .collect();
        let chosen = pick_for_reasoner(&candidates, run_seed, iteration, doc_slot);
        n.documents_in_t_r += chosen.is_some() as usize;
        challenger_group(doc, &p_hats, scoring, iteration, &mut rows, &mut n);
        for (i, e) in doc.iter().enumerate() {
            let in_batch = chosen == Some(i);
            let group = ReasonerGroup { entry: e, checks: &checks[i], p_hat: p_hats[i], in_batch };
            group.score(scoring, iteration, k, &mut rows, &mut n);
        }
    }
    if n.off_k > 0 {
        warn!(
            "{} tasks have a number of answers other than reasoner.num_generations = {k}",
            n.off_k
        );
    }
    (rows, n.metrics())
}

/// T_C of one document: every selected attempt, one group, rewarded by its task's pass rate
/// (METHOD.md, Challenger reward).
fn challenger_group(
    doc: &[Entry],
    p_hats: &[Option<f64>],
    scoring: &Scoring,
    iteration: u32,
    rows: &mut Vec<ScoredRow>,
    n: &mut Tally,
) {
    let selected: Vec<usize> = (0..doc.len()).filter(|&i| doc[i].task.value.selected).collect();
    let r_c: Vec<f64> = selected
        .iter()
        .map(|&i| challenger_reward(p_hats[i].filter(|_| doc[i].task.value.valid), &scoring.params))
        .collect();
    let a_c = group_advantages(&r_c, scoring.scale);
    for ((&i, &r), &a) in selected.iter().zip(&r_c).zip(&a_c) {
        let t = &doc[i].task.value;
        let c = &doc[i].attempt.as_ref().expect("assemble found every selected attempt").value;
        n.challenger_rewards.push(r);
        n.challenger_advantages.push(a);
        rows.push(ScoredRow {
            iteration,
            role: Role::Challenger.as_str().into(),
            group_id: format!("d{:03}", t.doc_slot),
            task_id: t.task_id.clone(),
            doc_slot: t.doc_slot,
            sample: t.attempt,
            in_batch: true,
            valid: t.valid,
            extracted: None,
            correct: None,
            pass_rate: p_hats[i].filter(|_| t.valid).map(|p| p as f32),
            reward: r as f32,
            advantage: a as f32,
            prompt_ids: c.prompt_ids.clone(),
            completion_ids: c.completion_ids.clone(),
            logprobs: c.logprobs.clone(),
            finish_reason: c.finish_reason.clone(),
            policy_id: c.policy_id.clone(),
        });
    }
}

/// One task's Reasoner answers: a group of their own; in T_R only for the task chosen for
/// the document.
struct ReasonerGroup<'a> {
    entry: &'a Entry,
    checks: &'a [Check],
    p_hat: Option<f64>,
    in_batch: bool,
}

impl ReasonerGroup<'_> {
    fn score(
        &self,
        scoring: &Scoring,
        iteration: u32,
        k: usize,
        rows: &mut Vec<ScoredRow>,
        n: &mut Tally,
    ) {
        let t = &self.entry.task.value;
        n.tasks += 1;
        n.valid += t.valid as usize;
        n.selected += t.selected as usize;
        n.selected_valid += (t.selected && t.valid) as usize;
        let answers = &self.entry.rollouts;
        if answers.is_empty() {
            return;
        }
        let p_hat = self.p_hat.expect("a task with answers has a pass rate");
        n.pass_rates.push(p_hat);
        n.off_k += (answers.len() != k) as usize;
        let r_r: Vec<f64> = self.checks.iter().map(|c| reasoner_reward(c.equivalent)).collect();
        let a_r = group_advantages(&r_r, scoring.scale);
        for ((r, c), (&reward, &a)) in answers.iter().zip(self.checks).zip(r_r.iter().zip(&a_r)) {
            n.answers += 1;
            n.correct += c.equivalent as usize;
            n.extracted += c.extracted.is_some() as usize;
            if self.in_batch {
                n.reasoner_advantages.push(a);
                n.reasoner_in_batch_correct += c.equivalent as usize;
            }
            let r = &r.value;
            rows.push(ScoredRow {
                iteration,
                role: Role::Reasoner.as_str().into(),
                group_id: t.task_id.clone(),
                task_id: t.task_id.clone(),
                doc_slot: t.doc_slot,
                sample: r.sample,
                in_batch: self.in_batch,
                valid: true,
                extracted: c.extracted.clone(),
                correct: Some(c.equivalent),
                pass_rate: Some(p_hat as f32),
                reward: reward as f32,
                advantage: a as f32,
                prompt_ids: r.prompt_ids.clone(),
                completion_ids: r.completion_ids.clone(),
                logprobs: r.logprobs.clone(),
                finish_reason: r.finish_reason.clone(),
                policy_id: r.policy_id.clone(),
            });
        }
    }
}

impl Tally {
    fn metrics(&self) -> ScoreMetrics {
        let share = |f: &dyn Fn(f64) -> bool| {
            ratio(self.pass_rates.iter().filter(|p| f(**p)).count(), self.pass_rates.len())
        };
        let in_batch_answers = self.reasoner_advantages.len();
        ScoreMetrics {
            documents: self.documents as u64,
            tasks: self.tasks as u64,
            valid_tasks: self.valid as u64,
            selected_tasks: self.selected as u64,
            selected_valid_tasks: self.selected_valid as u64,
            answered_tasks: self.pass_rates.len() as u64,
            tasks_with_other_than_k_answers: self.off_k as u64,
            answers: self.answers as u64,
            mean_pass_rate: mean(&self.pass_rates),
            pass_rate_zero_share: share(&|p| p <= 0.0),
            pass_rate_mid_share: share(&|p| p > 0.0 && p < 1.0),
            pass_rate_one_share: share(&|p| p >= 1.0),
            reasoner_accuracy: ratio(self.correct, self.answers),
            reasoner_accuracy_in_batch: ratio(self.reasoner_in_batch_correct, in_batch_answers),
            answer_extracted_rate: ratio(self.extracted, self.answers),
            mean_challenger_reward: mean(&self.challenger_rewards),
            mean_advantage_challenger: mean(&self.challenger_advantages),
            mean_advantage_reasoner: mean(&self.reasoner_advantages),
            in_batch_challenger: self.challenger_rewards.len() as u64,
            in_batch_reasoner: in_batch_answers as u64,
            documents_in_reasoner_batch: self.documents_in_t_r as u64,
            verify_seconds: 0.0,
            seconds: 0.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t_r_choice_is_uniform_and_repeatable() {
        let candidates = [3usize, 5, 9];
        let mut counts = [0usize; 3];
        for doc in 0..3000u32 {
            let pick = pick_for_reasoner(&candidates, 1234, 2, doc).unwrap();
            assert_eq!(Some(pick), pick_for_reasoner(&candidates, 1234, 2, doc));
            counts[candidates.iter().position(|&c| c == pick).unwrap()] += 1;
        }
        for c in counts {
            assert!((900..1100).contains(&c), "{counts:?} is not uniform over 3 candidates");
        }
        assert_eq!(pick_for_reasoner(&[], 1, 0, 0), None);
    }
}
