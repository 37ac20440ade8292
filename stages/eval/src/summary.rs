//! `eval/summary.parquet`: accuracy per benchmark and per (benchmark, subject), counted from
//! the per-answer rows.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use spice_schemas::{rows::EvalRow, ShardRow};

/// One line of the summary: a whole benchmark (`subject` = None) or one of its subjects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalSummaryRow {
    pub benchmark: String,
    pub subject: Option<String>,
    pub questions: u64,
    /// Samples per question (k).
    pub samples: u32,
    /// Correct answers among questions × samples.
    pub correct: u64,
    /// avg@k: the mean over all answers of `correct` (pass@1 when k = 1).
    pub accuracy: f64,
    /// pass@1 of greedy decoding; set only when k = 1 at temperature 0.
    pub pass_at_1: Option<f64>,
    /// Share of questions with at least one correct answer among their k.
    pub pass_at_k: f64,
    /// Share of answers from which an answer could be extracted at all.
    pub extracted_rate: f64,
    pub mean_completion_tokens: f64,
    /// Share of answers cut at the token limit.
    pub length_finish_rate: f64,
}

impl ShardRow for EvalSummaryRow {
    const FOLDER: &'static str = "eval";
    const VERSION: u32 = 1;
}

/// The summary file's name inside `eval/`.
pub const SUMMARY_FILE: &str = "summary.parquet";

/// Count `rows` per benchmark (in order of first appearance), each followed by its subjects
/// (sorted) when any row has one.
pub fn summarize(rows: &[EvalRow], greedy: bool) -> Vec<EvalSummaryRow> {
    let mut order: Vec<&str> = Vec::new();
    for r in rows {
        if !order.contains(&r.benchmark.as_str()) {
            order.push(&r.benchmark);
        }
    }
    let mut out = Vec::new();
    for bench in order {
        let of_bench: Vec<&EvalRow> = rows.iter().filter(|r| r.benchmark == bench).collect();
        out.push(line(bench, None, &of_bench, greedy));
        let subjects: BTreeSet<&str> =
            of_bench.iter().filter_map(|r| r.subject.as_deref()).collect();
        for s in subjects {
            let of_subject: Vec<&EvalRow> =
                of_bench.iter().copied().filter(|r| r.subject.as_deref() == Some(s)).collect();
            out.push(line(bench, Some(s), &of_subject, greedy));
        }
    }
    out
}

fn line(bench: &str, subject: Option<&str>, rows: &[&EvalRow], greedy: bool) -> EvalSummaryRow {
    // question id → (answers, correct answers)
    let mut per_q: BTreeMap<&str, (u32, u32)> = BTreeMap::new();
    for r in rows {
        let e = per_q.entry(&r.question_id).or_default();
        e.0 += 1;
        e.1 += r.correct as u32;
    }
    let n = rows.len().max(1) as f64;
    let questions = per_q.len() as u64;
    let samples = per_q.values().map(|v| v.0).max().unwrap_or(0);
    let correct = rows.iter().filter(|r| r.correct).count() as u64;
    let accuracy = correct as f64 / n;
    EvalSummaryRow {
        benchmark: bench.to_string(),
        subject: subject.map(str::to_string),
        questions,
        samples,
        correct,
        accuracy,
        pass_at_1: (greedy && samples == 1).then_some(accuracy),
        pass_at_k: per_q.values().filter(|v| v.1 > 0).count() as f64 / questions.max(1) as f64,
        extracted_rate: rows.iter().filter(|r| r.extracted.is_some()).count() as f64 / n,
        mean_completion_tokens: rows.iter().map(|r| r.completion_tokens as f64).sum::<f64>() / n,
        length_finish_rate: rows.iter().filter(|r| r.finish_reason == "length").count() as f64 / n,
    }
}

/// The summary as a plain-text table for stdout.
pub fn render_table(summary: &[EvalSummaryRow]) -> String {
    let mut s = format!(
        "{:<28} {:>9} {:>3} {:>9} {:>9} {:>10} {:>8}\n",
        "benchmark / subject", "questions", "k", "accuracy", "pass@k", "extracted", "tokens"
    );
    for r in summary {
        let name = match &r.subject {
            None => r.benchmark.clone(),
            Some(sub) => format!("  {sub}"),
        };
        s.push_str(&format!(
            "{:<28} {:>9} {:>3} {:>8.1}% {:>8.1}% {:>9.1}% {:>8.0}\n",
            name,
            r.questions,
            r.samples,
            100.0 * r.accuracy,
            100.0 * r.pass_at_k,
            100.0 * r.extracted_rate,
            r.mean_completion_tokens
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(bench: &str, q: &str, subject: Option<&str>, sample: u32, correct: bool) -> EvalRow {
        EvalRow {
            benchmark: bench.into(),
            question_id: q.into(),
            subject: subject.map(Into::into),
            task_kind: "free_form".into(),
            sample,
            prompt: String::new(),
            completion: String::new(),
            completion_tokens: 10,
            finish_reason: if correct { "stop" } else { "length" }.into(),
            gold: "1".into(),
            extracted: correct.then(|| "1".to_string()),
            correct,
            seed: 0,
            policy_id: "p".into(),
        }
    }

    #[test]
    fn avg_at_k_and_pass_at_k_per_benchmark_and_subject() {
        // q1: 2 of 3 right (algebra); q2: 0 of 3 (geometry); other bench: 1 of 1.
        let rows = vec![
            row("m", "q1", Some("algebra"), 0, true),
            row("m", "q1", Some("algebra"), 1, false),
            row("m", "q1", Some("algebra"), 2, true),
            row("m", "q2", Some("geometry"), 0, false),
            row("m", "q2", Some("geometry"), 1, false),
            row("m", "q2", Some("geometry"), 2, false),
            row("g", "a", None, 0, true),
        ];
        let s = summarize(&rows, false);
        assert_eq!(s.len(), 4);
        assert_eq!((s[0].benchmark.as_str(), s[0].subject.as_deref()), ("m", None));
        assert_eq!((s[0].questions, s[0].samples, s[0].correct), (2, 3, 2));
        assert!((s[0].accuracy - 2.0 / 6.0).abs() < 1e-12);
        assert!((s[0].pass_at_k - 0.5).abs() < 1e-12);
        assert_eq!(s[0].pass_at_1, None);
        assert_eq!(s[1].subject.as_deref(), Some("algebra"));
        assert!((s[1].accuracy - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(s[2].subject.as_deref(), Some("geometry"));
        assert_eq!(s[2].accuracy, 0.0);
        assert_eq!((s[3].benchmark.as_str(), s[3].accuracy), ("g", 1.0));
        assert!((s[0].length_finish_rate - 4.0 / 6.0).abs() < 1e-12);
    }

    #[test]
    fn greedy_single_sample_reports_pass_at_1() {
        let s = summarize(&[row("b", "1", None, 0, true), row("b", "2", None, 0, false)], true);
        assert_eq!(s[0].pass_at_1, Some(0.5));
    }
}
