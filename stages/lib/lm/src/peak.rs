//! The machine's matmul throughput, measured in the process that is compared with it, and
//! the compute dtype of training.
//!
//! A training step is GEMMs: its model FLOP/s (6 × parameters × tokens per second, forward
//! and backward, recomputation not counted) over the GEMM peak measured in the same run is
//! the share of the machine the update uses. bf16 is asked for to be fast, and on some CPUs
//! it is not: libtorch emulates bf16 GEMMs on CPUs without bf16 instructions (several times
//! slower than f32), and on an Intel Xeon with AVX-512-BF16 but no AMX its bf16 2048³ GEMM
//! ran at 146 GFLOP/s against 287 for f32. The update computes in f32 there (master weights
//! are f32 anyway) and in bf16 only with AMX — a rule by instruction set ([`CpuBf16`]), so
//! that a run's arithmetic never depends on a timing.

use std::time::Instant;

use tch::{Device, Kind, Tensor};

use crate::cpu::CpuInfo;

/// Side of the square GEMM measured: big enough for a CPU's blocked kernels to reach their
/// rate (the 135M model's GEMMs are 576–1536 wide), small enough to take a fraction of a
/// second in emulated bf16 on 2 cores.
pub const PEAK_GEMM_SIZE: i64 = 1024;

/// FLOP/s of an `n`×`n`×`n` GEMM in `kind` on `device`: best of `repeats` after a warm-up.
pub fn matmul_flops(device: Device, kind: Kind, n: i64, repeats: usize) -> f64 {
    tch::no_grad(|| {
        let opts = (Kind::Float, device);
        let a = Tensor::randn([n, n], opts).to_kind(kind);
        let b = Tensor::randn([n, n], opts).to_kind(kind);
        let flops = 2.0 * (n as f64).powi(3);
        let mut best = f64::INFINITY;
        for i in 0..=repeats.max(1) {
            sync(device);
            let t0 = Instant::now();
            let c = a.matmul(&b);
            sync(device);
            let secs = t0.elapsed().as_secs_f64();
            drop(c);
            if i > 0 {
                best = best.min(secs);
            }
        }
        flops / best.max(1e-12)
    })
}

/// Wait for the device's queued work, so the clock reads what ran.
pub fn sync(device: Device) {
    if let Device::Cuda(n) = device {
        tch::Cuda::synchronize(n as i64);
    }
}

/// The dtype a training step computes in, and the measurements it was chosen from.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingCompute {
    /// What the step multiplies in (master weights stay f32).
    pub kind: Kind,
    /// Why, in words (for the log and the manifest).
    pub reason: String,
    /// Measured GEMM FLOP/s in f32, and in bf16 where bf16 was asked for.
    pub f32_flops: f64,
    pub bf16_flops: Option<f64>,
}

impl TrainingCompute {
    /// The measured GEMM peak of the dtype chosen: the denominator of the step's share of
    /// the machine.
    pub fn peak_flops(&self) -> f64 {
        match (self.kind, self.bf16_flops) {
            (Kind::BFloat16, Some(b)) => b,
            _ => self.f32_flops,
        }
    }

    /// Measure this machine and choose: `requested` is the run's dtype.
    pub fn measure(device: Device, requested: Kind) -> TrainingCompute {
        let f32_flops = matmul_flops(device, Kind::Float, PEAK_GEMM_SIZE, 3);
        let bf16_flops = (requested == Kind::BFloat16)
            .then(|| matmul_flops(device, Kind::BFloat16, PEAK_GEMM_SIZE, 3));
        let mut c = choose_training_kind(
            device,
            requested,
            CpuBf16::of(CpuInfo::get()),
            f32_flops,
            bf16_flops,
        );
        // The override that keeps emulated bf16 on a CPU (to test that path) wins.
        if requested == Kind::BFloat16 && std::env::var_os("SPICE_LM_FORCE_BF16").is_some() {
            c.kind = Kind::BFloat16;
            c.reason = "bf16: SPICE_LM_FORCE_BF16 is set".into();
        }
        c
    }
}

/// How a CPU multiplies bf16 matrices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CpuBf16 {
    /// No bf16 instructions: libtorch emulates bf16 GEMMs, several times slower than f32.
    Emulated,
    /// AVX-512-BF16 without AMX: bf16 GEMMs at about half the f32 rate (146 against 287
    /// GFLOP/s on a 2-core Xeon).
    Avx512,
    /// AMX tiles: bf16 GEMMs several times faster than f32 (1,771 against 338 on a 2-core
    /// Xeon with AMX).
    Amx,
}

impl CpuBf16 {
    pub fn of(cpu: &CpuInfo) -> CpuBf16 {
        match (cpu.amx_bf16, cpu.avx512_bf16) {
            (true, _) => CpuBf16::Amx,
            (false, true) => CpuBf16::Avx512,
            _ => CpuBf16::Emulated,
        }
    }
}

/// The training dtype for `requested` on `device`: bf16 only where asked for and, on a CPU,
/// only with AMX, the one kind of CPU whose bf16 GEMMs are faster than its f32 ones. The rule
/// follows the instruction set, not the rates measured in this process, so that a run's
/// arithmetic does not change with the noise of one measurement; the rates go into the
/// reason (and the manifest), with a word when they disagree with the rule. A GPU keeps what
/// was asked for: its bf16 tensor cores are the point.
pub fn choose_training_kind(
    device: Device,
    requested: Kind,
    cpu: CpuBf16,
    f32_flops: f64,
    bf16_flops: Option<f64>,
) -> TrainingCompute {
    let rates = match bf16_flops {
        Some(b) => format!("bf16 {:.0} against f32 {:.0} GFLOP/s here", b / 1e9, f32_flops / 1e9),
        None => format!("f32 {:.0} GFLOP/s here", f32_flops / 1e9),
    };
    let (kind, reason) = match requested {
        Kind::BFloat16 if device != Device::Cpu => {
            (Kind::BFloat16, "bf16 as asked (an accelerator)".to_string())
        }
        Kind::BFloat16 => match cpu {
            CpuBf16::Emulated => (
                Kind::Float,
                format!("f32: this CPU has no bf16 instructions, bf16 is emulated ({rates})"),
            ),
            CpuBf16::Avx512 => (
                Kind::Float,
                format!(
                    "f32: bf16 GEMMs without AMX run at about half the f32 rate on \
                     AVX-512-BF16 CPUs ({rates})"
                ),
            ),
            CpuBf16::Amx => {
                let slower = bf16_flops.is_some_and(|b| b < f32_flops);
                let note = if slower { "; bf16 measured slower, consider f32" } else { "" };
                (Kind::BFloat16, format!("bf16: AMX ({rates}{note})"))
            }
        },
        kind => (kind, format!("{kind:?} as asked ({rates})")),
    };
    TrainingCompute { kind, reason, f32_flops, bf16_flops }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bf16_trains_only_on_amx_or_an_accelerator() {
        let (cpu, bf) = (Device::Cpu, Kind::BFloat16);
        // AVX2 only: emulated bf16, f32 whatever the numbers say.
        let epyc = choose_training_kind(cpu, bf, CpuBf16::Emulated, 100e9, Some(200e9));
        assert_eq!(epyc.kind, Kind::Float);
        assert!(epyc.reason.contains("emulated"), "{}", epyc.reason);
        // AVX-512-BF16 without AMX (bf16 146, f32 287 GFLOP/s): f32.
        let xeon = choose_training_kind(cpu, bf, CpuBf16::Avx512, 287e9, Some(146e9));
        assert_eq!(xeon.kind, Kind::Float);
        assert!(xeon.reason.contains("146") && xeon.reason.contains("287"), "{}", xeon.reason);
        assert_eq!(xeon.peak_flops(), 287e9);
        // AMX: bf16, and its peak is bf16's; a measurement that disagrees is noted, not obeyed.
        let amx = choose_training_kind(cpu, bf, CpuBf16::Amx, 300e9, Some(1200e9));
        assert_eq!((amx.kind, amx.peak_flops()), (bf, 1200e9));
        let odd = choose_training_kind(cpu, bf, CpuBf16::Amx, 300e9, Some(290e9));
        assert_eq!(odd.kind, bf);
        assert!(odd.reason.contains("measured slower"), "{}", odd.reason);
        // f32 asked: f32; a GPU keeps bf16.
        assert_eq!(
            choose_training_kind(cpu, Kind::Float, CpuBf16::Amx, 1.0, None).kind,
            Kind::Float
        );
        assert_eq!(
            choose_training_kind(Device::Cuda(0), bf, CpuBf16::Emulated, 2.0, Some(1.0)).kind,
            bf
        );
    }

    #[test]
    fn the_rule_follows_the_instruction_set() {
        let info = |avx512_bf16, amx_bf16| CpuInfo { avx512_bf16, amx_bf16, ..Default::default() };
        assert_eq!(CpuBf16::of(&info(false, false)), CpuBf16::Emulated);
        assert_eq!(CpuBf16::of(&info(true, false)), CpuBf16::Avx512);
        assert_eq!(CpuBf16::of(&info(true, true)), CpuBf16::Amx);
    }

    #[test]
    fn a_gemm_is_measured() {
        let f = matmul_flops(Device::Cpu, Kind::Float, 256, 2);
        // Any CPU that runs the tests multiplies faster than 100 MFLOP/s and slower than
        // 100 TFLOP/s; a wrong FLOP count or clock would leave that range.
        assert!((1e8..1e14).contains(&f), "{f}");
    }
}
