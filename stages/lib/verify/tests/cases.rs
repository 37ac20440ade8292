//! Our own tables of verification cases (`tests/cases/*.jsonl`), written for this crate.
//!
//! `equivalence.jsonl`: `{gold, pred, expected, category, answer_type?}` for
//! [`is_equivalent`]; `extraction.jsonl`: `{completion, kind, extracted, gold?, expected?,
//! category, options?}` for [`extract_answer`] and [`check`] (with `options`, the option
//! texts of a multiple-choice question: [`extract_choice_with_options`] and
//! [`check_with_options`]). Each test prints its case count per
//! category and lists every failing case before failing.

use serde::Deserialize;
use spice_verify::{
    check, check_with_options, extract_answer, extract_choice_with_options, is_equivalent,
    AnswerType, TaskKind, MCQ_MAX_LETTER,
};
use std::collections::BTreeMap;

#[derive(Deserialize)]
struct EqCase {
    gold: String,
    pred: String,
    expected: bool,
    category: String,
    #[serde(default)]
    answer_type: Option<String>,
}

#[derive(Deserialize)]
struct ExCase {
    completion: String,
    kind: String,
    extracted: Option<String>,
    #[serde(default)]
    gold: Option<String>,
    #[serde(default)]
    expected: Option<bool>,
    category: String,
    #[serde(default)]
    options: Vec<String>,
}

fn read<T: for<'de> Deserialize<'de>>(name: &str) -> Vec<T> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| serde_json::from_str(l).unwrap_or_else(|e| panic!("{name}:{}: {e}", i + 1)))
        .collect()
}

fn report(title: &str, counts: &BTreeMap<String, (usize, usize)>, failures: &[String]) {
    let total: usize = counts.values().map(|c| c.0).sum();
    println!("{title}: {total} cases");
    for (cat, (n, neg)) in counts {
        println!("  {cat:<16} {n:>4} ({neg} negative)");
    }
    for f in failures {
        println!("FAIL {f}");
    }
    assert!(failures.is_empty(), "{} of {total} {title} cases failed", failures.len());
}

#[test]
fn equivalence_table() {
    let cases: Vec<EqCase> = read("equivalence.jsonl");
    let mut counts: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut failures = Vec::new();
    for c in &cases {
        let ty = c
            .answer_type
            .as_deref()
            .map(|t| t.parse::<AnswerType>().expect("answer_type in table"));
        let got = is_equivalent(&c.gold, &c.pred, ty);
        let e = counts.entry(c.category.clone()).or_default();
        e.0 += 1;
        e.1 += usize::from(!c.expected);
        if got != c.expected {
            failures.push(format!(
                "[{}] gold {:?} pred {:?} type {:?}: expected {}, got {got}",
                c.category, c.gold, c.pred, c.answer_type, c.expected
            ));
        }
    }
    assert!(cases.len() >= 250, "the table should stay large");
    report("equivalence", &counts, &failures);
}

#[test]
fn extraction_table() {
    let cases: Vec<ExCase> = read("extraction.jsonl");
    let mut counts: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut failures = Vec::new();
    for c in &cases {
        let kind: TaskKind = c.kind.parse().expect("kind in table");
        let got = if c.options.is_empty() {
            extract_answer(&c.completion, kind)
        } else {
            extract_choice_with_options(&c.completion, MCQ_MAX_LETTER, &c.options).map(String::from)
        };
        let e = counts.entry(c.category.clone()).or_default();
        e.0 += 1;
        e.1 += usize::from(c.expected == Some(false));
        if got != c.extracted {
            failures.push(format!(
                "[{}] {:?}: extracted {got:?}, expected {:?}",
                c.category, c.completion, c.extracted
            ));
        }
        if let (Some(gold), Some(expected)) = (&c.gold, c.expected) {
            let v = if c.options.is_empty() {
                check(gold, &c.completion, kind, None)
            } else {
                check_with_options(gold, &c.completion, kind, None, MCQ_MAX_LETTER, &c.options)
            };
            if v.equivalent != expected {
                failures.push(format!(
                    "[{}] gold {gold:?} vs {:?}: expected {expected}, got {}",
                    c.category, c.completion, v.equivalent
                ));
            }
        }
    }
    report("extraction", &counts, &failures);
}
