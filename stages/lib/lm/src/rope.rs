//! Rotary position embeddings, computed as transformers does (f32 inverse frequencies,
//! `rotate_half` layout), with Llama-3 frequency scaling as a switch.

use std::f64::consts::PI;

use tch::{Device, Kind, Tensor};

use crate::config::Config;

pub struct Rope {
    /// [head_dim / 2], f32: one rotation speed per pair of dimensions.
    inv_freq: Tensor,
}

impl Rope {
    pub fn new(cfg: &Config, device: Device) -> Rope {
        let dim = cfg.head_dim() as i64;
        // transformers: 1 / base^(arange(0, dim, 2) / dim), all in f32.
        let exponents = Tensor::arange_start_step(0, dim, 2, (Kind::Int64, Device::Cpu))
            .to_kind(Kind::Float)
            / dim as f64;
        let base = Tensor::from(cfg.rope_base() as f32);
        let mut inv_freq = base.pow(&exponents).reciprocal();
        if let Some(rs) = cfg.rope_scaling_params() {
            if rs.rope_type == "llama3" {
                inv_freq = llama3_scale(
                    &inv_freq,
                    rs.factor.unwrap_or(1.0),
                    rs.low_freq_factor.unwrap_or(1.0),
                    rs.high_freq_factor.unwrap_or(4.0),
                    rs.original_max_position_embeddings.unwrap_or(8192) as f64,
                );
            }
        }
        Rope { inv_freq: inv_freq.to_device(device) }
    }

    /// cos and signed sin for `positions` [batch, seq] (Int64): each [batch, 1, seq,
    /// head_dim], f32. The sine's first half is negated, so [`apply`] needs no negation.
    pub fn cos_sin(&self, positions: &Tensor) -> (Tensor, Tensor) {
        // [batch, seq, head_dim / 2]
        let freqs = positions.to_kind(Kind::Float).unsqueeze(-1) * &self.inv_freq;
        let cos = freqs.cos();
        let sin = freqs.sin();
        (
            Tensor::cat(&[&cos, &cos], -1).unsqueeze(1),
            Tensor::cat(&[&sin.neg(), &sin], -1).unsqueeze(1),
        )
    }
}

/// Apply the rotation to `x` [batch, heads, seq, head_dim] in f32 (the result is f32), with
/// `cos` and signed `sin` from [`Rope::cos_sin`]. transformers' `x·cos + rotate_half(x)·sin`
/// with `rotate_half(x) = [-x2, x1]` is `x·cos + [x2, x1]·[-sin, sin]`: the halves swapped
/// by one `roll`, the sign folded into the table — the same products, in 4 ops instead of 7
/// (this runs twice per layer per decode step).
pub fn apply(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Tensor {
    let x = x.to_kind(Kind::Float);
    let half = x.size()[3] / 2;
    &x * cos + x.roll([half], [3]) * sin
}

/// Llama-3 scaling: long wavelengths slowed by `factor`, short ones kept, a smooth blend
/// between (transformers' `_compute_llama3_parameters`).
fn llama3_scale(inv_freq: &Tensor, factor: f64, low: f64, high: f64, old_ctx: f64) -> Tensor {
    let low_wavelen = old_ctx / low;
    let high_wavelen = old_ctx / high;
    let wavelen = inv_freq.reciprocal() * (2.0 * PI);
    let scaled = inv_freq.where_self(&wavelen.le(low_wavelen), &(inv_freq / factor));
    let smooth = (wavelen.reciprocal() * old_ctx - low) / (high - low);
    let smoothed = (smooth.ones_like() - &smooth) * &scaled / factor + &smooth * &scaled;
    let medium = wavelen.ge(high_wavelen).logical_and(&wavelen.le(low_wavelen));
    smoothed.where_self(&medium, &scaled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_keeps_norm_and_position_zero_is_identity() {
        let cfg: Config = serde_json::from_str(
            r#"{"model_type":"llama","vocab_size":4,"hidden_size":16,"intermediate_size":4,
               "num_hidden_layers":1,"num_attention_heads":2}"#,
        )
        .unwrap();
        let rope = Rope::new(&cfg, Device::Cpu);
        let x = Tensor::randn([1, 2, 3, 8], (Kind::Float, Device::Cpu));
        let (cos, sin) = rope.cos_sin(&Tensor::from_slice(&[0i64, 5, 9]).view([1, 3]));
        let y = apply(&x, &cos, &sin);
        let n0 = x.square().sum_dim_intlist(-1, false, Kind::Float);
        let n1 = y.square().sum_dim_intlist(-1, false, Kind::Float);
        assert!((n0 - n1).abs().max().double_value(&[]) < 1e-4);
        let d0 = (y.narrow(2, 0, 1) - x.narrow(2, 0, 1)).abs().max().double_value(&[]);
        assert!(d0 < 1e-6);
    }

    #[test]
    fn llama3_scaling_slows_only_long_wavelengths() {
        let inv = Tensor::from_slice(&[1.0f32, 1e-2, 1e-3, 1e-5]);
        let s = llama3_scale(&inv, 8.0, 1.0, 4.0, 8192.0);
        let v: Vec<f32> = Vec::try_from(&s).unwrap();
        assert_eq!(v[0], 1.0); // short wavelength: kept
        assert!((v[3] - 1e-5 / 8.0).abs() < 1e-9); // long wavelength: divided by factor
    }
}
