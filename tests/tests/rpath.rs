//! tch-linked binaries find libtorch through their rpath: they run with no LD_LIBRARY_PATH.

mod common;
use common::bin_dir;

use std::process::Command;

#[test]
fn tch_binary_runs_without_ld_library_path() {
    let bin = bin_dir().join("spice-lm");
    assert!(bin.exists(), "{} is not built (cargo build --release --workspace --bins)", bin.display());
    let out = Command::new(&bin).arg("--help").env_remove("LD_LIBRARY_PATH").output().unwrap();
    assert!(
        out.status.success(),
        "{} --help failed without LD_LIBRARY_PATH:\n{}",
        bin.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    // And it really links libtorch, resolved through the rpath.
    let ldd = Command::new("ldd").arg(&bin).env_remove("LD_LIBRARY_PATH").output().unwrap();
    let ldd = String::from_utf8_lossy(&ldd.stdout);
    let line = ldd.lines().find(|l| l.contains("libtorch_cpu.so")).expect("spice-lm does not link libtorch_cpu");
    assert!(!line.contains("not found"), "libtorch unresolved: {line}");
    println!("{}", line.trim());
}
