//! `--device auto|cpu|cuda|cuda:N` and `--dtype f32|bf16` as tch values.

use anyhow::{bail, Context, Result};
use tch::{Cuda, Device, Kind};

/// `auto` picks the first CUDA device when one is visible, else the CPU.
pub fn parse_device(s: &str) -> Result<Device> {
    let s = s.trim().to_ascii_lowercase();
    let dev = match s.as_str() {
        "auto" => Device::cuda_if_available(),
        "cpu" => Device::Cpu,
        "cuda" | "gpu" => Device::Cuda(0),
        other => match other.strip_prefix("cuda:") {
            Some(n) => Device::Cuda(
                n.parse()
                    .with_context(|| format!("device {other:?}: expected cuda:N with N a number"))?,
            ),
            None => bail!("unknown device {other:?}: use auto, cpu, cuda or cuda:N"),
        },
    };
    if let Device::Cuda(n) = dev {
        let count = Cuda::device_count() as usize;
        if n >= count {
            bail!("device cuda:{n} requested but {count} CUDA device(s) are visible");
        }
    }
    Ok(dev)
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
    static NATIVE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *NATIVE.get_or_init(|| {
        std::fs::read_to_string("/proc/cpuinfo")
            .map(|s| {
                s.lines()
                    .filter(|l| l.starts_with("flags"))
                    .any(|l| l.split_whitespace().any(|f| f == "avx512_bf16" || f == "amx_bf16"))
            })
            .unwrap_or(false)
    })
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

    #[test]
    fn parses_devices_and_dtypes() {
        assert_eq!(parse_device("cpu").unwrap(), Device::Cpu);
        assert!(parse_device("tpu").is_err());
        assert!(parse_device("cuda:x").is_err());
        let auto = parse_device("auto").unwrap();
        assert_eq!(auto == Device::Cpu, !Cuda::is_available());
        assert_eq!(parse_dtype("bf16").unwrap(), Kind::BFloat16);
        assert_eq!(parse_dtype("F32").unwrap(), Kind::Float);
        assert!(parse_dtype("int8").is_err());
    }
}
