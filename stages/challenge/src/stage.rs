use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use serde::Serialize;
use spice_lm::GenRequest;
use spice_policy::{sampling, StagePolicy, Throughput};
use spice_prompt::{parse_format_choice, FormatChoice, Prompts};
use spice_schemas::{
    config::ChallengerSection,
    manifest::folder_complete,
    read_folder,
    rows::{ChallengerRow, ChunkRow},
    ShardRow, ShardWriter, StageOutput,
};
use spice_stage::{derive_seed, StageCtx};
use spice_verify::parse_task_for_prompt;

use crate::documents::{self, DocSlot};
use crate::formats::FormatSpace;
use crate::rounds::{Limits, SlotState};
use crate::select::keep_g;

/// What the stage's output depends on besides its inputs.
#[derive(Serialize)]
struct StageConfig<'a> {
    challenger: &'a ChallengerSection,
    documents_seed: u64,
    dtype: &'a str,
    prompts: String,
}

/// Seed of attempt `attempt` of document `slot` (and of its format choice).
fn attempt_seed(run_seed: u64, iter: u32, what: &str, slot: u32, attempt: u32) -> u64 {
    derive_seed(run_seed, iter, what, ((slot as u64) << 32) | attempt as u64)
}

/// One generated attempt, before selection.
struct Attempt {
    slot: u32,
    attempt: u32,
    format: FormatChoice,
    format_completion: Option<String>,
    prompt: String,
    prompt_ids: Vec<u32>,
    response_prefix: String,
    gen: spice_lm::Generation,
    seed: u64,
    valid: bool,
}

pub fn run(ctx: &StageCtx) -> Result<()> {
    let ch = &ctx.cfg.challenger;
    let grounded = ch.grounding == "corpus";
    let policy_dir = if ch.training == "frozen" {
        ch.frozen_model
            .clone()
            .context("challenger.training = \"frozen\" needs challenger.frozen_model")?
    } else {
        ctx.policy_dir()?
    };
    let prompts = Prompts::locate(Some(&ctx.layout.root))?;
    let has_format_step = prompts.has_format_step(&ch.prompt_set)?;
    let space = FormatSpace::from_config(&ch.task_types, ch.answer_type.as_deref())?;
    let documents_seed = derive_seed(ctx.seed, ctx.iter, "documents", 0);

    let mut out = StageOutput::new(&ctx.folder(ChallengerRow::FOLDER), "challenge", ctx.shard)
        .iteration(ctx.iter)
        .schema(ChallengerRow::schema_id())
        .seed(ctx.seed)
        .config(&StageConfig { challenger: ch, documents_seed, dtype: &ctx.cfg.run.dtype, prompts: prompts.digest() })
        .input("policy", &policy_dir)?;
    if grounded {
        out = out.input("chunks", &ctx.layout.chunks())?;
    }
    if out.is_done(ctx.force)? {
        tracing::info!(dir = %out.dir().display(), shard = %ctx.shard, "challenger: already done");
        return Ok(());
    }

    // 1. The iteration's documents; this part owns every N-th slot.
    let slots: Vec<DocSlot> = if grounded {
        let dir = ctx.layout.chunks();
        if folder_complete(&dir)?.is_none() {
            bail!("{} is not complete: run `spice-chunk --run {}` first", dir.display(), ctx.layout.root.display());
        }
        let chunks: Vec<ChunkRow> = read_folder(&dir)?;
        documents::sample(&chunks, ch.documents_per_iteration, documents_seed)?
    } else {
        documents::ungrounded(ch.documents_per_iteration)
    };
    let slots: Vec<DocSlot> = slots.into_iter().filter(|d| ctx.shard.owns(d.slot as usize)).collect();

    let sp = StagePolicy::load(&policy_dir, &ctx.device, &ctx.cfg.run.dtype)?;
    out = out.device(&sp.device);
    let limits = Limits { keep: ch.num_generations, max_attempts: ch.max_attempts, per_round: ch.attempts_per_round.max(1) };
    let task_params = sampling(ch.temperature, ch.top_p, ch.top_k, ch.max_completion_length);
    let format_params = sampling(ch.temperature, ch.top_p, ch.top_k, ch.max_completion_length.min(128));

    // 2. Rounds of attempts over the open documents.
    let mut state: BTreeMap<u32, SlotState> = slots.iter().map(|d| (d.slot, SlotState::default())).collect();
    let docs: BTreeMap<u32, &DocSlot> = slots.iter().map(|d| (d.slot, d)).collect();
    let mut attempts: Vec<Attempt> = Vec::new();
    let (mut gen_task, mut gen_format) = (Throughput::default(), Throughput::default());
    let mut round = 0;
    loop {
        let plan: Vec<(u32, u32)> = state
            .iter()
            .flat_map(|(&slot, s)| (0..s.next_round(&limits)).map(move |k| (slot, s.attempts + k)))
            .collect();
        if plan.is_empty() {
            break;
        }
        round += 1;
        // 2a. Formats: the model's choice (paper prompt set) or a seeded draw.
        let mut formats: Vec<(FormatChoice, Option<String>)> = Vec::with_capacity(plan.len());
        if has_format_step && space.is_open() {
            let mut reqs = Vec::with_capacity(plan.len());
            for &(slot, a) in &plan {
                let msg = prompts.challenger_format(&ch.prompt_set, docs[&slot].text.as_deref(), &space.kinds, &space.types)?;
                let (_, ids) = sp.chat_prompt(&msg)?;
                reqs.push(GenRequest { prompt_ids: ids, seed: attempt_seed(ctx.seed, ctx.iter, "challenge-format", slot, a) });
            }
            let (gens, t) = sp.generate(&reqs, &format_params, ch.batch_size as usize, &format!("round {round}: formats"))?;
            gen_format.add(t);
            for (g, &(slot, a)) in gens.into_iter().zip(&plan) {
                let chosen = parse_format_choice(&g.text, &space.kinds, &space.types);
                let f = space.complete(chosen, attempt_seed(ctx.seed, ctx.iter, "challenge-format-draw", slot, a));
                formats.push((f, Some(g.text)));
            }
        } else {
            for &(slot, a) in &plan {
                formats.push((space.draw(attempt_seed(ctx.seed, ctx.iter, "challenge-format-draw", slot, a)), None));
            }
        }
        // 2b. The tasks.
        let mut reqs = Vec::with_capacity(plan.len());
        let mut prompts_text = Vec::with_capacity(plan.len());
        let mut prefixes = Vec::with_capacity(plan.len());
        for (&(slot, a), (f, _)) in plan.iter().zip(&formats) {
            let msg = prompts.challenger_task(&ch.prompt_set, f.kind, docs[&slot].text.as_deref(), f.answer_type)?;
            let prefix = prompts.challenger_prefill(&ch.prompt_set, f.kind, f.answer_type)?.unwrap_or_default();
            let (text, ids) = sp.chat_prompt_with_prefix(&msg, &prefix)?;
            prefixes.push(prefix);
            let seed = attempt_seed(ctx.seed, ctx.iter, "challenge", slot, a);
            reqs.push(GenRequest { prompt_ids: ids, seed });
            prompts_text.push(text);
        }
        let (gens, t) = sp.generate(&reqs, &task_params, ch.batch_size as usize, &format!("round {round}: tasks"))?;
        gen_task.add(t);
        for (((((slot, a), (format, format_completion)), (gen, prompt)), req), prefix) in
            plan.into_iter().zip(formats).zip(gens.into_iter().zip(prompts_text)).zip(reqs).zip(prefixes)
        {
            // As `spice-verify filter` judges it: the answer type the attempt asked for is binding.
            let written = format!("{prefix}{}", gen.text);
            let valid = parse_task_for_prompt(&written, &prompt, format.kind, format.answer_type).task.is_ok();
            let s = state.get_mut(&slot).expect("planned slot");
            s.attempts += 1;
            s.valid += valid as u32;
            attempts.push(Attempt {
                slot,
                attempt: a,
                format,
                format_completion,
                prompt,
                prompt_ids: req.prompt_ids,
                response_prefix: prefix,
                gen,
                seed: req.seed,
                valid,
            });
        }
        let open = state.values().filter(|s| s.is_open(&limits)).count();
        tracing::info!(round, attempts = attempts.len(), open_documents = open, "challenger round done");
    }

    // 3. G trajectories per document, then the shard.
    attempts.sort_by_key(|a| (a.slot, a.attempt));
    let mut selected = vec![false; attempts.len()];
    let mut start = 0;
    while start < attempts.len() {
        let slot = attempts[start].slot;
        let end = start + attempts[start..].iter().take_while(|a| a.slot == slot).count();
        let valid: Vec<bool> = attempts[start..end].iter().map(|a| a.valid).collect();
        for i in keep_g(&valid, ch.num_generations as usize, derive_seed(ctx.seed, ctx.iter, "challenge-select", slot as u64)) {
            selected[start + i] = true;
        }
        start = end;
    }
    let n_valid = attempts.iter().filter(|a| a.valid).count();
    let docs_with_valid = state.values().filter(|s| s.valid > 0).count();
    let mut w = ShardWriter::<ChallengerRow>::create(out.part_path())?;
    for (a, sel) in attempts.into_iter().zip(selected) {
        w.write(ChallengerRow {
            iteration: ctx.iter,
            doc_slot: a.slot,
            chunk_id: docs[&a.slot].chunk_id.clone(),
            attempt: a.attempt,
            task_kind: a.format.kind.as_str().to_string(),
            answer_type: a.format.answer_type.map(|t| t.as_str().to_string()),
            format_completion: a.format_completion,
            prompt_set: ch.prompt_set.clone(),
            prompt: a.prompt,
            prompt_ids: a.prompt_ids,
            response_prefix: a.response_prefix,
            completion: a.gen.text,
            completion_ids: a.gen.token_ids,
            logprobs: a.gen.logprobs,
            finish_reason: a.gen.finish_reason.as_str().to_string(),
            seed: a.seed,
            policy_id: sp.id.clone(),
            parsed_valid: a.valid,
            selected: sel,
        })?;
    }
    let rows = w.finish()?;
    let mut m = serde_json::Map::new();
    m.insert("documents".into(), state.len().into());
    m.insert("attempts".into(), rows.into());
    m.insert("rounds".into(), round.into());
    m.insert("valid_attempts".into(), n_valid.into());
    m.insert("valid_rate".into(), (if rows > 0 { n_valid as f64 / rows as f64 } else { 0.0 }).into());
    m.insert("documents_with_valid_task".into(), docs_with_valid.into());
    m.insert("prompt_set".into(), ch.prompt_set.clone().into());
    m.insert("policy_id".into(), sp.id.clone().into());
    gen_task.metrics("", &mut m);
    if gen_format.rows > 0 {
        gen_format.metrics("format_", &mut m);
    }
    let manifest = out.commit(m)?;
    eprintln!(
        "challenge iter {} part {}: {} documents, {} attempts, {} valid ({:.0}%), {} documents with a valid task, {:.1} tokens/s, {:.0} s",
        ctx.iter,
        ctx.shard,
        state.len(),
        rows,
        n_valid,
        100.0 * n_valid as f64 / rows.max(1) as f64,
        docs_with_valid,
        gen_task.tokens_per_second(),
        manifest.seconds
    );
    Ok(())
}
