//! `spice doctor`: the policy's view of this machine (from `spice-lm doctor`, which links
//! libtorch as every model stage does), and whether each model stage binary was linked with
//! libtorch's CUDA backend — a binary built without it silently runs on the CPU of a GPU node.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// The binaries that load the model.
const MODEL_STAGES: [&str; 5] =
    ["spice-lm", "spice-challenge", "spice-rollout", "spice-update", "spice-eval"];

#[derive(clap::Args)]
pub struct DoctorArgs {
    /// text or json.
    #[arg(long, default_value = "text")]
    format: String,
    /// Folder of the stage binaries (default: the folder of this binary).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
}

/// How one stage binary links libtorch.
#[derive(Debug, serde::Serialize)]
struct Linkage {
    binary: String,
    libtorch: bool,
    cuda_backend: bool,
}

pub fn run(args: &DoctorArgs) -> Result<()> {
    let bin_dir = match &args.bin_dir {
        Some(d) => d.clone(),
        None => std::env::current_exe()?.parent().map(Path::to_path_buf).unwrap_or_default(),
    };
    if !matches!(args.format.as_str(), "text" | "json") {
        bail!("--format {:?}: use text or json", args.format);
    }
    let lm = bin_dir.join("spice-lm");
    let out = Command::new(&lm)
        .args(["doctor", "--format", &args.format])
        .output()
        .with_context(|| format!("running {} (build it: cargo build --release)", lm.display()))?;
    if !out.status.success() {
        bail!("{} doctor failed:\n{}", lm.display(), String::from_utf8_lossy(&out.stderr));
    }
    let stdout = String::from_utf8(out.stdout).context("spice-lm doctor wrote non-UTF-8")?;
    let links: Vec<Linkage> = MODEL_STAGES
        .iter()
        .filter_map(|b| {
            let path = bin_dir.join(b);
            let needed = needed_libraries(&path).ok()?;
            Some(Linkage {
                binary: b.to_string(),
                libtorch: needed.iter().any(|n| n == "libtorch_cpu.so"),
                cuda_backend: needed.iter().any(|n| n == "libtorch_cuda.so"),
            })
        })
        .collect();
    if args.format == "json" {
        let mut v: serde_json::Value =
            serde_json::from_str(&stdout).context("spice-lm doctor --format json")?;
        v["stage_binaries"] = serde_json::to_value(&links)?;
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    print!("{stdout}");
    println!("\nstage binaries in {}", bin_dir.display());
    for l in &links {
        let cuda = match (l.libtorch, l.cuda_backend) {
            (false, _) => "does not link libtorch",
            (true, true) => "libtorch + CUDA backend",
            (true, false) => "libtorch without its CUDA backend (CPU only)",
        };
        println!("  {:<16} {cuda}", l.binary);
    }
    Ok(())
}

/// The `DT_NEEDED` entries of an ELF binary: the shared libraries it loads at start.
pub fn needed_libraries(path: &Path) -> Result<Vec<String>> {
    use object::read::elf::{ElfFile64, FileHeader};
    let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let file = ElfFile64::<object::Endianness>::parse(&*data)
        .with_context(|| format!("{} is not a 64-bit ELF binary", path.display()))?;
    let endian = file.elf_header().endian()?;
    let table = file.elf_section_table().dynamic_table(endian, &*data)?;
    let mut out = Vec::new();
    for d in &table {
        if d.tag == object::elf::DT_NEEDED {
            out.push(String::from_utf8_lossy(table.string(d)?).into_owned());
        }
    }
    Ok(out)
}
