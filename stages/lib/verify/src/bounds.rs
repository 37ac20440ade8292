//! Hard limits that keep every check bounded in time and memory.
//!
//! A verifier that hangs on one pathological answer stalls a whole training run, so every
//! stage of the pipeline truncates or rejects input that exceeds these caps instead of
//! trying harder. The numbers are generous for real answers and small enough that the worst
//! case stays in the low milliseconds.

/// Completions longer than this are scanned only over their last `MAX_COMPLETION_BYTES`
/// (the final answer sits at the end).
pub const MAX_COMPLETION_BYTES: usize = 64 * 1024;
/// An extracted answer (or a gold answer) longer than this is not parsed as mathematics.
pub const MAX_ANSWER_BYTES: usize = 4 * 1024;
/// Most tokens an answer may have before the expression parser gives up.
pub const MAX_TOKENS: usize = 1024;
/// Deepest nesting the recursive-descent parser follows.
pub const MAX_DEPTH: usize = 48;
/// Most nodes in one expression tree.
pub const MAX_NODES: usize = 1024;
/// Largest argument to `n!` that is evaluated (171! overflows f64 anyway).
pub const MAX_FACTORIAL: f64 = 170.0;
/// Most alternatives a `±` expansion may produce.
pub const MAX_PM_EXPANSION: usize = 8;
/// Most elements compared in a set, list, tuple or matrix.
pub const MAX_ELEMENTS: usize = 64;
/// Points at which symbolic expressions are compared.
pub const EVAL_POINTS: usize = 6;

/// The last `max` bytes of `s`, cut at a character boundary.
pub fn tail(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut start = s.len() - max;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

/// The first `max` bytes of `s`, cut at a character boundary.
pub fn head(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_at_char_boundaries() {
        let s = "ééé";
        assert_eq!(tail(s, 3), "é");
        assert_eq!(head(s, 3), "é");
        assert_eq!(head(s, 100), s);
    }
}
