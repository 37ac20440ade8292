//! Challenger tasks: building and validating a task from a completion.
//!
//! A task is valid when it parses and is well formed (SPICE: "MCQ has a non-trivial stem,
//! four distinct non-empty options and one letter in A–D; free-form has a non-empty question
//! and an answer of the declared type that the verifier can parse"). Every invalid task
//! carries a machine-readable [`InvalidReason`] so the pipeline can count failure modes.

mod fields;
mod free;
mod mcq;
mod standalone;

use crate::json_extract::{find_objects, Found};
use fields::{build, has_task_fields, Fields};
use serde::{Deserialize, Serialize};
use serde_json::Value;
pub use spice_vocab::{AnswerType, TaskKind};
use std::fmt;
use thiserror::Error;

/// Longest question accepted.
pub const MAX_QUESTION_CHARS: usize = 4000;
/// Longest MCQ option accepted.
pub const MAX_OPTION_CHARS: usize = 1000;
/// Longest free-form answer accepted (answers are scalars, not essays).
pub const MAX_FREE_ANSWER_CHARS: usize = 300;
/// Fewest words a question must have to be more than a fragment.
pub const MIN_QUESTION_WORDS: usize = 3;

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
    /// The question is text of the prompt itself (its example or instructions), not one the
    /// Challenger wrote: small models copy the example of a compact prompt verbatim.
    CopiedFromPrompt,
}

impl InvalidReason {
    pub const ALL: [InvalidReason; 16] = [
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
        InvalidReason::CopiedFromPrompt,
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
            InvalidReason::CopiedFromPrompt => "copied_from_prompt",
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

pub(crate) fn invalid(reason: InvalidReason, detail: impl Into<String>) -> Invalid {
    Invalid { reason, detail: detail.into() }
}

/// The result of parsing a Challenger completion.
#[derive(Clone, Debug, PartialEq)]
pub struct ParsedTask {
    pub task: Result<Task, Invalid>,
    /// The JSON object the task was read from, with every field the model wrote (for audit).
    pub json: Option<Value>,
}

/// Whether a task's question is copied from the prompt it was written for: after
/// normalisation (case, punctuation, articles) the question occurs in the prompt text. Short
/// questions (under four words) never count, so common phrases do not trigger it.
pub fn copied_from_prompt(question: &str, prompt: &str) -> bool {
    let q = crate::answer::text::normalize_text(question);
    if q.split(' ').count() < 4 {
        return false;
    }
    crate::answer::text::normalize_text(prompt).contains(&q)
}

/// [`parse_task`], then [`copied_from_prompt`] against the prompt the completion answered.
pub fn parse_task_for_prompt(
    completion: &str,
    prompt: &str,
    expect: TaskKind,
    forced_type: Option<AnswerType>,
) -> ParsedTask {
    let mut parsed = parse_task(completion, expect, forced_type);
    if let Ok(t) = &parsed.task {
        if copied_from_prompt(&t.question, prompt) {
            parsed.task = Err(invalid(
                InvalidReason::CopiedFromPrompt,
                "the question appears verbatim in the prompt",
            ));
        }
    }
    parsed
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
                task: Err(invalid(InvalidReason::NoJson, "no JSON object in completion")),
                json: None,
            }
        }
        Found::Unparsable(e) => {
            return ParsedTask { task: Err(invalid(InvalidReason::InvalidJson, e)), json: None }
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
    ParsedTask { task, json: Some(json) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copied_example_is_invalid_and_a_new_question_is_not() {
        let prompt = "Answer only with JSON like this: {\"question\": \"Which gas do plants absorb from the air?\", \"answer\": \"CO2\"}";
        let copied = r#"{"question": "Which gas do plants absorb from the air?", "answer": "carbon dioxide", "answer_type": "string"}"#;
        let own = r#"{"question": "Which gas do animals exhale when they breathe?", "answer": "carbon dioxide", "answer_type": "string"}"#;
        let p = parse_task_for_prompt(copied, prompt, TaskKind::FreeForm, None);
        assert_eq!(p.task.unwrap_err().reason, InvalidReason::CopiedFromPrompt);
        assert!(
            parse_task(copied, TaskKind::FreeForm, None).task.is_ok(),
            "parse_task alone knows no prompt"
        );
        assert!(parse_task_for_prompt(own, prompt, TaskKind::FreeForm, None).task.is_ok());
        assert!(!copied_from_prompt("What is it?", "what is it?"), "short questions never count");
    }

    #[test]
    fn names_round_trip() {
        for &t in AnswerType::ALL {
            assert_eq!(t.as_str().parse::<AnswerType>().unwrap(), t);
            assert_eq!(serde_json::to_value(t).unwrap(), Value::String(t.as_str().into()));
        }
        for k in [TaskKind::Mcq, TaskKind::FreeForm, TaskKind::Any] {
            assert_eq!(k.as_str().parse::<TaskKind>().unwrap(), k);
        }
        for r in InvalidReason::ALL {
            assert_eq!(serde_json::to_value(r).unwrap(), Value::String(r.as_str().into()));
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
        assert_eq!((t.answer.as_str(), t.answer_type), ("6", Some(AnswerType::Integer)));
    }
}
