//! The machine's matmul throughput, measured in the process that is compared with it, and
//! the compute dtype of training chosen from it.
//!
//! A training step is GEMMs: its model FLOP/s (6 × parameters × tokens per second, forward
//! and backward, recomputation not counted) over the GEMM peak measured in the same run is
//! the share of the machine the update uses. The same measurement decides the training
//! dtype on a CPU: bf16 is asked for to be fast, and on some CPUs it is not — libtorch
//! emulates bf16 GEMMs on CPUs without native bf16 (several times slower than f32), and on
//! an Intel Xeon with AVX-512-BF16 but no AMX its bf16 2048³ GEMM ran at 146 GFLOP/s against
//! 287 for f32. The update then computes in f32 (master weights are f32 anyway).

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
fn sync(device: Device) {
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
        let native = device != Device::Cpu || CpuInfo::get().native_bf16();
        let mut c = choose_training_kind(device, requested, native, f32_flops, bf16_flops);
        // The override that keeps emulated bf16 on a CPU (to test that path) wins.
        if requested == Kind::BFloat16 && std::env::var_os("SPICE_LM_FORCE_BF16").is_some() {
            c.kind = Kind::BFloat16;
            c.reason = "bf16: SPICE_LM_FORCE_BF16 is set".into();
        }
        c
    }
}

/// The training dtype for `requested` on `device`, given whether bf16 GEMMs are native there
/// and their measured rates: bf16 only where asked for and (on a CPU) at least as fast as
/// f32. A GPU keeps what was asked for: its bf16 tensor cores are the point, and a square
/// GEMM does not speak for the memory bf16 saves.
pub fn choose_training_kind(
    device: Device,
    requested: Kind,
    native_bf16: bool,
    f32_flops: f64,
    bf16_flops: Option<f64>,
) -> TrainingCompute {
    let gf = |x: f64| x / 1e9;
    let (kind, reason) = match (requested, bf16_flops) {
        (Kind::BFloat16, _) if device != Device::Cpu => {
            (Kind::BFloat16, "bf16 as asked (an accelerator)".to_string())
        }
        (Kind::BFloat16, Some(b)) if !native_bf16 => (
            Kind::Float,
            format!(
                "f32: this CPU has no native bf16 GEMMs (avx512_bf16/amx); bf16 measured \
                 {:.0} GFLOP/s against {:.0} in f32",
                gf(b),
                gf(f32_flops)
            ),
        ),
        (Kind::BFloat16, Some(b)) if b < f32_flops => (
            Kind::Float,
            format!(
                "f32: bf16 GEMMs are slower than f32 on this CPU ({:.0} against {:.0} GFLOP/s)",
                gf(b),
                gf(f32_flops)
            ),
        ),
        (Kind::BFloat16, Some(b)) => (
            Kind::BFloat16,
            format!(
                "bf16: as fast as f32 or faster here ({:.0} against {:.0} GFLOP/s)",
                gf(b),
                gf(f32_flops)
            ),
        ),
        (kind, _) => (kind, format!("{kind:?} as asked")),
    };
    TrainingCompute { kind, reason, f32_flops, bf16_flops }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bf16_trains_only_where_it_is_native_and_not_slower() {
        let cpu = Device::Cpu;
        let bf = Kind::BFloat16;
        // AVX2 only: emulated bf16, f32 whatever the numbers say.
        assert_eq!(choose_training_kind(cpu, bf, false, 100e9, Some(200e9)).kind, Kind::Float);
        // AVX-512-BF16 without AMX (bf16 146, f32 287 GFLOP/s): f32.
        let xeon = choose_training_kind(cpu, bf, true, 287e9, Some(146e9));
        assert_eq!(xeon.kind, Kind::Float);
        assert!(xeon.reason.contains("146") && xeon.reason.contains("287"), "{}", xeon.reason);
        assert_eq!(xeon.peak_flops(), 287e9);
        // AMX: bf16, and its peak is bf16's.
        let amx = choose_training_kind(cpu, bf, true, 300e9, Some(1200e9));
        assert_eq!((amx.kind, amx.peak_flops()), (bf, 1200e9));
        // f32 asked: f32; a GPU keeps bf16.
        assert_eq!(choose_training_kind(cpu, Kind::Float, true, 1.0, None).kind, Kind::Float);
        assert_eq!(choose_training_kind(Device::Cuda(0), bf, true, 2.0, Some(1.0)).kind, bf);
    }

    #[test]
    fn a_gemm_is_measured() {
        let f = matmul_flops(Device::Cpu, Kind::Float, 256, 2);
        // Any CPU that runs the tests multiplies faster than 100 MFLOP/s and slower than
        // 100 TFLOP/s; a wrong FLOP count or clock would leave that range.
        assert!((1e8..1e14).contains(&f), "{f}");
    }
}
