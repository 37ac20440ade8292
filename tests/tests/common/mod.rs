//! Where the tests find the repository and the release binaries.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

pub mod smoke_run;
pub mod tiny;

/// The repository root.
#[allow(dead_code)]
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// `target/release`, the folder holding this test binary's `deps/` and the stage binaries.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().and_then(|deps| deps.parent()).unwrap().to_path_buf()
}

/// Why a command failed, short enough to survive a CI log that keeps only part of the output:
/// the last lines of its stderr (the stage's own error comes last) and the free space where runs
/// and builds are written, since a full disk fails a stage mid-write.
pub fn failure(what: &str, out: &std::process::Output) -> String {
    const LINES: usize = 40;
    let se = String::from_utf8_lossy(&out.stderr);
    // With RUST_BACKTRACE set, anyhow puts a long backtrace after the error: keep it out, or
    // the last lines would be frames rather than the error.
    let lines: Vec<&str> = se.lines().take_while(|l| !l.starts_with("Stack backtrace:")).collect();
    let tail = lines[lines.len().saturating_sub(LINES)..].join("\n");
    let df = std::process::Command::new("df")
        .args(["-h", env!("CARGO_TARGET_TMPDIR")])
        .arg(std::env::temp_dir())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_else(|e| format!("(df: {e})"));
    format!(
        "{what} failed ({}); last {LINES} lines of its stderr:\n{tail}\nfree space:\n{df}",
        out.status
    )
}
