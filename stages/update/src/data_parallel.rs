//! Data parallelism for the update (DDP's scheme on c10d): each rank forwards and
//! back-propagates its share of a step's micro-batches, the gradients are summed over ranks in
//! buckets, and at ZeRO stage 0 every rank takes the same AdamW step on the same summed
//! gradient, so the weights stay identical everywhere without being sent.
//!
//! A rank's share is a run of whole micro-batches of the step's ordered rows, cut where world
//! size 1 cuts them: the micro-batches, and so each one's gradient, are those of a single
//! process; only the order in which they are added differs.
//!
//! With ZeRO stage 1 ([`AdamW::sharded`]) each rank's optimizer holds the moments of its slice
//! of every bucket: the gradients are reduce-scattered instead of all-reduced (each rank
//! receives the sums of its slice only), each rank updates its slice, and the updated weights
//! are all-gathered, bucket by bucket. The bytes sent are those of one all-reduce.

use std::ops::Range;

use anyhow::Result;
use spice_dist::{ProcessGroup, ReduceOp};
use spice_lm::partition::{Partition, BUCKET_ELEMENTS};
use spice_lm::tch::{Kind, Tensor};
use spice_lm::AdamW;

/// The rows `[start, end)` of `n` ordered rows that `rank` of `world` works on: whole
/// micro-batches of `micro_batch` rows, spread as evenly as they divide.
pub fn share(n: usize, micro_batch: usize, rank: usize, world: usize) -> Range<usize> {
    let micro_batch = micro_batch.max(1);
    let chunks = n.div_ceil(micro_batch);
    let first = chunks * rank / world;
    let last = chunks * (rank + 1) / world;
    (first * micro_batch).min(n)..(last * micro_batch).min(n)
}

/// Sum the gradients over the ranks, bucket by bucket: all of them when every rank holds the
/// whole optimizer, only the elements this rank's optimizer updates when it is sharded. A
/// parameter with no gradient on this rank (it had no rows) takes part as zeros.
pub fn reduce_gradients(group: &ProcessGroup, opt: &AdamW) -> Result<()> {
    let params: Vec<&Tensor> = opt.parameters().map(|(_, p)| p).collect();
    let sizes: Vec<i64> = params.iter().map(|p| p.numel() as i64).collect();
    let replicated;
    let (part, rank) = match opt.shard() {
        Some(s) => s,
        None => {
            replicated = Partition::new(&sizes, 1, BUCKET_ELEMENTS);
            (&replicated, 0)
        }
    };
    for (b, bucket) in part.buckets.iter().enumerate() {
        let grads: Vec<Tensor> = bucket.params.clone().map(|i| defined_grad(params[i])).collect();
        let flat = flat(&grads, bucket.padded(part.world));
        if opt.shard().is_none() {
            group.all_reduce(&flat, ReduceOp::Sum)?;
            let mut offset = 0;
            for g in &grads {
                let n = g.numel() as i64;
                g.view([-1]).copy_(&flat.narrow(0, offset, n));
                offset += n;
            }
            continue;
        }
        let mine = flat.new_zeros([bucket.slice], (flat.kind(), flat.device()));
        group.reduce_scatter(&mine, &flat, ReduceOp::Sum)?;
        let mut offset = 0;
        for piece in part.owned(b, rank) {
            let g = &grads[piece.param - bucket.params.start];
            g.view([-1])
                .narrow(0, piece.start, piece.len)
                .copy_(&mine.narrow(0, offset, piece.len));
            offset += piece.len;
        }
    }
    Ok(())
}

/// After a sharded optimizer's step: every rank's updated slice of every bucket, gathered
/// into every rank's weights. Nothing to do for a replicated optimizer.
pub fn all_gather_parameters(group: &ProcessGroup, opt: &AdamW) -> Result<()> {
    let Some((part, rank)) = opt.shard() else { return Ok(()) };
    let params: Vec<&Tensor> = opt.parameters().map(|(_, p)| p).collect();
    spice_lm::tch::no_grad(|| {
        for (b, bucket) in part.buckets.iter().enumerate() {
            let mine: Vec<Tensor> = part
                .owned(b, rank)
                .iter()
                .map(|p| params[p.param].view([-1]).narrow(0, p.start, p.len))
                .collect();
            let like = params[bucket.params.start];
            let input = if mine.is_empty() {
                like.new_zeros([bucket.slice], (like.kind(), like.device()))
            } else {
                flat(&mine, bucket.slice)
            };
            let all = like.new_zeros([bucket.padded(part.world)], (like.kind(), like.device()));
            group.all_gather(&all, &input)?;
            // The ranks' slices in order are the bucket's elements, then the padding.
            for i in bucket.params.clone() {
                let at = part.offset_in_bucket(b, i);
                params[i].view([-1]).copy_(&all.narrow(0, at, part.size(i)));
            }
        }
        Ok(())
    })
}

/// `tensors` flattened into one, with zeros after them up to `len` elements.
fn flat(tensors: &[Tensor], len: i64) -> Tensor {
    let mut parts: Vec<Tensor> = tensors.iter().map(|t| t.reshape([-1])).collect();
    let n: i64 = parts.iter().map(|t| t.numel() as i64).sum();
    if n < len {
        parts.push(parts[0].new_zeros([len - n], (parts[0].kind(), parts[0].device())));
    }
    Tensor::cat(&parts, 0)
}

/// The parameter's gradient, made a zero one if backward never reached it on this rank.
fn defined_grad(p: &Tensor) -> Tensor {
    let g = p.grad();
    if g.defined() {
        return g;
    }
    // Give it a gradient of zeros the way autograd would: through a backward pass.
    (p.sum(Kind::Float) * 0.0).backward();
    p.grad()
}

/// Sum `values` over the ranks (f64, so counts stay exact).
pub fn all_reduce_sum(group: &ProcessGroup, values: &mut [f64]) -> Result<()> {
    let t = Tensor::from_slice(values);
    group.all_reduce(&t, ReduceOp::Sum)?;
    values.copy_from_slice(&Vec::<f64>::try_from(&t)?);
    Ok(())
}

/// The largest of `value` over the ranks.
pub fn all_reduce_max(group: &ProcessGroup, value: f64) -> Result<f64> {
    let t = Tensor::from_slice(&[value]);
    group.all_reduce(&t, ReduceOp::Max)?;
    Ok(t.double_value(&[0]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_are_whole_micro_batches_covering_every_row_once() {
        for n in 0..40 {
            for micro in 1..6 {
                for world in 1..5 {
                    let mut next = 0;
                    for rank in 0..world {
                        let r = share(n, micro, rank, world);
                        assert_eq!(r.start, next, "n {n} micro {micro} world {world}");
                        assert!(r.start.is_multiple_of(micro) || r.start == n);
                        next = r.end;
                    }
                    assert_eq!(next, n);
                }
            }
        }
        // 10 rows in micro-batches of 4 (4, 4, 2) over 2 ranks: rank 0 one, rank 1 two.
        assert_eq!(share(10, 4, 0, 2), 0..4);
        assert_eq!(share(10, 4, 1, 2), 4..10);
    }
}
