//! `spice-filter` end to end: challenger/ shards written and committed by hand, the
//! binary run on them, tasks/ and its manifest read back.

mod common;

use common::*;
use serde_json::{json, Value};
use spice_schemas::rows::{ChallengerRow, TaskRow};
use spice_schemas::{parquet_io::write_shard, RunConfig, ShardRow};

/// Six attempts over two documents, in two committed parts, written out of order.
fn mixed_attempts() -> Vec<Vec<ChallengerRow>> {
    let mut free_prose = attempt(
        1,
        2,
        "free_form",
        &format!("Let me think about the document first.\n```json\n{FREE}\n```\nDone."),
        true,
    );
    free_prose.answer_type = Some("integer".into());
    vec![
        vec![
            attempt(0, 2, "mcq", NO_JSON, true),
            attempt(0, 0, "mcq", MCQ, true),
            attempt(1, 1, "mcq", &MCQ.replace("(C)", "E"), false),
        ],
        vec![
            free_prose,
            attempt(0, 1, "free_form", FREE, true),
            attempt(
                1,
                0,
                "free_form",
                r#"{"question": "How many sides does a regular hexagon have?", "answer_type": "integer"}"#,
                false,
            ),
        ],
    ]
}

#[test]
fn filter_tells_valid_tasks_from_broken_ones() {
    let run = Run::new(&RunConfig::default());
    run.commit::<ChallengerRow>(&mixed_attempts());
    run.stage_ok(FILTER, &[]);

    let tasks = run.tasks();
    let ids: Vec<&str> = tasks.iter().map(|t| t.task_id.as_str()).collect();
    assert_eq!(
        ids,
        [task_id(0, 0), task_id(0, 1), task_id(0, 2), task_id(1, 0), task_id(1, 1), task_id(1, 2)],
        "one row per attempt, in (document, attempt) order"
    );
    let summary: Vec<(bool, Option<&str>, &str, bool)> = tasks
        .iter()
        .map(|t| (t.valid, t.invalid_reason.as_deref(), t.task_kind.as_str(), t.selected))
        .collect();
    assert_eq!(
        summary,
        [
            (true, None, "mcq", true),
            (true, None, "free_form", true),
            (false, Some("no_json"), "mcq", true),
            (false, Some("missing_field"), "free_form", false),
            (false, Some("bad_letter"), "mcq", false),
            (true, None, "free_form", true),
        ]
    );

    let mcq = &tasks[0];
    assert_eq!(mcq.answer.as_deref(), Some("C"), "MCQ gold is the bare letter");
    assert_eq!(mcq.options, ["Mercury", "Venus", "Jupiter", "Mars"]);
    assert_eq!(mcq.answer_type, None);
    assert_eq!(
        mcq.question.as_deref(),
        Some("Which planet of the solar system has the largest mass?")
    );
    let raw: Value = serde_json::from_str(mcq.raw_json.as_deref().unwrap()).unwrap();
    assert_eq!(raw["answer"], json!("(C)"), "raw_json keeps what the model wrote");
    assert_eq!(
        (mcq.chunk_id.as_str(), mcq.policy_id.as_str(), mcq.iteration),
        ("chunk-0", "model@abc", ITER)
    );

    let free = &tasks[1];
    assert_eq!((free.answer.as_deref(), free.answer_type.as_deref()), (Some("6"), Some("integer")));
    assert!(free.options.is_empty());
    assert_eq!(tasks[5].answer.as_deref(), Some("6"), "JSON found inside prose and a code fence");

    for t in tasks.iter().filter(|t| !t.valid) {
        assert!(
            !t.invalid_detail.as_deref().unwrap_or("").is_empty(),
            "{} explains itself",
            t.task_id
        );
        assert!(t.question.is_none() && t.answer.is_none());
    }
    assert!(tasks[2].raw_json.is_none(), "no JSON, nothing to keep");
    assert!(tasks[4].raw_json.is_some(), "a bad letter still keeps the object for audit");

    let m = run.manifest(TaskRow::FOLDER);
    assert_eq!(m.stage, "verify-filter");
    assert_eq!(m.rows, 6);
    assert_eq!(m.schema.as_deref(), Some("tasks/1"));
    assert_eq!(m.inputs.iter().map(|i| i.name.as_str()).collect::<Vec<_>>(), ["challenger"]);
    let metric = |k: &str| m.metrics.get(k).cloned().unwrap_or(Value::Null);
    assert_eq!(metric("attempts"), json!(6));
    assert_eq!(metric("valid"), json!(3));
    assert_eq!(metric("valid_rate"), json!(0.5));
    assert_eq!(
        metric("invalid_reasons"),
        json!({"bad_letter": 1, "missing_field": 1, "no_json": 1})
    );
    assert_eq!((metric("mcq"), metric("mcq_valid")), (json!(3), json!(1)));
    assert_eq!((metric("free_form"), metric("free_form_valid")), (json!(3), json!(2)));
    assert_eq!((metric("selected_valid"), metric("selected_invalid")), (json!(3), json!(1)));
    assert_eq!((metric("documents"), metric("documents_with_valid_task")), (json!(2), json!(2)));
    assert!(metric("seconds").as_f64().is_some());
}

#[test]
fn forced_answer_type_is_enforced() {
    let run = Run::new(&RunConfig::default());
    let mut wants_expr = attempt(0, 0, "free_form", FREE, true);
    wants_expr.answer_type = Some("expression".into());
    let mut unknown = attempt(0, 1, "free_form", FREE, true);
    unknown.answer_type = Some("count".into());
    run.commit::<ChallengerRow>(&[vec![wants_expr, unknown]]);
    run.stage_ok(FILTER, &[]);
    let reasons: Vec<Option<String>> = run.tasks().into_iter().map(|t| t.invalid_reason).collect();
    assert_eq!(
        reasons,
        [Some("answer_type_mismatch".to_string()), Some("unknown_answer_type".to_string())]
    );
}

#[test]
fn filter_refuses_an_unfinished_challenger_folder() {
    let run = Run::new(&RunConfig::default());
    let err = run.stage_err(FILTER, &[]);
    assert!(err.contains("challenger") && err.contains("does not exist"), "{err}");

    // A shard without its manifest: the writer has not committed (or died).
    let dir = run.folder(ChallengerRow::FOLDER);
    write_shard(dir.join("part-00000.parquet"), &[attempt(0, 0, "mcq", MCQ, true)]).unwrap();
    let err = run.stage_err(FILTER, &[]);
    assert!(err.contains(&dir.display().to_string()) && err.contains("not finished"), "{err}");

    // One part of two committed.
    let run = Run::new(&RunConfig::default());
    commit_part(
        &run.folder(ChallengerRow::FOLDER),
        spice_schemas::ShardSpec { index: 1, count: 2 },
        &[attempt(1, 0, "mcq", MCQ, true)],
    );
    let err = run.stage_err(FILTER, &[]);
    assert!(err.contains("not finished"), "{err}");
    assert!(!run.folder(TaskRow::FOLDER).exists(), "nothing written for an unfinished input");
}

#[test]
fn rerun_is_a_no_op_and_changed_input_reruns() {
    let run = Run::new(&RunConfig::default());
    run.commit::<ChallengerRow>(&mixed_attempts());
    run.stage_ok(FILTER, &[]);
    let first = run.manifest_bytes(TaskRow::FOLDER);

    let log = run.stage_ok(FILTER, &[]);
    assert!(log.contains("is done"), "{log}");
    assert_eq!(run.manifest_bytes(TaskRow::FOLDER), first, "a no-op leaves the manifest alone");

    // Forcing redoes the work with the same result.
    run.stage_ok(FILTER, &["--force"]);
    assert_eq!(
        run.manifest(TaskRow::FOLDER).output_digest,
        serde_json::from_slice::<spice_schemas::Manifest>(&first).unwrap().output_digest
    );

    // Fix the bad letter: the challenger folder changes, so filter reruns by itself.
    let mut parts = mixed_attempts();
    parts[0][2] = attempt(1, 1, "mcq", MCQ, false);
    run.commit::<ChallengerRow>(&parts);
    let log = run.stage_ok(FILTER, &[]);
    assert!(log.contains("inputs changed: challenger"), "{log}");
    assert_ne!(run.manifest_bytes(TaskRow::FOLDER), first);
    assert_eq!(run.manifest(TaskRow::FOLDER).metric("valid"), Some(4.0));
    assert!(run.tasks()[4].valid);

    // The challenger section is part of the stage's configuration.
    let mut cfg = RunConfig::default();
    cfg.challenger.num_generations = 4;
    run.set_config(&cfg);
    let log = run.stage_ok(FILTER, &[]);
    assert!(log.contains("configuration changed"), "{log}");
}

#[test]
fn a_malformed_row_is_named_and_the_finished_output_survives() {
    let run = Run::new(&RunConfig::default());
    run.commit::<ChallengerRow>(&mixed_attempts());
    run.stage_ok(FILTER, &[]);
    let finished = run.manifest_bytes(TaskRow::FOLDER);

    let mut parts = mixed_attempts();
    parts[1][1].task_kind = "essay".into();
    run.commit::<ChallengerRow>(&parts);
    let err = run.stage_err(FILTER, &[]);
    assert!(
        err.contains("part-00001.parquet row 1")
            && err.contains("task_kind")
            && err.contains("essay"),
        "{err}"
    );
    assert_eq!(run.manifest_bytes(TaskRow::FOLDER), finished, "the old output is still finished");
    assert_eq!(run.tasks().len(), 6);

    let mut parts = mixed_attempts();
    parts[0][0].iteration = ITER + 1;
    run.commit::<ChallengerRow>(&parts);
    let err = run.stage_err(FILTER, &[]);
    assert!(err.contains("part-00000.parquet row 0") && err.contains("iteration"), "{err}");

    let mut parts = mixed_attempts();
    parts[1][0].doc_slot = 0;
    parts[1][0].attempt = 0;
    run.commit::<ChallengerRow>(&parts);
    let err = run.stage_err(FILTER, &[]);
    assert!(err.contains("appears twice"), "{err}");
}

#[test]
fn help_lists_the_stage_flags() {
    assert_help_lists_stage_flags(FILTER);
}
