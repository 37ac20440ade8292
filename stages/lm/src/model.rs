//! One decoder-only transformer for Llama, Qwen2 and Qwen3 (differences are config switches).
//!
//! Parameters live in a tch `VarStore` in f32 — the master weights the optimizer updates —
//! under the checkpoint's own names (`model.layers.{i}.self_attn.q_proj.weight`). A forward
//! pass runs over a [`Weights`] view: the variables themselves for f32 compute, or cast
//! copies for bf16 compute (differentiable casts when training, cached copies when generating).

use std::collections::HashMap;

use anyhow::{bail, Context, Result};
use tch::{nn, Device, Kind, Tensor};

use crate::config::Config;
use crate::kv_cache::KvCache;
use crate::rope::{self, Rope};

/// The tensors of one decoder layer, in the compute dtype of a [`Weights`].
pub struct LayerWeights {
    pub input_norm: Tensor,
    pub q: Tensor,
    pub k: Tensor,
    pub v: Tensor,
    pub o: Tensor,
    pub q_bias: Option<Tensor>,
    pub k_bias: Option<Tensor>,
    pub v_bias: Option<Tensor>,
    pub o_bias: Option<Tensor>,
    pub q_norm: Option<Tensor>,
    pub k_norm: Option<Tensor>,
    pub post_norm: Tensor,
    pub gate: Tensor,
    pub up: Tensor,
    pub down: Tensor,
    pub gate_bias: Option<Tensor>,
    pub up_bias: Option<Tensor>,
    pub down_bias: Option<Tensor>,
    /// Generation only: q, k and v stacked into one matrix (one GEMM instead of three).
    pub qkv: Option<(Tensor, Option<Tensor>)>,
    /// Generation only: gate and up stacked (when the MLP has no biases).
    pub gate_up: Option<Tensor>,
    /// Generation on a CPU in f32 only: oneDNN copies of the stacked projections.
    pub dnn: Option<LayerDnn>,
}

/// A weight (and bias) in oneDNN's own layout, for [`dnn_linear`].
pub type DnnProj = (Tensor, Option<Tensor>);

/// oneDNN copies of one layer's projections (see [`Weights::to_onednn`]).
pub struct LayerDnn {
    pub qkv: DnnProj,
    pub o: DnnProj,
    pub gate_up: DnnProj,
    pub down: DnnProj,
}

impl LayerWeights {
    /// Stack q/k/v and gate/up for inference (no autograd through the stacked copies). The
    /// separate matrices become views of the stacked ones, so memory is not doubled.
    pub fn fuse(&mut self) {
        let (nq, nk) = (self.q.size()[0], self.k.size()[0]);
        let qkv = Tensor::cat(&[&self.q, &self.k, &self.v], 0);
        self.q = qkv.narrow(0, 0, nq);
        self.k = qkv.narrow(0, nq, nk);
        self.v = qkv.narrow(0, nq + nk, nk);
        let bias = match (&self.q_bias, &self.k_bias, &self.v_bias) {
            (Some(q), Some(k), Some(v)) => Some(Tensor::cat(&[q, k, v], 0)),
            _ => None,
        };
        self.qkv = Some((qkv, bias));
        if self.gate_bias.is_none() && self.up_bias.is_none() {
            let ni = self.gate.size()[0];
            let gate_up = Tensor::cat(&[&self.gate, &self.up], 0);
            self.gate = gate_up.narrow(0, 0, ni);
            self.up = gate_up.narrow(0, ni, ni);
            self.gate_up = Some(gate_up);
        }
    }
}

/// Every parameter of the model, viewed in one dtype.
pub struct Weights {
    pub kind: Kind,
    pub embed: Tensor,
    pub layers: Vec<LayerWeights>,
    pub norm: Tensor,
    /// The same tensor as `embed` when the embeddings are tied.
    pub lm_head: Tensor,
    /// Generation on a CPU in f32 only: the LM head in oneDNN's layout.
    pub lm_head_dnn: Option<Tensor>,
}

impl Weights {
    /// Stack projections for faster inference (see [`LayerWeights::fuse`]).
    pub fn fuse(&mut self) {
        for l in &mut self.layers {
            l.fuse();
        }
    }

    /// Copy the stacked projections and the head into oneDNN's layout, for CPU inference in
    /// f32 (after [`Weights::fuse`]). libtorch's dense f32 GEMM repacks the weight matrix on
    /// every call, which dominates decode steps of a few to a few dozen rows; oneDNN keeps
    /// it packed: 1.4–1.9× the GEMM throughput at 8–64 rows on a 2-core AVX2 machine. The
    /// dense copies are dropped (generation never needs them). Returns false, changing
    /// nothing, where libtorch has no oneDNN or the layers are not fully stacked.
    pub fn to_onednn(&mut self) -> bool {
        let fused = self.layers.iter().all(|l| l.qkv.is_some() && l.gate_up.is_some());
        if self.kind != Kind::Float || !tch::utils::has_mkldnn() || !fused {
            return false;
        }
        let dnn = |t: &Tensor| t.contiguous().to_mkldnn();
        let proj = |w: &Tensor, b: &Option<Tensor>| (dnn(w), b.as_ref().map(dnn));
        for l in &mut self.layers {
            let (qkv, qkv_b) = l.qkv.take().unwrap();
            l.dnn = Some(LayerDnn {
                qkv: proj(&qkv, &qkv_b),
                o: proj(&l.o, &l.o_bias),
                gate_up: proj(l.gate_up.as_ref().unwrap(), &None),
                down: proj(&l.down, &l.down_bias),
            });
            // Nothing reads the dense projections any more: free them.
            let empty = || Tensor::zeros([0], (Kind::Float, Device::Cpu));
            l.gate_up = None;
            (l.q, l.k, l.v, l.o, l.gate, l.up, l.down) =
                (empty(), empty(), empty(), empty(), empty(), empty(), empty());
        }
        self.lm_head_dnn = Some(dnn(&self.lm_head));
        true
    }
}

/// `x · wᵀ + b` with oneDNN weights from [`Weights::to_onednn`]: x [.., in] → [.., out].
pub fn dnn_linear(x: &Tensor, (w, b): &DnnProj) -> Tensor {
    let mut shape = x.size();
    let k = *shape.last().unwrap();
    let y = x.reshape([-1, k]).contiguous().to_mkldnn().mkldnn_linear(w, b.as_ref());
    let y = y.to_dense(None, false);
    *shape.last_mut().unwrap() = y.size()[1];
    y.reshape(shape)
}

/// How queries may attend.
pub enum Attention<'a> {
    /// Causal over the sequence itself, no padding before real tokens (right-padded rows):
    /// the memory-efficient fused kernel, used for scoring and training.
    Causal,
    /// Left-padded prompt or one decode step, through a KV cache. `cache.key_mask` marks the
    /// padding columns.
    Cached(&'a mut KvCache),
}

pub struct Model {
    pub cfg: Config,
    pub vs: nn::VarStore,
    master: Weights,
    rope: Rope,
}

impl Model {
    /// Build the model from checkpoint tensors (any float dtype; stored as f32 variables).
    /// Missing or misshapen tensors are errors naming the tensor.
    pub fn from_tensors(
        cfg: Config,
        mut tensors: HashMap<String, Tensor>,
        device: Device,
    ) -> Result<Model> {
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let (h, i) = (cfg.hidden_size as i64, cfg.intermediate_size as i64);
        let d = cfg.head_dim() as i64;
        let (nh, nkv) = (cfg.num_attention_heads as i64, cfg.num_kv_heads() as i64);
        let mut take = |name: String, shape: &[i64]| -> Result<Tensor> {
            let t = tensors
                .remove(&name)
                .with_context(|| format!("checkpoint has no tensor `{name}`"))?;
            if t.size() != shape {
                bail!("tensor `{name}` has shape {:?}, config.json implies {shape:?}", t.size());
            }
            let t = t.to_kind(Kind::Float);
            // The VarStore name is the checkpoint name; tch joins path parts with '.'.
            let (dir, leaf) = name.rsplit_once('.').unwrap();
            let p = dir.split('.').fold(root.clone(), |p, part| p / part);
            Ok(p.var_copy(leaf, &t))
        };
        let opt = |take: &mut dyn FnMut(String, &[i64]) -> Result<Tensor>,
                   on: bool,
                   name: String,
                   shape: &[i64]|
         -> Result<Option<Tensor>> { if on { take(name, shape).map(Some) } else { Ok(None) } };
        let embed = take("model.embed_tokens.weight".into(), &[cfg.vocab_size as i64, h])?;
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for l in 0..cfg.num_hidden_layers {
            let a = format!("model.layers.{l}.self_attn");
            let m = format!("model.layers.{l}.mlp");
            let (qb, ob, mb) = (cfg.qkv_bias(), cfg.o_bias(), cfg.mlp_bias);
            layers.push(LayerWeights {
                input_norm: take(format!("model.layers.{l}.input_layernorm.weight"), &[h])?,
                q: take(format!("{a}.q_proj.weight"), &[nh * d, h])?,
                k: take(format!("{a}.k_proj.weight"), &[nkv * d, h])?,
                v: take(format!("{a}.v_proj.weight"), &[nkv * d, h])?,
                o: take(format!("{a}.o_proj.weight"), &[h, nh * d])?,
                q_bias: opt(&mut take, qb, format!("{a}.q_proj.bias"), &[nh * d])?,
                k_bias: opt(&mut take, qb, format!("{a}.k_proj.bias"), &[nkv * d])?,
                v_bias: opt(&mut take, qb, format!("{a}.v_proj.bias"), &[nkv * d])?,
                o_bias: opt(&mut take, ob, format!("{a}.o_proj.bias"), &[h])?,
                q_norm: opt(&mut take, cfg.qk_norm(), format!("{a}.q_norm.weight"), &[d])?,
                k_norm: opt(&mut take, cfg.qk_norm(), format!("{a}.k_norm.weight"), &[d])?,
                post_norm: take(format!("model.layers.{l}.post_attention_layernorm.weight"), &[h])?,
                gate: take(format!("{m}.gate_proj.weight"), &[i, h])?,
                up: take(format!("{m}.up_proj.weight"), &[i, h])?,
                down: take(format!("{m}.down_proj.weight"), &[h, i])?,
                gate_bias: opt(&mut take, mb, format!("{m}.gate_proj.bias"), &[i])?,
                up_bias: opt(&mut take, mb, format!("{m}.up_proj.bias"), &[i])?,
                down_bias: opt(&mut take, mb, format!("{m}.down_proj.bias"), &[h])?,
                qkv: None,
                gate_up: None,
                dnn: None,
            });
        }
        let norm = take("model.norm.weight".into(), &[h])?;
        let lm_head = if cfg.tie_word_embeddings {
            embed.shallow_clone()
        } else {
            take("lm_head.weight".into(), &[cfg.vocab_size as i64, h]).context(
                "config.json has tie_word_embeddings = false, so lm_head.weight is required",
            )?
        };
        if cfg.tie_word_embeddings {
            // Some tied checkpoints still store a copy of the head: it is the same tensor.
            tensors.remove("lm_head.weight");
        }
        // Rotary tables are derived, never trained; anything else left over is unexpected.
        tensors.retain(|k, _| !k.ends_with("rotary_emb.inv_freq"));
        if let Some(extra) = tensors.keys().next() {
            bail!("checkpoint tensor `{extra}` is not used by a {} model", cfg.model_type);
        }
        let master = Weights { kind: Kind::Float, embed, layers, norm, lm_head, lm_head_dnn: None };
        let rope = Rope::new(&cfg, device);
        Ok(Model { cfg, vs, master, rope })
    }

    pub fn device(&self) -> Device {
        self.vs.device()
    }

    /// The parameters in `kind`: the f32 variables themselves, or casts of them. Under
    /// `no_grad` the casts are plain copies (cache them for generation); with grad enabled
    /// they are differentiable, so gradients reach the f32 master weights.
    pub fn weights(&self, kind: Kind) -> Weights {
        let embed = self.embed_weight(kind);
        let lm_head =
            if self.cfg.tie_word_embeddings { embed.shallow_clone() } else { self.head_weight(kind) };
        Weights {
            kind,
            embed,
            lm_head,
            norm: self.norm_weight(kind),
            layers: (0..self.master.layers.len()).map(|l| self.layer_weights(l, kind)).collect(),
            lm_head_dnn: None,
        }
    }

    pub fn embed_weight(&self, kind: Kind) -> Tensor {
        cast(&self.master.embed, kind)
    }

    /// The LM head (the embedding matrix when tied): [vocab, hidden].
    pub fn head_weight(&self, kind: Kind) -> Tensor {
        cast(&self.master.lm_head, kind)
    }

    pub fn norm_weight(&self, kind: Kind) -> Tensor {
        cast(&self.master.norm, kind)
    }

    pub fn layer_weights(&self, l: usize, kind: Kind) -> LayerWeights {
        let c = |t: &Tensor| cast(t, kind);
        let co = |t: &Option<Tensor>| t.as_ref().map(c);
        let l = &self.master.layers[l];
        LayerWeights {
            input_norm: c(&l.input_norm),
            q: c(&l.q),
            k: c(&l.k),
            v: c(&l.v),
            o: c(&l.o),
            q_bias: co(&l.q_bias),
            k_bias: co(&l.k_bias),
            v_bias: co(&l.v_bias),
            o_bias: co(&l.o_bias),
            q_norm: co(&l.q_norm),
            k_norm: co(&l.k_norm),
            post_norm: c(&l.post_norm),
            gate: c(&l.gate),
            up: c(&l.up),
            down: c(&l.down),
            gate_bias: co(&l.gate_bias),
            up_bias: co(&l.up_bias),
            down_bias: co(&l.down_bias),
            qkv: None,
            gate_up: None,
            dnn: None,
        }
    }

    /// RoPE tables for `positions` [batch, seq]: cos and sin, [batch, 1, seq, head_dim].
    pub fn rope_cos_sin(&self, positions: &Tensor) -> (Tensor, Tensor) {
        self.rope.cos_sin(positions)
    }

    /// Token embeddings: `ids` [batch, seq] (Int64) → [batch, seq, hidden] in `w.kind`.
    pub fn embed(&self, w: &Weights, ids: &Tensor) -> Tensor {
        Tensor::embedding(&w.embed, ids, -1, false, false)
    }

    /// Run every decoder layer and the final norm: [batch, seq, hidden] → same shape.
    /// `positions` [batch, seq] (Int64) are the RoPE positions of the tokens.
    pub fn forward_hidden(
        &self,
        w: &Weights,
        ids: &Tensor,
        positions: &Tensor,
        mut attn: Attention<'_>,
    ) -> Tensor {
        let (cos, sin) = self.rope.cos_sin(positions);
        let mut x = self.embed(w, ids);
        for (l, lw) in w.layers.iter().enumerate() {
            x = self.layer(lw, l, &x, &cos, &sin, &mut attn);
        }
        if let Attention::Cached(cache) = attn {
            cache.len += ids.size()[1];
        }
        rms_norm(&x, &w.norm, self.cfg.rms_norm_eps)
    }

    /// One decoder layer: [batch, seq, hidden] → [batch, seq, hidden].
    pub fn layer(
        &self,
        lw: &LayerWeights,
        l: usize,
        x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        attn: &mut Attention<'_>,
    ) -> Tensor {
        let eps = self.cfg.rms_norm_eps;
        let h = rms_norm(x, &lw.input_norm, eps);
        let x = x + self.self_attention(lw, l, &h, cos, sin, attn);
        let h = rms_norm(&x, &lw.post_norm, eps);
        let (g, u) = match (&lw.dnn, &lw.gate_up) {
            (Some(d), _) => {
                let both = dnn_linear(&h, &d.gate_up);
                let i = both.size()[2] / 2;
                (both.narrow(2, 0, i), both.narrow(2, i, i))
            }
            (None, Some(gu)) => {
                let both = h.linear(gu, None::<Tensor>); // [b, s, 2 * intermediate]
                let i = both.size()[2] / 2;
                (both.narrow(2, 0, i), both.narrow(2, i, i))
            }
            (None, None) => (
                h.linear(&lw.gate, lw.gate_bias.as_ref()),
                h.linear(&lw.up, lw.up_bias.as_ref()),
            ),
        };
        let act = g.silu() * u;
        x + match &lw.dnn {
            Some(d) => dnn_linear(&act, &d.down),
            None => act.linear(&lw.down, lw.down_bias.as_ref()),
        }
    }

    fn self_attention(
        &self,
        lw: &LayerWeights,
        l: usize,
        h: &Tensor, // [batch, seq, hidden]
        cos: &Tensor,
        sin: &Tensor,
        attn: &mut Attention<'_>,
    ) -> Tensor {
        let (b, s) = (h.size()[0], h.size()[1]);
        let d = self.cfg.head_dim() as i64;
        let (nh, nkv) = (self.cfg.num_attention_heads as i64, self.cfg.num_kv_heads() as i64);
        let rep = nh / nkv;
        // Attention runs in f32 on CPU even for bf16 compute: libtorch's bf16 CPU attention
        // is several times slower, and the softmax is where precision matters most.
        let akind = if h.device() == Device::Cpu { Kind::Float } else { h.kind() };
        let heads = |t: Tensor, n: i64| t.reshape([b, s, n, d]).transpose(1, 2); // [b, n, s, d]
        let stacked = match (&lw.dnn, &lw.qkv) {
            (Some(d), _) => Some(dnn_linear(h, &d.qkv)),
            (None, Some((w, bias))) => Some(h.linear(w, bias.as_ref())),
            (None, None) => None,
        };
        let (q, k, v) = match stacked {
            Some(all) => {
                // [b, s, (nh + 2 nkv) d]
                (all.narrow(2, 0, nh * d), all.narrow(2, nh * d, nkv * d), all.narrow(2, (nh + nkv) * d, nkv * d))
            }
            None => (
                h.linear(&lw.q, lw.q_bias.as_ref()),
                h.linear(&lw.k, lw.k_bias.as_ref()),
                h.linear(&lw.v, lw.v_bias.as_ref()),
            ),
        };
        let mut q = heads(q, nh);
        let mut k = heads(k, nkv);
        let v = heads(v, nkv).to_kind(akind);
        if let (Some(qn), Some(kn)) = (&lw.q_norm, &lw.k_norm) {
            q = rms_norm(&q, qn, self.cfg.rms_norm_eps);
            k = rms_norm(&k, kn, self.cfg.rms_norm_eps);
        }
        let q = rope::apply(&q, cos, sin).to_kind(akind);
        let k = rope::apply(&k, cos, sin).to_kind(akind);
        let scale = 1.0 / (d as f64).sqrt();
        // [b, nh, s, d]
        let out = match attn {
            Attention::Causal => {
                let (k, v) = (repeat_kv(&k, rep), repeat_kv(&v, rep));
                Tensor::scaled_dot_product_attention(
                    &q, &k, &v, None::<Tensor>, 0.0, true, scale, false,
                )
            }
            Attention::Cached(cache) => {
                let start = cache.len;
                let (k_all, v_all) = cache.append(l, &k, &v); // [b, nkv, start + s, d]
                let t = start + s;
                let key_mask = cache.key_mask.narrow(1, 0, t); // [b, t]
                if start == 0 {
                    // Prefill: fused kernel with a boolean mask (true = may attend) that is
                    // causal and hides left padding; a padding query may see itself, so no
                    // row of the mask is empty (which would give NaN).
                    let causal = Tensor::ones([s, s], (Kind::Bool, h.device())).tril(0);
                    let keys = key_mask.eq(0.0).view([b, 1, 1, s]);
                    let diag = Tensor::eye(s, (Kind::Bool, h.device()));
                    let mask = causal.logical_and(&keys).logical_or(&diag);
                    let (k, v) = (repeat_kv(&k_all, rep), repeat_kv(&v_all, rep));
                    Tensor::scaled_dot_product_attention(
                        &q, &k, &v, Some(mask), 0.0, false, scale, false,
                    )
                } else {
                    // Decode: group the query heads that share a key/value head so the cache
                    // is read in place, never repeated. [b, nkv, rep * s, t]
                    assert_eq!(s, 1, "decoding through the cache takes one token per step");
                    let qg = q.reshape([b, nkv, rep * s, d]);
                    let scores = qg.matmul(&k_all.transpose(2, 3)) * scale
                        + key_mask.view([b, 1, 1, t]).to_kind(akind);
                    let p = scores.softmax(-1, akind);
                    p.matmul(&v_all).view([b, nh, s, d])
                }
            }
        };
        let out = out.to_kind(h.kind()).transpose(1, 2).reshape([b, s, nh * d]);
        match &lw.dnn {
            Some(d) => dnn_linear(&out, &d.o),
            None => out.linear(&lw.o, lw.o_bias.as_ref()),
        }
    }

    /// Logits of the last position of every row: `hidden` [batch, seq, hidden] → [batch, vocab]
    /// in f32.
    pub fn last_logits(&self, w: &Weights, hidden: &Tensor) -> Tensor {
        let s = hidden.size()[1];
        let last = hidden.select(1, s - 1);
        match &w.lm_head_dnn {
            Some(d) => dnn_linear(&last, &(d.shallow_clone(), None)),
            None => last.linear(&w.lm_head, None::<Tensor>),
        }
        .to_kind(Kind::Float)
    }

    /// Full logits [batch, seq, vocab] in f32 (tests and small inputs only).
    pub fn logits(&self, w: &Weights, ids: &Tensor) -> Tensor {
        let s = ids.size()[1];
        let pos = Tensor::arange(s, (Kind::Int64, ids.device())).unsqueeze(0).expand_as(ids);
        let hidden = self.forward_hidden(w, ids, &pos, Attention::Causal);
        hidden.linear(&w.lm_head, None::<Tensor>).to_kind(Kind::Float)
    }
}

/// `t` in `kind`: the tensor itself for f32 (no copy), else a cast.
fn cast(t: &Tensor, kind: Kind) -> Tensor {
    if t.kind() == kind {
        t.shallow_clone()
    } else {
        t.to_kind(kind)
    }
}

/// Repeat each key/value head `rep` times: [b, nkv, s, d] → [b, nkv * rep, s, d], as
/// transformers' `repeat_kv` (query head h uses key/value head h / rep).
fn repeat_kv(x: &Tensor, rep: i64) -> Tensor {
    if rep == 1 {
        return x.shallow_clone();
    }
    let (b, n, s, d) = x.size4().unwrap();
    x.unsqueeze(2).expand([b, n, rep, s, d], false).reshape([b, n * rep, s, d])
}

/// RMSNorm: `weight · x / sqrt(mean(x²) + eps)` over the last dimension, statistics in f32.
/// libtorch's fused kernel is one op where the composite is six, which matters in decode
/// steps (twice per layer). In bf16 it scales in f32 and rounds once, where transformers
/// rounds the normalised value to bf16 before scaling: at most one bf16 step apart.
pub fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64) -> Tensor {
    let h = *x.size().last().expect("rms_norm of a scalar");
    x.rms_norm([h], Some(weight), eps)
}
