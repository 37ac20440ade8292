//! Cutting one document into passages of at most `max_tokens` tokens.
//!
//! A passage ends at the best boundary that keeps it at least half full: a paragraph break
//! (blank line), else a sentence end, else a line break, else any whitespace. Only when the
//! half-full part of the window has none of these does an earlier boundary win, and a window
//! with no boundary at all is cut hard at a character boundary.
//!
//! The document is tokenized once to place each window; each passage is then tokenized on
//! its own (tokens can merge differently at its edges) and shrunk until its exact count fits,
//! so no passage is ever over the limit. Passages are trimmed of surrounding whitespace and
//! are exactly `doc[start..end]`.

use anyhow::{bail, Result};

use crate::tokens::Tokens;

/// A passage: the byte range `start..end` of the document and its token count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Passage {
    pub start: usize,
    pub end: usize,
    pub n_tokens: usize,
}

/// The passages of one document, and what was left out.
#[derive(Debug, Default, PartialEq)]
pub struct Split {
    pub passages: Vec<Passage>,
    /// Passages under `min_tokens` (too little to ground a question).
    pub dropped_short: u64,
    /// Single characters that are more than `max_tokens` tokens on their own (only with
    /// absurdly small limits).
    pub dropped_unsplittable: u64,
}

/// Boundary kinds, weakest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Level {
    Space,
    Line,
    Sentence,
    Paragraph,
}
const LEVELS: usize = 4;

pub fn split(doc: &str, max_tokens: usize, min_tokens: usize, tok: &dyn Tokens) -> Result<Split> {
    if max_tokens == 0 {
        bail!("max_doc_tokens must be at least 1");
    }
    let starts = tok.starts(doc)?;
    let len = doc.len();
    let mut out = Split::default();
    let mut a = skip_space(doc, 0);
    while a < len {
        // Tokens of the whole document that start at or after `a`.
        let first = starts.partition_point(|&s| s < a);
        let mut budget = max_tokens;
        loop {
            let end = match starts.get(first + budget) {
                None => len,
                Some(&s) => {
                    let mut limit = floor_char(doc, s);
                    if limit <= a {
                        limit = next_char(doc, a);
                    }
                    if limit >= len {
                        len
                    } else {
                        choose_cut(doc, a, limit)
                    }
                }
            };
            let (s, e) = trim(doc, a, end);
            if s == e {
                a = skip_space(doc, end);
                break;
            }
            // The whole untrimmed document was tokenized already.
            let n = if (s, e) == (0, len) { starts.len() } else { tok.count(&doc[s..e])? };
            if n <= max_tokens {
                if n >= min_tokens {
                    out.passages.push(Passage { start: s, end: e, n_tokens: n });
                } else {
                    out.dropped_short += 1;
                }
                a = skip_space(doc, end);
                break;
            }
            if budget == 1 {
                // Even one token's worth of text is over the limit on its own: drop a character.
                out.dropped_unsplittable += 1;
                a = skip_space(doc, next_char(doc, s));
                break;
            }
            budget = budget.saturating_sub(n - max_tokens).max(1);
        }
    }
    Ok(out)
}

/// Where a passage starting at `a` ends, given that it must end by `limit` (`a < limit <
/// doc.len()`, both character boundaries). The result is in `a+1..=limit`.
fn choose_cut(doc: &str, a: usize, limit: usize) -> usize {
    let half = floor_char(doc, a + (limit - a) / 2);
    // Last cut of each level at or after `half`, and before it.
    let mut upper: [Option<usize>; LEVELS] = [None; LEVELS];
    let mut lower: [Option<usize>; LEVELS] = [None; LEVELS];
    let end = next_char(doc, limit);
    for (i, _) in doc[a..end].char_indices().rev() {
        let p = a + i;
        if p == a {
            break;
        }
        if p < half && upper.iter().any(Option::is_some) {
            break;
        }
        if let Some(level) = level_at(doc, p) {
            let slot =
                if p >= half { &mut upper[level as usize] } else { &mut lower[level as usize] };
            slot.get_or_insert(p);
        }
    }
    upper.iter().rev().chain(lower.iter().rev()).find_map(|c| *c).unwrap_or(limit)
}

/// The kind of boundary a passage ending at byte `p` would end on, if any.
fn level_at(doc: &str, p: usize) -> Option<Level> {
    let c = doc[p..].chars().next()?;
    let before = &doc[..p];
    if c.is_whitespace() {
        if c == '\n' && blank_line_follows(&doc[p + 1..]) {
            Some(Level::Paragraph)
        } else if ends_sentence(before) {
            Some(Level::Sentence)
        } else if c == '\n' {
            Some(Level::Line)
        } else {
            Some(Level::Space)
        }
    } else if before.ends_with(['。', '！', '？']) {
        // CJK full stops are not followed by a space.
        Some(Level::Sentence)
    } else {
        None
    }
}

/// Whether `text` ends a sentence: terminal punctuation after a word, maybe followed by
/// closing quotes or brackets. Not reST's `..` directives or doctest's `...` prompts, which
/// follow whitespace.
fn ends_sentence(text: &str) -> bool {
    let t = text.trim_end_matches([')', ']', '"', '\'', '’', '”', '»']);
    let body = t.trim_end_matches(['.', '!', '?', '…', '。', '！', '？']);
    let punct = &t[body.len()..];
    if punct.is_empty() || punct == ".." {
        return false;
    }
    punct.starts_with(['。', '！', '？'])
        || body.chars().next_back().is_some_and(|c| !c.is_whitespace())
}

/// Whether the rest of a line is blank (or the text ends).
fn blank_line_follows(rest: &str) -> bool {
    for c in rest.chars() {
        match c {
            '\n' => return true,
            ' ' | '\t' | '\r' => {}
            _ => return false,
        }
    }
    true
}

fn skip_space(doc: &str, p: usize) -> usize {
    doc.len() - doc[p..].trim_start().len()
}

/// `a..e` without leading and trailing whitespace.
fn trim(doc: &str, a: usize, e: usize) -> (usize, usize) {
    let t = &doc[a..e];
    let s = a + (t.len() - t.trim_start().len());
    (s, s + t.trim().len())
}

fn floor_char(doc: &str, mut p: usize) -> usize {
    p = p.min(doc.len());
    while !doc.is_char_boundary(p) {
        p -= 1;
    }
    p
}

/// The character boundary after the character at `p` (or the end).
fn next_char(doc: &str, p: usize) -> usize {
    p + doc[p..].chars().next().map_or(0, char::len_utf8)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::tokens::HfTokens;

    /// Every run of up to 4 non-space characters is a token: counts are easy to reason about.
    struct Fours;

    impl Tokens for Fours {
        fn starts(&self, text: &str) -> Result<Vec<usize>> {
            let mut starts = Vec::new();
            let mut run = 0;
            for (i, c) in text.char_indices() {
                if c.is_whitespace() {
                    run = 0;
                } else {
                    if run % 4 == 0 {
                        starts.push(i);
                    }
                    run += 1;
                }
            }
            Ok(starts)
        }
        fn count(&self, text: &str) -> Result<usize> {
            Ok(self.starts(text)?.len())
        }
    }

    fn tiny_llama() -> HfTokens {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../lib/lm/fixtures/tiny-llama3/tokenizer.json");
        HfTokens::load(&path).unwrap()
    }

    fn texts<'a>(doc: &'a str, s: &Split) -> Vec<&'a str> {
        s.passages.iter().map(|p| &doc[p.start..p.end]).collect()
    }

    /// The invariants every split must keep, whatever the document.
    fn check(doc: &str, max: usize, tok: &dyn Tokens) -> Split {
        let s = split(doc, max, 0, tok).unwrap();
        let mut prev_end = 0;
        for p in &s.passages {
            let text = &doc[p.start..p.end];
            assert!(p.n_tokens <= max, "passage over the limit ({} > {max}): {text:?}", p.n_tokens);
            assert_eq!(p.n_tokens, tok.count(text).unwrap(), "recorded count is the passage's own");
            assert!(p.start >= prev_end && p.start < p.end, "passages are ordered and non-empty");
            assert_eq!(text, text.trim(), "passages are trimmed");
            prev_end = p.end;
        }
        if s.dropped_unsplittable == 0 {
            // Nothing but whitespace is lost.
            let kept: String = texts(doc, &s).concat().split_whitespace().collect();
            let all: String = doc.split_whitespace().collect();
            assert_eq!(kept, all);
        }
        s
    }

    #[test]
    fn a_short_document_is_one_passage() {
        let doc = "  Hello world.\n\n";
        let s = check(doc, 100, &Fours);
        assert_eq!(texts(doc, &s), ["Hello world."]);
        assert_eq!(s.passages[0].start, 2);
    }

    #[test]
    fn paragraph_breaks_win_over_sentence_ends() {
        // Three paragraphs of 4 tokens: two fit in 10 tokens, and the break after the second
        // keeps the passage over half full, though a sentence end comes later in the window.
        let doc = "Aa bb. Cc dd.\n\nEe ff. Gg hh.\n\nIi jj. Kk ll.";
        let s = check(doc, 10, &Fours);
        assert_eq!(texts(doc, &s), ["Aa bb. Cc dd.\n\nEe ff. Gg hh.", "Ii jj. Kk ll."]);
    }

    #[test]
    fn a_long_paragraph_is_cut_at_sentence_ends() {
        let doc = "Aa bb cc dd. Ee ff gg hh. Ii jj kk ll. Mm nn oo pp.";
        let s = check(doc, 6, &Fours);
        assert_eq!(
            texts(doc, &s),
            ["Aa bb cc dd.", "Ee ff gg hh.", "Ii jj kk ll.", "Mm nn oo pp."]
        );
    }

    #[test]
    fn a_paragraph_break_too_early_gives_way_to_a_later_sentence_end() {
        // The break after "Title" would leave a 1-token passage; a sentence end fills it.
        let doc = "Title\n\nAa bb cc. Dd ee ff gg. Hh ii.";
        let s = check(doc, 6, &Fours);
        assert_eq!(texts(doc, &s)[0], "Title\n\nAa bb cc.");
    }

    #[test]
    fn no_boundary_means_a_hard_cut_on_a_character_boundary() {
        let doc = "é".repeat(50) + " tail";
        let s = check(&doc, 3, &Fours);
        assert_eq!(texts(&doc, &s)[0], "é".repeat(12));
        assert!(s.passages.len() > 4);
    }

    #[test]
    fn short_passages_are_dropped_and_counted() {
        let doc = "Aa bb cc dd ee.\n\nFf.";
        let s = split(doc, 5, 2, &Fours).unwrap();
        assert_eq!(texts(doc, &s), ["Aa bb cc dd ee."]);
        assert_eq!(s.dropped_short, 1);
    }

    #[test]
    fn real_tokenizer_never_exceeds_the_limit() {
        let tok = tiny_llama();
        // A deterministic mix of prose, code, numbers, CJK and emoji, cut at many limits.
        let words = [
            "the",
            "zeta",
            "function",
            "ζ(s)",
            "=",
            "Σ",
            "1/n^s",
            "日本語の文。",
            "🚀",
            "x_1",
            "12345",
            "\\frac{1}{2}",
        ];
        let mut state = 0x2545F4914F6CDD1Du64;
        let mut doc = String::new();
        for i in 0..3000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            doc.push_str(words[(state % words.len() as u64) as usize]);
            doc.push_str(match state % 23 {
                0 => ".\n\n",
                1 | 2 => ". ",
                3 => "\n",
                4 if i % 7 == 0 => "",
                _ => " ",
            });
        }
        for max in [1, 2, 5, 17, 64, 256, 5992] {
            let s = check(&doc, max, &tok);
            assert!(!s.passages.is_empty());
            if max >= 64 {
                // Cuts at boundaries keep passages well filled.
                let mean = s.passages.iter().map(|p| p.n_tokens).sum::<usize>() / s.passages.len();
                assert!(mean * 2 >= max.min(tok.count(&doc).unwrap()), "mean {mean} at max {max}");
            }
        }
    }

    #[test]
    fn levels_at_positions() {
        let doc = "Aa. Bb\nCc)\n\nDd。Ee";
        assert_eq!(level_at(doc, 3), Some(Level::Sentence));
        assert_eq!(level_at(doc, 6), Some(Level::Line));
        assert_eq!(level_at(doc, 10), Some(Level::Paragraph));
        assert_eq!(level_at(doc, 11), Some(Level::Line));
        assert_eq!(level_at(doc, 1), None);
        assert_eq!(level_at(doc, doc.find('E').unwrap()), Some(Level::Sentence));
        assert_eq!(level_at("Mr. X", 3), Some(Level::Sentence));
        assert_eq!(level_at("Wow!\" Yes", 5), Some(Level::Sentence));
        // reST directives and doctest continuation prompts are not sentence ends.
        assert_eq!(level_at("given by\n\n.. math ::", 12), Some(Level::Space));
        assert_eq!(level_at("    ... nprint(x)", 7), Some(Level::Space));
        assert_eq!(level_at("..", 2), None);
    }
}
