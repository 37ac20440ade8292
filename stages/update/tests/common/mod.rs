//! A run folder in a temporary directory: the tiny Qwen3 fixture of spice-lm as `run.model`,
//! a `run.toml`, and `scored/` folders built from rows the tests write.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use spice_lm::tch::{Kind, Tensor};
use spice_lm::{Device, Policy, ScoreRow};
use spice_schemas::{
    layout::RunLayout,
    rows::{ScoredRow, UpdateMetricsRow},
    Manifest, RunConfig, ShardRow, ShardSpec, ShardWriter, StageOutput,
};
use spice_stage::{StageArgs, StageCtx};

pub fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../lib/lm/fixtures/tiny-qwen3")
}

pub struct TestRun {
    pub tmp: tempfile::TempDir,
    pub root: PathBuf,
    pub model: PathBuf,
    pub cfg: RunConfig,
}

/// A run on the tiny model, f32 on the CPU, lr 1e-3, with `overrides` (`section.key=value`).
pub fn make_run(overrides: &[&str]) -> TestRun {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("run");
    let model = tmp.path().join("tiny-model");
    std::fs::create_dir_all(&model).unwrap();
    for entry in std::fs::read_dir(fixture()).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name != "reference.safetensors" {
            std::fs::copy(entry.path(), model.join(&name)).unwrap();
        }
    }
    let mut all: Vec<String> = vec![
        format!("run.model={:?}", model.display().to_string()),
        "run.device=cpu".into(),
        "run.dtype=f32".into(),
        "run.seed=7".into(),
        "challenger.max_completion_length=64".into(),
        "reasoner.max_completion_length=48".into(),
        "update.learning_rate=1e-3".into(),
        "update.micro_batch_size=3".into(),
    ];
    all.extend(overrides.iter().map(|s| s.to_string()));
    let cfg = RunConfig::default().with_overrides(&all).unwrap();
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("run.toml"), cfg.to_toml()).unwrap();
    TestRun { tmp, root, model, cfg }
}

impl TestRun {
    pub fn layout(&self) -> RunLayout {
        RunLayout::new(&self.root)
    }

    pub fn ctx(&self, iter: u32, force: bool) -> StageCtx {
        StageCtx::load(&StageArgs {
            run: self.root.clone(),
            iter,
            device: None,
            seed: None,
            shard: ShardSpec::WHOLE,
            force,
        })
        .unwrap()
    }

    pub fn scored_dir(&self, iter: u32) -> PathBuf {
        self.layout().folder(iter, ScoredRow::FOLDER)
    }

    /// Write `rows` as iteration `iter`'s committed `scored/` folder.
    pub fn write_scored(&self, iter: u32, rows: &[ScoredRow]) {
        let dir = self.scored_dir(iter);
        let out = StageOutput::new(&dir, "verify-score", ShardSpec::WHOLE)
            .schema(ScoredRow::schema_id())
            .iteration(iter);
        out.begin().unwrap();
        let mut w = ShardWriter::<ScoredRow>::create(out.part_path()).unwrap();
        w.write_all(rows.iter().cloned()).unwrap();
        w.finish().unwrap();
        out.commit(&spice_schemas::metrics::NoMetrics {}).unwrap();
    }

    pub fn update_rows(&self, iter: u32) -> Vec<UpdateMetricsRow> {
        spice_schemas::read_folder(&self.layout().folder(iter, UpdateMetricsRow::FOLDER)).unwrap()
    }

    pub fn update_manifest(&self, iter: u32) -> Manifest {
        Manifest::read(&self.layout().folder(iter, UpdateMetricsRow::FOLDER).join("_manifest.json"))
            .unwrap()
    }

    pub fn checkpoint(&self, iter: u32) -> PathBuf {
        self.layout().checkpoint(iter)
    }
}

/// Deterministic pseudo-random numbers (tests need no statistical quality).
pub struct Lcg(pub u64);

impl Lcg {
    pub fn next(&mut self, n: u32) -> u32 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 33) % n as u64) as u32
    }

    pub fn ids(&mut self, len: usize) -> Vec<u32> {
        (0..len).map(|_| 3 + self.next(300)).collect()
    }
}

fn row(
    iter: u32,
    role: &str,
    group: &str,
    sample: u32,
    reward: f32,
    advantage: f32,
    lcg: &mut Lcg,
) -> ScoredRow {
    let (p_len, c_len) = (4 + lcg.next(6) as usize, 3 + lcg.next(10) as usize);
    let prompt_ids = lcg.ids(p_len);
    let completion_ids = lcg.ids(c_len);
    ScoredRow {
        iteration: iter,
        role: role.into(),
        group_id: group.into(),
        task_id: format!("t-{group}"),
        doc_slot: 0,
        sample,
        in_batch: true,
        valid: true,
        extracted: None,
        correct: (role == "reasoner").then_some(reward > 0.5),
        pass_rate: Some(0.5),
        reward,
        advantage,
        logprobs: vec![-1.0; completion_ids.len()],
        prompt_ids,
        completion_ids,
        finish_reason: "stop".into(),
        policy_id: "tiny-model@000000000000".into(),
    }
}

/// A training batch of both roles: 2 documents × 3 Challenger attempts and 2 tasks × 4
/// Reasoner answers, group-centred advantages, and one Reasoner row outside the batch.
pub fn scored_rows(iter: u32, seed: u64) -> Vec<ScoredRow> {
    let mut lcg = Lcg(seed);
    let mut rows = Vec::new();
    for (doc, rewards) in [[1.0f32, 0.372, -0.1], [0.823, 0.044, -0.1]].iter().enumerate() {
        let mean = rewards.iter().sum::<f32>() / 3.0;
        for (s, r) in rewards.iter().enumerate() {
            rows.push(row(
                iter,
                "challenger",
                &format!("d{doc:03}"),
                s as u32,
                *r,
                r - mean,
                &mut lcg,
            ));
        }
    }
    for (task, rewards) in [[1.0f32, 0.0, 0.0, 1.0], [1.0, 0.0, 0.0, 0.0]].iter().enumerate() {
        let mean = rewards.iter().sum::<f32>() / 4.0;
        for (s, r) in rewards.iter().enumerate() {
            rows.push(row(
                iter,
                "reasoner",
                &format!("task{task}"),
                s as u32,
                *r,
                r - mean,
                &mut lcg,
            ));
        }
    }
    let mut outside = row(iter, "reasoner", "task9", 0, 1.0, 0.5, &mut lcg);
    outside.in_batch = false;
    rows.push(outside);
    rows
}

pub fn load(dir: &Path) -> Policy {
    Policy::load(dir, Device::Cpu, Kind::Float).unwrap()
}

/// Summed log-prob of each row's completion under `policy`.
pub fn summed_logprobs(policy: &Policy, rows: &[ScoredRow]) -> Vec<f64> {
    let score: Vec<ScoreRow> = rows
        .iter()
        .map(|r| ScoreRow {
            prompt_ids: r.prompt_ids.clone(),
            completion_ids: r.completion_ids.clone(),
        })
        .collect();
    policy.score(&score, 4).unwrap().iter().map(|v| v.iter().map(|x| *x as f64).sum()).collect()
}

/// Variables by name, sorted.
pub fn params(policy: &Policy) -> Vec<(String, Tensor)> {
    let mut v: Vec<_> = policy.var_store().variables().into_iter().collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

pub fn max_param_diff(a: &Policy, b: &Policy) -> f64 {
    let (pa, pb) = (params(a), params(b));
    assert_eq!(pa.len(), pb.len());
    pa.iter()
        .zip(&pb)
        .map(|((na, ta), (nb, tb))| {
            assert_eq!(na, nb);
            (ta - tb).abs().max().double_value(&[])
        })
        .fold(0.0, f64::max)
}
