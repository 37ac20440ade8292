//! `filter` and `score` at the paper's batch size: B = 128 documents, G = 8 selected attempts
//! each, K = 8 answers per valid task (8,192 answers of about 2 KB with 512 token ids).

mod common;

use std::time::Instant;

use common::*;
use spice_schemas::rows::{ChallengerRow, RolloutRow};
use spice_schemas::RunConfig;

const DOCS: u32 = 128;
const G: u32 = 8;
const K: u32 = 8;

fn long(text: &str, tokens: u32) -> (String, Vec<u32>, Vec<f32>) {
    let reasoning = "We count carefully, checking every step against the definition. ".repeat(30);
    (format!("{reasoning}{text}"), (0..tokens).collect(), vec![-0.7; tokens as usize])
}

#[test]
fn paper_sized_iteration() {
    let run = Run::new(&RunConfig::default());
    let mut attempts = Vec::new();
    for d in 0..DOCS {
        for a in 0..G {
            // One in eight attempts is broken; the rest alternate MCQ and free-form.
            let (kind, text) = match a % 8 {
                7 => ("mcq", NO_JSON),
                k if k % 2 == 0 => ("mcq", MCQ),
                _ => ("free_form", FREE),
            };
            let mut row = attempt(d, a, kind, text, true);
            let (completion, ids, lp) = long(text, 256);
            (row.completion, row.completion_ids, row.logprobs) = (completion, ids, lp);
            attempts.push(row);
        }
    }
    run.commit::<ChallengerRow>(&[attempts]);
    let t = Instant::now();
    filter_ok(&run, &[]);
    let filter_s = t.elapsed().as_secs_f64();

    let tasks = run.tasks();
    let mut answers = Vec::new();
    for task in tasks.iter().filter(|t| t.valid) {
        let mcq = task.task_kind == "mcq";
        for s in 0..K {
            let right = (s + task.doc_slot) % 3 == 0;
            let text = match (mcq, right) {
                (true, true) => MCQ_RIGHT,
                (true, false) => MCQ_WRONG,
                (false, true) => FREE_RIGHT,
                (false, false) => FREE_WRONG,
            };
            let mut r = answer(&task.task_id, task.doc_slot, s, text);
            let (completion, ids, lp) = long(text, 512);
            (r.completion, r.completion_ids, r.logprobs) = (completion, ids, lp);
            answers.push(r);
        }
    }
    let n_answers = answers.len();
    run.commit::<RolloutRow>(&[answers]);
    let t = Instant::now();
    run.stage_ok(SCORE, &[]);
    let score_s = t.elapsed().as_secs_f64();

    let m = run.manifest("scored");
    assert_eq!(m.metric("answers"), Some(n_answers as f64));
    assert_eq!(m.metric("in_batch_reasoner"), Some((DOCS * K) as f64));
    println!(
        "spice-filter: {} attempts in {filter_s:.2} s (process wall time); score: {n_answers} answers \
         in {score_s:.2} s, of which verification {:.3} s",
        DOCS * G,
        m.metric("verify_seconds").unwrap_or(f64::NAN)
    );
    // Generous: seconds of work, on a shared machine.
    assert!(filter_s < 60.0 && score_s < 60.0);
}
