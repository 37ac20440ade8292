//! A run folder built by hand for the `filter` and `score` stages: `run.toml`, Challenger
//! attempts and Reasoner answers written and committed as the upstream stages would, and a
//! stage binary run on it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use spice_schemas::layout::RunLayout;
use spice_schemas::parquet_io::write_shard;
use spice_schemas::rows::{ChallengerRow, RolloutRow, ScoredRow, TaskRow};
use spice_schemas::{read_folder, Manifest, RunConfig, ShardRow, ShardSpec, StageOutput};

pub const ITER: u32 = 2;

/// A multiple-choice task whose gold letter is C.
pub const MCQ: &str = r#"Here is my task.
{"question": "Which planet of the solar system has the largest mass?", "options": {"A": "Mercury", "B": "Venus", "C": "Jupiter", "D": "Mars"}, "answer": "(C)"}"#;
pub const MCQ_RIGHT: &str = "Jupiter is the most massive planet, so the answer is \\boxed{C}.";
pub const MCQ_WRONG: &str = "I think it is Venus: \\boxed{B}";
/// A free-form integer task whose gold answer is 6.
pub const FREE: &str = r#"{"question": "How many sides does a regular hexagon have?", "answer": 6, "answer_type": "integer"}"#;
pub const FREE_RIGHT: &str = "A hexagon has six sides, so the answer is \\boxed{6}.";
pub const FREE_WRONG: &str = "Counting the edges gives \\boxed{8}.";
pub const NO_JSON: &str = "A good question would be about the planets.";

pub struct Run {
    _tmp: tempfile::TempDir,
    pub root: PathBuf,
}

impl Run {
    pub fn new(cfg: &RunConfig) -> Run {
        let tmp = tempfile::tempdir().expect("temp dir");
        let root = tmp.path().join("run");
        std::fs::create_dir_all(&root).unwrap();
        let run = Run { _tmp: tmp, root };
        run.set_config(cfg);
        run
    }

    pub fn set_config(&self, cfg: &RunConfig) {
        std::fs::write(self.root.join("run.toml"), cfg.to_toml()).unwrap();
    }

    pub fn folder(&self, name: &str) -> PathBuf {
        RunLayout::new(&self.root).folder(ITER, name)
    }

    /// Run `<bin> --run <run> --iter ITER <extra…>`.
    pub fn stage(&self, bin: &str, extra: &[&str]) -> Output {
        Command::new(bin)
            .arg("--run")
            .arg(&self.root)
            .args(["--iter", &ITER.to_string()])
            .args(extra)
            .env("RUST_LOG", "info")
            .output()
            .unwrap_or_else(|e| panic!("run {bin}: {e}"))
    }

    /// Like [`Run::stage`], and the command must succeed.
    pub fn stage_ok(&self, bin: &str, extra: &[&str]) -> String {
        let out = self.stage(bin, extra);
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(out.status.success(), "{bin} {extra:?} failed:\n{stderr}");
        stderr
    }

    /// Like [`Run::stage`], and the command must fail; returns its stderr.
    pub fn stage_err(&self, bin: &str, extra: &[&str]) -> String {
        let out = self.stage(bin, extra);
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(!out.status.success(), "{bin} {extra:?} should have failed:\n{stderr}");
        stderr
    }

    pub fn manifest(&self, name: &str) -> Manifest {
        Manifest::read(&self.folder(name).join("_manifest.json")).unwrap()
    }

    pub fn manifest_bytes(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.folder(name).join("_manifest.json")).unwrap()
    }

    pub fn tasks(&self) -> Vec<TaskRow> {
        read_folder(&self.folder(TaskRow::FOLDER)).unwrap()
    }

    pub fn scored(&self) -> Vec<ScoredRow> {
        read_folder(&self.folder(ScoredRow::FOLDER)).unwrap()
    }

    /// Commit `parts` as the parts of the folder of `T`, the way its stage would.
    pub fn commit<T: ShardRow>(&self, parts: &[Vec<T>]) {
        let dir = self.folder(T::FOLDER);
        for (i, rows) in parts.iter().enumerate() {
            let shard = ShardSpec { index: i as u32, count: parts.len() as u32 };
            commit_part(&dir, shard, rows);
        }
    }
}

/// Write and commit one part of a folder.
pub fn commit_part<T: ShardRow>(dir: &Path, shard: ShardSpec, rows: &[T]) {
    let out = StageOutput::new(dir, "test", shard).iteration(ITER).schema(T::schema_id());
    out.begin().unwrap();
    write_shard(out.part_path(), rows).unwrap();
    out.commit(&spice_schemas::metrics::NoMetrics {}).unwrap();
}

/// One Challenger attempt; token ids encode (document, attempt) so copies can be traced.
pub fn attempt(
    doc: u32,
    attempt: u32,
    kind: &str,
    completion: &str,
    selected: bool,
) -> ChallengerRow {
    ChallengerRow {
        iteration: ITER,
        doc_slot: doc,
        chunk_id: format!("chunk-{doc}"),
        attempt,
        task_kind: kind.into(),
        answer_type: None,
        format_completion: None,
        prompt_set: "paper".into(),
        prompt: format!("<document {doc}>"),
        prompt_ids: vec![1, doc, 2],
        response_prefix: String::new(),
        completion: completion.into(),
        completion_ids: vec![1000 + doc, 2000 + attempt, 3],
        logprobs: vec![-0.5, -(attempt as f32) - 1.0, -0.25],
        finish_reason: "stop".into(),
        seed: (doc * 100 + attempt) as u64,
        policy_id: "model@abc".into(),
        parsed_valid: false,
        selected,
    }
}

/// One Reasoner answer.
pub fn answer(task_id: &str, doc: u32, sample: u32, completion: &str) -> RolloutRow {
    RolloutRow {
        task_id: task_id.into(),
        iteration: ITER,
        doc_slot: doc,
        sample,
        prompt: format!("question of {task_id}"),
        prompt_ids: vec![7, doc],
        completion: completion.into(),
        completion_ids: vec![5000 + doc, 6000 + sample],
        logprobs: vec![-0.1, -(sample as f32)],
        finish_reason: "stop".into(),
        seed: sample as u64,
        policy_id: "model@abc".into(),
    }
}

pub fn task_id(doc: u32, attempt: u32) -> String {
    format!("i{ITER:04}-d{doc:03}-a{attempt:04}")
}

/// `<bin> --help` lists the flags every stage takes.
pub fn assert_help_lists_stage_flags(bin: &str) {
    let out = Command::new(bin).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in ["--run", "--iter", "--seed", "--shard", "--force"] {
        assert!(help.contains(flag), "`{bin} --help` lacks {flag}:\n{help}");
    }
}
