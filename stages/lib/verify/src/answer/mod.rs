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
pub mod reasoning;
pub mod text;

use serde::{Deserialize, Serialize};
use spice_vocab::{AnswerType, TaskKind};
use std::borrow::Cow;

use crate::bounds;

use equiv::is_equivalent;
use mcq::{extract_choice, extract_choice_with_options};
use reasoning::strip_reasoning;

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
/// `free_form`, and for `any` the free-form answer. Reasoning blocks (`<think>…</think>`)
/// are never read.
pub fn extract_answer(completion: &str, kind: TaskKind) -> Option<String> {
    match kind {
        TaskKind::Mcq => extract_choice(completion, MCQ_MAX_LETTER).map(String::from),
        TaskKind::FreeForm | TaskKind::Any => extract::extract_free_form(completion),
    }
}

/// The gold answer as it is compared. Reasoning blocks (`<think>…</think>`) are removed.
///
/// A bare answer (`42`, `\frac12`, `Paris`, `$x^2$`) is taken as it is. A gold that is more
/// than one answer is read the way a prediction is ([`extract::extract_free_form`]), and kept
/// whole when nothing can be read from it:
///
/// - a gold with a `\boxed{}` (or `\fbox{}`) is read for its box, whatever its type;
/// - a gold with `$…$`/`\(…\)`/`\[…\]` mathematics or an "answer is"/"answer:" phrase is
///   read as a solution when it is not itself one answer: with a mathematical
///   `answer_type` (integer, float, expression, list) when it does not parse, without a type
///   when it does not read as one answer (prose around it). A `string` or `boolean` gold is
///   text and is only unboxed.
///
/// A free-form task's gold written by the Challenger parses as its declared type (that is
/// what makes the task valid), so it is taken as it is (only a box is removed).
pub fn read_gold(gold: &str, answer_type: Option<AnswerType>) -> Cow<'_, str> {
    let stripped = strip_reasoning(gold);
    let t = stripped.trim();
    let boxed = t.contains("\\boxed") || t.contains("\\fbox");
    let solution = boxed
        || match answer_type {
            Some(AnswerType::String | AnswerType::Boolean) => false,
            Some(_) => marked(t) && !(t.len() <= bounds::MAX_ANSWER_BYTES && parses_as_is(t)),
            None => marked(t) && !(t.len() <= bounds::MAX_ANSWER_BYTES && extract::parses(t)),
        };
    match (solution.then(|| extract::extract_free_form(t)).flatten(), stripped) {
        (Some(e), _) => Cow::Owned(e),
        (None, Cow::Borrowed(b)) => Cow::Borrowed(b.trim()),
        (None, Cow::Owned(o)) => Cow::Owned(o.trim().to_string()),
    }
}

/// Whether `t` has the marks of a written solution: mathematics between delimiters or an
/// "answer is" phrase.
fn marked(t: &str) -> bool {
    // Like a completion, only the end of a long gold is read.
    let t = bounds::tail(t, bounds::MAX_COMPLETION_BYTES);
    extract::has_math(t) || {
        let lower = t.to_ascii_lowercase();
        lower.contains("answer is") || lower.contains("answer:")
    }
}

/// Whether `t` parses as mathematics once cleaned, the test a Challenger's typed answer
/// passes to be valid.
fn parses_as_is(t: &str) -> bool {
    expr::parse(&equiv::clean(t)).is_ok()
}

/// Extracts the answer from `completion` and compares it with `gold`.
///
/// For `mcq` the gold is a letter (`B`, `(B)`, …) and the letters must match. For `any`, a
/// gold that is a single letter A–D is treated as multiple choice. Any other gold is read by
/// [`read_gold`].
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
    check_with_options(gold, completion, kind, answer_type, max_letter, &[] as &[&str])
}

/// [`check_with_letters`] when the option texts of a multiple-choice question are known
/// (`options[0]` is option A): an answer that is exactly the text of one option, and of no
/// other, names that option, the letters run from A to the last option, and a gold answer
/// may be an option's text. An empty `options` is [`check_with_letters`].
pub fn check_with_options<S: AsRef<str>>(
    gold: &str,
    completion: &str,
    kind: TaskKind,
    answer_type: Option<AnswerType>,
    max_letter: char,
    options: &[S],
) -> Check {
    let gold_text = strip_reasoning(gold);
    let g = gold_text.trim();
    let single = g.chars().filter(|c| c.is_alphanumeric()).count() == 1;
    // A multiple-choice gold is read like an answer (`B`, `(B)`, `\\boxed{B}`, an option's
    // text); for `any`, only a gold that is one letter makes the question multiple choice.
    let gold_letter = (single || kind == TaskKind::Mcq)
        .then(|| extract_choice_with_options(g, max_letter, options))
        .flatten();
    let mcq = match kind {
        TaskKind::Mcq => true,
        TaskKind::Any => gold_letter.is_some(),
        TaskKind::FreeForm => false,
    };
    if mcq {
        let extracted = extract_choice_with_options(completion, max_letter, options);
        let equivalent = matches!((gold_letter, extracted), (Some(g), Some(e)) if g == e);
        return Check { equivalent, extracted: extracted.map(String::from) };
    }
    let extracted = extract::extract_free_form(completion);
    let gold = read_gold(g, answer_type);
    let equivalent = extracted.as_deref().is_some_and(|e| is_equivalent(&gold, e, answer_type));
    Check { equivalent, extracted }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_golds_are_taken_as_they_are() {
        for (g, ty) in [
            ("42", None),
            ("B", None),
            ("\\frac12", None),
            ("$\\frac{1}{2}$", None),
            ("Paris", Some(AnswerType::String)),
            ("There are 3 kingdoms", Some(AnswerType::String)),
            ("the answer is $5$ per day", Some(AnswerType::String)),
            ("Apollo 11", None),
            ("[0, 1)", Some(AnswerType::List)),
            ("x^2+1", Some(AnswerType::Expression)),
            ("true", Some(AnswerType::Boolean)),
            ("1,000", Some(AnswerType::Integer)),
        ] {
            assert_eq!(read_gold(g, ty), g, "{g}");
        }
    }

    #[test]
    fn solution_golds_are_read_like_predictions() {
        for (g, want) in [
            ("We add $3+4=7$, so the answer is $\\boxed{7}$.", "7"),
            ("\\boxed{3} cats and \\boxed{4} dogs", "3, 4"),
            ("Hence: \\[ \\boxed{2,\\! 450} \\]", "2450"),
            ("<think>maybe 6</think> 5", "5"),
            ("Final answer: $x = 2$, checked twice.", "x = 2"),
        ] {
            assert_eq!(read_gold(g, None), want, "{g}");
        }
    }
}
