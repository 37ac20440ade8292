//! Data parallelism for the update (DDP's scheme on c10d): each rank forwards and
//! back-propagates its share of a step's micro-batches, the gradients are summed over ranks in
//! buckets, and every rank takes the same AdamW step on the same summed gradient, so the
//! weights stay identical everywhere without being sent.
//!
//! A rank's share is a run of whole micro-batches of the step's ordered rows, cut where world
//! size 1 cuts them: the micro-batches, and so each one's gradient, are those of a single
//! process; only the order in which they are added differs.

use std::ops::Range;

use anyhow::Result;
use spice_dist::{ProcessGroup, ReduceOp};
use spice_lm::tch::{Kind, Tensor};

/// DDP's default bucket: 25 MiB of f32 gradients per all-reduce.
const BUCKET_ELEMENTS: i64 = 25 * 1024 * 1024 / 4;

/// The rows `[start, end)` of `n` ordered rows that `rank` of `world` works on: whole
/// micro-batches of `micro_batch` rows, spread as evenly as they divide.
pub fn share(n: usize, micro_batch: usize, rank: usize, world: usize) -> Range<usize> {
    let micro_batch = micro_batch.max(1);
    let chunks = n.div_ceil(micro_batch);
    let first = chunks * rank / world;
    let last = chunks * (rank + 1) / world;
    (first * micro_batch).min(n)..(last * micro_batch).min(n)
}

/// Sum every parameter's gradient over the ranks, in place, in buckets of about 25 MiB. A
/// parameter with no gradient on this rank (it had no rows) takes part as zeros.
pub fn all_reduce_gradients<'a>(
    group: &ProcessGroup,
    params: impl Iterator<Item = &'a Tensor>,
) -> Result<()> {
    let grads: Vec<Tensor> = params.map(defined_grad).collect();
    let mut start = 0;
    while start < grads.len() {
        let mut end = start;
        let mut elements = 0;
        // Same kind in a bucket (all f32 today: the master weights).
        while end < grads.len()
            && (end == start || elements + grads[end].numel() as i64 <= BUCKET_ELEMENTS)
            && grads[end].kind() == grads[start].kind()
        {
            elements += grads[end].numel() as i64;
            end += 1;
        }
        let bucket = &grads[start..end];
        let flat = Tensor::cat(&bucket.iter().map(|g| g.reshape([-1])).collect::<Vec<_>>(), 0);
        group.all_reduce(&flat, ReduceOp::Sum)?;
        let mut offset = 0;
        for g in bucket {
            let n = g.numel() as i64;
            let mut g = g.shallow_clone();
            g.copy_(&flat.narrow(0, offset, n).view_as(&g));
            offset += n;
        }
        start = end;
    }
    Ok(())
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
