//! Agreement with a mature peer checker (Math-Verify) on its own test cases.
//!
//! The cases live outside this repository, in `../shared/peer/math-verify-cases.jsonl`
//! relative to the workspace root (override with `SPICE_PEER_CASES`). They are a yardstick,
//! not part of our own tables: when the file is absent the test says so and is skipped.
//!
//! Two paths are measured. The library path extracts the gold answer in the test, the way the
//! peer reads it, then calls [`check_with_letters`]. The CLI path pipes the raw cases through
//! the built `spice-verify check`, as users call it, and leaves reading the gold to the
//! checker: it must reach the same verdict as the library path on every core case.

use serde::Deserialize;
use spice_verify::{check_with_letters, extract_answer, TaskKind};
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// Fewest core cases (of 274) the CLI path must agree on.
const CORE_FLOOR: usize = 270;

#[derive(Deserialize)]
struct Case {
    id: String,
    gold: String,
    pred: String,
    expected: bool,
    category: String,
    tier: String,
}

const TIERS: [&str; 3] = ["core", "policy", "config-dependent"];

fn cases_path() -> PathBuf {
    match std::env::var_os("SPICE_PEER_CASES") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../../../shared/peer/math-verify-cases.jsonl"),
    }
}

/// The peer cases, or `None` (after saying so) when the file is absent.
fn load() -> Option<Vec<Case>> {
    let path = cases_path();
    let Ok(text) = std::fs::read_to_string(&path) else {
        println!(
            "SKIPPED: peer cases not found at {} (they live beside the repository in ../shared/peer; \
             set SPICE_PEER_CASES to point at math-verify-cases.jsonl to run this comparison)",
            path.display()
        );
        return None;
    };
    let cases: Vec<Case> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("peer case line"))
        .collect();
    assert!(!cases.is_empty(), "peer file {} has no cases", path.display());
    Some(cases)
}

/// The library path: the test reads the gold the way the peer does, then checks.
fn library_verdict(c: &Case) -> bool {
    if c.category == "mcq" {
        // The peer's multiple-choice cases use letters beyond D (`U`).
        return check_with_letters(&c.gold, &c.pred, TaskKind::Mcq, None, 'Z').equivalent;
    }
    // The peer reads the gold the same way as the prediction (it may be a whole solution).
    let gold = extract_answer(&c.gold, TaskKind::FreeForm).unwrap_or_else(|| c.gold.clone());
    check_with_letters(&gold, &c.pred, TaskKind::FreeForm, None, 'D').equivalent
}

/// The CLI path: every case as one JSON line through `spice-verify check --max-letter Z`
/// (the peer's letters go up to `U`), gold and prediction untouched; multiple-choice lines say
/// `"kind": "mcq"`, the others leave the kind to its default.
fn cli_verdicts(cases: &[Case]) -> Vec<bool> {
    let input: String = cases
        .iter()
        .map(|c| {
            let mut line = serde_json::json!({"gold": c.gold, "pred": c.pred});
            if c.category == "mcq" {
                line["kind"] = "mcq".into();
            }
            format!("{line}\n")
        })
        .collect();
    let mut child = Command::new(env!("CARGO_BIN_EXE_spice-verify"))
        .args(["check", "--max-letter", "Z"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn spice-verify");
    let mut stdin = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().expect("run spice-verify");
    writer.join().expect("writer thread").expect("write stdin");
    assert!(out.status.success(), "exit status {:?}", out.status);
    let verdicts: Vec<bool> = String::from_utf8(out.stdout)
        .expect("utf-8 output")
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("JSON output line");
            v["equivalent"].as_bool().unwrap_or_else(|| panic!("no verdict in {l}"))
        })
        .collect();
    assert_eq!(verdicts.len(), cases.len(), "one output line per case");
    verdicts
}

/// Agreement per tier: (agree, cases, false positives, false negatives).
fn tally(name: &str, cases: &[Case], ours: &[bool], verbose: bool) -> Vec<(usize, usize)> {
    let mut per_tier = Vec::new();
    for tier in TIERS {
        let (mut agree, mut fp, mut fn_, mut n) = (0, 0, 0, 0);
        for (c, &v) in cases.iter().zip(ours).filter(|(c, _)| c.tier == tier) {
            n += 1;
            if v == c.expected {
                agree += 1;
            } else if v {
                fp += 1;
            } else {
                fn_ += 1;
            }
            if v != c.expected && (verbose || tier == "core") {
                println!(
                    "  {name}: disagree {} [{}] expected={} ours={v}",
                    c.id, c.category, c.expected
                );
                if verbose {
                    let gold = extract_answer(&c.gold, TaskKind::FreeForm);
                    let pred = extract_answer(&c.pred, TaskKind::FreeForm);
                    println!("      gold {gold:?}\n      pred {pred:?}");
                }
            }
        }
        per_tier.push((agree, n));
        if n == 0 {
            continue;
        }
        let pct = 100.0 * agree as f64 / n as f64;
        println!(
            "{name} peer tier {tier}: {agree}/{n} agree ({pct:.1}%), false positives {fp}, false negatives {fn_}"
        );
        if tier == "core" {
            assert!(pct >= 95.0, "{name}: core agreement {pct:.1}% is below 95%");
            assert!(
                fp < fn_ || fp == 0,
                "{name}: false positives ({fp}) must be fewer than false negatives ({fn_})"
            );
        }
    }
    per_tier
}

#[test]
fn agreement_with_math_verify() {
    let Some(cases) = load() else { return };
    let verbose = std::env::var_os("SPICE_PEER_VERBOSE").is_some();
    let ours: Vec<bool> = cases.iter().map(library_verdict).collect();
    tally("library", &cases, &ours, verbose);
}

#[test]
fn cli_agrees_with_math_verify_as_users_call_it() {
    let Some(cases) = load() else { return };
    let verbose = std::env::var_os("SPICE_PEER_VERBOSE").is_some();
    let cli = cli_verdicts(&cases);
    let per_tier = tally("cli", &cases, &cli, verbose);
    let library: Vec<bool> = cases.iter().map(library_verdict).collect();
    let differ: Vec<&str> = cases
        .iter()
        .zip(cli.iter().zip(&library))
        .filter(|(c, (a, b))| c.tier == "core" && a != b)
        .map(|(c, _)| c.id.as_str())
        .collect();
    assert!(differ.is_empty(), "the CLI and the library path disagree on core cases {differ:?}");
    // The floor is stated for the 274 core cases; another file is held to the same share.
    let (core_agree, core_n) = per_tier[0];
    assert!(
        core_agree * 274 >= CORE_FLOOR * core_n,
        "CLI core agreement {core_agree}/{core_n} is below {CORE_FLOOR}/274"
    );
}
