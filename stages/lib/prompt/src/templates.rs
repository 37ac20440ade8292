use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Serialize;
use sha2::{Digest, Sha256};
use spice_verify::{AnswerType, TaskKind};

/// The folder of prompt templates, read once.
#[derive(Debug, Clone)]
pub struct Prompts {
    root: PathBuf,
    /// `paper/mcq.jinja` → source.
    sources: BTreeMap<String, String>,
}

/// One MCQ option as the Reasoner template sees it.
#[derive(Debug, Clone, Serialize)]
pub struct ChoiceOption {
    pub letter: String,
    pub text: String,
}

impl Prompts {
    /// Where the templates are: `<run>/prompts` (frozen when the run was created), else
    /// `$SPICE_PROMPTS`, else `pipelines/prompts` under the working directory, else next to
    /// the repository the binary was built in.
    pub fn locate(run: Option<&Path>) -> Result<Prompts> {
        let mut tried = Vec::new();
        let mut candidates: Vec<PathBuf> = Vec::new();
        if let Some(run) = run {
            candidates.push(run.join("prompts"));
        }
        if let Some(p) = std::env::var_os("SPICE_PROMPTS") {
            candidates.push(PathBuf::from(p));
        }
        candidates.push(PathBuf::from("pipelines/prompts"));
        candidates.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../pipelines/prompts"));
        for c in candidates {
            if c.join("reasoner").is_dir() {
                return Prompts::load(&c);
            }
            tried.push(c.display().to_string());
        }
        bail!("no prompt templates found (looked in {}); set SPICE_PROMPTS", tried.join(", "))
    }

    /// Read every `*.jinja` of `root`'s sub-folders.
    pub fn load(root: &Path) -> Result<Prompts> {
        let mut sources = BTreeMap::new();
        let entries =
            std::fs::read_dir(root).with_context(|| format!("reading {}", root.display()))?;
        for set in entries {
            let set = set?;
            if !set.file_type()?.is_dir() {
                continue;
            }
            for f in std::fs::read_dir(set.path())? {
                let path = f?.path();
                if path.extension().and_then(|e| e.to_str()) != Some("jinja") {
                    continue;
                }
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("reading template {}", path.display()))?;
                let name = format!(
                    "{}/{}",
                    set.file_name().to_string_lossy(),
                    path.file_name().unwrap_or_default().to_string_lossy()
                );
                sources.insert(name, text);
            }
        }
        Ok(Prompts { root: root.to_path_buf(), sources })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Digest of every template (name and text): part of a stage's config digest, so an
    /// edited prompt redoes the stages that used it.
    pub fn digest(&self) -> String {
        let mut h = Sha256::new();
        for (name, text) in &self.sources {
            h.update(name.as_bytes());
            h.update([0]);
            h.update(text.as_bytes());
            h.update([0]);
        }
        format!("sha256:{}", hex::encode(h.finalize()))
    }

    fn render(&self, name: &str, ctx: serde_json::Value) -> Result<String> {
        let src = self.sources.get(name).with_context(|| {
            format!("prompt template {}/{name} does not exist", self.root.display())
        })?;
        let env = minijinja::Environment::new();
        let text = env
            .render_str(src, minijinja::Value::from(minijinja::value::Serde(&ctx)))
            .map_err(|e| anyhow::anyhow!("rendering {}/{name}: {e:#}", self.root.display()))?;
        Ok(text.trim().to_string())
    }

    /// Whether prompt set `set` exists and asks the model to choose the format first.
    pub fn has_format_step(&self, set: &str) -> Result<bool> {
        self.check_set(set)?;
        Ok(self.sources.contains_key(&format!("{set}/format.jinja")))
    }

    fn check_set(&self, set: &str) -> Result<()> {
        for kind in ["mcq", "free_form"] {
            if !self.sources.contains_key(&format!("{set}/{kind}.jinja")) {
                bail!("prompt set `{set}` has no {kind}.jinja in {}", self.root.display());
            }
        }
        Ok(())
    }

    /// The paper's first Challenger prompt: choose the task format (JSON out).
    pub fn challenger_format(
        &self,
        set: &str,
        document: Option<&str>,
        task_types: &[TaskKind],
        answer_types: &[AnswerType],
    ) -> Result<String> {
        let kinds: Vec<&str> = task_types.iter().map(|k| k.as_str()).collect();
        let types: Vec<&str> = answer_types.iter().map(|t| t.as_str()).collect();
        self.render(
            &format!("{set}/format.jinja"),
            serde_json::json!({ "document": document, "task_types": kinds, "answer_types": types }),
        )
    }

    /// The format-specific Challenger prompt.
    pub fn challenger_task(
        &self,
        set: &str,
        kind: TaskKind,
        document: Option<&str>,
        answer_type: Option<AnswerType>,
    ) -> Result<String> {
        if kind == TaskKind::Any {
            bail!("a Challenger prompt needs a concrete task kind (mcq or free_form)");
        }
        self.check_set(set)?;
        self.render(
            &format!("{set}/{}.jinja", kind.as_str()),
            serde_json::json!({
                "document": document,
                "answer_type": answer_type.map(|t| t.as_str()),
            }),
        )
    }

    /// The start of the Challenger's answer that the prompt set writes for the model
    /// (`<set>/<kind>.prefill.jinja`, e.g. `{"question": "`), or None. Small models rarely
    /// open a JSON object on their own; with its first characters given, they continue it.
    pub fn challenger_prefill(
        &self,
        set: &str,
        kind: TaskKind,
        answer_type: Option<AnswerType>,
    ) -> Result<Option<String>> {
        let name = format!("{set}/{}.prefill.jinja", kind.as_str());
        let Some(src) = self.sources.get(&name) else { return Ok(None) };
        let env = minijinja::Environment::new();
        let ctx = serde_json::json!({ "answer_type": answer_type.map(|t| t.as_str()) });
        let text = env
            .render_str(src, minijinja::Value::from(minijinja::value::Serde(&ctx)))
            .map_err(|e| anyhow::anyhow!("rendering {}/{name}: {e:#}", self.root.display()))?;
        // Spaces matter at the end of a prefill; a file's final newline does not.
        Ok(Some(text.trim_end_matches(['\n', '\r']).to_string()).filter(|t| !t.is_empty()))
    }

    /// The Reasoner prompt: the question (and options), never the document.
    pub fn reasoner(&self, kind: TaskKind, question: &str, options: &[String]) -> Result<String> {
        let options: Vec<ChoiceOption> = options
            .iter()
            .enumerate()
            .map(|(i, t)| ChoiceOption {
                letter: ((b'A' + i as u8) as char).to_string(),
                text: t.clone(),
            })
            .collect();
        let name = match kind {
            TaskKind::Mcq => "reasoner/mcq.jinja",
            _ => "reasoner/free_form.jinja",
        };
        self.render(name, serde_json::json!({ "question": question, "options": options }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo_prompts() -> Prompts {
        Prompts::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../pipelines/prompts"))
            .unwrap()
    }

    #[test]
    fn every_set_renders_both_kinds_with_and_without_a_document() {
        let p = repo_prompts();
        for set in ["paper", "compact"] {
            for doc in [Some("The Nile is 6,650 km long."), None] {
                let m = p.challenger_task(set, TaskKind::Mcq, doc, None).unwrap();
                assert!(m.contains("\"correct_answer\""), "{set}: {m}");
                let f = p
                    .challenger_task(set, TaskKind::FreeForm, doc, Some(AnswerType::Integer))
                    .unwrap();
                assert!(f.contains("integer"), "{set}: {f}");
                // The document is shown exactly when grounding asks for it.
                assert_eq!(m.contains("6,650"), doc.is_some(), "{set}: {m}");
                assert_eq!(f.contains("6,650"), doc.is_some(), "{set}: {f}");
            }
        }
        assert!(p.has_format_step("paper").unwrap());
        assert_eq!(
            p.challenger_prefill("compact", TaskKind::Mcq, None).unwrap().as_deref(),
            Some("{\"question\": \"")
        );
        assert_eq!(p.challenger_prefill("paper", TaskKind::Mcq, None).unwrap(), None);
        assert!(!p.has_format_step("compact").unwrap());
        assert!(p.has_format_step("nonexistent").is_err());
    }

    #[test]
    fn paper_format_prompt_lists_only_allowed_formats() {
        let p = repo_prompts();
        let only_mcq =
            p.challenger_format("paper", Some("doc"), &[TaskKind::Mcq], AnswerType::ALL).unwrap();
        assert!(only_mcq.contains("\"mcq\": a multiple-choice"));
        assert!(!only_mcq.contains("\"free_form\": a question"));
        let both = p
            .challenger_format(
                "paper",
                Some("doc"),
                &[TaskKind::Mcq, TaskKind::FreeForm],
                &[AnswerType::Float],
            )
            .unwrap();
        assert!(
            both.contains("\"free_form\": a question with one short answer of a given type: float")
        );
    }

    #[test]
    fn reasoner_prompt_letters_options_and_asks_for_a_box() {
        let p = repo_prompts();
        let opts = vec!["red".to_string(), "green".into(), "blue".into(), "cyan".into()];
        let m = p.reasoner(TaskKind::Mcq, "Which colour?", &opts).unwrap();
        assert!(m.starts_with("Which colour?"));
        assert!(m.contains("A. red\nB. green\nC. blue\nD. cyan"), "{m}");
        assert!(m.contains("\\boxed{}"));
        let f = p.reasoner(TaskKind::FreeForm, "What is 2+2?", &[]).unwrap();
        assert!(f.contains("\\boxed{}") && !f.contains("A."));
    }

    #[test]
    fn digest_follows_the_text() {
        let dir = tempfile::tempdir().unwrap();
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../pipelines/prompts");
        for set in ["compact", "reasoner"] {
            std::fs::create_dir_all(dir.path().join(set)).unwrap();
            for f in std::fs::read_dir(src.join(set)).unwrap() {
                let f = f.unwrap().path();
                std::fs::copy(&f, dir.path().join(set).join(f.file_name().unwrap())).unwrap();
            }
        }
        let a = Prompts::load(dir.path()).unwrap().digest();
        std::fs::write(dir.path().join("compact/mcq.jinja"), "changed {{ document }}").unwrap();
        let b = Prompts::load(dir.path()).unwrap();
        assert_ne!(a, b.digest());
        assert_eq!(
            b.challenger_task("compact", TaskKind::Mcq, Some("x"), None).unwrap(),
            "changed x"
        );
    }
}
