//! `spice-lm`: a quick look at a policy model (generate, logits), its speed (bench), what
//! this machine gives it (doctor), and the slot for importing the default GGUF model.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use spice_lm::{device, ChatMessage, GenRequest, Policy, SamplingParams};

#[derive(Parser)]
#[command(
    name = "spice-lm",
    version,
    about = "The SPICE policy model: generate, benchmark, import"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate one completion and print it to stdout (tokens/s on stderr).
    Generate {
        /// Hugging Face model folder (config.json, model.safetensors, tokenizer.json, …).
        #[arg(long)]
        model: PathBuf,
        #[arg(long)]
        prompt: String,
        /// Wrap the prompt as a user message in the model's chat template.
        #[arg(long)]
        chat: bool,
        #[arg(long, default_value_t = 256)]
        max_new_tokens: usize,
        /// 0 = greedy.
        #[arg(long, default_value_t = 0.0)]
        temperature: f64,
        #[arg(long, default_value_t = 1.0)]
        top_p: f64,
        /// 0 = off.
        #[arg(long, default_value_t = 0)]
        top_k: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Stop once the completion contains this string (repeatable).
        #[arg(long = "stop")]
        stop: Vec<String>,
        /// auto, cpu, cuda or cuda:N.
        #[arg(long, default_value = "auto")]
        device: String,
        /// Compute dtype: f32 or bf16 (weights stay f32).
        #[arg(long, default_value = "f32")]
        dtype: String,
    },
    /// Logits of token sequences, for comparing with another implementation: every int64
    /// tensor `input_{i}` of --inputs becomes an f32 tensor `logits_{i}` [seq, vocab] in --out.
    Logits {
        #[arg(long)]
        model: PathBuf,
        /// A safetensors file with 1-D int64 tensors `input_0`, `input_1`, …
        #[arg(long)]
        inputs: PathBuf,
        /// The safetensors file to write.
        #[arg(long)]
        out: PathBuf,
        /// auto, cpu, cuda or cuda:N.
        #[arg(long, default_value = "auto")]
        device: String,
        /// Compute dtype: f32 or bf16.
        #[arg(long, default_value = "f32")]
        dtype: String,
    },
    /// What this machine and build give the policy: libtorch and its CUDA backend, driver,
    /// devices, cuDNN, NCCL, the CPU's ISA and matmul path, threads, and what
    /// `device = "auto"` picks and why.
    Doctor {
        /// text or json.
        #[arg(long, default_value = "text")]
        format: String,
    },
    /// The sampling draws of a stream (draw t picks a sample's t-th token), computed on
    /// `--device` as generation computes them: one JSON line `{"seed", "device", "bits"}` with
    /// each draw's f32 bits, to compare devices and the SplitMix64 reference.
    Draws {
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(long, default_value_t = 16)]
        count: u64,
        /// auto, cpu, cuda or cuda:N.
        #[arg(long, default_value = "cpu")]
        device: String,
    },
    /// Measure generation tokens/s and the training step (time, peak memory); one JSON line
    /// per measurement on stdout.
    Bench(spice_lm::bench::BenchArgs),
    /// Convert a GGUF file (Llama family) into a Hugging Face folder: f32 safetensors,
    /// config.json, tokenizer.json and the chat template (the spice-gguf importer).
    ImportGguf {
        /// The .gguf file.
        #[arg(long)]
        gguf: PathBuf,
        /// The folder to write (e.g. data/models/smollm2-135m-instruct).
        #[arg(long)]
        out: PathBuf,
        /// Import even if the folder records the same source digest.
        #[arg(long)]
        force: bool,
    },
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    device::use_all_cores();
    match Cli::parse().command {
        Command::Generate {
            model,
            prompt,
            chat,
            max_new_tokens,
            temperature,
            top_p,
            top_k,
            seed,
            stop,
            device: dev,
            dtype,
        } => {
            let policy =
                Policy::load(&model, device::parse_device(&dev)?, device::parse_dtype(&dtype)?)?;
            let text = if chat {
                policy.render_chat(&[ChatMessage::new("user", &prompt)], true)?
            } else {
                prompt
            };
            let prompt_ids = policy.tokenizer().encode(&text)?;
            // A chat prompt ends at the template's end of turn too.
            let stop_token_ids = if chat { policy.chat_stop_ids() } else { Vec::new() };
            let params = SamplingParams {
                temperature,
                top_p,
                top_k,
                max_new_tokens,
                stop_strings: stop,
                stop_token_ids,
            };
            let (gens, stats) =
                policy.generate_with_stats(&[GenRequest { prompt_ids, seed }], &params, 1, None)?;
            let g = &gens[0];
            let mut out = std::io::stdout().lock();
            writeln!(out, "{}", g.text)?;
            eprintln!(
                "{} tokens in {:.2} s ({:.1} tokens/s), finish: {}",
                stats.new_tokens,
                stats.seconds,
                stats.new_tokens as f64 / stats.seconds.max(1e-9),
                g.finish_reason.as_str()
            );
            Ok(())
        }
        Command::Bench(args) => spice_lm::bench::run(&args),
        Command::Draws { seed, count, device: dev } => {
            use spice_lm::sample::{stream_counter, stream_key, uniforms_on};
            let choice = device::resolve_device(&dev)?;
            let key = stream_key(seed);
            let counters: Vec<u64> = (0..count).map(|t| stream_counter(key, t)).collect();
            let u: Vec<f32> = Vec::try_from(
                uniforms_on(&counters, choice.device).view([-1]).to_device(tch::Device::Cpu),
            )?;
            let bits: Vec<u32> = u.iter().map(|x| x.to_bits()).collect();
            let label = device::device_label(choice.device);
            println!("{}", serde_json::json!({ "seed": seed, "device": label, "bits": bits }));
            Ok(())
        }
        Command::Logits { model, inputs, out, device: dev, dtype } => {
            let choice = device::resolve_device(&dev)?;
            let policy = Policy::load(&model, choice.device, device::parse_dtype(&dtype)?)?;
            logits(&policy, &inputs, &out)
        }
        Command::Doctor { format } => {
            let d = spice_lm::doctor::Doctor::probe();
            match format.as_str() {
                "text" => print!("{}", d.text()),
                "json" => println!("{}", serde_json::to_string_pretty(&d)?),
                other => bail!("--format {other:?}: use text or json"),
            }
            Ok(())
        }
        Command::ImportGguf { gguf, out, force } => {
            let opts = spice_gguf::ImportOptions { force, progress: true };
            let r = spice_gguf::import_gguf_with(&gguf, &out, &opts)?;
            let what = if r.skipped { "up to date" } else { "imported" };
            eprintln!(
                "{what}: {} ({} tensors, {} parameters) in {:.1} s",
                r.out_dir.display(),
                r.tensors,
                r.parameters,
                r.seconds
            );
            Ok(())
        }
    }
}

/// `spice-lm logits`: one forward pass per `input_{i}` of `inputs`, logits in f32.
fn logits(policy: &Policy, inputs: &Path, out: &Path) -> Result<()> {
    use spice_lm::tch::{Kind, Tensor};
    let tensors = Tensor::read_safetensors(inputs)
        .with_context(|| format!("reading {}", inputs.display()))?;
    let mut named: Vec<(String, Tensor)> = Vec::new();
    // Compute-dtype weights once for every input.
    let w = tch::no_grad(|| policy.model().weights(policy.compute_kind()));
    let vocab = policy.config().vocab_size as i64;
    for (name, t) in tensors {
        let Some(i) = name.strip_prefix("input_") else { continue };
        if t.dim() != 1 || t.kind() != Kind::Int64 {
            bail!(
                "{}: tensor {name} must be 1-D int64 token ids, got {:?} {:?}",
                inputs.display(),
                t.kind(),
                t.size()
            );
        }
        if t.size()[0] == 0 || t.max().int64_value(&[]) >= vocab || t.min().int64_value(&[]) < 0 {
            bail!(
                "{}: tensor {name} is empty or holds ids outside the vocabulary ({vocab})",
                inputs.display()
            );
        }
        let logits = tch::no_grad(|| {
            let ids = t.to_device(policy.device()).unsqueeze(0);
            w.logits(&ids).squeeze_dim(0).to_kind(Kind::Float).to_device(spice_lm::Device::Cpu)
        });
        named.push((format!("logits_{i}"), logits));
    }
    if named.is_empty() {
        bail!("{}: no tensor named input_<i>", inputs.display());
    }
    named.sort_by(|a, b| a.0.cmp(&b.0));
    Tensor::write_safetensors(&named, out).with_context(|| format!("writing {}", out.display()))?;
    eprintln!("{} logits tensors written to {}", named.len(), out.display());
    Ok(())
}
