//! Compile `cxx/c10d.cpp` against the headers of the libtorch torch-sys linked, with the flags
//! torch-sys compiles its own C++ with (C++17, the libtorch's C++11 ABI setting).

use std::path::{Path, PathBuf};

fn main() {
    spice_build::link_libtorch();
    println!("cargo:rerun-if-changed=cxx/c10d.cpp");
    println!("cargo:rerun-if-env-changed=SPICE_C10D_NCCL");
    let lib = PathBuf::from(
        std::env::var("DEP_TCH_LIBTORCH_LIB").expect("torch-sys exports DEP_TCH_LIBTORCH_LIB"),
    );
    let torch = lib.parent().expect("libtorch's lib folder has a parent");
    let include = torch.join("include");
    let mut build = cc::Build::new();
    build
        .cpp(true)
        .pic(true)
        .warnings(false)
        .include(&include)
        .include(include.join("torch/csrc/api/include"))
        .flag("-std=c++17")
        .flag(format!("-D_GLIBCXX_USE_CXX11_ABI={}", cxx11_abi()))
        .flag("-DGLOG_USE_GLOG_EXPORT")
        .file("cxx/c10d.cpp");
    if let Some(dirs) = nccl_includes(torch, &lib) {
        build.define("SPICE_C10D_NCCL", None).define("USE_C10D_NCCL", None);
        for dir in dirs {
            build.include(dir);
        }
    }
    build.compile("spice_c10d");
}

/// torch wheels are built with the C++11 ABI since torch 2.7; `LIBTORCH_CXX11_ABI` is how
/// torch-sys is told otherwise for a hand-built libtorch, so it is read the same way here.
fn cxx11_abi() -> &'static str {
    println!("cargo:rerun-if-env-changed=LIBTORCH_CXX11_ABI");
    match std::env::var("LIBTORCH_CXX11_ABI").as_deref() {
        Ok("0") => "0",
        _ => "1",
    }
}

/// ProcessGroupNCCL.hpp needs the CUDA runtime's headers with the compiler's `crt/` ones and
/// CCCL's `nv/target` (a CUDA toolkit, or the `nvidia-cuda-crt` and `nvidia-cuda-cccl` wheels
/// `just setup` adds beside torch's `nvidia-cuda-runtime`), and NCCL's (torch's `nvidia-nccl`
/// dependency has them in site-packages). Without both, or with `SPICE_C10D_NCCL=0`, the NCCL part
/// is left out and asking for an NCCL group is an error that says so.
fn nccl_includes(torch: &Path, lib: &Path) -> Option<Vec<PathBuf>> {
    for var in ["SPICE_C10D_NCCL", "CUDA_HOME", "CUDA_PATH", "NCCL_HOME"] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    if std::env::var("SPICE_C10D_NCCL").as_deref() == Ok("0") {
        return None;
    }
    if !lib.join("libtorch_cuda.so").exists() {
        return None;
    }
    let site = torch.parent()?;
    // Installing the header wheels (pipelines/requirements.txt) changes these folders.
    for dir in ["nvidia/cu13/include", "nvidia/nccl/include"] {
        if site.join(dir).is_dir() {
            println!("cargo:rerun-if-changed={}", site.join(dir).display());
        }
    }
    let toolkit = ["CUDA_HOME", "CUDA_PATH"]
        .iter()
        .filter_map(|v| std::env::var_os(v).map(|d| PathBuf::from(d).join("include")))
        .chain([PathBuf::from("/usr/local/cuda/include"), site.join("nvidia/cu13/include")]);
    let cuda = toolkit
        .into_iter()
        .find(|d| d.join("cuda_runtime_api.h").exists() && d.join("crt/host_config.h").exists());
    let nccl = std::env::var_os("NCCL_HOME")
        .map(|d| PathBuf::from(d).join("include"))
        .into_iter()
        .chain([site.join("nvidia/nccl/include")])
        .find(|d| d.join("nccl.h").exists());
    match (cuda, nccl) {
        (Some(cuda), Some(nccl)) => Some(vec![cuda, nccl]),
        (cuda, nccl) => {
            println!(
                "cargo:warning=building without NCCL: {} (set CUDA_HOME to a CUDA toolkit)",
                if cuda.is_none() {
                    "no CUDA toolkit headers with crt/host_config.h"
                } else if nccl.is_none() {
                    "no nccl.h"
                } else {
                    ""
                }
            );
            None
        }
    }
}
