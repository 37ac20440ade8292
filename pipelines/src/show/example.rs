//! One iteration's shards joined around one task: the document, the Challenger's attempt, the
//! parsed task, its scores and the Reasoner's answers — the data `spice show` prints.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use serde::Serialize;
use spice_schemas::vocab::Role;
use spice_schemas::{
    layout::RunLayout,
    manifest::folder_complete,
    parquet_io::shard_files,
    read_folder, read_shard,
    rows::{ChallengerRow, ChunkRow, RolloutRow, ScoredRow, TaskRow},
};

/// Every row of one iteration that concerns tasks (the update's rows are not needed here).
pub struct Iteration {
    pub run: PathBuf,
    pub iteration: u32,
    /// Sorted by task id, i.e. by document slot, then attempt.
    pub tasks: Vec<TaskRow>,
    challenger: Vec<ChallengerRow>,
    rollouts: Vec<RolloutRow>,
    scored: Vec<ScoredRow>,
    /// Shard folders whose stage has not committed (yet): what is shown from them may be
    /// partial or missing.
    pub unfinished: Vec<&'static str>,
}

/// One task of the iteration in a line: what a reader needs to pick one to look at.
#[derive(Debug, Clone, Serialize)]
pub struct TaskLine {
    pub task_id: String,
    pub selected: bool,
    pub valid: bool,
    pub invalid_reason: Option<String>,
    pub answers: usize,
    pub correct: usize,
    pub pass_rate: Option<f32>,
    /// The Challenger's reward r_C (selected attempts only: the others are not scored).
    pub challenger_reward: Option<f32>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Document {
    pub chunk_id: String,
    pub source: String,
    pub doc_index: u64,
    pub chunk_index: u32,
    pub n_tokens: u32,
    pub text: String,
}

/// The Challenger's attempt as generated (token ids and log-probs left out).
#[derive(Debug, Clone, Serialize)]
pub struct Attempt {
    pub doc_slot: u32,
    pub attempt: u32,
    pub task_kind: String,
    pub answer_type: Option<String>,
    pub prompt_set: String,
    pub format_completion: Option<String>,
    /// Written into the prompt for the model; the task is parsed from prefix + completion.
    pub response_prefix: String,
    pub completion: String,
    pub finish_reason: String,
    pub tokens: usize,
    pub policy_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
}

/// The Challenger's `scored/` row: r_C from the Reasoner's pass rate p̂.
#[derive(Debug, Clone, Serialize)]
pub struct ChallengerScore {
    pub reward: f32,
    pub advantage: f32,
    pub pass_rate: Option<f32>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Answer {
    pub sample: u32,
    pub completion: String,
    /// `None` until `spice-score` has run.
    pub extracted: Option<String>,
    pub correct: Option<bool>,
    pub reward: Option<f32>,
    pub advantage: Option<f32>,
    /// In T_R, the Reasoner's training batch (one task per document).
    pub in_batch: Option<bool>,
    pub finish_reason: String,
    pub tokens: usize,
    pub policy_id: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Example {
    pub run: PathBuf,
    pub iteration: u32,
    /// Why this task was shown when no `--task` was given.
    pub picked_by: Option<String>,
    /// `None` for an ungrounded Challenger (`grounding = "none"`).
    pub document: Option<Document>,
    /// Why the document is missing when it should be there.
    pub document_note: Option<String>,
    pub attempt: Option<Attempt>,
    pub task: TaskRow,
    pub challenger_score: Option<ChallengerScore>,
    pub answers: Vec<Answer>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoner_prompt: Option<String>,
    pub unfinished: Vec<&'static str>,
    /// Every other task of the iteration.
    pub other_tasks: Vec<TaskLine>,
}

impl Iteration {
    /// Read the iteration's `tasks/`, `challenger/`, `rollouts/` and `scored/`. A missing
    /// iteration, or one whose tasks have not been written, is an error listing what exists.
    pub fn load(run: &Path, iteration: u32) -> Result<Self> {
        let layout = RunLayout::new(run);
        if !run.is_dir() {
            bail!("run folder {} does not exist", run.display());
        }
        let have = layout.iterations();
        if !have.contains(&iteration) {
            bail!(
                "iteration {iteration} is not in run {}; {}",
                run.display(),
                iterations_phrase(&have)
            );
        }
        let tasks_dir = layout.folder(iteration, "tasks");
        if !tasks_dir.is_dir() || shard_files(&tasks_dir)?.is_empty() {
            let with_tasks: Vec<u32> = have
                .iter()
                .copied()
                .filter(|&i| shard_files(&layout.folder(i, "tasks")).is_ok_and(|f| !f.is_empty()))
                .collect();
            bail!(
                "{} has no task shards yet (has `spice-filter` run for iteration {iteration}?); \
                 iterations with tasks: {}",
                tasks_dir.display(),
                list_or_none(&with_tasks)
            );
        }
        let mut unfinished = Vec::new();
        let mut read = |name: &'static str| -> Result<Option<PathBuf>> {
            let dir = layout.folder(iteration, name);
            if !dir.is_dir() {
                unfinished.push(name);
                return Ok(None);
            }
            if folder_complete(&dir)?.is_none() {
                unfinished.push(name);
            }
            Ok(Some(dir))
        };
        let (t, c, r, s) =
            (read("tasks")?, read("challenger")?, read("rollouts")?, read("scored")?);
        fn rows<T: spice_schemas::ShardRow>(dir: Option<PathBuf>) -> Result<Vec<T>> {
            dir.map_or(Ok(Vec::new()), |d| read_folder(&d))
        }
        let mut tasks: Vec<TaskRow> = rows(t)?;
        tasks.sort_by(|a, b| a.task_id.cmp(&b.task_id));
        Ok(Self {
            run: run.to_path_buf(),
            iteration,
            tasks,
            challenger: rows(c)?,
            rollouts: rows(r)?,
            scored: rows(s)?,
            unfinished,
        })
    }

    /// One line per task, in task id order.
    pub fn lines(&self) -> Vec<TaskLine> {
        let mut answers: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
        for r in &self.rollouts {
            answers.entry(&r.task_id).or_default().0 += 1;
        }
        let mut pass_rate: BTreeMap<&str, f32> = BTreeMap::new();
        let mut reward: BTreeMap<&str, f32> = BTreeMap::new();
        for s in &self.scored {
            if s.role == Role::Reasoner.as_str() {
                answers.entry(&s.task_id).or_default().1 += s.correct.unwrap_or(false) as usize;
            }
            if let Some(p) = s.pass_rate {
                pass_rate.insert(&s.task_id, p);
            }
            if s.role == Role::Challenger.as_str() {
                reward.insert(&s.task_id, s.reward);
            }
        }
        self.tasks
            .iter()
            .map(|t| {
                let (n, correct) = answers.get(t.task_id.as_str()).copied().unwrap_or_default();
                TaskLine {
                    task_id: t.task_id.clone(),
                    selected: t.selected,
                    valid: t.valid,
                    invalid_reason: t.invalid_reason.clone(),
                    answers: n,
                    correct,
                    pass_rate: pass_rate.get(t.task_id.as_str()).copied(),
                    challenger_reward: reward.get(t.task_id.as_str()).copied(),
                }
            })
            .collect()
    }

    /// The task a person auditing the iteration would look at first, and why: a valid,
    /// trained-on task whose answers are partly right (the Challenger's target), else one
    /// with any answers, else any valid task, else the first attempt.
    pub fn pick(&self) -> (String, &'static str) {
        let lines = self.lines();
        type Rule<'a> = (&'a str, &'a dyn Fn(&TaskLine) -> bool);
        let rules: [Rule; 4] = [
            ("the first valid selected task whose answers are partly right (0 < p̂ < 1)", &|l| {
                l.valid && l.selected && l.answers > 0 && l.correct > 0 && l.correct < l.answers
            }),
            ("the first valid selected task with Reasoner answers", &|l| {
                l.valid && l.selected && l.answers > 0
            }),
            ("the first valid task (none has Reasoner answers)", &|l| l.valid),
            ("the first attempt (no task of this iteration is valid)", &|_| true),
        ];
        for (why, rule) in rules {
            if let Some(l) = lines.iter().find(|l| rule(l)) {
                return (l.task_id.clone(), why);
            }
        }
        unreachable!("load() refuses an iteration without tasks")
    }

    /// Join everything about `task_id`. An unknown id is an error that lists the iteration's
    /// task ids.
    pub fn example(&self, task_id: &str, prompts: bool) -> Result<Example> {
        let Some(task) = self.tasks.iter().find(|t| t.task_id == task_id) else {
            bail!("{}", self.unknown_task(task_id));
        };
        let attempt = self
            .challenger
            .iter()
            .find(|c| c.doc_slot == task.doc_slot && c.attempt == task.attempt)
            .map(|c| Attempt {
                doc_slot: c.doc_slot,
                attempt: c.attempt,
                task_kind: c.task_kind.clone(),
                answer_type: c.answer_type.clone(),
                prompt_set: c.prompt_set.clone(),
                format_completion: c.format_completion.clone(),
                response_prefix: c.response_prefix.clone(),
                completion: c.completion.clone(),
                finish_reason: c.finish_reason.clone(),
                tokens: c.completion_ids.len(),
                policy_id: c.policy_id.clone(),
                prompt: prompts.then(|| c.prompt.clone()),
            });
        let challenger_score = self
            .scored
            .iter()
            .find(|s| s.role == Role::Challenger.as_str() && s.task_id == task_id)
            .map(|s| ChallengerScore {
                reward: s.reward,
                advantage: s.advantage,
                pass_rate: s.pass_rate,
            });
        let mut rollouts: Vec<&RolloutRow> =
            self.rollouts.iter().filter(|r| r.task_id == task_id).collect();
        rollouts.sort_by_key(|r| r.sample);
        let answers = rollouts
            .iter()
            .map(|r| {
                let s = self.scored.iter().find(|s| {
                    s.role == Role::Reasoner.as_str()
                        && s.task_id == task_id
                        && s.sample == r.sample
                });
                Answer {
                    sample: r.sample,
                    completion: r.completion.clone(),
                    extracted: s.and_then(|s| s.extracted.clone()),
                    correct: s.and_then(|s| s.correct),
                    reward: s.map(|s| s.reward),
                    advantage: s.map(|s| s.advantage),
                    in_batch: s.map(|s| s.in_batch),
                    finish_reason: r.finish_reason.clone(),
                    tokens: r.completion_ids.len(),
                    policy_id: r.policy_id.clone(),
                }
            })
            .collect();
        let (document, document_note) = if task.chunk_id.is_empty() {
            (None, None)
        } else {
            match find_chunk(&RunLayout::new(&self.run).chunks(), &task.chunk_id)? {
                Some(c) => (Some(c), None),
                None => (
                    None,
                    Some(format!(
                        "chunk {} is not in {}/chunks",
                        task.chunk_id,
                        self.run.display()
                    )),
                ),
            }
        };
        Ok(Example {
            run: self.run.clone(),
            iteration: self.iteration,
            picked_by: None,
            document,
            document_note,
            attempt,
            task: task.clone(),
            challenger_score,
            answers,
            reasoner_prompt: if prompts {
                rollouts.first().map(|r| r.prompt.clone())
            } else {
                None
            },
            unfinished: self.unfinished.clone(),
            other_tasks: self.lines().into_iter().filter(|l| l.task_id != task_id).collect(),
        })
    }

    fn unknown_task(&self, task_id: &str) -> String {
        const SHOWN: usize = 12;
        let ids: Vec<&str> = self.tasks.iter().map(|t| t.task_id.as_str()).collect();
        let mut msg = format!(
            "no task `{task_id}` in iteration {} of {}; its {} task(s): {}{}",
            self.iteration,
            self.run.display(),
            ids.len(),
            ids[..ids.len().min(SHOWN)].join(", "),
            if ids.len() > SHOWN {
                format!(", … ({} more)", ids.len() - SHOWN)
            } else {
                String::new()
            }
        );
        if let Some(i) = iteration_of(task_id).filter(|&i| i != self.iteration) {
            msg.push_str(&format!(" (the id names iteration {i}: try `--iter {i}`)"));
        }
        msg.push_str(&format!(
            "; `spice show --run {} --iter {} --list` lists every task",
            self.run.display(),
            self.iteration
        ));
        msg
    }
}

/// The iteration a task id names (`i0003-d012-a0005` → 3).
pub fn iteration_of(task_id: &str) -> Option<u32> {
    task_id.strip_prefix('i')?.split('-').next()?.parse().ok()
}

/// The latest iteration whose tasks have been written.
pub fn latest_with_tasks(run: &Path) -> Result<u32> {
    let layout = RunLayout::new(run);
    if !run.is_dir() {
        bail!("run folder {} does not exist", run.display());
    }
    let have = layout.iterations();
    have.iter()
        .rev()
        .copied()
        .find(|&i| shard_files(&layout.folder(i, "tasks")).is_ok_and(|f| !f.is_empty()))
        .ok_or_else(|| {
            anyhow::anyhow!(
                "no iteration of {} has tasks yet; {}",
                run.display(),
                iterations_phrase(&have)
            )
        })
}

/// Read chunk shards one at a time and stop at the one holding `chunk_id`, so a large corpus
/// is not read whole.
fn find_chunk(dir: &Path, chunk_id: &str) -> Result<Option<Document>> {
    if !dir.is_dir() {
        return Ok(None);
    }
    for file in shard_files(dir)? {
        if let Some(c) = read_shard::<ChunkRow>(&file)?.into_iter().find(|c| c.chunk_id == chunk_id)
        {
            return Ok(Some(Document {
                chunk_id: c.chunk_id,
                source: c.source,
                doc_index: c.doc_index,
                chunk_index: c.chunk_index,
                n_tokens: c.n_tokens,
                text: c.text,
            }));
        }
    }
    Ok(None)
}

fn iterations_phrase(have: &[u32]) -> String {
    if have.is_empty() {
        "it has no iterations yet".to_string()
    } else {
        format!("its iterations: {}", list_or_none(have))
    }
}

fn list_or_none(v: &[u32]) -> String {
    if v.is_empty() {
        return "none".to_string();
    }
    v.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_ids_name_their_iteration() {
        assert_eq!(iteration_of("i0003-d012-a0005"), Some(3));
        assert_eq!(iteration_of("x"), None);
        assert_eq!(iteration_of("i-d0"), None);
    }
}
