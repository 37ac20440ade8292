//! `spice-lm logits` gives the logits transformers recorded for the tiny fixtures (the
//! command the GPU check compares with transformers on CUDA).

mod common;

use common::*;
use spice_lm::tch::Tensor;

#[test]
fn logits_command_matches_the_reference() {
    let dir = tempfile::tempdir().unwrap();
    for arch in ARCHS {
        let out = dir.path().join(format!("{arch}.safetensors"));
        let status = std::process::Command::new(env!("CARGO_BIN_EXE_spice-lm"))
            .args(["logits", "--device", "cpu", "--dtype", "f32", "--model"])
            .arg(tiny(arch))
            .arg("--inputs")
            .arg(tiny(arch).join("reference.safetensors"))
            .arg("--out")
            .arg(&out)
            .status()
            .unwrap();
        assert!(status.success());
        let got: std::collections::HashMap<String, Tensor> =
            Tensor::read_safetensors(&out).unwrap().into_iter().collect();
        let want = reference(arch);
        assert_eq!(got.len(), 3, "{arch}: one logits tensor per input");
        for i in 0..3 {
            let d = max_abs_diff(&got[&format!("logits_{i}")], &want[&format!("logits_{i}")]);
            assert!(d < 1e-4, "{arch} input {i}: {d:e}");
        }
    }
}

#[test]
fn logits_command_refuses_bad_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.safetensors");
    Tensor::write_safetensors(&[("input_0", Tensor::from_slice(&[1.5f32, 2.0]))], &bad).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_spice-lm"))
        .args(["logits", "--device", "cpu", "--model"])
        .arg(tiny("llama3"))
        .arg("--inputs")
        .arg(&bad)
        .arg("--out")
        .arg(dir.path().join("o.safetensors"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.safetensors") && err.contains("input_0") && err.contains("int64"),
        "{err}"
    );
    assert!(!dir.path().join("o.safetensors").exists(), "nothing is written for bad input");
}
