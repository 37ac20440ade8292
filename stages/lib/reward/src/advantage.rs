//! Group-relative advantages, per role and per group (METHOD.md step 8).
//!
//! Â = r − mean(r over the group). Dr. GRPO does not divide by the group's standard deviation
//! (`scale_rewards = "none"`): dividing would blow up near-unanimous groups and bias the update
//! towards easy or impossible tasks. `Group` scaling is kept for comparison with GRPO.

pub use spice_vocab::ScaleRewards;

/// Advantages of one group's rewards, in the same order.
pub fn group_advantages(rewards: &[f64], scale: ScaleRewards) -> Vec<f64> {
    if rewards.is_empty() {
        return Vec::new();
    }
    let n = rewards.len() as f64;
    let mean = rewards.iter().sum::<f64>() / n;
    let centred: Vec<f64> = rewards.iter().map(|r| r - mean).collect();
    match scale {
        ScaleRewards::None => centred,
        ScaleRewards::Group => {
            let std = (centred.iter().map(|a| a * a).sum::<f64>() / n).sqrt();
            if std > 1e-12 {
                centred.iter().map(|a| a / std).collect()
            } else {
                centred
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasoner_advantages_are_centred_not_scaled() {
        // 3 of 8 correct: p̂ = 0.375.
        let r: Vec<f64> = (0..8).map(|i| if i < 3 { 1.0 } else { 0.0 }).collect();
        let a = group_advantages(&r, ScaleRewards::None);
        assert!((a[0] - 0.625).abs() < 1e-12 && (a[7] + 0.375).abs() < 1e-12);
        assert!(a.iter().sum::<f64>().abs() < 1e-12);
        // GRPO scaling would divide by sqrt(p̂(1−p̂)).
        let g = group_advantages(&r, ScaleRewards::Group);
        assert!((g[0] - 0.625 / (0.375f64 * 0.625).sqrt()).abs() < 1e-12);
    }

    #[test]
    fn unanimous_groups_carry_no_signal() {
        assert_eq!(group_advantages(&[1.0; 8], ScaleRewards::None), vec![0.0; 8]);
        assert_eq!(group_advantages(&[0.0; 8], ScaleRewards::Group), vec![0.0; 8]);
        assert!(group_advantages(&[], ScaleRewards::None).is_empty());
    }

    #[test]
    fn challenger_group_mixes_valid_and_invalid() {
        // Two invalid attempts (−0.1) and two valid ones (0.988 and 1.0).
        let r = [-0.1, 0.988, -0.1, 1.0];
        let a = group_advantages(&r, ScaleRewards::None);
        let mean = (0.988 + 1.0 - 0.2) / 4.0;
        for (ai, ri) in a.iter().zip(r) {
            assert!((ai - (ri - mean)).abs() < 1e-12);
        }
        assert!(a[0] < 0.0 && a[1] > 0.0);
    }
}
