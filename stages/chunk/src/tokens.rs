//! Token counts under the policy's tokenizer (`tokenizer.json`, no special tokens added).

use std::path::Path;

use anyhow::{anyhow, Context, Result};

/// What the splitter needs from a tokenizer.
pub trait Tokens: Sync {
    /// Byte offsets in `text` where its tokens start, ascending.
    fn starts(&self, text: &str) -> Result<Vec<usize>>;
    /// Number of tokens of `text`.
    fn count(&self, text: &str) -> Result<usize>;
}

/// A Hugging Face `tokenizer.json`.
pub struct HfTokens {
    inner: tokenizers::Tokenizer,
}

impl HfTokens {
    pub fn load(path: &Path) -> Result<HfTokens> {
        let mut inner = tokenizers::Tokenizer::from_file(path)
            .map_err(|e| anyhow!("{e}"))
            .with_context(|| format!("loading tokenizer {}", path.display()))?;
        // A tokenizer.json may carry truncation or padding settings, which would make
        // counts lie about long passages.
        inner.with_truncation(None).map_err(|e| anyhow!("{e}"))?;
        inner.with_padding(None);
        Ok(HfTokens { inner })
    }
}

impl Tokens for HfTokens {
    fn starts(&self, text: &str) -> Result<Vec<usize>> {
        let enc = self.inner.encode(text, false).map_err(|e| anyhow!("tokenizing: {e}"))?;
        let mut starts: Vec<usize> = enc.get_offsets().iter().map(|&(s, _)| s).collect();
        // Pieces of one character share its offsets, and normalizers may reorder; the
        // splitter only needs them sorted.
        starts.sort_unstable();
        Ok(starts)
    }

    fn count(&self, text: &str) -> Result<usize> {
        let enc = self.inner.encode_fast(text, false).map_err(|e| anyhow!("tokenizing: {e}"))?;
        Ok(enc.len())
    }
}
