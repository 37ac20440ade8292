//! `spice-lm`: a quick look at a policy model (generate), its speed (bench), and the slot for
//! importing the default GGUF model.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};
use spice_lm::{device, ChatMessage, GenRequest, Policy, SamplingParams};

#[derive(Parser)]
#[command(name = "spice-lm", version, about = "The SPICE policy model: generate, benchmark, import")]
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
            let policy = Policy::load(&model, device::parse_device(&dev)?, device::parse_dtype(&dtype)?)?;
            let text = if chat {
                policy.render_chat(&[ChatMessage::new("user", &prompt)], true)?
            } else {
                prompt
            };
            let prompt_ids = policy.tokenizer().encode(&text)?;
            let params = SamplingParams { temperature, top_p, top_k, max_new_tokens, stop_strings: stop };
            let (gens, stats) = policy.generate_with_stats(
                &[GenRequest { prompt_ids, seed }],
                &params,
                1,
                None,
            )?;
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
