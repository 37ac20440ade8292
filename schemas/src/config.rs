//! `run.toml`: every knob of the method (see METHOD.md), with the paper's values as defaults
//! and the names TRL/verl users know (`num_generations`, `epsilon`, `beta`, …).
//!
//! A profile in `pipelines/*.toml` only lists what differs from these defaults. Unknown keys
//! are an error that names the key, so a typo never silently falls back to a default.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use spice_vocab::{
    AnswerType, ChallengerReward, ChallengerTraining, Dtype, Grounding, LossType, LrSchedulerType,
    ScaleRewards, TaskTypes,
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct RunConfig {
    pub run: RunSection,
    pub corpus: CorpusSection,
    pub challenger: ChallengerSection,
    pub reasoner: ReasonerSection,
    pub reward: RewardSection,
    pub update: UpdateSection,
    pub eval: EvalSection,
    pub checkpoint: CheckpointSection,
    pub crossplay: CrossplaySection,
    pub slurm: SlurmSection,
    /// Where the model and corpus paths come from, by path: a Hugging Face model or dataset
    /// id (`"data/models/qwen3-4b-base" = "Qwen/Qwen3-4B-Base"`), named with the command that
    /// downloads it when that path is missing. The program itself never downloads anything.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub sources: std::collections::BTreeMap<String, String>,
}

/// The default model and corpus, which `just setup` installs.
pub const DEFAULT_MODEL: &str = "data/models/smollm2-135m-instruct";
pub const DEFAULT_CORPUS: &str = "data/corpus";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunSection {
    /// Profile name, for the record.
    pub name: String,
    pub seed: u64,
    /// Iterations T (paper: 640).
    pub iterations: u32,
    /// Initial policy: a Hugging Face model folder.
    pub model: PathBuf,
    /// `auto` (CUDA when visible), `cpu` or `cuda:N`.
    pub device: String,
    /// Compute dtype of generation and training: `bf16` or `f32` (master weights stay f32).
    pub dtype: Dtype,
    /// Parts each generation stage is split into (`--shard I/N`), for Slurm arrays.
    pub shards: u32,
    /// Tokens the KV cache of one generation pass may hold; fewer rows then decode together
    /// than the batch size asks. Unset: half the memory free on the device when it starts.
    pub kv_cache_tokens: Option<u64>,
    /// f32 on a CPU: generate every row as it would be generated alone, bit for bit, so
    /// `shards` and the batch sizes change no completion (slower with short prompts; see the
    /// README). `false` takes the faster shared path. bf16 and GPU runs never are.
    pub batch_invariant: bool,
}

impl Default for RunSection {
    fn default() -> Self {
        Self {
            name: "default".into(),
            seed: 1234,
            iterations: 640,
            model: PathBuf::from(DEFAULT_MODEL),
            device: "auto".into(),
            dtype: Dtype::Bf16,
            shards: 1,
            kv_cache_tokens: None,
            batch_invariant: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CorpusSection {
    /// Files or folders (`.jsonl`, `.jsonl.zst`, `.parquet`, `.txt`).
    pub paths: Vec<PathBuf>,
    /// Field (JSONL key or Parquet column) holding the document text.
    pub text_field: String,
    /// Longest passage, in tokens (paper: 5,992).
    pub max_doc_tokens: u32,
    /// Passages shorter than this are dropped (too little to ground a question).
    pub min_doc_tokens: u32,
}

impl Default for CorpusSection {
    fn default() -> Self {
        Self {
            paths: vec![PathBuf::from(DEFAULT_CORPUS)],
            text_field: "text".into(),
            max_doc_tokens: 5992,
            min_doc_tokens: 32,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChallengerSection {
    /// Documents per iteration B (paper: 128).
    pub documents_per_iteration: u32,
    /// Challenger trajectories kept per document for training, G (paper: 8).
    pub num_generations: u32,
    /// Attempts per document until one is valid, N (paper: up to 1024).
    pub max_attempts: u32,
    /// Attempts generated per round for one document before checking validity.
    pub attempts_per_round: u32,
    /// Prompt set in `pipelines/prompts/`: `paper` or `compact`.
    pub prompt_set: String,
    /// `both`, `mcq` or `free_form`.
    pub task_types: TaskTypes,
    /// Force the free-form answer type (`integer`, `float`, `expression`, `string`,
    /// `boolean`, `list`) instead of letting the model choose.
    pub answer_type: Option<AnswerType>,
    /// `corpus` (SPICE) or `none` (ungrounded ablation: no document in the prompt).
    pub grounding: Grounding,
    /// `self` (SPICE) or `frozen`: the Challenger is `frozen_model`, never updated.
    pub training: ChallengerTraining,
    pub frozen_model: Option<PathBuf>,
    pub temperature: f64,
    pub top_p: f64,
    pub top_k: u32,
    pub max_completion_length: u32,
    /// Rows generated together.
    pub batch_size: u32,
}

impl Default for ChallengerSection {
    fn default() -> Self {
        Self {
            documents_per_iteration: 128,
            num_generations: 8,
            max_attempts: 1024,
            attempts_per_round: 8,
            prompt_set: "paper".into(),
            task_types: TaskTypes::Both,
            answer_type: None,
            grounding: Grounding::Corpus,
            training: ChallengerTraining::SelfPlay,
            frozen_model: None,
            temperature: 1.0,
            top_p: 1.0,
            top_k: 0,
            max_completion_length: 4096,
            batch_size: 64,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReasonerSection {
    /// Answers per valid task, K (paper: 8).
    pub num_generations: u32,
    pub temperature: f64,
    pub top_p: f64,
    pub top_k: u32,
    pub max_completion_length: u32,
    pub batch_size: u32,
}

impl Default for ReasonerSection {
    fn default() -> Self {
        Self {
            num_generations: 8,
            temperature: 1.0,
            top_p: 1.0,
            top_k: 0,
            max_completion_length: 4096,
            batch_size: 64,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RewardSection {
    /// `variance` (SPICE), `absolute_zero`, `threshold` or `r_zero`.
    pub challenger_reward: ChallengerReward,
    /// r_C of an invalid task (paper: −0.1).
    pub invalid_penalty: f64,
    /// Variance the Gaussian reward peaks at, and σ² of its width (the denominator is 2σ²;
    /// paper: 0.25 and 0.01).
    pub variance_target: f64,
    pub variance_width: f64,
    /// `none` (Dr. GRPO: advantages are not divided by the group's std) or `group`.
    pub scale_rewards: ScaleRewards,
}

impl Default for RewardSection {
    fn default() -> Self {
        Self {
            challenger_reward: ChallengerReward::Variance,
            invalid_penalty: -0.1,
            variance_target: 0.25,
            variance_width: 0.01,
            scale_rewards: ScaleRewards::None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpdateSection {
    /// `dr_grpo`: token sums divided by a constant (max_completion_length × sequences).
    pub loss_type: LossType,
    pub learning_rate: f64,
    /// `constant` (paper).
    pub lr_scheduler_type: LrSchedulerType,
    /// KL coefficient to the initial policy (paper: 0, so no reference model is loaded).
    pub beta: f64,
    /// Clip range ε of the ratio.
    pub epsilon: f64,
    pub max_grad_norm: f64,
    /// Passes over the iteration's batch.
    pub ppo_epochs: u32,
    /// Sequences per optimizer step (the whole batch when 0).
    pub mini_batch_size: u32,
    /// Sequences per forward/backward pass; gradients accumulate over a mini-batch.
    pub micro_batch_size: u32,
    pub weight_decay: f64,
    pub adam_beta1: f64,
    pub adam_beta2: f64,
    pub adam_epsilon: f64,
    /// Recompute activations in the backward pass (large models).
    pub gradient_checkpointing: bool,
    /// Forward each common prompt prefix of a micro-batch once for all its sequences — the
    /// document a Challenger's G attempts share, a task's K answers' prompt — instead of once
    /// per sequence (Prefix Grouper); the loss and gradients are the same up to f32 rounding.
    pub shared_prefix: bool,
    /// Data-parallel ranks of the update on this machine (torchrun's `--nproc-per-node`):
    /// `spice-update` starts this many processes, which split each step's micro-batches and
    /// sum their gradients through c10d (Gloo on CPU, NCCL on CUDA, one GPU per rank). Under a
    /// launcher that already set `RANK`/`WORLD_SIZE` or Slurm's task variables, those win.
    pub processes: u32,
    /// ZeRO stage of a data-parallel update: 1 (the default) shards AdamW's moments over the
    /// ranks, each keeping and saving those of its 1/N of the parameters; 0 keeps all of them
    /// on every rank (DDP). One process is the same at either stage.
    pub zero_stage: u32,
}

impl Default for UpdateSection {
    fn default() -> Self {
        Self {
            loss_type: LossType::DrGrpo,
            learning_rate: 1e-6,
            lr_scheduler_type: LrSchedulerType::Constant,
            beta: 0.0,
            epsilon: 0.2,
            max_grad_norm: 1.0,
            ppo_epochs: 1,
            mini_batch_size: 0,
            micro_batch_size: 4,
            weight_decay: 0.0,
            adam_beta1: 0.9,
            adam_beta2: 0.999,
            adam_epsilon: 1e-8,
            gradient_checkpointing: false,
            shared_prefix: true,
            processes: 1,
            zero_stage: 1,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvalSection {
    /// Evaluate the policy every N iterations (0 = never) and the base model once.
    pub eval_every: u32,
    /// Benchmark files (Parquet or JSONL).
    pub benchmarks: Vec<PathBuf>,
    /// Samples per question: 1 = greedy pass@1; k > 1 = avg@k at `temperature`.
    pub samples: u32,
    pub temperature: f64,
    pub max_completion_length: u32,
    /// Only the first N questions of each benchmark (0 = all).
    pub limit: u32,
    pub batch_size: u32,
}

impl Default for EvalSection {
    fn default() -> Self {
        Self {
            eval_every: 0,
            benchmarks: Vec::new(),
            samples: 1,
            temperature: 0.0,
            max_completion_length: 4096,
            limit: 0,
            batch_size: 64,
        }
    }
}

impl EvalSection {
    /// Whether a run evaluates the checkpoint iteration `iter`'s update writes (into
    /// `iter-N/eval-checkpoint/`): every `eval_every`-th iteration, when there are benchmarks.
    pub fn evaluates_checkpoint(&self, iter: u32) -> bool {
        self.eval_every > 0
            && !self.benchmarks.is_empty()
            && (iter + 1).is_multiple_of(self.eval_every)
    }
}

/// Cross-play (`spice crossplay`): Challengers and Reasoners of different iterations played
/// against each other on documents the run never trains on, the paper's co-evolution
/// analysis. "Policy i" is the model that played iteration i: the initial model for 0, the
/// checkpoint of iteration i - 1 otherwise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CrossplaySection {
    /// Chunks held out of the Challenger's training draws, chosen once by seed from the
    /// chunked corpus; cross-play's Challengers write their tasks from them. Set it before
    /// training: it changes which documents iterations draw. 0 = none held out.
    pub heldout_documents: u32,
    /// Without held-out documents, cross-play draws this many chunks by seed, which training
    /// may have seen (`spice crossplay` says so). Not read when `heldout_documents > 0`.
    pub documents: u32,
    /// Policies compared (iterations, see above); empty = every policy the run has.
    pub policies: Vec<u32>,
    /// The Reasoner that answers every compared Challenger's tasks.
    pub fixed_reasoner: u32,
    /// The Challenger whose tasks every compared Reasoner answers.
    pub fixed_challenger: u32,
}

impl Default for CrossplaySection {
    fn default() -> Self {
        Self {
            heldout_documents: 0,
            documents: 16,
            policies: Vec::new(),
            fixed_reasoner: 0,
            fixed_challenger: 0,
        }
    }
}

impl CrossplaySection {
    /// How many documents cross-play uses, and whether training never drew them.
    pub fn document_count(&self) -> (u32, bool) {
        if self.heldout_documents > 0 {
            (self.heldout_documents, true)
        } else {
            (self.documents, false)
        }
    }
}

/// How many iterations' checkpoints a run keeps on disk (like TRL's `save_total_limit`). The
/// update of iteration N prunes older folders once its own output has committed; the newest
/// checkpoint and optimizer state, which the next iteration and a resume need, are never
/// pruned, nor a checkpoint whose scheduled evaluation (`eval.eval_every`) has not finished.
/// A pruned folder keeps its `_manifest.json` (and gains `_pruned.json`), so the iterations
/// that used it still read as done. Neither setting changes what a stage computes: they are
/// not part of any stage's configuration digest, and may be edited in a run's `run.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CheckpointSection {
    /// Model folders `iter-N/checkpoint/` to keep, the most recent ones (0 = all). The
    /// default keeps every one, so any iteration can be evaluated or resumed from later.
    pub keep: u32,
    /// Optimizer folders `iter-N/optimizer/` (AdamW moments, twice the size of the f32
    /// weights) to keep, the most recent ones (0 = all). Only the newest is ever read: the
    /// next iteration resumes from it. Older ones matter only to redo an old iteration with
    /// its original moments, so by default they go, which bounds the largest part of a run's
    /// disk use (a 4B model's moments are 32 GB per iteration).
    pub keep_optimizer: u32,
}

impl Default for CheckpointSection {
    fn default() -> Self {
        Self { keep: 0, keep_optimizer: 1 }
    }
}

/// Resources of the Slurm jobs `spice slurm iterate` submits (`--partition`, `--gres`, …);
/// unset keys leave the cluster's defaults. The keys are those of [`SlurmResources`], plus
/// per-stage tables.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct SlurmSection {
    pub partition: Option<String>,
    pub account: Option<String>,
    pub qos: Option<String>,
    pub time: Option<String>,
    pub gpus: Option<u32>,
    pub cpus_per_task: Option<u32>,
    pub mem: Option<String>,
    pub extra_sbatch: Vec<String>,
    pub setup: Vec<String>,
    /// Per-stage settings, keyed by stage name (`chunk`, `challenge`, `filter`, `rollout`,
    /// `score`, `update`, `eval`): set keys replace the defaults above, `extra_sbatch` and
    /// `setup` lines are added after them.
    pub stages: std::collections::BTreeMap<String, SlurmResources>,
}

impl SlurmSection {
    /// The resources of stage `name`: the section's defaults with its table applied.
    pub fn for_stage(&self, name: &str) -> SlurmResources {
        let base = SlurmResources {
            partition: self.partition.clone(),
            account: self.account.clone(),
            qos: self.qos.clone(),
            time: self.time.clone(),
            gpus: self.gpus,
            cpus_per_task: self.cpus_per_task,
            ntasks: None,
            mem: self.mem.clone(),
            extra_sbatch: self.extra_sbatch.clone(),
            setup: self.setup.clone(),
        };
        let Some(o) = self.stages.get(name) else { return base };
        SlurmResources {
            partition: o.partition.clone().or(base.partition),
            account: o.account.clone().or(base.account),
            qos: o.qos.clone().or(base.qos),
            time: o.time.clone().or(base.time),
            gpus: o.gpus.or(base.gpus),
            cpus_per_task: o.cpus_per_task.or(base.cpus_per_task),
            ntasks: o.ntasks,
            mem: o.mem.clone().or(base.mem),
            extra_sbatch: base
                .extra_sbatch
                .into_iter()
                .chain(o.extra_sbatch.iter().cloned())
                .collect(),
            setup: base.setup.into_iter().chain(o.setup.iter().cloned()).collect(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct SlurmResources {
    pub partition: Option<String>,
    pub account: Option<String>,
    pub qos: Option<String>,
    /// Time limit, in Slurm's format (`4:00:00`, `1-00:00:00`).
    pub time: Option<String>,
    /// GPUs per task (`--gres=gpu:N`; typed GPUs go in `extra_sbatch`).
    pub gpus: Option<u32>,
    pub cpus_per_task: Option<u32>,
    /// Tasks of the stage's job (`--ntasks`), each with `gpus` GPUs (`--gpus-per-task`) and
    /// `cpus_per_task` CPUs, started by `srun`. Only `[slurm.stages.update]` may ask for more
    /// than one: the update's data-parallel ranks, one per GPU.
    pub ntasks: Option<u32>,
    /// Memory per node, in Slurm's format (`64G`).
    pub mem: Option<String>,
    /// More `#SBATCH` options, e.g. `"--constraint=a100"`.
    pub extra_sbatch: Vec<String>,
    /// Shell lines run before the stage, e.g. `"module load cuda/12.4"`.
    pub setup: Vec<String>,
}

/// Stage names a `[slurm.stages.NAME]` table may use.
pub const SLURM_STAGES: &[&str] =
    &["chunk", "challenge", "filter", "rollout", "score", "update", "eval"];

impl RunConfig {
    /// Parse TOML text; `origin` names the file in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self> {
        // The path of a bad value (`reward.challenger_reward`) leads the message.
        let cfg: RunConfig = serde_path_to_error::deserialize(toml::Deserializer::new(text))
            .map_err(|e| {
                anyhow::anyhow!("{origin}: {}: {}", e.path(), e.inner().to_string().trim())
            })?;
        cfg.validate().with_context(|| format!("{origin}: invalid configuration"))?;
        Ok(cfg)
    }

    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading run config {}", path.display()))?;
        Self::from_toml(&text, &path.display().to_string())
    }

    /// Apply `section.key=value` overrides (TOML values: `update.learning_rate=1e-5`,
    /// `challenger.prompt_set="compact"`; bare words are taken as strings).
    pub fn with_overrides(&self, overrides: &[String]) -> Result<Self> {
        if overrides.is_empty() {
            return Ok(self.clone());
        }
        let mut doc: toml::Table = toml::Table::try_from(self)?;
        for ov in overrides {
            let (key, raw) = ov
                .split_once('=')
                .with_context(|| format!("override `{ov}` is not section.key=value"))?;
            let (section, field) = key
                .trim()
                .split_once('.')
                .with_context(|| format!("override key `{key}` is not section.key"))?;
            let value: toml::Value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
                .ok()
                .and_then(|mut t| t.remove("v"))
                .unwrap_or_else(|| toml::Value::String(raw.trim().to_string()));
            let table = doc
                .entry(section.to_string())
                .or_insert_with(|| toml::Value::Table(Default::default()))
                .as_table_mut()
                .with_context(|| format!("`{section}` is not a section"))?;
            table.insert(field.to_string(), value);
        }
        let text = toml::to_string(&doc)?;
        Self::from_toml(&text, "overrides")
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("run config serialises to TOML")
    }

    /// What the run reads that is not there, one message per missing input saying how to get
    /// it: the model folder (`run.model`, a folder with config.json), a frozen Challenger's
    /// folder, and the corpus paths when the Challenger is grounded. Relative paths are taken
    /// from `base`, as the stages take them from their working directory.
    pub fn missing_inputs_in(&self, base: &Path) -> Vec<String> {
        let mut missing = Vec::new();
        let source = |path: &Path| {
            self.sources.iter().find(|(k, _)| Path::new(k) == path).map(|(_, v)| v.as_str())
        };
        let model_hint = |key: &str, dir: &Path| -> String {
            let d = dir.display();
            let how = match source(dir) {
                Some(src) => format!(
                    "download {src} into it (`huggingface-cli download {src} --local-dir {d}`; \
                     this program never downloads anything), or set {key} to a Hugging Face \
                     model folder you have (--set {key}=DIR)"
                ),
                None if dir == Path::new(DEFAULT_MODEL) => {
                    format!(
                        "run `just setup`, which installs the default model there, or set {key}"
                    )
                }
                None => format!(
                    "set {key} to a Hugging Face model folder (config.json, model.safetensors, \
                     tokenizer.json)"
                ),
            };
            format!("{key} = \"{d}\" is missing (no config.json there): {how}")
        };
        if !base.join(&self.run.model).join("config.json").is_file() {
            missing.push(model_hint("run.model", &self.run.model));
        }
        if let (ChallengerTraining::Frozen, Some(frozen)) =
            (self.challenger.training, &self.challenger.frozen_model)
        {
            if !base.join(frozen).join("config.json").is_file() {
                missing.push(model_hint("challenger.frozen_model", frozen));
            }
        }
        if self.challenger.grounding == Grounding::Corpus {
            for path in &self.corpus.paths {
                if base.join(path).exists() {
                    continue;
                }
                let p = path.display();
                let how = match source(path) {
                    Some(src) => format!(
                        "put documents of the dataset {src} there as .parquet or .jsonl files \
                         whose `{field}` field holds a document (e.g. some of its files: \
                         `huggingface-cli download {src} --repo-type dataset --include \
                         'PATTERN' --local-dir {p}`; convert them if the dataset names the \
                         field otherwise), or set corpus.paths to documents you have",
                        field = self.corpus.text_field
                    ),
                    None if path == Path::new(DEFAULT_CORPUS) => {
                        "run `just setup`, which builds the default corpus there \
                         (pipelines/corpus.sh), or set corpus.paths"
                            .to_string()
                    }
                    None => "set corpus.paths to files or folders of documents you have".into(),
                };
                missing.push(format!("corpus.paths entry \"{p}\" does not exist: {how}"));
            }
        }
        missing
    }

    /// Refuse to start a run whose model or corpus is missing ([`RunConfig::missing_inputs_in`]
    /// from the working directory), naming each missing input and how to get it.
    pub fn check_inputs(&self) -> Result<()> {
        let missing = self.missing_inputs_in(Path::new("."));
        if missing.is_empty() {
            return Ok(());
        }
        bail!(
            "profile `{}` cannot start: {} input(s) missing\n  - {}",
            self.run.name,
            missing.len(),
            missing.join("\n  - ")
        )
    }

    /// The sampling settings of the roles the update trains: the Reasoner, and the Challenger
    /// unless it is frozen. The update scores a role's tokens under softmax(logits / T) at the
    /// role's temperature, the distribution generation drew them from and recorded log-probs
    /// of, as TRL and verl do. Top-p and top-k draw from a truncated distribution the update
    /// does not score, and greedy decoding has no distribution at all, so the ratio πθ/π_old
    /// would be off-policy: refused. Evaluation (`[eval]`) trains nothing and is free.
    fn validate_training_sampling(&self) -> Result<()> {
        let roles = [
            (
                "challenger",
                self.challenger.training == ChallengerTraining::SelfPlay,
                self.challenger.temperature,
                self.challenger.top_p,
                self.challenger.top_k,
            ),
            ("reasoner", true, self.reasoner.temperature, self.reasoner.top_p, self.reasoner.top_k),
        ];
        for (role, trained, temperature, top_p, top_k) in roles {
            if !trained {
                continue;
            }
            let why = "the update scores the role's tokens under the full softmax at \
                       {role}.temperature, not the distribution they were drawn from, so its \
                       policy-gradient ratio would be off-policy";
            let why = why.replace("{role}", role);
            if temperature <= 0.0 {
                bail!(
                    "{role}.temperature = {temperature}: the {role} is trained, so it must sample \
                     (temperature > 0); greedy decoding has no distribution the update can \
                     score its tokens under"
                );
            }
            if top_p < 1.0 {
                bail!(
                    "{role}.top_p = {top_p}: the {role} is trained and top-p sampling draws from \
                     a truncated distribution; {why}. Use {role}.top_p = 1 (and \
                     {role}.temperature to sharpen sampling)"
                );
            }
            if top_k > 0 {
                bail!(
                    "{role}.top_k = {top_k}: the {role} is trained and top-k sampling draws from \
                     a truncated distribution; {why}. Use {role}.top_k = 0 (and \
                     {role}.temperature to sharpen sampling)"
                );
            }
        }
        Ok(())
    }

    /// Check the values that serde cannot: enumerations and ranges.
    pub fn validate(&self) -> Result<()> {
        fn one_of(key: &str, value: &str, allowed: &[&str]) -> Result<()> {
            if !allowed.contains(&value) {
                bail!("{key} = {value:?} is not one of {allowed:?}");
            }
            Ok(())
        }
        if !(self.run.device == "auto"
            || self.run.device == "cpu"
            || self.run.device.starts_with("cuda"))
        {
            bail!("run.device = {:?} is not auto, cpu or cuda:N", self.run.device);
        }
        one_of("challenger.prompt_set", &self.challenger.prompt_set, &["paper", "compact"])?;
        if self.challenger.training == ChallengerTraining::Frozen
            && self.challenger.frozen_model.is_none()
        {
            bail!("challenger.training = \"frozen\" needs challenger.frozen_model = \"<model folder>\"");
        }
        let positive = [
            ("run.shards", self.run.shards),
            ("challenger.documents_per_iteration", self.challenger.documents_per_iteration),
            ("challenger.num_generations", self.challenger.num_generations),
            ("challenger.max_attempts", self.challenger.max_attempts),
            ("challenger.attempts_per_round", self.challenger.attempts_per_round),
            ("challenger.max_completion_length", self.challenger.max_completion_length),
            ("challenger.batch_size", self.challenger.batch_size),
            ("reasoner.num_generations", self.reasoner.num_generations),
            ("reasoner.max_completion_length", self.reasoner.max_completion_length),
            ("reasoner.batch_size", self.reasoner.batch_size),
            ("update.ppo_epochs", self.update.ppo_epochs),
            ("update.micro_batch_size", self.update.micro_batch_size),
            ("update.processes", self.update.processes),
            ("corpus.max_doc_tokens", self.corpus.max_doc_tokens),
            ("eval.samples", self.eval.samples),
            ("crossplay.documents", self.crossplay.documents),
        ];
        for (key, v) in positive {
            if v == 0 {
                bail!("{key} must be at least 1");
            }
        }
        if self.update.zero_stage > 1 {
            bail!(
                "update.zero_stage = {}: stages 0 (replicated optimizer) and 1 (sharded AdamW \
                 moments) exist; gradients and weights are not sharded",
                self.update.zero_stage
            );
        }
        for (name, res) in &self.slurm.stages {
            if res.ntasks == Some(0) {
                bail!("slurm.stages.{name}.ntasks must be at least 1");
            }
            if name != "update" && res.ntasks.is_some_and(|n| n > 1) {
                bail!(
                    "slurm.stages.{name}.ntasks: only the update runs as several tasks (its \
                     data-parallel ranks); {name} splits into parts with its own `shards`"
                );
            }
            if !SLURM_STAGES.contains(&name.as_str()) {
                bail!("slurm.stages.{name} is not a stage; stages are {SLURM_STAGES:?}");
            }
        }
        if self.corpus.min_doc_tokens > self.corpus.max_doc_tokens {
            bail!("corpus.min_doc_tokens is larger than corpus.max_doc_tokens");
        }
        for (key, t) in [
            ("challenger.temperature", self.challenger.temperature),
            ("reasoner.temperature", self.reasoner.temperature),
        ] {
            if !(0.0..=10.0).contains(&t) {
                bail!("{key} = {t} is outside 0..=10");
            }
        }
        for (key, p) in
            [("challenger.top_p", self.challenger.top_p), ("reasoner.top_p", self.reasoner.top_p)]
        {
            if !(p > 0.0 && p <= 1.0) {
                bail!("{key} = {p} is outside (0, 1]");
            }
        }
        self.validate_training_sampling()?;
        // Written so that NaN fails too.
        let positive = |x: f64| x > 0.0;
        let non_negative = |x: f64| x >= 0.0;
        if !positive(self.update.learning_rate)
            || !non_negative(self.update.epsilon)
            || self.update.beta < 0.0
        {
            bail!("update.learning_rate must be > 0, update.epsilon >= 0 and update.beta >= 0");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_papers() {
        let c = RunConfig::default();
        assert_eq!(c.challenger.documents_per_iteration, 128);
        assert_eq!((c.challenger.num_generations, c.reasoner.num_generations), (8, 8));
        assert_eq!(c.run.iterations, 640);
        assert_eq!(c.update.learning_rate, 1e-6);
        assert_eq!(c.update.beta, 0.0);
        assert_eq!(c.reward.invalid_penalty, -0.1);
        assert_eq!(c.corpus.max_doc_tokens, 5992);
        assert_eq!(c.challenger.temperature, 1.0);
        c.validate().unwrap();
    }

    #[test]
    fn checkpoint_bounds_default_to_every_model_and_the_last_optimizer() {
        let c = RunConfig::default();
        assert_eq!((c.checkpoint.keep, c.checkpoint.keep_optimizer), (0, 1));
        let c = RunConfig::from_toml("[checkpoint]\nkeep = 3\n", "c.toml").unwrap();
        assert_eq!((c.checkpoint.keep, c.checkpoint.keep_optimizer), (3, 1));
        let err = RunConfig::from_toml("[checkpoint]\nsave_total_limit = 3\n", "c.toml");
        assert!(format!("{:#}", err.unwrap_err()).contains("save_total_limit"));
    }

    #[test]
    fn checkpoint_evaluations_follow_eval_every() {
        let mut e = EvalSection { eval_every: 2, ..EvalSection::default() };
        assert!(!e.evaluates_checkpoint(1), "no benchmarks, no evaluation");
        e.benchmarks = vec!["b.jsonl".into()];
        let evaluated: Vec<u32> = (0..6).filter(|i| e.evaluates_checkpoint(*i)).collect();
        assert_eq!(evaluated, [1, 3, 5]);
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = RunConfig::from_toml("[update]\nlearnig_rate = 1e-5\n", "x.toml").unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("learnig_rate") && msg.contains("x.toml"), "{msg}");
        let err = RunConfig::from_toml("[updat]\n", "x.toml").unwrap_err();
        assert!(format!("{err:#}").contains("updat"));
    }

    #[test]
    fn bad_values_are_named() {
        let err = RunConfig::from_toml("[reward]\nchallenger_reward = \"varience\"\n", "p.toml")
            .unwrap_err();
        assert!(format!("{err:#}").contains("reward.challenger_reward"));
        let err = RunConfig::from_toml("[run]\ndtype = \"fp16\"\n", "p.toml").unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("run.dtype") && msg.contains("bf16"), "{msg}");
        let c = RunConfig::from_toml("[run]\ndtype = \"f32\"\n", "p.toml").unwrap();
        assert_eq!(c.run.dtype, Dtype::F32);
        let err = RunConfig::from_toml("[update]\nzero_stage = 2\n", "p.toml").unwrap_err();
        assert!(format!("{err:#}").contains("update.zero_stage = 2"), "{err:#}");
        let c = RunConfig::from_toml("[update]\nzero_stage = 0\n", "p.toml").unwrap();
        assert_eq!((c.update.zero_stage, RunConfig::default().update.zero_stage), (0, 1));
    }

    #[test]
    fn overrides_apply_and_are_checked() {
        let c = RunConfig::default()
            .with_overrides(&[
                "update.learning_rate=1e-5".into(),
                "challenger.prompt_set=compact".into(),
            ])
            .unwrap();
        assert_eq!(c.update.learning_rate, 1e-5);
        assert_eq!(c.challenger.prompt_set, "compact");
        assert!(RunConfig::default().with_overrides(&["update.nope=1".into()]).is_err());
        assert!(RunConfig::default().with_overrides(&["nosection=1".into()]).is_err());
    }

    #[test]
    fn slurm_stage_tables_override_and_extend() {
        let c = RunConfig::from_toml(
            "[slurm]\npartition = \"gpu\"\ntime = \"1:00:00\"\nsetup = [\"module load cuda\"]\n\
             [slurm.stages.rollout]\ngpus = 2\ntime = \"4:00:00\"\nsetup = [\"export A=1\"]\n",
            "s.toml",
        )
        .unwrap();
        let r = c.slurm.for_stage("rollout");
        assert_eq!(
            (r.partition.as_deref(), r.time.as_deref(), r.gpus),
            (Some("gpu"), Some("4:00:00"), Some(2))
        );
        assert_eq!(r.setup, ["module load cuda", "export A=1"]);
        let s = c.slurm.for_stage("score");
        assert_eq!((s.time.as_deref(), s.gpus), (Some("1:00:00"), None));
        assert_eq!(RunConfig::from_toml(&c.to_toml(), "rt").unwrap(), c);
        let err = RunConfig::from_toml("[slurm.stages.rollot]\ngpus = 1\n", "s.toml").unwrap_err();
        assert!(format!("{err:#}").contains("slurm.stages.rollot"), "{err:#}");
    }

    #[test]
    fn truncated_or_greedy_sampling_of_a_trained_role_is_refused() {
        for (set, key) in [
            ("reasoner.top_p=0.9", "reasoner.top_p = 0.9"),
            ("reasoner.top_k=50", "reasoner.top_k = 50"),
            ("challenger.top_p=0.95", "challenger.top_p = 0.95"),
            ("challenger.top_k=20", "challenger.top_k = 20"),
            ("reasoner.temperature=0", "reasoner.temperature = 0"),
            ("challenger.temperature=0.0", "challenger.temperature = 0"),
        ] {
            let err = RunConfig::default().with_overrides(&[set.into()]).unwrap_err();
            let msg = format!("{err:#}");
            assert!(msg.contains(key), "{set}: {msg}");
            let why = if set.contains("temperature") { "greedy" } else { "off-policy" };
            assert!(msg.contains(why), "{set}: {msg}");
        }
        // A temperature other than 1 is scored at that temperature: accepted.
        let c = RunConfig::default()
            .with_overrides(&[
                "reasoner.temperature=0.7".into(),
                "challenger.temperature=1.2".into(),
            ])
            .unwrap();
        assert_eq!((c.reasoner.temperature, c.challenger.temperature), (0.7, 1.2));
        // A frozen Challenger is not trained: its sampling is free.
        let frozen = [
            "challenger.training=frozen".to_string(),
            "challenger.frozen_model=m".into(),
            "challenger.top_p=0.9".into(),
            "challenger.top_k=40".into(),
        ];
        RunConfig::default().with_overrides(&frozen).unwrap();
        // Evaluation trains nothing: greedy is its default.
        assert_eq!(RunConfig::default().eval.temperature, 0.0);
    }

    #[test]
    fn toml_round_trip() {
        let c = RunConfig::default();
        assert_eq!(RunConfig::from_toml(&c.to_toml(), "rt").unwrap(), c);
    }
}
