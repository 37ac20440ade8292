//! The method's arithmetic (METHOD.md, steps 5–8): rewards of both roles and their
//! group-relative advantages, without std normalisation (Dr. GRPO).

mod advantage;
mod challenger;

pub use advantage::{group_advantages, ScaleRewards};
pub use challenger::{challenger_reward, pass_rate, ChallengerReward, RewardParams};

/// Reasoner reward r_R: 1 for an answer equivalent to the gold answer, else 0.
pub fn reasoner_reward(correct: bool) -> f64 {
    if correct {
        1.0
    } else {
        0.0
    }
}
