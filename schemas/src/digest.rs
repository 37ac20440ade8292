//! Content digests: "already done" is decided from what inputs contain, not from mtimes.

use std::{
    fs::File,
    io::Read,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::manifest::Manifest;

/// `sha256:<hex>` of a byte string.
pub fn sha256_bytes(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// `sha256:<hex>` of a file's content, streamed.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file =
        File::open(path).with_context(|| format!("opening {} to digest it", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(format!("sha256:{}", hex::encode(hasher.finalize())))
}

/// Digest of a serialisable value (a config section), over its canonical JSON.
pub fn sha256_json<T: Serialize>(value: &T) -> String {
    let json = serde_json::to_vec(value).expect("config values serialise to JSON");
    sha256_bytes(&json)
}

/// One input of a stage as recorded in its manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputDigest {
    /// What the input is to the stage (`policy`, `tasks`, `corpus`, …).
    pub name: String,
    /// Relative to the run folder when the input lies inside it (`iter-0002/tasks`), else as
    /// the stage was given it. For people: "done" compares names and digests only.
    pub path: PathBuf,
    pub digest: String,
}

/// Digest a file or a folder.
///
/// A folder that a stage committed (it has manifests) is digested from its manifests'
/// output digests, so a 16 GB checkpoint is not re-read by every stage that uses it; any
/// other folder from the content of every file in it, by relative name, in sorted order.
pub fn digest_path(path: &Path) -> Result<String> {
    let meta = std::fs::metadata(path)
        .with_context(|| format!("input {} does not exist", path.display()))?;
    if meta.is_file() {
        return sha256_file(path);
    }
    let manifests = Manifest::read_all(path)?;
    if !manifests.is_empty() {
        let parts: Vec<String> = manifests.iter().map(|m| m.output_digest.clone()).collect();
        return Ok(sha256_bytes(parts.join("\n").as_bytes()));
    }
    let mut files = Vec::new();
    collect_files(path, path, &mut files)?;
    files.sort();
    let mut listing = String::new();
    for rel in files {
        let d = sha256_file(&path.join(&rel))?;
        listing.push_str(&format!("{}\t{d}\n", rel.display()));
    }
    Ok(sha256_bytes(listing.as_bytes()))
}

fn collect_files(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if name.ends_with(".tmp") || name.starts_with('.') {
            continue;
        }
        if path.is_dir() {
            collect_files(root, &path, out)?;
        } else {
            out.push(path.strip_prefix(root).expect("walk stays under root").to_path_buf());
        }
    }
    Ok(())
}
