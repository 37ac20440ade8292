//! Prompt prefixes prefilled by earlier `generate` calls of a generation-only policy, kept
//! for the next calls: the Challenger's rounds return to the documents still open, whose
//! prompts begin with the same document each round.
//!
//! Only a policy whose weights can no longer change keeps them ([`crate::Policy::generation_only`]
//! releases the master weights), and only outside batch-invariant generation, where a prompt
//! is always prefilled whole.

use std::collections::VecDeque;

use crate::kv_cache::PrefixKv;

/// Tokens the cache holds at most; the oldest prefixes leave first. At 46 KB a token
/// (SmolLM2-135M, f32 attention) that is 0.75 GB, about 28 documents of 560 tokens.
pub const PREFIX_CACHE_TOKENS: usize = 16_384;

#[derive(Default)]
pub struct PrefixCache {
    /// Oldest first: each prefix's tokens and its keys and values ([1, kv_heads, len,
    /// head_dim] per layer).
    entries: VecDeque<(Vec<u32>, PrefixKv)>,
    tokens: usize,
}

impl PrefixCache {
    /// The longest cached prefix of `prompt[..at_most]` of at least `min` tokens: its length
    /// and its keys and values (views of the cached tensors).
    pub fn longest(&self, prompt: &[u32], at_most: usize, min: usize) -> Option<(usize, PrefixKv)> {
        let head = &prompt[..at_most.min(prompt.len())];
        self.entries
            .iter()
            .filter(|(t, _)| t.len() >= min && head.starts_with(t))
            .max_by_key(|(t, _)| t.len())
            .map(|(t, kv)| (t.len(), kv.shallow_clone()))
    }

    /// Keep `kv`, the keys and values of `tokens`, dropping the oldest prefixes past
    /// [`PREFIX_CACHE_TOKENS`]; a prefix already held is only renewed.
    pub fn insert(&mut self, tokens: &[u32], kv: &PrefixKv) {
        if let Some(i) = self.entries.iter().position(|(t, _)| t == tokens) {
            let entry = self.entries.remove(i).unwrap();
            self.entries.push_back(entry);
            return;
        }
        if tokens.len() > PREFIX_CACHE_TOKENS {
            return;
        }
        self.tokens += tokens.len();
        self.entries.push_back((tokens.to_vec(), kv.shallow_clone()));
        while self.tokens > PREFIX_CACHE_TOKENS {
            let (t, _) = self.entries.pop_front().unwrap();
            self.tokens -= t.len();
        }
    }

    pub fn tokens(&self) -> usize {
        self.tokens
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind, Tensor};

    fn kv(len: i64) -> PrefixKv {
        let t = || Tensor::zeros([1, 2, len, 4], (Kind::Float, Device::Cpu));
        PrefixKv { k: vec![t()], v: vec![t()] }
    }

    #[test]
    fn finds_the_longest_held_prefix_and_drops_the_oldest() {
        let mut c = PrefixCache::default();
        let doc: Vec<u32> = (0..100).collect();
        c.insert(&doc[..70], &kv(70));
        c.insert(&doc[..90], &kv(90));
        c.insert(&[5, 5, 5], &kv(3));
        let (n, found) = c.longest(&doc, 99, 64).unwrap();
        assert_eq!((n, found.len()), (90, 90));
        // Never past `at_most` (a prompt keeps a token of its own), never under `min`.
        assert_eq!(c.longest(&doc, 80, 64).unwrap().0, 70);
        assert!(c.longest(&doc, 99, 95).is_none());
        assert!(c.longest(&[1, 2, 3], 3, 1).is_none());
        assert_eq!(c.tokens(), 163);
        // Renewing an entry keeps one copy.
        c.insert(&doc[..70], &kv(70));
        assert_eq!(c.tokens(), 163);
        // Past the limit the oldest go: [..90] first, then [5, 5, 5]; [..70] was renewed.
        let big: Vec<u32> = (1000..1000 + PREFIX_CACHE_TOKENS as u32 - 70).collect();
        c.insert(&big, &kv(4));
        assert_eq!(c.tokens(), 70 + big.len());
        assert_eq!(c.longest(&doc, 99, 64).unwrap().0, 70);
        assert!(c.longest(&[5, 5, 5, 6], 3, 1).is_none());
    }
}
