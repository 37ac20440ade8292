//! Corpus records that were skipped, counted by reason, with the first few as examples.
//! Bad records never stop the stage; the manifest says how many there were and why.

use std::collections::BTreeMap;

/// Why a record of a corpus file was skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SkipReason {
    /// The line or file is not valid UTF-8.
    InvalidUtf8,
    /// A blank line, or a document that is empty or only whitespace.
    Empty,
    /// A JSONL line that is not a JSON object.
    NotJson,
    /// The text field (JSONL key or Parquet column) is missing or null.
    MissingField,
    /// The text field holds something other than a string.
    NotAString,
    /// The zstd stream is corrupt or truncated: the rest of the file is unreadable.
    ZstdError,
    /// The Parquet file or one of its row groups is unreadable: the rest of the file is lost.
    ParquetError,
    /// Reading the file failed part-way (I/O error).
    ReadError,
    /// The tokenizer rejected the document.
    TokenizerError,
}

impl SkipReason {
    /// The name used in manifests and logs.
    pub fn name(self) -> &'static str {
        match self {
            SkipReason::InvalidUtf8 => "invalid_utf8",
            SkipReason::Empty => "empty",
            SkipReason::NotJson => "not_json",
            SkipReason::MissingField => "missing_field",
            SkipReason::NotAString => "not_a_string",
            SkipReason::ZstdError => "zstd_error",
            SkipReason::ParquetError => "parquet_error",
            SkipReason::ReadError => "read_error",
            SkipReason::TokenizerError => "tokenizer_error",
        }
    }
}

/// Examples kept in the manifest, and warnings logged per reason (the rest is only counted).
const MAX_EXAMPLES: usize = 10;
const MAX_WARNINGS_PER_REASON: u64 = 5;

#[derive(Debug, Default)]
pub struct Skips {
    counts: BTreeMap<SkipReason, u64>,
    examples: Vec<String>,
}

impl Skips {
    /// Record `records` skipped records (1 for a line; a file's row count when a whole
    /// Parquet file lacks the column) at `at` (`file:line`).
    pub fn add(&mut self, reason: SkipReason, records: u64, at: &str, detail: &str) {
        let seen = self.counts.entry(reason).or_default();
        if *seen < MAX_WARNINGS_PER_REASON {
            tracing::warn!("skipped {at}: {}: {detail}", reason.name());
        } else if *seen == MAX_WARNINGS_PER_REASON {
            tracing::warn!("more records skipped as {}; the manifest has the count", reason.name());
        }
        *seen += records;
        if self.examples.len() < MAX_EXAMPLES {
            self.examples.push(format!("{at}: {}: {detail}", reason.name()));
        }
    }

    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }

    pub fn count(&self, reason: SkipReason) -> u64 {
        self.counts.get(&reason).copied().unwrap_or(0)
    }

    /// `{"invalid_utf8": 2, …}`, only reasons that occurred.
    pub fn counts(&self) -> BTreeMap<String, u64> {
        self.counts.iter().map(|(r, n)| (r.name().to_string(), *n)).collect()
    }

    pub fn examples(&self) -> &[String] {
        &self.examples
    }

    /// `invalid_utf8 2, not_json 1` for error messages.
    pub fn summary(&self) -> String {
        if self.counts.is_empty() {
            return "none".into();
        }
        self.counts.iter().map(|(r, n)| format!("{} {n}", r.name())).collect::<Vec<_>>().join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_reason_and_keeps_the_first_examples() {
        let mut s = Skips::default();
        for i in 0..15 {
            s.add(SkipReason::NotJson, 1, &format!("a.jsonl:{i}"), "expected value");
        }
        s.add(SkipReason::MissingField, 40, "b.parquet", "no column `text`");
        assert_eq!(s.total(), 55);
        assert_eq!(s.count(SkipReason::NotJson), 15);
        let expected = [("not_json".to_string(), 15), ("missing_field".to_string(), 40)];
        assert_eq!(s.counts(), expected.into_iter().collect());
        assert_eq!(s.examples().len(), MAX_EXAMPLES);
        assert_eq!(s.examples()[0], "a.jsonl:0: not_json: expected value");
        assert_eq!(s.summary(), "not_json 15, missing_field 40");
    }
}
