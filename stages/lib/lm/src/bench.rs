//! `spice-lm bench`: generation throughput and the training step, one JSON line per run on
//! stdout, so a driver can interleave it with the transformers baseline
//! (`benches/transformers_bench.py`, same output format) and report best and median.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use clap::Args;
use rand::{Rng, SeedableRng};
use serde_json::json;
use tch::{Kind, Tensor};

use crate::device::{parse_device, parse_dtype};
use crate::logprobs::{forwarded_tokens, shared_prefix_order, GradOptions, ScoreRow};
use crate::optim::{AdamW, AdamWConfig};
use crate::peak::sync;
use crate::{GenRequest, Policy, SamplingParams};

mod spice;

#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// Hugging Face model folder.
    #[arg(long)]
    pub model: PathBuf,
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Compute dtypes to measure, comma-separated.
    #[arg(long, default_value = "bf16,f32", value_delimiter = ',')]
    pub dtypes: Vec<String>,
    /// Generation batch sizes, comma-separated.
    #[arg(long, default_value = "1,8,32,64", value_delimiter = ',')]
    pub batches: Vec<usize>,
    #[arg(long, default_value_t = 64)]
    pub prompt_len: usize,
    /// Exactly this many tokens are generated per row (EOS is ignored).
    #[arg(long, default_value_t = 128)]
    pub new_tokens: usize,
    /// Runs of each measurement.
    #[arg(long, default_value_t = 1)]
    pub repeats: usize,
    /// What to measure: generate, update, all, or spice (the SPICE-shaped workloads: G
    /// attempts at long documents, K answers to short questions, with real early stops).
    #[arg(long, default_value = "all")]
    pub what: String,
    /// Update step: sequences, tokens per sequence, and completion tokens (the loss covers
    /// the last this many tokens of each sequence).
    #[arg(long, default_value_t = 16)]
    pub update_rows: usize,
    #[arg(long, default_value_t = 512)]
    pub update_seq: usize,
    #[arg(long, default_value_t = 256)]
    pub update_completion: usize,
    /// Update step of mixed lengths instead of `update_rows` equal ones: groups
    /// `COUNTxPROMPT+COMPLETION`, comma-separated. The `cpu.toml`-shaped step is
    /// `32x548+158/4,48x65+150/8`: 8 documents × 4 Challenger attempts and 6 tasks × 8
    /// Reasoner answers, 32,912 tokens (a real one held 32,923). `/S` makes each S rows of a
    /// group share one prompt, as a document's attempts and a task's answers do.
    #[arg(long)]
    pub update_mix: Option<String>,
    /// Forward each common prompt prefix of a micro-batch once (the update's
    /// `update.shared_prefix`).
    #[arg(long)]
    pub shared_prefix: bool,
    /// Rows per forward/backward pass (1 keeps the default model's step under 4 GB).
    #[arg(long, default_value_t = 1)]
    pub micro_batch: usize,
    #[arg(long)]
    pub checkpointing: bool,
    /// libtorch intra-op threads (default: every core).
    #[arg(long)]
    pub threads: Option<i32>,
    /// `--what spice`: the corpus its documents come from.
    #[arg(long, default_value = "data/corpus")]
    pub corpus: PathBuf,
    /// `--what spice`: the prompts as token ids (JSON), written from the corpus when absent,
    /// so the baseline reads exactly the same ones.
    #[arg(long, default_value = "bench-spice-prompts.json")]
    pub spice_prompts: PathBuf,
}

/// Peak resident memory of this process in bytes (Linux `VmHWM`), if known.
pub fn peak_rss() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Reset the peak-RSS counter so the next measurement covers only what follows.
pub fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Device memory in use on a CUDA device (driver order; `CUDA_VISIBLE_DEVICES` as a plain
/// index list is followed), the context included; `None` on the CPU.
fn gpu_used(device: tch::Device) -> Option<u64> {
    let tch::Device::Cuda(n) = device else { return None };
    crate::cuda::gpu_memory_used(crate::cuda::nvml_index(n)?)
}

pub fn run(a: &BenchArgs) -> Result<()> {
    let device = parse_device(&a.device)?;
    let label = crate::device::device_label(device);
    if let Some(t) = a.threads {
        tch::set_num_threads(t.max(1));
    }
    let host_threads = tch::get_num_threads();
    for dt in &a.dtypes {
        let dtype = parse_dtype(dt)?;
        let mut policy = Policy::load(&a.model, device, dtype)?;
        let vocab = policy.config().vocab_size as u32;
        if a.what == "generate" || a.what == "all" {
            // Forced length, as transformers' min_new_tokens = max_new_tokens.
            policy.set_eos_ids(Vec::new());
            let params = SamplingParams { max_new_tokens: a.new_tokens, ..Default::default() };
            for &b in &a.batches {
                let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(b as u64);
                let reqs: Vec<GenRequest> = (0..b)
                    .map(|i| GenRequest {
                        prompt_ids: (0..a.prompt_len).map(|_| rng.random_range(3..vocab)).collect(),
                        seed: i as u64,
                    })
                    .collect();
                for r in 0..a.repeats {
                    let (_, stats) = policy.generate_with_stats(&reqs, &params, b, None)?;
                    sync(device);
                    let line = json!({
                        "impl": "spice-lm", "bench": "generate", "dtype": dt, "batch": b,
                        "run": r, "new_tokens": stats.new_tokens, "seconds": stats.seconds,
                        "tokens_per_s": stats.new_tokens as f64 / stats.seconds,
                        "threads": host_threads, "device": label,
                        "compute": format!("{:?}", policy.compute_kind()),
                    });
                    println!("{line}");
                }
            }
        }
        if a.what == "spice" {
            let workloads = spice::workloads(&policy, &a.corpus, &a.spice_prompts)?;
            for r in 0..a.repeats {
                for w in &workloads {
                    let mut line = spice::run(&policy, w)?;
                    line.insert("dtype".into(), json!(dt));
                    line.insert("run".into(), json!(r));
                    line.insert("threads".into(), json!(host_threads));
                    line.insert("device".into(), json!(label));
                    line.insert("compute".into(), json!(format!("{:?}", policy.compute_kind())));
                    println!("{}", serde_json::Value::Object(line));
                }
            }
        }
        if a.what == "update" || a.what == "all" {
            let mut opt = AdamW::new(policy.var_store(), AdamWConfig::default());
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
            let shape = match &a.update_mix {
                Some(mix) => parse_update_mix(mix)?,
                None => vec![MixGroup {
                    count: a.update_rows,
                    prompt: a.update_seq - a.update_completion,
                    completion: a.update_completion,
                    samples: 1,
                }],
            };
            // Each row with its advantage, drawn before any ordering, so the shared and padded
            // layouts take the same step.
            let mut rows: Vec<(ScoreRow, f32)> = Vec::new();
            for g in &shape {
                let mut prompt = Vec::new();
                for k in 0..g.count {
                    if k % g.samples == 0 {
                        prompt = (0..g.prompt).map(|_| rng.random_range(3..vocab)).collect();
                    }
                    let row = ScoreRow {
                        prompt_ids: prompt.clone(),
                        completion_ids: (0..g.completion)
                            .map(|_| rng.random_range(3..vocab))
                            .collect(),
                    };
                    rows.push((row, rng.random_range(-1.0..1.0)));
                }
            }
            // As the update orders a mini-batch: shortest first (little padding per pass), or
            // with a shared prefix in prompt order (rows that start alike together).
            if a.shared_prefix {
                rows.sort_by(|x, y| shared_prefix_order(&x.0, &y.0));
            } else {
                rows.sort_by_key(|r| r.0.prompt_ids.len() + r.0.completion_ids.len());
            }
            let (rows, adv): (Vec<ScoreRow>, Vec<f32>) = rows.into_iter().unzip();
            let n_rows = rows.len();
            let tokens: usize =
                rows.iter().map(|r| r.prompt_ids.len() + r.completion_ids.len()).sum();
            let longest = rows.iter().map(|r| r.completion_ids.len()).max().unwrap_or(0);
            // What the body runs over: with a shared prefix each prompt once per micro-batch.
            let forwarded = forwarded_tokens(&rows, a.micro_batch, a.shared_prefix);
            let norm = (n_rows * longest) as f64;
            let params: i64 = policy.parameter_count() as i64;
            let peak = crate::peak::matmul_flops(
                device,
                policy.compute_kind(),
                crate::peak::PEAK_GEMM_SIZE,
                3,
            );
            for r in 0..a.repeats {
                reset_peak_rss();
                let t0 = Instant::now();
                opt.zero_grad();
                let opts = GradOptions {
                    micro_batch: a.micro_batch,
                    checkpointing: a.checkpointing,
                    shared_prefix: a.shared_prefix,
                };
                // Dr. GRPO's surrogate with π_old = the current policy: ρ = 1, gradient A·∇log π.
                let loss = policy.accumulate_gradients(&rows, opts, &mut |idx, lp| {
                    let a: Vec<f32> = idx.iter().map(|&i| adv[i]).collect();
                    let a = Tensor::from_slice(&a).to_device(lp.logprobs.device()).unsqueeze(1);
                    let ratio = (&lp.logprobs - lp.logprobs.detach()).exp();
                    Ok(-(ratio * a * &lp.mask).sum(Kind::Float) / norm)
                })?;
                let gnorm = opt.clip_grad_norm(1.0);
                opt.step();
                sync(device);
                let secs = t0.elapsed().as_secs_f64();
                let model_flops = 6.0 * params as f64 * forwarded as f64 / secs;
                let line = json!({
                    "impl": "spice-lm", "bench": "update", "dtype": dt, "rows": n_rows,
                    "seq": a.update_seq, "completion": a.update_completion,
                    "mix": a.update_mix, "tokens": tokens, "forwarded_tokens": forwarded,
                    "model_flops": model_flops,
                    "matmul_peak_flops": peak, "peak_fraction": model_flops / peak,
                    "micro_batch": a.micro_batch, "checkpointing": a.checkpointing, "run": r,
                    "shared_prefix": a.shared_prefix,
                    "seconds": secs, "peak_rss_bytes": peak_rss(), "loss": loss,
                    "grad_norm": gnorm, "threads": host_threads, "device": label,
                    "gpu_used_bytes": gpu_used(device),
                    "compute": format!("{:?}", policy.compute_kind()),
                });
                println!("{line}");
            }
        }
    }
    Ok(())
}

/// One group of `--update-mix`: `count` rows of `prompt` + `completion` tokens, each
/// `samples` of them sharing one prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MixGroup {
    pub count: usize,
    pub prompt: usize,
    pub completion: usize,
    pub samples: usize,
}

/// `COUNTxPROMPT+COMPLETION[/SAMPLES][,…]` → its groups.
pub fn parse_update_mix(mix: &str) -> Result<Vec<MixGroup>> {
    mix.split(',')
        .map(|g| {
            let parse = || -> Option<MixGroup> {
                let (count, rest) = g.trim().split_once('x')?;
                let (lens, samples) = match rest.split_once('/') {
                    Some((lens, s)) => (lens, s.parse().ok()?),
                    None => (rest, 1),
                };
                let (p, c) = lens.split_once('+')?;
                let (count, prompt, completion) =
                    (count.parse().ok()?, p.parse().ok()?, c.parse().ok()?);
                Some(MixGroup { count, prompt, completion, samples })
            };
            match parse() {
                Some(m) if m.count > 0 && m.completion > 0 && m.samples > 0 => Ok(m),
                _ => anyhow::bail!(
                    "--update-mix group {g:?}: expected COUNTxPROMPT+COMPLETION[/SAMPLES] with \
                     COUNT, COMPLETION and SAMPLES > 0, e.g. 32x548+158/4"
                ),
            }
        })
        .collect()
}
