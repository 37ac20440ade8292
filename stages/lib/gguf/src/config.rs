//! `config.json` and `generation_config.json` for a Llama-architecture GGUF, every value read
//! from the file's metadata (`llama.*` and `tokenizer.ggml.*`).

use anyhow::{bail, Result};
use serde::Serialize;

use crate::gguf::GgufFile;

/// The fields of a Hugging Face `LlamaConfig`, named exactly as in `config.json`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LlamaConfig {
    pub architectures: Vec<String>,
    pub model_type: String,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub head_dim: usize,
    pub hidden_act: String,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    pub rope_scaling: Option<serde_json::Value>,
    pub max_position_embeddings: usize,
    pub vocab_size: usize,
    pub tie_word_embeddings: bool,
    pub attention_bias: bool,
    pub mlp_bias: bool,
    pub attention_dropout: f64,
    pub bos_token_id: Option<u32>,
    pub eos_token_id: Option<u32>,
    pub pad_token_id: Option<u32>,
    pub torch_dtype: String,
    pub use_cache: bool,
}

impl LlamaConfig {
    /// `tied`: whether the file has no separate `output.weight` (the LM head is the embedding).
    pub fn from_gguf(g: &GgufFile, vocab_size: usize, tied: bool) -> Result<Self> {
        let arch = g.string("general.architecture")?;
        if arch != "llama" {
            bail!(
                "{}: `general.architecture` is `{arch}`; only `llama` GGUF files can be imported",
                g.path.display()
            );
        }
        let key = |k: &str| format!("llama.{k}");
        let hidden_size = g.uint(&key("embedding_length"))? as usize;
        let num_attention_heads = g.uint(&key("attention.head_count"))? as usize;
        let num_key_value_heads = g
            .opt_uint(&key("attention.head_count_kv"))?
            .map(|x| x as usize)
            .unwrap_or(num_attention_heads);
        if num_attention_heads == 0 || !hidden_size.is_multiple_of(num_attention_heads) {
            bail!(
                "{}: `llama.embedding_length` {hidden_size} is not divisible by `llama.attention.head_count` {num_attention_heads}",
                g.path.display()
            );
        }
        let head_dim = g
            .opt_uint(&key("attention.key_length"))?
            .map(|x| x as usize)
            .unwrap_or(hidden_size / num_attention_heads);
        if let Some(rot) = g.opt_uint(&key("rope.dimension_count"))? {
            if rot as usize != head_dim {
                bail!(
                    "{}: partial rotary embeddings (`llama.rope.dimension_count` {rot} != head_dim {head_dim}) are not supported",
                    g.path.display()
                );
            }
        }
        if let Some(kind) = g.opt_string(&key("rope.scaling.type"))? {
            if kind != "none" {
                bail!(
                    "{}: RoPE scaling `{kind}` (`llama.rope.scaling.type`) is not supported",
                    g.path.display()
                );
            }
        }
        if num_key_value_heads == 0 || !num_attention_heads.is_multiple_of(num_key_value_heads) {
            bail!(
                "{}: head_count {num_attention_heads} is not a multiple of head_count_kv {num_key_value_heads}",
                g.path.display()
            );
        }
        let id = |k: &str| -> Result<Option<u32>> { Ok(g.opt_uint(k)?.map(|x| x as u32)) };
        Ok(Self {
            architectures: vec!["LlamaForCausalLM".into()],
            model_type: "llama".into(),
            hidden_size,
            intermediate_size: g.uint(&key("feed_forward_length"))? as usize,
            num_hidden_layers: g.uint(&key("block_count"))? as usize,
            num_attention_heads,
            num_key_value_heads,
            head_dim,
            hidden_act: "silu".into(),
            rms_norm_eps: round_f32(g.float(&key("attention.layer_norm_rms_epsilon"))?),
            rope_theta: round_f32(g.opt_float(&key("rope.freq_base"))?.unwrap_or(10_000.0)),
            rope_scaling: None,
            max_position_embeddings: g.uint(&key("context_length"))? as usize,
            vocab_size,
            tie_word_embeddings: tied,
            attention_bias: false,
            mlp_bias: false,
            attention_dropout: 0.0,
            bos_token_id: id("tokenizer.ggml.bos_token_id")?,
            eos_token_id: id("tokenizer.ggml.eos_token_id")?,
            pad_token_id: id("tokenizer.ggml.padding_token_id")?,
            torch_dtype: "float32".into(),
            use_cache: true,
        })
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("config serializes")
    }

    /// `generation_config.json`: the token ids `generate` needs; no sampling defaults.
    pub fn generation_config(&self) -> serde_json::Value {
        serde_json::json!({
            "bos_token_id": self.bos_token_id,
            "eos_token_id": self.eos_token_id,
            "pad_token_id": self.pad_token_id,
        })
    }
}

/// GGUF stores these as f32: print the shortest decimal that is the same f32 (1e-5, not
/// 9.999999747378752e-6), as the original `config.json` had it.
fn round_f32(x: f64) -> f64 {
    let s = format!("{}", x as f32);
    s.parse().unwrap_or(x)
}
