use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `tasks/`: the verifier's verdict on each attempt.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FilterMetrics {
    pub attempts: u64,
    pub valid: u64,
    pub invalid: u64,
    pub valid_rate: Option<f64>,
    /// Invalid attempts per reason.
    pub invalid_reasons: BTreeMap<String, u64>,
    pub mcq: u64,
    pub mcq_valid: u64,
    pub free_form: u64,
    pub free_form_valid: u64,
    /// Among the G attempts per document that were selected for training.
    pub selected: u64,
    pub selected_valid: u64,
    pub selected_invalid: u64,
    pub documents: u64,
    pub documents_with_valid_task: u64,
    pub seconds: f64,
}

impl crate::metrics::StageMetrics for FilterMetrics {}
