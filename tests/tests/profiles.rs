//! Every profile in `pipelines/` parses under the strict run-config schema, the paper profile
//! keeps the paper's method settings and names its model and corpus (and refuses to start
//! without them), and the README's `--set` examples parse.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use spice_schemas::RunConfig;

fn pipelines() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../pipelines")
}

#[test]
fn every_profile_parses() {
    let mut n = 0;
    for entry in std::fs::read_dir(pipelines()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml")
            && path.file_name().unwrap() != "Cargo.toml"
        {
            let cfg = RunConfig::load(&path).unwrap_or_else(|e| panic!("{e:#}"));
            assert_eq!(
                cfg.run.name,
                path.file_stem().unwrap().to_str().unwrap(),
                "{}",
                path.display()
            );
            n += 1;
        }
    }
    assert!(n >= 3, "expected paper, cpu and smoke profiles, found {n}");
}

#[test]
fn paper_profile_is_the_papers_method() {
    let cfg = RunConfig::load(&pipelines().join("paper.toml")).unwrap();
    assert_eq!(cfg.challenger.documents_per_iteration, 128);
    assert_eq!((cfg.challenger.num_generations, cfg.reasoner.num_generations), (8, 8));
    assert_eq!(cfg.run.iterations, 640);
    assert_eq!(cfg.update.learning_rate, 1e-6);
    assert_eq!((cfg.update.beta, cfg.update.epsilon), (0.0, 0.2));
    assert_eq!(cfg.reward.challenger_reward, spice_schemas::vocab::ChallengerReward::Variance);
    assert_eq!((cfg.challenger.temperature, cfg.challenger.top_p), (1.0, 1.0));
    assert_eq!(cfg.corpus.max_doc_tokens, 5992);
}

/// The profile the paper ran names its model and corpus, which the repository does not ship.
#[test]
fn paper_profile_names_the_papers_model_and_corpus() {
    let cfg = RunConfig::load(&pipelines().join("paper.toml")).unwrap();
    assert_eq!(cfg.run.model, PathBuf::from("data/models/qwen3-4b-base"));
    assert_eq!(
        cfg.corpus.paths,
        [PathBuf::from("data/corpus/nemotron-cc-math"), "data/corpus/natural-reasoning".into()]
    );
    let source = |p: &str| cfg.sources.get(p).map(String::as_str);
    assert_eq!(source("data/models/qwen3-4b-base"), Some("Qwen/Qwen3-4B-Base"));
    assert_eq!(source("data/corpus/nemotron-cc-math"), Some("nvidia/Nemotron-CC-Math-v1"));
    assert_eq!(source("data/corpus/natural-reasoning"), Some("facebook/natural_reasoning"));
}

/// `spice iterate` on the paper profile refuses to start until its model and corpus are there,
/// and says which are missing and how to get them; with them in place the check passes.
#[test]
fn paper_profile_refuses_to_start_without_its_model_and_corpus() {
    let paper = pipelines().join("paper.toml").canonicalize().unwrap();
    // A working directory without data/: the profile's relative paths resolve there.
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let out = Command::new(common::bin_dir().join("spice"))
        .current_dir(tmp.path())
        .args(["iterate", "--config"])
        .arg(&paper)
        .arg("--run")
        .arg(&run)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    println!("{err}");
    assert!(!out.status.success(), "the paper profile started without its inputs");
    for want in [
        "run.model = \"data/models/qwen3-4b-base\" is missing",
        "huggingface-cli download Qwen/Qwen3-4B-Base --local-dir data/models/qwen3-4b-base",
        "--set run.model=DIR",
        "\"data/corpus/nemotron-cc-math\" does not exist",
        "nvidia/Nemotron-CC-Math-v1",
        "\"data/corpus/natural-reasoning\" does not exist",
        "facebook/natural_reasoning",
    ] {
        assert!(err.contains(want), "the refusal lacks {want:?}:\n{err}");
    }
    assert!(!run.exists(), "a refused run must leave no run folder");

    // `spice config` still prints the profile, with the same note.
    let out = Command::new(common::bin_dir().join("spice"))
        .current_dir(tmp.path())
        .args(["config", "--config"])
        .arg(&paper)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("qwen3-4b-base"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Qwen/Qwen3-4B-Base"));

    // The same inputs in place (empty stand-ins: the check looks for the model's config.json
    // and the corpus paths) …
    let cfg = RunConfig::load(&paper).unwrap();
    assert_eq!(cfg.missing_inputs_in(tmp.path()).len(), 3);
    std::fs::create_dir_all(tmp.path().join("data/models/qwen3-4b-base")).unwrap();
    std::fs::write(tmp.path().join("data/models/qwen3-4b-base/config.json"), "{}").unwrap();
    assert_eq!(cfg.missing_inputs_in(tmp.path()).len(), 2, "the corpus is still missing");
    for c in ["nemotron-cc-math", "natural-reasoning"] {
        std::fs::create_dir_all(tmp.path().join("data/corpus").join(c)).unwrap();
    }
    assert_eq!(cfg.missing_inputs_in(tmp.path()), Vec::<String>::new());
    // … or elsewhere, through --set overrides.
    let model = tmp.path().join("my-model");
    std::fs::create_dir_all(&model).unwrap();
    std::fs::write(model.join("config.json"), "{}").unwrap();
    let corpus = tmp.path().join("my-corpus.jsonl");
    std::fs::write(&corpus, "{\"text\": \"a document\"}\n").unwrap();
    let cfg = cfg
        .with_overrides(&[
            format!("run.model={:?}", model.display().to_string()),
            format!("corpus.paths=[{:?}]", corpus.display().to_string()),
        ])
        .unwrap();
    assert_eq!(cfg.missing_inputs_in(Path::new("/nonexistent")), Vec::<String>::new());
    let out = Command::new(common::bin_dir().join("spice"))
        .current_dir(tmp.path())
        .args(["config", "--config"])
        .arg(&paper)
        .args(["--set", &format!("run.model={:?}", model.display().to_string())])
        .args(["--set", &format!("corpus.paths=[{:?}]", corpus.display().to_string())])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// Every `--set key=value` of a command in the README, applied to that command's profile, is
/// accepted by the config parser (an example that no longer parses fails here).
#[test]
fn readme_set_examples_parse() {
    let readme = std::fs::read_to_string(pipelines().join("../README.md")).unwrap();
    // Commands, with their `\` continuation lines joined.
    let mut commands: Vec<String> = Vec::new();
    let mut open = false;
    for line in readme.lines() {
        let l = line.trim();
        if open {
            commands.last_mut().unwrap().push_str(&format!(" {}", l.trim_end_matches('\\')));
        } else if l.starts_with("just ") || l.starts_with("spice ") {
            commands.push(l.trim_end_matches('\\').to_string());
        }
        open = (open || l.starts_with("just ") || l.starts_with("spice ")) && l.ends_with('\\');
    }
    let mut checked = 0;
    for cmd in commands.iter().filter(|c| c.contains("--set ")) {
        let words: Vec<&str> = cmd.split_whitespace().collect();
        let profile = words
            .iter()
            .position(|w| *w == "--config")
            .map(|i| words[i + 1])
            .unwrap_or("pipelines/cpu.toml");
        let sets: Vec<String> =
            words.windows(2).filter(|w| w[0] == "--set").map(|w| w[1].to_string()).collect();
        let cfg = RunConfig::load(&pipelines().join("..").join(profile)).unwrap();
        cfg.with_overrides(&sets).unwrap_or_else(|e| panic!("README: `{cmd}`: {e:#}"));
        checked += sets.len();
    }
    println!("{checked} --set examples of the README parse");
    // The ablation example (`--set reward.challenger_reward=r_zero`) among them.
    assert!(readme.contains("--set reward.challenger_reward=r_zero"));
    assert!(checked >= 4, "found only {checked} --set examples in the README");
}

/// The long workstation run evaluates the set `just setup` makes, and cross-plays policies the
/// run will have, on documents its training never draws.
#[test]
fn learn_profile_is_consistent_with_setup_and_crossplay() {
    let cfg = RunConfig::load(&pipelines().join("learn.toml")).unwrap();
    assert!(cfg.run.iterations >= 20);
    assert_eq!(cfg.eval.benchmarks, [PathBuf::from("data/bench/arith200.jsonl")]);
    let setup = std::fs::read_to_string(pipelines().join("setup.sh")).unwrap();
    assert!(setup.contains("> data/bench/arith200.jsonl.tmp"), "setup.sh makes the eval set");
    assert!(cfg.eval.eval_every > 0 && cfg.run.iterations.is_multiple_of(cfg.eval.eval_every));
    assert!(cfg.crossplay.heldout_documents > 0);
    assert!(cfg.crossplay.policies.iter().all(|p| *p <= cfg.run.iterations));
    assert!(cfg.crossplay.policies.contains(&cfg.run.iterations), "the last policy is compared");
}
