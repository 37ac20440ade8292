//! The policy: model, tokenizer, chat template, EOS ids and end-of-turn token of one Hugging
//! Face folder.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use tch::{Device, Kind};

use crate::chat::{ChatMessage, ChatTemplate};
use crate::config::Config;
use crate::folder;
use crate::model::Model;
use crate::tokenizer::Tokenizer;

pub struct Policy {
    pub(crate) dir: PathBuf,
    pub(crate) model: Model,
    tokenizer: Tokenizer,
    /// The folder's chat template, or why it could not be read (reported on use).
    chat: std::result::Result<ChatTemplate, String>,
    eos_ids: Vec<u32>,
    /// The chat template's end-of-turn token (see [`crate::chat::end_of_turn_id`]).
    end_of_turn: Option<u32>,
    /// Compute dtype (Float or BFloat16); the trainable master weights are always f32.
    pub(crate) dtype: Kind,
    /// Tokens the KV cache of one `generate` call may hold (None: from free memory).
    kv_cache_tokens: Option<usize>,
    /// Whether generation may take the batch-invariant path where it exists (f32 on a CPU).
    pub(crate) batch_invariant_allowed: bool,
    /// The weights of every `generate` call, after [`Policy::generation_only`].
    pub(crate) generation: Option<crate::generate::GenerationWeights>,
}

impl Policy {
    /// Load a Hugging Face folder onto `device`, computing in `dtype` (Float or BFloat16).
    pub fn load(dir: &Path, device: Device, dtype: Kind) -> Result<Policy> {
        if !matches!(dtype, Kind::Float | Kind::BFloat16 | Kind::Half) {
            bail!("compute dtype {dtype:?} is not supported (use f32 or bf16)");
        }
        let cfg = folder::read_config(dir)?;
        let tokenizer = Tokenizer::from_file(&folder::required(dir, folder::TOKENIZER)?)?;
        let chat = ChatTemplate::from_folder(dir).map_err(|e| format!("{e:#}"));
        let mut eos_ids = folder::eos_ids(dir, &cfg)?;
        if eos_ids.is_empty() {
            bail!(
                "{}: no eos_token_id in config.json or generation_config.json; generation \
                 could never stop",
                dir.display()
            );
        }
        eos_ids.dedup();
        let end_of_turn =
            chat.as_ref().ok().and_then(|c| crate::chat::end_of_turn_id(c, &tokenizer));
        let tensors = folder::read_weights(dir)?;
        let model = Model::from_tensors(cfg, tensors, device)
            .with_context(|| format!("building the model of {}", dir.display()))?;
        if dtype != Kind::Float && device == Device::Cpu && !crate::device::cpu_has_native_bf16() {
            tracing::warn!(
                "this CPU has no native bf16 matrix instructions (avx512_bf16/amx): \
                 computing in f32, which is faster here"
            );
        }
        Ok(Policy {
            dir: dir.to_path_buf(),
            model,
            tokenizer,
            chat,
            eos_ids,
            end_of_turn,
            dtype,
            kv_cache_tokens: None,
            batch_invariant_allowed: true,
            generation: None,
        })
    }

    /// Bound the KV cache of each `generate` call to `tokens` (None: half the free memory).
    /// Fewer samples then decode together; what each generates does not change.
    pub fn set_kv_cache_tokens(&mut self, tokens: Option<usize>) {
        self.kv_cache_tokens = tokens;
    }

    /// Allow (the default) or forbid batch-invariant generation (see
    /// [`Policy::batch_invariant`]). Forbidden, f32 on a CPU prefills distinct prompts together
    /// and decodes every slot over a shared span: faster with short prompts, and a row's
    /// last bits, rarely its tokens, then depend on its batch.
    pub fn set_batch_invariant(&mut self, allowed: bool) {
        assert!(
            self.generation.is_none(),
            "set_batch_invariant after generation_only: the generation weights are already made"
        );
        self.batch_invariant_allowed = allowed;
    }

    pub fn kv_cache_tokens(&self) -> Option<usize> {
        self.kv_cache_tokens
    }

    pub fn config(&self) -> &Config {
        &self.model.cfg
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    pub fn eos_ids(&self) -> &[u32] {
        &self.eos_ids
    }

    /// Whether the folder has a chat template that compiled (prompts can be rendered with it).
    pub fn has_chat_template(&self) -> bool {
        self.chat.is_ok()
    }

    /// The token that closes an assistant turn in the chat template, when the template has
    /// one ([`crate::chat::end_of_turn_id`] says how it is found). It is often the EOS
    /// (instruct models), but not always: a base model may carry a ChatML template while its
    /// EOS is `<|endoftext|>`.
    pub fn end_of_turn_id(&self) -> Option<u32> {
        self.end_of_turn
    }

    /// The tokens that end a completion of a prompt rendered with the chat template: the EOS
    /// ids and the end-of-turn token, in that order, without repeats. Pass the ones beyond the
    /// EOS as [`crate::SamplingParams::stop_token_ids`].
    pub fn chat_stop_ids(&self) -> Vec<u32> {
        let mut ids = self.eos_ids.clone();
        if let Some(e) = self.end_of_turn.filter(|e| !ids.contains(e)) {
            ids.push(e);
        }
        ids
    }

    /// `ids` with their text, for logs: `2 <|im_end|>, 0 <|endoftext|>`.
    pub fn describe_tokens(&self, ids: &[u32]) -> String {
        ids.iter()
            .map(|&id| match self.tokenizer.token_text(id) {
                Some(t) => format!("{id} {t}"),
                None => id.to_string(),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The compute dtype asked for at load.
    pub fn dtype(&self) -> Kind {
        self.dtype
    }

    /// The dtype the weights are multiplied in: the requested one, except bf16 on a CPU
    /// without native bf16 GEMMs, where emulated bf16 is several times slower than f32.
    /// (Generation still reads bf16 weights there for decode steps of a few rows, where
    /// bandwidth, not arithmetic, is the limit: see `generate::NARROW_DECODE_ROWS`.)
    pub fn compute_kind(&self) -> Kind {
        crate::device::compute_kind_on(
            self.device(),
            self.dtype,
            crate::device::cpu_has_native_bf16(),
        )
    }

    pub fn device(&self) -> Device {
        self.model.device()
    }

    /// The folder this policy was loaded from (tokenizer and template files are copied from
    /// it when saving a checkpoint).
    pub fn source_dir(&self) -> &Path {
        &self.dir
    }

    pub fn model(&self) -> &Model {
        &self.model
    }

    /// Trainable parameters (tied embeddings counted once): P of the 6·P·tokens model FLOPs.
    pub fn parameter_count(&self) -> u64 {
        self.model.vs.trainable_variables().iter().map(|t| t.numel() as u64).sum()
    }

    /// The trainable f32 variables (for the optimizer and checkpoints).
    pub fn var_store(&self) -> &tch::nn::VarStore {
        &self.model.vs
    }

    /// Prompt text for chat `messages` through the folder's chat template.
    pub fn render_chat(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<String> {
        match &self.chat {
            Ok(chat) => chat.render(messages, add_generation_prompt),
            Err(why) => bail!("no usable chat template: {why}"),
        }
    }
}

impl Policy {
    /// Replace the EOS ids (an empty list makes every row run to `max_new_tokens`, as
    /// benchmarks need).
    pub fn set_eos_ids(&mut self, ids: Vec<u32>) {
        self.eos_ids = ids;
    }
}
