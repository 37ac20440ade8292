//! Time the whole update stage on synthetic scored rows: πθ_old scoring, the optimizer
//! steps and the checkpoint save, on a temporary run folder.
//!
//! ```text
//! cargo run --release -p spice-update --example bench -- \
//!     --model data/models/smollm2-135m-instruct --sequences 100 --completion 256
//! ```
//!
//! Prints one JSON line with the stage's manifest metrics and the seconds per 100 sequences.
//! With `--processes N` the stage runs as the `spice-update` binary beside this example's
//! folder (`target/release/spice-update`) with `update.processes = N`: N data-parallel ranks
//! over c10d, each with its share of the cores; `just bench --what scaling` compares N = 1
//! and 2 on the same global batch.

use std::path::PathBuf;

use anyhow::Result;
use clap::Parser;
use serde_json::json;
use spice_schemas::{rows::ScoredRow, RunConfig, ShardRow, ShardSpec, ShardWriter, StageOutput};
use spice_stage::{StageArgs, StageCtx};
use spice_update::{Outcome, UpdateOptions};

#[derive(Parser, Debug)]
struct Args {
    /// Hugging Face model folder.
    #[arg(long, default_value = "data/models/smollm2-135m-instruct")]
    model: PathBuf,
    #[arg(long, default_value = "auto")]
    device: String,
    /// Compute dtype, bf16 or f32.
    #[arg(long, default_value = "bf16")]
    dtype: String,
    /// Sequences in the batch (half Challenger, half Reasoner).
    #[arg(long, default_value_t = 100)]
    sequences: usize,
    #[arg(long, default_value_t = 64)]
    prompt: usize,
    /// Completion tokens of every sequence.
    #[arg(long, default_value_t = 256)]
    completion: usize,
    #[arg(long, default_value_t = 8)]
    micro_batch: u32,
    /// Sequences per optimizer step (0: the whole batch).
    #[arg(long, default_value_t = 0)]
    mini_batch: u32,
    #[arg(long)]
    checkpointing: bool,
    /// Run the `spice-update` binary with `update.processes` = this (default: in this process).
    #[arg(long)]
    processes: Option<u32>,
    /// `update.zero_stage` of a data-parallel run: 1 shards AdamW's moments, 0 replicates them.
    #[arg(long, default_value_t = 1)]
    zero_stage: u32,
    /// Forward each common prompt prefix once (`update.shared_prefix`).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    shared_prefix: bool,
}

fn main() -> Result<()> {
    spice_stage::init_logging();
    spice_lm::device::use_all_cores();
    let a = Args::parse();
    let tmp = tempfile::tempdir()?;
    let root = tmp.path().join("run");
    let model = std::fs::canonicalize(&a.model)?;
    let cfg = RunConfig::default().with_overrides(&[
        format!("run.model={:?}", model.display().to_string()),
        format!("run.device={:?}", a.device),
        format!("run.dtype={:?}", a.dtype),
        format!("challenger.max_completion_length={}", a.completion),
        format!("reasoner.max_completion_length={}", a.completion),
        format!("update.micro_batch_size={}", a.micro_batch),
        format!("update.mini_batch_size={}", a.mini_batch),
        format!("update.gradient_checkpointing={}", a.checkpointing),
        format!("update.shared_prefix={}", a.shared_prefix),
        format!("update.processes={}", a.processes.unwrap_or(1)),
        format!("update.zero_stage={}", a.zero_stage),
    ])?;
    std::fs::create_dir_all(&root)?;
    std::fs::write(root.join("run.toml"), cfg.to_toml())?;

    let vocab = serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(
        model.join("config.json"),
    )?)?["vocab_size"]
        .as_u64()
        .unwrap_or(32000) as u32;
    let mut state = 12345u64;
    let mut next = |n: u32| {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((state >> 33) % n as u64) as u32
    };
    let rows: Vec<ScoredRow> = (0..a.sequences)
        .map(|i| {
            let role = if i % 2 == 0 { "challenger" } else { "reasoner" };
            let reward = (next(2)) as f32;
            ScoredRow {
                iteration: 0,
                role: role.into(),
                group_id: format!("g{}", i / 8),
                task_id: format!("t{}", i / 8),
                doc_slot: (i / 8) as u32,
                sample: (i % 8) as u32,
                in_batch: true,
                valid: true,
                extracted: None,
                correct: None,
                pass_rate: None,
                reward,
                advantage: reward - 0.5,
                prompt_ids: (0..a.prompt).map(|_| 3 + next(vocab - 3)).collect(),
                completion_ids: (0..a.completion).map(|_| 3 + next(vocab - 3)).collect(),
                logprobs: vec![-10.0; a.completion],
                finish_reason: "length".into(),
                policy_id: "bench".into(),
            }
        })
        .collect();
    let scored = root.join("iter-0000").join(ScoredRow::FOLDER);
    let out =
        StageOutput::new(&scored, "verify-score", ShardSpec::WHOLE).schema(ScoredRow::schema_id());
    out.begin()?;
    let mut w = ShardWriter::<ScoredRow>::create(out.part_path())?;
    w.write_all(rows)?;
    w.finish()?;
    out.commit(&spice_schemas::metrics::NoMetrics {})?;

    let m = if a.processes.is_some() {
        // examples/ sits in the profile folder beside the binaries.
        let exe = std::env::current_exe()?;
        let bin = exe.parent().and_then(|d| d.parent()).map(|d| d.join("spice-update"));
        let bin = bin.filter(|b| b.exists()).ok_or_else(|| {
            anyhow::anyhow!(
                "no spice-update beside {}: cargo build --release --workspace --bins",
                exe.display()
            )
        })?;
        let status = std::process::Command::new(&bin)
            .args(["--run", root.to_str().unwrap_or_default(), "--iter", "0"])
            .status()?;
        anyhow::ensure!(status.success(), "{} failed: {status}", bin.display());
        spice_schemas::Manifest::read(&root.join("iter-0000/update/_manifest.json"))?
    } else {
        let ctx = StageCtx::load(&StageArgs {
            run: root,
            iter: 0,
            device: None,
            seed: None,
            shard: ShardSpec::WHOLE,
            force: false,
        })?;
        let Outcome::Updated(m) = spice_update::run(&ctx, &UpdateOptions::default())? else {
            anyhow::bail!("the update did not run");
        };
        *m
    };
    let per_100 = |k: &str| m.metric(k).unwrap_or(f64::NAN) * 100.0 / a.sequences as f64;
    let line = json!({
        "model": a.model, "sequences": a.sequences, "prompt": a.prompt, "completion": a.completion,
        "micro_batch": a.micro_batch, "checkpointing": a.checkpointing, "threads": spice_lm::tch::get_num_threads(),
        "processes": a.processes.unwrap_or(1), "zero_stage": a.zero_stage, "shared_prefix": a.shared_prefix, "dtype": a.dtype,
        "seconds_per_100_sequences": { "score_old": per_100("score_seconds"), "train": per_100("train_seconds"),
            "save": m.metric("save_seconds"), "stage_total": per_100("seconds") },
        "metrics": m.metrics,
    });
    println!("{line}");
    Ok(())
}
