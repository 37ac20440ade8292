//! The key/value cache of continuous batching: a fixed number of slots, each holding one
//! sample's keys and values at its own length.
//!
//! Every layer owns `[slots, kv_heads, capacity, head_dim]` buffers allocated once per
//! `generate` call. A sample enters a free slot by copying its prompt's keys and values
//! ([`PrefixKv`], computed once per distinct prompt and shared by all its samples) into
//! columns `[0, prompt_len)`; each decode step then writes one column per slot at that slot's
//! own length (a scatter), and attends over the columns below it. What a slot held before
//! stays in the buffer past its length, masked out, so a slot is reused without clearing.

use tch::{Device, Kind, Tensor};

/// The keys and values of prompts, per layer `[prompts, kv_heads, len, head_dim]` in the
/// attention dtype (rotary positions applied, before any head repetition); one prompt's, with
/// its own length, when placed into a slot.
#[derive(Default)]
pub struct PrefixKv {
    pub k: Vec<Tensor>,
    pub v: Vec<Tensor>,
}

impl PrefixKv {
    pub fn len(&self) -> i64 {
        self.k.first().map_or(0, |k| k.size()[2])
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The same tensors, shared.
    pub fn shallow_clone(&self) -> PrefixKv {
        let share = |ts: &[Tensor]| ts.iter().map(Tensor::shallow_clone).collect();
        PrefixKv { k: share(&self.k), v: share(&self.v) }
    }

    /// `self`'s tokens followed by `rest`'s, layer by layer (one prompt each).
    pub fn join(&self, rest: &PrefixKv) -> PrefixKv {
        let cat = |a: &[Tensor], b: &[Tensor]| {
            a.iter().zip(b).map(|(a, b)| Tensor::cat(&[a, b], 2)).collect()
        };
        PrefixKv { k: cat(&self.k, &rest.k), v: cat(&self.v, &rest.v) }
    }
}

/// Slots `start..start + len` read the same `span` columns in this decode step: a run of
/// neighbouring slots at one length (the samples of one prompt, placed together, decode in
/// step), which batch-invariant attention takes as one batched GEMM over views of the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpanRun {
    pub start: i64,
    pub len: i64,
    pub span: i64,
}

/// The runs of equal span in `lens` (each slot reads its length plus the new token), in slot
/// order.
fn span_runs(lens: &[i64]) -> Vec<SpanRun> {
    let mut runs: Vec<SpanRun> = Vec::new();
    for (slot, &len) in lens.iter().enumerate() {
        match runs.last_mut() {
            Some(r) if r.span == len + 1 => r.len += 1,
            _ => runs.push(SpanRun { start: slot as i64, len: 1, span: len + 1 }),
        }
    }
    runs
}

/// Where one decode step writes and what it may read, the same for every layer.
struct StepIndex {
    /// [slots, kv_heads, 1, head_dim] (Int64): each slot's write column, for `scatter_`.
    write: Tensor,
    /// Columns read this step: the longest slot's length plus the new token.
    span: i64,
    /// [slots, 1, 1, span] additive mask: 0 at or below a slot's new column, −∞ above.
    mask: Tensor,
    /// With [`KvCache::set_per_slot`], the slots grouped by the columns they read; found once
    /// per step, for every layer.
    runs: Option<Vec<SpanRun>>,
}

pub struct KvCache {
    /// Per layer: [slots, kv_heads, capacity, head_dim].
    k: Vec<Tensor>,
    v: Vec<Tensor>,
    /// Tokens cached per slot.
    lens: Vec<i64>,
    capacity: i64,
    step: Option<StepIndex>,
    /// Whether each slot attends over exactly its own columns (see [`KvCache::exact_spans`]).
    per_slot: bool,
}

impl KvCache {
    pub fn new(
        layers: usize,
        slots: usize,
        kv_heads: i64,
        capacity: i64,
        head_dim: i64,
        kind: Kind,
        device: Device,
    ) -> KvCache {
        let alloc = || Tensor::zeros([slots as i64, kv_heads, capacity, head_dim], (kind, device));
        KvCache {
            k: (0..layers).map(|_| alloc()).collect(),
            v: (0..layers).map(|_| alloc()).collect(),
            lens: vec![0; slots],
            capacity,
            step: None,
            per_slot: false,
        }
    }

    /// Let each slot attend over exactly its own columns, instead of all slots over the
    /// longest one's columns with a mask. Slower (one attention per distinct length and
    /// layer), but what a slot computes then depends on nothing but its own tokens: the padded
    /// columns of a shared span change how a GEMM sums (its blocking follows the span), which
    /// moves a slot's log-probs in the last bits with the other slots of its batch.
    pub fn set_per_slot(&mut self, per_slot: bool) {
        self.per_slot = per_slot;
    }

    /// With [`KvCache::set_per_slot`], this step's runs of neighbouring slots that read the
    /// same columns (their length plus the new token); `None` for the shared, masked span.
    /// Call between `begin_step` and `append`.
    pub fn span_runs(&self) -> Option<Vec<SpanRun>> {
        self.step.as_ref().expect("begin_step before span_runs").runs.clone()
    }

    /// Bytes one cached token costs over all layers (keys and values).
    pub fn bytes_per_token(layers: usize, kv_heads: i64, head_dim: i64, kind: Kind) -> u64 {
        let elem = if kind == Kind::Float { 4 } else { 2 };
        (layers as u64) * 2 * (kv_heads as u64) * (head_dim as u64) * elem
    }

    pub fn slots(&self) -> usize {
        self.lens.len()
    }

    pub fn len(&self, slot: usize) -> i64 {
        self.lens[slot]
    }

    /// Put a prompt's keys and values in `slot`, which then holds exactly the prompt.
    pub fn place(&mut self, slot: usize, prefix: &PrefixKv) {
        let p = prefix.len();
        assert!(p <= self.capacity, "a prompt of {p} tokens in a cache of {}", self.capacity);
        for (dst, src) in self.k.iter().zip(&prefix.k).chain(self.v.iter().zip(&prefix.v)) {
            dst.narrow(0, slot as i64, 1).narrow(2, 0, p).copy_(src);
        }
        self.lens[slot] = p;
    }

    /// Prepare a decode step that adds one token to every slot.
    pub fn begin_step(&mut self) {
        let device = self.k[0].device();
        let (b, nkv, _, d) = self.k[0].size4().unwrap();
        let span = self.lens.iter().max().copied().unwrap_or(0) + 1;
        assert!(span <= self.capacity, "KV cache overflow");
        let lens = Tensor::from_slice(&self.lens).to_device(device);
        let write = lens.view([b, 1, 1, 1]).expand([b, nkv, 1, d], false);
        let cols = Tensor::arange(span, (Kind::Int64, device)).view([1, span]);
        let hidden = cols.gt_tensor(&lens.view([b, 1]));
        let mask = Tensor::zeros([b, span], (self.k[0].kind(), device))
            .masked_fill(&hidden, f64::NEG_INFINITY)
            .view([b, 1, 1, span]);
        let runs = self.per_slot.then(|| span_runs(&self.lens));
        self.step = Some(StepIndex { write, span, mask, runs });
    }

    /// Write `k`, `v` [slots, kv_heads, 1, head_dim] of `layer` at each slot's next column;
    /// returns the keys, values [slots, kv_heads, span, head_dim] and the mask of this step.
    pub fn append(&mut self, layer: usize, k: &Tensor, v: &Tensor) -> (Tensor, Tensor, &Tensor) {
        let step = self.step.as_ref().expect("begin_step before append");
        let _ = self.k[layer].scatter_(2, &step.write, k);
        let _ = self.v[layer].scatter_(2, &step.write, v);
        (self.k[layer].narrow(2, 0, step.span), self.v[layer].narrow(2, 0, step.span), &step.mask)
    }

    /// Every slot now holds one more token.
    pub fn end_step(&mut self) {
        self.step = None;
        for l in &mut self.lens {
            *l += 1;
        }
    }

    /// Keep only `slots` (indices into the current slots), in that order.
    pub fn keep_slots(&mut self, slots: &[usize]) {
        let device = self.k[0].device();
        let idx: Vec<i64> = slots.iter().map(|&s| s as i64).collect();
        let idx = Tensor::from_slice(&idx).to_device(device);
        for t in self.k.iter_mut().chain(self.v.iter_mut()) {
            *t = t.index_select(0, &idx);
        }
        self.lens = slots.iter().map(|&s| self.lens[s]).collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_group_neighbouring_slots_of_one_span() {
        let run = |start, len, span| SpanRun { start, len, span };
        assert_eq!(span_runs(&[]), vec![]);
        assert_eq!(span_runs(&[4, 4, 4]), vec![run(0, 3, 5)]);
        // Equal lengths apart stay apart: a run is a view of neighbouring slots.
        assert_eq!(
            span_runs(&[4, 4, 7, 4, 2, 2]),
            vec![run(0, 2, 5), run(2, 1, 8), run(3, 1, 5), run(4, 2, 3)]
        );
        let mut c = KvCache::new(1, 3, 1, 6, 1, Kind::Float, Device::Cpu);
        c.begin_step();
        assert_eq!(c.span_runs(), None, "shared span unless per slot");
        c.set_per_slot(true);
        c.place(0, &prefix(&[1.0, 2.0]));
        c.place(2, &prefix(&[1.0, 2.0]));
        c.begin_step();
        assert_eq!(c.span_runs(), Some(vec![run(0, 1, 3), run(1, 1, 1), run(2, 1, 3)]));
    }

    fn prefix(values: &[f32]) -> PrefixKv {
        let t = Tensor::from_slice(values).view([1, 1, values.len() as i64, 1]);
        PrefixKv { k: vec![t.shallow_clone()], v: vec![t] }
    }

    #[test]
    fn slots_grow_at_their_own_lengths() {
        let mut c = KvCache::new(1, 2, 1, 5, 1, Kind::Float, Device::Cpu);
        c.place(0, &prefix(&[1.0, 2.0, 3.0]));
        c.place(1, &prefix(&[7.0]));
        c.begin_step();
        let new = Tensor::from_slice(&[4.0f32, 8.0]).view([2, 1, 1, 1]);
        let (k, _, mask) = c.append(0, &new, &new);
        assert_eq!(k.size(), vec![2, 1, 4, 1]);
        let mask: Vec<f32> = Vec::try_from(mask.flatten(0, -1)).unwrap();
        let inf = f32::NEG_INFINITY;
        assert_eq!(mask, vec![0.0, 0.0, 0.0, 0.0, 0.0, 0.0, inf, inf]);
        let k: Vec<f32> = Vec::try_from(k.flatten(0, -1)).unwrap();
        assert_eq!(&k[..4], &[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(&k[4..6], &[7.0, 8.0]);
        c.end_step();
        assert_eq!((c.len(0), c.len(1)), (4, 2));
        // Slot 1 reused by a new prompt: its old columns are simply overwritten or masked.
        c.place(1, &prefix(&[9.0, 9.5]));
        c.keep_slots(&[1]);
        assert_eq!((c.slots(), c.len(0)), (1, 2));
        let first: Vec<f32> = Vec::try_from(c.k[0].narrow(2, 0, 2).flatten(0, -1)).unwrap();
        assert_eq!(first, vec![9.0, 9.5]);
    }
}
