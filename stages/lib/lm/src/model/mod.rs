//! One decoder-only transformer for Llama, Qwen2 and Qwen3 (differences are config switches),
//! laid out as candle-transformers' llama/qwen models: [`Weights`] (embedding, layers, norm,
//! head) → [`DecoderLayer`] → [`Attention`] and [`Mlp`] → [`Linear`], each loaded from the
//! checkpoint's own names (`model.layers.{i}.self_attn.q_proj.weight`).
//!
//! Parameters live in a tch `VarStore` in f32 — the master weights the optimizer updates.
//! A forward pass runs over a [`Weights`] in the compute dtype: the variables themselves for
//! f32, or cast copies for bf16 (differentiable casts when training, plain copies when
//! generating). Generation on a CPU also stacks projections ([`Weights::fuse`]) and packs
//! them for oneDNN ([`Weights::to_onednn`]); [`Linear`] hides which layout a weight has.

mod attention;
mod layer;
mod linear;
mod load;
mod mlp;
mod norm;

use std::collections::HashMap;
use std::rc::Rc;

use anyhow::{Context, Result};
use tch::{nn, Device, Kind, Tensor};

pub use attention::{extend_mask, Attention, AttnMode, SharedPrefix};
pub use layer::DecoderLayer;
pub use linear::{cast, Linear, Projections};
pub use load::Vars;
pub use mlp::Mlp;
pub use norm::{rms_norm, RmsNorm};

use crate::config::Config;
use crate::rope::Rope;

/// Every parameter of the model in one dtype, and the forward pass over them.
pub struct Weights {
    pub kind: Kind,
    embed_tokens: Tensor, // [vocab, hidden]
    layers: Vec<DecoderLayer>,
    norm: RmsNorm,
    /// The embedding matrix itself when the embeddings are tied.
    lm_head: Linear,
    tied: bool,
    rope: Rc<Rope>,
}

impl Weights {
    fn load(cfg: &Config, vars: &mut Vars, rope: Rc<Rope>) -> Result<Weights> {
        let h = cfg.hidden_size as i64;
        let v = cfg.vocab_size as i64;
        let embed_tokens = vars.get("model.embed_tokens.weight", &[v, h])?;
        let layers = (0..cfg.num_hidden_layers)
            .map(|l| DecoderLayer::load(cfg, vars, l))
            .collect::<Result<Vec<_>>>()?;
        let norm = RmsNorm::load(vars, "model.norm", h, cfg.rms_norm_eps)?;
        let tied = cfg.tie_word_embeddings;
        let lm_head = if tied {
            // Some tied checkpoints still store a copy of the head: it is the same tensor.
            vars.skip("lm_head.weight");
            Linear::new(embed_tokens.shallow_clone(), None)
        } else {
            Linear::load(vars, "lm_head", h, v, false).context(
                "config.json has tie_word_embeddings = false, so lm_head.weight is required",
            )?
        };
        Ok(Weights { kind: Kind::Float, embed_tokens, layers, norm, lm_head, tied, rope })
    }

    /// The parameters in `kind`: the same tensors when they already are, else casts. Under
    /// `no_grad` the casts are plain copies; with grad enabled they are differentiable, so
    /// gradients reach the f32 master weights.
    pub fn to_kind(&self, kind: Kind) -> Weights {
        let embed_tokens = cast(&self.embed_tokens, kind);
        let lm_head = if self.tied {
            Linear::new(embed_tokens.shallow_clone(), None)
        } else {
            self.lm_head.to_kind(kind)
        };
        Weights {
            kind,
            embed_tokens,
            layers: self.layers.iter().map(|l| l.to_kind(kind)).collect(),
            norm: self.norm.to_kind(kind),
            lm_head,
            tied: self.tied,
            rope: self.rope.clone(),
        }
    }

    /// Stack q/k/v and gate/up (no biases) for inference: fewer, larger GEMMs, as per-op
    /// overhead dominates small CPU batches. No autograd through the stacked copies.
    pub fn fuse(&mut self) {
        for l in &mut self.layers {
            l.fuse();
        }
    }

    /// Pack the projections and the head for oneDNN (see [`Linear`]), for CPU inference in
    /// f32 after [`Weights::fuse`]; the dense copies are dropped. Returns false, changing
    /// nothing, where libtorch has no oneDNN, the dtype is not f32 or some layer is not fully
    /// stacked (a model with MLP biases). `decode_rows` bounds the rows of one GEMM in a
    /// decode step, for batch-invariant generation (see [`Linear`]).
    pub fn to_onednn(&mut self, decode_rows: Option<i64>) -> bool {
        let fused = self.layers.iter().all(DecoderLayer::is_fused);
        if self.kind != Kind::Float || !tch::utils::has_mkldnn() || !fused {
            return false;
        }
        for l in &mut self.layers {
            l.to_onednn(decode_rows);
        }
        self.lm_head = self.lm_head.to_onednn(decode_rows);
        true
    }

    /// [`Weights::fuse`] then [`Weights::to_onednn`] a layer at a time, so that one layer's
    /// stacked dense copy exists at once, not every layer's: the peak memory of preparing
    /// generation on a CPU. Returns whether the weights were packed (see `to_onednn`).
    pub fn fuse_and_pack(&mut self, decode_rows: Option<i64>) -> bool {
        let mut packed = self.kind == Kind::Float && tch::utils::has_mkldnn();
        for l in &mut self.layers {
            l.fuse();
            // Every layer has the same projections: the first one decides for all.
            packed &= l.is_fused();
            if packed {
                l.to_onednn(decode_rows);
            }
        }
        if packed {
            self.lm_head = self.lm_head.to_onednn(decode_rows);
        }
        packed
    }

    /// Token embeddings: `ids` [batch, seq] (Int64) → [batch, seq, hidden] in `self.kind`.
    pub fn embed(&self, ids: &Tensor) -> Tensor {
        Tensor::embedding(&self.embed_tokens, ids, -1, false, false)
    }

    /// The one forward pass of the body, for generation, scoring and training: embed, every
    /// decoder layer, the final norm. `ids` [batch, seq] → [batch, seq, hidden]; `positions`
    /// [batch, seq] (Int64) are the RoPE positions of the tokens. With `layer_inputs`, each
    /// layer's input and then the last layer's output are pushed there (activation
    /// checkpointing recomputes each layer from them).
    pub fn forward(
        &self,
        ids: &Tensor,
        positions: &Tensor,
        mut mode: AttnMode<'_>,
        mut layer_inputs: Option<&mut Vec<Tensor>>,
    ) -> Tensor {
        let (cos, sin) = self.rope.cos_sin(positions);
        if let AttnMode::Decode(cache) = &mut mode {
            cache.begin_step();
        }
        let mut x = self.embed(ids);
        for layer in &self.layers {
            if let Some(saved) = layer_inputs.as_deref_mut() {
                saved.push(x.shallow_clone());
            }
            x = layer.forward(&x, &cos, &sin, &mut mode);
        }
        if let Some(saved) = layer_inputs {
            saved.push(x.shallow_clone());
        }
        if let AttnMode::Decode(cache) = mode {
            cache.end_step();
        }
        self.norm.forward(&x)
    }

    /// Logits of the last position of every row: `hidden` [batch, seq, hidden] → [batch,
    /// vocab] in f32.
    pub fn last_logits(&self, hidden: &Tensor) -> Tensor {
        let s = hidden.size()[1];
        self.lm_head.forward(&hidden.select(1, s - 1)).to_kind(Kind::Float)
    }

    /// Full logits [batch, seq, vocab] in f32 of right-padded or unpadded `ids` (tests and
    /// small inputs only).
    pub fn logits(&self, ids: &Tensor) -> Tensor {
        let s = ids.size()[1];
        let pos = Tensor::arange(s, (Kind::Int64, ids.device())).unsqueeze(0).expand_as(ids);
        let hidden = self.forward(ids, &pos, AttnMode::Causal, None);
        self.lm_head.forward(&hidden).to_kind(Kind::Float)
    }

    pub fn embed_tokens(&self) -> &Tensor {
        &self.embed_tokens
    }

    pub fn layers(&self) -> &[DecoderLayer] {
        &self.layers
    }

    /// The final norm.
    pub fn norm(&self) -> &RmsNorm {
        &self.norm
    }

    /// The LM head (the embedding matrix when tied): [vocab, hidden].
    pub fn lm_head(&self) -> &Linear {
        &self.lm_head
    }

    pub fn rope(&self) -> &Rope {
        &self.rope
    }
}

pub struct Model {
    pub cfg: Config,
    pub vs: nn::VarStore,
    /// The f32 variables of `vs`, as modules; None once released for generation only.
    master: Option<Weights>,
}

impl Model {
    /// Build the model from checkpoint tensors (any float dtype; stored as f32 variables).
    /// Missing, misshapen or unused tensors are errors naming the tensor.
    pub fn from_tensors(
        cfg: Config,
        tensors: HashMap<String, Tensor>,
        device: Device,
    ) -> Result<Model> {
        let vs = nn::VarStore::new(device);
        let mut vars = Vars::new(tensors, vs.root());
        let master = Weights::load(&cfg, &mut vars, Rc::new(Rope::new(&cfg, device)))?;
        vars.finish(&cfg.model_type)?;
        Ok(Model { cfg, vs, master: Some(master) })
    }

    pub fn device(&self) -> Device {
        self.vs.device()
    }

    /// The f32 master weights.
    pub fn master(&self) -> &Weights {
        self.master.as_ref().expect(
            "the master weights were released (Policy::generation_only): this policy can only \
             generate",
        )
    }

    /// The parameters in `kind` (see [`Weights::to_kind`]).
    pub fn weights(&self, kind: Kind) -> Weights {
        self.master().to_kind(kind)
    }

    /// Drop the master weights and their variables (see `Policy::generation_only`).
    pub(crate) fn release_master(&mut self) {
        self.master = None;
        self.vs = nn::VarStore::new(self.vs.device());
    }
}
