//! `spice-lm doctor` (and `spice doctor`, which runs it): what this machine and build give
//! the policy — libtorch and its CUDA backend, the driver and devices, the CUDA libraries,
//! the CPU's ISA and the matmul path generation takes on it, threads, and what
//! `device = "auto"` picks and why.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;
use tch::{Device, Kind};

use crate::cpu::CpuInfo;
use crate::cuda::{CudaFacts, CudaLibraries, Driver};
use crate::device::{choose_device, device_label};
use crate::generate::matmul_path;

#[derive(Debug, Clone, Serialize)]
pub struct Doctor {
    pub spice_version: String,
    pub torch: Torch,
    pub cuda: Cuda,
    pub cpu: Cpu,
    pub auto: AutoChoice,
}

#[derive(Debug, Clone, Serialize)]
pub struct Torch {
    /// From the wheel's `version.py` (or a standalone libtorch's `build-version`).
    pub version: Option<String>,
    pub libtorch_dir: Option<PathBuf>,
    /// The CUDA version libtorch was built for (`None`: a CPU-only build).
    pub built_for_cuda: Option<String>,
    pub mkl: bool,
    pub onednn: bool,
    pub openmp: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Cuda {
    pub backend_in_libtorch: bool,
    pub backend_loaded: bool,
    pub device_count: usize,
    pub visible_devices: Option<String>,
    pub driver: Option<Driver>,
    /// Why no driver was found, when none was.
    pub driver_missing: Option<String>,
    pub libraries: CudaLibraries,
}

#[derive(Debug, Clone, Serialize)]
pub struct Cpu {
    #[serde(flatten)]
    pub info: CpuInfo,
    pub isa: String,
    pub native_bf16: bool,
    pub intra_op_threads: i32,
    pub inter_op_threads: i32,
    /// How generation multiplies on the CPU, per dtype (`f32`, `bf16`).
    pub matmul_f32: String,
    pub matmul_bf16: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct AutoChoice {
    pub device: String,
    pub reason: String,
    pub warning: Option<String>,
}

impl Doctor {
    /// Probe this process (after [`crate::device::use_all_cores`], so threads are the
    /// stages' own).
    pub fn probe() -> Doctor {
        let facts = CudaFacts::get();
        let cpu = CpuInfo::get();
        let (version, built_for_cuda) =
            facts.libtorch_dir.as_deref().map(torch_version).unwrap_or_default();
        let auto = match choose_device("auto", facts) {
            Ok(c) => {
                AutoChoice { device: device_label(c.device), reason: c.reason, warning: c.warning }
            }
            Err(e) => AutoChoice { device: "none".into(), reason: format!("{e:#}"), warning: None },
        };
        Doctor {
            spice_version: env!("CARGO_PKG_VERSION").into(),
            torch: Torch {
                version,
                libtorch_dir: facts.libtorch_dir.clone(),
                built_for_cuda,
                mkl: tch::utils::has_mkl(),
                onednn: tch::utils::has_mkldnn(),
                openmp: tch::utils::has_openmp(),
            },
            cuda: Cuda {
                backend_in_libtorch: facts.backend_in_libtorch,
                backend_loaded: facts.backend_loaded,
                device_count: facts.device_count,
                visible_devices: facts.visible_devices.clone(),
                driver: facts.driver.clone().ok(),
                driver_missing: facts.driver.clone().err(),
                libraries: CudaLibraries::probe(facts),
            },
            cpu: Cpu {
                isa: cpu.isa(),
                native_bf16: cpu.native_bf16(),
                intra_op_threads: tch::get_num_threads(),
                inter_op_threads: tch::get_num_interop_threads(),
                matmul_f32: matmul_path(Device::Cpu, Kind::Float, cpu.native_bf16()),
                matmul_bf16: matmul_path(Device::Cpu, Kind::BFloat16, cpu.native_bf16()),
                info: cpu.clone(),
            },
            auto,
        }
    }

    /// The report for humans.
    pub fn text(&self) -> String {
        let mut s = String::new();
        let yes = |b: bool| if b { "yes" } else { "no" };
        let or_unknown = |o: &Option<String>| o.clone().unwrap_or_else(|| "unknown".into());
        let t = &self.torch;
        let _ = writeln!(s, "spice {}", self.spice_version);
        let _ = writeln!(s, "\nlibtorch");
        let _ = writeln!(s, "  version        {}", or_unknown(&t.version));
        let _ = writeln!(
            s,
            "  path           {}",
            t.libtorch_dir.as_ref().map_or("unknown".into(), |p| p.display().to_string())
        );
        let _ = writeln!(
            s,
            "  built for CUDA {}",
            t.built_for_cuda.clone().unwrap_or_else(|| "no (CPU-only build)".into())
        );
        let _ = writeln!(
            s,
            "  MKL {} · oneDNN {} · OpenMP {}",
            yes(t.mkl),
            yes(t.onednn),
            yes(t.openmp)
        );
        let c = &self.cuda;
        let _ = writeln!(s, "\nCUDA");
        let _ = writeln!(s, "  backend in libtorch  {}", yes(c.backend_in_libtorch));
        let _ = writeln!(s, "  backend loaded       {}", yes(c.backend_loaded));
        match (&c.driver, &c.driver_missing) {
            (Some(d), _) => {
                let _ = writeln!(
                    s,
                    "  NVIDIA driver        {} (supports CUDA {})",
                    d.version, d.cuda_version
                );
                for g in &d.gpus {
                    let _ = writeln!(
                        s,
                        "    GPU {}: {}, {:.1} GiB ({:.1} GiB in use)",
                        g.index,
                        g.name,
                        g.memory_total_bytes as f64 / (1u64 << 30) as f64,
                        g.memory_used_bytes as f64 / (1u64 << 30) as f64
                    );
                }
            }
            (None, why) => {
                let _ = writeln!(
                    s,
                    "  NVIDIA driver        none ({})",
                    why.clone().unwrap_or_default()
                );
            }
        }
        let _ = writeln!(s, "  devices libtorch sees {}", c.device_count);
        if let Some(v) = &c.visible_devices {
            let _ = writeln!(s, "  CUDA_VISIBLE_DEVICES  {v:?}");
        }
        let l = &c.libraries;
        if c.backend_loaded {
            let _ = writeln!(s, "  CUDA runtime         {}", or_unknown(&l.runtime));
            let _ = writeln!(
                s,
                "  cuDNN                {} (usable: {})",
                or_unknown(&l.cudnn),
                yes(l.cudnn_usable)
            );
            let nccl = match (&l.nccl, &l.nccl_path) {
                (Some(v), Some(p)) => format!("{v} ({})", p.display()),
                (Some(v), None) => v.clone(),
                (None, _) => "not found".into(),
            };
            let _ = writeln!(s, "  NCCL                 {nccl}");
        }
        let p = &self.cpu;
        let _ = writeln!(s, "\nCPU");
        let _ = writeln!(s, "  model          {}", p.info.model);
        let _ = writeln!(s, "  cores          {}", p.info.cores);
        let _ = writeln!(s, "  ISA            {}", p.isa);
        let _ = writeln!(s, "  native bf16    {}", yes(p.native_bf16));
        let _ = writeln!(
            s,
            "  threads        {} intra-op, {} inter-op (SPICE_LM_THREADS sets intra-op)",
            p.intra_op_threads, p.inter_op_threads
        );
        let _ = writeln!(s, "  matmul, f32    {}", p.matmul_f32);
        let _ = writeln!(s, "  matmul, bf16   {}", p.matmul_bf16);
        let a = &self.auto;
        let _ = writeln!(s, "\ndevice = \"auto\" picks {}: {}", a.device, a.reason);
        if let Some(w) = &a.warning {
            let _ = writeln!(s, "WARNING: {w}");
        }
        s
    }
}

/// libtorch's version and the CUDA version it was built for, from the files beside its
/// library folder: the torch wheel's `version.py`, or a standalone libtorch's `build-version`.
fn torch_version(lib_dir: &Path) -> (Option<String>, Option<String>) {
    let root = lib_dir.parent().unwrap_or(lib_dir);
    if let Ok(py) = std::fs::read_to_string(root.join("version.py")) {
        let value = |key: &str| {
            py.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_once('='))
                .map(|(_, v)| v.trim().trim_matches(|c| c == '\'' || c == '"').to_string())
                .filter(|v| v != "None")
        };
        return (value("__version__"), value("cuda"));
    }
    let build =
        std::fs::read_to_string(root.join("build-version")).ok().map(|s| s.trim().to_string());
    let cuda = build.as_ref().and_then(|v| v.split_once("+cu")).map(|(_, c)| c.to_string());
    (build, cuda)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_wheel_version_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("lib")).unwrap();
        std::fs::write(
            dir.path().join("version.py"),
            "__version__ = '2.11.0+cu130'\ndebug = False\ncuda: Optional[str] = '13.0'\nhip: Optional[str] = None\n",
        )
        .unwrap();
        let (v, c) = torch_version(&dir.path().join("lib"));
        assert_eq!(v.as_deref(), Some("2.11.0+cu130"));
        assert_eq!(c.as_deref(), Some("13.0"));
    }

    #[test]
    fn probes_this_process() {
        let d = Doctor::probe();
        // Every tch binary of this workspace links the CUDA backend when libtorch has one.
        assert_eq!(d.cuda.backend_loaded, d.cuda.backend_in_libtorch, "{}", d.text());
        assert!(d.torch.libtorch_dir.is_some());
        assert!(d.text().contains("device = \"auto\" picks"));
        let json = serde_json::to_value(&d).unwrap();
        assert!(json["cpu"]["isa"].is_string() && json["auto"]["device"].is_string());
    }
}
