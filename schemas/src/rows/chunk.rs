use serde::{Deserialize, Serialize};

use crate::shard::ShardRow;

/// `chunks/`: a passage of at most `max_doc_tokens` tokens cut from one corpus document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkRow {
    /// Stable id: a digest of (source, document index, byte offsets), unchanged by reruns.
    pub chunk_id: String,
    /// Corpus file the document came from, relative to the corpus root when possible.
    pub source: String,
    /// Index of the document within its source file (line of a JSONL file, row of a Parquet
    /// file, 0 for a plain-text file).
    pub doc_index: u64,
    /// Index of this chunk within its document.
    pub chunk_index: u32,
    /// Byte range of the passage in the document text.
    pub byte_start: u64,
    pub byte_end: u64,
    /// Tokens in `text` under the policy's tokenizer.
    pub n_tokens: u32,
    pub text: String,
}

impl ShardRow for ChunkRow {
    const FOLDER: &'static str = "chunks";
    const VERSION: u32 = 1;
}
