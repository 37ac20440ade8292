//! Choosing the next token of one row on the CPU, from that row's own random stream.
//!
//! Each row gets a ChaCha RNG seeded from its request seed, and draws exactly one uniform
//! number per generated token, so a row's sample depends only on its seed and its
//! probabilities — not on which other rows shared its batch.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// How to choose tokens. Filters apply in transformers' order: temperature, top-k, top-p.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SamplingParams {
    /// 0 means greedy (argmax).
    pub temperature: f64,
    /// Keep the smallest set of most likely tokens whose probability reaches `top_p`
    /// (1 = off).
    pub top_p: f64,
    /// Keep only the `top_k` most likely tokens (0 = off).
    pub top_k: usize,
    pub max_new_tokens: usize,
    /// Finish a row (reason `stop`) once its decoded completion contains one of these.
    pub stop_strings: Vec<String>,
}

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams {
            temperature: 1.0,
            top_p: 1.0,
            top_k: 0,
            max_new_tokens: 256,
            stop_strings: Vec::new(),
        }
    }
}

impl SamplingParams {
    pub fn greedy(max_new_tokens: usize) -> SamplingParams {
        SamplingParams { temperature: 0.0, max_new_tokens, ..Default::default() }
    }
}

pub fn row_rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// Pick a token from one row's log-probabilities `logp` [vocab] (log-softmax of the logits at
/// temperature 1). `scratch` is reused between calls to avoid allocation.
pub fn sample_row(
    logp: &[f32],
    p: &SamplingParams,
    rng: &mut ChaCha8Rng,
    scratch: &mut Vec<(f32, u32)>,
) -> u32 {
    // One draw per token whatever the settings, so streams stay aligned across settings.
    let u: f64 = rng.random();
    if p.temperature <= 0.0 {
        return argmax(logp);
    }
    let inv_t = 1.0 / p.temperature;
    let max = logp.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let top_k_on = p.top_k > 0 && p.top_k < logp.len();
    if !top_k_on && p.top_p >= 1.0 {
        // Fast path (the SPICE default: temperature 1, no filters): inverse CDF in two passes.
        let w = |x: f32| (((x - max) as f64) * inv_t).exp();
        let total: f64 = logp.iter().map(|&x| w(x)).sum();
        let target = u * total;
        let mut acc = 0.0;
        let mut last = 0;
        for (i, &x) in logp.iter().enumerate() {
            let wi = w(x);
            if wi > 0.0 {
                acc += wi;
                last = i;
                if acc > target {
                    return i as u32;
                }
            }
        }
        return last as u32;
    }
    // Filtered path: candidates sorted by probability, most likely first.
    scratch.clear();
    scratch.extend(logp.iter().enumerate().map(|(i, &x)| (x, i as u32)));
    let by_desc = |a: &(f32, u32), b: &(f32, u32)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
    if top_k_on {
        // Ties with the k-th value are kept, as transformers does.
        scratch.select_nth_unstable_by(p.top_k - 1, by_desc);
        let kth = scratch[p.top_k - 1].0;
        scratch.retain(|c| c.0 >= kth);
    }
    scratch.sort_unstable_by(by_desc);
    let mut weights: Vec<f64> =
        scratch.iter().map(|c| (((c.0 - max) as f64) * inv_t).exp()).collect();
    let total: f64 = weights.iter().sum();
    if p.top_p < 1.0 {
        // Keep tokens while the mass before them is below top_p (at least one).
        let mut before = 0.0;
        let mut keep = 0;
        for w in &weights {
            if keep > 0 && before / total >= p.top_p {
                break;
            }
            before += w;
            keep += 1;
        }
        weights.truncate(keep);
    }
    let total: f64 = weights.iter().sum();
    let target = u * total;
    let mut acc = 0.0;
    for (w, c) in weights.iter().zip(scratch.iter()) {
        acc += w;
        if acc > target {
            return c.1;
        }
    }
    scratch[weights.len() - 1].1
}

/// Index of the largest value (the first on ties, as torch's argmax).
pub fn argmax(x: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in x.iter().enumerate() {
        if v > x[best] {
            best = i;
        }
    }
    best as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logp(probs: &[f64]) -> Vec<f32> {
        probs.iter().map(|p| p.ln() as f32).collect()
    }

    fn freq(lp: &[f32], p: &SamplingParams, n: usize) -> Vec<f64> {
        let mut rng = row_rng(7);
        let mut counts = vec![0.0; lp.len()];
        let mut scratch = Vec::new();
        for _ in 0..n {
            counts[sample_row(lp, p, &mut rng, &mut scratch) as usize] += 1.0;
        }
        counts.iter().map(|c| c / n as f64).collect()
    }

    #[test]
    fn frequencies_follow_the_distribution() {
        let lp = logp(&[0.5, 0.3, 0.15, 0.05]);
        let f = freq(&lp, &SamplingParams::default(), 40_000);
        for (got, want) in f.iter().zip([0.5, 0.3, 0.15, 0.05]) {
            assert!((got - want).abs() < 0.01, "{f:?}");
        }
    }

    #[test]
    fn filters_remove_the_tail() {
        let lp = logp(&[0.5, 0.3, 0.15, 0.05]);
        let k2 = SamplingParams { top_k: 2, ..Default::default() };
        let f = freq(&lp, &k2, 20_000);
        assert_eq!((f[2], f[3]), (0.0, 0.0));
        assert!((f[0] - 0.625).abs() < 0.015, "{f:?}");
        // top_p 0.7: 0.5 is below it, 0.5 + 0.3 reaches it: tokens 0 and 1 stay.
        let p7 = SamplingParams { top_p: 0.7, ..Default::default() };
        let f = freq(&lp, &p7, 20_000);
        assert_eq!((f[2], f[3]), (0.0, 0.0));
        assert!(f[1] > 0.3, "{f:?}");
        // A low temperature sharpens toward the mode.
        let cold = SamplingParams { temperature: 0.25, ..Default::default() };
        assert!(freq(&lp, &cold, 10_000)[0] > 0.85);
    }

    #[test]
    fn greedy_and_seeds() {
        let lp = logp(&[0.1, 0.6, 0.3]);
        let mut s = Vec::new();
        assert_eq!(sample_row(&lp, &SamplingParams::greedy(1), &mut row_rng(1), &mut s), 1);
        let draw = |seed| {
            let mut r = row_rng(seed);
            (0..50)
                .map(|_| sample_row(&lp, &SamplingParams::default(), &mut r, &mut s.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(3), draw(3));
        assert_ne!(draw(3), draw(4));
    }
}
