use std::collections::BTreeMap;

use anyhow::{Context, Result};
use serde::Serialize;
use spice_lm::GenRequest;
use spice_policy::{sampling, StagePolicy};
use spice_prompt::{parse_format_choice, FormatChoice, Prompts};
use spice_schemas::vocab::{ChallengerTraining, Grounding};
use spice_schemas::{
    config::ChallengerSection,
    metrics::{ChallengeMetrics, GenerationMetrics},
    read_committed_rows,
    rows::{ChallengerRow, ChunkRow},
    run_stage, Part, ShardRow, StageOutput,
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
    /// Recorded only when off (`run.batch_invariant = false`), so runs from before the switch
    /// keep their config digest.
    #[serde(skip_serializing_if = "is_true")]
    batch_invariant: bool,
    /// Chunks held out of the training draws (`[crossplay]`); recorded only when some are, so
    /// runs from before keep their config digest.
    #[serde(skip_serializing_if = "is_zero")]
    heldout_documents: u32,
    /// A cross-play cell's documents: how many, and whether training never drew them.
    #[serde(skip_serializing_if = "Option::is_none")]
    crossplay_documents: Option<(u32, bool)>,
}

fn is_true(b: &bool) -> bool {
    *b
}

fn is_zero(n: &u32) -> bool {
    *n == 0
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

/// The settings and tools one part of the stage generates with.
struct Challenger<'a> {
    ctx: &'a StageCtx,
    ch: &'a ChallengerSection,
    prompts: Prompts,
    has_format_step: bool,
    space: FormatSpace,
    sp: StagePolicy,
    limits: Limits,
}

/// What the rounds produced.
struct Rounds {
    attempts: Vec<Attempt>,
    state: BTreeMap<u32, SlotState>,
    rounds: u32,
    gen_task: GenerationMetrics,
    gen_format: GenerationMetrics,
}

pub fn run(ctx: &StageCtx) -> Result<()> {
    let ch = &ctx.cfg.challenger;
    let grounded = ch.grounding == Grounding::Corpus;
    let policy_dir = if ch.training == ChallengerTraining::Frozen {
        ch.frozen_model
            .clone()
            .context("challenger.training = \"frozen\" needs challenger.frozen_model")?
    } else {
        ctx.policy_dir()?
    };
    let prompts = Prompts::locate(Some(&ctx.layout.root))?;
    let documents_seed = derive_seed(ctx.seed, ctx.iter, "documents", 0);

    let mut out = StageOutput::new(&ctx.folder(ChallengerRow::FOLDER), "challenge", ctx.shard)
        .iteration(ctx.iter)
        .schema(ChallengerRow::schema_id())
        .seed(ctx.seed)
        .config(&StageConfig {
            challenger: ch,
            documents_seed,
            dtype: ctx.cfg.run.dtype.as_str(),
            prompts: prompts.digest(),
            batch_invariant: ctx.cfg.run.batch_invariant,
            heldout_documents: ctx.cfg.crossplay.heldout_documents,
            crossplay_documents: ctx.cell.map(|_| ctx.cfg.crossplay.document_count()),
        })
        .input("policy", &policy_dir)?;
    if grounded {
        out = out.input("chunks", &ctx.layout.chunks())?;
    }
    let done = run_stage(out, ctx.force, |part| {
        // 1. The iteration's documents; this part owns every N-th slot.
        let slots = owned_documents(ctx, grounded, documents_seed)?;
        let mut sp = StagePolicy::load(&policy_dir, &ctx.device, ctx.cfg.run.dtype.as_str())?;
        sp.policy.set_kv_cache_tokens(ctx.cfg.run.kv_cache_tokens.map(|t| t as usize));
        sp.policy.set_batch_invariant(ctx.cfg.run.batch_invariant);
        // This stage only generates: one copy of the model in memory, made once.
        sp.policy.generation_only();
        part.device(&sp.device);
        let challenger = Challenger {
            ctx,
            ch,
            has_format_step: prompts.has_format_step(&ch.prompt_set)?,
            prompts,
            space: FormatSpace::from_config(ch.task_types, ch.answer_type),
            sp,
            limits: Limits {
                keep: ch.num_generations,
                max_attempts: ch.max_attempts,
                per_round: ch.attempts_per_round.max(1),
            },
        };
        // 2. Rounds of attempts over the open documents.
        let docs: BTreeMap<u32, &DocSlot> = slots.iter().map(|d| (d.slot, d)).collect();
        let mut r = challenger.rounds(&docs)?;
        // 3. G trajectories per document, then the shard.
        r.attempts.sort_by_key(|a| (a.slot, a.attempt));
        let selected = select_trajectories(&r.attempts, ch.num_generations as usize, ctx);
        challenger.write(part, &docs, r, selected)
    })?;
    if let Some((manifest, m)) = done {
        eprintln!(
            "challenge iter {} part {}: {} documents, {} attempts, {} valid ({:.0}%), {} \
             documents with a valid task, {:.1} tokens/s, {:.0} s",
            ctx.iter,
            ctx.shard,
            m.documents,
            m.attempts,
            m.valid_attempts,
            100.0 * m.valid_rate,
            m.documents_with_valid_task,
            m.generation.tokens_per_second,
            manifest.seconds
        );
    }
    Ok(())
}

/// The documents of this iteration that this part owns: drawn from the chunks not held out
/// for cross-play, or in a cross-play cell, the cross-play documents.
fn owned_documents(ctx: &StageCtx, grounded: bool, documents_seed: u64) -> Result<Vec<DocSlot>> {
    let (n_cross, _) = ctx.cfg.crossplay.document_count();
    let n = if ctx.cell.is_some() { n_cross } else { ctx.cfg.challenger.documents_per_iteration };
    let slots = if grounded {
        let chunks: Vec<ChunkRow> = read_committed_rows(&ctx.layout.chunks(), "spice-chunk")?;
        // The held-out set (or, with none held out, cross-play's draw) by the run's seed alone.
        let heldout_seed = derive_seed(ctx.run_seed, 0, "heldout-documents", 0);
        let held = ctx.cfg.crossplay.heldout_documents;
        match (ctx.cell.is_some(), held > 0) {
            (true, true) => documents::heldout(&chunks, held, heldout_seed)?,
            (true, false) => documents::sample(&chunks, n, heldout_seed)?,
            (false, true) => {
                let out = documents::heldout(&chunks, held, heldout_seed)?;
                documents::sample(&documents::trainable(chunks, &out), n, documents_seed)?
            }
            (false, false) => documents::sample(&chunks, n, documents_seed)?,
        }
    } else {
        documents::ungrounded(n)
    };
    Ok(slots.into_iter().filter(|d| ctx.shard.owns(d.slot as usize)).collect())
}

/// For attempts sorted by (document, attempt): whether each is one of its document's G.
fn select_trajectories(attempts: &[Attempt], g: usize, ctx: &StageCtx) -> Vec<bool> {
    let mut selected = vec![false; attempts.len()];
    let mut start = 0;
    while start < attempts.len() {
        let slot = attempts[start].slot;
        let end = start + attempts[start..].iter().take_while(|a| a.slot == slot).count();
        let valid: Vec<bool> = attempts[start..end].iter().map(|a| a.valid).collect();
        for i in keep_g(&valid, g, derive_seed(ctx.seed, ctx.iter, "challenge-select", slot as u64))
        {
            selected[start + i] = true;
        }
        start = end;
    }
    selected
}

impl Challenger<'_> {
    /// Rounds of attempts until every document has G attempts and a valid one, or has used
    /// `max_attempts`.
    fn rounds(&self, docs: &BTreeMap<u32, &DocSlot>) -> Result<Rounds> {
        let mut r = Rounds {
            attempts: Vec::new(),
            state: docs.keys().map(|&slot| (slot, SlotState::default())).collect(),
            rounds: 0,
            gen_task: GenerationMetrics::default(),
            gen_format: GenerationMetrics::default(),
        };
        loop {
            let plan: Vec<(u32, u32)> = r
                .state
                .iter()
                .flat_map(|(&slot, s)| {
                    (0..s.next_round(&self.limits)).map(move |k| (slot, s.attempts + k))
                })
                .collect();
            if plan.is_empty() {
                return Ok(r);
            }
            r.rounds += 1;
            let formats = self.formats(&plan, docs, r.rounds, &mut r.gen_format)?;
            let made = self.tasks(&plan, formats, docs, r.rounds, &mut r.gen_task)?;
            for a in made {
                let s = r.state.get_mut(&a.slot).expect("planned slot");
                s.attempts += 1;
                s.valid += a.valid as u32;
                r.attempts.push(a);
            }
            let open = r.state.values().filter(|s| s.is_open(&self.limits)).count();
            tracing::info!(
                round = r.rounds,
                attempts = r.attempts.len(),
                open_documents = open,
                "challenger round done"
            );
        }
    }

    /// 2a. The format of each planned attempt: the model's choice (paper prompt set) or a
    /// seeded draw.
    fn formats(
        &self,
        plan: &[(u32, u32)],
        docs: &BTreeMap<u32, &DocSlot>,
        round: u32,
        thr: &mut GenerationMetrics,
    ) -> Result<Vec<(FormatChoice, Option<String>)>> {
        let (ch, ctx, space) = (self.ch, self.ctx, &self.space);
        if !(self.has_format_step && space.is_open()) {
            return Ok(plan
                .iter()
                .map(|&(slot, a)| {
                    let seed = attempt_seed(ctx.seed, ctx.iter, "challenge-format-draw", slot, a);
                    (space.draw(seed), None)
                })
                .collect());
        }
        let mut reqs = Vec::with_capacity(plan.len());
        for &(slot, a) in plan {
            let msg = self.prompts.challenger_format(
                &ch.prompt_set,
                docs[&slot].text.as_deref(),
                &space.kinds,
                &space.types,
            )?;
            let (_, ids) = self.sp.chat_prompt(&msg)?;
            reqs.push(GenRequest {
                prompt_ids: ids,
                seed: attempt_seed(ctx.seed, ctx.iter, "challenge-format", slot, a),
            });
        }
        let params =
            sampling(ch.temperature, ch.top_p, ch.top_k, ch.max_completion_length.min(128));
        let (gens, t) = self.sp.generate(
            &reqs,
            &params,
            ch.batch_size as usize,
            &format!("round {round}: formats"),
        )?;
        thr.add(t);
        Ok(gens
            .into_iter()
            .zip(plan)
            .map(|(g, &(slot, a))| {
                let chosen = parse_format_choice(&g.text, &space.kinds, &space.types);
                let seed = attempt_seed(ctx.seed, ctx.iter, "challenge-format-draw", slot, a);
                (space.complete(chosen, seed), Some(g.text))
            })
            .collect())
    }

    /// 2b. The tasks of the planned attempts, each judged as `spice-filter` will judge it.
    fn tasks(
        &self,
        plan: &[(u32, u32)],
        formats: Vec<(FormatChoice, Option<String>)>,
        docs: &BTreeMap<u32, &DocSlot>,
        round: u32,
        thr: &mut GenerationMetrics,
    ) -> Result<Vec<Attempt>> {
        let (ch, ctx) = (self.ch, self.ctx);
        let mut reqs = Vec::with_capacity(plan.len());
        let mut prompts_text = Vec::with_capacity(plan.len());
        let mut prefixes = Vec::with_capacity(plan.len());
        for (&(slot, a), (f, _)) in plan.iter().zip(&formats) {
            let msg = self.prompts.challenger_task(
                &ch.prompt_set,
                f.kind,
                docs[&slot].text.as_deref(),
                f.answer_type,
            )?;
            let prefix = self
                .prompts
                .challenger_prefill(&ch.prompt_set, f.kind, f.answer_type)?
                .unwrap_or_default();
            let (text, ids) = self.sp.chat_prompt_with_prefix(&msg, &prefix)?;
            prefixes.push(prefix);
            let seed = attempt_seed(ctx.seed, ctx.iter, "challenge", slot, a);
            reqs.push(GenRequest { prompt_ids: ids, seed });
            prompts_text.push(text);
        }
        let params = sampling(ch.temperature, ch.top_p, ch.top_k, ch.max_completion_length);
        let (gens, t) = self.sp.generate(
            &reqs,
            &params,
            ch.batch_size as usize,
            &format!("round {round}: tasks"),
        )?;
        thr.add(t);
        let mut made = Vec::with_capacity(plan.len());
        for ((((&(slot, a), (format, format_completion)), (gen, prompt)), req), prefix) in
            plan.iter().zip(formats).zip(gens.into_iter().zip(prompts_text)).zip(reqs).zip(prefixes)
        {
            // As `spice-filter` judges it: the answer type the attempt asked for is binding.
            let written = format!("{prefix}{}", gen.text);
            let valid = parse_task_for_prompt(&written, &prompt, format.kind, format.answer_type)
                .task
                .is_ok();
            made.push(Attempt {
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
        Ok(made)
    }

    /// Write every attempt, selected or not; returns the part's numbers.
    fn write(
        &self,
        part: &mut Part<ChallengerRow>,
        docs: &BTreeMap<u32, &DocSlot>,
        r: Rounds,
        selected: Vec<bool>,
    ) -> Result<ChallengeMetrics> {
        let (ch, ctx, sp) = (self.ch, self.ctx, &self.sp);
        let n_valid = r.attempts.iter().filter(|a| a.valid).count();
        let docs_with_valid = r.state.values().filter(|s| s.valid > 0).count();
        let rows = r.attempts.len() as u64;
        let w = part.begin()?;
        for (a, sel) in r.attempts.into_iter().zip(selected) {
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
        let mut m = ChallengeMetrics {
            documents: r.state.len() as u64,
            attempts: rows,
            rounds: r.rounds as u64,
            valid_attempts: n_valid as u64,
            valid_rate: if rows > 0 { n_valid as f64 / rows as f64 } else { 0.0 },
            documents_with_valid_task: docs_with_valid as u64,
            prompt_set: ch.prompt_set.clone(),
            policy_id: sp.id.clone(),
            generation: r.gen_task,
            ..ChallengeMetrics::default()
        };
        if r.gen_format.rows > 0 {
            m.set_format(r.gen_format);
        }
        Ok(m)
    }
}
