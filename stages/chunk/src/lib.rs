//! `spice-chunk`: the corpus cut into passages the Challenger can read.
//!
//! - [`corpus`]: which files make up the corpus (files and folders, sorted, with formats);
//! - [`read`]: documents out of JSONL, JSONL.zst, Parquet and text files, bad records counted;
//! - [`split`]: one document into passages of at most `corpus.max_doc_tokens` tokens, cut at
//!   paragraph breaks, then sentence ends, then whitespace;
//! - [`tokens`]: token counts under the policy's `tokenizer.json`;
//! - [`stage`]: the stage itself, writing `<run>/chunks/` under the commit protocol.

pub mod corpus;
pub mod read;
pub mod skips;
pub mod split;
pub mod stage;
pub mod tokens;

pub use stage::{chunk_id, run, run_ctx, ChunkOptions, Outcome};
