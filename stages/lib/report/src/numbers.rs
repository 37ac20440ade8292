//! The numbers of one iteration, as they go to `report.json` (field names are the JSON keys;
//! README.md defines each one). `None` (JSON `null`, an empty cell) where the folder a number
//! comes from is not complete yet, or holds no row the number is defined over.

use std::collections::BTreeMap;

use serde::Serialize;

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct IterationReport {
    pub iteration: u32,
    // challenger/
    pub documents: Option<u64>,
    pub attempts: Option<u64>,
    pub challenger_completion_tokens: Option<f64>,
    // tasks/
    pub valid_tasks: Option<u64>,
    pub valid_task_rate: Option<f64>,
    /// 95% Wilson interval of `valid_task_rate` (valid rows of `tasks/` out of all).
    pub valid_task_rate_lo: Option<f64>,
    pub valid_task_rate_hi: Option<f64>,
    /// Invalid attempts per reason (every reason; the table shows the most frequent).
    pub invalid_reasons: BTreeMap<String, u64>,
    pub mcq_attempts: Option<u64>,
    pub mcq_valid: Option<u64>,
    pub free_form_attempts: Option<u64>,
    pub free_form_valid: Option<u64>,
    pub distinct_questions: Option<u64>,
    pub question_overlap: Option<f64>,
    // rollouts/
    pub reasoner_completion_tokens: Option<f64>,
    // scored/
    pub answered_tasks: Option<u64>,
    pub reasoner_answers: Option<u64>,
    pub mean_pass_rate: Option<f64>,
    pub pass_rate_zero_share: Option<f64>,
    pub pass_rate_mid_share: Option<f64>,
    pub pass_rate_one_share: Option<f64>,
    pub mean_challenger_reward: Option<f64>,
    pub reasoner_accuracy: Option<f64>,
    /// 95% Wilson interval of `reasoner_accuracy` (correct answers out of all).
    pub reasoner_accuracy_lo: Option<f64>,
    pub reasoner_accuracy_hi: Option<f64>,
    /// Advantage groups of each role in the training batch (`in_batch` rows by `group_id`:
    /// documents for the Challenger, tasks for the Reasoner), and the share of them whose
    /// advantages are all exactly 0 (no learning signal).
    pub challenger_groups: Option<u64>,
    pub challenger_zero_advantage_share: Option<f64>,
    pub reasoner_groups: Option<u64>,
    pub reasoner_zero_advantage_share: Option<f64>,
    // update/
    pub update_steps: Option<u64>,
    pub loss: Option<f64>,
    pub grad_norm: Option<f64>,
    pub update_peak_rss_mib: Option<f64>,
    /// The update's model FLOP/s over the GEMM peak it measured (its manifest).
    pub update_peak_fraction: Option<f64>,
    // manifests
    pub tokens_per_second: PerStage,
    /// Peak resident memory of the generation stages (challenge, rollout, eval), the largest
    /// over their parts; `None` for manifests written before it was recorded.
    pub peak_rss_mib: PerStage,
    pub minutes: PerStage,
    pub minutes_total: Option<f64>,
    // eval/ and eval-checkpoint/: accuracy per benchmark, the answers it is over, and its
    // 95% Wilson interval
    pub eval_before: BTreeMap<String, f64>,
    pub eval_before_answers: BTreeMap<String, u64>,
    pub eval_before_lo: BTreeMap<String, f64>,
    pub eval_before_hi: BTreeMap<String, f64>,
    pub eval_after: BTreeMap<String, f64>,
    pub eval_after_answers: BTreeMap<String, u64>,
    pub eval_after_lo: BTreeMap<String, f64>,
    pub eval_after_hi: BTreeMap<String, f64>,
    /// p̂ of each answered task, for the difficulty histogram (not in the table).
    #[serde(skip)]
    pub pass_rates: Vec<f64>,
    /// Most Reasoner answers any task of the iteration got (K), for the histogram's bins.
    #[serde(skip)]
    pub answers_per_task: Option<u64>,
}

/// One number per stage of an iteration (`None` for a stage that has not committed, or that
/// the number does not apply to).
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct PerStage {
    pub challenge: Option<f64>,
    pub filter: Option<f64>,
    pub rollout: Option<f64>,
    pub score: Option<f64>,
    pub update: Option<f64>,
    pub eval: Option<f64>,
}

impl PerStage {
    /// Stage names in pipeline order with their folders: the report's fixed stage list.
    pub const STAGES: [&'static str; 6] =
        ["challenge", "filter", "rollout", "score", "update", "eval"];

    pub fn get(&self, stage: &str) -> Option<f64> {
        match stage {
            "challenge" => self.challenge,
            "filter" => self.filter,
            "rollout" => self.rollout,
            "score" => self.score,
            "update" => self.update,
            "eval" => self.eval,
            _ => None,
        }
    }

    pub fn set(&mut self, stage: &str, v: Option<f64>) {
        let slot = match stage {
            "challenge" => &mut self.challenge,
            "filter" => &mut self.filter,
            "rollout" => &mut self.rollout,
            "score" => &mut self.score,
            "update" => &mut self.update,
            "eval" => &mut self.eval,
            _ => return,
        };
        *slot = v;
    }
}
