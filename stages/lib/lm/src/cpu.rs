//! What this CPU can do, read once from `/proc/cpuinfo`: the fast paths are chosen at run
//! time, so one binary serves an AVX2-only EPYC and a Xeon with AVX-512-BF16 or AMX.

use std::sync::OnceLock;

use serde::Serialize;

/// The CPU model and the instruction-set extensions our matmul paths care about.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CpuInfo {
    pub model: String,
    /// Logical CPUs this process may use.
    pub cores: usize,
    pub avx2: bool,
    pub fma: bool,
    pub avx512f: bool,
    pub avx512_bf16: bool,
    pub amx_bf16: bool,
}

impl CpuInfo {
    /// This machine's CPU (read once).
    pub fn get() -> &'static CpuInfo {
        static INFO: OnceLock<CpuInfo> = OnceLock::new();
        INFO.get_or_init(|| {
            let text = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
            let mut info = CpuInfo::parse(&text);
            info.cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
            info
        })
    }

    /// The first processor of a `/proc/cpuinfo` text (all cores of a machine agree).
    pub fn parse(cpuinfo: &str) -> CpuInfo {
        let field = |name: &str| {
            cpuinfo
                .lines()
                .find(|l| l.split(':').next().is_some_and(|k| k.trim() == name))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        };
        let flags = field("flags").unwrap_or_default();
        let has = |f: &str| flags.split_whitespace().any(|x| x == f);
        CpuInfo {
            model: field("model name").unwrap_or_else(|| "unknown".into()),
            cores: 0,
            avx2: has("avx2"),
            fma: has("fma"),
            avx512f: has("avx512f"),
            avx512_bf16: has("avx512_bf16"),
            amx_bf16: has("amx_bf16"),
        }
    }

    /// Whether bf16 matrices multiply natively (AVX-512 BF16 or AMX). Without it libtorch
    /// emulates bf16 GEMMs, several times slower than f32 ones.
    pub fn native_bf16(&self) -> bool {
        self.avx512_bf16 || self.amx_bf16
    }

    /// The extensions present, for humans: `AVX2 FMA AVX-512 AVX-512-BF16 AMX-BF16`.
    pub fn isa(&self) -> String {
        let names = [
            (self.avx2, "AVX2"),
            (self.fma, "FMA"),
            (self.avx512f, "AVX-512"),
            (self.avx512_bf16, "AVX-512-BF16"),
            (self.amx_bf16, "AMX-BF16"),
        ];
        let v: Vec<&str> = names.iter().filter(|(on, _)| *on).map(|(_, n)| *n).collect();
        if v.is_empty() {
            "none of AVX2, AVX-512, AMX".into()
        } else {
            v.join(" ")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EPYC: &str = "processor\t: 0\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu sse2 avx fma avx2 bmi2\n\nprocessor\t: 1\n";
    const XEON: &str = "processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Platinum 8481C\nflags\t\t: avx2 fma avx512f avx512bw avx512_bf16 amx_bf16 amx_tile\n";

    #[test]
    fn reads_both_kinds_of_cpu() {
        let e = CpuInfo::parse(EPYC);
        assert_eq!(e.model, "AMD EPYC 7B13");
        assert!(e.avx2 && e.fma && !e.avx512f && !e.native_bf16());
        assert_eq!(e.isa(), "AVX2 FMA");
        let x = CpuInfo::parse(XEON);
        assert!(x.avx512f && x.avx512_bf16 && x.amx_bf16 && x.native_bf16());
        assert_eq!(x.isa(), "AVX2 FMA AVX-512 AVX-512-BF16 AMX-BF16");
        // `avx512_bf16` must not be read out of `avx512_bf16x` or similar.
        assert!(!CpuInfo::parse("flags : avx512_bf16x\n").avx512_bf16);
        assert_eq!(CpuInfo::parse("").model, "unknown");
    }
}
