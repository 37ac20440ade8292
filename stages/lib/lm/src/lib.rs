//! The policy model of SPICE on tch (libtorch): one causal language model that plays both
//! the Challenger and the Reasoner.
//!
//! - [`Policy::load`] reads a Hugging Face folder (Llama, Qwen2, Qwen3 families);
//! - [`Policy::generate`] samples completions in batches with a KV cache;
//! - [`Policy::sequence_logprobs`] / [`Policy::accumulate_gradients`] score completions for
//!   training, with f32 master weights and bf16 or f32 compute;
//! - [`AdamW`] updates the weights and saves its state for an exact resume;
//! - [`checkpoint::save`] writes the policy back as a Hugging Face folder;
//! - [`doctor::Doctor`] reports what this machine and build give it (CUDA, CPU ISA, threads).

pub mod bench;
pub mod chat;
pub mod checkpoint;
pub mod config;
pub mod cpu;
pub mod cuda;
pub mod device;
pub mod doctor;
pub mod engine;
pub mod folder;
pub mod generate;
pub mod kv_cache;
pub mod logprobs;
pub mod model;
pub mod optim;
pub mod partition;
pub mod peak;
pub mod policy;
pub mod prefix_cache;
pub mod rope;
pub mod sample;
pub mod tokenizer;

pub use chat::ChatMessage;
pub use config::Config;
pub use device::{device_label, parse_device, parse_dtype, resolve_device, DeviceChoice};
pub use generate::{FinishReason, GenRequest, GenStats, Generation};
pub use logprobs::{forwarded_tokens, shared_prefix_order, GradOptions, ScoreRow, TokenLogprobs};
pub use optim::AdamW;
pub use peak::TrainingCompute;
pub use policy::Policy;
pub use sample::SamplingParams;
pub use tch;
pub use tch::{Device, Kind};
pub use tokenizer::Tokenizer;
