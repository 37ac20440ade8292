//! `spice-filter`: `challenger/` → `tasks/`. Every Challenger attempt becomes one task
//! row, valid or not, with a machine-readable reason when not (METHOD.md step 3).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use anyhow::{anyhow, bail, Result};
use rayon::prelude::*;
use spice_schemas::metrics::{ratio, FilterMetrics};
use spice_schemas::rows::{ChallengerRow, TaskRow};
use spice_schemas::{
    committed_files, read_committed, run_stage, Located, ShardRow, ShardSpec, StageOutput,
};
use spice_stage::StageCtx;
use spice_verify::{parse_task_for_prompt, AnswerType, Invalid, InvalidReason, TaskKind};
use tracing::info;

/// Stage name recorded in the manifest.
pub const STAGE: &str = "verify-filter";
const PRODUCER: &str = "spice-challenge";

/// `i0003-d012-a0005`: iteration, document slot, attempt.
pub fn task_id(iteration: u32, doc_slot: u32, attempt: u32) -> String {
    format!("i{iteration:04}-d{doc_slot:03}-a{attempt:04}")
}

pub fn run(ctx: &StageCtx) -> Result<()> {
    let input = ctx.folder(ChallengerRow::FOLDER);
    committed_files(&input, PRODUCER)?;
    let out = StageOutput::new(&ctx.folder(TaskRow::FOLDER), STAGE, ctx.shard)
        .input("challenger", &input)?
        .config(&ctx.cfg.challenger)
        .seed(ctx.seed)
        .iteration(ctx.iter)
        .schema(TaskRow::schema_id());
    let done = run_stage(out, ctx.force, |part| {
        let started = Instant::now();
        let rows = read_committed::<ChallengerRow>(&input, PRODUCER)?;
        let mine = owned_in_order(rows, ctx.iter, ctx.shard)?;
        let tasks = judge(&mine)?;
        let metrics =
            FilterMetrics { seconds: started.elapsed().as_secs_f64(), ..filter_metrics(&tasks) };
        part.begin()?.write_all(tasks)?;
        Ok(metrics)
    })?;
    if let Some((_, m)) = done {
        info!(
            attempts = m.attempts,
            valid = m.valid,
            "wrote {}",
            ctx.folder(TaskRow::FOLDER).display()
        );
    }
    Ok(())
}

/// The verifier's verdict on every attempt, in parallel.
fn judge(attempts: &[Located<ChallengerRow>]) -> Result<Vec<TaskRow>> {
    let pb = spice_stage::progress(attempts.len() as u64, "filter", "tasks");
    let tasks = attempts
        .par_iter()
        .map(|r| {
            let t = to_task(r);
            pb.inc(1);
            t
        })
        .collect::<Result<_>>();
    pb.finish();
    tasks
}

/// This part's rows (documents `doc_slot % N == I`), ordered by (document, attempt), after
/// checking that they belong to this iteration and that no attempt appears twice.
fn owned_in_order(
    rows: Vec<Located<ChallengerRow>>,
    iteration: u32,
    shard: ShardSpec,
) -> Result<Vec<Located<ChallengerRow>>> {
    let mut mine = Vec::with_capacity(rows.len());
    for r in rows {
        if r.value.iteration != iteration {
            bail!(
                "{}: field `iteration` is {}, but this is iteration {iteration} (a shard of \
                 another iteration in this folder?)",
                r.at,
                r.value.iteration
            );
        }
        if shard.owns(r.value.doc_slot as usize) {
            mine.push(r);
        }
    }
    mine.sort_by_key(|r| (r.value.doc_slot, r.value.attempt));
    for pair in mine.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        if (a.value.doc_slot, a.value.attempt) == (b.value.doc_slot, b.value.attempt) {
            bail!(
                "{} and {}: document slot {} attempt {} appears twice (fields `doc_slot`, \
                 `attempt`); rerun spice-challenge for this iteration with --force",
                a.at,
                b.at,
                a.value.doc_slot,
                a.value.attempt
            );
        }
    }
    Ok(mine)
}

/// One task row from one Challenger attempt. Only a malformed row is an error; a malformed
/// task is an invalid task.
fn to_task(r: &Located<ChallengerRow>) -> Result<TaskRow> {
    let c = &r.value;
    let kind: TaskKind = c.task_kind.parse().map_err(|_| {
        anyhow!("{}: field `task_kind` is {:?}, expected mcq or free_form", r.at, c.task_kind)
    })?;
    // The answer type may come from the model's own format choice, so an unknown one makes
    // the task invalid rather than the stage fail. MCQ has no answer type.
    let forced = match (&c.answer_type, kind) {
        (Some(t), TaskKind::FreeForm | TaskKind::Any) => match t.parse::<AnswerType>() {
            Ok(t) => Ok(Some(t)),
            Err(_) => Err(Invalid {
                reason: InvalidReason::UnknownAnswerType,
                detail: format!("the attempt asked for answer type {t:?}"),
            }),
        },
        _ => Ok(None),
    };
    let (task, json) = match forced {
        Ok(forced) => {
            // The prompt may have started the answer (`response_prefix`): the task is both.
            let written = format!("{}{}", c.response_prefix, c.completion);
            let parsed = parse_task_for_prompt(&written, &c.prompt, kind, forced);
            (parsed.task, parsed.json)
        }
        Err(invalid) => (Err(invalid), None),
    };
    let mut row = TaskRow {
        task_id: task_id(c.iteration, c.doc_slot, c.attempt),
        iteration: c.iteration,
        doc_slot: c.doc_slot,
        chunk_id: c.chunk_id.clone(),
        attempt: c.attempt,
        selected: c.selected,
        valid: false,
        invalid_reason: None,
        invalid_detail: None,
        task_kind: kind.as_str().to_string(),
        question: None,
        options: Vec::new(),
        answer: None,
        answer_type: c.answer_type.clone(),
        raw_json: json.map(|j| j.to_string()),
        policy_id: c.policy_id.clone(),
    };
    match task {
        Ok(t) => {
            row.valid = true;
            row.task_kind = t.kind.as_str().to_string();
            row.question = Some(t.question);
            row.options = t.options;
            row.answer = Some(t.answer);
            row.answer_type = t.answer_type.map(|a| a.as_str().to_string());
        }
        Err(e) => {
            row.invalid_reason = Some(e.reason.as_str().to_string());
            row.invalid_detail = Some(e.detail);
        }
    }
    Ok(row)
}

/// The manifest's numbers: attempts, validity (overall, by reason, by format, among the
/// selected G), and documents that got at least one valid task.
fn filter_metrics(tasks: &[TaskRow]) -> FilterMetrics {
    let count = |f: &dyn Fn(&TaskRow) -> bool| tasks.iter().filter(|t| f(t)).count() as u64;
    let attempts = tasks.len();
    let valid = count(&|t| t.valid);
    let mut reasons: BTreeMap<String, u64> = BTreeMap::new();
    for t in tasks.iter().filter(|t| !t.valid) {
        let reason = t.invalid_reason.clone().unwrap_or_default();
        *reasons.entry(reason).or_default() += 1;
    }
    let documents: BTreeSet<u32> = tasks.iter().map(|t| t.doc_slot).collect();
    let with_valid: BTreeSet<u32> = tasks.iter().filter(|t| t.valid).map(|t| t.doc_slot).collect();
    let (mcq, free) = (TaskKind::Mcq.as_str(), TaskKind::FreeForm.as_str());
    FilterMetrics {
        attempts: attempts as u64,
        valid,
        invalid: attempts as u64 - valid,
        valid_rate: ratio(valid as usize, attempts),
        invalid_reasons: reasons,
        mcq: count(&|t| t.task_kind == mcq),
        mcq_valid: count(&|t| t.valid && t.task_kind == mcq),
        free_form: count(&|t| t.task_kind == free),
        free_form_valid: count(&|t| t.valid && t.task_kind == free),
        selected: count(&|t| t.selected),
        selected_valid: count(&|t| t.selected && t.valid),
        selected_invalid: count(&|t| t.selected && !t.valid),
        documents: documents.len() as u64,
        documents_with_valid_task: with_valid.len() as u64,
        seconds: 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn attempt(kind: &str, answer_type: Option<&str>, completion: &str) -> Located<ChallengerRow> {
        Located {
            at: spice_schemas::RowAt {
                file: PathBuf::from("challenger/part-00000.parquet"),
                row: 7,
            },
            value: ChallengerRow {
                iteration: 3,
                doc_slot: 12,
                chunk_id: "c1".into(),
                attempt: 5,
                task_kind: kind.into(),
                answer_type: answer_type.map(String::from),
                format_completion: None,
                prompt_set: "paper".into(),
                prompt: String::new(),
                prompt_ids: vec![],
                response_prefix: String::new(),
                completion: completion.into(),
                completion_ids: vec![],
                logprobs: vec![],
                finish_reason: "stop".into(),
                seed: 0,
                policy_id: "p@0".into(),
                parsed_valid: false,
                selected: true,
            },
        }
    }

    #[test]
    fn task_ids_sort_like_their_parts() {
        assert_eq!(task_id(3, 12, 5), "i0003-d012-a0005");
        assert!(task_id(0, 2, 9) < task_id(0, 2, 10));
    }

    #[test]
    fn free_form_keeps_the_declared_type_and_gold() {
        let t = to_task(&attempt(
            "free_form",
            Some("integer"),
            r#"{"question": "How many sides does a hexagon have?", "answer": 6, "answer_type": "integer"}"#,
        ))
        .unwrap();
        assert!(t.valid);
        assert_eq!((t.answer.as_deref(), t.answer_type.as_deref()), (Some("6"), Some("integer")));
        assert_eq!(t.task_id, "i0003-d012-a0005");
    }

    #[test]
    fn unknown_requested_type_is_an_invalid_task_not_a_failure() {
        let t =
            to_task(&attempt("free_form", Some("count"), r#"{"question": "q q q", "answer": 1}"#))
                .unwrap();
        assert!(!t.valid);
        assert_eq!(t.invalid_reason.as_deref(), Some("unknown_answer_type"));
    }

    #[test]
    fn unknown_task_kind_names_the_row_and_field() {
        let err = to_task(&attempt("essay", None, "{}")).unwrap_err().to_string();
        assert!(err.contains("part-00000.parquet row 7") && err.contains("task_kind"), "{err}");
    }
}
