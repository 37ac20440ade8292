//! Evaluation of a policy on benchmark files: every question goes through the same Reasoner
//! prompt the training uses (pipelines/prompts/reasoner/), the answer is checked by the
//! verifier (free-form equivalence, or the option letter), and the folder gets
//!
//! - `part-00000.parquet`: one [`EvalRow`] per question × sample;
//! - `summary.parquet`: one [`EvalSummaryRow`] per benchmark and per (benchmark, subject);
//! - `_manifest.json` last, with the accuracies in its metrics.
//!
//! Greedy pass@1 by default; `samples = k` at a temperature gives avg@k. Sample `s` of
//! question `q` of benchmark `b` is seeded with `derive_seed(seed, 0, "eval/b/q", s)`, so a
//! rerun reproduces it whatever the batch or the other benchmarks.

pub mod bench;
pub mod summary;
mod table;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Serialize;
use serde_json::Number;
use spice_lm::{FinishReason, GenRequest};
use spice_policy::{sampling, StagePolicy};
use spice_prompt::Prompts;
use spice_schemas::{
    metrics::{EvalMetrics, GenerationMetrics},
    read_shard,
    rows::EvalRow,
    run_stage, ShardRow, ShardSpec, StageOutput,
};
use spice_stage::derive_seed;
use spice_verify::{check_with_options, Check, TaskKind};

pub use bench::{load_benchmark, BenchSpec, Benchmark, ColumnMap, Layout, Preset, Question};
pub use summary::{render_table, summarize, EvalSummaryRow, SUMMARY_FILE};

/// Everything one evaluation depends on.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    pub model: PathBuf,
    pub benches: Vec<BenchSpec>,
    pub out: PathBuf,
    /// Force this preset on every file (else detected per file).
    pub preset: Option<Preset>,
    pub columns: Option<ColumnMap>,
    pub samples: u32,
    pub temperature: f64,
    pub max_new_tokens: u32,
    /// First N questions of each benchmark (0 = all).
    pub limit: u32,
    pub batch_size: u32,
    /// KV cache budget in tokens (None: from free memory); changes speed, not answers.
    pub kv_cache_tokens: Option<u64>,
    pub device: String,
    pub dtype: String,
    /// f32 on a CPU: answer every question as it would be answered alone, bit for bit
    /// (`run.batch_invariant`); false takes the faster shared path.
    pub batch_invariant: bool,
    pub seed: u64,
    pub force: bool,
    /// Where the prompt templates are looked up first (a run folder's frozen copy).
    pub run: Option<PathBuf>,
}

/// The part of the options a finished evaluation must match to be reused.
#[derive(Serialize)]
struct StageConfig<'a> {
    layouts: Vec<(&'a str, &'a Layout)>,
    samples: u32,
    temperature: f64,
    max_new_tokens: u32,
    limit: u32,
    batch_size: u32,
    dtype: &'a str,
    prompts: String,
    /// Recorded only when off, so evaluations from before the switch keep their digest.
    #[serde(skip_serializing_if = "is_true")]
    batch_invariant: bool,
}

fn is_true(b: &bool) -> bool {
    *b
}

/// What [`evaluate`] did.
pub struct EvalReport {
    pub summary: Vec<EvalSummaryRow>,
    /// False when a finished evaluation with the same inputs was found and kept.
    pub ran: bool,
    pub seconds: f64,
}

/// The seed of sample `sample` of a question.
pub fn sample_seed(seed: u64, benchmark: &str, question_id: &str, sample: u32) -> u64 {
    derive_seed(seed, 0, &format!("eval/{benchmark}/{question_id}"), sample as u64)
}

/// Evaluate `opts.model` on every benchmark and commit `opts.out`.
pub fn evaluate(opts: &EvalOptions) -> Result<EvalReport> {
    if opts.benches.is_empty() {
        bail!("no benchmark files: pass --bench FILE (or set eval.benchmarks in run.toml)");
    }
    if opts.samples == 0 {
        bail!("--samples must be at least 1");
    }
    if opts.samples > 1 && opts.temperature == 0.0 {
        tracing::warn!(
            "{} samples at temperature 0 are identical greedy answers; set --temperature for avg@k",
            opts.samples
        );
    }
    for (i, b) in opts.benches.iter().enumerate() {
        if opts.benches[..i].iter().any(|o| o.name == b.name) {
            bail!("two benchmarks are named `{}`: name them with --bench NAME=FILE", b.name);
        }
    }
    // Read every file before loading the model, so a bad file fails in a second.
    let benches: Vec<Benchmark> = opts
        .benches
        .iter()
        .map(|b| load_benchmark(b, opts.preset, opts.columns.as_ref(), opts.limit as usize))
        .collect::<Result<_>>()?;
    for b in &benches {
        let layout = match &b.layout {
            Layout::Preset(p) => p.name().to_string(),
            Layout::Columns(_) => "--columns".into(),
        };
        tracing::info!(benchmark = %b.name, file = %b.path.display(), layout, questions = b.questions.len(), "benchmark read");
    }
    let prompts = Prompts::locate(opts.run.as_deref())?;

    let mut out = StageOutput::new(&opts.out, "eval", ShardSpec::WHOLE)
        .schema(EvalRow::schema_id())
        .seed(opts.seed)
        .config(&StageConfig {
            layouts: benches.iter().map(|b| (b.name.as_str(), &b.layout)).collect(),
            samples: opts.samples,
            temperature: opts.temperature,
            max_new_tokens: opts.max_new_tokens,
            limit: opts.limit,
            batch_size: opts.batch_size,
            dtype: &opts.dtype,
            prompts: prompts.digest(),
            batch_invariant: opts.batch_invariant,
        })
        .input("policy", &opts.model)?;
    for b in &benches {
        out = out.input(&format!("bench/{}", b.name), &b.path)?;
    }
    let greedy = opts.temperature == 0.0;
    let mut summary = Vec::new();
    let done = run_stage(out, opts.force, |part| {
        let mut sp = StagePolicy::load(&opts.model, &opts.device, &opts.dtype)?;
        sp.policy.set_kv_cache_tokens(opts.kv_cache_tokens.map(|t| t as usize));
        sp.policy.set_batch_invariant(opts.batch_invariant);
        // This stage only generates: one copy of the model in memory, made once.
        sp.policy.generation_only();
        part.device(&sp.device);
        let (items, reqs) = prompt_questions(opts, &benches, &prompts, &sp)?;
        let params = sampling(opts.temperature, 1.0, 0, opts.max_new_tokens);
        let (gens, generation) =
            sp.generate(&reqs, &params, opts.batch_size.max(1) as usize, "eval answers")?;
        let rows = judge(&benches, &items, gens, &reqs, opts.samples, &sp.id);
        part.begin()?.write_all(rows.iter().cloned())?;
        summary = summarize(&rows, greedy);
        part.extra_shard(SUMMARY_FILE, summary.clone());
        Ok(eval_metrics(&rows, &summary, opts.samples, &sp.id, generation))
    })?;
    let Some((manifest, m)) = done else {
        let summary = read_shard::<EvalSummaryRow>(&opts.out.join(SUMMARY_FILE))?;
        tracing::info!(dir = %opts.out.display(), "eval: already done (--force redoes it)");
        return Ok(EvalReport { summary, ran: false, seconds: 0.0 });
    };
    eprintln!(
        "eval: {} answers to {} questions, {:.1} tokens/s, {:.0}% cut at the length limit, {:.0} s",
        m.answers,
        m.answers / u64::from(opts.samples.max(1)),
        m.generation.tokens_per_second,
        100.0 * m.length_finish_rate,
        manifest.seconds
    );
    Ok(EvalReport { summary, ran: true, seconds: manifest.seconds })
}

/// One question's place (benchmark index, question index) and its rendered prompt.
type Item = (usize, usize, String);

/// The Reasoner prompt of every question, with the seed of each of its samples.
fn prompt_questions(
    opts: &EvalOptions,
    benches: &[Benchmark],
    prompts: &Prompts,
    sp: &StagePolicy,
) -> Result<(Vec<Item>, Vec<GenRequest>)> {
    let mut items = Vec::new();
    let mut reqs = Vec::new();
    for (bi, b) in benches.iter().enumerate() {
        for (qi, q) in b.questions.iter().enumerate() {
            let msg = prompts.reasoner(q.kind, &q.question, &q.options).with_context(|| {
                format!("{}: rendering the prompt of question {}", b.path.display(), q.id)
            })?;
            let (text, ids) = sp.chat_prompt(&msg)?;
            for s in 0..opts.samples {
                reqs.push(GenRequest {
                    prompt_ids: ids.clone(),
                    seed: sample_seed(opts.seed, &b.name, &q.id, s),
                });
            }
            items.push((bi, qi, text));
        }
    }
    Ok((items, reqs))
}

/// The verifier's verdict on `completion` for question `q`: multiple-choice answers read with
/// the question's letter range and option texts, as `spice-score` reads a task's (an answer
/// that names its option by text counts).
pub fn verdict(q: &Question, completion: &str) -> Check {
    let max_letter = if q.kind == TaskKind::Mcq { q.max_letter() } else { 'D' };
    check_with_options(&q.gold, completion, q.kind, None, max_letter, &q.options)
}

/// Check every answer against its question's gold answer.
fn judge(
    benches: &[Benchmark],
    items: &[Item],
    gens: Vec<spice_lm::Generation>,
    reqs: &[GenRequest],
    k: u32,
    policy_id: &str,
) -> Vec<EvalRow> {
    let k = k as usize;
    let mut rows = Vec::with_capacity(gens.len());
    for (i, (g, req)) in gens.into_iter().zip(reqs).enumerate() {
        let (bi, qi, prompt) = &items[i / k];
        let (b, q) = (&benches[*bi], &benches[*bi].questions[*qi]);
        let c = verdict(q, &g.text);
        rows.push(EvalRow {
            benchmark: b.name.clone(),
            question_id: q.id.clone(),
            subject: q.subject.clone(),
            task_kind: q.kind.as_str().to_string(),
            sample: (i % k) as u32,
            prompt: prompt.clone(),
            completion: g.text,
            completion_tokens: g.token_ids.len() as u32,
            finish_reason: g.finish_reason.as_str().to_string(),
            gold: q.gold.clone(),
            extracted: c.extracted,
            correct: c.equivalent,
            seed: req.seed,
            policy_id: policy_id.to_string(),
        });
    }
    rows
}

/// The manifest's numbers: answers, cut answers, and accuracy per benchmark.
fn eval_metrics(
    rows: &[EvalRow],
    summary: &[EvalSummaryRow],
    samples: u32,
    policy_id: &str,
    generation: GenerationMetrics,
) -> EvalMetrics {
    let length_cut =
        rows.iter().filter(|r| r.finish_reason == FinishReason::Length.as_str()).count();
    let mut benchmarks = BTreeMap::new();
    for s in summary.iter().filter(|s| s.subject.is_none()) {
        let b = &s.benchmark;
        benchmarks.insert(format!("{b}/questions"), Some(s.questions.into()));
        benchmarks.insert(format!("{b}/accuracy"), Number::from_f64(s.accuracy));
        benchmarks.insert(format!("{b}/pass_at_k"), Number::from_f64(s.pass_at_k));
        if let Some(p) = s.pass_at_1 {
            benchmarks.insert(format!("{b}/pass_at_1"), Number::from_f64(p));
        }
    }
    EvalMetrics {
        policy_id: policy_id.to_string(),
        answers: rows.len() as u64,
        samples: samples as u64,
        length_finish_rate: length_cut as f64 / rows.len().max(1) as f64,
        generation,
        benchmarks,
    }
}

/// Which policy of a run to evaluate, and where its results go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunTarget {
    /// The policy iteration N samples with (the initial model for N = 0), into
    /// `<run>/iter-N/eval/`.
    PolicyOf(u32),
    /// The checkpoint iteration N's update wrote, into `<run>/iter-N/eval-checkpoint/`.
    CheckpointOf(u32),
}

/// The model folder and output folder of `target` in the run of `ctx`.
pub fn run_paths(ctx: &spice_stage::StageCtx, target: RunTarget) -> Result<(PathBuf, PathBuf)> {
    match target {
        RunTarget::PolicyOf(_) => Ok((ctx.policy_dir()?, ctx.folder(EvalRow::FOLDER))),
        RunTarget::CheckpointOf(n) => {
            let dir = ctx.layout.checkpoint(n);
            if !dir.join("_manifest.json").exists() {
                bail!("{} is not finished: run iteration {n}'s update first", dir.display());
            }
            Ok((dir, ctx.layout.iter_dir(n).join("eval-checkpoint")))
        }
    }
}

/// Options of an evaluation inside a run, from `[eval]` of its run.toml.
pub fn run_options(ctx: &spice_stage::StageCtx, target: RunTarget) -> Result<EvalOptions> {
    let e = &ctx.cfg.eval;
    let (model, out) = run_paths(ctx, target)?;
    let root: &Path = &ctx.layout.root;
    let benches = e
        .benchmarks
        .iter()
        .map(|p| {
            let s = p
                .to_str()
                .with_context(|| format!("benchmark path {} is not UTF-8", p.display()))?;
            s.parse::<BenchSpec>()
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(EvalOptions {
        model,
        benches,
        out,
        preset: None,
        columns: None,
        samples: e.samples,
        temperature: e.temperature,
        max_new_tokens: e.max_completion_length,
        limit: e.limit,
        batch_size: e.batch_size,
        kv_cache_tokens: ctx.cfg.run.kv_cache_tokens,
        device: ctx.device.clone(),
        dtype: ctx.cfg.run.dtype.as_str().to_string(),
        batch_invariant: ctx.cfg.run.batch_invariant,
        seed: ctx.seed,
        force: ctx.force,
        run: Some(root.to_path_buf()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mcq(options: &[&str], gold: &str) -> Question {
        Question {
            id: "q".into(),
            subject: None,
            kind: TaskKind::Mcq,
            question: "Capital of France?".into(),
            options: options.iter().map(|o| o.to_string()).collect(),
            gold: gold.into(),
        }
    }

    #[test]
    fn an_answer_that_names_its_option_by_text_counts_as_in_training() {
        let q = mcq(&["London", "Paris", "Rome", "Madrid"], "B");
        assert!(verdict(&q, "Paris").equivalent, "the text of option B");
        assert!(verdict(&q, "The answer is (B).").equivalent);
        assert!(!verdict(&q, "Rome").equivalent, "the text of another option");
        assert!(!verdict(&q, "\\boxed{A} or \\boxed{B}").equivalent, "two options");
        // Ten options: J is a letter of this question.
        let opts: Vec<String> = (0..10).map(|i| format!("choice {i}")).collect();
        let refs: Vec<&str> = opts.iter().map(String::as_str).collect();
        assert!(verdict(&mcq(&refs, "J"), "\\boxed{J}").equivalent);
        assert!(verdict(&mcq(&refs, "J"), "choice 9").equivalent);
    }
}
