//! Multiple-choice letter extraction.
//!
//! An answer counts only when it commits to exactly one option. The rules are tried in this
//! order; the first that finds a commitment decides, and one that finds several options ends
//! the reading with no answer (a Reasoner that hedges is not paid):
//!
//! 1. **The last box** (with the boxes just before it): `\boxed{B}`, `\boxed{\text{(B)}}`,
//!    `\boxed{B. 12}`, `\boxed{\text{Option B}}`, or the exact text of one option.
//!    `\boxed{A} or \boxed{B}` and `\boxed{\text{B and C}}` name two options: no answer.
//! 2. **A committing phrase**, the last one in the text: "the answer is (B)", "answer: B",
//!    "the correct option is B", "I choose / pick / select / go with option B", or the exact
//!    text of one option after it. "The answer is B or C", "A, B, C or D", "either B or C"
//!    and "not B" after the phrase: no answer.
//! 3. **The completion starts with the letter as a label**: `B`, `(B)`, `B.`, `B)`, `B:`,
//!    `**B**`, `B. 12`, `(B) 12` — not when it is hedged (`A or B`), contradicted by its
//!    option text, or the first of several lines that start with other letters (a list of
//!    the options); then the later rules decide.
//! 4. **The last line is the letter alone**: `…\n\nB`, `(B)`, `**B.**` (no answer when
//!    other lines are other letters alone).
//! 5. **"B is correct"** (or right, valid, true, the answer, the correct/right/best
//!    answer/option/choice), when exactly one letter is said to be.
//! 6. With the option texts known, **the whole completion or its last line is exactly the
//!    text of one option** and of no other.
//!
//! A capital letter inside prose ("vitamin D", "Plan B is cheaper") is never an answer.
//! When a letter comes with option text (`B. 12`) that is exactly the text of another
//! option, the answer contradicts itself: no answer. Reasoning blocks (`<think>…</think>`)
//! are removed first. The letter range is a parameter: SPICE's own tasks use A–D,
//! evaluation benchmarks such as MMLU-Pro use A–J; when option texts are given, their number
//! sets the range.

use crate::answer::extract::last_box_group;
use crate::answer::reasoning::strip_reasoning;
use crate::answer::text::strip_latex_wrappers;
use crate::bounds::{head, tail, MAX_ANSWER_BYTES, MAX_COMPLETION_BYTES};

/// The chosen letter in `completion`, among `A..=max_letter` (uppercase).
pub fn extract_choice(completion: &str, max_letter: char) -> Option<char> {
    extract_choice_with_options(completion, max_letter, &[] as &[&str])
}

/// [`extract_choice`] when the option texts are known (`options[0]` is option A): the exact
/// text of one option, and of no other, also names it, and the letters run from A to the
/// last option. An empty `options` is [`extract_choice`].
pub fn extract_choice_with_options<S: AsRef<str>>(
    completion: &str,
    max_letter: char,
    options: &[S],
) -> Option<char> {
    let ctx = Ctx::new(max_letter, options)?;
    let text = strip_reasoning(completion);
    let s = tail(&text, MAX_COMPLETION_BYTES);
    match read(s, &ctx) {
        Read::One(c) => Some(c),
        Read::Many | Read::Nothing => None,
    }
}

/// What one rule found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Read {
    /// Exactly one option.
    One(char),
    /// Several options, or a letter contradicted by its text: the reading stops.
    Many,
    /// Nothing this rule recognises: the next rule is tried.
    Nothing,
}

/// The letter range and the normalised option texts.
struct Ctx {
    max: char,
    keys: Vec<String>,
}

impl Ctx {
    fn new<S: AsRef<str>>(max_letter: char, options: &[S]) -> Option<Ctx> {
        let max = if options.is_empty() {
            max_letter.to_ascii_uppercase()
        } else {
            (b'A' + options.len().min(26) as u8 - 1) as char
        };
        if !max.is_ascii_uppercase() {
            return None;
        }
        let keys = options.iter().take(26).map(|o| option_key(o.as_ref())).collect();
        Some(Ctx { max, keys })
    }

    fn in_range(&self, c: char) -> bool {
        c.is_ascii_uppercase() && c <= self.max
    }

    /// The letter of the one option whose text is exactly `s` (normalised).
    fn option_named(&self, s: &str) -> Option<char> {
        if self.keys.is_empty() || s.len() > MAX_ANSWER_BYTES {
            return None;
        }
        let key = option_key(s);
        if key.is_empty() {
            return None;
        }
        let mut hits = self.keys.iter().enumerate().filter(|(_, k)| **k == key);
        let (i, _) = hits.next()?;
        hits.next().is_none().then_some((b'A' + i as u8) as char)
    }

    /// Whether the text after letter `c` is exactly the text of another option.
    fn contradicts(&self, c: char, after: &str) -> bool {
        let t = after.trim_start_matches(|ch: char| {
            ch.is_whitespace() || matches!(ch, '.' | ':' | ')' | ']' | '-' | '–' | '—' | ',')
        });
        self.option_named(t).is_some_and(|d| d != c)
    }
}

/// An option text as compared: LaTeX wrappers, braces, math delimiters, markup, case,
/// repeated whitespace and closing punctuation removed.
fn option_key(s: &str) -> String {
    let s = strip_latex_wrappers(s);
    let s: String = s.chars().filter(|c| !matches!(c, '{' | '}' | '$' | '*' | '"' | '`')).collect();
    let s = s.to_lowercase();
    let s = s.split_whitespace().collect::<Vec<_>>().join(" ");
    s.trim_end_matches(['.', '!', ';', ',']).trim().to_string()
}

/// LaTeX wrappers and braces removed: `\boxed{\text{(B)}}` → `(B)`.
fn plain(s: &str) -> String {
    strip_latex_wrappers(s).chars().filter(|c| !matches!(c, '{' | '}')).collect()
}

fn read(s: &str, ctx: &Ctx) -> Read {
    // 1. The last box.
    let group = last_box_group(s);
    if !group.is_empty() {
        let mut letter = None;
        for b in &group {
            match read_box(b, ctx) {
                Read::Many => return Read::Many,
                Read::One(c) if letter.is_some_and(|l| l != c) => return Read::Many,
                Read::One(c) => letter = Some(c),
                Read::Nothing => {}
            }
        }
        if let Some(c) = letter {
            return Read::One(c);
        }
    }
    // 2. A committing phrase.
    let r = read_phrases(s, ctx);
    if r != Read::Nothing {
        return r;
    }
    let body = plain(s);
    // 3. The completion starts with the letter as a label (not a hedge, a contradiction or
    // the first of a list of options; those leave the decision to the end of the text).
    if let Some(l) = label_at_start(&body, ctx).filter(Label::strict) {
        let listed = || {
            body.lines()
                .skip(1)
                .filter_map(|line| label_at_start(line, ctx).filter(Label::strict))
                .any(|o| o.letter != l.letter)
        };
        if !hedged(l.after, l.letter, ctx) && !ctx.contradicts(l.letter, l.after) && !listed() {
            return Read::One(l.letter);
        }
    }
    // 4. The last line is the letter alone.
    let lines: Vec<&str> = body.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    if let Some((last, before)) = lines.split_last() {
        if let Some(c) = bare_letter(last, ctx) {
            let other = before.iter().filter_map(|l| bare_letter(l, ctx)).any(|d| d != c);
            return if other { Read::Many } else { Read::One(c) };
        }
    }
    // 5. "B is correct".
    let r = said_correct(&body, ctx);
    if r != Read::Nothing {
        return r;
    }
    // 6. The whole completion, or its last line, is one option's text.
    if let Some(c) = ctx.option_named(&body) {
        return Read::One(c);
    }
    if let Some(c) = lines.last().and_then(|l| ctx.option_named(l)) {
        return Read::One(c);
    }
    Read::Nothing
}

/// A box's content: one label, one option's text, or (two letters or more) several options.
fn read_box(content: &str, ctx: &Ctx) -> Read {
    let body = plain(head(content, MAX_ANSWER_BYTES));
    if let Some(l) = label_at_start(&body, ctx) {
        if hedged(l.after, l.letter, ctx) || ctx.contradicts(l.letter, l.after) {
            return Read::Many;
        }
        if l.strict() {
            return Read::One(l.letter);
        }
    }
    if let Some(c) = ctx.option_named(&body) {
        return Read::One(c);
    }
    let mut letters = standalone_letters(&body, ctx);
    letters.sort_unstable();
    letters.dedup();
    if letters.len() >= 2 {
        Read::Many
    } else {
        Read::Nothing
    }
}

/// A letter written as a label at the start of a text.
struct Label<'a> {
    letter: char,
    /// Written in brackets: `(B)`, `[B]`, `B)`.
    bracketed: bool,
    /// The text after the label and its closing markup.
    after: &'a str,
}

impl Label<'_> {
    /// Whether the label stands on its own: followed by nothing, a line break, punctuation
    /// or a dash (`B.`, `B: 12`, `B - 12`), or bracketed (`(B) 12`). `B and C`, `A valid
    /// point` and `B 12` are not labels.
    fn strict(&self) -> bool {
        let a = self.after.trim_start_matches([' ', '\t']);
        self.bracketed
            || a.is_empty()
            || a.starts_with(['\n', '\r', '.', ':', ')', ']', '-', '–', '—', '!'])
    }
}

const LABEL_WORDS: [&str; 4] = ["option", "choice", "letter", "answer"];

/// `B`, `(B)`, `B)`, `**B**`, `$B$`, `Option B` at the start of `s`, after spaces and markup.
fn label_at_start<'a>(s: &'a str, ctx: &Ctx) -> Option<Label<'a>> {
    let markup = |c: char| c.is_whitespace() || matches!(c, '*' | '$' | '"' | '\'' | '`');
    let mut t = s.trim_start_matches(markup);
    let mut bracketed = false;
    if let Some(r) = t.strip_prefix(['(', '[']) {
        bracketed = true;
        t = r.trim_start_matches(markup);
    }
    for w in LABEL_WORDS {
        if t.len() > w.len()
            && t.is_char_boundary(w.len())
            && t[..w.len()].eq_ignore_ascii_case(w)
            && t[w.len()..].starts_with([' ', ':'])
        {
            t = t[w.len()..].trim_start_matches(|c: char| markup(c) || c == ':');
            if let Some(r) = t.strip_prefix(['(', '[']) {
                bracketed = true;
                t = r.trim_start_matches(markup);
            }
            break;
        }
    }
    let mut chars = t.chars();
    let letter = chars.next()?;
    let rest = chars.as_str();
    // `Bc`, `B_1`, `B^2`, `B=`, `B+`, `B-12`, `B's` are not labels.
    let glued = rest.starts_with(|n: char| n.is_alphanumeric() || "_^=+-\\{".contains(n))
        || (rest.starts_with('\'') && rest[1..].starts_with(char::is_alphanumeric));
    if !ctx.in_range(letter) || glued {
        return None;
    }
    let after = rest.trim_start_matches(['*', '$', '"', '`', '\'']);
    let closed = after.starts_with([')', ']']);
    let after = if closed { &after[1..] } else { after };
    let after = after.trim_start_matches(['*', '$', '"', '`', '\'']);
    Some(Label { letter, bracketed: bracketed || closed, after })
}

/// Whether the text after the label of letter `c` names another option with it: `B or C`,
/// `B or not`, `A, B, C or D`, `B/C`, `B and C`, `(B) and (C)`.
fn hedged(after: &str, c: char, ctx: &Ctx) -> bool {
    let t = head(after, 80).trim_start();
    let lower = t.to_ascii_lowercase();
    let word = |w: &str| {
        lower.starts_with(w) && !lower[w.len()..].starts_with(|n: char| n.is_ascii_alphanumeric())
    };
    if word("or") || word("and/or") {
        return true;
    }
    let rest = if let Some(r) = t.strip_prefix([',', '/', '&', '|']) {
        r
    } else if let Some(w) = ["and", "nor", "vs", "versus"].into_iter().find(|w| word(w)) {
        &t[w.len()..]
    } else {
        return false;
    };
    let rest = rest.trim_start();
    let rest_lower = rest.to_ascii_lowercase();
    let rest = ["or ", "and ", "also "]
        .iter()
        .find(|w| rest_lower.starts_with(*w))
        .map_or(rest, |w| &rest[w.len()..]);
    label_at_start(rest, ctx).is_some_and(|l| l.letter != c)
}

/// Whether the text before a letter joins it to another option: `B or C`, `either B or C`,
/// `B, C`, `A nor B`.
fn hedged_before(before: &str, c: char, ctx: &Ctx) -> bool {
    let t = tail(before, 40).trim_end().trim_end_matches(['(', '[', '*']).trim_end();
    let lower = t.to_ascii_lowercase();
    let cut = if lower.ends_with(['/', ',', '&']) {
        t.len() - 1
    } else if let Some(w) = [" or", " and", " nor", "either", "neither", "both"]
        .into_iter()
        .find(|w| lower.ends_with(w))
    {
        if matches!(w, "either" | "neither" | "both") {
            return true;
        }
        t.len() - w.len()
    } else {
        return false;
    };
    let t = t[..cut].trim_end().trim_end_matches([')', ']', '*']);
    let mut chars = t.chars().rev();
    match (chars.next(), chars.next()) {
        (Some(d), prev) => {
            ctx.in_range(d) && d != c && prev.is_none_or(|p| !p.is_alphanumeric() && p != '\\')
        }
        _ => false,
    }
}

/// Most committing phrases read, from the last one back.
const MAX_PHRASES: usize = 64;

/// Filler words between a committing phrase and the letter.
const FILLERS: [&str; 22] = [
    "is",
    "was",
    "be",
    "would",
    "will",
    "should",
    "must",
    "the",
    "option",
    "choice",
    "letter",
    "answer",
    "correct",
    "right",
    "best",
    "final",
    "therefore",
    "thus",
    "hence",
    "clearly",
    "definitely",
    "probably",
];

/// Rule 2: the last committing phrase that says something.
fn read_phrases(s: &str, ctx: &Ctx) -> Read {
    let lower = s.to_ascii_lowercase();
    let mut anchors = phrase_anchors(&lower);
    anchors.sort_unstable();
    anchors.dedup();
    // The last few phrases decide; a text of nothing but phrases is not read to its start.
    for &end in anchors.iter().rev().take(MAX_PHRASES) {
        let r = read_after_phrase(&s[end..], ctx);
        if r != Read::Nothing {
            return r;
        }
    }
    Read::Nothing
}

/// Byte offsets just after each committing phrase in `lower`.
fn phrase_anchors(lower: &str) -> Vec<usize> {
    let mut out = Vec::new();
    let word_start = |i: usize| i == 0 || !lower.as_bytes()[i - 1].is_ascii_alphanumeric();
    // "answer" / "option" / "choice" followed by a connective.
    for key in ["answer", "option", "choice"] {
        for (i, _) in lower.match_indices(key) {
            if !word_start(i) {
                continue;
            }
            let mut rest = &lower[i + key.len()..];
            if key == "answer" {
                // "answer choice is", "answer option:".
                let t = rest.trim_start();
                if let Some(r) =
                    ["choice", "option", "letter"].iter().find_map(|w| t.strip_prefix(w))
                {
                    rest = r;
                }
            }
            let t = rest.trim_start_matches(['*', ' ']);
            let connectives: &[&str] = if key == "answer" {
                &[":", "=", "-", "—", "is", "was", "would be", "will be", "should be", "must be"]
            } else {
                &[":", "=", "is", "would be", "will be", "should be", "must be"]
            };
            for c in connectives {
                if t.starts_with(c)
                    && (!c.as_bytes()[0].is_ascii_alphabetic()
                        || !t[c.len()..].starts_with(|n: char| n.is_ascii_alphanumeric()))
                {
                    out.push(lower.len() - t.len() + c.len());
                    break;
                }
            }
        }
    }
    // "I choose / pick / select / go with (option) B".
    for verb in [
        "choose",
        "chose",
        "pick",
        "picked",
        "select",
        "selected",
        "go with",
        "going with",
        "opt for",
    ] {
        for (i, _) in lower.match_indices(verb) {
            let end = i + verb.len();
            if word_start(i) && !lower[end..].starts_with(|n: char| n.is_ascii_alphanumeric()) {
                out.push(end);
            }
        }
    }
    out
}

/// The letter (or option text) right after a committing phrase, past filler words.
fn read_after_phrase(after: &str, ctx: &Ctx) -> Read {
    let window = sentence(after);
    let window = plain(window);
    let mut t = window.as_str();
    for _ in 0..6 {
        let u = t.trim_start_matches(|c: char| {
            c.is_whitespace() || matches!(c, ':' | '*' | '$' | '"' | '`' | '-' | '=')
        });
        let word_len = u.bytes().take_while(u8::is_ascii_alphabetic).count();
        let w = u[..word_len].to_ascii_lowercase();
        if word_len >= 2 && FILLERS.contains(&w.as_str()) {
            t = &u[word_len..];
        } else {
            t = u;
            break;
        }
    }
    if let Some(l) = label_at_start(t, ctx) {
        if hedged(l.after, l.letter, ctx) || ctx.contradicts(l.letter, l.after) {
            return Read::Many;
        }
        return Read::One(l.letter);
    }
    if let Some(c) = ctx.option_named(t) {
        return Read::One(c);
    }
    // "the answer is either B or C", "the answer is not B": letters, but no commitment.
    if standalone_letters(t, ctx).is_empty() {
        Read::Nothing
    } else {
        Read::Many
    }
}

/// `s` up to the end of its first sentence or line, at most 160 bytes.
fn sentence(s: &str) -> &str {
    let s = head(s, 160);
    let mut end = s.len();
    if let Some(i) = s.find('\n') {
        end = end.min(i);
    }
    if let Some(i) = s.find(". ") {
        end = end.min(i + 1);
    }
    &s[..end]
}

/// Rule 4: a line that is a letter alone, with brackets and punctuation (`(B)`, `**B.**`).
fn bare_letter(line: &str, ctx: &Ctx) -> Option<char> {
    let l = label_at_start(line, ctx)?;
    let rest = l.after.trim_matches(|c: char| {
        c.is_whitespace() || matches!(c, '.' | ')' | ']' | '*' | '$' | '!' | ':' | '"' | '`')
    });
    rest.is_empty().then_some(l.letter)
}

/// Rule 5: letters said to be correct ("B is correct", "Option C is the right answer").
fn said_correct(body: &str, ctx: &Ctx) -> Read {
    const VERDICTS: [&str; 8] =
        ["correct", "right", "valid", "true", "the answer", "the correct", "the right", "the best"];
    let mut found: Option<char> = None;
    let chars: Vec<(usize, char)> = body.char_indices().collect();
    for (k, &(i, c)) in chars.iter().enumerate() {
        if !ctx.in_range(c) || !standalone_at(&chars, k) {
            continue;
        }
        let after = body[i + 1..].trim_start_matches([')', ']', '*']);
        let Some(rest) = after.strip_prefix(" is ") else { continue };
        let Some(v) = VERDICTS.iter().find(|v| rest.starts_with(**v)) else { continue };
        if rest[v.len()..].starts_with(|n: char| n.is_alphanumeric() || n == '?') {
            continue;
        }
        if hedged_before(&body[..i], c, ctx) {
            return Read::Many;
        }
        match found {
            Some(f) if f != c => return Read::Many,
            _ => found = Some(c),
        }
    }
    found.map_or(Read::Nothing, Read::One)
}

/// Whether the character at index `k` stands alone (not inside a word or a command).
fn standalone_at(chars: &[(usize, char)], k: usize) -> bool {
    let before_ok = k == 0 || {
        let p = chars[k - 1].1;
        !p.is_alphanumeric() && p != '\\'
    };
    let after_ok = chars.get(k + 1).is_none_or(|&(_, n)| !n.is_alphanumeric());
    before_ok && after_ok
}

/// In-range capital letters standing alone in `s`, except the article `A` and the pronoun
/// `I` before a lowercase word.
fn standalone_letters(s: &str, ctx: &Ctx) -> Vec<char> {
    let chars: Vec<(usize, char)> = s.char_indices().collect();
    let mut out = Vec::new();
    for k in 0..chars.len() {
        let c = chars[k].1;
        if !ctx.in_range(c) || !standalone_at(&chars, k) {
            continue;
        }
        let prose = chars.get(k + 1).map(|x| x.1) == Some(' ')
            && chars.get(k + 2).is_some_and(|x| x.1.is_lowercase());
        if !(prose && (c == 'A' || c == 'I')) {
            out.push(c);
        }
    }
    out
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
            ("The answer is $\\textbf{(A)}$ since 3 > 2.", 'A'),
            ("Working through it...\n\n**B**", 'B'),
            ("Option C is the correct answer.", 'C'),
            ("A is wrong. C is right.", 'C'),
        ] {
            assert_eq!(extract_choice(s, 'D'), Some(want), "{s}");
        }
    }

    #[test]
    fn hedges_and_prose_are_not_answers() {
        for s in [
            "\\boxed{A} or \\boxed{B}",
            "\\boxed{\\text{B and C}}",
            "The answer is A, B, C or D.",
            "We need vitamin D to absorb calcium.",
            "It is either B or C.",
            "Plan B is cheaper.",
            "Either B or C is correct.",
            "B is correct, and so is C: C is correct.",
            "The answer is not B.",
            "A) 1\nB) 2",
        ] {
            assert_eq!(extract_choice(s, 'D'), None, "{s}");
        }
    }

    #[test]
    fn option_texts() {
        let opts = ["London", "Paris", "Rome", "Berlin"];
        assert_eq!(extract_choice_with_options("\\boxed{\\text{Paris}}", 'D', &opts), Some('B'));
        assert_eq!(extract_choice_with_options("The answer is Rome.", 'D', &opts), Some('C'));
        assert_eq!(extract_choice_with_options("B. Rome", 'D', &opts), None);
        assert_eq!(extract_choice_with_options("Paris or Rome", 'D', &opts), None);
        // Two options with the same text name neither.
        assert_eq!(extract_choice_with_options("x", 'D', &["x", "X", "y", "z"]), None);
        // The options set the range.
        assert_eq!(extract_choice_with_options("(E)", 'D', &["1", "2", "3", "4", "5"]), Some('E'));
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
