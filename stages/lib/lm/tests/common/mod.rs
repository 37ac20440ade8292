//! Shared helpers of the integration tests: fixture paths and reference tensors.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;

use spice_lm::tch::{Kind, Tensor};
use spice_lm::{Device, Policy};

pub const ARCHS: [&str; 3] = ["qwen2", "qwen3", "llama3"];

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(name)
}

pub fn tiny(arch: &str) -> PathBuf {
    fixture(&format!("tiny-{arch}"))
}

pub fn load(arch: &str, dtype: Kind) -> Policy {
    Policy::load(&tiny(arch), Device::Cpu, dtype).expect("tiny fixture loads")
}

pub fn reference(arch: &str) -> HashMap<String, Tensor> {
    Tensor::read_safetensors(tiny(arch).join("reference.safetensors"))
        .expect("reference.safetensors")
        .into_iter()
        .collect()
}

pub fn ids(t: &Tensor) -> Vec<u32> {
    Vec::<i64>::try_from(t.to_kind(Kind::Int64)).unwrap().into_iter().map(|x| x as u32).collect()
}

pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a.to_kind(Kind::Float) - b.to_kind(Kind::Float)).abs().max().double_value(&[])
}
