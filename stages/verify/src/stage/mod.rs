//! The pipeline stages of record for validity and rewards, over the shards of one iteration:
//!
//! - `filter`: `challenger/` → `tasks/` (every attempt parsed, valid or not, with its reason);
//! - `score`: `tasks/` + `rollouts/` + `challenger/` → `scored/` (verdicts, rewards of both
//!   roles, group advantages and the training batch).
//!
//! They live in the binary, not the library, so `parse_task` and `check` stay free of file
//! formats.

pub mod filter;
mod inputs;
pub mod score;

use anyhow::Result;
use serde_json::{json, Value};
use spice_schemas::{StageOutput, Status};
use tracing::info;

/// Whether this part is already committed for the same inputs and configuration. A stale or
/// missing part is left untouched here: the stage clears it only once its new output is
/// computed, so bad input never costs a finished output.
fn skip_if_done(out: &StageOutput, force: bool) -> Result<bool> {
    if force {
        return Ok(false);
    }
    match out.status()? {
        Status::Done(_) => {
            info!(
                "{} is done for these inputs and configuration (--force redoes it)",
                out.dir().display()
            );
            Ok(true)
        }
        Status::Stale(why) => {
            info!("redoing {}: {why}", out.dir().display());
            Ok(false)
        }
        Status::Missing => Ok(false),
    }
}

/// `a / b` as a JSON number, or `null` when there is nothing to divide by.
fn ratio(a: usize, b: usize) -> Value {
    if b == 0 {
        Value::Null
    } else {
        json!(a as f64 / b as f64)
    }
}

/// The mean of `xs` as a JSON number, or `null` when empty.
fn mean(xs: &[f64]) -> Value {
    if xs.is_empty() {
        Value::Null
    } else {
        json!(xs.iter().sum::<f64>() / xs.len() as f64)
    }
}
