//! A tiny SPICE run the end-to-end tests share: a small corpus, the tiny random Llama-3
//! fixture as the model, a small arithmetic benchmark and a profile, all in one folder.

use std::path::{Path, PathBuf};

use spice_schemas::{manifest::folder_complete, read_folder, rows::UpdateMetricsRow};

use super::repo;

pub const DOCS: usize = 3;
pub const G: usize = 2;
pub const MAX_ATTEMPTS: usize = 3;

/// Write the corpus, model, benchmark and profile into `dir`; returns the profile path.
/// `run_extra` adds keys to `[run]`, `tail` appends sections (e.g. `[slurm]`).
pub fn setup(dir: &Path, seed: u64, run_extra: &str, tail: &str) -> PathBuf {
    let corpus = dir.join("corpus");
    std::fs::create_dir_all(&corpus).unwrap();
    for i in 0..6 {
        let text = format!(
            "Document {i}. The river Alpha{i} is {} km long and flows north.\n\nIts basin covers \
             {} square km. Three towns stand on its banks; the largest has {} people.\n\nThe \
             river freezes for {} weeks each winter.",
            100 + i * 37,
            2000 + i * 311,
            5000 + i * 1234,
            2 + i
        );
        std::fs::write(corpus.join(format!("doc{i}.txt")), text).unwrap();
    }
    let model = dir.join("model");
    std::fs::create_dir_all(&model).unwrap();
    for f in std::fs::read_dir(repo().join("stages/lib/lm/fixtures/tiny-llama3")).unwrap() {
        let f = f.unwrap().path();
        if f.file_name().unwrap() != "reference.safetensors" {
            std::fs::copy(&f, model.join(f.file_name().unwrap())).unwrap();
        }
    }
    let bench = dir.join("arith.jsonl");
    std::fs::write(
        &bench,
        (0..4)
            .map(|i| {
                format!("{{\"problem\": \"What is {i} + {i}?\", \"answer\": \"{}\"}}\n", 2 * i)
            })
            .collect::<String>(),
    )
    .unwrap();
    let profile = dir.join("tiny.toml");
    std::fs::write(
        &profile,
        format!(
            r#"[run]
name = "tiny"
iterations = 2
model = "{model}"
device = "cpu"
dtype = "f32"
seed = {seed}
{run_extra}

[corpus]
paths = ["{corpus}"]
max_doc_tokens = 64
min_doc_tokens = 4

[challenger]
documents_per_iteration = {DOCS}
num_generations = {G}
max_attempts = {MAX_ATTEMPTS}
attempts_per_round = 2
prompt_set = "compact"
max_completion_length = 16
batch_size = 4

[reasoner]
num_generations = 2
max_completion_length = 12
batch_size = 4

[update]
learning_rate = 1e-3
micro_batch_size = 2

[eval]
eval_every = 1
benchmarks = ["{bench}"]
max_completion_length = 8
batch_size = 4

{tail}
"#,
            model = model.display(),
            corpus = corpus.display(),
            bench = bench.display()
        ),
    )
    .unwrap();
    profile
}

/// Every committed output of the tiny run's two iterations in `folders` (plus `chunks/`), by
/// folder and part; the update rows without their time and memory columns, which no two
/// runs share.
pub fn digests(run: &Path, folders: &[&str]) -> Vec<(String, String)> {
    digests_of(run, folders, 2)
}

/// [`digests`] of a run of `iterations` iterations.
pub fn digests_of(run: &Path, folders: &[&str], iterations: u32) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let chunks = folder_complete(&run.join("chunks")).unwrap().expect("chunks committed");
    out.push(("chunks".to_string(), chunks[0].output_digest.clone()));
    for iter in 0..iterations {
        for f in folders {
            let dir = run.join(format!("iter-{iter:04}/{f}"));
            let mut ms = folder_complete(&dir)
                .unwrap()
                .unwrap_or_else(|| panic!("{} not committed", dir.display()));
            if *f == "update" {
                let rows: Vec<UpdateMetricsRow> = read_folder(&dir).unwrap();
                for mut r in rows {
                    (r.seconds, r.tokens_per_second, r.peak_rss_mib) = (0.0, 0.0, 0.0);
                    out.push((format!("iter-{iter:04}/{f}"), format!("{r:?}")));
                }
                continue;
            }
            ms.sort_by_key(|m| m.shard.index);
            for m in ms {
                out.push((format!("iter-{iter:04}/{f}#{}", m.shard.index), m.output_digest));
            }
        }
    }
    out
}
