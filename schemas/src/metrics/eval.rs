use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::GenerationMetrics;

/// `eval/` and `eval-checkpoint/`: one policy's answers to the benchmarks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EvalMetrics {
    pub policy_id: String,
    pub answers: u64,
    /// Samples per question.
    pub samples: u64,
    pub length_finish_rate: f64,
    #[serde(flatten)]
    pub generation: GenerationMetrics,
    /// `<benchmark>/questions`, `<benchmark>/accuracy`, `<benchmark>/pass_at_k` and (greedy
    /// runs) `<benchmark>/pass_at_1`, over all subjects of the benchmark (`None` for a NaN).
    #[serde(flatten)]
    pub benchmarks: BTreeMap<String, Option<serde_json::Number>>,
}

impl EvalMetrics {
    /// Accuracy per benchmark.
    pub fn accuracies(&self) -> BTreeMap<String, f64> {
        self.benchmarks
            .iter()
            .filter_map(|(k, v)| {
                Some((k.strip_suffix("/accuracy")?.to_string(), v.as_ref()?.as_f64()?))
            })
            .collect()
    }
}

impl crate::metrics::StageMetrics for EvalMetrics {}
