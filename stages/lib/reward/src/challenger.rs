//! Challenger reward r_C from the Reasoner's pass rate p̂ over its K answers.

pub use spice_vocab::ChallengerReward;

/// Parameters of the Challenger reward, as in `[reward]` of run.toml.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RewardParams {
    pub kind: ChallengerReward,
    /// r_C of an invalid task (paper: −0.1).
    pub invalid_penalty: f64,
    /// The variance the Gaussian peaks at (0.25, the largest a Bernoulli can have).
    pub variance_target: f64,
    /// σ² of the Gaussian: r = exp(−(v − target)² / (2·width)) (paper: 0.01).
    pub variance_width: f64,
}

impl Default for RewardParams {
    fn default() -> Self {
        Self {
            kind: ChallengerReward::Variance,
            invalid_penalty: -0.1,
            variance_target: 0.25,
            variance_width: 0.01,
        }
    }
}

/// p̂: the share of correct answers. `None` for an empty group.
pub fn pass_rate(correct: &[bool]) -> Option<f64> {
    if correct.is_empty() {
        return None;
    }
    Some(correct.iter().filter(|c| **c).count() as f64 / correct.len() as f64)
}

/// r_C of one task: `None` pass rate means the task was invalid (no Reasoner answers).
pub fn challenger_reward(pass_rate: Option<f64>, p: &RewardParams) -> f64 {
    let Some(p_hat) = pass_rate else {
        return p.invalid_penalty;
    };
    let solved_by_none_or_all = p_hat <= 0.0 || p_hat >= 1.0;
    match p.kind {
        ChallengerReward::Variance => {
            // Population variance of K Bernoulli outcomes.
            let variance = p_hat * (1.0 - p_hat);
            (-(variance - p.variance_target).powi(2) / (2.0 * p.variance_width)).exp()
        }
        ChallengerReward::AbsoluteZero => {
            if solved_by_none_or_all {
                0.0
            } else {
                1.0 - p_hat
            }
        }
        ChallengerReward::Threshold => {
            if solved_by_none_or_all {
                0.0
            } else {
                1.0
            }
        }
        ChallengerReward::RZero => 1.0 - 2.0 * (p_hat - 0.5).abs(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(kind: ChallengerReward) -> RewardParams {
        RewardParams { kind, ..Default::default() }
    }

    /// METHOD.md's K = 8 table: p̂ = 0 or 1 → 0.044, 1/8 → 0.372, 2/8 → 0.823, 3/8 → 0.988,
    /// 4/8 → 1.0; symmetric around 1/2.
    #[test]
    fn variance_reward_matches_the_k8_table() {
        let table = [(0, 0.044), (1, 0.372), (2, 0.823), (3, 0.988), (4, 1.0)];
        for (k, want) in table {
            for correct in [k, 8 - k] {
                let answers: Vec<bool> = (0..8).map(|i| i < correct).collect();
                let r = challenger_reward(pass_rate(&answers), &with(ChallengerReward::Variance));
                assert!(
                    (r - want).abs() < 5e-4,
                    "p̂ = {correct}/8: r_C = {r:.4}, table says {want}"
                );
            }
        }
    }

    #[test]
    fn invalid_task_gets_the_penalty_whatever_the_variant() {
        for kind in [
            ChallengerReward::Variance,
            ChallengerReward::AbsoluteZero,
            ChallengerReward::Threshold,
            ChallengerReward::RZero,
        ] {
            assert_eq!(challenger_reward(None, &with(kind)), -0.1);
        }
        let p = RewardParams { invalid_penalty: -0.5, ..Default::default() };
        assert_eq!(challenger_reward(None, &p), -0.5);
    }

    #[test]
    fn ablation_variants() {
        let az = with(ChallengerReward::AbsoluteZero);
        let th = with(ChallengerReward::Threshold);
        let rz = with(ChallengerReward::RZero);
        for p_hat in [0.0, 1.0] {
            assert_eq!(challenger_reward(Some(p_hat), &az), 0.0);
            assert_eq!(challenger_reward(Some(p_hat), &th), 0.0);
        }
        assert_eq!(challenger_reward(Some(0.0), &rz), 0.0);
        assert_eq!(challenger_reward(Some(1.0), &rz), 0.0);
        assert!((challenger_reward(Some(0.25), &az) - 0.75).abs() < 1e-12);
        assert!((challenger_reward(Some(0.875), &az) - 0.125).abs() < 1e-12);
        assert_eq!(challenger_reward(Some(0.125), &th), 1.0);
        assert_eq!(challenger_reward(Some(0.5), &rz), 1.0);
        assert!((challenger_reward(Some(0.25), &rz) - 0.5).abs() < 1e-12);
        assert!((challenger_reward(Some(0.75), &rz) - 0.5).abs() < 1e-12);
    }

    #[test]
    fn names_parse() {
        assert_eq!("r_zero".parse::<ChallengerReward>().unwrap(), ChallengerReward::RZero);
        assert!("varience"
            .parse::<ChallengerReward>()
            .unwrap_err()
            .to_string()
            .contains("varience"));
        assert_eq!(pass_rate(&[]), None);
        assert_eq!(pass_rate(&[true, false, false, true]), Some(0.5));
    }
}
