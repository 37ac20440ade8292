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
