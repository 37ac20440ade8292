//! Multiple-choice letter extraction.
//!
//! Models write their choice as `B`, `(B)`, `B)`, `B.`, `**B**`, `\boxed{B}`,
//! `\boxed{\text{(B)}}`, "option B", "the correct answer is (B)", or `B. 12`. The letter
//! range is a parameter: SPICE's own tasks use A–D, evaluation benchmarks such as MMLU-Pro
//! use A–J.

use crate::answer::text::strip_latex_wrappers;
use crate::bounds::{tail, MAX_COMPLETION_BYTES};

/// The chosen letter in `completion`, among `A..=max_letter` (uppercase).
pub fn extract_choice(completion: &str, max_letter: char) -> Option<char> {
    let max = max_letter.to_ascii_uppercase();
    if !max.is_ascii_uppercase() {
        return None;
    }
    let s = tail(completion, MAX_COMPLETION_BYTES);
    let in_range = |c: char| c.is_ascii_uppercase() && c <= max;

    // 1. The last box.
    if let Some(idx) = s.rfind("\\boxed").or_else(|| s.rfind("\\fbox")) {
        let after = &s[idx..];
        if let Some(open) = after.find('{') {
            let body: String = after[open + 1..].chars().take(60).collect();
            let body = strip_latex_wrappers(&body);
            if let Some(c) = letter_at_start(&body, in_range) {
                return Some(c);
            }
        }
    }
    // 2. "answer is (B)", "answer: B", "correct option is B", "choose B".
    let lower = s.to_ascii_lowercase();
    for key in [
        "answer is",
        "answer:",
        "answer :",
        "option is",
        "choice is",
        "answer would be",
        "answer",
        "option",
        "choice",
        "choose",
    ] {
        if let Some(idx) = lower.rfind(key) {
            let after = &s[idx + key.len()..];
            let window: String = after.chars().take(40).collect();
            let window = strip_latex_wrappers(&window);
            if let Some(c) = first_standalone(&window, in_range) {
                return Some(c);
            }
        }
    }
    // 3. The completion starts with the letter: `B`, `(B)`, `B)`, `B. 12`, `B: …`.
    let stripped = strip_latex_wrappers(s);
    if let Some(c) = letter_at_start(&stripped, in_range) {
        return Some(c);
    }
    // 4. The last standalone capital letter in range that is not an article or pronoun.
    last_standalone(&stripped, in_range)
}

/// `B`, `(B)`, `B)`, `B.`, `B:` or `**B**` at the start of `s` (after spaces and markup).
fn letter_at_start(s: &str, in_range: impl Fn(char) -> bool) -> Option<char> {
    let t = s.trim_start_matches(|c: char| {
        c.is_whitespace() || matches!(c, '(' | '[' | '{' | '*' | '$' | '"' | '\'')
    });
    let mut chars = t.chars();
    let c = chars.next()?;
    let next = chars.next();
    if in_range(c) && next.is_none_or(|n| !n.is_alphanumeric()) {
        // `A valid point…` is prose, not a choice.
        if c == 'A' && next == Some(' ') && chars.next().is_some_and(|n| n.is_lowercase()) {
            return None;
        }
        return Some(c);
    }
    None
}

fn standalone_letters(s: &str) -> Vec<(usize, char)> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    for i in 0..chars.len() {
        let c = chars[i];
        let before_ok = i == 0 || !chars[i - 1].is_alphanumeric() && chars[i - 1] != '\\';
        let after_ok = chars.get(i + 1).is_none_or(|n| !n.is_alphanumeric());
        if c.is_ascii_uppercase() && before_ok && after_ok {
            // Articles and pronouns: `A cat`, `I think`.
            let prose = chars.get(i + 1) == Some(&' ')
                && chars.get(i + 2).is_some_and(|n| n.is_lowercase());
            if !(prose && (c == 'A' || c == 'I')) {
                out.push((i, c));
            }
        }
    }
    out
}

fn first_standalone(s: &str, in_range: impl Fn(char) -> bool) -> Option<char> {
    standalone_letters(s).into_iter().map(|(_, c)| c).find(|c| in_range(*c))
}

fn last_standalone(s: &str, in_range: impl Fn(char) -> bool) -> Option<char> {
    standalone_letters(s).into_iter().rev().map(|(_, c)| c).find(|c| in_range(*c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_written_forms() {
        for (s, want) in [
            ("B", 'B'),
            ("(B)", 'B'),
            ("B)", 'B'),
            ("\\boxed{B}", 'B'),
            ("\\boxed{\\text{(B)}}", 'B'),
            ("B. 12", 'B'),
            ("I pick option B", 'B'),
            ("so the correct answer is (C).", 'C'),
            ("**Answer: D**", 'D'),
        ] {
            assert_eq!(extract_choice(s, 'D'), Some(want), "{s}");
        }
    }

    #[test]
    fn range_is_respected() {
        assert_eq!(extract_choice("The answer is (H)", 'D'), None);
        assert_eq!(extract_choice("The answer is (H)", 'J'), Some('H'));
    }

    #[test]
    fn no_letter_no_answer() {
        assert_eq!(extract_choice("No valid answer here", 'D'), None);
    }
}
