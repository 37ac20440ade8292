//! A checkpoint written by the update is a plain Hugging Face model folder: only the model's
//! files (and the run's `_manifest.json`), loaded by `transformers` with the logits spice-lm
//! computes from it.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::*;
use spice_lm::tch::{self, Kind, Tensor};
use spice_update::{Outcome, UpdateOptions};

/// The project venv's Python (installed by `just setup`). `just test` exports SPICE_PYTHON;
/// under a bare `cargo test` the venv is looked up beside the workspace.
fn python() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("SPICE_PYTHON") {
        return Some(PathBuf::from(p));
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    venv.exists().then_some(venv)
}

/// Loads the folder with `AutoModelForCausalLM` in f32 and prints the logits of the ids, with
/// what the loader reported.
const SCRIPT: &str = r#"
import json, sys
import torch
from transformers import AutoModelForCausalLM
folder, ids = sys.argv[1], json.loads(sys.argv[2])
model, info = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, output_loading_info=True)
model.eval()
with torch.no_grad():
    logits = model(input_ids=torch.tensor([ids])).logits[0]
info = {k: sorted(str(x) for x in v) for k, v in info.items() if v}
print(json.dumps({"info": info, "logits": logits.tolist()}))
"#;

#[test]
fn transformers_loads_an_updated_checkpoint_with_the_same_logits() {
    let Some(python) = python() else {
        println!(
            "SKIP transformers_loads_an_updated_checkpoint_with_the_same_logits: no project venv \
             (run `just setup`, or set SPICE_PYTHON)"
        );
        return;
    };
    let run = make_run(&[]);
    run.write_scored(0, &scored_rows(0, 1));
    let out = spice_update::run(&run.ctx(0, false), &UpdateOptions::default()).unwrap();
    assert!(matches!(out, Outcome::Updated(_)));
    let ckpt = run.checkpoint(0);

    // Only what a loader expects: no optimizer state, no weights but the model's.
    let mut files: Vec<String> = std::fs::read_dir(&ckpt)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    println!("{}: {files:?}", ckpt.display());
    assert!(!files.iter().any(|f| f.starts_with("optimizer")), "{files:?}");
    let weights: Vec<&String> = files.iter().filter(|f| f.ends_with(".safetensors")).collect();
    assert_eq!(weights, ["model.safetensors"]);
    for f in ["config.json", "tokenizer.json", "_manifest.json"] {
        assert!(files.iter().any(|x| x == f), "{f} missing from {files:?}");
    }

    let policy = load(&ckpt);
    // The update moved the weights, so this compares the trained model, not the fixture.
    assert!(max_param_diff(&policy, &load(&run.model)) > 0.0);
    let ids: Vec<i64> = Lcg(11).ids(24).into_iter().map(i64::from).collect();
    let ours = tch::no_grad(|| {
        let input = Tensor::from_slice(&ids).unsqueeze(0);
        policy.model().weights(Kind::Float).logits(&input).squeeze_dim(0)
    });

    let out = Command::new(&python)
        .args(["-c", SCRIPT])
        .arg(&ckpt)
        .arg(serde_json::to_string(&ids).unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "transformers could not load {}:\n{}",
        ckpt.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let reply: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let info = &reply["info"];
    assert!(info.as_object().is_none_or(|o| o.is_empty()), "loading info: {info}");
    let rows: Vec<Vec<f32>> = serde_json::from_value(reply["logits"].clone()).unwrap();
    assert_eq!(rows.len(), ids.len());
    let flat: Vec<f32> = rows.concat();
    let theirs = Tensor::from_slice(&flat).view([ids.len() as i64, -1]);
    assert_eq!(theirs.size(), ours.size());
    let diff = (&ours - &theirs).abs().max().double_value(&[]);
    let scale = theirs.abs().max().double_value(&[]);
    println!("transformers vs spice-lm on the checkpoint: max abs logit diff {diff:.3e} (logits up to {scale:.2})");
    assert!(diff < 1e-4, "max abs logit diff {diff:e}");
}
