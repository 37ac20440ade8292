//! Manifest metrics that may have nothing to average: JSON `null` rather than NaN.

use serde_json::{json, Value};

/// `a / b` as a JSON number, or `null` when there is nothing to divide by.
pub fn ratio(a: usize, b: usize) -> Value {
    if b == 0 {
        Value::Null
    } else {
        json!(a as f64 / b as f64)
    }
}

/// The mean of `xs` as a JSON number, or `null` when empty.
pub fn mean(xs: &[f64]) -> Value {
    if xs.is_empty() {
        Value::Null
    } else {
        json!(xs.iter().sum::<f64>() / xs.len() as f64)
    }
}
