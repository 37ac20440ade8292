//! `spice doctor`: it runs, says what `device = "auto"` picks and why, and its view of the
//! stage binaries agrees with how they were linked.

mod common;
use common::bin_dir;

use std::process::Command;

fn doctor(format: &str) -> String {
    let out = Command::new(bin_dir().join("spice"))
        .args(["doctor", "--format", format])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "spice doctor --format {format}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn doctor_reports_the_machine_and_the_auto_choice() {
    let v: serde_json::Value = serde_json::from_str(&doctor("json")).unwrap();
    let torch = &v["torch"];
    assert!(torch["version"].as_str().is_some_and(|s| s.starts_with("2.11")), "{torch:#}");
    assert!(torch["libtorch_dir"]
        .as_str()
        .is_some_and(|d| std::path::Path::new(d).join("libtorch_cpu.so").exists()));
    let cuda = &v["cuda"];
    // A libtorch with a CUDA backend is loaded with it, in every model stage too.
    assert_eq!(cuda["backend_loaded"], cuda["backend_in_libtorch"], "{cuda:#}");
    let stages = v["stage_binaries"].as_array().unwrap();
    assert_eq!(stages.len(), 5, "{stages:#?}");
    for s in stages {
        assert_eq!(s["libtorch"], true, "{s}");
        assert_eq!(s["cuda_backend"], cuda["backend_in_libtorch"], "{s}");
    }
    // The CPU as /proc/cpuinfo has it, and a matmul path per dtype.
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap();
    let cpu = &v["cpu"];
    assert_eq!(cpu["avx2"], cpuinfo.contains(" avx2"), "{cpu:#}");
    assert_eq!(
        cpu["native_bf16"],
        cpuinfo.contains(" avx512_bf16") || cpuinfo.contains(" amx_bf16")
    );
    assert!(cpu["intra_op_threads"].as_i64().unwrap() >= 1);
    let bf16 = cpu["matmul_bf16"].as_str().unwrap();
    if cpu["native_bf16"] == false {
        assert!(bf16.starts_with("no native bf16"), "{bf16}");
    }
    // `auto`: a GPU where libtorch sees one, else the CPU with the reason.
    let auto = &v["auto"];
    let devices = cuda["device_count"].as_u64().unwrap();
    assert_eq!(auto["device"], if devices > 0 { "cuda:0" } else { "cpu" }, "{auto:#}");
    if cuda["driver"].is_null() {
        assert!(auto["reason"].as_str().unwrap().contains("no NVIDIA driver"), "{auto:#}");
        assert!(auto["warning"].is_null());
    }
    println!("auto: {} ({})", auto["device"], auto["reason"]);

    let text = doctor("text");
    for part in [
        "libtorch",
        "CUDA",
        "CPU",
        "matmul, bf16",
        "device = \"auto\" picks",
        "stage binaries in",
        "spice-update",
    ] {
        assert!(text.contains(part), "no {part:?} in:\n{text}");
    }
}

#[test]
fn asking_for_a_gpu_that_is_not_there_is_a_clear_error() {
    let v: serde_json::Value = serde_json::from_str(&doctor("json")).unwrap();
    if v["cuda"]["device_count"].as_u64().unwrap() > 0 {
        println!("SKIPPED: this machine has a CUDA device, so cuda:0 is no error here");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(bin_dir().join("spice-lm"))
        .args(["logits", "--model", "x", "--inputs", "y", "--out"])
        .arg(dir.path().join("z"))
        .args(["--device", "cuda"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("libtorch sees no CUDA device"), "{err}");
}
