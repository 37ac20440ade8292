//! Which files make up the corpus: the configured paths resolved to a deterministic list of
//! files, each with its format and the `source` name its rows carry.

use std::{
    collections::HashMap,
    fmt,
    path::{Path, PathBuf},
};

use anyhow::{bail, Context, Result};

/// How a corpus file holds its documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One JSON object per line; the document is one string field.
    Jsonl,
    /// The same, zstd-compressed.
    JsonlZst,
    /// One document per row of a string column.
    Parquet,
    /// `.txt`, `.md`, `.rst`: the whole file is one document.
    Text,
}

/// File name endings of each format, as `--help` and errors list them.
pub const SUFFIXES: &str = ".jsonl, .jsonl.zst, .parquet, .txt, .md, .rst";

impl Format {
    /// The format of a file, from its name (case-insensitive).
    pub fn of(path: &Path) -> Option<Format> {
        let name = path.file_name()?.to_string_lossy().to_lowercase();
        if name.ends_with(".jsonl.zst") {
            Some(Format::JsonlZst)
        } else if name.ends_with(".jsonl") {
            Some(Format::Jsonl)
        } else if name.ends_with(".parquet") {
            Some(Format::Parquet)
        } else if [".txt", ".md", ".rst"].iter().any(|s| name.ends_with(s)) {
            Some(Format::Text)
        } else {
            None
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Jsonl => "jsonl",
            Format::JsonlZst => "jsonl.zst",
            Format::Parquet => "parquet",
            Format::Text => "text",
        })
    }
}

/// One file of the corpus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorpusFile {
    pub path: PathBuf,
    /// Name recorded in rows and chunk ids: the path relative to the corpus folder it was
    /// found in (`python-docs/tutorial/classes.txt`), or the file name of a file given
    /// directly. Independent of where the corpus lives, so ids survive a move.
    pub source: String,
    pub format: Format,
}

/// The resolved corpus.
#[derive(Debug, Default)]
pub struct Corpus {
    pub files: Vec<CorpusFile>,
    /// Files inside corpus folders with no known format (left out).
    pub ignored: Vec<PathBuf>,
}

/// Resolve corpus paths (files or folders) in the order given; folders are walked
/// recursively in sorted order. Names starting with `.` or `_` are left out of folders (the
/// Hadoop/Spark convention for metadata such as `_SOURCES.md`).
pub fn resolve(paths: &[PathBuf]) -> Result<Corpus> {
    if paths.is_empty() {
        bail!("no corpus paths: set corpus.paths in run.toml or pass --corpus PATH");
    }
    let mut corpus = Corpus::default();
    for root in paths {
        let meta = std::fs::metadata(root).with_context(|| {
            format!(
                "corpus path {} does not exist (run `just setup` for the default corpus)",
                root.display()
            )
        })?;
        if meta.is_dir() {
            let mut rel = Vec::new();
            walk(root, Path::new(""), &mut rel, &mut corpus.ignored)?;
            rel.sort_by(|x, y| x.0.cmp(&y.0));
            for (r, format) in rel {
                let source = slash_path(&r);
                corpus.files.push(CorpusFile { path: root.join(&r), source, format });
            }
        } else {
            let Some(format) = Format::of(root) else {
                bail!(
                    "corpus file {} has no known format (expected one of {SUFFIXES})",
                    root.display()
                );
            };
            let source =
                root.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            corpus.files.push(CorpusFile { path: root.clone(), source, format });
        }
    }
    disambiguate(&mut corpus.files);
    Ok(corpus)
}

fn walk(
    root: &Path,
    rel: &Path,
    out: &mut Vec<(PathBuf, Format)>,
    ignored: &mut Vec<PathBuf>,
) -> Result<()> {
    let dir = root.join(rel);
    let entries = std::fs::read_dir(&dir)
        .with_context(|| format!("listing corpus folder {}", dir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("listing corpus folder {}", dir.display()))?;
        let name = entry.file_name();
        let name_str = name.to_string_lossy();
        if name_str.starts_with('.') || name_str.starts_with('_') {
            continue;
        }
        let child = rel.join(&name);
        let path = root.join(&child);
        if path.is_dir() {
            walk(root, &child, out, ignored)?;
        } else if let Some(format) = Format::of(&path) {
            out.push((child, format));
        } else {
            ignored.push(path);
        }
    }
    Ok(())
}

fn slash_path(rel: &Path) -> String {
    rel.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/")
}

/// Two corpus paths can hold files with the same relative name; those keep their path as
/// given, so no two documents share a source (and chunk ids stay unique).
fn disambiguate(files: &mut [CorpusFile]) {
    let mut seen: HashMap<String, usize> = HashMap::new();
    for f in files.iter() {
        *seen.entry(f.source.clone()).or_default() += 1;
    }
    for f in files.iter_mut() {
        if seen[&f.source] > 1 {
            f.source = slash_path(&f.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_by_name() {
        assert_eq!(Format::of(Path::new("a/b.jsonl")), Some(Format::Jsonl));
        assert_eq!(Format::of(Path::new("b.JSONL.zst")), Some(Format::JsonlZst));
        assert_eq!(Format::of(Path::new("b.parquet")), Some(Format::Parquet));
        assert_eq!(Format::of(Path::new("b.rst")), Some(Format::Text));
        assert_eq!(Format::of(Path::new("b.md")), Some(Format::Text));
        assert_eq!(Format::of(Path::new("b.zst")), None);
        assert_eq!(Format::of(Path::new("b.json")), None);
    }

    #[test]
    fn folders_are_walked_sorted_and_metadata_is_left_out() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for f in [
            "b/z.txt",
            "b/a.md",
            "a.jsonl",
            "_SOURCES.md",
            ".hidden/x.txt",
            "_meta/y.txt",
            "notes.pdf",
        ] {
            let p = root.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, "x").unwrap();
        }
        let c = resolve(&[root.to_path_buf()]).unwrap();
        let sources: Vec<&str> = c.files.iter().map(|f| f.source.as_str()).collect();
        assert_eq!(sources, ["a.jsonl", "b/a.md", "b/z.txt"]);
        assert_eq!(c.ignored, [root.join("notes.pdf")]);
    }

    #[test]
    fn missing_paths_and_unknown_files_are_named() {
        let err = resolve(&[PathBuf::from("/no/such/corpus")]).unwrap_err();
        assert!(format!("{err:#}").contains("/no/such/corpus"), "{err:#}");
        let dir = tempfile::tempdir().unwrap();
        let pdf = dir.path().join("a.pdf");
        std::fs::write(&pdf, "x").unwrap();
        let err = resolve(&[pdf]).unwrap_err();
        assert!(format!("{err:#}").contains("a.pdf"), "{err:#}");
    }

    #[test]
    fn same_relative_names_in_two_roots_stay_distinct() {
        let dir = tempfile::tempdir().unwrap();
        for r in ["one", "two"] {
            std::fs::create_dir_all(dir.path().join(r)).unwrap();
            std::fs::write(dir.path().join(r).join("doc.txt"), "x").unwrap();
        }
        let c = resolve(&[dir.path().join("one"), dir.path().join("two")]).unwrap();
        assert_ne!(c.files[0].source, c.files[1].source);
        assert!(c.files[0].source.ends_with("one/doc.txt"));
    }
}
