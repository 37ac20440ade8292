//! Every profile in `pipelines/` parses under the strict run-config schema, and the paper
//! profile keeps the paper's method settings.

use std::path::PathBuf;

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
