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
    read_committed_rows,
    rows::{RolloutRow, TaskRow},
    ShardRow, ShardWriter, StageOutput,
};
use spice_stage::{derive_seed, StageCtx};
use spice_verify::TaskKind;

#[derive(Serialize)]
struct StageConfig<'a> {
    reasoner: &'a ReasonerSection,
    dtype: &'a str,
    prompts: String,
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
    let policy_dir = ctx.policy_dir()?;
    let prompts = Prompts::locate(Some(&ctx.layout.root))?;
    let out = StageOutput::new(&ctx.folder(RolloutRow::FOLDER), "rollout", ctx.shard)
        .iteration(ctx.iter)
        .schema(RolloutRow::schema_id())
        .seed(ctx.seed)
        .config(&StageConfig { reasoner: rs, dtype: &ctx.cfg.run.dtype, prompts: prompts.digest() })
        .input("tasks", &tasks_dir)?
        .input("policy", &policy_dir)?;
    if out.skip(ctx.force)? {
        return Ok(());
    }
    let tasks: Vec<TaskRow> = tasks_to_answer(read_committed_rows(&tasks_dir, "spice-filter")?)
        .into_iter()
        .enumerate()
        .filter(|(i, _)| ctx.shard.owns(*i))
        .map(|(_, t)| t)
        .collect();

    let sp = StagePolicy::load(&policy_dir, &ctx.device, &ctx.cfg.run.dtype)?;
    let out = out.device(&sp.device);
    let k = rs.num_generations;
    let mut reqs = Vec::with_capacity(tasks.len() * k as usize);
    let mut prompt_texts = Vec::with_capacity(tasks.len());
    for t in &tasks {
        let kind: TaskKind = t.task_kind.parse().ok().with_context(|| {
            format!("{}: task {} has task_kind {:?}", tasks_dir.display(), t.task_id, t.task_kind)
        })?;
        let question = t.question.as_deref().with_context(|| {
            format!("{}: valid task {} has no question", tasks_dir.display(), t.task_id)
        })?;
        let msg = prompts.reasoner(kind, question, &t.options)?;
        let (text, ids) = sp.chat_prompt(&msg)?;
        for s in 0..k {
            reqs.push(GenRequest {
                prompt_ids: ids.clone(),
                seed: answer_seed(ctx.seed, ctx.iter, &t.task_id, s),
            });
        }
        prompt_texts.push(text);
    }
    let params = sampling(rs.temperature, rs.top_p, rs.top_k, rs.max_completion_length);
    let (gens, thr) = sp.generate(&reqs, &params, rs.batch_size as usize, "reasoner answers")?;

    let mut w = ShardWriter::<RolloutRow>::create(out.part_path())?;
    let (mut length_cut, mut tokens) = (0u64, 0u64);
    for (i, (g, req)) in gens.into_iter().zip(reqs).enumerate() {
        let t = &tasks[i / k as usize];
        length_cut += (g.finish_reason == spice_lm::FinishReason::Length) as u64;
        tokens += g.token_ids.len() as u64;
        w.write(RolloutRow {
            task_id: t.task_id.clone(),
            iteration: ctx.iter,
            doc_slot: t.doc_slot,
            sample: (i % k as usize) as u32,
            prompt: prompt_texts[i / k as usize].clone(),
            prompt_ids: req.prompt_ids,
            completion: g.text,
            completion_ids: g.token_ids,
            logprobs: g.logprobs,
            finish_reason: g.finish_reason.as_str().to_string(),
            seed: req.seed,
            policy_id: sp.id.clone(),
        })?;
    }
    let rows = w.finish()?;
    let mut m = serde_json::Map::new();
    m.insert("tasks".into(), tasks.len().into());
    m.insert("answers".into(), rows.into());
    m.insert("mean_completion_tokens".into(), (tokens as f64 / rows.max(1) as f64).into());
    m.insert("length_finish_rate".into(), (length_cut as f64 / rows.max(1) as f64).into());
    m.insert("policy_id".into(), sp.id.clone().into());
    thr.metrics("", &mut m);
    let manifest = out.commit(m)?;
    eprintln!(
        "rollout iter {} part {}: {} tasks, {} answers, {:.0} tokens per answer, {:.0}% cut at the length limit, {:.1} tokens/s, {:.0} s",
        ctx.iter,
        ctx.shard,
        tasks.len(),
        rows,
        tokens as f64 / rows.max(1) as f64,
        100.0 * length_cut as f64 / rows.max(1) as f64,
        thr.tokens_per_second(),
        manifest.seconds
    );
    Ok(())
}
