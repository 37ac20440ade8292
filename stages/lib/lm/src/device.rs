//! `--device auto|cpu|cuda|cuda:N` and `--dtype f32|bf16` as tch values, and the choice
//! `auto` makes, with its reason.

use anyhow::{bail, Context, Result};
use tch::{Device, Kind};

use crate::cpu::CpuInfo;
use crate::cuda::CudaFacts;

/// A resolved `--device`: the device, why it was chosen, and a warning when the choice
/// probably is not what the user wanted.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceChoice {
    pub device: Device,
    pub reason: String,
    pub warning: Option<String>,
}

/// `cpu` or `cuda:N`: how manifests and logs name a device.
pub fn device_label(d: Device) -> String {
    match d {
        Device::Cuda(n) => format!("cuda:{n}"),
        Device::Cpu => "cpu".into(),
        other => format!("{other:?}").to_ascii_lowercase(),
    }
}

/// Resolve `spec` against what this machine has. `auto` picks the first CUDA device when
/// libtorch sees one, else the CPU (with a warning when a GPU is installed but unusable);
/// asking for `cuda` where libtorch sees none is an error that says why.
pub fn choose_device(spec: &str, facts: &CudaFacts) -> Result<DeviceChoice> {
    let s = spec.trim().to_ascii_lowercase();
    let cuda = |n: usize| -> Result<DeviceChoice> {
        if let Some(why) = facts.why_no_device() {
            bail!("device {s:?} was asked for, but libtorch sees no CUDA device: {why}");
        }
        if n >= facts.device_count {
            bail!(
                "device cuda:{n} was asked for, but libtorch sees {} CUDA device(s)",
                facts.device_count
            );
        }
        Ok(DeviceChoice { device: Device::Cuda(n), reason: format!("{s} as asked"), warning: None })
    };
    match s.as_str() {
        "auto" => match facts.why_no_device() {
            None => Ok(DeviceChoice {
                device: Device::Cuda(0),
                reason: format!("the first of {} CUDA device(s) libtorch sees", facts.device_count),
                warning: None,
            }),
            Some(why) => Ok(DeviceChoice {
                device: Device::Cpu,
                warning: facts
                    .gpu_left_unused()
                    .then(|| format!("device = \"auto\" falls back to the CPU although a GPU is installed: {why}")),
                reason: why,
            }),
        },
        "cpu" => Ok(DeviceChoice { device: Device::Cpu, reason: "cpu as asked".into(), warning: None }),
        "cuda" | "gpu" => cuda(0),
        other => match other.strip_prefix("cuda:") {
            Some(n) => cuda(n.parse().with_context(|| format!("device {other:?}: expected cuda:N with N a number"))?),
            None => bail!("unknown device {other:?}: use auto, cpu, cuda or cuda:N"),
        },
    }
}

/// [`choose_device`] on this machine, saying where the caller will run and why (every
/// stage calls it once, at its start), and warning when that is probably not what the user
/// wanted.
pub fn resolve_device(spec: &str) -> Result<DeviceChoice> {
    let choice = choose_device(spec, CudaFacts::get())?;
    tracing::info!("device: {} ({})", device_label(choice.device), choice.reason);
    if let Some(w) = &choice.warning {
        tracing::warn!("{w}");
    }
    Ok(choice)
}

/// The device for `spec` on this machine (see [`resolve_device`]).
pub fn parse_device(spec: &str) -> Result<Device> {
    Ok(resolve_device(spec)?.device)
}

/// Compute dtype: `f32` (float32) or `bf16` (bfloat16).
pub fn parse_dtype(s: &str) -> Result<Kind> {
    match s.trim().to_ascii_lowercase().as_str() {
        "f32" | "float32" | "fp32" | "float" => Ok(Kind::Float),
        "bf16" | "bfloat16" => Ok(Kind::BFloat16),
        other => bail!("unknown dtype {other:?}: use f32 or bf16"),
    }
}

/// Whether this CPU multiplies bf16 matrices natively (AVX-512 BF16 or AMX). Without it
/// libtorch emulates bf16 GEMMs several times slower than f32 ones.
pub fn cpu_has_native_bf16() -> bool {
    CpuInfo::get().native_bf16()
}

/// The dtype weights are multiplied in for `dtype` asked on `device`: the requested one,
/// except bf16 on a CPU without native bf16 GEMMs, where emulated bf16 is several times
/// slower than f32 (`SPICE_LM_FORCE_BF16` keeps bf16 there, to test that path).
pub fn compute_kind_on(device: Device, dtype: Kind, native_bf16: bool) -> Kind {
    if dtype != Kind::Float
        && device == Device::Cpu
        && !native_bf16
        && std::env::var_os("SPICE_LM_FORCE_BF16").is_none()
    {
        Kind::Float
    } else {
        dtype
    }
}

/// Memory free for this process on `device` now, in bytes: on a CPU the kernel's
/// `MemAvailable`, capped by the cgroup's limit where one applies (Slurm jobs, containers);
/// on a GPU what NVML reports unused. 8 GiB when it cannot be read.
pub fn free_memory_bytes(device: Device) -> u64 {
    const FALLBACK: u64 = 8 << 30;
    match device {
        Device::Cuda(i) => {
            let index = crate::cuda::nvml_index(i).unwrap_or(i as u32);
            let gpu = CudaFacts::get()
                .driver
                .as_ref()
                .ok()
                .and_then(|d| d.gpus.iter().find(|g| g.index == index).cloned());
            match (gpu, crate::cuda::gpu_memory_used(index)) {
                (Some(g), Some(used)) => g.memory_total_bytes.saturating_sub(used),
                _ => FALLBACK,
            }
        }
        _ => {
            let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
            let available = meminfo
                .lines()
                .find_map(|l| l.strip_prefix("MemAvailable:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .map(|kb| kb * 1024);
            let read = |f: &str| {
                std::fs::read_to_string(format!("/sys/fs/cgroup/{f}"))
                    .ok()
                    .and_then(|s| s.trim().parse::<u64>().ok())
            };
            // cgroup v2; `max` (no limit) does not parse and leaves MemAvailable alone.
            let cgroup = read("memory.max")
                .map(|max| max.saturating_sub(read("memory.current").unwrap_or(0)));
            match (available, cgroup) {
                (Some(a), Some(c)) => a.min(c),
                (Some(a), None) => a,
                (None, Some(c)) => c,
                (None, None) => FALLBACK,
            }
        }
    }
}

/// Set libtorch's intra-op threads: `SPICE_LM_THREADS` when set, else every core (libtorch
/// may default to fewer).
pub fn use_all_cores() {
    let from_env = std::env::var("SPICE_LM_THREADS").ok().and_then(|s| s.parse::<i32>().ok());
    let n = from_env.or_else(|| std::thread::available_parallelism().ok().map(|n| n.get() as i32));
    if let Some(n) = n {
        tch::set_num_threads(n.max(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(devices: usize, driver: bool, backend: bool) -> CudaFacts {
        CudaFacts {
            libtorch_dir: Some("/venv/torch/lib".into()),
            backend_in_libtorch: backend,
            backend_loaded: backend,
            device_count: devices,
            driver: if driver {
                crate::cuda::tests::driver(1)
            } else {
                Err("NVML: not found".into())
            },
            visible_devices: None,
        }
    }

    #[test]
    fn parses_devices_and_dtypes() {
        assert_eq!(parse_device("cpu").unwrap(), Device::Cpu);
        assert!(parse_device("tpu").is_err());
        assert!(parse_device("cuda:x").is_err());
        let auto = parse_device("auto").unwrap();
        assert_eq!(auto == Device::Cpu, !tch::Cuda::is_available());
        assert_eq!(parse_dtype("bf16").unwrap(), Kind::BFloat16);
        assert_eq!(parse_dtype("F32").unwrap(), Kind::Float);
        assert!(parse_dtype("int8").is_err());
        assert_eq!(device_label(Device::Cuda(3)), "cuda:3");
        assert_eq!(device_label(Device::Cpu), "cpu");
    }

    #[test]
    fn auto_picks_the_gpu_when_libtorch_sees_one() {
        let c = choose_device("auto", &facts(2, true, true)).unwrap();
        assert_eq!(c.device, Device::Cuda(0));
        assert!(c.warning.is_none());
        assert!(c.reason.contains("2 CUDA device"), "{}", c.reason);
        assert_eq!(choose_device("cuda:1", &facts(2, true, true)).unwrap().device, Device::Cuda(1));
        let e = choose_device("cuda:2", &facts(2, true, true)).unwrap_err().to_string();
        assert!(e.contains("sees 2 CUDA device"), "{e}");
    }

    #[test]
    fn auto_warns_loudly_when_a_gpu_is_installed_but_libtorch_is_cpu_only() {
        let c = choose_device("auto", &facts(0, true, false)).unwrap();
        assert_eq!(c.device, Device::Cpu);
        let w = c.warning.expect("a warning");
        assert!(w.contains("CPU-only") && w.contains("580.159.03"), "{w}");
    }

    #[test]
    fn auto_is_quiet_on_a_machine_without_a_gpu() {
        for backend in [false, true] {
            let c = choose_device("auto", &facts(0, false, backend)).unwrap();
            assert_eq!(c.device, Device::Cpu);
            assert!(c.warning.is_none());
            assert!(c.reason.contains("no NVIDIA driver"), "{}", c.reason);
        }
    }

    #[test]
    fn asking_for_cuda_without_one_is_a_clear_error() {
        let e = choose_device("cuda", &facts(0, false, true)).unwrap_err().to_string();
        assert!(e.contains("no CUDA device") && e.contains("no NVIDIA driver"), "{e}");
        let e = choose_device("cuda:0", &facts(0, true, false)).unwrap_err().to_string();
        assert!(e.contains("CPU-only"), "{e}");
    }

    #[test]
    fn bf16_computes_in_f32_only_on_a_cpu_without_native_bf16() {
        if std::env::var_os("SPICE_LM_FORCE_BF16").is_some() {
            return;
        }
        assert_eq!(compute_kind_on(Device::Cpu, Kind::BFloat16, false), Kind::Float);
        assert_eq!(compute_kind_on(Device::Cpu, Kind::BFloat16, true), Kind::BFloat16);
        assert_eq!(compute_kind_on(Device::Cuda(0), Kind::BFloat16, false), Kind::BFloat16);
        assert_eq!(compute_kind_on(Device::Cpu, Kind::Float, true), Kind::Float);
    }
}
