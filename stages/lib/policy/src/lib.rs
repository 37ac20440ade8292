//! A stage's use of the policy (`spice-challenge`, `spice-rollout`, `spice-eval`): load the
//! iteration's model on the run's device and dtype, name it for the rows it writes, wrap a
//! user message in its chat template, and generate with a progress bar and a throughput
//! record.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use spice_lm::{ChatMessage, GenRequest, Generation, Policy, SamplingParams};
use spice_schemas::{digest::digest_path, layout::policy_id, metrics::GenerationMetrics};

/// A loaded policy, the id its rows record (`checkpoint@3fa2c0d91b7e`) and the device it
/// runs on (`cpu`, `cuda:0`), which the stage's manifest records.
pub struct StagePolicy {
    pub policy: Policy,
    pub id: String,
    pub device: String,
    /// Whether prompts are rendered with the model's chat template ([`StagePolicy::chat_prompt`]).
    pub chat: bool,
}

impl StagePolicy {
    /// Load `dir` on `device` (`auto|cpu|cuda:N`) computing in `dtype` (`bf16|f32`).
    pub fn load(dir: &Path, device: &str, dtype: &str) -> Result<StagePolicy> {
        spice_lm::device::use_all_cores();
        let dev = spice_lm::parse_device(device)?;
        let kind = spice_lm::parse_dtype(dtype)?;
        let t0 = Instant::now();
        spice_schemas::prune::refuse_pruned(dir)?;
        let policy = Policy::load(dir, dev, kind)
            .with_context(|| format!("loading the policy from {}", dir.display()))?;
        let digest = digest_path(dir).with_context(|| format!("digesting {}", dir.display()))?;
        let id = policy_id(dir, &digest);
        let device = spice_lm::device_label(dev);
        tracing::info!(policy = %id, device, dtype, seconds = t0.elapsed().as_secs_f64(), "policy loaded");
        let chat = policy.has_chat_template();
        let sp = StagePolicy { policy, id, device, chat };
        let stops = sp.stop_token_ids(&SamplingParams::default());
        tracing::info!(
            chat_template = chat,
            stop_tokens = %sp.policy.describe_tokens(&stops),
            batch_invariant = sp.policy.batch_invariant(),
            "generation stops at these tokens"
        );
        Ok(sp)
    }

    /// `params` with the chat template's end-of-turn token among its stop tokens when prompts
    /// are rendered with the template: a completion ends where its assistant turn ends, even
    /// when the model's EOS is another token.
    pub fn with_turn_stops(&self, params: &SamplingParams) -> SamplingParams {
        let mut p = params.clone();
        if self.chat {
            for id in self.policy.chat_stop_ids() {
                if !self.policy.eos_ids().contains(&id) && !p.stop_token_ids.contains(&id) {
                    p.stop_token_ids.push(id);
                }
            }
        }
        p
    }

    /// Every token id that ends a completion generated with `params` through
    /// [`StagePolicy::generate`]: the EOS ids, then the other stop tokens.
    pub fn stop_token_ids(&self, params: &SamplingParams) -> Vec<u32> {
        let mut ids = self.policy.eos_ids().to_vec();
        for id in self.with_turn_stops(params).stop_token_ids {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        ids
    }

    /// The prompt text and token ids for one user message: through the chat template when
    /// the model has one, else the message itself (base models without a template).
    pub fn chat_prompt(&self, user: &str) -> Result<(String, Vec<u32>)> {
        let text = match self.policy.render_chat(&[ChatMessage::new("user", user)], true) {
            Ok(t) => t,
            Err(e) => {
                tracing::debug!("no chat template ({e:#}); using the raw message");
                user.to_string()
            }
        };
        let ids = self.policy.tokenizer().encode(&text)?;
        Ok((text, ids))
    }

    /// [`StagePolicy::chat_prompt`] with `prefix` written as the start of the assistant's
    /// answer.
    pub fn chat_prompt_with_prefix(&self, user: &str, prefix: &str) -> Result<(String, Vec<u32>)> {
        if prefix.is_empty() {
            return self.chat_prompt(user);
        }
        let (text, _) = self.chat_prompt(user)?;
        let text = format!("{text}{prefix}");
        let ids = self.policy.tokenizer().encode(&text)?;
        Ok((text, ids))
    }

    /// Generate for every request with a progress bar over generated tokens (and finished
    /// samples), stopping at the EOS ids and, for chat prompts, at the template's end of turn
    /// ([`StagePolicy::with_turn_stops`]); returns the generations in request order and the
    /// generation's metrics (throughput, stop tokens, batch invariance).
    pub fn generate(
        &self,
        requests: &[GenRequest],
        params: &SamplingParams,
        batch_size: usize,
        what: &str,
    ) -> Result<(Vec<Generation>, GenerationMetrics)> {
        let budget = (requests.len() * params.max_new_tokens) as u64;
        let pb = spice_stage::progress(budget, what, "tokens");
        let params = self.with_turn_stops(params);
        let (gens, stats) =
            self.policy.generate_with_stats(requests, &params, batch_size, Some(&pb))?;
        pb.finish();
        let mut t =
            GenerationMetrics::new(gens.len() as u64, stats.new_tokens as u64, stats.seconds);
        t.prompt_tokens = stats.engine.prompt_tokens as u64;
        t.prefill_tokens = stats.engine.prefill_tokens as u64;
        t.prefill_seconds = stats.engine.prefill_seconds;
        t.max_live_rows = stats.engine.slots as u64;
        t.stop_token_ids = self.stop_token_ids(&params);
        t.batch_invariant = self.policy.batch_invariant();
        t.peak_rss_mib = spice_lm::bench::peak_rss().map_or(0.0, |b| b as f64 / (1024.0 * 1024.0));
        tracing::info!(
            rows = t.rows,
            new_tokens = t.new_tokens,
            prefill_tokens = t.prefill_tokens,
            prompt_tokens = t.prompt_tokens,
            prefill_seconds = t.prefill_seconds,
            live_rows = t.max_live_rows,
            seconds = t.generation_seconds,
            tokens_per_second = t.tokens_per_second,
            peak_rss_mib = t.peak_rss_mib,
            "{what} done"
        );
        Ok((gens, t))
    }
}

/// Sampling settings of a role from its config section.
pub fn sampling(temperature: f64, top_p: f64, top_k: u32, max_new_tokens: u32) -> SamplingParams {
    SamplingParams {
        temperature,
        top_p,
        top_k: top_k as usize,
        max_new_tokens: max_new_tokens as usize,
        ..SamplingParams::default()
    }
}
