//! RMSNorm, as the Llama/Qwen family uses it before attention, the MLP and the head.

use tch::{Kind, Tensor};

use super::linear::cast;
use super::load::Vars;

pub struct RmsNorm {
    weight: Tensor,
    eps: f64,
}

impl RmsNorm {
    /// `{prefix}.weight` [dim].
    pub fn load(vars: &mut Vars, prefix: &str, dim: i64, eps: f64) -> anyhow::Result<RmsNorm> {
        Ok(RmsNorm { weight: vars.get(&format!("{prefix}.weight"), &[dim])?, eps })
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        rms_norm(x, &self.weight, self.eps)
    }

    pub fn to_kind(&self, kind: Kind) -> RmsNorm {
        RmsNorm { weight: cast(&self.weight, kind), eps: self.eps }
    }
}

/// RMSNorm: `weight · x / sqrt(mean(x²) + eps)` over the last dimension, statistics in f32.
/// libtorch's fused kernel is one op where the composite is six, which matters in decode
/// steps (twice per layer). In bf16 it scales in f32 and rounds once, where transformers
/// rounds the normalised value to bf16 before scaling: at most one bf16 step apart.
pub fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64) -> Tensor {
    let h = *x.size().last().expect("rms_norm of a scalar");
    x.rms_norm([h], Some(weight), eps)
}
