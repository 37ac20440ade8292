//! Choosing the next token of each row, from that row's own counter-based random stream.
//!
//! Draw t of a sample (the one that picks its t-th new token) is a pure function of its
//! request seed and t: SplitMix64's t-th output from a key mixed out of the seed. So a row's
//! sample depends only on its seed and its probabilities — not on which other rows shared its
//! batch, nor on the order rows arrived in — and, being integer arithmetic, the draw is the
//! same bits on every device. The draw is computed where the logits are ([`uniforms_on`]);
//! only each row's 64-bit counter goes there, as its token id and position already do, and
//! only the chosen ids and their log-probs come back. This is the counter-based design of
//! cuRAND's and PyTorch's Philox generators, with a cheaper mixer: a step's draws cost about
//! fifteen element-wise ops on a `[rows]` tensor, and no per-row generator state lives on the
//! host or the device.

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

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

/// SplitMix64's increment: 2^64 divided by the golden ratio, odd.
const GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;
const MIX1: u64 = 0xbf58_476d_1ce4_e5b9;
const MIX2: u64 = 0x94d0_49bb_1331_11eb;

/// SplitMix64's output function (Steele, Lea and Flood 2014; Stafford's "Mix13").
pub fn mix64(z: u64) -> u64 {
    let z = (z ^ (z >> 30)).wrapping_mul(MIX1);
    let z = (z ^ (z >> 27)).wrapping_mul(MIX2);
    z ^ (z >> 31)
}

/// The stream of a request seed: mixed once, so that seeds differing in a few bits start far
/// apart on SplitMix64's cycle.
pub fn stream_key(seed: u64) -> u64 {
    mix64(seed)
}

/// The counter of draw `t` of stream `key`: SplitMix64's state before its (t+1)-th output.
pub fn stream_counter(key: u64, t: u64) -> u64 {
    key.wrapping_add(GAMMA.wrapping_mul(t.wrapping_add(1)))
}

/// A counter's uniform in [0, 1): the top 24 bits of its mix, exact in f32 (never 1).
pub fn uniform(counter: u64) -> f32 {
    (mix64(counter) >> 40) as f32 * (1.0 / (1u64 << 24) as f32)
}

/// [`uniform`] of every counter, computed on `device` with integer tensor ops: `[n, 1]` f32,
/// the same bits as the host function on any device. Only the counters are copied there.
pub fn uniforms_on(counters: &[u64], device: Device) -> Tensor {
    // torch has no u64: the same bits as i64, with wrapping multiplication, and a logical
    // right shift made from the arithmetic one and a mask.
    let bits: Vec<i64> = counters.iter().map(|&c| c as i64).collect();
    let z = Tensor::from_slice(&bits).to_device(device);
    let shr = |x: &Tensor, s: u32| {
        x.bitwise_right_shift_tensor_scalar(s as i64).bitwise_and((u64::MAX >> s) as i64)
    };
    let z = z.bitwise_xor_tensor(&shr(&z, 30)) * (MIX1 as i64);
    let z = z.bitwise_xor_tensor(&shr(&z, 27)) * (MIX2 as i64);
    let z = z.bitwise_xor_tensor(&shr(&z, 31));
    (shr(&z, 40).to_kind(Kind::Float) * (1.0 / (1u64 << 24) as f64)).view([-1, 1])
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
/// `counters[r]` is row r's draw counter ([`stream_counter`]); its uniform u is computed on
/// the logits' device, and the token is the first whose cumulative probability (after
/// temperature, top-k and top-p) exceeds u times the total, so it depends only on that row's
/// logits and draw. Only the chosen ids and their log-probs are copied back. Returns, per
/// row, the token and its log-probability under the distribution at the sampling
/// temperature: log-softmax of logits / T (of the raw logits for greedy), before top-k and
/// top-p. This is the distribution the update scores a training role's tokens under
/// (`Policy::score_at`), so the two agree; top-k and top-p truncate it, which the update
/// cannot score, so the run config refuses them for training roles.
pub fn sample_batch(logits: &Tensor, p: &SamplingParams, counters: &[u64]) -> (Vec<u32>, Vec<f32>) {
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
        let u = uniforms_on(counters, device);
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
    let tokens: Vec<i64> = Vec::try_from(tokens.view([b]).to_device(Device::Cpu)).unwrap();
    let lp: Vec<f32> = Vec::try_from(lp.view([b]).to_device(Device::Cpu)).unwrap();
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

/// Pick a token from one row's log-probabilities `logp` [vocab] on the CPU with the uniform
/// `u`: the same rule as [`sample_batch`], kept as its plain reference. `scratch` is reused
/// between calls.
pub fn sample_row(logp: &[f32], p: &SamplingParams, u: f32, scratch: &mut Vec<(f32, u32)>) -> u32 {
    let u = u as f64;
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

    /// `n` draws of one stream.
    fn draws(seed: u64, n: u64) -> Vec<f32> {
        let key = stream_key(seed);
        (0..n).map(|t| uniform(stream_counter(key, t))).collect()
    }

    fn freq(lp: &[f32], p: &SamplingParams, n: usize) -> Vec<f64> {
        let mut counts = vec![0.0; lp.len()];
        let mut scratch = Vec::new();
        for u in draws(7, n as u64) {
            counts[sample_row(lp, p, u, &mut scratch) as usize] += 1.0;
        }
        counts.iter().map(|c| c / n as f64).collect()
    }

    /// SplitMix64 from state 0 gives the published sequence (the reference outputs of
    /// Vigna's splitmix64.c, also Java's `SplittableRandom`); the counter form reaches the
    /// same outputs without stepping.
    #[test]
    fn the_stream_is_splitmix64() {
        let want = [0xe220_a839_7b1d_cdaf_u64, 0x6e78_9e6a_a1b9_65f4, 0x06c4_5d18_8009_454f];
        for (t, w) in want.iter().enumerate() {
            assert_eq!(mix64(stream_counter(0, t as u64)), *w, "output {t}");
        }
    }

    /// The tensor draws equal the host draws bit for bit, over counters that exercise the
    /// sign bit and wrapping multiplication.
    #[test]
    fn device_draws_equal_host_draws() {
        let mut counters: Vec<u64> = vec![0, 1, u64::MAX, 1 << 63, (1 << 63) - 1, GAMMA];
        for seed in 0..200u64 {
            let key = stream_key(seed);
            counters.extend((0..20).map(|t| stream_counter(key, t * 977)));
        }
        let on_device: Vec<f32> =
            Vec::try_from(uniforms_on(&counters, Device::Cpu).view([-1])).unwrap();
        let host: Vec<f32> = counters.iter().map(|&c| uniform(c)).collect();
        assert_eq!(on_device.len(), host.len());
        for (i, (d, h)) in on_device.iter().zip(&host).enumerate() {
            assert_eq!(d.to_bits(), h.to_bits(), "counter {:#x}", counters[i]);
        }
        assert!(host.iter().all(|&u| (0.0..1.0).contains(&u)));
    }

    /// Draws are uniform, and streams of neighbouring seeds are not shifted copies of each
    /// other.
    #[test]
    fn draws_are_uniform_and_streams_differ() {
        let n = 50_000;
        let u = draws(3, n);
        let mean = u.iter().map(|&x| x as f64).sum::<f64>() / n as f64;
        assert!((mean - 0.5).abs() < 0.005, "{mean}");
        let mut bins = [0usize; 10];
        for &x in &u {
            bins[(x * 10.0) as usize] += 1;
        }
        assert!(bins.iter().all(|&c| (c as f64 - 5000.0).abs() < 300.0), "{bins:?}");
        let (a, b) = (draws(3, 64), draws(4, 64));
        for shift in 0..32 {
            assert_ne!(a[shift..shift + 32], b[..32], "shift {shift}");
            assert_ne!(b[shift..shift + 32], a[..32], "shift {shift}");
        }
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
        let logits = Tensor::randn([4, 50], (Kind::Float, Device::Cpu)) * 3.0;
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
                let counters: Vec<u64> =
                    (0..4).map(|r| stream_counter(stream_key(seed * 10 + r), 0)).collect();
                let (tokens, lps) = sample_batch(&logits, p, &counters);
                // Log-probs at the sampling temperature (greedy: at 1).
                let at_t: Vec<Vec<f32>> = (0..4)
                    .map(|r| {
                        let lt = tempered(&logits.get(r), p.temperature);
                        Vec::try_from(lt.log_softmax(-1, Kind::Float)).unwrap()
                    })
                    .collect();
                for r in 0..4 {
                    let want = sample_row(&rows[r], p, uniform(counters[r]), &mut Vec::new());
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
        assert_eq!(sample_row(&lp, &SamplingParams::greedy(1), 0.99, &mut s), 1);
        let draw = |seed| {
            draws(seed, 50)
                .into_iter()
                .map(|u| sample_row(&lp, &SamplingParams::default(), u, &mut s.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(3), draw(3));
        assert_ne!(draw(3), draw(4));
    }
}
