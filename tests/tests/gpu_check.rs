//! `pipelines/gpu-check.sh --rehearse`: the GPU machine's check, rehearsed on the CPU with
//! the release binaries and the project venv (transformers included), so the script that
//! runs on a lent GPU is known to work before device time is spent on it.

mod common;
use common::*;

use std::process::Command;
use std::time::Instant;

use serde_json::Value;

#[test]
fn gpu_check_rehearsal_passes_on_the_cpu() {
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let out_dir = tmp.path().join("gpu-check");
    let t0 = Instant::now();
    let out = Command::new("bash")
        .arg(repo().join("pipelines/gpu-check.sh"))
        .arg("--rehearse")
        .arg("--out")
        .arg(&out_dir)
        .arg("--bin-dir")
        .arg(bin_dir())
        .current_dir(repo())
        .env_remove("OUT")
        .output()
        .unwrap();
    println!("rehearsal in {:.0} s", t0.elapsed().as_secs_f64());
    let table = std::fs::read_to_string(out_dir.join("table.md")).unwrap_or_default();
    println!("{table}");
    // The script prints its progress (and the checks' errors) on stdout, tee'd to its log.
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        out.status.success(),
        "{}\nlast lines of its stdout:\n{}",
        failure("gpu-check.sh --rehearse", &out),
        lines[lines.len().saturating_sub(60)..].join("\n")
    );

    let results: Vec<Value> = std::fs::read_to_string(out_dir.join("results.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("results.jsonl line {l:?}: {e}"))
        })
        .collect();
    let by =
        |check: &str| -> Vec<&Value> { results.iter().filter(|r| r["check"] == check).collect() };
    for r in &results {
        assert_eq!(r["ok"], true, "check failed: {r}");
    }

    for arch in ["qwen2", "qwen3", "llama3"] {
        for dtype in ["f32", "bf16"] {
            let name = format!("golden_logits/{arch}/{dtype}");
            let r = *by(&name).first().unwrap_or_else(|| panic!("no {name} in results.jsonl"));
            for key in ["max_abs_diff", "max_rel_diff", "max_abs_logit"] {
                let v =
                    r[key].as_f64().unwrap_or_else(|| panic!("{name}: {key} is not a number: {r}"));
                assert!(v.is_finite(), "{name}: {key} = {v}");
            }
        }
    }

    let it = *by("iterate").first().expect("no iterate check in results.jsonl");
    assert_eq!(it["iterations"], 2, "{it}");
    let manifests = it["manifests"].as_array().expect("iterate lists its manifests");
    let mut model_stages = std::collections::BTreeSet::new();
    for m in manifests {
        let stage = m["stage"].as_str().unwrap_or_default();
        if ["challenge", "rollout", "update", "eval"].contains(&stage) {
            assert_eq!(m["device"], "cpu", "{m}");
            model_stages.insert(stage.to_string());
        }
    }
    assert_eq!(model_stages.len(), 4, "manifests of every model stage: {model_stages:?}");
    // The data-parallel update as rank 0 of 1 (Gloo here, NCCL on the GPU) ran and agreed.
    let w1 = *by("update_world1").first().expect("no update_world1 check in results.jsonl");
    assert_eq!(w1["backend"], "gloo", "{w1}");
    assert_eq!(w1["world_size"], 1, "{w1}");
    // The sampling draws computed by the binary equal the script's own SplitMix64 reference.
    let draws = *by("sampling_draws").first().expect("no sampling_draws check in results.jsonl");
    assert_eq!(
        (draws["ok"].as_bool(), draws["streams"].as_u64()),
        (Some(true), Some(4)),
        "{draws}"
    );

    // The unpacking path (Python's lzma, as on a machine without xz) and both measurements ran.
    assert!(!by("unpack").is_empty(), "no unpack check");
    let ran = |r: &Value, side: &str| r[side].as_u64().unwrap_or(0) >= 1;
    let update = by("update");
    assert!(update.iter().any(|r| ran(r, "runs_ours") && ran(r, "runs_theirs")), "{update:?}");
    let generate = by("generate");
    assert_eq!(
        generate.iter().filter(|r| ran(r, "runs_ours") && ran(r, "runs_theirs")).count(),
        2,
        "{generate:?}"
    );
    // The device returns at most 8 files.
    assert!(std::fs::read_dir(&out_dir).unwrap().count() <= 8);
}
