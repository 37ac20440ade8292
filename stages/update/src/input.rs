//! Reading `scored/`: only a folder whose every part has committed, only the files its
//! manifests list, and every row checked before any training starts.

use std::path::Path;

use anyhow::{bail, Context, Result};
use spice_lm::ScoreRow;
use spice_schemas::{committed_files, rows::ScoredRow, vocab::Role};

/// One trajectory of the training batch, with the log-probs the loss compares against.
#[derive(Debug, Clone)]
pub struct TrainRow {
    pub role: Role,
    pub reward: f32,
    pub advantage: f32,
    pub tokens: ScoreRow,
    /// Log-probs recorded at sampling time (the `logprobs` column).
    pub sampling_logprobs: Vec<f32>,
    /// πθ_old: recomputed by the update with the iteration's policy before any step.
    pub old_logprobs: Vec<f32>,
    /// π_ref (the run's initial model), when β > 0.
    pub ref_logprobs: Option<Vec<f32>>,
    /// `<file> row <n>`, for errors about this row.
    pub origin: String,
}

impl TrainRow {
    pub fn new(
        role: Role,
        reward: f32,
        advantage: f32,
        tokens: ScoreRow,
        sampling_logprobs: Vec<f32>,
    ) -> TrainRow {
        TrainRow {
            role,
            reward,
            advantage,
            tokens,
            sampling_logprobs,
            old_logprobs: Vec::new(),
            ref_logprobs: None,
            origin: String::new(),
        }
    }

    pub fn completion_len(&self) -> usize {
        self.tokens.completion_ids.len()
    }

    pub fn total_len(&self) -> usize {
        self.tokens.prompt_ids.len() + self.tokens.completion_ids.len()
    }
}

/// What the update trains on, and what it left out.
#[derive(Debug, Default)]
pub struct Selection {
    pub rows: Vec<TrainRow>,
    /// Rows of the folder.
    pub read: usize,
    /// In the training batch but not trained (Challenger rows with a frozen Challenger).
    pub frozen_skipped: usize,
}

/// Read `scored/` of `iteration` and keep the rows to train on: `in_batch`, and of the
/// Challenger only when it trains (`train_challenger`).
pub fn read_scored(dir: &Path, iteration: u32, train_challenger: bool) -> Result<Selection> {
    let mut sel = Selection::default();
    for file in committed_files(dir, "spice-score")? {
        let rows: Vec<ScoredRow> = file.read_rows()?;
        for (i, row) in rows.into_iter().enumerate() {
            sel.read += 1;
            let origin = format!("{} row {i}", file.path.display());
            let role = check_row(&row, iteration).with_context(|| origin.clone())?;
            if !row.in_batch {
                continue;
            }
            if role == Role::Challenger && !train_challenger {
                sel.frozen_skipped += 1;
                continue;
            }
            let mut t = TrainRow::new(
                role,
                row.reward,
                row.advantage,
                ScoreRow { prompt_ids: row.prompt_ids, completion_ids: row.completion_ids },
                row.logprobs,
            );
            t.origin = origin;
            sel.rows.push(t);
        }
    }
    Ok(sel)
}

/// The checks a row must pass before it can be trained on; errors name the field.
fn check_row(row: &ScoredRow, iteration: u32) -> Result<Role> {
    let Ok(role) = row.role.parse::<Role>() else {
        bail!("field `role` is {:?}, expected \"challenger\" or \"reasoner\"", row.role);
    };
    if row.iteration != iteration {
        bail!("field `iteration` is {}, but this is iteration {iteration}'s folder", row.iteration);
    }
    if !row.in_batch {
        return Ok(role);
    }
    if row.prompt_ids.is_empty() {
        bail!("field `prompt_ids` is empty");
    }
    if row.logprobs.len() != row.completion_ids.len() {
        bail!(
            "field `logprobs` has {} values for {} tokens in `completion_ids`",
            row.logprobs.len(),
            row.completion_ids.len()
        );
    }
    if !row.advantage.is_finite() {
        bail!("field `advantage` is {}", row.advantage);
    }
    if !row.reward.is_finite() {
        bail!("field `reward` is {}", row.reward);
    }
    Ok(role)
}

/// Check every token id against the model's vocabulary (before anything runs, so the error
/// names the row rather than a batch deep inside the model).
pub fn check_vocab(rows: &[TrainRow], vocab: usize) -> Result<()> {
    for r in rows {
        for (field, ids) in
            [("prompt_ids", &r.tokens.prompt_ids), ("completion_ids", &r.tokens.completion_ids)]
        {
            if let Some(&t) = ids.iter().find(|&&t| t as usize >= vocab) {
                bail!(
                    "{}: field `{field}` holds token id {t}, outside the policy's vocabulary of \
                     {vocab} (rows of another model?)",
                    r.origin
                );
            }
        }
    }
    Ok(())
}
