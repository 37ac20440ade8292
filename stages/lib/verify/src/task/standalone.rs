//! Whether a question stands on its own: it must not point at a document the Reasoner never
//! sees, and must not state its own answer.

use crate::answer::text::normalize_text;
use crate::task::AnswerType;

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

pub(crate) fn refers_to_document(question: &str) -> Option<&'static str> {
    let q = normalize_text(question);
    let q = format!(" {q} ");
    // Phrases are normalised like the question (articles dropped) before matching.
    DOCUMENT_PHRASES.iter().copied().find(|p| q.contains(&format!(" {} ", normalize_text(p))))
}

/// Whether `needle` occurs in `hay` as whole words (both already normalised).
pub(crate) fn contains_words(hay: &str, needle: &str) -> bool {
    format!(" {hay} ").contains(&format!(" {needle} "))
}

/// The question states its own answer: a text answer of three or more letters quoted in the
/// question, or a value the question writes after `=` / "is".
pub(crate) fn leaks(question: &str, answer: &str, ty: AnswerType) -> bool {
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
            squashed.match_indices(&format!("={ans}")).any(|(i, _)| tail_ok(i + 1))
                || q.contains(&format!(" answer is {a}"))
        }
    }
}
