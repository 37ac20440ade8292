//! Free-form tasks: a question and a scalar answer of a declared (or inferred) type that the
//! verifier can read.

use crate::answer::equiv::clean;
use crate::answer::eval::{collect_vars, eval};
use crate::answer::expr::{parse, Node};
use crate::answer::text::{normalize_text, parse_bool};
use crate::bounds::MAX_ANSWER_BYTES;
use crate::task::fields::{scalar_text, Fields, ANSWER_KEYS, TYPE_KEYS};
use crate::task::standalone::leaks;
use crate::task::{
    invalid, AnswerType, Invalid, InvalidReason, Task, TaskKind, MAX_FREE_ANSWER_CHARS,
    MIN_QUESTION_WORDS,
};
use serde_json::Value;
use std::collections::BTreeSet;

/// A free-form task from its fields, or the first rule it breaks. `has_options` catches an
/// MCQ written where a free-form task was asked for.
pub(crate) fn build_free(
    f: &Fields<'_>,
    question: String,
    has_options: bool,
    forced: Option<AnswerType>,
) -> Result<Task, Invalid> {
    let raw = f.get(ANSWER_KEYS).ok_or_else(|| invalid(InvalidReason::MissingField, "answer"))?;
    let answer = match raw {
        Value::Array(items) => {
            let parts: Option<Vec<String>> = items.iter().map(scalar_text).collect();
            parts
                .ok_or_else(|| {
                    invalid(InvalidReason::UnparseableAnswer, "list answer holds non-scalars")
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
        && answer.trim_matches(['(', ')', '.']).chars().all(|c| ('A'..='D').contains(&c))
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
            invalid(InvalidReason::UnknownAnswerType, format!("answer type {t:?}"))
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
        return if int && !answer.contains('.') { AnswerType::Integer } else { AnswerType::Float };
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
        Err(invalid(InvalidReason::AnswerTypeMismatch, format!("{answer:?} is not {what}")))
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
                Err(invalid(InvalidReason::UnparseableAnswer, "answer has no words"))
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
