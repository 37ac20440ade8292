//! `spice-eval`: evaluate a model folder on benchmark files (see the library docs).

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Parser;
use spice_eval::{BenchSpec, ColumnMap, EvalOptions, Preset, RunTarget};
use spice_schemas::config::EvalSection;

#[derive(Parser)]
#[command(
    name = "spice-eval",
    version,
    about = "Evaluate a policy on benchmark files with the Reasoner prompt (greedy pass@1 or avg@k)",
    long_about = "Evaluate a policy on benchmark files (Parquet or JSONL) with the same Reasoner prompt \
the training uses (pipelines/prompts/reasoner/), checking answers with the verifier: free-form \
answers by equivalence, multiple choice by the option letter.\n\n\
Standalone:  spice-eval --model DIR --bench FILE... --out DIR\n\
In a run:    spice-eval --run DIR --iter N            (the policy iteration N samples with; \
iteration 0 = the initial model; writes <run>/iter-N/eval/)\n             \
spice-eval --run DIR --checkpoint-of N   (the checkpoint iteration N's update wrote; \
writes <run>/iter-N/eval-checkpoint/)\n\
In a run, benchmarks and settings come from [eval] of run.toml; the flags below override them.\n\n\
Writes part-00000.parquet (one row per question x sample), summary.parquet (per benchmark and \
subject) and _manifest.json (last), and prints the summary table. A finished evaluation with \
the same model, files and settings is not redone (--force redoes it).\n\n\
Presets (detected from the column names unless --preset or --columns is given):\n  \
math500       problem, answer, subject, unique_id\n  \
gsm8k         question, answer (gold after `#### `, commas removed)\n  \
aime, amc     problem, answer, id (optional)\n  \
mmlu_pro      question, options, answer (letter) or answer_index, category, question_id\n  \
gpqa_diamond  Question, Correct Answer, Incorrect Answer 1..3 (options shuffled per question, fixed)\n  \
supergpqa     question, options, answer_letter, discipline/field, uuid"
)]
struct Cli {
    /// Model folder (Hugging Face layout: config.json, *.safetensors, tokenizer.json).
    #[arg(long, conflicts_with = "run", required_unless_present = "run")]
    model: Option<PathBuf>,
    /// Benchmark files, `FILE` (named by its stem) or `NAME=FILE`; .parquet or .jsonl.
    #[arg(long, num_args = 1..)]
    bench: Vec<BenchSpec>,
    /// Output folder (standalone mode).
    #[arg(long, conflicts_with = "run", required_unless_present = "run")]
    out: Option<PathBuf>,
    /// Column layout of every file (default: detected per file).
    #[arg(long, value_enum)]
    preset: Option<Preset>,
    /// Column names for other layouts: question=COL,answer=COL[,options=COL,subject=COL,id=COL].
    /// With options the questions are multiple choice (answer: letter, 0-based index or option text).
    #[arg(long, conflicts_with = "preset")]
    columns: Option<ColumnMap>,
    /// Samples per question: 1 = pass@1, k > 1 = avg@k (use a temperature) [default: 1].
    #[arg(long)]
    samples: Option<u32>,
    /// Sampling temperature; 0 = greedy [default: 0].
    #[arg(long)]
    temperature: Option<f64>,
    /// Longest answer in tokens [default: 4096].
    #[arg(long)]
    max_new_tokens: Option<u32>,
    /// Only the first N questions of each benchmark; 0 = all [default: 0].
    #[arg(long)]
    limit: Option<u32>,
    /// Sequences generated together [default: 64].
    #[arg(long)]
    batch_size: Option<u32>,
    /// KV cache budget of the generation, in tokens [default: half the free memory, or
    /// run.kv_cache_tokens].
    #[arg(long)]
    kv_cache_tokens: Option<u64>,
    /// auto | cpu | cuda:N [default: auto, or run.device].
    #[arg(long)]
    device: Option<String>,
    /// bf16 | f32 [default: bf16, or run.dtype].
    #[arg(long)]
    dtype: Option<String>,
    /// Seed of the sampled answers [default: 0, or run.seed].
    #[arg(long)]
    seed: Option<u64>,
    /// Redo a finished evaluation.
    #[arg(long)]
    force: bool,
    /// Run folder (with run.toml): evaluate one of its policies.
    #[arg(long)]
    run: Option<PathBuf>,
    /// With --run: evaluate the policy iteration N samples with.
    #[arg(long, requires = "run", conflicts_with = "checkpoint_of")]
    iter: Option<u32>,
    /// With --run: evaluate the checkpoint written by iteration N's update.
    #[arg(long, requires = "run")]
    checkpoint_of: Option<u32>,
}

fn main() -> Result<()> {
    spice_stage::init_logging();
    let cli = Cli::parse();
    let mut opts = match &cli.run {
        Some(run) => {
            let target = match cli.checkpoint_of {
                Some(n) => RunTarget::CheckpointOf(n),
                None => RunTarget::PolicyOf(cli.iter.unwrap_or(0)),
            };
            let iter = match target {
                RunTarget::PolicyOf(n) | RunTarget::CheckpointOf(n) => n,
            };
            let args = spice_stage::StageArgs {
                run: run.clone(),
                iter,
                device: cli.device.clone(),
                seed: cli.seed,
                shard: spice_schemas::ShardSpec::WHOLE,
                force: cli.force,
            };
            let ctx = spice_stage::StageCtx::load(&args)?;
            let mut o = spice_eval::run_options(&ctx, target)?;
            if !cli.bench.is_empty() {
                o.benches = cli.bench.clone();
            }
            o
        }
        None => {
            let d = EvalSection::default();
            let (Some(model), Some(out)) = (cli.model.clone(), cli.out.clone()) else {
                bail!("pass --model DIR and --out DIR, or --run DIR");
            };
            EvalOptions {
                model,
                benches: cli.bench.clone(),
                out,
                preset: None,
                columns: None,
                samples: d.samples,
                temperature: d.temperature,
                max_new_tokens: d.max_completion_length,
                limit: d.limit,
                batch_size: d.batch_size,
                kv_cache_tokens: None,
                device: cli.device.clone().unwrap_or_else(|| "auto".into()),
                dtype: "bf16".into(),
                batch_invariant: true,
                seed: cli.seed.unwrap_or(0),
                force: cli.force,
                run: None,
            }
        }
    };
    opts.preset = cli.preset;
    opts.columns = cli.columns.clone();
    if let Some(v) = cli.samples {
        opts.samples = v;
    }
    if let Some(v) = cli.temperature {
        opts.temperature = v;
    }
    if let Some(v) = cli.max_new_tokens {
        opts.max_new_tokens = v;
    }
    if let Some(v) = cli.limit {
        opts.limit = v;
    }
    if let Some(v) = cli.batch_size {
        opts.batch_size = v;
    }
    if let Some(v) = cli.kv_cache_tokens {
        opts.kv_cache_tokens = Some(v);
    }
    if let Some(v) = &cli.dtype {
        opts.dtype = v.clone();
    }
    let report = spice_eval::evaluate(&opts)?;
    print!("{}", spice_eval::render_table(&report.summary));
    Ok(())
}
