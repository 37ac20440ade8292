//! The stage end to end: real corpus files of every format in, a committed `chunks/` shard
//! out, with the tiny test tokenizer of spice-lm.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs::File,
    path::{Path, PathBuf},
    process::Command,
    sync::Arc,
};

use arrow::{
    array::{ArrayRef, Int64Array, StringArray},
    record_batch::RecordBatch,
};
use serde_json::json;
use spice_chunk::{tokens::HfTokens, tokens::Tokens, ChunkOptions, Outcome};
use spice_schemas::{read_shard, rows::ChunkRow, Manifest, RunConfig, ShardSpec};
use spice_stage::StageArgs;

const MAX: usize = 256;
const MIN: usize = 4;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../lib/lm/fixtures").join(name)
}

/// A run folder whose run.toml reads `corpus` with the tiny Llama-3 tokenizer.
fn run_folder(root: &Path, corpus: &Path, extra: &[&str]) -> PathBuf {
    let run = root.join("run");
    std::fs::create_dir_all(&run).unwrap();
    let mut overrides = vec![
        format!("corpus.paths=[{:?}]", corpus.display().to_string()),
        format!("corpus.max_doc_tokens={MAX}"),
        format!("corpus.min_doc_tokens={MIN}"),
        format!("run.model={:?}", fixture("tiny-llama3").display().to_string()),
    ];
    overrides.extend(extra.iter().map(|s| s.to_string()));
    let cfg = RunConfig::default().with_overrides(&overrides).unwrap();
    std::fs::write(run.join("run.toml"), cfg.to_toml()).unwrap();
    run
}

fn args(run: &Path) -> StageArgs {
    StageArgs {
        run: run.to_path_buf(),
        iter: 0,
        device: None,
        seed: None,
        shard: ShardSpec::WHOLE,
        force: false,
    }
}

fn chunk(run: &Path) -> anyhow::Result<Outcome> {
    spice_chunk::run(&args(run), &ChunkOptions::default())
}

fn rows(run: &Path) -> Vec<ChunkRow> {
    read_shard::<ChunkRow>(&run.join("chunks/part-00000.parquet")).unwrap()
}

/// Deterministic prose: paragraphs of numbered sentences.
fn prose(seed: u64, paragraphs: usize, sentences: usize) -> String {
    let words = [
        "the",
        "series",
        "converges",
        "for",
        "every",
        "real",
        "x",
        "and",
        "its",
        "sum",
        "is",
        "finite",
    ];
    let mut state = seed.wrapping_mul(0x9E3779B97F4A7C15) | 1;
    let mut doc = String::new();
    for p in 0..paragraphs {
        for s in 0..sentences {
            doc.push_str(&format!("Fact {p}.{s}:"));
            for _ in 0..6 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                doc.push(' ');
                doc.push_str(words[(state % words.len() as u64) as usize]);
            }
            doc.push_str(". ");
        }
        doc.push_str("\n\n");
    }
    doc
}

fn write_parquet(path: &Path, texts: &[&str]) {
    let text: ArrayRef = Arc::new(StringArray::from(texts.to_vec()));
    let id: ArrayRef = Arc::new(Int64Array::from((0..texts.len() as i64).collect::<Vec<_>>()));
    let batch = RecordBatch::try_from_iter(vec![("id", id), ("text", text)]).unwrap();
    let mut w =
        parquet::arrow::ArrowWriter::try_new(File::create(path).unwrap(), batch.schema(), None)
            .unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

fn jsonl(docs: &[String]) -> String {
    docs.iter().map(|d| json!({"id": 1, "text": d}).to_string() + "\n").collect()
}

/// A corpus with every format; returns the documents by (source, doc_index).
fn every_format(dir: &Path) -> BTreeMap<(String, u64), String> {
    let mut docs = BTreeMap::new();
    std::fs::create_dir_all(dir.join("notes")).unwrap();
    let j: Vec<String> = (0..3).map(|i| prose(i, 5, 2)).collect();
    std::fs::write(dir.join("a.jsonl"), jsonl(&j)).unwrap();
    for (i, d) in j.iter().enumerate() {
        docs.insert(("a.jsonl".into(), i as u64), d.clone());
    }
    let z: Vec<String> = (10..12).map(|i| prose(i, 6, 2)).collect();
    std::fs::write(dir.join("b.jsonl.zst"), zstd::encode_all(jsonl(&z).as_bytes(), 3).unwrap())
        .unwrap();
    for (i, d) in z.iter().enumerate() {
        docs.insert(("b.jsonl.zst".into(), i as u64), d.clone());
    }
    let p: Vec<String> = (20..24).map(|i| prose(i, 4, 2)).collect();
    write_parquet(&dir.join("c.parquet"), &p.iter().map(String::as_str).collect::<Vec<_>>());
    for (i, d) in p.iter().enumerate() {
        docs.insert(("c.parquet".into(), i as u64), d.clone());
    }
    for (name, seed) in [("notes/d.txt", 30), ("notes/e.md", 31), ("f.rst", 32)] {
        let d = prose(seed, 8, 2);
        std::fs::write(dir.join(name), &d).unwrap();
        docs.insert((name.into(), 0), d);
    }
    // Metadata by convention: never a document.
    std::fs::write(dir.join("_SOURCES.md"), prose(99, 5, 5)).unwrap();
    docs
}

#[test]
fn every_format_becomes_passages_that_are_slices_of_their_documents() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = tmp.path().join("corpus");
    let docs = every_format(&corpus);
    let run = run_folder(tmp.path(), &corpus, &[]);
    let outcome = chunk(&run).unwrap();
    assert!(matches!(outcome, Outcome::Written(_)));
    let rows = rows(&run);
    let tok = HfTokens::load(&fixture("tiny-llama3/tokenizer.json")).unwrap();

    let sources: BTreeSet<&str> = rows.iter().map(|r| r.source.as_str()).collect();
    assert_eq!(
        sources,
        BTreeSet::from([
            "a.jsonl",
            "b.jsonl.zst",
            "c.parquet",
            "f.rst",
            "notes/d.txt",
            "notes/e.md"
        ])
    );
    let mut per_doc: BTreeMap<(String, u64), Vec<&ChunkRow>> = BTreeMap::new();
    for r in &rows {
        let doc = &docs[&(r.source.clone(), r.doc_index)];
        assert_eq!(
            &doc[r.byte_start as usize..r.byte_end as usize],
            r.text,
            "{}:{}",
            r.source,
            r.doc_index
        );
        assert!(r.n_tokens as usize <= MAX && r.n_tokens as usize >= MIN);
        assert_eq!(r.n_tokens as usize, tok.count(&r.text).unwrap());
        per_doc.entry((r.source.clone(), r.doc_index)).or_default().push(r);
    }
    assert_eq!(per_doc.len(), docs.len(), "every document gives passages");
    for ((source, index), chunks) in &per_doc {
        let doc = &docs[&(source.clone(), *index)];
        // Several passages, numbered in order, each ending where a paragraph ends: paragraphs
        // here are under half the limit, so no passage needs to end mid-paragraph.
        assert!(chunks.len() > 1, "{source} gives {} passages", chunks.len());
        for (i, c) in chunks.iter().enumerate() {
            assert_eq!(c.chunk_index as usize, i);
            let rest = doc[c.byte_end as usize..].trim_start_matches(' ');
            assert!(
                rest.is_empty() || rest.starts_with("\n\n"),
                "{source}: passage {i} ends mid-paragraph"
            );
        }
        // Nothing but whitespace is lost.
        let kept: String =
            chunks.iter().map(|c| c.text.as_str()).collect::<String>().split_whitespace().collect();
        assert_eq!(kept, doc.split_whitespace().collect::<String>());
    }

    let m = outcome.manifest();
    assert_eq!(m.stage, "chunk");
    assert_eq!(m.rows, rows.len() as u64);
    assert_eq!(m.metrics["documents"], json!(docs.len()));
    assert_eq!(m.metrics["chunks"], json!(rows.len()));
    assert_eq!(m.metrics["files"], json!(6));
    let total: u64 = rows.iter().map(|r| r.n_tokens as u64).sum();
    assert_eq!(m.metrics["tokens_total"], json!(total));
    assert_eq!(m.metrics["tokens_max"], json!(rows.iter().map(|r| r.n_tokens).max().unwrap()));
    assert_eq!(m.metrics["skipped_total"], json!(0));
    let by_top = m.metrics["chunks_by_top_level"].as_object().unwrap();
    let notes: Vec<&ChunkRow> = rows.iter().filter(|r| r.source.starts_with("notes/")).collect();
    assert_eq!(by_top["notes"], json!(notes.len()));
    let notes_tokens: u64 = notes.iter().map(|r| r.n_tokens as u64).sum();
    assert_eq!(m.metrics["tokens_by_top_level"]["notes"], json!(notes_tokens));
}

#[test]
fn reruns_are_no_ops_until_the_corpus_or_settings_change() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = tmp.path().join("corpus");
    every_format(&corpus);
    let run = run_folder(tmp.path(), &corpus, &[]);
    let first = chunk(&run).unwrap();
    let before = rows(&run);

    let again = chunk(&run).unwrap();
    assert!(matches!(again, Outcome::UpToDate(_)));
    assert_eq!(again.manifest().finished_at, first.manifest().finished_at);
    assert_eq!(Manifest::read(&run.join("chunks/_manifest.json")).unwrap(), *first.manifest());

    // --force redoes the work and gives the same rows, ids included.
    let forced =
        spice_chunk::run(&StageArgs { force: true, ..args(&run) }, &ChunkOptions::default())
            .unwrap();
    assert!(matches!(forced, Outcome::Written(_)));
    assert_eq!(rows(&run), before);

    // A changed corpus file reruns, and only its rows change.
    std::fs::write(corpus.join("f.rst"), prose(77, 8, 2)).unwrap();
    assert!(matches!(chunk(&run).unwrap(), Outcome::Written(_)));
    let after = rows(&run);
    let unchanged = |rs: &[ChunkRow]| -> Vec<ChunkRow> {
        rs.iter().filter(|r| r.source != "f.rst").cloned().collect()
    };
    assert_eq!(unchanged(&after), unchanged(&before));
    assert_ne!(after, before);

    // Tokenizers are compared by content: the same file elsewhere is no change, an edited one is.
    let same = ChunkOptions {
        tokenizer: Some(fixture("tiny-qwen2/tokenizer.json")),
        ..Default::default()
    };
    assert!(matches!(spice_chunk::run(&args(&run), &same).unwrap(), Outcome::UpToDate(_)));
    let edited = tmp.path().join("tokenizer.json");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture("tiny-llama3/tokenizer.json")).unwrap())
            .unwrap();
    std::fs::write(&edited, serde_json::to_vec(&json).unwrap()).unwrap();
    let opts = ChunkOptions { tokenizer: Some(edited), ..Default::default() };
    assert!(matches!(spice_chunk::run(&args(&run), &opts).unwrap(), Outcome::Written(_)));
    assert!(matches!(spice_chunk::run(&args(&run), &opts).unwrap(), Outcome::UpToDate(_)));

    // So does a changed corpus setting.
    let cfg = RunConfig::load(&run.join("run.toml"))
        .unwrap()
        .with_overrides(&["corpus.max_doc_tokens=100".into()])
        .unwrap();
    std::fs::write(run.join("run.toml"), cfg.to_toml()).unwrap();
    assert!(matches!(chunk(&run).unwrap(), Outcome::Written(_)));
    assert!(rows(&run).iter().all(|r| r.n_tokens <= 100));
}

#[test]
fn ids_survive_a_moved_corpus_and_a_new_run() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    let b = tmp.path().join("b");
    std::fs::create_dir_all(&a).unwrap();
    every_format(&a.join("corpus"));
    std::fs::rename(a.join("corpus"), tmp.path().join("moved")).unwrap();
    every_format(&a.join("corpus"));
    let run_a = run_folder(&a, &a.join("corpus"), &[]);
    let run_b = run_folder(&b, &tmp.path().join("moved"), &[]);
    chunk(&run_a).unwrap();
    chunk(&run_b).unwrap();
    let ids = |run: &Path| rows(run).into_iter().map(|r| r.chunk_id).collect::<Vec<_>>();
    let ids_a = ids(&run_a);
    assert_eq!(ids_a, ids(&run_b));
    assert_eq!(ids_a.iter().collect::<BTreeSet<_>>().len(), ids_a.len(), "ids are unique");
}

#[test]
fn bad_records_are_counted_not_fatal() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = tmp.path().join("corpus");
    std::fs::create_dir_all(&corpus).unwrap();
    let good = prose(1, 2, 2);
    let mut lines = jsonl(std::slice::from_ref(&good)).into_bytes();
    lines.extend_from_slice(
        b"not json\n{\"body\": \"x\"}\n{\"text\": 5}\n\xff\xfe\n\n{\"text\": \"ok\"}\n",
    );
    lines.extend_from_slice(jsonl(std::slice::from_ref(&good)).as_bytes());
    std::fs::write(corpus.join("mixed.jsonl"), &lines).unwrap();
    std::fs::write(corpus.join("junk.jsonl.zst"), b"not zstd").unwrap();
    std::fs::write(corpus.join("latin1.txt"), b"caf\xe9").unwrap();
    let run = run_folder(tmp.path(), &corpus, &[]);
    let m = chunk(&run).unwrap().manifest().clone();
    assert_eq!(
        m.metrics["skipped"],
        json!({"not_json": 1, "missing_field": 1, "not_a_string": 1, "invalid_utf8": 2, "empty": 1, "zstd_error": 1})
    );
    assert_eq!(m.metrics["skipped_total"], json!(7));
    assert_eq!(m.metrics["documents"], json!(3));
    // "ok" is a document, but its one passage is under min_doc_tokens.
    assert_eq!(m.metrics["documents_without_chunks"], json!(1));
    assert_eq!(m.metrics["passages_dropped_short"], json!(1));
    let examples: Vec<String> = serde_json::from_value(m.metrics["skip_examples"].clone()).unwrap();
    assert!(
        examples
            .iter()
            .any(|e| e.ends_with("mixed.jsonl:2: not_json: expected ident at line 1 column 2")),
        "{examples:?}"
    );
    let rs = rows(&run);
    assert_eq!(rs.iter().map(|r| r.doc_index).collect::<BTreeSet<_>>(), BTreeSet::from([0, 7]));
}

#[test]
fn a_corpus_with_nothing_usable_is_a_clear_error_and_commits_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = tmp.path().join("corpus");
    std::fs::create_dir_all(&corpus).unwrap();
    std::fs::write(corpus.join("bad.jsonl"), "not json\n{\"content\": \"a long text here\"}\n")
        .unwrap();
    let run = run_folder(tmp.path(), &corpus, &[]);
    let err = format!("{:#}", chunk(&run).unwrap_err());
    for needle in
        ["no chunks", "bad.jsonl", "not_json 1", "missing_field 1", "corpus.text_field = \"text\""]
    {
        assert!(err.contains(needle), "`{needle}` not in: {err}");
    }
    let chunks = run.join("chunks");
    assert!(!chunks.join("_manifest.json").exists());
    assert!(!chunks.join("part-00000.parquet").exists());
    assert!(!chunks.join("part-00000.parquet.tmp").exists());

    // The right text field fixes it.
    let run = run_folder(&tmp.path().join("again"), &corpus, &["corpus.text_field=\"content\""]);
    assert_eq!(chunk(&run).unwrap().manifest().rows, 1);

    // A corpus that stops giving passages does not take the finished chunks away.
    let chunks = run.join("chunks");
    let (manifest, shard) = (
        std::fs::read(chunks.join("_manifest.json")).unwrap(),
        std::fs::read(chunks.join("part-00000.parquet")).unwrap(),
    );
    std::fs::write(corpus.join("bad.jsonl"), "not json\n").unwrap();
    let err = format!("{:#}", chunk(&run).unwrap_err());
    assert!(err.contains("no chunks"), "{err}");
    assert_eq!(std::fs::read(chunks.join("_manifest.json")).unwrap(), manifest);
    assert_eq!(std::fs::read(chunks.join("part-00000.parquet")).unwrap(), shard);
    assert!(!chunks.join("part-00000.parquet.tmp").exists());
}

#[test]
fn missing_inputs_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let run = run_folder(tmp.path(), &tmp.path().join("nowhere"), &[]);
    let err = format!("{:#}", chunk(&run).unwrap_err());
    assert!(err.contains("nowhere") && err.contains("does not exist"), "{err}");
    let corpus = tmp.path().join("corpus");
    every_format(&corpus);
    let opts = ChunkOptions {
        corpus: vec![corpus],
        tokenizer: Some(tmp.path().join("no-tokenizer.json")),
    };
    let err = format!("{:#}", spice_chunk::run(&args(&run), &opts).unwrap_err());
    assert!(err.contains("no-tokenizer.json"), "{err}");
}

#[test]
fn shards_split_the_files_and_together_make_the_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = tmp.path().join("corpus");
    every_format(&corpus);
    let whole = run_folder(&tmp.path().join("whole"), &corpus, &[]);
    chunk(&whole).unwrap();
    let parts = run_folder(&tmp.path().join("parts"), &corpus, &[]);
    for index in 0..2 {
        let shard = ShardSpec { index, count: 2 };
        spice_chunk::run(&StageArgs { shard, ..args(&parts) }, &ChunkOptions::default()).unwrap();
    }
    let mut from_parts = spice_schemas::read_folder::<ChunkRow>(&parts.join("chunks")).unwrap();
    let mut from_whole = rows(&whole);
    from_parts.sort_by(|a, b| a.chunk_id.cmp(&b.chunk_id));
    from_whole.sort_by(|a, b| a.chunk_id.cmp(&b.chunk_id));
    assert_eq!(from_parts, from_whole);
}

#[test]
fn the_binary_takes_corpus_and_tokenizer_flags() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = tmp.path().join("corpus");
    every_format(&corpus);
    // run.toml points at a corpus that does not exist: the flags replace it.
    let run = run_folder(tmp.path(), &tmp.path().join("elsewhere"), &["run.model=\"no-model\""]);
    let bin = env!("CARGO_BIN_EXE_spice-chunk");
    let out = Command::new(bin)
        .args([
            "--run",
            run.to_str().unwrap(),
            "--corpus",
            corpus.join("a.jsonl").to_str().unwrap(),
        ])
        .arg(corpus.join("notes"))
        .arg("--tokenizer")
        .arg(fixture("tiny-llama3/tokenizer.json"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("chunks written:"), "{stdout}");
    let sources: BTreeSet<String> = rows(&run).into_iter().map(|r| r.source).collect();
    assert_eq!(sources, BTreeSet::from(["a.jsonl".to_string(), "d.txt".into(), "e.md".into()]));

    let help = Command::new(bin).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in
        ["--run", "--corpus", "--tokenizer", "--force", "--shard", ".jsonl.zst", "max_doc_tokens"]
    {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
}
