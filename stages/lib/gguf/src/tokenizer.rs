//! `tokenizer.json`, `tokenizer_config.json` and `special_tokens_map.json` rebuilt from the
//! `tokenizer.ggml.*` metadata of a byte-level BPE (`gpt2`) GGUF tokenizer.

use anyhow::{anyhow, bail, Result};
use serde_json::{json, Map, Value};
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, Tokenizer};

use crate::gguf::GgufFile;

/// llama.cpp's `llama_token_type` values stored in `tokenizer.ggml.token_type`.
pub mod token_type {
    pub const NORMAL: u64 = 1;
    pub const UNKNOWN: u64 = 2;
    pub const CONTROL: u64 = 3;
    pub const USER_DEFINED: u64 = 4;
    pub const UNUSED: u64 = 5;
    pub const BYTE: u64 = 6;
}

/// Values of `tokenizer.ggml.pre` whose pre-tokenizer is rebuilt.
pub const SUPPORTED_PRE: [&str; 4] = ["smollm", "starcoder", "gpt2", "default"];

/// What the GGUF says about its tokenizer, decoded once.
#[derive(Debug, Clone)]
pub struct GgufTokenizer {
    pub tokens: Vec<String>,
    pub token_types: Vec<u64>,
    pub merges: Vec<(String, String)>,
    /// `tokenizer.ggml.pre`: which pre-tokenizer the model was trained with.
    pub pre: String,
    pub bos_id: Option<u32>,
    pub eos_id: Option<u32>,
    pub pad_id: Option<u32>,
    pub unk_id: Option<u32>,
    pub add_bos: bool,
    pub chat_template: Option<String>,
}

impl GgufTokenizer {
    pub fn from_gguf(g: &GgufFile) -> Result<Self> {
        let model = g.string("tokenizer.ggml.model")?;
        if model != "gpt2" {
            bail!(
                "{}: `tokenizer.ggml.model` is `{model}`; only byte-level BPE (`gpt2`) tokenizers can be rebuilt",
                g.path.display()
            );
        }
        let tokens = g.string_array("tokenizer.ggml.tokens")?;
        let token_types = if g.has("tokenizer.ggml.token_type") {
            g.uint_array("tokenizer.ggml.token_type")?
        } else {
            vec![token_type::NORMAL; tokens.len()]
        };
        if token_types.len() != tokens.len() {
            bail!(
                "{}: `tokenizer.ggml.token_type` has {} entries but `tokenizer.ggml.tokens` has {}",
                g.path.display(),
                token_types.len(),
                tokens.len()
            );
        }
        let merges = g
            .string_array("tokenizer.ggml.merges")?
            .into_iter()
            .enumerate()
            .map(|(i, m)| {
                m.split_once(' ').map(|(a, b)| (a.to_string(), b.to_string())).ok_or_else(|| {
                    anyhow!(
                        "{}: `tokenizer.ggml.merges`[{i}] = {m:?} has no space",
                        g.path.display()
                    )
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let pre = g.opt_string("tokenizer.ggml.pre")?.unwrap_or_else(|| "default".into());
        if !SUPPORTED_PRE.contains(&pre.as_str()) {
            bail!(
                "{}: pre-tokenizer `{pre}` (`tokenizer.ggml.pre`) is not supported; supported: {}",
                g.path.display(),
                SUPPORTED_PRE.join(", ")
            );
        }
        let id = |k: &str| -> Result<Option<u32>> {
            let v = g.opt_uint(k)?.map(|x| x as u32);
            if let Some(i) = v {
                if i as usize >= tokens.len() {
                    bail!(
                        "{}: `{k}` = {i} is outside the vocabulary of {}",
                        g.path.display(),
                        tokens.len()
                    );
                }
            }
            Ok(v)
        };
        Ok(Self {
            bos_id: id("tokenizer.ggml.bos_token_id")?,
            eos_id: id("tokenizer.ggml.eos_token_id")?,
            pad_id: id("tokenizer.ggml.padding_token_id")?,
            unk_id: id("tokenizer.ggml.unknown_token_id")?,
            add_bos: g.opt_bool("tokenizer.ggml.add_bos_token")?.unwrap_or(false),
            chat_template: g.opt_string("tokenizer.chat_template")?,
            tokens,
            token_types,
            merges,
            pre,
        })
    }

    pub fn token(&self, id: Option<u32>) -> Option<&str> {
        id.and_then(|i| self.tokens.get(i as usize)).map(|s| s.as_str())
    }

    /// Ids of the tokens that are matched before pre-tokenization: control tokens (special,
    /// skipped by `decode(skip_special_tokens)`) and user-defined ones (not special).
    fn added_tokens(&self) -> Vec<(u32, &str, bool)> {
        self.token_types
            .iter()
            .enumerate()
            .filter_map(|(i, &t)| match t {
                token_type::CONTROL => Some((i as u32, self.tokens[i].as_str(), true)),
                token_type::USER_DEFINED => Some((i as u32, self.tokens[i].as_str(), false)),
                _ => None,
            })
            .collect()
    }

    /// The pre-tokenizer the original `tokenizer.json` had, by `tokenizer.ggml.pre`.
    fn pre_tokenizer(&self) -> Result<PreTokenizerWrapper> {
        let byte_level = ByteLevel::new(false, true, true);
        Ok(match self.pre.as_str() {
            // SmolLM / StarCoder family: every digit is its own piece, then GPT-2's regex.
            "smollm" | "starcoder" => {
                Sequence::new(vec![Digits::new(true).into(), byte_level.into()]).into()
            }
            "gpt2" | "default" => byte_level.into(),
            other => bail!("pre-tokenizer `{other}` (`tokenizer.ggml.pre`) is not supported"),
        })
    }

    /// The `tokenizers` pipeline: byte-level BPE over the GGUF vocabulary and merges.
    pub fn build(&self) -> Result<Tokenizer> {
        let vocab: Vocab =
            self.tokens.iter().enumerate().map(|(i, t)| (t.clone(), i as u32)).collect();
        if vocab.len() != self.tokens.len() {
            bail!(
                "`tokenizer.ggml.tokens` has duplicate entries ({} unique of {})",
                vocab.len(),
                self.tokens.len()
            );
        }
        let bpe =
            BPE::builder().vocab_and_merges(vocab, self.merges.clone()).build().map_err(|e| {
                anyhow!("cannot build the BPE model from `tokenizer.ggml.tokens`/`merges`: {e}")
            })?;
        let mut tok = Tokenizer::new(bpe);
        tok.with_pre_tokenizer(Some(self.pre_tokenizer()?));
        tok.with_decoder(Some(ByteLevelDecoder::new(false, true, true)));
        if self.add_bos {
            let bos = self.token(self.bos_id).ok_or_else(|| {
                anyhow!("`tokenizer.ggml.add_bos_token` is true but there is no `bos_token_id`")
            })?;
            let tp = TemplateProcessing::builder()
                .try_single(format!("{bos} $A"))
                .and_then(|b| b.try_pair(format!("{bos} $A {bos} $B")))
                .map_err(|e| anyhow!("BOS template: {e}"))?
                .special_tokens(vec![(bos.to_string(), self.bos_id.unwrap())])
                .build()
                .map_err(|e| anyhow!("BOS template: {e}"))?;
            tok.with_post_processor(Some(tp));
        } else {
            tok.with_post_processor(Some(ByteLevel::new(false, false, true)));
        }
        let mut special = Vec::new();
        let mut plain = Vec::new();
        for (_, content, is_special) in self.added_tokens() {
            let t = AddedToken::from(content.to_string(), is_special).normalized(false);
            if is_special {
                special.push(t)
            } else {
                plain.push(t)
            }
        }
        tok.add_special_tokens(special).map_err(|e| anyhow!("adding special tokens: {e}"))?;
        tok.add_tokens(plain).map_err(|e| anyhow!("adding user-defined tokens: {e}"))?;
        Ok(tok)
    }

    /// `tokenizer_config.json`: the chat template, the special tokens and the added-token table
    /// `transformers` expects. `PreTrainedTokenizerFast` loads `tokenizer.json` as written.
    pub fn tokenizer_config(&self, model_max_length: usize) -> Value {
        let mut decoder = Map::new();
        for (id, content, special) in self.added_tokens() {
            decoder.insert(
                id.to_string(),
                json!({
                    "content": content, "lstrip": false, "normalized": false,
                    "rstrip": false, "single_word": false, "special": special,
                }),
            );
        }
        let additional: Vec<&str> = self
            .added_tokens()
            .into_iter()
            .filter(|&(id, _, special)| {
                special && ![self.bos_id, self.eos_id, self.pad_id, self.unk_id].contains(&Some(id))
            })
            .map(|(_, c, _)| c)
            .collect();
        let mut cfg = json!({
            "tokenizer_class": "PreTrainedTokenizerFast",
            "add_bos_token": self.add_bos,
            "add_eos_token": false,
            "add_prefix_space": false,
            "clean_up_tokenization_spaces": false,
            "model_max_length": model_max_length,
            "bos_token": self.token(self.bos_id),
            "eos_token": self.token(self.eos_id),
            "pad_token": self.token(self.pad_id),
            "unk_token": self.token(self.unk_id),
            "additional_special_tokens": additional,
            "added_tokens_decoder": decoder,
        });
        if let Some(t) = &self.chat_template {
            cfg["chat_template"] = json!(t);
        }
        cfg
    }

    pub fn special_tokens_map(&self) -> Value {
        let mut m = Map::new();
        for (key, id) in [
            ("bos_token", self.bos_id),
            ("eos_token", self.eos_id),
            ("pad_token", self.pad_id),
            ("unk_token", self.unk_id),
        ] {
            if let Some(t) = self.token(id) {
                m.insert(
                    key.into(),
                    json!({"content": t, "lstrip": false, "normalized": false, "rstrip": false, "single_word": false}),
                );
            }
        }
        Value::Object(m)
    }
}
