//! Used from the `build.rs` of every crate whose binaries or tests link libtorch.
//!
//! torch-sys (`links = "tch"`) exports the libtorch library folder it linked against as
//! `DEP_TCH_LIBTORCH_LIB` to crates that depend on it directly. Cargo only applies
//! `rustc-link-arg` to the package whose build script prints it, so each such package calls
//! [`link_libtorch`] to:
//!
//! - bake that folder into its binaries as an rpath: they run without `LD_LIBRARY_PATH`;
//! - link libtorch's CUDA backend when that libtorch has one. Nothing in our code calls a
//!   `torch_cuda` symbol, so the linker's `--as-needed` would drop the library, its static
//!   initialisers would never run, and libtorch would report no CUDA device on a GPU node.

use std::path::Path;

/// The libraries of libtorch's CUDA backend, in link order.
pub const CUDA_LIBRARIES: [&str; 2] = ["torch_cuda", "c10_cuda"];

/// Print the cargo instructions that add an rpath to the libtorch folder torch-sys used and,
/// when that folder holds the CUDA backend, link it unconditionally.
pub fn link_libtorch() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let dir = match std::env::var("DEP_TCH_LIBTORCH_LIB") {
        Ok(dir) if !dir.is_empty() => dir,
        _ => {
            println!(
                "cargo:warning=DEP_TCH_LIBTORCH_LIB is not set: add `torch-sys` to [dependencies] \
                 so binaries get an rpath to libtorch"
            );
            return;
        }
    };
    // RUNPATH (not RPATH) would still let LD_LIBRARY_PATH win, which is what a GPU machine
    // with its own torch needs; --disable-new-dtags is not wanted here.
    println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    let cuda = cuda_libraries_in(Path::new(&dir));
    println!("cargo:rerun-if-changed={dir}/libtorch_cuda.so");
    if cuda.is_empty() {
        // A CPU-only libtorch (LIBTORCH pointing at a CPU build): nothing to link.
        return;
    }
    let mut arg = format!("-Wl,-L{dir},--no-as-needed");
    for lib in cuda {
        arg.push_str(&format!(",-l{lib}"));
    }
    arg.push_str(",--as-needed");
    println!("cargo:rustc-link-arg={arg}");
}

/// The CUDA backend libraries present in a libtorch library folder: all of
/// [`CUDA_LIBRARIES`], or none when any is missing (a CPU-only libtorch).
pub fn cuda_libraries_in(dir: &Path) -> Vec<&'static str> {
    let present = CUDA_LIBRARIES.iter().all(|l| dir.join(format!("lib{l}.so")).exists());
    if present {
        CUDA_LIBRARIES.to_vec()
    } else {
        Vec::new()
    }
}
