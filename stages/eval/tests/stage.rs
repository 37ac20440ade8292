//! The whole evaluation on the tiny random model (its answers are nonsense; the bookkeeping
//! is what is checked): rows per question × sample, a summary that equals a recount of the
//! rows, avg@k, seeds, no-op reruns, the run mode and the CLI.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use common::*;
use spice_eval::{evaluate, sample_seed, summarize, EvalSummaryRow, SUMMARY_FILE};
use spice_schemas::{read_shard, rows::EvalRow, Manifest};
use spice_verify::{check_with_letters, TaskKind};

fn rows_of(out: &Path) -> Vec<EvalRow> {
    read_shard::<EvalRow>(&out.join("part-00000.parquet")).unwrap()
}

/// (benchmark, subject) → (questions, answers, correct).
type Recount = BTreeMap<(String, Option<String>), (usize, usize, usize)>;

/// Accuracy per benchmark and per (benchmark, subject), counted here from the rows alone.
fn recount(rows: &[EvalRow]) -> Recount {
    let mut m: BTreeMap<_, (HashSet<String>, usize, usize)> = BTreeMap::new();
    for r in rows {
        let mut keys = vec![(r.benchmark.clone(), None)];
        if r.subject.is_some() {
            keys.push((r.benchmark.clone(), r.subject.clone()));
        }
        for key in keys {
            let e = m.entry(key).or_default();
            e.0.insert(r.question_id.clone());
            e.1 += 1;
            e.2 += r.correct as usize;
        }
    }
    m.into_iter().map(|(k, (q, n, c))| (k, (q.len(), n, c))).collect()
}

fn write_benches(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let sums = dir.join("gsm_like.jsonl");
    // GSM8K layout, so the preset is detected: answers end in `#### N`.
    let rows: Vec<serde_json::Value> = arithmetic_rows(5)
        .into_iter()
        .map(|r| serde_json::json!({"question": r["q"], "answer": format!("Add them.\n#### {}", r["a"])}))
        .collect();
    write_jsonl(&sums, &rows);
    let mmlu = dir.join("mmlu_pro.parquet");
    write_mmlu_pro(&mmlu);
    (sums, mmlu)
}

#[test]
fn rows_and_summary_agree_and_reruns_are_no_ops() {
    let dir = tempfile::tempdir().unwrap();
    let (sums, mmlu) = write_benches(dir.path());
    let out = dir.path().join("eval");
    let opts = options(&tiny_model(), &[&sums, &mmlu], &out);
    let report = evaluate(&opts).unwrap();
    assert!(report.ran);

    let rows = rows_of(&out);
    assert_eq!(rows.len(), 5 + 6, "one row per question at k = 1");
    for r in &rows {
        let kind: TaskKind = r.task_kind.parse().unwrap();
        assert_eq!(r.sample, 0);
        assert_eq!(r.seed, sample_seed(5, &r.benchmark, &r.question_id, 0));
        assert!(r.completion_tokens >= 1 && r.completion_tokens <= 12, "{}", r.completion_tokens);
        assert!(r.prompt.contains(if kind == TaskKind::Mcq {
            "Which choice is right?"
        } else {
            "What is"
        }));
        // The verdict stored is the verifier's verdict on the stored completion.
        let max = if kind == TaskKind::Mcq { 'J' } else { 'D' };
        let c = check_with_letters(&r.gold, &r.completion, kind, None, max);
        assert_eq!(r.correct, c.equivalent);
    }
    let gsm: Vec<&EvalRow> = rows.iter().filter(|r| r.benchmark == "gsm_like").collect();
    assert_eq!(gsm[0].gold, "34");
    assert_eq!(gsm[0].task_kind, "free_form");
    let mcq: Vec<&EvalRow> = rows.iter().filter(|r| r.benchmark == "mmlu_pro").collect();
    assert_eq!(mcq.len(), 6);
    assert!(mcq[1].prompt.contains("J. choice 9"), "ten options lettered A..J: {}", mcq[1].prompt);

    // The summary file equals an independent recount of the rows.
    let summary = read_shard::<EvalSummaryRow>(&out.join(SUMMARY_FILE)).unwrap();
    assert_eq!(summary, report.summary);
    let counts = recount(&rows);
    assert_eq!(summary.len(), counts.len(), "{summary:?} vs {counts:?}");
    for s in &summary {
        let (q, n, c) = counts[&(s.benchmark.clone(), s.subject.clone())];
        assert_eq!((s.questions as usize, s.correct as usize, s.samples), (q, c, 1));
        assert_eq!(s.accuracy, c as f64 / n as f64);
        assert_eq!(s.pass_at_1, Some(s.accuracy));
    }
    let law = summary.iter().find(|s| s.subject.as_deref() == Some("law")).unwrap();
    assert_eq!(law.questions, 3);

    // The manifest records the accuracies and both files.
    let m = Manifest::read(&out.join("_manifest.json")).unwrap();
    assert_eq!(m.metrics["answers"], 11);
    // The process's peak memory when generation ended: libtorch alone holds over 100 MiB.
    let rss = m.metrics["peak_rss_mib"].as_f64().unwrap();
    assert!(rss > 100.0 && rss < 24.0 * 1024.0, "{rss}");
    for s in summary.iter().filter(|s| s.subject.is_none()) {
        assert_eq!(m.metrics[&format!("{}/accuracy", s.benchmark)], s.accuracy);
        assert_eq!(m.metrics[&format!("{}/questions", s.benchmark)], s.questions);
    }
    let files: Vec<&str> = m.outputs.iter().map(|o| o.file.as_str()).collect();
    assert_eq!(files, ["part-00000.parquet", SUMMARY_FILE]);

    // Rerun with the same inputs: nothing is redone.
    let before = std::fs::read(out.join("_manifest.json")).unwrap();
    let again = evaluate(&opts).unwrap();
    assert!(!again.ran);
    assert_eq!(again.summary, summary);
    assert_eq!(std::fs::read(out.join("_manifest.json")).unwrap(), before);

    // Greedy answers are reproduced exactly by --force.
    let forced = evaluate(&spice_eval::EvalOptions { force: true, ..opts.clone() }).unwrap();
    assert!(forced.ran);
    let rerun = rows_of(&out);
    assert_eq!(
        rerun.iter().map(|r| &r.completion).collect::<Vec<_>>(),
        rows.iter().map(|r| &r.completion).collect::<Vec<_>>()
    );

    // The shared (not batch-invariant) path is a different setting: it redoes the evaluation,
    // under another config digest, and is then kept in turn.
    let shared = spice_eval::EvalOptions { batch_invariant: false, ..opts.clone() };
    assert!(evaluate(&shared).unwrap().ran);
    let m_shared = Manifest::read(&out.join("_manifest.json")).unwrap();
    assert_ne!(m_shared.config_digest, m.config_digest);
    assert!(!evaluate(&shared).unwrap().ran);

    // A changed setting redoes it.
    let limited = evaluate(&spice_eval::EvalOptions { limit: 2, ..opts.clone() }).unwrap();
    assert!(limited.ran);
    assert_eq!(rows_of(&out).len(), 4);
}

#[test]
fn avg_at_k_has_k_samples_per_question_and_their_mean() {
    let dir = tempfile::tempdir().unwrap();
    let (sums, mmlu) = write_benches(dir.path());
    let out = dir.path().join("eval");
    let opts = spice_eval::EvalOptions {
        samples: 3,
        temperature: 1.0,
        ..options(&tiny_model(), &[&sums, &mmlu], &out)
    };
    let report = evaluate(&opts).unwrap();
    let rows = rows_of(&out);
    assert_eq!(rows.len(), 3 * 11);
    let mut per_q: BTreeMap<(String, String), Vec<u32>> = BTreeMap::new();
    for r in &rows {
        per_q.entry((r.benchmark.clone(), r.question_id.clone())).or_default().push(r.sample);
        assert_eq!(r.seed, sample_seed(5, &r.benchmark, &r.question_id, r.sample));
    }
    assert!(per_q.values().all(|s| s == &[0, 1, 2]));
    // Sampling at temperature 1 from a random model: the three answers are not all the same.
    let distinct: HashSet<&str> = rows.iter().map(|r| r.completion.as_str()).collect();
    assert!(distinct.len() > 11, "{} distinct completions", distinct.len());
    for s in &report.summary {
        assert_eq!(s.samples, 3);
        assert_eq!(s.pass_at_1, None);
    }
    // The stage's counting equals the library's on the rows read back, per benchmark.
    assert_eq!(report.summary, summarize(&rows, false));
    let counts = recount(&rows);
    for s in &report.summary {
        let (_, n, c) = counts[&(s.benchmark.clone(), s.subject.clone())];
        assert_eq!(n as u64, 3 * s.questions);
        assert_eq!(s.accuracy, c as f64 / n as f64);
    }
}

#[test]
fn run_mode_and_cli() {
    let dir = tempfile::tempdir().unwrap();
    let (sums, mmlu) = write_benches(dir.path());
    let run = dir.path().join("run");
    std::fs::create_dir_all(&run).unwrap();
    let cfg = spice_schemas::RunConfig::default()
        .with_overrides(&[
            format!("run.model={:?}", tiny_model().display().to_string()),
            "run.device=\"cpu\"".into(),
            "run.dtype=\"f32\"".into(),
            format!(
                "eval.benchmarks=[{:?}, {:?}]",
                sums.display().to_string(),
                mmlu.display().to_string()
            ),
            "eval.max_completion_length=8".into(),
            "eval.limit=3".into(),
        ])
        .unwrap();
    std::fs::write(run.join("run.toml"), cfg.to_toml()).unwrap();
    let bin = env!("CARGO_BIN_EXE_spice-eval");
    let o = std::process::Command::new(bin)
        .args(["--run", run.to_str().unwrap(), "--iter", "0"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(
        table.contains("gsm_like") && table.contains("mmlu_pro") && table.contains("accuracy"),
        "{table}"
    );
    let rows = rows_of(&run.join("iter-0000/eval"));
    assert_eq!(rows.len(), 6, "limit 3 of each benchmark");
    assert!(rows
        .iter()
        .all(|r| r.completion_tokens <= 8 && r.policy_id.starts_with("tiny-llama3@")));

    // The checkpoint of an unfinished iteration is refused with a clear message.
    let o = std::process::Command::new(bin)
        .args(["--run", run.to_str().unwrap(), "--checkpoint-of", "0"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("iteration 0's update"));

    // Standalone, with a custom layout.
    let out = dir.path().join("standalone");
    let sums2 = dir.path().join("sums.jsonl");
    write_jsonl(&sums2, &arithmetic_rows(2));
    let o = std::process::Command::new(bin)
        .args([
            "--model",
            tiny_model().to_str().unwrap(),
            "--bench",
            &format!("arith={}", sums2.display()),
        ])
        .args([
            "--out",
            out.to_str().unwrap(),
            "--columns",
            "question=q,answer=a,subject=topic,id=key",
        ])
        .args(["--max-new-tokens", "6", "--device", "cpu", "--dtype", "f32"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rows = rows_of(&out);
    assert_eq!(rows.iter().map(|r| r.question_id.as_str()).collect::<Vec<_>>(), ["sum-0", "sum-1"]);
    assert!(rows.iter().all(|r| r.benchmark == "arith"));

    // A file that fits no preset fails before the model is loaded, naming the file.
    let o = std::process::Command::new(bin)
        .args(["--model", tiny_model().to_str().unwrap(), "--bench", sums2.to_str().unwrap()])
        .args(["--out", dir.path().join("x").to_str().unwrap(), "--device", "cpu"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("sums.jsonl") && err.contains("fit no preset"), "{err}");
}
