//! Answer extraction from a Reasoner completion (free-form answers).
//!
//! A completion is free text with the answer somewhere near the end. Candidates are tried in
//! order of how explicitly they mark the answer: a "final answer" statement, the last
//! `\boxed{}` (joined with boxes right before it, for multi-part answers), an "answer is"
//! phrase, the whole text when it is already just an answer, then the last mathematics or
//! number in the text. The first candidate that parses as an answer wins, so
//! `Final answer is $\sum_k k$. 42` still yields `42` when the sum cannot be read.
//! Reasoning blocks (`<think>…</think>`) are removed before anything is read
//! ([`crate::answer::reasoning`]).

use crate::answer::equiv::clean;
use crate::answer::expr::parse;
use crate::answer::reasoning::strip_reasoning;
use crate::bounds::{tail, MAX_ANSWER_BYTES, MAX_COMPLETION_BYTES, MAX_ELEMENTS};

/// Most candidates parsed per completion.
const MAX_CANDIDATES: usize = 48;

/// A `\boxed{…}`/`\fbox{…}` occurrence: byte range in the text and its content.
#[derive(Debug, Clone)]
struct Span {
    start: usize,
    end: usize,
    content: String,
}

/// The content of `s` when the whole of it is one `\boxed{…}` (or `\fbox{…}`).
pub fn whole_boxed(s: &str) -> Option<&str> {
    let t = s.trim();
    for cmd in ["\\boxed", "\\fbox"] {
        if let Some(rest) = t.strip_prefix(cmd) {
            let rest = rest.trim_start();
            if !rest.starts_with('{') {
                return None;
            }
            let close = matching_brace(rest, 0)?;
            if close == rest.len() - 1 {
                return Some(&rest[1..close]);
            }
        }
    }
    None
}

/// Index of the `}` matching the `{` at byte `open` (escaped braces `\{` `\}` skipped).
fn matching_brace(s: &str, open: usize) -> Option<usize> {
    let b = s.as_bytes();
    let mut depth = 0usize;
    let mut i = open;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 1,
            b'{' => depth += 1,
            b'}' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

fn find_boxes(s: &str) -> Vec<Span> {
    let mut out = Vec::new();
    let mut from = 0;
    // Next occurrence of each command at or after `from` (searched again only once passed),
    // so a text with many boxes is not rescanned for an absent `\fbox` at every box.
    let cmds = ["\\boxed", "\\fbox"];
    let mut next: [Option<usize>; 2] = [None; 2];
    let mut searched = [false; 2];
    while from < s.len() {
        for k in 0..2 {
            if !searched[k] || next[k].is_some_and(|i| i < from) {
                next[k] = s[from..].find(cmds[k]).map(|i| from + i);
                searched[k] = true;
            }
        }
        let hit =
            (0..2).filter_map(|k| next[k].map(|i| (i, cmds[k].len()))).min_by_key(|(i, _)| *i);
        let Some((start, len)) = hit else { break };
        let mut j = start + len;
        while j < s.len() && s.as_bytes()[j] == b' ' {
            j += 1;
        }
        if s.as_bytes().get(j) == Some(&b'{') {
            match matching_brace(s, j) {
                Some(close) => {
                    out.push(Span { start, end: close + 1, content: s[j + 1..close].to_string() });
                    from = close + 1;
                }
                None => {
                    // Unclosed box: everything after it, which is what the writer meant.
                    let content = s[j + 1..].trim_end_matches(['$', '.', ' ', '\n']).to_string();
                    out.push(Span { start, end: s.len(), content });
                    break;
                }
            }
        } else {
            from = j.max(start + 1);
        }
    }
    out
}

/// The contents of the last box and of the boxes just before it when only a few characters
/// separate them, in order (at most 64); repeated boxes count once. Empty when there is no box.
pub(crate) fn last_box_group(s: &str) -> Vec<String> {
    let boxes = find_boxes(s);
    let Some(last) = boxes.last() else { return Vec::new() };
    let mut parts = vec![last.content.clone()];
    let mut start = last.start;
    for b in boxes.iter().rev().skip(1) {
        let gap = &s[b.end..start];
        if parts.len() >= MAX_ELEMENTS
            || gap.len() > 30
            || gap.contains("\n\n")
            || gap.contains(';')
            || gap.contains(". ")
        {
            break;
        }
        if !parts.contains(&b.content) {
            parts.push(b.content.clone());
        }
        start = b.start;
    }
    parts.reverse();
    parts
}

/// The last box, joined with the boxes just before it (`\boxed{1} and \boxed{2}` is the
/// answer `1, 2`).
fn last_boxed(s: &str) -> Option<String> {
    let parts = last_box_group(s);
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// Whether `s` holds mathematics between delimiters (`$…$`, `\(…\)`, `\[…\]`).
pub(crate) fn has_math(s: &str) -> bool {
    !math_segments(s).is_empty()
}

/// Inline and display mathematics: `$…$`, `$$…$$`, `\(…\)`, `\[…\]`.
fn math_segments(s: &str) -> Vec<Span> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    // Closers known to be absent from here on: an unclosed `\(` is not searched again for
    // every later `\(`, which would make long completions quadratic.
    let mut absent: Vec<&str> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let (open_len, close): (usize, &str) = match b[i] {
            b'\\' if b.get(i + 1) == Some(&b'$') => {
                i += 2;
                continue;
            }
            b'\\' if b.get(i + 1) == Some(&b'(') => (2, "\\)"),
            b'\\' if b.get(i + 1) == Some(&b'[') => (2, "\\]"),
            b'$' if b.get(i + 1) == Some(&b'$') => (2, "$$"),
            b'$' => (1, "$"),
            _ => {
                i += 1;
                continue;
            }
        };
        let body_start = i + open_len;
        if absent.contains(&close) {
            i = body_start;
            continue;
        }
        let mut j = body_start;
        let mut found = None;
        while j < b.len() {
            if b[j] == b'\\' && b.get(j + 1) == Some(&b'$') {
                j += 2;
                continue;
            }
            if b[j..].starts_with(close.as_bytes()) {
                found = Some(j);
                break;
            }
            j += 1;
        }
        match found {
            Some(end) => {
                let content = s[body_start..end].to_string();
                if !content.trim().is_empty() {
                    out.push(Span { start: i, end: end + close.len(), content });
                }
                i = end + close.len();
            }
            None => {
                absent.push(close);
                i = body_start;
            }
        }
    }
    out
}

/// Whether `gap` between two math segments only joins them (`, `, ` and `, ` or `).
fn is_connective(gap: &str) -> bool {
    gap.split(|c: char| c.is_whitespace() || c == ',' || c == ';')
        .all(|w| w.is_empty() || matches!(w.to_ascii_lowercase().as_str(), "and" | "or" | "&"))
}

/// Bare numbers outside mathematics: `12`, `-3.5`, `1,000.99`, `2/3`, `4 4/9`, `28%`.
fn bare_numbers(s: &str, skip: &[Span]) -> Vec<Span> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    // `skip` is sorted by start and non-overlapping: walk it alongside.
    let mut next_skip = 0;
    let mut i = 0;
    while i < b.len() {
        while next_skip < skip.len() && skip[next_skip].end <= i {
            next_skip += 1;
        }
        if let Some(sp) = skip.get(next_skip).filter(|sp| sp.start <= i) {
            i = sp.end;
            continue;
        }
        let starts_digit = b[i].is_ascii_digit()
            || (b[i] == b'.' && b.get(i + 1).is_some_and(|c| c.is_ascii_digit()));
        let prev_ok = i == 0
            || !(b[i - 1].is_ascii_alphanumeric()
                || matches!(b[i - 1], b'_' | b'^' | b'.' | b'\\'));
        if !(starts_digit && prev_ok) {
            i += 1;
            continue;
        }
        let neg = i > 0 && b[i - 1] == b'-' && (i < 2 || !b[i - 2].is_ascii_alphanumeric());
        let start = if neg { i - 1 } else { i };
        let mut j = i;
        let digits = |j: &mut usize| {
            while *j < b.len() && b[*j].is_ascii_digit() {
                *j += 1;
            }
        };
        digits(&mut j);
        // Thousands groups.
        while j + 3 < b.len()
            && b[j] == b','
            && b[j + 1..j + 4].iter().all(u8::is_ascii_digit)
            && !b.get(j + 4).is_some_and(u8::is_ascii_digit)
        {
            j += 4;
        }
        if j < b.len() && b[j] == b'.' && b.get(j + 1).is_some_and(u8::is_ascii_digit) {
            j += 1;
            digits(&mut j);
        }
        if j < b.len() && b[j] == b'/' && b.get(j + 1).is_some_and(u8::is_ascii_digit) {
            j += 1;
            digits(&mut j);
        } else if j + 1 < b.len() && b[j] == b' ' && b[j + 1].is_ascii_digit() {
            // A mixed number `4 4/9`.
            let mut k = j + 1;
            digits(&mut k);
            if k + 1 < b.len() && b[k] == b'/' && b[k + 1].is_ascii_digit() {
                k += 1;
                digits(&mut k);
                j = k;
            }
        }
        // Glued into a word (`AZYUK2A`): not a number.
        let glued = b.get(j).is_some_and(|c| c.is_ascii_alphabetic())
            && i > 0
            && b[i - 1].is_ascii_alphabetic();
        if j < b.len() && b[j] == b'%' {
            j += 1;
        } else if b[j..]
            .trim_ascii_start()
            .get(..7)
            .is_some_and(|w| w.eq_ignore_ascii_case(b"percent"))
        {
            let k = j + (s[j..].len() - s[j..].trim_start().len());
            out.push(Span { start, end: k + 7, content: format!("{}%", &s[start..j]) });
            i = k + 7;
            continue;
        }
        if !glued {
            out.push(Span { start, end: j, content: s[start..j].to_string() });
        }
        i = j.max(i + 1);
    }
    out
}

/// Text after the last case-insensitive occurrence of `key`, up to the end of its sentence.
fn phrase_after(s: &str, key: &str) -> Option<String> {
    let lower = s.to_ascii_lowercase();
    let idx = lower.rfind(key)?;
    let mut rest = &s[idx + key.len()..];
    loop {
        let t = rest
            .trim_start_matches(|c: char| c.is_whitespace() || matches!(c, '*' | ':' | '-' | '='));
        let tl = t.to_ascii_lowercase();
        let mut stripped = false;
        for w in ["is", "was", "would be", "will be", "should be"] {
            if tl.starts_with(w) && !tl[w.len()..].starts_with(|c: char| c.is_ascii_alphanumeric())
            {
                rest = &t[w.len()..];
                stripped = true;
                break;
            }
        }
        if !stripped {
            rest = t;
            break;
        }
    }
    Some(cut_sentence(rest).to_string())
}

/// The first sentence of `s`: up to `. ` outside mathematics, a blank line, "I hope", or a
/// chat-template marker.
fn cut_sentence(s: &str) -> &str {
    let mut end = s.len();
    for stop in ["I hope", "<|", "\n\n"] {
        if let Some(i) = s.find(stop) {
            end = end.min(i);
        }
    }
    let b = s.as_bytes();
    let mut in_math = false;
    let mut i = 0;
    while i < end {
        match b[i] {
            b'\\' => i += 1,
            b'$' => in_math = !in_math,
            b'.' | b'\n' if !in_math => {
                let next = b.get(i + 1).copied();
                if b[i] == b'\n' || next.is_none() || next.is_some_and(|c| c == b' ' || c == b'\n')
                {
                    end = i;
                    break;
                }
            }
            _ => {}
        }
        i += 1;
    }
    let mut end = end.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].trim()
}

/// Words (runs of two or more letters, not LaTeX commands or environment names) other than
/// units and connectives.
fn word_count(s: &str) -> usize {
    let s = s.replace("\\begin{", "\\begin\\").replace("\\end{", "\\end\\");
    let mut count = 0;
    let mut word = String::new();
    let mut after_backslash = false;
    let flush = |word: &mut String, count: &mut usize, cmd: bool| {
        let w = word.to_ascii_lowercase();
        if w.len() >= 2
            && !cmd
            && !matches!(w.as_str(), "and" | "or" | "percent" | "pct" | "pi" | "sqrt" | "in")
        {
            *count += 1;
        }
        word.clear();
    };
    let mut cmd = false;
    for c in s.chars() {
        if c.is_alphabetic() {
            if word.is_empty() {
                cmd = after_backslash;
            }
            word.push(c);
        } else {
            flush(&mut word, &mut count, cmd);
        }
        after_backslash = c == '\\';
    }
    flush(&mut word, &mut count, cmd);
    count
}

/// Candidates from a phrase that marks the answer ("the final answer is …").
fn phrase_candidates(seg: &str, out: &mut Vec<String>) {
    if let Some(b) = last_boxed(seg) {
        out.push(b);
    }
    if let Some(after) = phrase_after(seg, " is ") {
        out.push(after);
    }
    let math = math_segments(seg);
    if let Some(joined) = joined_math(seg, &math) {
        out.push(joined);
    }
    // `5 dogs`: the number, before the phrase itself (which would read as 5·d·o·g·s).
    let last_number = bare_numbers(seg, &math).last().map(|n| n.content.clone());
    if word_count(seg) >= 1 {
        out.extend(last_number.clone());
    }
    out.push(seg.to_string());
    out.extend(last_number);
}

/// The last run of math segments separated only by connectives, joined with commas.
fn joined_math(s: &str, math: &[Span]) -> Option<String> {
    let last = math.last()?;
    let mut parts = vec![last.content.clone()];
    let mut start = last.start;
    for m in math.iter().rev().skip(1) {
        if !is_connective(&s[m.end..start]) {
            break;
        }
        parts.push(m.content.clone());
        start = m.start;
    }
    parts.reverse();
    Some(parts.join(", "))
}

/// Answer candidates in priority order; how many of them come first from an explicit
/// marker (a box or an "answer" phrase); and the last math segment (the fallback when
/// nothing parses).
pub(crate) fn candidates(completion: &str) -> (Vec<String>, usize, Option<String>) {
    let s = tail(completion, MAX_COMPLETION_BYTES);
    let mut out = Vec::new();
    if let Some(seg) = phrase_after(s, "final answer") {
        phrase_candidates(&seg, &mut out);
    }
    if let Some(b) = last_boxed(s) {
        out.push(b);
    }
    for key in ["answer is", "answer:"] {
        if let Some(seg) = phrase_after(s, key) {
            phrase_candidates(&seg, &mut out);
        }
    }
    out.retain(|c| !c.trim().is_empty() && c.len() <= MAX_ANSWER_BYTES);
    let explicit = out.len();
    let math = math_segments(s);
    // Failing all else, the last mathematics is the answer even if we cannot read it.
    let fallback = math.last().map(|m| m.content.clone()).filter(|c| c.len() <= MAX_ANSWER_BYTES);
    if math.is_empty() && !s.contains("\\boxed") && s.len() <= 200 && word_count(s) <= 1 {
        out.push(s.trim().to_string());
    }
    // The last mathematics or number, whichever comes later; a run of math segments joined
    // by "and"/commas comes before its last member.
    let mut tails: Vec<Span> = Vec::new();
    if let (Some(j), Some(last)) = (joined_math(s, &math), math.last()) {
        tails.push(Span { start: last.start, end: last.end, content: j });
    }
    tails.extend(math.iter().cloned());
    tails.extend(bare_numbers(s, &math));
    // Stable sort: the joined run stays ahead of its own last segment.
    tails.sort_by_key(|sp| std::cmp::Reverse(sp.end));
    out.extend(tails.into_iter().map(|sp| sp.content));
    if let Some(line) = s.lines().rev().map(str::trim).find(|l| !l.is_empty()) {
        out.push(line.to_string());
    }
    out.retain(|c| !c.trim().is_empty() && c.len() <= MAX_ANSWER_BYTES);
    (out, explicit, fallback)
}

/// Whether a candidate reads as an answer (parses as mathematics, or is a short text).
pub(crate) fn parses(candidate: &str) -> bool {
    let c = clean(candidate);
    if c.is_empty() {
        return false;
    }
    // Prose parses as a product of letters; an answer has at most one plain word.
    match parse(&c) {
        Ok(crate::answer::expr::Node::Text(_)) => true,
        Ok(_) => word_count(&c) <= 1,
        Err(_) => false,
    }
}

/// The free-form answer in a completion, or `None` when there is nothing answer-like.
/// Reasoning blocks (`<think>…</think>`) are removed first.
pub fn extract_free_form(completion: &str) -> Option<String> {
    let completion = strip_reasoning(completion);
    let (cands, explicit, fallback) = candidates(&completion);
    // An explicitly marked answer is kept even when it does not parse (it may be text), then
    // the last mathematics; a guess from prose must at least read as an answer.
    let chosen = cands
        .iter()
        .take(MAX_CANDIDATES)
        .find(|c| parses(c))
        .or(cands[..explicit].first())
        .or(fallback.as_ref())?;
    let cleaned = clean(chosen);
    (!cleaned.is_empty()).then_some(cleaned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_boxes() {
        assert_eq!(
            extract_free_form("so $\\boxed{\\frac{1}{\\sqrt{2}}}$.").as_deref(),
            Some("\\frac{1}{\\sqrt{2}}")
        );
        assert_eq!(extract_free_form("\\fbox{7}").as_deref(), Some("7"));
    }

    #[test]
    fn joins_adjacent_boxes() {
        assert_eq!(extract_free_form("\\boxed{1} and \\boxed{2}").as_deref(), Some("1, 2"));
        assert_eq!(
            extract_free_form(
                "\\boxed{4} ... long text ............................................. \\boxed{5}"
            )
            .as_deref(),
            Some("5")
        );
    }

    #[test]
    fn fallbacks() {
        assert_eq!(extract_free_form("so the answer is 42.").as_deref(), Some("42"));
        assert_eq!(extract_free_form("Answer: $x = 3$").as_deref(), Some("x = 3"));
        assert_eq!(extract_free_form("We get 3 apples and then 5 pears").as_deref(), Some("5"));
        // A number glued into a word is not an answer, and prose is not guessed at.
        assert_eq!(extract_free_form("it is AZYUK2A"), None);
    }
}
