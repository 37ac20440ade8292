//! `spice-chunk`: cut the corpus into the run's passages (see the library docs).

use std::path::PathBuf;

use clap::Parser;
use spice_chunk::{ChunkOptions, Outcome};

#[derive(Parser)]
#[command(
    name = "spice-chunk",
    version,
    about = "Cut the corpus into passages of at most corpus.max_doc_tokens tokens (<run>/chunks/)",
    long_about = "Reads the corpus (corpus.paths of <run>/run.toml, or --corpus): .jsonl and \
.jsonl.zst files (one JSON object per line, text in corpus.text_field), .parquet files (a string \
column corpus.text_field), and .txt/.md/.rst files (one document each); folders are read \
recursively in sorted order, leaving out names that start with `.` or `_`. Each document is cut \
at paragraph breaks, else sentence ends, else whitespace, into passages of at most \
corpus.max_doc_tokens tokens of the policy's tokenizer; passages under corpus.min_doc_tokens are \
dropped. Bad lines (invalid UTF-8, not JSON, missing or non-string text, corrupt zstd) are \
skipped and counted by reason in the manifest.\n\n\
Writes <run>/chunks/part-00000.parquet and its _manifest.json. Chunks are shared by every \
iteration, so --iter is ignored; a rerun is a no-op until the corpus files, the tokenizer or \
the corpus settings change (--force redoes it). With --shard I/N, part I takes every N-th file. \
--device and --seed are accepted like on every stage, and unused: chunking needs neither."
)]
struct Cli {
    #[command(flatten)]
    stage: spice_stage::StageArgs,
    /// Corpus files or folders to read instead of corpus.paths of run.toml.
    #[arg(long, value_name = "PATH", num_args = 1..)]
    corpus: Vec<PathBuf>,
    /// tokenizer.json to count tokens with, instead of <run.model>/tokenizer.json.
    #[arg(long, value_name = "FILE")]
    tokenizer: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    spice_stage::init_logging();
    let cli = Cli::parse();
    let opts = ChunkOptions { corpus: cli.corpus, tokenizer: cli.tokenizer };
    let outcome = spice_chunk::run(&cli.stage, &opts)?;
    let m = outcome.manifest();
    let verb = match outcome {
        Outcome::UpToDate(_) => "up to date",
        Outcome::Written(_) => "written",
    };
    println!("chunks {verb}: {} rows in {}", m.rows, cli.stage.run.join("chunks").display());
    Ok(())
}
