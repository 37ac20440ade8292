//! Which elements of the trainable parameters each data-parallel rank's optimizer owns (ZeRO
//! stage 1, as DeepSpeed partitions them).
//!
//! The parameters, in their sorted-name order, are cut into buckets of about 25 MiB (DDP's
//! bucket); a bucket's flattened elements, padded to a multiple of the world size, are cut into
//! `world` equal slices, and rank r owns slice r of every bucket. A bucket is then one
//! reduce-scatter of gradients and one all-gather of updated weights, and no step ever holds
//! more than a bucket of flat copies.

use std::ops::Range;

/// DDP's default bucket: 25 MiB of f32 gradients per collective.
pub const BUCKET_ELEMENTS: i64 = 25 * 1024 * 1024 / 4;

/// A run of one parameter's flattened elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece {
    /// Index of the parameter in the sorted-name order.
    pub param: usize,
    /// First element, in the parameter's flattened order.
    pub start: i64,
    pub len: i64,
}

/// Consecutive parameters reduced and gathered as one flat tensor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    pub params: Range<usize>,
    /// Elements of its parameters together.
    pub elements: i64,
    /// Elements of each rank's slice: `elements` rounded up to a multiple of the world size,
    /// divided by it.
    pub slice: i64,
}

impl Bucket {
    /// The flat length the collectives see: `slice × world` (the padding is zeros).
    pub fn padded(&self, world: usize) -> i64 {
        self.slice * world as i64
    }
}

/// Every bucket, and where each parameter starts in its bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    pub world: usize,
    pub buckets: Vec<Bucket>,
    /// Element count of each parameter.
    sizes: Vec<i64>,
}

impl Partition {
    /// Partition parameters of `sizes` elements (in sorted-name order) over `world` ranks,
    /// in buckets of at most `bucket_elements` (a larger parameter is a bucket of its own).
    pub fn new(sizes: &[i64], world: usize, bucket_elements: i64) -> Partition {
        assert!(world >= 1, "a partition needs at least one rank");
        let mut buckets = Vec::new();
        let mut start = 0;
        while start < sizes.len() {
            let mut end = start + 1;
            let mut elements = sizes[start];
            while end < sizes.len() && elements + sizes[end] <= bucket_elements {
                elements += sizes[end];
                end += 1;
            }
            let slice = (elements + world as i64 - 1) / world as i64;
            buckets.push(Bucket { params: start..end, elements, slice });
            start = end;
        }
        Partition { world, buckets, sizes: sizes.to_vec() }
    }

    pub fn size(&self, param: usize) -> i64 {
        self.sizes[param]
    }

    /// The pieces of parameters `rank` owns in bucket `b`, in the bucket's order; their
    /// lengths add up to the rank's slice less any padding.
    pub fn owned(&self, b: usize, rank: usize) -> Vec<Piece> {
        let bucket = &self.buckets[b];
        let lo = (bucket.slice * rank as i64).min(bucket.elements);
        let hi = (bucket.slice * (rank as i64 + 1)).min(bucket.elements);
        let mut pieces = Vec::new();
        let mut offset = 0;
        for param in bucket.params.clone() {
            let (p_lo, p_hi) = (offset, offset + self.sizes[param]);
            let (a, z) = (lo.max(p_lo), hi.min(p_hi));
            if a < z {
                pieces.push(Piece { param, start: a - p_lo, len: z - a });
            }
            offset = p_hi;
        }
        pieces
    }

    /// Every piece `rank` owns, bucket by bucket.
    pub fn owned_by(&self, rank: usize) -> Vec<Piece> {
        (0..self.buckets.len()).flat_map(|b| self.owned(b, rank)).collect()
    }

    /// Where parameter `param` starts in its bucket's flat tensor.
    pub fn offset_in_bucket(&self, b: usize, param: usize) -> i64 {
        (self.buckets[b].params.start..param).map(|i| self.sizes[i]).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_element_has_exactly_one_owner() {
        let sizes = [7, 1, 30, 2, 2, 64, 5];
        for world in 1..6 {
            for bucket in [1, 8, 40, 1000] {
                let part = Partition::new(&sizes, world, bucket);
                let mut owners: Vec<Vec<u32>> =
                    sizes.iter().map(|&n| vec![0; n as usize]).collect();
                for rank in 0..world {
                    for p in part.owned_by(rank) {
                        for e in p.start..p.start + p.len {
                            owners[p.param][e as usize] += 1;
                        }
                    }
                }
                for (param, o) in owners.iter().enumerate() {
                    assert!(
                        o.iter().all(|&c| c == 1),
                        "world {world} bucket {bucket} param {param}"
                    );
                }
                for (b, bk) in part.buckets.iter().enumerate() {
                    assert!(bk.params.len() == 1 || bk.elements <= bucket);
                    for rank in 0..world {
                        let owned: i64 = part.owned(b, rank).iter().map(|p| p.len).sum();
                        assert!(owned <= bk.slice);
                    }
                }
            }
        }
    }

    #[test]
    fn a_bucket_is_cut_into_equal_slices() {
        // One bucket of 7 + 1 + 2 = 10 elements over 3 ranks: slices of 4, 4 and 2 (+2 padding).
        let part = Partition::new(&[7, 1, 2], 3, 100);
        assert_eq!(part.buckets.len(), 1);
        assert_eq!(part.buckets[0].slice, 4);
        assert_eq!(part.owned(0, 0), [Piece { param: 0, start: 0, len: 4 }]);
        assert_eq!(
            part.owned(0, 1),
            [Piece { param: 0, start: 4, len: 3 }, Piece { param: 1, start: 0, len: 1 }]
        );
        assert_eq!(part.owned(0, 2), [Piece { param: 2, start: 0, len: 2 }]);
        assert_eq!(part.offset_in_bucket(0, 2), 8);
    }
}
