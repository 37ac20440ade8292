//! One pre-norm decoder layer: `x + attn(norm(x))`, then `x + mlp(norm(x))`.

use tch::{Kind, Tensor};

use super::attention::{Attention, AttnMode};
use super::load::Vars;
use super::mlp::Mlp;
use super::norm::RmsNorm;
use crate::config::Config;

pub struct DecoderLayer {
    input_layernorm: RmsNorm,
    self_attn: Attention,
    post_attention_layernorm: RmsNorm,
    mlp: Mlp,
}

impl DecoderLayer {
    /// `model.layers.{layer_idx}.*`.
    pub fn load(cfg: &Config, vars: &mut Vars, layer_idx: usize) -> anyhow::Result<DecoderLayer> {
        let prefix = format!("model.layers.{layer_idx}");
        let (h, eps) = (cfg.hidden_size as i64, cfg.rms_norm_eps);
        Ok(DecoderLayer {
            input_layernorm: RmsNorm::load(vars, &format!("{prefix}.input_layernorm"), h, eps)?,
            self_attn: Attention::load(cfg, vars, &format!("{prefix}.self_attn"), layer_idx)?,
            post_attention_layernorm: RmsNorm::load(
                vars,
                &format!("{prefix}.post_attention_layernorm"),
                h,
                eps,
            )?,
            mlp: Mlp::load(cfg, vars, &format!("{prefix}.mlp"))?,
        })
    }

    /// [batch, seq, hidden] → same shape.
    pub fn forward(
        &self,
        x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        mode: &mut AttnMode<'_>,
    ) -> Tensor {
        let h = self.input_layernorm.forward(x);
        let x = x + self.self_attn.forward(&h, cos, sin, mode);
        let h = self.post_attention_layernorm.forward(&x);
        x + self.mlp.forward(&h)
    }

    /// This layer in `kind` (see [`super::Weights::to_kind`]).
    pub fn to_kind(&self, kind: Kind) -> DecoderLayer {
        DecoderLayer {
            input_layernorm: self.input_layernorm.to_kind(kind),
            self_attn: self.self_attn.to_kind(kind),
            post_attention_layernorm: self.post_attention_layernorm.to_kind(kind),
            mlp: self.mlp.to_kind(kind),
        }
    }

    pub fn fuse(&mut self) {
        self.self_attn.fuse();
        self.mlp.fuse();
    }

    pub fn is_fused(&self) -> bool {
        self.self_attn.is_fused() && self.mlp.is_fused()
    }

    pub fn to_onednn(&mut self, decode_rows: Option<i64>) {
        self.self_attn.to_onednn(decode_rows);
        self.mlp.to_onednn(decode_rows);
    }
}
