//! Every format that crosses a file boundary in a SPICE run, in one place.
//!
//! - [`rows`]: one row type per shard folder (`chunks/`, `challenger/`, `tasks/`, …), whose
//!   Arrow schema is derived from the type, so the Rust struct *is* the file format.
//! - [`parquet_io`]: zstd Parquet writing and schema-checked reading.
//! - [`manifest`] and [`commit`]: `_manifest.json` and the write-rename-manifest-last protocol
//!   that makes a stage's output either finished or visibly unfinished; [`committed`]: reading
//!   a stage's input folder only once every part has committed, each file checked against its
//!   manifest ([`integrity`]); [`run_stage`]: the lifecycle of one stage part (skip, read,
//!   begin, write, commit) around the stage's own step.
//! - [`metrics`]: the numbers each stage records in its manifest, one struct per stage.
//! - [`config`]: `run.toml`, every knob of the method with the paper's defaults.
//! - [`layout`]: where each folder of a run lives; [`prune`]: removing a committed folder's
//!   files on purpose (old checkpoints) while it keeps reading as done.

pub use spice_vocab as vocab;

pub mod commit;
pub mod committed;
pub mod config;
pub mod digest;
pub mod integrity;
pub mod layout;
pub mod manifest;
pub mod metrics;
pub mod parquet_io;
pub mod prune;
pub mod rows;
pub mod run_stage;
pub mod shard;

pub use commit::{StageOutput, Status};
pub use committed::{
    committed_files, read_committed, read_committed_rows, CommittedFile, Located, RowAt,
};
pub use config::RunConfig;
pub use manifest::Manifest;
pub use parquet_io::{read_folder, read_shard, ShardWriter};
pub use run_stage::{run_stage, Part};
pub use shard::{ShardRow, ShardSpec};
