//! The SPICE-shaped generation workloads of `spice-lm bench --what spice`: what one
//! iteration of `pipelines/cpu.toml` asks of the engine.
//!
//! - `challenger`: 8 documents of 512 tokens from the corpus, each in a chat prompt asking
//!   for a question about it, 4 attempts each, up to 128 new tokens;
//! - `reasoner`: 8 short questions, 8 answers each, up to 256 new tokens.
//!
//! Sampled at temperature 1 with the model's own EOS, so answers stop where the model stops
//! them. The prompts (token ids) are written to a JSON file once and read back, so the
//! transformers baseline runs exactly the same ones.

use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::{ChatMessage, GenRequest, Policy, SamplingParams};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Workload {
    pub name: String,
    /// Distinct prompts, as token ids.
    pub prompts: Vec<Vec<u32>>,
    /// Samples per prompt (G or K).
    pub samples: usize,
    pub max_new_tokens: usize,
}

const DOCUMENTS: usize = 8;
const DOC_TOKENS: usize = 512;

const QUESTIONS: [&str; 8] = [
    "What is 17 multiplied by 23? Put the final answer in \\boxed{}.",
    "A train travels 180 km in 2.5 hours. What is its average speed in km/h? Put the final answer in \\boxed{}.",
    "Which planet in the solar system is the largest? Answer with one word in \\boxed{}.",
    "What is the derivative of x^3 + 2x with respect to x? Put the final answer in \\boxed{}.",
    "If a shirt costs $40 and is discounted by 15%, what is the new price? Put the final answer in \\boxed{}.",
    "What is the capital of Australia? Put the final answer in \\boxed{}.",
    "How many prime numbers are there between 10 and 30? Put the final answer in \\boxed{}.",
    "Simplify (2x + 3)(x - 1). Put the final answer in \\boxed{}.",
];

/// The workloads from `file`, or made from the corpus and written there when it is absent.
pub fn workloads(policy: &Policy, corpus: &Path, file: &Path) -> Result<Vec<Workload>> {
    if file.is_file() {
        let text = std::fs::read_to_string(file)?;
        return serde_json::from_str(&text).with_context(|| format!("reading {}", file.display()));
    }
    let chat = |text: &str| -> Result<Vec<u32>> {
        let rendered = policy.render_chat(&[ChatMessage::new("user", text)], true)?;
        policy.tokenizer().encode(&rendered)
    };
    let mut files: Vec<_> = walkdir(corpus)?;
    files.sort();
    let mut documents = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        let ids = policy.tokenizer().encode(&text)?;
        if ids.len() >= DOC_TOKENS {
            documents.push(policy.tokenizer().decode(&ids[..DOC_TOKENS], false)?);
        }
        if documents.len() == DOCUMENTS {
            break;
        }
    }
    if documents.len() < DOCUMENTS {
        bail!("{}: fewer than {DOCUMENTS} documents of {DOC_TOKENS} tokens", corpus.display());
    }
    let challenger = documents
        .iter()
        .map(|d| {
            chat(&format!(
                "Read the document below, then write one hard question that it answers, and \
                 the answer.\n\nDocument:\n{d}"
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    let reasoner = QUESTIONS.iter().map(|q| chat(q)).collect::<Result<Vec<_>>>()?;
    let w = vec![
        Workload {
            name: "challenger".into(),
            prompts: challenger,
            samples: 4,
            max_new_tokens: 128,
        },
        Workload { name: "reasoner".into(), prompts: reasoner, samples: 8, max_new_tokens: 256 },
    ];
    std::fs::write(file, serde_json::to_string(&w)?)
        .with_context(|| format!("writing {}", file.display()))?;
    Ok(w)
}

/// Every `.txt` file under `dir`.
fn walkdir(dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    let mut out = Vec::new();
    let entries = std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
    for e in entries {
        let p = e?.path();
        if p.is_dir() {
            out.extend(walkdir(&p)?);
        } else if p.extension().is_some_and(|x| x == "txt") {
            out.push(p);
        }
    }
    Ok(out)
}

/// One run of `w`: all its samples in one `generate` call, every row in flight at once.
pub fn run(policy: &Policy, w: &Workload) -> Result<Map<String, Value>> {
    let reqs: Vec<GenRequest> = w
        .prompts
        .iter()
        .enumerate()
        .flat_map(|(i, p)| {
            (0..w.samples).map(move |s| GenRequest {
                prompt_ids: p.clone(),
                seed: (i * w.samples + s) as u64,
            })
        })
        .collect();
    let params = SamplingParams { max_new_tokens: w.max_new_tokens, ..Default::default() };
    super::reset_peak_rss();
    let t0 = Instant::now();
    let (gens, stats) = policy.generate_with_stats(&reqs, &params, reqs.len(), None)?;
    super::sync(policy.device());
    let secs = t0.elapsed().as_secs_f64();
    let stopped = gens.iter().filter(|g| g.finish_reason == crate::FinishReason::Stop).count();
    let line = json!({
        "impl": "spice-lm", "bench": "spice", "workload": w.name, "rows": reqs.len(),
        "new_tokens": stats.new_tokens, "seconds": secs,
        "tokens_per_s": stats.new_tokens as f64 / secs,
        "stopped_rows": stopped, "prompt_tokens": stats.engine.prompt_tokens,
        "prefill_tokens": stats.engine.prefill_tokens, "peak_rss_bytes": super::peak_rss(),
    });
    Ok(line.as_object().cloned().unwrap_or_default())
}
