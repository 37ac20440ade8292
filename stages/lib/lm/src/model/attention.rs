//! Grouped-query self-attention with rotary positions, optional q/k RMSNorm (Qwen3) and
//! biases (Qwen2), over the whole sequence or through a KV cache.

use tch::{Device, Kind, Tensor};

use super::linear::{Linear, Projections};
use super::load::Vars;
use super::norm::RmsNorm;
use crate::config::Config;
use crate::kv_cache::{KvCache, PrefixKv, SpanRun};
use crate::rope;

/// How queries may attend.
pub enum AttnMode<'a> {
    /// Causal over the sequence itself, no padding before real tokens (right-padded rows):
    /// the memory-efficient fused kernel, used for scoring and training.
    Causal,
    /// Right-padded prompts, causal as above; each layer also keeps its keys and values in
    /// the prefix, which the samples of each prompt then share.
    Prefill(&'a mut PrefixKv),
    /// Right-padded rests of prompts that all continue one prefilled prefix (`past`, one
    /// prompt's keys and values): each rest attends to the whole prefix and causally to itself
    /// under `mask` ([`extend_mask`]), as it would after its own copy of the prefix; each layer
    /// keeps the rests' keys and values in `out`.
    Extend { past: &'a PrefixKv, mask: &'a Tensor, out: &'a mut PrefixKv },
    /// One new token per slot of the cache, each at the slot's own length.
    Decode(&'a mut KvCache),
    /// Training and scoring with each shared prompt prefix once: the sequence (batch 1) holds
    /// the prefixes, then each row's suffix, laid out as [`SharedPrefix`] says.
    SharedPrefix(&'a SharedPrefix),
}

/// The packed layout of [`AttnMode::SharedPrefix`]: one sequence of `groups` shared prompt
/// prefixes, each right-padded to `prefix_len` tokens, then `rows` suffixes (the rest of a
/// row's prompt, then its completion), each right-padded to `suffix_len`. A prefix attends
/// causally to itself; a suffix attends to its group's prefix and causally to itself — what it
/// would see after its own copy of the prefix, so its hidden states are those of the unshared
/// row (Prefix Grouper, arXiv 2506.05433). Gradients of all a prefix's rows meet in its one
/// copy.
pub struct SharedPrefix {
    pub groups: i64,
    pub prefix_len: i64,
    pub rows: i64,
    pub suffix_len: i64,
    /// [rows] (Int64): the group (prefix) of each row.
    pub group_of_row: Tensor,
    /// [rows, 1, suffix_len, prefix_len + suffix_len] in the attention dtype, added to the
    /// scores: 0 where a suffix token sees the key — its prefix's real tokens, then its own
    /// tokens up to itself — and −∞ elsewhere (an additive mask runs faster than a boolean one
    /// in libtorch's CPU attention).
    pub mask: Tensor,
}

pub struct Attention {
    /// q_proj, k_proj and v_proj.
    qkv: Projections,
    o_proj: Linear,
    q_norm: Option<RmsNorm>,
    k_norm: Option<RmsNorm>,
    n_heads: i64,
    n_kv_heads: i64,
    head_dim: i64,
    /// This layer's slot in the KV cache.
    layer_idx: usize,
}

impl Attention {
    /// `{prefix}.{q,k,v,o}_proj`, and `{prefix}.{q,k}_norm` for Qwen3.
    pub fn load(
        cfg: &Config,
        vars: &mut Vars,
        prefix: &str,
        layer_idx: usize,
    ) -> anyhow::Result<Attention> {
        let h = cfg.hidden_size as i64;
        let d = cfg.head_dim() as i64;
        let (nh, nkv) = (cfg.num_attention_heads as i64, cfg.num_kv_heads() as i64);
        let qb = cfg.qkv_bias();
        let q = Linear::load(vars, &format!("{prefix}.q_proj"), h, nh * d, qb)?;
        let k = Linear::load(vars, &format!("{prefix}.k_proj"), h, nkv * d, qb)?;
        let v = Linear::load(vars, &format!("{prefix}.v_proj"), h, nkv * d, qb)?;
        let o_proj = Linear::load(vars, &format!("{prefix}.o_proj"), nh * d, h, cfg.o_bias())?;
        let (q_norm, k_norm) = if cfg.qk_norm() {
            let eps = cfg.rms_norm_eps;
            (
                Some(RmsNorm::load(vars, &format!("{prefix}.q_norm"), d, eps)?),
                Some(RmsNorm::load(vars, &format!("{prefix}.k_norm"), d, eps)?),
            )
        } else {
            (None, None)
        };
        Ok(Attention {
            qkv: Projections::Separate(vec![q, k, v]),
            o_proj,
            q_norm,
            k_norm,
            n_heads: nh,
            n_kv_heads: nkv,
            head_dim: d,
            layer_idx,
        })
    }

    /// `h` [batch, seq, hidden] → [batch, seq, hidden]; `cos`, `sin` from
    /// [`crate::rope::Rope::cos_sin`] for the tokens' positions.
    pub fn forward(
        &self,
        h: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        mode: &mut AttnMode<'_>,
    ) -> Tensor {
        let (b, s) = (h.size()[0], h.size()[1]);
        let (d, nh, nkv) = (self.head_dim, self.n_heads, self.n_kv_heads);
        let rep = nh / nkv;
        // Attention runs in f32 on CPU even for bf16 compute: libtorch's bf16 CPU attention
        // is several times slower, and the softmax is where precision matters most.
        let akind = if h.device() == Device::Cpu { Kind::Float } else { h.kind() };
        let heads = |t: &Tensor, n: i64| t.reshape([b, s, n, d]).transpose(1, 2); // [b, n, s, d]
        let qkv = self.qkv.forward(h);
        let mut q = heads(&qkv[0], nh);
        let mut k = heads(&qkv[1], nkv);
        let v = heads(&qkv[2], nkv).to_kind(akind);
        if let (Some(qn), Some(kn)) = (&self.q_norm, &self.k_norm) {
            q = qn.forward(&q);
            k = kn.forward(&k);
        }
        let q = rope::apply(&q, cos, sin).to_kind(akind);
        let k = rope::apply(&k, cos, sin).to_kind(akind);
        let scale = 1.0 / (d as f64).sqrt();
        let causal = |k: &Tensor, v: &Tensor| {
            let (k, v) = (repeat_kv(k, rep), repeat_kv(v, rep));
            Tensor::scaled_dot_product_attention(
                &q,
                &k,
                &v,
                None::<Tensor>,
                0.0,
                true,
                scale,
                false,
            )
        };
        // [b, nh, s, d]
        let out = match mode {
            AttnMode::Causal => causal(&k, &v),
            AttnMode::SharedPrefix(sp) => shared_prefix_attention(&q, &k, &v, sp, rep, scale),
            AttnMode::Prefill(prefix) => {
                prefix.k.push(k.shallow_clone());
                prefix.v.push(v.shallow_clone());
                causal(&k, &v)
            }
            AttnMode::Extend { past, mask, out } => {
                out.k.push(k.shallow_clone());
                out.v.push(v.shallow_clone());
                let with_past = |p: &Tensor, t: &Tensor| {
                    let p = p.expand([b, nkv, p.size()[2], d], false);
                    repeat_kv(&Tensor::cat(&[p, t.shallow_clone()], 2), rep)
                };
                let k = with_past(&past.k[self.layer_idx], &k);
                let v = with_past(&past.v[self.layer_idx], &v);
                Tensor::scaled_dot_product_attention(
                    &q,
                    &k,
                    &v,
                    Some(*mask),
                    0.0,
                    false,
                    scale,
                    false,
                )
            }
            AttnMode::Decode(cache) => {
                // Group the query heads that share a key/value head so the cache is read in
                // place, never repeated. [b, nkv, rep, span]
                assert_eq!(s, 1, "decoding through the cache takes one token per step");
                let runs = cache.span_runs();
                let (k_all, v_all, mask) = cache.append(self.layer_idx, &k, &v);
                let qg = q.reshape([b, nkv, rep, d]);
                match runs {
                    // Each slot over exactly its own columns (batch-invariant decoding).
                    Some(runs) => exact_span_attention(&qg, &k_all, &v_all, &runs, scale, akind)
                        .view([b, nh, s, d]),
                    None => {
                        let scores = qg.matmul(&k_all.transpose(2, 3)) * scale + mask;
                        let p = scores.softmax(-1, akind);
                        p.matmul(&v_all).view([b, nh, s, d])
                    }
                }
            }
        };
        let out = out.to_kind(h.kind()).transpose(1, 2).reshape([b, s, nh * d]);
        self.o_proj.forward(&out)
    }

    pub fn to_kind(&self, kind: Kind) -> Attention {
        Attention {
            qkv: self.qkv.to_kind(kind),
            o_proj: self.o_proj.to_kind(kind),
            q_norm: self.q_norm.as_ref().map(|n| n.to_kind(kind)),
            k_norm: self.k_norm.as_ref().map(|n| n.to_kind(kind)),
            ..*self
        }
    }

    /// Stack q, k and v for inference: one GEMM instead of three.
    pub fn fuse(&mut self) {
        self.qkv.stack();
    }

    pub fn is_fused(&self) -> bool {
        self.qkv.is_stacked()
    }

    pub fn to_onednn(&mut self, decode_rows: Option<i64>) {
        self.qkv.to_onednn(decode_rows);
        self.o_proj = self.o_proj.to_onednn(decode_rows);
    }
}

/// The additive mask of [`AttnMode::Extend`]: [1, 1, rest, past + rest], 0 where a query of
/// the rest sees the key — every column of the prefix, then its own rest up to itself — and −∞
/// elsewhere.
pub fn extend_mask(past: i64, rest: i64, kind: Kind, device: Device) -> Tensor {
    let q = Tensor::arange(rest, (Kind::Int64, device)).view([rest, 1]);
    let k = Tensor::arange(past + rest, (Kind::Int64, device)).view([1, past + rest]) - past;
    let hidden = k.gt_tensor(&q);
    Tensor::zeros([rest, past + rest], (kind, device))
        .masked_fill(&hidden, f64::NEG_INFINITY)
        .view([1, 1, rest, past + rest])
}

/// Decode attention of each slot over exactly its own columns: `qg` [b, nkv, rep, d],
/// `k_all`/`v_all` [b, nkv, ≥span, d] → [b, nkv, rep, d]. No column past a slot's own enters
/// its sums, so what a slot computes does not depend on the other slots (a shared, masked span
/// changes how the GEMMs sum, with its length). A run of neighbouring slots of equal span —
/// the samples of one prompt decoding in step — attends together: a batched GEMM computes each
/// of its matrices as it would alone. Every run reads views of the cache (no copies), and the
/// runs come in slot order, so their outputs concatenate into slot order.
fn exact_span_attention(
    qg: &Tensor,
    k_all: &Tensor,
    v_all: &Tensor,
    runs: &[SpanRun],
    scale: f64,
    kind: Kind,
) -> Tensor {
    let mut outs: Vec<Tensor> = runs
        .iter()
        .map(|r| {
            let k = k_all.narrow(0, r.start, r.len).narrow(2, 0, r.span);
            let v = v_all.narrow(0, r.start, r.len).narrow(2, 0, r.span);
            let scores = qg.narrow(0, r.start, r.len).matmul(&k.transpose(2, 3)) * scale;
            scores.softmax(-1, kind).matmul(&v)
        })
        .collect();
    if outs.len() == 1 {
        outs.pop().unwrap()
    } else {
        Tensor::cat(&outs, 0)
    }
}

/// [`AttnMode::SharedPrefix`] attention: `q` [1, nh, T, d], `k`/`v` [1, nkv, T, d] →
/// [1, nh, T, d]. Prefixes attend causally among themselves (right padding is exact, as in
/// [`AttnMode::Causal`]); each suffix attends to its group's prefix keys, gathered per row,
/// then to its own, under the layout's mask.
fn shared_prefix_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    sp: &SharedPrefix,
    rep: i64,
    scale: f64,
) -> Tensor {
    let (pre, suf) = (sp.groups * sp.prefix_len, sp.rows * sp.suffix_len);
    // [1, n, T, d] → prefixes [groups, n, P, d] and suffixes [rows, n, U, d].
    let split = |t: &Tensor| {
        let (n, d) = (t.size()[1], t.size()[3]);
        let p = t.narrow(2, 0, pre).reshape([n, sp.groups, sp.prefix_len, d]).transpose(0, 1);
        let c = t.narrow(2, pre, suf).reshape([n, sp.rows, sp.suffix_len, d]).transpose(0, 1);
        (p, c)
    };
    let ((qp, qc), (kp, kc), (vp, vc)) = (split(q), split(k), split(v));
    let sdpa = |q: &Tensor, k: &Tensor, v: &Tensor, mask: Option<&Tensor>| {
        let (k, v) = (repeat_kv(k, rep), repeat_kv(v, rep));
        Tensor::scaled_dot_product_attention(q, &k, &v, mask, 0.0, mask.is_none(), scale, false)
    };
    let out_p = sdpa(&qp, &kp, &vp, None);
    // Each suffix's keys: its prefix's (one copy per row, read by index), then its own.
    let kc = Tensor::cat(&[kp.index_select(0, &sp.group_of_row), kc], 2);
    let vc = Tensor::cat(&[vp.index_select(0, &sp.group_of_row), vc], 2);
    let out_c = sdpa(&qc, &kc, &vc, Some(&sp.mask.to_kind(qc.kind())));
    let nh = q.size()[1];
    let join = |o: Tensor, len: i64| o.transpose(0, 1).reshape([1, nh, len, q.size()[3]]);
    Tensor::cat(&[join(out_p, pre), join(out_c, suf)], 2)
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
