//! Used from the `build.rs` of every crate whose binaries or tests link libtorch.
//!
//! torch-sys (`links = "tch"`) exports the libtorch library folder it linked against as
//! `DEP_TCH_LIBTORCH_LIB` to crates that depend on it directly. Cargo only applies
//! `rustc-link-arg` to the package whose build script prints it, so each such package calls
//! [`rpath_to_libtorch`] to bake that folder into its binaries: they then run without
//! `LD_LIBRARY_PATH`.

/// Print the cargo instructions that add an rpath to the libtorch folder torch-sys used.
pub fn rpath_to_libtorch() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    match std::env::var("DEP_TCH_LIBTORCH_LIB") {
        Ok(dir) if !dir.is_empty() => {
            // RUNPATH (not RPATH) would still let LD_LIBRARY_PATH win, which is what a GPU
            // machine with its own torch needs; --disable-new-dtags is not wanted here.
            println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
        }
        _ => println!(
            "cargo:warning=DEP_TCH_LIBTORCH_LIB is not set: add `torch-sys` to [dependencies] \
             so binaries get an rpath to libtorch"
        ),
    }
}
