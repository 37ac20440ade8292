//! Choosing the next token of one row on the CPU, from that row's own random stream.
//!
//! Each row gets a ChaCha RNG seeded from its request seed, and draws exactly one uniform
//! number per generated token, so a row's sample depends only on its seed and its
//! probabilities — not on which other rows shared its batch.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

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
    /// Token ids that finish a row (reason `stop`, the token kept) besides the policy's EOS
    /// ids: the chat template's end-of-turn token when the prompts were rendered with the
    /// template (see [`crate::Policy::chat_stop_ids`]).
    #[serde(default)]
    pub stop_token_ids: Vec<u32>,
}

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams {
            temperature: 1.0,
            top_p: 1.0,
            top_k: 0,
            max_new_tokens: 256,
            stop_strings: Vec::new(),
            stop_token_ids: Vec::new(),
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

/// `logits` divided by the sampling temperature, the way both generation and the update's
/// scoring do it (a multiplication by the f32 inverse, so both round alike); greedy (0) and
/// 1 leave the logits as they are.
pub fn tempered(logits: &Tensor, temperature: f64) -> Tensor {
    if temperature <= 0.0 || temperature == 1.0 {
        logits.shallow_clone()
    } else {
        logits * inverse_temperature(temperature) as f64
    }
}

/// 1 / `temperature` in f32, the factor [`tempered`] multiplies by (1 for greedy).
pub fn inverse_temperature(temperature: f64) -> f32 {
    if temperature <= 0.0 {
        1.0
    } else {
        (1.0 / temperature) as f32
    }
}

/// Choose one token per row from `logits` [batch, vocab] (f32), on the logits' device.
///
/// `uniforms[r]` is row r's draw from its own RNG, in [0, 1): the token is the first whose
/// cumulative probability (after temperature, top-k and top-p) exceeds `uniforms[r]` times
/// the total, so it depends only on that row's logits and draw. Only the chosen ids and their
/// log-probs are copied back. Returns, per row, the token and its log-probability under the
/// distribution at the sampling temperature: log-softmax of logits / T (of the raw logits
/// for greedy), before top-k and top-p. This is the distribution the update scores a
/// training role's tokens under (`Policy::score_at`), so the two agree; top-k and top-p
/// truncate it, which the update cannot score, so the run config refuses them for training
/// roles.
pub fn sample_batch(logits: &Tensor, p: &SamplingParams, uniforms: &[f64]) -> (Vec<u32>, Vec<f32>) {
    let (b, vocab) = (logits.size()[0], logits.size()[1]);
    let device = logits.device();
    let logp = tempered(logits, p.temperature).log_softmax(-1, Kind::Float); // [b, vocab]
    let tokens = if p.temperature <= 0.0 {
        logits.argmax(-1, true) // [b, 1]
    } else {
        let mut scores = logp.shallow_clone();
        let top_k_on = p.top_k > 0 && (p.top_k as i64) < vocab;
        if top_k_on {
            // Ties with the k-th value are kept, as transformers does.
            let kth =
                scores.topk(p.top_k as i64, -1, true, true).0.narrow(1, p.top_k as i64 - 1, 1);
            scores = scores.masked_fill(&scores.lt_tensor(&kth), f64::NEG_INFINITY);
        }
        let u = Tensor::from_slice(uniforms).to_kind(Kind::Float).to_device(device).view([b, 1]);
        if p.top_p < 1.0 {
            // Most likely first; keep a token while the mass before it is below top_p.
            let (sorted, order) = scores.sort(-1, true);
            let probs = sorted.softmax(-1, Kind::Float);
            let before = probs.cumsum(-1, Kind::Float) - &probs;
            let drop = before.ge(p.top_p).logical_and(&before.gt(0.0));
            let kept = probs.masked_fill(&drop, 0.0);
            order.gather(-1, &inverse_cdf(&kept, &u), false)
        } else {
            let max = scores.max_dim(-1, true).0;
            inverse_cdf(&(scores - max).exp(), &u)
        }
    };
    let lp = logp.gather(-1, &tokens, false); // [b, 1]
    let tokens: Vec<i64> = Vec::try_from(tokens.view([b]).to_device(tch::Device::Cpu)).unwrap();
    let lp: Vec<f32> = Vec::try_from(lp.view([b]).to_device(tch::Device::Cpu)).unwrap();
    (tokens.into_iter().map(|t| t as u32).collect(), lp)
}

/// Index [b, 1] of the first entry whose running sum of `weights` [b, n] (unnormalised,
/// non-negative) exceeds `u` [b, 1] times the row total.
fn inverse_cdf(weights: &Tensor, u: &Tensor) -> Tensor {
    let n = weights.size()[1];
    let cdf = weights.cumsum(-1, Kind::Float);
    let target = u * cdf.narrow(1, n - 1, 1);
    // A weight of zero never gets picked: strictly greater, and clamp for rounding at the top.
    target.searchsorted(&cdf, false, true, "right", None::<Tensor>).clamp_max(n - 1)
}

/// Pick a token from one row's log-probabilities `logp` [vocab] on the CPU: the same rule as
/// [`sample_batch`], kept as its plain reference. `scratch` is reused between calls.
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
    // Candidates in vocabulary order (the order the batched sampler walks without top-p).
    scratch.clear();
    scratch.extend(logp.iter().enumerate().map(|(i, &x)| (x, i as u32)));
    let by_desc = |a: &(f32, u32), b: &(f32, u32)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
    if p.top_k > 0 && p.top_k < logp.len() {
        // Ties with the k-th value are kept, as transformers does.
        let mut values: Vec<f32> = logp.to_vec();
        values.select_nth_unstable_by(p.top_k - 1, |a, b| b.total_cmp(a));
        let kth = values[p.top_k - 1];
        scratch.retain(|c| c.0 >= kth);
    }
    if p.top_p < 1.0 {
        // Most likely first; keep a token while the mass before it is below top_p.
        scratch.sort_by(by_desc);
    }
    let mut weights: Vec<f64> =
        scratch.iter().map(|c| (((c.0 - max) as f64) * inv_t).exp()).collect();
    if p.top_p < 1.0 {
        let total: f64 = weights.iter().sum();
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

    /// The batched sampler on the same draws gives the same tokens as the plain reference
    /// (apart from draws within rounding of a boundary), under every filter.
    #[test]
    fn batch_sampler_agrees_with_the_reference() {
        let logits = Tensor::randn([4, 50], (Kind::Float, tch::Device::Cpu)) * 3.0;
        let rows: Vec<Vec<f32>> = (0..4)
            .map(|r| Vec::try_from(logits.get(r).log_softmax(-1, Kind::Float)).unwrap())
            .collect();
        let settings = [
            SamplingParams::default(),
            SamplingParams::greedy(1),
            SamplingParams { temperature: 0.6, ..Default::default() },
            SamplingParams { top_k: 5, ..Default::default() },
            SamplingParams { top_p: 0.8, temperature: 1.3, ..Default::default() },
            SamplingParams { top_p: 0.5, top_k: 10, ..Default::default() },
        ];
        let mut same = 0;
        let mut total = 0;
        for p in &settings {
            for seed in 0..50u64 {
                let draws: Vec<f64> = (0..4).map(|r| row_rng(seed * 10 + r).random()).collect();
                let (tokens, lps) = sample_batch(&logits, p, &draws);
                // Log-probs at the sampling temperature (greedy: at 1).
                let at_t: Vec<Vec<f32>> = (0..4)
                    .map(|r| {
                        let lt = tempered(&logits.get(r), p.temperature);
                        Vec::try_from(lt.log_softmax(-1, Kind::Float)).unwrap()
                    })
                    .collect();
                for r in 0..4 {
                    let mut rng = row_rng(seed * 10 + r as u64);
                    let want = sample_row(&rows[r], p, &mut rng, &mut Vec::new());
                    same += (tokens[r] == want) as usize;
                    total += 1;
                    assert!((lps[r] - at_t[r][tokens[r] as usize]).abs() < 1e-5);
                }
            }
        }
        assert!(same as f64 >= 0.99 * total as f64, "{same} of {total}");
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
