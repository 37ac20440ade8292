//! The gated feed-forward block: `down(silu(gate(x)) · up(x))`.

use tch::{Kind, Tensor};

use super::linear::{Linear, Projections};
use super::load::Vars;
use crate::config::Config;

pub struct Mlp {
    /// gate_proj and up_proj.
    gate_up: Projections,
    down_proj: Linear,
}

impl Mlp {
    /// `{prefix}.gate_proj`, `{prefix}.up_proj`, `{prefix}.down_proj`.
    pub fn load(cfg: &Config, vars: &mut Vars, prefix: &str) -> anyhow::Result<Mlp> {
        let (h, i, bias) = (cfg.hidden_size as i64, cfg.intermediate_size as i64, cfg.mlp_bias);
        let gate = Linear::load(vars, &format!("{prefix}.gate_proj"), h, i, bias)?;
        let up = Linear::load(vars, &format!("{prefix}.up_proj"), h, i, bias)?;
        let down_proj = Linear::load(vars, &format!("{prefix}.down_proj"), i, h, bias)?;
        Ok(Mlp { gate_up: Projections::Separate(vec![gate, up]), down_proj })
    }

    /// [batch, seq, hidden] → same shape.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let gu = self.gate_up.forward(x);
        self.down_proj.forward(&(gu[0].silu() * &gu[1]))
    }

    pub fn to_kind(&self, kind: Kind) -> Mlp {
        Mlp { gate_up: self.gate_up.to_kind(kind), down_proj: self.down_proj.to_kind(kind) }
    }

    /// Stack gate and up for inference, only when they have no biases (as it has always
    /// been: MLP biases are rare, and a model with them stays on the dense path).
    pub fn fuse(&mut self) {
        let biased = match &self.gate_up {
            Projections::Separate(ps) => ps.iter().any(|p| p.bias().is_some()),
            Projections::Stacked(..) => false,
        };
        if !biased {
            self.gate_up.stack();
        }
    }

    pub fn is_fused(&self) -> bool {
        self.gate_up.is_stacked()
    }

    pub fn to_onednn(&mut self, decode_rows: Option<i64>) {
        self.gate_up.to_onednn(decode_rows);
        self.down_proj = self.down_proj.to_onednn(decode_rows);
    }
}
