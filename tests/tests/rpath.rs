//! How the built binaries link libtorch: through an rpath (they run with no LD_LIBRARY_PATH),
//! and with libtorch's CUDA backend whenever that libtorch has one — without it a binary
//! runs on the CPU of a GPU node and says nothing.

mod common;
use common::bin_dir;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The binaries `spice iterate` and the model tools run that load the model.
const MODEL_BINARIES: [&str; 5] =
    ["spice-lm", "spice-challenge", "spice-rollout", "spice-update", "spice-eval"];

#[test]
fn tch_binary_runs_without_ld_library_path() {
    let bin = bin_dir().join("spice-lm");
    assert!(
        bin.exists(),
        "{} is not built (cargo build --release --workspace --bins)",
        bin.display()
    );
    let out = Command::new(&bin).arg("--help").env_remove("LD_LIBRARY_PATH").output().unwrap();
    assert!(
        out.status.success(),
        "{} --help failed without LD_LIBRARY_PATH:\n{}",
        bin.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let line = libtorch_line(&bin);
    assert!(!line.contains("not found"), "libtorch unresolved: {line}");
    println!("{}", line.trim());
}

/// The `ldd` line of `libtorch_cpu.so` for a binary.
fn libtorch_line(bin: &Path) -> String {
    let ldd = Command::new("ldd").arg(bin).env_remove("LD_LIBRARY_PATH").output().unwrap();
    let ldd = String::from_utf8_lossy(&ldd.stdout);
    ldd.lines()
        .find(|l| l.contains("libtorch_cpu.so"))
        .unwrap_or_else(|| panic!("{} does not link libtorch_cpu", bin.display()))
        .to_string()
}

/// The folder of the libtorch the binaries resolve (the one their rpath names).
fn libtorch_dir() -> PathBuf {
    let line = libtorch_line(&bin_dir().join("spice-lm"));
    let path = line
        .split("=>")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .expect("ldd gives a path");
    Path::new(path).parent().unwrap().to_path_buf()
}

/// `DT_NEEDED` of a binary, read by binutils' readelf (independent of our own ELF reading).
fn needed(bin: &Path) -> Vec<String> {
    let out = Command::new("readelf")
        .args(["-d", "-W"])
        .arg(bin)
        .output()
        .expect("readelf (binutils) runs");
    assert!(
        out.status.success(),
        "readelf -d {}: {}",
        bin.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .filter_map(|l| l.split('[').nth(1).and_then(|r| r.split(']').next()).map(str::to_string))
        .collect()
}

/// The newest build of every test and example binary under `target/release/{deps,examples}`
/// (one per crate name; older hashes are stale builds).
fn newest_test_binaries() -> Vec<PathBuf> {
    let mut newest: BTreeMap<String, (std::time::SystemTime, PathBuf)> = BTreeMap::new();
    for sub in ["deps", "examples"] {
        let Ok(entries) = std::fs::read_dir(bin_dir().join(sub)) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            use std::os::unix::fs::PermissionsExt;
            let Ok(meta) = e.metadata() else { continue };
            if name.contains('.') || !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
                continue;
            }
            let Some((crate_name, _hash)) = name.rsplit_once('-') else {
                continue;
            };
            let t = meta.modified().unwrap();
            let key = format!("{sub}/{crate_name}");
            if newest.get(&key).is_none_or(|(old, _)| t > *old) {
                newest.insert(key, (t, p));
            }
        }
    }
    newest.into_values().map(|(_, p)| p).collect()
}

#[test]
fn every_libtorch_binary_links_the_cuda_backend() {
    let dir = libtorch_dir();
    let has_cuda = dir.join("libtorch_cuda.so").exists() && dir.join("libc10_cuda.so").exists();
    if !has_cuda {
        println!(
            "SKIPPED: libtorch at {} has no CUDA backend (a CPU-only LIBTORCH); nothing to link",
            dir.display()
        );
        return;
    }
    let mut checked = Vec::new();
    let mut missing = Vec::new();
    let stage_bins = MODEL_BINARIES.iter().map(|b| bin_dir().join(b));
    for bin in stage_bins.chain(newest_test_binaries()) {
        assert!(bin.exists(), "{} is not built", bin.display());
        let libs = needed(&bin);
        if !libs.iter().any(|l| l == "libtorch_cpu.so") {
            continue;
        }
        let name = bin.file_name().unwrap().to_string_lossy().into_owned();
        if !(libs.iter().any(|l| l == "libtorch_cuda.so")
            && libs.iter().any(|l| l == "libc10_cuda.so"))
        {
            missing.push(name.clone());
        }
        checked.push(name);
    }
    for b in MODEL_BINARIES {
        assert!(checked.iter().any(|c| c == b), "{b} does not link libtorch at all");
    }
    assert!(
        missing.is_empty(),
        "these binaries link libtorch but not its CUDA backend (libtorch_cuda.so, libc10_cuda.so), so \
         they can never see a GPU: {missing:?}"
    );
    println!("{} libtorch binaries link the CUDA backend of {}", checked.len(), dir.display());
}

#[test]
fn the_cuda_backend_is_loaded_at_run_time() {
    let dir = libtorch_dir();
    if !dir.join("libtorch_cuda.so").exists() {
        println!("SKIPPED: libtorch at {} has no CUDA backend", dir.display());
        return;
    }
    // `spice-lm doctor` reads /proc/self/maps after libtorch initialised.
    let out = Command::new(bin_dir().join("spice-lm"))
        .args(["doctor", "--format", "json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "spice-lm doctor: {}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["cuda"]["backend_in_libtorch"], true, "{v:#}");
    assert_eq!(
        v["cuda"]["backend_loaded"], true,
        "libtorch_cuda.so is not mapped into spice-lm: {v:#}"
    );
}
