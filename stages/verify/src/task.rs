//! Challenger tasks: building and validating a task from a completion.
//!
//! A task is valid when it parses and is well formed (SPICE: "MCQ has a non-trivial stem,
//! four distinct non-empty options and one letter in A–D; free-form has a non-empty question
//! and an answer of the declared type that the verifier can parse"). Every invalid task
//! carries a machine-readable [`InvalidReason`] so the pipeline can count failure modes.

use crate::bounds::MAX_ANSWER_BYTES;
use crate::equiv::clean;
use crate::eval::{collect_vars, eval};
use crate::expr::{parse, Node};
use crate::json_extract::{find_objects, Found};
use crate::text::{normalize_text, parse_bool};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;
use thiserror::Error;

/// Longest question accepted.
pub const MAX_QUESTION_CHARS: usize = 4000;
/// Longest MCQ option accepted.
pub const MAX_OPTION_CHARS: usize = 1000;
/// Longest free-form answer accepted (answers are scalars, not essays).
pub const MAX_FREE_ANSWER_CHARS: usize = 300;
/// Fewest words a question must have to be more than a fragment.
pub const MIN_QUESTION_WORDS: usize = 3;

/// The format of a task. `Any` is only a request ("whatever the completion contains").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    Mcq,
    FreeForm,
    Any,
}

/// The declared type of a free-form answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnswerType {
    Integer,
    Float,
    Expression,
    String,
    Boolean,
    List,
}

#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("unknown name {0:?}")]
pub struct UnknownName(pub String);

impl TaskKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskKind::Mcq => "mcq",
            TaskKind::FreeForm => "free_form",
            TaskKind::Any => "any",
        }
    }
}

impl FromStr for TaskKind {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s
            .trim()
            .to_ascii_lowercase()
            .replace(['-', ' '], "_")
            .as_str()
        {
            "mcq" | "multiple_choice" => Ok(TaskKind::Mcq),
            "free_form" | "freeform" | "open" => Ok(TaskKind::FreeForm),
            "any" | "both" => Ok(TaskKind::Any),
            _ => Err(UnknownName(s.to_string())),
        }
    }
}

impl AnswerType {
    pub const ALL: [AnswerType; 6] = [
        AnswerType::Integer,
        AnswerType::Float,
        AnswerType::Expression,
        AnswerType::String,
        AnswerType::Boolean,
        AnswerType::List,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AnswerType::Integer => "integer",
            AnswerType::Float => "float",
            AnswerType::Expression => "expression",
            AnswerType::String => "string",
            AnswerType::Boolean => "boolean",
            AnswerType::List => "list",
        }
    }
}

impl FromStr for AnswerType {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "integer" | "int" => AnswerType::Integer,
            "float" | "decimal" | "real" | "number" | "numeric" => AnswerType::Float,
            "expression" | "expr" | "formula" | "math" | "latex" => AnswerType::Expression,
            "string" | "str" | "text" => AnswerType::String,
            "boolean" | "bool" => AnswerType::Boolean,
            "list" | "array" | "set" | "tuple" => AnswerType::List,
            _ => return Err(UnknownName(s.to_string())),
        })
    }
}

impl fmt::Display for TaskKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for AnswerType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A valid task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Task {
    /// `mcq` or `free_form` (never `any`).
    pub kind: TaskKind,
    pub question: String,
    /// Four options for MCQ (A–D in order), empty for free-form.
    pub options: Vec<String>,
    /// The gold answer: the letter for MCQ, the answer text for free-form.
    pub answer: String,
    /// The answer type for free-form tasks; `None` for MCQ.
    pub answer_type: Option<AnswerType>,
}

/// Why a task is invalid (serialised snake_case, e.g. `no_json`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InvalidReason {
    NoJson,
    InvalidJson,
    MissingField,
    BadLetter,
    WrongOptionCount,
    EmptyOption,
    DuplicateOptions,
    TrivialStem,
    UnknownAnswerType,
    AnswerTypeMismatch,
    UnparseableAnswer,
    QuestionLeaksAnswer,
    RefersToDocument,
    TooLong,
    FormatMismatch,
}

impl InvalidReason {
    pub const ALL: [InvalidReason; 15] = [
        InvalidReason::NoJson,
        InvalidReason::InvalidJson,
        InvalidReason::MissingField,
        InvalidReason::BadLetter,
        InvalidReason::WrongOptionCount,
        InvalidReason::EmptyOption,
        InvalidReason::DuplicateOptions,
        InvalidReason::TrivialStem,
        InvalidReason::UnknownAnswerType,
        InvalidReason::AnswerTypeMismatch,
        InvalidReason::UnparseableAnswer,
        InvalidReason::QuestionLeaksAnswer,
        InvalidReason::RefersToDocument,
        InvalidReason::TooLong,
        InvalidReason::FormatMismatch,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            InvalidReason::NoJson => "no_json",
            InvalidReason::InvalidJson => "invalid_json",
            InvalidReason::MissingField => "missing_field",
            InvalidReason::BadLetter => "bad_letter",
            InvalidReason::WrongOptionCount => "wrong_option_count",
            InvalidReason::EmptyOption => "empty_option",
            InvalidReason::DuplicateOptions => "duplicate_options",
            InvalidReason::TrivialStem => "trivial_stem",
            InvalidReason::UnknownAnswerType => "unknown_answer_type",
            InvalidReason::AnswerTypeMismatch => "answer_type_mismatch",
            InvalidReason::UnparseableAnswer => "unparseable_answer",
            InvalidReason::QuestionLeaksAnswer => "question_leaks_answer",
            InvalidReason::RefersToDocument => "refers_to_document",
            InvalidReason::TooLong => "too_long",
            InvalidReason::FormatMismatch => "format_mismatch",
        }
    }
}

impl fmt::Display for InvalidReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An invalid task: the reason, and a human-readable detail for audit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Error)]
#[error("{reason}: {detail}")]
pub struct Invalid {
    pub reason: InvalidReason,
    pub detail: String,
}

fn invalid(reason: InvalidReason, detail: impl Into<String>) -> Invalid {
    Invalid {
        reason,
        detail: detail.into(),
    }
}

/// The result of parsing a Challenger completion.
#[derive(Clone, Debug, PartialEq)]
pub struct ParsedTask {
    pub task: Result<Task, Invalid>,
    /// The JSON object the task was read from, with every field the model wrote (for audit).
    pub json: Option<Value>,
}

/// Reads a task from a Challenger completion. `expect` is the format that was requested;
/// `forced_type` is the answer type imposed by configuration, if any.
pub fn parse_task(
    completion: &str,
    expect: TaskKind,
    forced_type: Option<AnswerType>,
) -> ParsedTask {
    let objects = match find_objects(completion) {
        Found::Nothing => {
            return ParsedTask {
                task: Err(invalid(
                    InvalidReason::NoJson,
                    "no JSON object in completion",
                )),
                json: None,
            }
        }
        Found::Unparsable(e) => {
            return ParsedTask {
                task: Err(invalid(InvalidReason::InvalidJson, e)),
                json: None,
            }
        }
        Found::Objects(o) => o,
    };
    // The last object with task fields; a model that revises itself writes the final one last.
    let chosen = objects
        .iter()
        .rev()
        .find(|o| o.as_object().is_some_and(has_task_fields))
        .or(objects.last())
        .cloned();
    let Some(json) = chosen else {
        return ParsedTask {
            task: Err(invalid(InvalidReason::InvalidJson, "no object")),
            json: None,
        };
    };
    let task = match json.as_object() {
        Some(map) => build(&Fields::new(map), expect, forced_type),
        None => Err(invalid(InvalidReason::InvalidJson, "not an object")),
    };
    ParsedTask {
        task,
        json: Some(json),
    }
}

/// Lower-cased, underscore-joined keys, so `Correct Answer`, `correct-answer` and
/// `correctAnswer` are one name.
fn norm_key(k: &str) -> String {
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

const QUESTION_KEYS: &[&str] = &[
    "question",
    "stem",
    "question_stem",
    "problem",
    "prompt",
    "query",
    "question_text",
    "task",
];
const OPTION_KEYS: &[&str] = &[
    "options",
    "choices",
    "answer_options",
    "answer_choices",
    "alternatives",
    "option",
];
const LETTER_KEYS: &[&str] = &[
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
const ANSWER_KEYS: &[&str] = &[
    "answer",
    "final_answer",
    "correct_answer",
    "gold_answer",
    "ground_truth",
    "solution",
    "gold",
];
const TYPE_KEYS: &[&str] = &["answer_type", "type", "answer_format"];

struct Fields<'a> {
    map: Vec<(String, &'a Value)>,
}

impl<'a> Fields<'a> {
    fn new(map: &'a Map<String, Value>) -> Self {
        Fields {
            map: map.iter().map(|(k, v)| (norm_key(k), v)).collect(),
        }
    }
    fn get(&self, keys: &[&str]) -> Option<&'a Value> {
        keys.iter().find_map(|k| {
            self.map
                .iter()
                .find(|(n, v)| n == k && !v.is_null())
                .map(|(_, v)| *v)
        })
    }
    fn letter_keys(&self) -> Option<Vec<&'a Value>> {
        let mut out = Vec::new();
        for l in ["a", "b", "c", "d"] {
            out.push(self.map.iter().find(|(n, _)| n == l).map(|(_, v)| *v)?);
        }
        Some(out)
    }
}

fn has_task_fields(map: &Map<String, Value>) -> bool {
    let f = Fields::new(map);
    f.get(QUESTION_KEYS).is_some() || f.get(OPTION_KEYS).is_some() || f.get(ANSWER_KEYS).is_some()
}

/// A JSON scalar as answer text.
fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn build(f: &Fields<'_>, expect: TaskKind, forced: Option<AnswerType>) -> Result<Task, Invalid> {
    let options = f.get(OPTION_KEYS).cloned().or_else(|| {
        f.letter_keys()
            .map(|vs| Value::Array(vs.into_iter().cloned().collect()))
    });
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
        return Err(invalid(
            InvalidReason::RefersToDocument,
            format!("question says {phrase:?}"),
        ));
    }
    match kind {
        TaskKind::Mcq => build_mcq(f, question, options),
        _ => build_free(f, question, options.is_some(), forced),
    }
}

fn build_mcq(f: &Fields<'_>, question: String, options: Option<Value>) -> Result<Task, Invalid> {
    let options = options.ok_or_else(|| invalid(InvalidReason::MissingField, "options"))?;
    let options = read_options(&options)?;
    if options.len() != 4 {
        return Err(invalid(
            InvalidReason::WrongOptionCount,
            format!("{} options", options.len()),
        ));
    }
    if let Some(i) = options.iter().position(|o| o.trim().is_empty()) {
        return Err(invalid(
            InvalidReason::EmptyOption,
            format!("option {} is empty", letter(i)),
        ));
    }
    if let Some(o) = options
        .iter()
        .find(|o| o.chars().count() > MAX_OPTION_CHARS)
    {
        return Err(invalid(
            InvalidReason::TooLong,
            format!("an option has {} characters", o.chars().count()),
        ));
    }
    let normed: Vec<String> = options.iter().map(|o| normalize_text(o)).collect();
    for i in 0..4 {
        for j in i + 1..4 {
            if normed[i] == normed[j] || crate::equiv::is_equivalent(&options[i], &options[j], None)
            {
                return Err(invalid(
                    InvalidReason::DuplicateOptions,
                    format!("options {} and {} are the same", letter(i), letter(j)),
                ));
            }
        }
    }
    if question.split_whitespace().count() < MIN_QUESTION_WORDS {
        return Err(invalid(
            InvalidReason::TrivialStem,
            format!("stem {question:?} is too short"),
        ));
    }
    let raw = f
        .get(LETTER_KEYS)
        .ok_or_else(|| invalid(InvalidReason::MissingField, "correct answer"))?;
    let raw =
        scalar_text(raw).ok_or_else(|| invalid(InvalidReason::BadLetter, "answer is not text"))?;
    let idx = answer_letter(&raw, &options).ok_or_else(|| {
        invalid(
            InvalidReason::BadLetter,
            format!("cannot read a letter A-D from {raw:?}"),
        )
    })?;
    // The stem gives the answer away when it quotes the correct option and no other.
    let stem = normalize_text(&question);
    let quoted: Vec<usize> = (0..4)
        .filter(|&i| normed[i].len() >= 4 && contains_words(&stem, &normed[i]))
        .collect();
    if quoted == [idx] {
        return Err(invalid(
            InvalidReason::QuestionLeaksAnswer,
            format!("stem contains option {}", letter(idx)),
        ));
    }
    Ok(Task {
        kind: TaskKind::Mcq,
        question,
        options,
        answer: letter(idx).to_string(),
        answer_type: None,
    })
}

fn letter(i: usize) -> char {
    (b'A' + i as u8) as char
}

/// Options as a list, a dict keyed by letters, or a list of `"A) …"` strings.
fn read_options(v: &Value) -> Result<Vec<String>, Invalid> {
    let mut out: Vec<String> = match v {
        Value::Array(items) => items
            .iter()
            .map(|it| match it {
                Value::Object(o) => o
                    .iter()
                    .find(|(k, _)| {
                        matches!(
                            norm_key(k).as_str(),
                            "text" | "option" | "content" | "value"
                        )
                    })
                    .and_then(|(_, v)| scalar_text(v))
                    .unwrap_or_default(),
                other => scalar_text(other).unwrap_or_default(),
            })
            .collect(),
        Value::Object(map) => {
            let mut entries: Vec<(String, String)> = map
                .iter()
                .map(|(k, v)| {
                    (
                        k.trim()
                            .trim_matches(|c: char| !c.is_alphanumeric())
                            .to_ascii_uppercase(),
                        scalar_text(v).unwrap_or_default(),
                    )
                })
                .collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            let letters: Vec<&str> = entries.iter().map(|(k, _)| k.as_str()).collect();
            let expected: Vec<String> = (0..entries.len()).map(|i| letter(i).to_string()).collect();
            if letters != expected.iter().map(String::as_str).collect::<Vec<_>>() {
                return Err(invalid(
                    InvalidReason::WrongOptionCount,
                    format!("option keys {letters:?} are not A, B, C, D"),
                ));
            }
            entries.into_iter().map(|(_, v)| v).collect()
        }
        Value::String(s) => split_inline_options(s),
        _ => {
            return Err(invalid(
                InvalidReason::MissingField,
                "options are not a list",
            ))
        }
    };
    // Strip `A) ` / `(A) ` / `A. ` / `A: ` prefixes when every option carries its own letter.
    let prefixed = out
        .iter()
        .enumerate()
        .all(|(i, o)| strip_letter_prefix(o, letter(i)).is_some());
    if prefixed {
        out = out
            .iter()
            .enumerate()
            .map(|(i, o)| strip_letter_prefix(o, letter(i)).unwrap_or(o).to_string())
            .collect();
    }
    Ok(out)
}

/// `"A) 1 B) 2 C) 3 D) 4"` written as one string.
fn split_inline_options(s: &str) -> Vec<String> {
    let mut cuts = Vec::new();
    let mut from = 0;
    for l in ['A', 'B', 'C', 'D', 'E', 'F'] {
        let pats = [format!("{l})"), format!("({l})"), format!("{l}.")];
        let hit = pats
            .iter()
            .filter_map(|p| s[from..].find(p.as_str()).map(|i| from + i))
            .min();
        match hit {
            Some(i) => {
                cuts.push(i);
                from = i + 1;
            }
            None => break,
        }
    }
    if cuts.is_empty() {
        return vec![s.to_string()];
    }
    cuts.push(s.len());
    cuts.windows(2)
        .map(|w| s[w[0]..w[1]].trim().to_string())
        .collect()
}

fn strip_letter_prefix(o: &str, l: char) -> Option<&str> {
    let t = o.trim_start();
    let t = t.strip_prefix('(').unwrap_or(t);
    let rest = t
        .strip_prefix(l)
        .or_else(|| t.strip_prefix(l.to_ascii_lowercase()))?;
    let rest = rest
        .strip_prefix([')', '.', ':', ']'])
        .or_else(|| rest.strip_prefix(" -"))?;
    Some(rest.trim())
}

/// The index of the correct option from `B`, `(B)`, `B)`, `B. text`, `Option B`, or the
/// full text of an option.
fn answer_letter(raw: &str, options: &[String]) -> Option<usize> {
    let t = raw.trim();
    let lower = t.to_ascii_lowercase();
    let t = ["option", "choice", "answer"]
        .iter()
        .find_map(|p| {
            lower
                .starts_with(p)
                .then(|| t[p.len()..].trim_start_matches([' ', ':']))
        })
        .unwrap_or(t);
    let inner = t.trim_start_matches(['(', '[', '*']).trim();
    let mut chars = inner.chars();
    if let Some(c) = chars.next() {
        let c = c.to_ascii_uppercase();
        let next = chars.next();
        if ('A'..='D').contains(&c) && next.is_none_or(|n| !n.is_alphanumeric()) {
            // `B. 12` must agree with option B's text when it quotes it.
            return Some((c as u8 - b'A') as usize);
        }
    }
    let n = normalize_text(raw);
    options
        .iter()
        .position(|o| !n.is_empty() && normalize_text(o) == n)
}

fn build_free(
    f: &Fields<'_>,
    question: String,
    has_options: bool,
    forced: Option<AnswerType>,
) -> Result<Task, Invalid> {
    let raw = f
        .get(ANSWER_KEYS)
        .ok_or_else(|| invalid(InvalidReason::MissingField, "answer"))?;
    let answer = match raw {
        Value::Array(items) => {
            let parts: Option<Vec<String>> = items.iter().map(scalar_text).collect();
            parts
                .ok_or_else(|| {
                    invalid(
                        InvalidReason::UnparseableAnswer,
                        "list answer holds non-scalars",
                    )
                })?
                .join(", ")
        }
        other => scalar_text(other)
            .ok_or_else(|| invalid(InvalidReason::UnparseableAnswer, "answer is not a scalar"))?,
    };
    if answer.is_empty() {
        return Err(invalid(InvalidReason::MissingField, "answer is empty"));
    }
    if answer.chars().count() > MAX_FREE_ANSWER_CHARS || answer.len() > MAX_ANSWER_BYTES {
        return Err(invalid(
            InvalidReason::TooLong,
            format!("answer has {} characters", answer.chars().count()),
        ));
    }
    if has_options
        && answer.len() <= 3
        && answer.trim_matches(['(', ')', '.']).len() == 1
        && answer
            .trim_matches(['(', ')', '.'])
            .chars()
            .all(|c| ('A'..='D').contains(&c))
    {
        return Err(invalid(
            InvalidReason::FormatMismatch,
            "free-form requested, got a multiple-choice task",
        ));
    }
    if question.split_whitespace().count() < MIN_QUESTION_WORDS {
        return Err(invalid(
            InvalidReason::TrivialStem,
            format!("question {question:?} is too short"),
        ));
    }
    let declared = match f.get(TYPE_KEYS).and_then(scalar_text) {
        Some(t) => Some(t.parse::<AnswerType>().map_err(|_| {
            invalid(
                InvalidReason::UnknownAnswerType,
                format!("answer type {t:?}"),
            )
        })?),
        None => None,
    };
    let ty = match (forced, declared) {
        (Some(f), Some(d)) if f != d && !(f == AnswerType::Float && d == AnswerType::Integer) => {
            return Err(invalid(
                InvalidReason::AnswerTypeMismatch,
                format!("{d} declared, {f} required"),
            ))
        }
        (Some(f), _) => f,
        (None, Some(d)) => d,
        (None, None) => infer_type(&answer),
    };
    check_answer_type(&answer, ty)?;
    if leaks(&question, &answer, ty) {
        return Err(invalid(
            InvalidReason::QuestionLeaksAnswer,
            format!("question contains the answer {answer:?}"),
        ));
    }
    Ok(Task {
        kind: TaskKind::FreeForm,
        question,
        options: Vec::new(),
        answer,
        answer_type: Some(ty),
    })
}

fn numeric_value(answer: &str) -> Option<(f64, bool)> {
    let node = parse(&clean(answer)).ok()?;
    let node = match node {
        Node::Percent(inner) => *inner,
        other => other,
    };
    let mut vars = BTreeSet::new();
    collect_vars(&node, &mut vars);
    if !vars.is_empty() {
        return None;
    }
    let v = eval(&node, &[]).ok()?;
    v.is_real().then_some((v.re, v.re.fract() == 0.0))
}

fn infer_type(answer: &str) -> AnswerType {
    if parse_bool(answer).is_some() && !answer.trim().chars().all(|c| c.is_ascii_digit()) {
        return AnswerType::Boolean;
    }
    if let Some((_, int)) = numeric_value(answer) {
        return if int && !answer.contains('.') {
            AnswerType::Integer
        } else {
            AnswerType::Float
        };
    }
    match parse(&clean(answer)) {
        Ok(Node::List(_) | Node::Set(_)) => AnswerType::List,
        Ok(Node::Text(_)) | Err(_) => AnswerType::String,
        Ok(_)
            if normalize_text(answer)
                .split(' ')
                .any(|w| w.chars().filter(|c| c.is_alphabetic()).count() >= 3)
                && !answer.contains('\\') =>
        {
            AnswerType::String
        }
        Ok(_) => AnswerType::Expression,
    }
}

fn check_answer_type(answer: &str, ty: AnswerType) -> Result<(), Invalid> {
    let mismatch = |what: &str| {
        Err(invalid(
            InvalidReason::AnswerTypeMismatch,
            format!("{answer:?} is not {what}"),
        ))
    };
    let parsed = parse(&clean(answer));
    match ty {
        AnswerType::Integer => match numeric_value(answer) {
            Some((_, true)) => Ok(()),
            Some((_, false)) => mismatch("an integer"),
            None if parsed.is_ok() => mismatch("an integer"),
            None => Err(invalid(
                InvalidReason::UnparseableAnswer,
                format!("cannot read {answer:?} as a number"),
            )),
        },
        AnswerType::Float => match numeric_value(answer) {
            Some(_) => Ok(()),
            None if parsed.is_ok() => mismatch("a number"),
            None => Err(invalid(
                InvalidReason::UnparseableAnswer,
                format!("cannot read {answer:?} as a number"),
            )),
        },
        AnswerType::Expression => match parsed {
            Ok(Node::Text(_)) => mismatch("an expression"),
            Ok(_) => Ok(()),
            Err(e) => Err(invalid(
                InvalidReason::UnparseableAnswer,
                format!("cannot parse {answer:?}: {e}"),
            )),
        },
        AnswerType::Boolean => match parse_bool(answer) {
            Some(_) => Ok(()),
            None => mismatch("a boolean"),
        },
        AnswerType::String => {
            if normalize_text(answer).is_empty() {
                Err(invalid(
                    InvalidReason::UnparseableAnswer,
                    "answer has no words",
                ))
            } else {
                Ok(())
            }
        }
        AnswerType::List => match parsed {
            Ok(Node::List(_) | Node::Set(_) | Node::Group { .. }) => Ok(()),
            Ok(_) => mismatch("a list"),
            Err(e) => Err(invalid(
                InvalidReason::UnparseableAnswer,
                format!("cannot parse {answer:?}: {e}"),
            )),
        },
    }
}

/// Phrases that tie the question to a document the Reasoner never sees.
const DOCUMENT_PHRASES: &[&str] = &[
    "according to the text",
    "according to the passage",
    "according to the document",
    "according to the article",
    "according to the excerpt",
    "according to the paragraph",
    "according to the author",
    "according to the given",
    "according to the above",
    "according to the provided",
    "according to the study",
    "according to the source",
    "in the text",
    "in the passage",
    "in the document",
    "in the article",
    "in the excerpt",
    "in the given text",
    "in the provided text",
    "in the paragraph above",
    "the passage above",
    "the text above",
    "mentioned in the text",
    "mentioned in the passage",
    "stated in the text",
    "stated in the passage",
    "described in the text",
    "described in the passage",
    "as mentioned above",
    "as described above",
    "as stated above",
    "the given passage",
    "the provided passage",
    "the given document",
    "the provided document",
    "this passage",
    "this document",
    "this article",
    "this excerpt",
    "the author of the",
];

fn refers_to_document(question: &str) -> Option<&'static str> {
    let q = normalize_text(question);
    let q = format!(" {q} ");
    // Phrases are normalised like the question (articles dropped) before matching.
    DOCUMENT_PHRASES
        .iter()
        .copied()
        .find(|p| q.contains(&format!(" {} ", normalize_text(p))))
}

/// Whether `needle` occurs in `hay` as whole words (both already normalised).
fn contains_words(hay: &str, needle: &str) -> bool {
    format!(" {hay} ").contains(&format!(" {needle} "))
}

/// The question states its own answer: a text answer of three or more letters quoted in the
/// question, or a value the question writes after `=` / "is".
fn leaks(question: &str, answer: &str, ty: AnswerType) -> bool {
    let q = normalize_text(question);
    let a = normalize_text(answer);
    if a.is_empty() {
        return false;
    }
    match ty {
        AnswerType::String => {
            a.chars().filter(|c| c.is_alphabetic()).count() >= 3 && contains_words(&q, &a)
        }
        AnswerType::Boolean => false,
        _ => {
            let squashed: String = question.chars().filter(|c| !c.is_whitespace()).collect();
            let ans: String = answer.chars().filter(|c| !c.is_whitespace()).collect();
            let tail_ok = |i: usize| {
                squashed[i + ans.len()..]
                    .chars()
                    .next()
                    .is_none_or(|c| !c.is_ascii_alphanumeric() && c != '.' && c != '^')
            };
            squashed
                .match_indices(&format!("={ans}"))
                .any(|(i, _)| tail_ok(i + 1))
                || q.contains(&format!(" answer is {a}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for t in AnswerType::ALL {
            assert_eq!(t.as_str().parse::<AnswerType>().unwrap(), t);
            assert_eq!(
                serde_json::to_value(t).unwrap(),
                Value::String(t.as_str().into())
            );
        }
        for k in [TaskKind::Mcq, TaskKind::FreeForm, TaskKind::Any] {
            assert_eq!(k.as_str().parse::<TaskKind>().unwrap(), k);
        }
        for r in InvalidReason::ALL {
            assert_eq!(
                serde_json::to_value(r).unwrap(),
                Value::String(r.as_str().into())
            );
        }
    }

    #[test]
    fn mcq_from_dict_options() {
        let p = parse_task(
            r#"{"question": "Which planet is known as the red planet?", "options": {"A": "Venus", "B": "Mars", "C": "Jupiter", "D": "Saturn"}, "answer": "(B)"}"#,
            TaskKind::Mcq,
            None,
        );
        let t = p.task.unwrap();
        assert_eq!(t.answer, "B");
        assert_eq!(t.options, vec!["Venus", "Mars", "Jupiter", "Saturn"]);
    }

    #[test]
    fn free_form_integer() {
        let p = parse_task(
            r#"{"question": "How many sides does a hexagon have?", "answer": 6, "answer_type": "integer"}"#,
            TaskKind::FreeForm,
            None,
        );
        let t = p.task.unwrap();
        assert_eq!(
            (t.answer.as_str(), t.answer_type),
            ("6", Some(AnswerType::Integer))
        );
    }
}
