use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `chunks/`: what was read from the corpus and what became chunks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ChunkMetrics {
    /// Corpus files read, and files left out (not a known corpus format).
    pub files: u64,
    pub files_ignored: u64,
    pub documents: u64,
    pub documents_without_chunks: u64,
    pub chunks: u64,
    /// Chunks and tokens per first component of `source` (a corpus sub-folder, or a file).
    pub chunks_by_top_level: BTreeMap<String, u64>,
    pub tokens_by_top_level: BTreeMap<String, u64>,
    pub tokens_total: u64,
    pub tokens_mean: f64,
    pub tokens_min: u64,
    pub tokens_max: u64,
    pub passages_dropped_short: u64,
    pub passages_dropped_unsplittable: u64,
    /// Records that could not be read, in all and per reason (`invalid_utf8`, `not_json`, …),
    /// with a few examples naming file and line.
    pub skipped_total: u64,
    pub skipped: BTreeMap<String, u64>,
    pub skip_examples: Vec<String>,
    pub seconds: f64,
    pub documents_per_second: f64,
}

impl crate::metrics::StageMetrics for ChunkMetrics {}
