//! Reading task fields from the JSON a model wrote: key spellings, and the dispatch to the
//! multiple-choice or free-form builder.

use crate::task::free::build_free;
use crate::task::mcq::build_mcq;
use crate::task::standalone::refers_to_document;
use crate::task::{
    invalid, AnswerType, Invalid, InvalidReason, Task, TaskKind, MAX_QUESTION_CHARS,
};
use serde_json::{Map, Value};

/// Lower-cased, underscore-joined keys, so `Correct Answer`, `correct-answer` and
/// `correctAnswer` are one name.
pub(crate) fn norm_key(k: &str) -> String {
    let mut out = String::new();
    for (i, c) in k.trim().chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 && !out.ends_with('_') {
            out.push('_');
        }
        if c == ' ' || c == '-' {
            out.push('_');
        } else {
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

pub(crate) const QUESTION_KEYS: &[&str] =
    &["question", "stem", "question_stem", "problem", "prompt", "query", "question_text", "task"];
pub(crate) const OPTION_KEYS: &[&str] =
    &["options", "choices", "answer_options", "answer_choices", "alternatives", "option"];
pub(crate) const LETTER_KEYS: &[&str] = &[
    "correct_answer",
    "correct_option",
    "correct_choice",
    "correct_letter",
    "answer",
    "correct",
    "answer_letter",
    "label",
    "gold",
];
pub(crate) const ANSWER_KEYS: &[&str] = &[
    "answer",
    "final_answer",
    "correct_answer",
    "gold_answer",
    "ground_truth",
    "solution",
    "gold",
];
pub(crate) const TYPE_KEYS: &[&str] = &["answer_type", "type", "answer_format"];

pub(crate) struct Fields<'a> {
    map: Vec<(String, &'a Value)>,
}

impl<'a> Fields<'a> {
    pub(crate) fn new(map: &'a Map<String, Value>) -> Self {
        Fields { map: map.iter().map(|(k, v)| (norm_key(k), v)).collect() }
    }
    pub(crate) fn get(&self, keys: &[&str]) -> Option<&'a Value> {
        keys.iter()
            .find_map(|k| self.map.iter().find(|(n, v)| n == k && !v.is_null()).map(|(_, v)| *v))
    }
    pub(crate) fn letter_keys(&self) -> Option<Vec<&'a Value>> {
        let mut out = Vec::new();
        for l in ["a", "b", "c", "d"] {
            out.push(self.map.iter().find(|(n, _)| n == l).map(|(_, v)| *v)?);
        }
        Some(out)
    }
}

/// Whether an object looks like a task at all (so prose objects are passed over).
pub(crate) fn has_task_fields(map: &Map<String, Value>) -> bool {
    let f = Fields::new(map);
    f.get(QUESTION_KEYS).is_some() || f.get(OPTION_KEYS).is_some() || f.get(ANSWER_KEYS).is_some()
}

/// A JSON scalar as answer text.
pub(crate) fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Builds and validates the task; `expect = any` picks MCQ when options are present.
pub(crate) fn build(
    f: &Fields<'_>,
    expect: TaskKind,
    forced: Option<AnswerType>,
) -> Result<Task, Invalid> {
    let options = f
        .get(OPTION_KEYS)
        .cloned()
        .or_else(|| f.letter_keys().map(|vs| Value::Array(vs.into_iter().cloned().collect())));
    let kind = match expect {
        TaskKind::Any if options.is_some() => TaskKind::Mcq,
        TaskKind::Any => TaskKind::FreeForm,
        k => k,
    };
    let question = match f.get(QUESTION_KEYS) {
        Some(v) => scalar_text(v)
            .ok_or_else(|| invalid(InvalidReason::MissingField, "question is not text"))?,
        None => return Err(invalid(InvalidReason::MissingField, "question")),
    };
    if question.is_empty() {
        return Err(invalid(InvalidReason::MissingField, "question is empty"));
    }
    if question.chars().count() > MAX_QUESTION_CHARS {
        return Err(invalid(
            InvalidReason::TooLong,
            format!("question has {} characters", question.chars().count()),
        ));
    }
    if let Some(phrase) = refers_to_document(&question) {
        return Err(invalid(InvalidReason::RefersToDocument, format!("question says {phrase:?}")));
    }
    match kind {
        TaskKind::Mcq => build_mcq(f, question, options),
        _ => build_free(f, question, options.is_some(), forced),
    }
}
