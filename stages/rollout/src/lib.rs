//! The Reasoner stage (METHOD.md, step 4): K answers for each valid task the Challenger kept
//! for training, from a prompt that shows the question (and options) but never the document.
//!
//! Each answer's seed comes from (run seed, iteration, task id, answer number), so a task's
//! answers do not depend on which shard or batch produced them.

use anyhow::{Context, Result};
use serde::Serialize;
use spice_lm::GenRequest;
use spice_policy::{sampling, StagePolicy};
use spice_prompt::Prompts;
use spice_schemas::{
    config::ReasonerSection,
    metrics::RolloutMetrics,
    read_committed_rows,
    rows::{RolloutRow, TaskRow},
    run_stage, ShardRow, StageOutput,
};
use spice_stage::{derive_seed, StageCtx};
use spice_verify::TaskKind;

#[derive(Serialize)]
struct StageConfig<'a> {
    reasoner: &'a ReasonerSection,
    dtype: &'a str,
    prompts: String,
    /// Recorded only when off (`run.batch_invariant = false`), so runs from before the switch
    /// keep their config digest.
    #[serde(skip_serializing_if = "is_true")]
    batch_invariant: bool,
}

fn is_true(b: &bool) -> bool {
    *b
}

/// The tasks the Reasoner answers: valid, among the Challenger's kept trajectories, in task
/// id order (each shard part takes every N-th).
pub fn tasks_to_answer(tasks: Vec<TaskRow>) -> Vec<TaskRow> {
    let mut t: Vec<TaskRow> = tasks.into_iter().filter(|t| t.valid && t.selected).collect();
    t.sort_by(|a, b| a.task_id.cmp(&b.task_id));
    t
}

/// Seed of answer `k` to task `task_id`.
pub fn answer_seed(run_seed: u64, iter: u32, task_id: &str, k: u32) -> u64 {
    derive_seed(run_seed, iter, &format!("rollout/{task_id}"), k as u64)
}

pub fn run(ctx: &StageCtx) -> Result<()> {
    let rs = &ctx.cfg.reasoner;
    let tasks_dir = ctx.folder(TaskRow::FOLDER);
    let policy_dir = ctx.reasoner_policy_dir()?;
    let prompts = Prompts::locate(Some(&ctx.layout.root))?;
    let out = StageOutput::new(&ctx.folder(RolloutRow::FOLDER), "rollout", ctx.shard)
        .iteration(ctx.iter)
        .schema(RolloutRow::schema_id())
        .seed(ctx.seed)
        .config(&StageConfig {
            reasoner: rs,
            dtype: ctx.cfg.run.dtype.as_str(),
            prompts: prompts.digest(),
            batch_invariant: ctx.cfg.run.batch_invariant,
        })
        .input("tasks", &tasks_dir)?
        .input("policy", &policy_dir)?;
    let done = run_stage(out, ctx.force, |part| {
        let tasks: Vec<TaskRow> = tasks_to_answer(read_committed_rows(&tasks_dir, "spice-filter")?)
            .into_iter()
            .enumerate()
            .filter(|(i, _)| ctx.shard.owns(*i))
            .map(|(_, t)| t)
            .collect();
        let mut sp = StagePolicy::load(&policy_dir, &ctx.device, ctx.cfg.run.dtype.as_str())?;
        sp.policy.set_kv_cache_tokens(ctx.cfg.run.kv_cache_tokens.map(|t| t as usize));
        sp.policy.set_batch_invariant(ctx.cfg.run.batch_invariant);
        // This stage only generates: one copy of the model in memory, made once.
        sp.policy.generation_only();
        part.device(&sp.device);
        let prompted = prompt_tasks(ctx, &sp, &prompts, &tasks, &tasks_dir)?;
        let params = sampling(rs.temperature, rs.top_p, rs.top_k, rs.max_completion_length);
        let reqs: Vec<GenRequest> = prompted.iter().flat_map(|p| p.requests.clone()).collect();
        let (gens, generation) =
            sp.generate(&reqs, &params, rs.batch_size as usize, "reasoner answers")?;
        let w = part.begin()?;
        let (mut length_cut, mut tokens) = (0u64, 0u64);
        let k = rs.num_generations as usize;
        for (i, (g, req)) in gens.into_iter().zip(reqs).enumerate() {
            let (t, p) = (&tasks[i / k], &prompted[i / k]);
            length_cut += (g.finish_reason == spice_lm::FinishReason::Length) as u64;
            tokens += g.token_ids.len() as u64;
            w.write(RolloutRow {
                task_id: t.task_id.clone(),
                iteration: ctx.iter,
                doc_slot: t.doc_slot,
                sample: (i % k) as u32,
                prompt: p.text.clone(),
                prompt_ids: req.prompt_ids,
                completion: g.text,
                completion_ids: g.token_ids,
                logprobs: g.logprobs,
                finish_reason: g.finish_reason.as_str().to_string(),
                seed: req.seed,
                policy_id: sp.id.clone(),
            })?;
        }
        let answers = generation.rows.max(1) as f64;
        Ok(RolloutMetrics {
            tasks: tasks.len() as u64,
            answers: generation.rows,
            mean_completion_tokens: tokens as f64 / answers,
            length_finish_rate: length_cut as f64 / answers,
            policy_id: sp.id.clone(),
            generation,
        })
    })?;
    if let Some((manifest, m)) = done {
        eprintln!(
            "rollout iter {} part {}: {} tasks, {} answers, {:.0} tokens per answer, {:.0}% cut at the length limit, {:.1} tokens/s, {:.0} s",
            ctx.iter,
            ctx.shard,
            m.tasks,
            m.answers,
            m.mean_completion_tokens,
            100.0 * m.length_finish_rate,
            m.generation.tokens_per_second,
            manifest.seconds
        );
    }
    Ok(())
}

/// One task's Reasoner prompt and its K requests.
struct Prompted {
    text: String,
    requests: Vec<GenRequest>,
}

/// The Reasoner prompt of every task (question and options, never the document), with the
/// seed of each of its K answers.
fn prompt_tasks(
    ctx: &StageCtx,
    sp: &StagePolicy,
    prompts: &Prompts,
    tasks: &[TaskRow],
    tasks_dir: &std::path::Path,
) -> Result<Vec<Prompted>> {
    let k = ctx.cfg.reasoner.num_generations;
    tasks
        .iter()
        .map(|t| {
            let kind: TaskKind = t.task_kind.parse().ok().with_context(|| {
                format!(
                    "{}: task {} has task_kind {:?}",
                    tasks_dir.display(),
                    t.task_id,
                    t.task_kind
                )
            })?;
            let question = t.question.as_deref().with_context(|| {
                format!("{}: valid task {} has no question", tasks_dir.display(), t.task_id)
            })?;
            let msg = prompts.reasoner(kind, question, &t.options)?;
            let (text, ids) = sp.chat_prompt(&msg)?;
            let requests = (0..k)
                .map(|s| GenRequest {
                    prompt_ids: ids.clone(),
                    seed: answer_seed(ctx.seed, ctx.iter, &t.task_id, s),
                })
                .collect();
            Ok(Prompted { text, requests })
        })
        .collect()
}
