//! The Dr. GRPO objective of one micro-batch (METHOD.md, step 9).
//!
//! Per completion token t of sequence i, with ρ = exp(log πθ − log πθ_old):
//!
//! ```text
//! pg_t = −min(ρ·Â_i, clip(ρ, 1−ε, 1+ε)·Â_i)
//! kl_t = exp(ref − cur) − (ref − cur) − 1          (k3 estimator of KL(πθ‖π_ref), ≥ 0)
//! loss = Σ_i Σ_t (pg_t + β·kl_t) / (L · N)
//! ```
//!
//! L is the longest completion either role may generate and N the number of sequences in the
//! optimizer step: a constant, so a long completion's tokens weigh as much as a short one's
//! (dividing by each sequence's length is the length bias Dr. GRPO removes).

use spice_lm::tch::{Kind, Tensor};
use spice_lm::TokenLogprobs;

/// What the loss needs besides the log-probs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LossSettings {
    /// Clip range ε of the ratio.
    pub epsilon: f64,
    /// KL coefficient β (0: no reference term).
    pub beta: f64,
    /// L · N, the constant every token sum is divided by.
    pub normaliser: f64,
}

/// The loss of one micro-batch and the sums its metrics are made of.
pub struct LossParts {
    /// Scalar to minimise (differentiable through the current log-probs).
    pub loss: Tensor,
    /// Σ pg_t over completion tokens.
    pub pg_sum: f64,
    /// Σ kl_t over completion tokens (0 without a reference).
    pub kl_sum: f64,
    /// Completion tokens whose clipped term was the smaller one (their gradient is zero).
    pub clipped: f64,
    /// Completion tokens.
    pub tokens: f64,
}

/// The objective of one micro-batch.
///
/// `lp`: current log-probs and mask [b, C]; `old`: πθ_old log-probs [b, C] (0 on padding);
/// `advantages`: [b, 1]; `reference`: π_ref log-probs [b, C], needed when β > 0.
pub fn dr_grpo_loss(
    lp: &TokenLogprobs,
    old: &Tensor,
    advantages: &Tensor,
    reference: Option<&Tensor>,
    s: &LossSettings,
) -> LossParts {
    let mask = &lp.mask; // [b, C]
    let ratio = (&lp.logprobs - old).exp(); // [b, C]; 1 on padding (both sides are 0)
    let unclipped = &ratio * advantages;
    let clipped = ratio.clamp(1.0 - s.epsilon, 1.0 + s.epsilon) * advantages;
    let pg = -unclipped.minimum(&clipped); // [b, C]
    let pg_sum = (pg * mask).sum(Kind::Float);
    // Tokens where the clipped branch wins: ratio below 1−ε with Â < 0, or above 1+ε with Â > 0.
    let low = ratio.lt(1.0 - s.epsilon).logical_and(&advantages.lt(0.0));
    let high = ratio.gt(1.0 + s.epsilon).logical_and(&advantages.gt(0.0));
    let clipped_tokens = (low.logical_or(&high).to_kind(Kind::Float) * mask).sum(Kind::Float);

    let (total, kl_sum) = match reference {
        Some(r) if s.beta > 0.0 => {
            let d = r - &lp.logprobs; // [b, C]: log π_ref − log πθ
            let k3 = d.exp() - &d - 1.0;
            let kl_sum = (k3 * mask).sum(Kind::Float);
            let kl_value = kl_sum.double_value(&[]);
            (&pg_sum + kl_sum * s.beta, kl_value)
        }
        _ => (pg_sum.shallow_clone(), 0.0),
    };
    LossParts {
        loss: total / s.normaliser,
        pg_sum: pg_sum.double_value(&[]),
        kl_sum,
        clipped: clipped_tokens.double_value(&[]),
        tokens: mask.sum(Kind::Float).double_value(&[]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t2(v: &[f32], b: i64) -> Tensor {
        Tensor::from_slice(v).view([b, -1])
    }

    fn settings(beta: f64, normaliser: f64) -> LossSettings {
        LossSettings { epsilon: 0.2, beta, normaliser }
    }

    #[test]
    fn ratio_one_gives_minus_advantage_times_tokens_over_the_constant() {
        // Two rows: 3 tokens with Â = 0.5, 1 token (then padding) with Â = −2.
        let cur = t2(&[-1.0, -2.0, -0.5, -3.0, 0.0, 0.0], 2);
        let mask = t2(&[1.0, 1.0, 1.0, 1.0, 0.0, 0.0], 2);
        let lp = TokenLogprobs { logprobs: cur.shallow_clone(), mask };
        let adv = t2(&[0.5, -2.0], 2);
        let parts = dr_grpo_loss(&lp, &cur, &adv, None, &settings(0.0, 8.0));
        let want = -(0.5 * 3.0 + -2.0 * 1.0) / 8.0;
        assert!((parts.loss.double_value(&[]) - want).abs() < 1e-7);
        assert_eq!((parts.tokens, parts.clipped, parts.kl_sum), (4.0, 0.0, 0.0));
    }

    #[test]
    fn clipping_applies_on_the_side_the_advantage_points_to_and_stops_the_gradient() {
        // Ratios e^0.5 ≈ 1.65 and e^−0.5 ≈ 0.61, each with a positive and a negative advantage.
        let old = t2(&[0.0, 0.0, 0.0, 0.0], 4);
        let cur = t2(&[0.5, 0.5, -0.5, -0.5], 4).set_requires_grad(true);
        let mask = t2(&[1.0, 1.0, 1.0, 1.0], 4);
        let lp = TokenLogprobs { logprobs: &cur * 1.0, mask };
        let adv = t2(&[1.0, -1.0, 1.0, -1.0], 4);
        let parts = dr_grpo_loss(&lp, &old, &adv, None, &settings(0.0, 1.0));
        // Clipped: high ratio with Â > 0 (row 0) and low ratio with Â < 0 (row 3).
        assert_eq!(parts.clipped, 2.0);
        let (r_hi, r_lo) = (0.5f64.exp(), (-0.5f64).exp());
        let want = -(1.2) + r_hi + -r_lo + 0.8; // −min(ρÂ, clip(ρ)Â) per row
        assert!((parts.pg_sum - want).abs() < 1e-5, "{} vs {want}", parts.pg_sum);
        parts.loss.backward();
        let g: Vec<f32> = Vec::try_from(cur.grad().flatten(0, -1)).unwrap();
        assert_eq!(g[0], 0.0);
        assert_eq!(g[3], 0.0);
        // Unclipped rows: d(−ρÂ)/dlogπ = −ρÂ.
        assert!((g[1] as f64 - r_hi).abs() < 1e-5);
        assert!((g[2] as f64 + r_lo).abs() < 1e-5);
    }

    #[test]
    fn k3_is_zero_at_the_reference_and_positive_elsewhere() {
        let cur = t2(&[-1.0, -2.0, -0.3], 1);
        let mask = t2(&[1.0, 1.0, 1.0], 1);
        let lp = TokenLogprobs { logprobs: cur.shallow_clone(), mask };
        let adv = t2(&[0.0], 1);
        let at_ref = dr_grpo_loss(&lp, &cur, &adv, Some(&cur), &settings(0.1, 3.0));
        assert_eq!(at_ref.kl_sum, 0.0);
        let reference = t2(&[-1.5, -1.0, -0.3], 1);
        let parts = dr_grpo_loss(&lp, &cur, &adv, Some(&reference), &settings(0.1, 3.0));
        let k3 = |d: f64| d.exp() - d - 1.0;
        let want = k3(-0.5) + k3(1.0) + k3(0.0);
        assert!((parts.kl_sum - want).abs() < 1e-5);
        // Â = 0: the loss is the KL term alone, β·Σk3 / (L·N).
        assert!((parts.loss.double_value(&[]) - 0.1 * want / 3.0).abs() < 1e-6);
        // β = 0 ignores a reference even when given.
        let off = dr_grpo_loss(&lp, &cur, &adv, Some(&reference), &settings(0.0, 3.0));
        assert_eq!((off.kl_sum, off.loss.double_value(&[])), (0.0, 0.0));
    }

    #[test]
    fn padding_contributes_nothing() {
        // The same row alone, and with padding holding arbitrary values.
        let mask = t2(&[1.0, 1.0, 0.0, 0.0], 1);
        let cur = t2(&[-1.0, -2.0, 0.0, 0.0], 1);
        let old = t2(&[-1.1, -1.9, 5.0, -5.0], 1);
        let adv = t2(&[0.7], 1);
        let padded = dr_grpo_loss(
            &TokenLogprobs { logprobs: cur.shallow_clone(), mask },
            &old,
            &adv,
            None,
            &settings(0.0, 1.0),
        );
        let cur2 = t2(&[-1.0, -2.0], 1);
        let old2 = t2(&[-1.1, -1.9], 1);
        let plain = dr_grpo_loss(
            &TokenLogprobs { logprobs: cur2, mask: t2(&[1.0, 1.0], 1) },
            &old2,
            &adv,
            None,
            &settings(0.0, 1.0),
        );
        assert!((padded.pg_sum - plain.pg_sum).abs() < 1e-6);
        assert_eq!(padded.tokens, 2.0);
    }
}
