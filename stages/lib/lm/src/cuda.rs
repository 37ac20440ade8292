//! What this process knows about CUDA: whether its libtorch has a CUDA backend and loaded it,
//! the NVIDIA driver (through NVML, which ships with the driver), the devices libtorch sees,
//! and the CUDA runtime, cuDNN and NCCL libraries that came with libtorch.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::Serialize;

/// One GPU as the NVIDIA driver lists it (NVML, PCI order; `CUDA_VISIBLE_DEVICES` may hide
/// or reorder some for libtorch).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Gpu {
    pub index: u32,
    pub name: String,
    pub memory_total_bytes: u64,
    pub memory_used_bytes: u64,
}

/// The NVIDIA driver, when one is installed and running.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Driver {
    /// Kernel driver version, e.g. `580.159.03`.
    pub version: String,
    /// Newest CUDA version the driver supports, e.g. `13.0`.
    pub cuda_version: String,
    pub gpus: Vec<Gpu>,
}

/// Facts about CUDA in this process. [`CudaFacts::get`] probes once; tests build their own.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CudaFacts {
    /// The folder of the libtorch this process runs (where `libtorch_cpu.so` was mapped from).
    pub libtorch_dir: Option<PathBuf>,
    /// That libtorch ships its CUDA backend (`libtorch_cuda.so` beside `libtorch_cpu.so`).
    pub backend_in_libtorch: bool,
    /// The CUDA backend is mapped into this process (linked in, its initialisers ran).
    pub backend_loaded: bool,
    /// CUDA devices libtorch can use (0 without backend, driver or visible device).
    pub device_count: usize,
    /// The NVIDIA driver, or why none was found.
    pub driver: Result<Driver, String>,
    /// `CUDA_VISIBLE_DEVICES`, when set.
    pub visible_devices: Option<String>,
}

impl Default for CudaFacts {
    /// A machine with nothing: no libtorch found, no backend, no driver.
    fn default() -> Self {
        CudaFacts {
            libtorch_dir: None,
            backend_in_libtorch: false,
            backend_loaded: false,
            device_count: 0,
            driver: Err("not probed".into()),
            visible_devices: None,
        }
    }
}

impl CudaFacts {
    /// This process's facts (probed once: NVML and `/proc/self/maps`).
    pub fn get() -> &'static CudaFacts {
        static FACTS: OnceLock<CudaFacts> = OnceLock::new();
        FACTS.get_or_init(CudaFacts::probe)
    }

    fn probe() -> CudaFacts {
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
        let libtorch_dir = mapped_library(&maps, "libtorch_cpu.so")
            .and_then(|p| p.parent().map(Path::to_path_buf));
        let backend_in_libtorch =
            libtorch_dir.as_ref().is_some_and(|d| d.join("libtorch_cuda.so").exists());
        let backend_loaded = mapped_library(&maps, "libtorch_cuda.so").is_some();
        // Without the backend libtorch cannot count devices; asking would only say 0.
        let device_count =
            if backend_loaded { tch::Cuda::device_count().max(0) as usize } else { 0 };
        CudaFacts {
            libtorch_dir,
            backend_in_libtorch,
            backend_loaded,
            device_count,
            driver: probe_driver(),
            visible_devices: std::env::var("CUDA_VISIBLE_DEVICES").ok(),
        }
    }

    /// Why libtorch sees no CUDA device, in one sentence; `None` when it sees one.
    pub fn why_no_device(&self) -> Option<String> {
        if self.device_count > 0 {
            return None;
        }
        let lib = self
            .libtorch_dir
            .as_ref()
            .map(|d| d.display().to_string())
            .unwrap_or_else(|| "?".into());
        Some(match (&self.driver, self.backend_in_libtorch, self.backend_loaded) {
            (Ok(d), false, _) => format!(
                "this machine has an NVIDIA driver ({}, {} GPU(s)) but the libtorch this binary \
                 runs ({lib}) is CPU-only: rebuild against a CUDA libtorch (the PyPI torch \
                 wheel has one) or point LD_LIBRARY_PATH at one",
                d.version,
                d.gpus.len()
            ),
            (Ok(d), true, false) => format!(
                "this machine has an NVIDIA driver ({}) and libtorch at {lib} has a CUDA \
                 backend, but this binary did not load it (it was built without linking \
                 libtorch_cuda.so: rebuild with `cargo build --release`)",
                d.version
            ),
            (Ok(d), true, true) => match &self.visible_devices {
                Some(v) => format!(
                    "the NVIDIA driver ({}) lists {} GPU(s) but CUDA_VISIBLE_DEVICES={v:?} \
                     leaves libtorch none",
                    d.version,
                    d.gpus.len()
                ),
                None => format!(
                    "the NVIDIA driver ({}) lists {} GPU(s) but libtorch's CUDA runtime sees \
                     none (driver too old for this CUDA build, or no permission on /dev/nvidia*)",
                    d.version,
                    d.gpus.len()
                ),
            },
            (Err(why), true, _) => format!("no NVIDIA driver on this machine ({why})"),
            (Err(why), false, _) => {
                format!("libtorch at {lib} is CPU-only and there is no NVIDIA driver ({why})")
            }
        })
    }

    /// Whether falling back to the CPU deserves a loud warning: a GPU is installed here
    /// and the user most likely meant to use it.
    pub fn gpu_left_unused(&self) -> bool {
        self.device_count == 0 && self.driver.as_ref().is_ok_and(|d| !d.gpus.is_empty())
    }
}

/// The path a library was mapped from, from a `/proc/self/maps` text.
pub fn mapped_library(maps: &str, file_name: &str) -> Option<PathBuf> {
    maps.lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .find(|p| Path::new(p).file_name().is_some_and(|n| n == file_name))
        .map(PathBuf::from)
}

fn probe_driver() -> Result<Driver, String> {
    use nvml_wrapper::Nvml;
    // The versioned name is what the driver package installs; the bare one comes with
    // development packages only.
    let nvml = Nvml::builder()
        .lib_path(OsStr::new("libnvidia-ml.so.1"))
        .init()
        .or_else(|_| Nvml::init())
        .map_err(|e| format!("NVML: {e}"))?;
    let version = nvml.sys_driver_version().map_err(|e| format!("NVML driver version: {e}"))?;
    let cuda = nvml.sys_cuda_driver_version().unwrap_or(0);
    let count = nvml.device_count().map_err(|e| format!("NVML device count: {e}"))?;
    let mut gpus = Vec::new();
    for index in 0..count {
        let Ok(d) = nvml.device_by_index(index) else {
            continue;
        };
        let mem = d.memory_info().ok();
        gpus.push(Gpu {
            index,
            name: d.name().unwrap_or_else(|_| "?".into()),
            memory_total_bytes: mem.as_ref().map_or(0, |m| m.total),
            memory_used_bytes: mem.as_ref().map_or(0, |m| m.used),
        });
    }
    Ok(Driver { version, cuda_version: format!("{}.{}", cuda / 1000, (cuda % 1000) / 10), gpus })
}

/// NVML's index (driver order) of libtorch's CUDA device `ordinal`, which counts only the
/// devices `CUDA_VISIBLE_DEVICES` leaves; None when that list names it other than by index.
pub fn nvml_index(ordinal: usize) -> Option<u32> {
    match std::env::var("CUDA_VISIBLE_DEVICES") {
        Ok(v) => v.split(',').nth(ordinal).and_then(|s| s.trim().parse().ok()),
        Err(_) => Some(ordinal as u32),
    }
}

/// Device memory in use on GPU `index` (driver order) right now, all processes together,
/// the CUDA context included. libtorch's allocator statistics are not reachable through tch;
/// right after a step this is the allocator's reserve plus the context, which is what a
/// step costs in practice.
pub fn gpu_memory_used(index: u32) -> Option<u64> {
    let nvml =
        nvml_wrapper::Nvml::builder().lib_path(OsStr::new("libnvidia-ml.so.1")).init().ok()?;
    let d = nvml.device_by_index(index).ok()?;
    d.memory_info().ok().map(|m| m.used)
}

/// Versions of the CUDA libraries libtorch loaded: runtime, cuDNN, NCCL.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CudaLibraries {
    /// e.g. `13.0`.
    pub runtime: Option<String>,
    pub cudnn: Option<String>,
    pub cudnn_usable: bool,
    pub nccl: Option<String>,
    pub nccl_path: Option<PathBuf>,
}

impl CudaLibraries {
    /// Ask libtorch (and NCCL) for versions; only meaningful with the backend loaded.
    pub fn probe(facts: &CudaFacts) -> CudaLibraries {
        if !facts.backend_loaded {
            return CudaLibraries::default();
        }
        // libtorch throws (and tch panics) when a backend call is not supported here.
        let ask = |f: fn() -> i64| std::panic::catch_unwind(f).ok().filter(|v| *v > 0);
        let runtime =
            ask(tch::utils::version_cudart).map(|v| format!("{}.{}", v / 1000, (v % 1000) / 10));
        let cudnn = ask(tch::utils::version_cudnn).map(|v| {
            // cuDNN 9 numbers versions major*10000 + minor*100 + patch.
            format!("{}.{}.{}", v / 10000, (v % 10000) / 100, v % 100)
        });
        let cudnn_usable = std::panic::catch_unwind(tch::Cuda::cudnn_is_available).unwrap_or(false);
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
        let nccl_path = mapped_library(&maps, "libnccl.so.2");
        CudaLibraries { runtime, cudnn, cudnn_usable, nccl: nccl_version(), nccl_path }
    }
}

/// NCCL's version, when libtorch's NCCL can be loaded (it is, with the CUDA backend).
fn nccl_version() -> Option<String> {
    // SAFETY: loading NCCL runs no code of ours; `ncclGetVersion(int*)` has this signature in
    // every NCCL 2 release and only writes the int.
    unsafe {
        let lib = libloading::Library::new("libnccl.so.2").ok()?;
        let get: libloading::Symbol<unsafe extern "C" fn(*mut i32) -> i32> =
            lib.get(b"ncclGetVersion\0").ok()?;
        let mut v = 0i32;
        if get(&mut v) != 0 {
            return None;
        }
        // NCCL >= 2.9: major*10000 + minor*100 + patch.
        Some(format!("{}.{}.{}", v / 10000, (v % 10000) / 100, v % 100))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A driver listing `gpus` H200s, for the tests of the device choice too.
    pub(crate) fn driver(gpus: usize) -> Result<Driver, String> {
        Ok(Driver {
            version: "580.159.03".into(),
            cuda_version: "13.0".into(),
            gpus: (0..gpus as u32)
                .map(|index| Gpu {
                    index,
                    name: "NVIDIA H200".into(),
                    memory_total_bytes: 150_754_820_096,
                    memory_used_bytes: 0,
                })
                .collect(),
        })
    }

    #[test]
    fn finds_mapped_libraries() {
        let maps = "7f00-7f10 r-xp 00000000 08:01 42 /opt/venv/torch/lib/libtorch_cpu.so\n\
                    7f10-7f20 r--p 00000000 08:01 43 /opt/venv/torch/lib/libtorch_cuda.so\n\
                    7f20-7f30 rw-p 00000000 00:00 0 \n";
        assert_eq!(
            mapped_library(maps, "libtorch_cpu.so"),
            Some(PathBuf::from("/opt/venv/torch/lib/libtorch_cpu.so"))
        );
        assert!(mapped_library(maps, "libtorch_cuda.so").is_some());
        assert!(mapped_library(maps, "libc10_cuda.so").is_none());
    }

    #[test]
    fn says_why_no_device_in_every_case() {
        let base = CudaFacts { libtorch_dir: Some("/t/lib".into()), ..Default::default() };
        let cpu_only_with_driver = CudaFacts { driver: driver(1), ..base.clone() };
        assert!(cpu_only_with_driver.gpu_left_unused());
        assert!(cpu_only_with_driver.why_no_device().unwrap().contains("is CPU-only"));

        let not_linked = CudaFacts { driver: driver(1), backend_in_libtorch: true, ..base.clone() };
        assert!(not_linked.why_no_device().unwrap().contains("did not load it"));

        let hidden = CudaFacts {
            driver: driver(2),
            backend_in_libtorch: true,
            backend_loaded: true,
            visible_devices: Some("".into()),
            ..base.clone()
        };
        assert!(hidden.why_no_device().unwrap().contains("CUDA_VISIBLE_DEVICES"));

        let no_driver = CudaFacts {
            driver: Err("NVML: libnvidia-ml.so.1 not found".into()),
            backend_in_libtorch: true,
            backend_loaded: true,
            ..base.clone()
        };
        assert!(!no_driver.gpu_left_unused());
        assert!(no_driver.why_no_device().unwrap().starts_with("no NVIDIA driver"));

        let gpu = CudaFacts { device_count: 1, driver: driver(1), backend_loaded: true, ..base };
        assert_eq!(gpu.why_no_device(), None);
        assert!(!gpu.gpu_left_unused());
    }
}
