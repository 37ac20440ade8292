//! Reading the final answer of a Reasoner completion and deciding whether it is equivalent to
//! the gold answer: extraction ([`extract`], [`mcq`]), then numeric, symbolic or textual
//! comparison ([`equiv`]).

pub(crate) mod canon;
pub(crate) mod compare;
pub(crate) mod complex;
pub mod equiv;
pub(crate) mod eval;
pub(crate) mod expr;
pub mod extract;
pub(crate) mod latex;
pub mod mcq;
pub(crate) mod number;
pub mod text;

use serde::{Deserialize, Serialize};
use spice_vocab::{AnswerType, TaskKind};

use equiv::is_equivalent;
use mcq::extract_choice;

/// Letters of SPICE's own multiple-choice tasks: A–D.
pub const MCQ_MAX_LETTER: char = 'D';

/// The outcome of checking one completion against a gold answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    pub equivalent: bool,
    /// The answer read from the completion, if any.
    pub extracted: Option<String>,
}

/// The final answer in a Reasoner completion: a letter A–D for `mcq`, the answer text for
/// `free_form`, and for `any` the free-form answer.
pub fn extract_answer(completion: &str, kind: TaskKind) -> Option<String> {
    match kind {
        TaskKind::Mcq => extract_choice(completion, MCQ_MAX_LETTER).map(String::from),
        TaskKind::FreeForm | TaskKind::Any => extract::extract_free_form(completion),
    }
}

/// Extracts the answer from `completion` and compares it with `gold`.
///
/// For `mcq` the gold is a letter (`B`, `(B)`, …) and the letters must match. For `any`, a
/// gold that is a single letter A–D is treated as multiple choice.
pub fn check(
    gold: &str,
    completion: &str,
    kind: TaskKind,
    answer_type: Option<AnswerType>,
) -> Check {
    check_with_letters(gold, completion, kind, answer_type, MCQ_MAX_LETTER)
}

/// [`check`] with a wider letter range for evaluation benchmarks (MMLU-Pro uses A–J).
pub fn check_with_letters(
    gold: &str,
    completion: &str,
    kind: TaskKind,
    answer_type: Option<AnswerType>,
    max_letter: char,
) -> Check {
    let gold_letter = extract_choice(gold.trim(), max_letter)
        .filter(|_| gold.trim().chars().filter(|c| c.is_alphanumeric()).count() == 1);
    let mcq = match kind {
        TaskKind::Mcq => true,
        TaskKind::Any => gold_letter.is_some(),
        TaskKind::FreeForm => false,
    };
    if mcq {
        let extracted = extract_choice(completion, max_letter);
        let equivalent = matches!((gold_letter, extracted), (Some(g), Some(e)) if g == e);
        return Check { equivalent, extracted: extracted.map(String::from) };
    }
    let extracted = extract::extract_free_form(completion);
    let equivalent = extracted.as_deref().is_some_and(|e| is_equivalent(gold, e, answer_type));
    Check { equivalent, extracted }
}
