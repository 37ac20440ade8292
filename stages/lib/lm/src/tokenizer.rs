//! `tokenizer.json` through the `tokenizers` crate.

use std::path::Path;

use anyhow::{anyhow, Context, Result};

pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
}

impl Tokenizer {
    pub fn from_file(path: &Path) -> Result<Tokenizer> {
        let inner = tokenizers::Tokenizer::from_file(path)
            .map_err(|e| anyhow!("{e}"))
            .with_context(|| format!("loading tokenizer {}", path.display()))?;
        Ok(Tokenizer { inner })
    }

    /// Token ids of `text` with no special tokens added (chat templates already write them).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self.inner.encode(text, false).map_err(|e| anyhow!("tokenizing text: {e}"))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Text of `ids`; special tokens (`<|im_end|>`, …) are left out when `skip_special`.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        self.inner.decode(ids, skip_special).map_err(|e| anyhow!("decoding token ids: {e}"))
    }

    /// Whether `id` is a special token: an added token marked special (`<|im_end|>`,
    /// `<|endoftext|>`, …), the kind `decode` leaves out when asked to.
    pub fn is_special(&self, id: u32) -> bool {
        self.inner
            .get_added_vocabulary()
            .get_added_tokens_decoder()
            .get(&id)
            .is_some_and(|t| t.special)
    }

    /// The id of the special token written `content`, if the tokenizer has one.
    pub fn special_id(&self, content: &str) -> Option<u32> {
        self.inner.token_to_id(content).filter(|&id| self.is_special(id))
    }

    /// The text of token `id` as the vocabulary spells it.
    pub fn token_text(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }
}
