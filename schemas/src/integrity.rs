//! Checking committed files against what their manifests recorded at commit time: size and
//! content digest. A committed file that no longer matches its own manifest is corruption
//! (disk, a bad copy, a hand edit), never new input.

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::{
    digest::{digest_path, sha256_bytes},
    manifest::OutputFile,
};

/// How a committed file compares with its manifest's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileState {
    Intact,
    Missing,
    /// The size differs (found without reading the file).
    Size {
        recorded: u64,
        found: u64,
    },
    Digest {
        recorded: String,
        found: String,
    },
}

impl FileState {
    pub fn is_intact(&self) -> bool {
        *self == FileState::Intact
    }

    /// `recorded sha256:… found sha256:…`, for messages.
    pub fn describe(&self) -> String {
        match self {
            FileState::Intact => "intact".into(),
            FileState::Missing => "missing".into(),
            FileState::Size { recorded, found } => {
                format!("size {found} bytes, its manifest recorded {recorded} bytes")
            }
            FileState::Digest { recorded, found } => {
                format!("digest {found}, its manifest recorded {recorded}")
            }
        }
    }
}

/// How much of a file [`check_file`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// Existence and size only: no read (for a 16 GB checkpoint on every load).
    Size,
    /// Size, then the content digest.
    Full,
}

/// Compare `out` (a file of the folder `dir`, as its manifest lists it) with the disk.
pub fn check_file(dir: &Path, out: &OutputFile, depth: Depth) -> Result<FileState> {
    let path = dir.join(&out.file);
    let Ok(meta) = std::fs::metadata(&path) else {
        return Ok(FileState::Missing);
    };
    // Manifests written before sizes were recorded say 0: their size is unknown.
    if meta.is_file() && out.bytes > 0 && meta.len() != out.bytes {
        return Ok(FileState::Size { recorded: out.bytes, found: meta.len() });
    }
    if depth == Depth::Size {
        return Ok(FileState::Intact);
    }
    let found = digest_path(&path)?;
    Ok(if found == out.digest {
        FileState::Intact
    } else {
        FileState::Digest { recorded: out.digest.clone(), found }
    })
}

/// Compare the content of a file already read into memory with its manifest's record.
pub fn check_bytes(out: &OutputFile, bytes: &[u8]) -> FileState {
    let len = bytes.len() as u64;
    if out.bytes > 0 && len != out.bytes {
        return FileState::Size { recorded: out.bytes, found: len };
    }
    let found = sha256_bytes(bytes);
    if found == out.digest {
        FileState::Intact
    } else {
        FileState::Digest { recorded: out.digest.clone(), found }
    }
}

/// The error for a committed file that does not match its manifest: which file, which
/// manifest, both digests (or sizes), and how to regenerate it.
pub fn corruption_error(
    file: &Path,
    manifest: &Path,
    state: &FileState,
    producer: &str,
) -> anyhow::Error {
    anyhow::anyhow!(
        "{} is corrupt: {} ({}). A committed file never changes, so this is damage (disk, copy \
         or edit), not new input; rerun `{producer}` with --force for this folder to regenerate \
         it (`spice verify-run <run>` checks a whole run and lists what must be redone)",
        file.display(),
        state.describe(),
        manifest.display()
    )
}

/// Sizes in bytes of a committed output (a file, or every file under a folder).
pub fn size_of(path: &Path) -> Result<u64> {
    let meta = std::fs::metadata(path)?;
    if meta.is_file() {
        return Ok(meta.len());
    }
    let mut total = 0;
    let mut stack: Vec<PathBuf> = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let meta = entry.metadata()?;
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                total += meta.len();
            }
        }
    }
    Ok(total)
}

/// One committed part of a folder that does not match its manifest.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Damage {
    /// The part's manifest.
    pub manifest: PathBuf,
    /// The stage that wrote the part.
    pub stage: String,
    pub file: String,
    pub state: String,
}

/// What [`check_folder`] found in one output folder.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct FolderCheck {
    /// Committed parts (manifests of the folder's current split).
    pub parts: u32,
    /// Parts the split has.
    pub parts_expected: u32,
    pub files: u64,
    pub bytes: u64,
    /// Committed files that no longer match their manifests.
    pub damaged: Vec<Damage>,
    /// Inputs whose content differs from what the stage read (its stage will redo it):
    /// `name (path)`.
    pub stale_inputs: Vec<String>,
    /// Inputs no longer on disk (a moved model): `name (path)`.
    pub gone_inputs: Vec<String>,
    /// Its files were removed on purpose (`checkpoint.keep`, [`crate::prune`]): only its
    /// manifests are checked.
    pub pruned: bool,
}

impl FolderCheck {
    pub fn complete(&self) -> bool {
        self.parts_expected > 0 && self.parts == self.parts_expected
    }
}

/// Check every committed part of `dir` in full: completeness, each output's size and digest,
/// and each recorded input against its current content. Inputs recorded run-relative are
/// found under `run_root`.
pub fn check_folder(dir: &Path, run_root: &Path) -> Result<FolderCheck> {
    let manifests = crate::Manifest::read_all(dir)?;
    let mut check = FolderCheck::default();
    let Some(first) = manifests.first() else {
        return Ok(check);
    };
    let count = first.shard.count;
    check.parts_expected = count;
    check.pruned = crate::prune::is_pruned(dir);
    let mut inputs_seen: Vec<&crate::digest::InputDigest> = Vec::new();
    for m in manifests.iter().filter(|m| m.shard.count == count) {
        check.parts += 1;
        let manifest = dir.join(m.shard.manifest_file());
        for out in m.outputs.iter().filter(|_| !check.pruned) {
            check.files += 1;
            check.bytes += out.bytes;
            let state = check_file(dir, out, Depth::Full)?;
            if !state.is_intact() {
                check.damaged.push(Damage {
                    manifest: manifest.clone(),
                    stage: m.stage.clone(),
                    file: out.file.clone(),
                    state: state.describe(),
                });
            }
        }
        for input in &m.inputs {
            if inputs_seen.contains(&input) {
                continue;
            }
            inputs_seen.push(input);
            let path = if input.path.is_absolute() {
                input.path.clone()
            } else {
                run_root.join(&input.path)
            };
            // A relative path recorded before runs were relocatable is relative to where the
            // stage ran; try it as given too.
            let path = if path.exists() { path } else { input.path.clone() };
            let label = format!("{} ({})", input.name, input.path.display());
            if !path.exists() {
                check.gone_inputs.push(label);
            } else if digest_path(&path)? != input.digest {
                check.stale_inputs.push(label);
            }
        }
    }
    Ok(check)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::sha256_file;

    fn record(dir: &Path, name: &str) -> OutputFile {
        let path = dir.join(name);
        OutputFile {
            file: name.into(),
            rows: 0,
            bytes: std::fs::metadata(&path).unwrap().len(),
            digest: sha256_file(&path).unwrap(),
        }
    }

    #[test]
    fn a_flipped_byte_changes_the_digest_and_a_cut_changes_the_size() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("f"), b"0123456789").unwrap();
        let rec = record(tmp.path(), "f");
        assert!(check_file(tmp.path(), &rec, Depth::Full).unwrap().is_intact());

        std::fs::write(tmp.path().join("f"), b"0123X56789").unwrap();
        assert!(check_file(tmp.path(), &rec, Depth::Size).unwrap().is_intact());
        let full = check_file(tmp.path(), &rec, Depth::Full).unwrap();
        assert!(matches!(full, FileState::Digest { .. }), "{full:?}");
        assert!(matches!(check_bytes(&rec, b"0123X56789"), FileState::Digest { .. }));

        std::fs::write(tmp.path().join("f"), b"01234").unwrap();
        let cut = check_file(tmp.path(), &rec, Depth::Size).unwrap();
        assert_eq!(cut, FileState::Size { recorded: 10, found: 5 });

        std::fs::remove_file(tmp.path().join("f")).unwrap();
        assert_eq!(check_file(tmp.path(), &rec, Depth::Size).unwrap(), FileState::Missing);
    }

    #[test]
    fn an_old_record_without_size_is_checked_by_digest() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("f"), b"abc").unwrap();
        let rec = OutputFile { bytes: 0, ..record(tmp.path(), "f") };
        assert!(check_file(tmp.path(), &rec, Depth::Full).unwrap().is_intact());
        assert!(check_bytes(&rec, b"abc").is_intact());
        assert!(!check_bytes(&rec, b"abd").is_intact());
    }
}
