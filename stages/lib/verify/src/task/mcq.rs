//! Multiple-choice tasks: four distinct non-empty options and one correct letter A–D.

use crate::answer::text::normalize_text;
use crate::task::fields::{norm_key, scalar_text, Fields, LETTER_KEYS};
use crate::task::standalone::contains_words;
use crate::task::{
    invalid, Invalid, InvalidReason, Task, TaskKind, MAX_OPTION_CHARS, MIN_QUESTION_WORDS,
};
use serde_json::Value;

/// An MCQ task from its fields, or the first rule it breaks.
pub(crate) fn build_mcq(
    f: &Fields<'_>,
    question: String,
    options: Option<Value>,
) -> Result<Task, Invalid> {
    let options = options.ok_or_else(|| invalid(InvalidReason::MissingField, "options"))?;
    let options = read_options(&options)?;
    if options.len() != 4 {
        return Err(invalid(InvalidReason::WrongOptionCount, format!("{} options", options.len())));
    }
    if let Some(i) = options.iter().position(|o| o.trim().is_empty()) {
        return Err(invalid(InvalidReason::EmptyOption, format!("option {} is empty", letter(i))));
    }
    if let Some(o) = options.iter().find(|o| o.chars().count() > MAX_OPTION_CHARS) {
        return Err(invalid(
            InvalidReason::TooLong,
            format!("an option has {} characters", o.chars().count()),
        ));
    }
    let normed: Vec<String> = options.iter().map(|o| normalize_text(o)).collect();
    for i in 0..4 {
        for j in i + 1..4 {
            if normed[i] == normed[j]
                || crate::answer::equiv::is_equivalent(&options[i], &options[j], None)
            {
                return Err(invalid(
                    InvalidReason::DuplicateOptions,
                    format!("options {} and {} are the same", letter(i), letter(j)),
                ));
            }
        }
    }
    if question.split_whitespace().count() < MIN_QUESTION_WORDS {
        return Err(invalid(InvalidReason::TrivialStem, format!("stem {question:?} is too short")));
    }
    let raw =
        f.get(LETTER_KEYS).ok_or_else(|| invalid(InvalidReason::MissingField, "correct answer"))?;
    let raw =
        scalar_text(raw).ok_or_else(|| invalid(InvalidReason::BadLetter, "answer is not text"))?;
    let idx = answer_letter(&raw, &options).ok_or_else(|| {
        invalid(InvalidReason::BadLetter, format!("cannot read a letter A-D from {raw:?}"))
    })?;
    // The stem gives the answer away when it quotes the correct option and no other.
    let stem = normalize_text(&question);
    let quoted: Vec<usize> =
        (0..4).filter(|&i| normed[i].len() >= 4 && contains_words(&stem, &normed[i])).collect();
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

/// The option letter for index `i` (0 → `A`).
pub(crate) fn letter(i: usize) -> char {
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
                        matches!(norm_key(k).as_str(), "text" | "option" | "content" | "value")
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
                        k.trim().trim_matches(|c: char| !c.is_alphanumeric()).to_ascii_uppercase(),
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
        _ => return Err(invalid(InvalidReason::MissingField, "options are not a list")),
    };
    // Strip `A) ` / `(A) ` / `A. ` / `A: ` prefixes when every option carries its own letter.
    let prefixed = out.iter().enumerate().all(|(i, o)| strip_letter_prefix(o, letter(i)).is_some());
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
        let hit = pats.iter().filter_map(|p| s[from..].find(p.as_str()).map(|i| from + i)).min();
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
    cuts.windows(2).map(|w| s[w[0]..w[1]].trim().to_string()).collect()
}

fn strip_letter_prefix(o: &str, l: char) -> Option<&str> {
    let t = o.trim_start();
    let t = t.strip_prefix('(').unwrap_or(t);
    let rest = t.strip_prefix(l).or_else(|| t.strip_prefix(l.to_ascii_lowercase()))?;
    let rest = rest.strip_prefix([')', '.', ':', ']']).or_else(|| rest.strip_prefix(" -"))?;
    Some(rest.trim())
}

/// The index of the correct option from `B`, `(B)`, `B)`, `B. text`, `Option B`, or the
/// full text of an option.
fn answer_letter(raw: &str, options: &[String]) -> Option<usize> {
    let t = raw.trim();
    let lower = t.to_ascii_lowercase();
    let t = ["option", "choice", "answer"]
        .iter()
        .find_map(|p| lower.starts_with(p).then(|| t[p.len()..].trim_start_matches([' ', ':'])))
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
    options.iter().position(|o| !n.is_empty() && normalize_text(o) == n)
}
