//! A preallocated key/value cache for batched decoding.
//!
//! Every layer owns `[batch, kv_heads, capacity, head_dim]` buffers allocated once per batch;
//! each step writes one column in place (`narrow` + `copy_`), so decoding never reallocates.
//! Prompts are left-padded, so all rows write the same column at each step; `key_mask`
//! remembers which columns are padding. When rows finish, [`KvCache::keep_rows`] drops them
//! so they stop costing compute.

use tch::{Device, Kind, Tensor};

pub struct KvCache {
    /// Per layer: [batch, kv_heads, capacity, head_dim].
    pub k: Vec<Tensor>,
    pub v: Vec<Tensor>,
    /// [batch, capacity] additive mask: 0 where a key may be attended, -inf on left padding.
    pub key_mask: Tensor,
    /// Columns written so far (the same for every row).
    pub len: i64,
    pub capacity: i64,
}

impl KvCache {
    pub fn new(
        layers: usize,
        batch: i64,
        kv_heads: i64,
        capacity: i64,
        head_dim: i64,
        kind: Kind,
        device: Device,
    ) -> KvCache {
        let alloc = || Tensor::zeros([batch, kv_heads, capacity, head_dim], (kind, device));
        KvCache {
            k: (0..layers).map(|_| alloc()).collect(),
            v: (0..layers).map(|_| alloc()).collect(),
            key_mask: Tensor::zeros([batch, capacity], (Kind::Float, device)),
            len: 0,
            capacity,
        }
    }

    /// Write `k`, `v` [batch, kv_heads, seq, head_dim] of `layer` at column `self.len`, and
    /// return views of everything cached so far (including them).
    pub fn append(&mut self, layer: usize, k: &Tensor, v: &Tensor) -> (Tensor, Tensor) {
        let s = k.size()[2];
        assert!(self.len + s <= self.capacity, "KV cache overflow");
        self.k[layer].narrow(2, self.len, s).copy_(k);
        self.v[layer].narrow(2, self.len, s).copy_(v);
        (self.k[layer].narrow(2, 0, self.len + s), self.v[layer].narrow(2, 0, self.len + s))
    }

    /// Keep only the rows in `rows` (indices into the current batch), in that order.
    pub fn keep_rows(&mut self, rows: &Tensor) {
        for t in self.k.iter_mut().chain(self.v.iter_mut()) {
            *t = t.index_select(0, rows);
        }
        self.key_mask = self.key_mask.index_select(0, rows);
    }

    pub fn batch(&self) -> i64 {
        self.key_mask.size()[0]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_then_drop_rows() {
        let mut c = KvCache::new(1, 3, 1, 4, 2, Kind::Float, Device::Cpu);
        let k = Tensor::arange(3 * 2, (Kind::Float, Device::Cpu)).view([3, 1, 1, 2]);
        let (ks, _) = c.append(0, &k, &k);
        c.len += 1;
        assert_eq!(ks.size(), vec![3, 1, 1, 2]);
        c.keep_rows(&Tensor::from_slice(&[2i64, 0]));
        assert_eq!(c.batch(), 2);
        let first: Vec<f32> = Vec::try_from(c.k[0].narrow(2, 0, 1).flatten(0, -1)).unwrap();
        assert_eq!(first, vec![4.0, 5.0, 0.0, 1.0]);
    }
}
