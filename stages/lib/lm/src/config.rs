//! `config.json` of a Hugging Face causal LM, read with the field names the file uses.
//!
//! One transformer serves Llama, Qwen2 and Qwen3; their differences are switches here
//! (attention bias, q/k RMSNorm, tied embeddings, GQA, RoPE theta and Llama-3 RoPE scaling).

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

/// The architecture families this crate implements, decided from `model_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Llama,
    Qwen2,
    Qwen3,
}

/// `rope_scaling` (also spelled `rope_parameters` by newer transformers).
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct RopeScaling {
    /// `rope_type` (older files: `type`): only `llama3` and `default` are supported.
    #[serde(alias = "type")]
    pub rope_type: String,
    #[serde(default)]
    pub factor: Option<f64>,
    #[serde(default)]
    pub low_freq_factor: Option<f64>,
    #[serde(default)]
    pub high_freq_factor: Option<f64>,
    #[serde(default)]
    pub original_max_position_embeddings: Option<usize>,
    /// Newer transformers move `rope_theta` in here.
    #[serde(default)]
    pub rope_theta: Option<f64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Config {
    pub model_type: String,
    pub architectures: Vec<String>,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    /// GQA: absent means one key/value head per query head.
    pub num_key_value_heads: Option<usize>,
    /// Qwen3 sets it apart from hidden_size / heads; absent means that quotient.
    pub head_dim: Option<usize>,
    pub hidden_act: String,
    pub max_position_embeddings: usize,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    pub rope_scaling: Option<RopeScaling>,
    pub rope_parameters: Option<RopeScaling>,
    /// Llama: q/k/v/o biases. Qwen2 always has q/k/v biases (and no o bias).
    pub attention_bias: bool,
    pub mlp_bias: bool,
    pub tie_word_embeddings: bool,
    pub use_sliding_window: bool,
    pub bos_token_id: Option<serde_json::Value>,
    pub eos_token_id: Option<serde_json::Value>,
    pub torch_dtype: Option<String>,
    pub dtype: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            model_type: String::new(),
            architectures: Vec::new(),
            vocab_size: 0,
            hidden_size: 0,
            intermediate_size: 0,
            num_hidden_layers: 0,
            num_attention_heads: 0,
            num_key_value_heads: None,
            head_dim: None,
            hidden_act: "silu".into(),
            max_position_embeddings: 2048,
            rms_norm_eps: 1e-6,
            rope_theta: 10_000.0,
            rope_scaling: None,
            rope_parameters: None,
            attention_bias: false,
            mlp_bias: false,
            // transformers' Llama/Qwen2/Qwen3 configs default to untied heads.
            tie_word_embeddings: false,
            use_sliding_window: false,
            bos_token_id: None,
            eos_token_id: None,
            torch_dtype: None,
            dtype: None,
        }
    }
}

impl Config {
    /// Read and check `config.json`; errors name the file and the field.
    pub fn from_file(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading model config {}", path.display()))?;
        let cfg: Config = serde_json::from_str(&text)
            .with_context(|| format!("parsing model config {}", path.display()))?;
        cfg.validate().with_context(|| format!("unsupported model config {}", path.display()))?;
        Ok(cfg)
    }

    pub fn family(&self) -> Result<Family> {
        match self.model_type.as_str() {
            "llama" | "mistral" => Ok(Family::Llama),
            "qwen2" => Ok(Family::Qwen2),
            "qwen3" => Ok(Family::Qwen3),
            "" => bail!("field `model_type` is missing (expected llama, qwen2 or qwen3)"),
            other => bail!(
                "field `model_type` = {other:?} is not supported (supported: llama, qwen2, qwen3)"
            ),
        }
    }

    pub fn validate(&self) -> Result<()> {
        self.family()?;
        for a in &self.architectures {
            if !matches!(
                a.as_str(),
                "LlamaForCausalLM" | "MistralForCausalLM" | "Qwen2ForCausalLM" | "Qwen3ForCausalLM"
            ) {
                bail!(
                    "field `architectures` lists {a:?}; supported: LlamaForCausalLM, \
                     Qwen2ForCausalLM, Qwen3ForCausalLM"
                );
            }
        }
        for (name, v) in [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
        ] {
            if v == 0 {
                bail!("field `{name}` is missing or zero");
            }
        }
        if !self.num_attention_heads.is_multiple_of(self.num_kv_heads()) {
            bail!(
                "field `num_key_value_heads` = {} does not divide `num_attention_heads` = {}",
                self.num_kv_heads(),
                self.num_attention_heads
            );
        }
        if self.hidden_act != "silu" {
            bail!("field `hidden_act` = {:?} is not supported (only silu)", self.hidden_act);
        }
        if self.use_sliding_window {
            bail!("field `use_sliding_window` = true is not supported");
        }
        if let Some(rs) = self.rope_scaling_params() {
            match rs.rope_type.as_str() {
                "default" => {}
                "llama3" => {
                    if rs.factor.is_none()
                        || rs.low_freq_factor.is_none()
                        || rs.high_freq_factor.is_none()
                        || rs.original_max_position_embeddings.is_none()
                    {
                        bail!(
                            "field `rope_scaling` of type llama3 needs factor, low_freq_factor, \
                             high_freq_factor and original_max_position_embeddings"
                        );
                    }
                }
                other => bail!("field `rope_scaling.rope_type` = {other:?} is not supported"),
            }
        }
        Ok(())
    }

    pub fn num_kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    pub fn head_dim(&self) -> usize {
        self.head_dim.unwrap_or(self.hidden_size / self.num_attention_heads)
    }

    /// Effective rope scaling block: `rope_scaling`, else `rope_parameters` (newer files).
    pub fn rope_scaling_params(&self) -> Option<&RopeScaling> {
        self.rope_scaling.as_ref().or(self.rope_parameters.as_ref())
    }

    pub fn rope_base(&self) -> f64 {
        self.rope_parameters.as_ref().and_then(|p| p.rope_theta).unwrap_or(self.rope_theta)
    }

    /// q/k/v projections carry a bias (Qwen2 always, Llama when `attention_bias`).
    pub fn qkv_bias(&self) -> bool {
        matches!(self.family(), Ok(Family::Qwen2)) || self.attention_bias
    }

    /// o_proj carries a bias only in Llama with `attention_bias`.
    pub fn o_bias(&self) -> bool {
        matches!(self.family(), Ok(Family::Llama)) && self.attention_bias
    }

    /// Qwen3 normalises q and k per head before RoPE.
    pub fn qk_norm(&self) -> bool {
        matches!(self.family(), Ok(Family::Qwen3))
    }

    /// `eos_token_id` of config.json as a list (it may be a number or a list).
    pub fn eos_ids(&self) -> Vec<u32> {
        ids_of(self.eos_token_id.as_ref())
    }
}

/// A JSON token-id field that may be a number, a list of numbers or null.
pub fn ids_of(v: Option<&serde_json::Value>) -> Vec<u32> {
    match v {
        Some(serde_json::Value::Number(n)) => {
            n.as_u64().map(|x| vec![x as u32]).unwrap_or_default()
        }
        Some(serde_json::Value::Array(a)) => {
            a.iter().filter_map(|x| x.as_u64().map(|x| x as u32)).collect()
        }
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Config> {
        let c: Config = serde_json::from_str(s)?;
        c.validate()?;
        Ok(c)
    }

    const BASE: &str = r#""vocab_size": 10, "hidden_size": 8, "intermediate_size": 16,
        "num_hidden_layers": 1, "num_attention_heads": 2"#;

    #[test]
    fn switches_follow_model_type() {
        let q2 = parse(&format!(r#"{{"model_type": "qwen2", {BASE}}}"#)).unwrap();
        assert!(q2.qkv_bias() && !q2.o_bias() && !q2.qk_norm());
        let q3 = parse(&format!(r#"{{"model_type": "qwen3", "head_dim": 6, {BASE}}}"#)).unwrap();
        assert!(!q3.qkv_bias() && q3.qk_norm());
        assert_eq!(q3.head_dim(), 6);
        let l = parse(&format!(
            r#"{{"model_type": "llama", "attention_bias": true, "num_key_value_heads": 1, {BASE}}}"#
        ))
        .unwrap();
        assert!(l.qkv_bias() && l.o_bias());
        assert_eq!((l.num_kv_heads(), l.head_dim()), (1, 4));
    }

    #[test]
    fn unsupported_is_a_clear_error() {
        let e = parse(&format!(r#"{{"model_type": "gpt2", {BASE}}}"#)).unwrap_err();
        assert!(format!("{e:#}").contains("gpt2"), "{e:#}");
        let e = parse(&format!(
            r#"{{"model_type": "llama", "architectures": ["LlamaForSequenceClassification"], {BASE}}}"#
        ))
        .unwrap_err();
        assert!(format!("{e:#}").contains("LlamaForSequenceClassification"));
        let e = parse(r#"{"model_type": "llama"}"#).unwrap_err();
        assert!(format!("{e:#}").contains("vocab_size"));
        let e = parse(&format!(
            r#"{{"model_type": "llama", "rope_scaling": {{"rope_type": "yarn", "factor": 2.0}}, {BASE}}}"#
        ))
        .unwrap_err();
        assert!(format!("{e:#}").contains("yarn"));
    }

    #[test]
    fn eos_may_be_number_or_list() {
        assert_eq!(ids_of(Some(&serde_json::json!(2))), vec![2]);
        assert_eq!(ids_of(Some(&serde_json::json!([1, 7]))), vec![1, 7]);
        assert!(ids_of(None).is_empty());
    }
}
