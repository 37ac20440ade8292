//! Question diversity of an iteration's valid tasks: how many distinct questions, and how much
//! the questions share word 3-grams (a rising overlap means the Challenger collapses onto few
//! questions).
//!
//! Words are the maximal runs of Unicode letters and digits of the lower-cased question, so
//! case, punctuation and spacing do not make two questions differ. A question's grams are its
//! distinct runs of [`N`] consecutive words; one with fewer words has one gram, all its words.

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use rayon::prelude::*;
use regex::Regex;

/// Word n-gram length.
pub const N: usize = 3;

static WORD: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"[\p{L}\p{N}]+").expect("a valid pattern"));

#[derive(Debug, Clone, PartialEq)]
pub struct Diversity {
    /// Questions that differ after the normalisation to words.
    pub distinct: u64,
    /// Mean Jaccard similarity of the gram sets over all unordered pairs of questions
    /// (a pair whose union is empty counts 0); `None` with fewer than two questions.
    pub overlap: Option<f64>,
}

impl Diversity {
    pub fn of(questions: &[String]) -> Diversity {
        let words: Vec<Vec<String>> = questions.iter().map(|q| words(q)).collect();
        let distinct = words.iter().map(|w| w.join(" ")).collect::<HashSet<_>>().len() as u64;
        // Grams as sorted ids, so a pair's intersection is one merge.
        let mut ids: HashMap<String, u32> = HashMap::new();
        let grams: Vec<Vec<u32>> = words
            .iter()
            .map(|w| {
                let mut g: Vec<u32> = grams(w)
                    .into_iter()
                    .map(|s| {
                        let next = ids.len() as u32;
                        *ids.entry(s).or_insert(next)
                    })
                    .collect();
                g.sort_unstable();
                g.dedup();
                g
            })
            .collect();
        let n = grams.len();
        if n < 2 {
            return Diversity { distinct, overlap: None };
        }
        // Per-row sums in parallel, added in order, so the result does not depend on threads.
        let rows: Vec<f64> = (0..n)
            .into_par_iter()
            .map(|i| (i + 1..n).map(|j| jaccard(&grams[i], &grams[j])).sum())
            .collect();
        let pairs = (n * (n - 1) / 2) as f64;
        Diversity { distinct, overlap: Some(rows.iter().sum::<f64>() / pairs) }
    }
}

pub fn words(question: &str) -> Vec<String> {
    let lower = question.to_lowercase();
    WORD.find_iter(&lower).map(|m| m.as_str().to_string()).collect()
}

pub fn grams(words: &[String]) -> Vec<String> {
    match words.len() {
        0 => Vec::new(),
        n if n < N => vec![words.join(" ")],
        _ => words.windows(N).map(|w| w.join(" ")).collect(),
    }
}

/// |a ∩ b| / |a ∪ b| of two sorted, deduplicated id lists.
fn jaccard(a: &[u32], b: &[u32]) -> f64 {
    let (mut i, mut j, mut both) = (0, 0, 0usize);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                both += 1;
                i += 1;
                j += 1;
            }
        }
    }
    let union = a.len() + b.len() - both;
    if union == 0 {
        0.0
    } else {
        both as f64 / union as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qs(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn words_ignore_case_and_punctuation() {
        assert_eq!(words("What is 2+2?  Über-cool!"), ["what", "is", "2", "2", "über", "cool"]);
        assert_eq!(grams(&words("a b")), ["a b"]);
        assert_eq!(grams(&words("a b c d")), ["a b c", "b c d"]);
    }

    #[test]
    fn overlap_by_hand() {
        // grams: {a b c, b c d} and {b c d, c d e}: 1 shared of 3 → 1/3; the third question
        // shares nothing with either.
        let d = Diversity::of(&qs(&["A b c d", "b c, d e", "x y z"]));
        assert_eq!(d.distinct, 3);
        let want = (1.0 / 3.0 + 0.0 + 0.0) / 3.0;
        assert!((d.overlap.unwrap() - want).abs() < 1e-15);
        let same = Diversity::of(&qs(&["What is x?", "what is X", "Other one here"]));
        assert_eq!(same.distinct, 2);
        assert!((same.overlap.unwrap() - 1.0 / 3.0).abs() < 1e-15);
        assert_eq!(Diversity::of(&qs(&["only one"])).overlap, None);
        assert_eq!(Diversity::of(&qs(&["?", "!"])), Diversity { distinct: 1, overlap: Some(0.0) });
    }
}
