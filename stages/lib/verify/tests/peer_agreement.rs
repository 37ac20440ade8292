//! Agreement with a mature peer checker (Math-Verify) on its own test cases.
//!
//! The cases live outside this repository, in `../shared/peer/math-verify-cases.jsonl`
//! relative to the workspace root (override with `SPICE_PEER_CASES`). They are a yardstick,
//! not part of our own tables: when the file is absent the test says so and is skipped.

use serde::Deserialize;
use spice_verify::{check_with_letters, extract_answer, TaskKind};
use std::path::PathBuf;

#[derive(Deserialize)]
struct Case {
    id: String,
    gold: String,
    pred: String,
    expected: bool,
    category: String,
    tier: String,
}

fn cases_path() -> PathBuf {
    match std::env::var_os("SPICE_PEER_CASES") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../../../shared/peer/math-verify-cases.jsonl"),
    }
}

fn verdict(c: &Case) -> bool {
    if c.category == "mcq" {
        // The peer's multiple-choice cases use letters beyond D (`U`).
        return check_with_letters(&c.gold, &c.pred, TaskKind::Mcq, None, 'Z').equivalent;
    }
    // The peer reads the gold the same way as the prediction (it may be a whole solution).
    let gold = extract_answer(&c.gold, TaskKind::FreeForm).unwrap_or_else(|| c.gold.clone());
    check_with_letters(&gold, &c.pred, TaskKind::FreeForm, None, 'D').equivalent
}

#[test]
fn agreement_with_math_verify() {
    let path = cases_path();
    let Ok(text) = std::fs::read_to_string(&path) else {
        println!(
            "SKIPPED: peer cases not found at {} (they live beside the repository in ../shared/peer; \
             set SPICE_PEER_CASES to point at math-verify-cases.jsonl to run this comparison)",
            path.display()
        );
        return;
    };
    let cases: Vec<Case> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("peer case line"))
        .collect();
    assert!(!cases.is_empty(), "peer file {} has no cases", path.display());
    let verbose = std::env::var_os("SPICE_PEER_VERBOSE").is_some();
    for tier in ["core", "policy", "config-dependent"] {
        let (mut agree, mut fp, mut fn_, mut n) = (0, 0, 0, 0);
        for c in cases.iter().filter(|c| c.tier == tier) {
            n += 1;
            let ours = verdict(c);
            if ours == c.expected {
                agree += 1;
            } else if ours {
                fp += 1;
            } else {
                fn_ += 1;
            }
            if ours != c.expected && (verbose || tier == "core") {
                println!(
                    "  disagree {} [{}] expected={} ours={}",
                    c.id, c.category, c.expected, ours
                );
                if verbose {
                    let gold = extract_answer(&c.gold, TaskKind::FreeForm);
                    let pred = extract_answer(&c.pred, TaskKind::FreeForm);
                    println!("      gold {gold:?}\n      pred {pred:?}");
                }
            }
        }
        if n == 0 {
            continue;
        }
        let pct = 100.0 * agree as f64 / n as f64;
        println!("peer tier {tier}: {agree}/{n} agree ({pct:.1}%), false positives {fp}, false negatives {fn_}");
        if tier == "core" {
            assert!(pct >= 95.0, "core agreement {pct:.1}% is below 95%");
            assert!(
                fp < fn_ || fp == 0,
                "false positives ({fp}) must be fewer than false negatives ({fn_})"
            );
        }
    }
}
