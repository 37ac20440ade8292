//! Mathematical equivalence of two answers.
//!
//! Both answers are cleaned, parsed into [`Node`] trees, brought to a canonical shape
//! (chains reduced, `x \in S` → `S`, `a < x < b` → an interval, `±` expanded), and compared
//! structurally; scalars are compared numerically at seeded sample points. When either side
//! does not parse, the answers are compared as normalised text, never as "probably equal":
//! a wrong "correct" rewards a wrong answer, so every doubt resolves to `false`.

use crate::answer::canon::canon;
use crate::answer::compare::{compare, reset_budget};
use crate::answer::eval::{collect_vars, eval};
use crate::answer::expr::{parse, Node};
use crate::answer::number::{normalize_number_spelling, plain_integer};
use crate::answer::text::{normalize_text, parse_bool};
use crate::bounds::{head, MAX_ANSWER_BYTES};
use crate::task::AnswerType;
use std::collections::BTreeSet;

/// Whether `pred` means the same as `gold`. `answer_type` narrows the comparison when the
/// task declared one (`None` infers it from the answers).
pub fn is_equivalent(gold: &str, pred: &str, answer_type: Option<AnswerType>) -> bool {
    if gold.len() > MAX_ANSWER_BYTES || pred.len() > MAX_ANSWER_BYTES {
        // Too long to parse within bounds: only exact agreement counts.
        return gold.len() <= MAX_ANSWER_BYTES * 4
            && gold.trim() == pred.trim()
            && !gold.trim().is_empty();
    }
    reset_budget();
    let g = clean(gold);
    let p = clean(pred);
    if g.is_empty() || p.is_empty() {
        return false;
    }
    match answer_type {
        Some(AnswerType::Boolean) => {
            return match (parse_bool(&g), parse_bool(&p)) {
                (Some(a), Some(b)) => a == b,
                _ => false,
            }
        }
        Some(AnswerType::String) => {
            if normalize_text(&g) == normalize_text(&p) && !normalize_text(&g).is_empty() {
                return true;
            }
            return match (parse(&g), parse(&p)) {
                (Ok(a), Ok(b)) if is_numeric(&a) && is_numeric(&b) => compare(&canon(a), &canon(b)),
                _ => false,
            };
        }
        _ => {}
    }
    if squash(&g) == squash(&p) {
        return true;
    }
    // `\text{E}` and `E`: the same once the wrapper is gone, when nothing else is LaTeX.
    let (pg, pp) = (unwrapped(&g), unwrapped(&p));
    if !pg.is_empty() && pg == pp && !pg.contains(['\\', '^', '_']) {
        return true;
    }
    if let (Some(a), Some(b)) = (plain_integer(&g), plain_integer(&p)) {
        return a == b;
    }
    if is_wordy(&g) && is_wordy(&p) && normalize_text(&g) == normalize_text(&p) {
        return true;
    }
    let (Ok(a), Ok(b)) = (parse(&g), parse(&p)) else {
        return false;
    };
    let (a, b) = (canon(a), canon(b));
    if answer_type == Some(AnswerType::Float) && rounds_to_gold(&g, &b) {
        return true;
    }
    if answer_type == Some(AnswerType::Integer) && !(is_numeric(&a) && is_numeric(&b)) {
        return false;
    }
    compare(&a, &b)
}

/// Cleans an answer string: math delimiters, a whole-answer `\boxed{}`, trailing
/// punctuation, doubled backslashes, escaped dollars, and whole-answer number spellings.
pub fn clean(s: &str) -> String {
    let mut t = head(s, MAX_ANSWER_BYTES).trim().to_string();
    // `\\frac` written by a JSON-escaping slip is `\frac`.
    if t.contains("\\\\") {
        let mut out = String::with_capacity(t.len());
        let b: Vec<char> = t.chars().collect();
        let mut i = 0;
        while i < b.len() {
            if b[i] == '\\'
                && b.get(i + 1) == Some(&'\\')
                && b.get(i + 2).is_some_and(|c| c.is_ascii_alphabetic())
            {
                i += 1;
                continue;
            }
            out.push(b[i]);
            i += 1;
        }
        t = out;
    }
    // Thousands separators first: `,\!` and `{,}` lose their meaning once `\!` is gone.
    t = t.replace(",\\!", "").replace("{,}", "").replace("{, }", "");
    t = t.replace("\\$", "").replace("\\!", "");
    for _ in 0..4 {
        let before = t.len();
        // Trailing punctuation, but not an ellipsis (`1, 2, 3, ...` is not `1, 2, 3`).
        if !t.trim_end().ends_with("...") {
            t = t.trim().trim_end_matches(['.', ',', ';']).trim().to_string();
        }
        for (open, close) in [("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")] {
            if t.len() >= open.len() + close.len() && t.starts_with(open) && t.ends_with(close) {
                t = t[open.len()..t.len() - close.len()].to_string();
            }
        }
        t = t.trim_matches('$').to_string();
        if let Some(inner) = crate::answer::extract::whole_boxed(&t) {
            t = inner.to_string();
        }
        if t.len() == before {
            break;
        }
    }
    normalize_number_spelling(&t)
}

/// Without text wrappers, braces and whitespace.
fn unwrapped(s: &str) -> String {
    crate::answer::text::strip_latex_wrappers(s)
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '{' && *c != '}')
        .collect()
}

fn squash(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace()).collect()
}

/// Whether the answer is words: a run of three or more letters (so `ab` and `AB` stay
/// case-sensitive mathematics), and no LaTeX beyond text wrappers (so `\begin{pmatrix}…` is
/// never compared as prose).
fn is_wordy(s: &str) -> bool {
    let plain = crate::answer::text::strip_latex_wrappers(s);
    if plain.contains(['\\', '&', '^', '_']) {
        return false;
    }
    let mut run = 0;
    let mut prev_backslash = false;
    let mut in_command = false;
    for c in s.chars() {
        if c.is_alphabetic() {
            if prev_backslash {
                in_command = true;
            }
            if !in_command {
                run += 1;
                if run >= 3 {
                    return true;
                }
            }
        } else {
            run = 0;
            in_command = false;
        }
        prev_backslash = c == '\\';
    }
    false
}

fn is_numeric(n: &Node) -> bool {
    let mut vars = BTreeSet::new();
    collect_vars(n, &mut vars);
    vars.is_empty() && eval(n, &[]).is_ok()
}

/// `float` answers: a prediction that rounds to the gold's written precision is correct
/// (gold `3.14`, prediction `\pi`).
fn rounds_to_gold(gold: &str, pred: &Node) -> bool {
    let g = gold.trim();
    let Some((_, frac)) = g.split_once('.') else {
        return false;
    };
    let decimals = frac.len();
    if decimals == 0 || decimals > 12 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let (Ok(gv), Ok(pv)) = (g.parse::<f64>(), eval(pred, &[])) else {
        return false;
    };
    if !pv.is_real() {
        return false;
    }
    let scale = 10f64.powi(decimals as i32);
    ((pv.re * scale).round() - (gv * scale).round()).abs() < 0.5
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hard_negatives() {
        assert!(!is_equivalent("1/2", "2", None));
        assert!(!is_equivalent("\\sqrt{2}", "2", None));
        assert!(!is_equivalent("x+1", "x-1", None));
        assert!(!is_equivalent("(1,2)", "[1,2]", None));
        assert!(!is_equivalent("1000000", "1000001", None));
    }

    #[test]
    fn basic_positives() {
        assert!(is_equivalent("\\frac{1}{2}", "0.5", None));
        assert!(is_equivalent("2x^2+3x-5", "2*x^2 + 3*x - 5", None));
        assert!(is_equivalent("x = 5", "5", None));
        assert!(is_equivalent("[0,1)", "[0, 1)", None));
        assert!(is_equivalent("\\{1, 2\\}", "\\{2, 1\\}", None));
    }
}
