//! AdamW over the policy's f32 master weights, written out so its state can be saved and
//! restored (tch's optimizers cannot save theirs). Same arithmetic as `torch.optim.AdamW`.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use tch::{nn::VarStore, Device, Kind, Tensor};

pub const STATE_FILE: &str = "optimizer.safetensors";
pub const META_FILE: &str = "optimizer.json";

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AdamWConfig {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        // torch.optim.AdamW defaults, with the paper's learning rate.
        AdamWConfig { lr: 1e-6, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.01 }
    }
}

#[derive(Serialize, Deserialize)]
struct Meta {
    step: i64,
    config: AdamWConfig,
}

pub struct AdamW {
    pub config: AdamWConfig,
    /// Updates taken so far (bias correction uses it).
    pub step: i64,
    /// Trainable variables by name, sorted, with their first and second moments.
    params: Vec<(String, Tensor, Tensor, Tensor)>,
}

impl AdamW {
    pub fn new(vs: &VarStore, config: AdamWConfig) -> AdamW {
        let mut vars: Vec<(String, Tensor)> =
            vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let params = vars
            .into_iter()
            .map(|(n, t)| {
                let (m, v) = (t.zeros_like(), t.zeros_like());
                (n, t, m, v)
            })
            .collect();
        AdamW { config, step: 0, params }
    }

    /// The trainable variables, in the sorted-name order every rank shares (what a
    /// data-parallel step reduces the gradients of).
    pub fn parameters(&self) -> impl Iterator<Item = (&str, &Tensor)> {
        self.params.iter().map(|(n, p, _, _)| (n.as_str(), p))
    }

    pub fn zero_grad(&mut self) {
        for (_, p, _, _) in &mut self.params {
            p.zero_grad();
        }
    }

    /// Scale gradients so their global L2 norm is at most `max_norm` (as
    /// `torch.nn.utils.clip_grad_norm_`); returns the norm before clipping.
    pub fn clip_grad_norm(&mut self, max_norm: f64) -> f64 {
        tch::no_grad(|| {
            let grads: Vec<Tensor> =
                self.params.iter().map(|p| p.1.grad()).filter(|g| g.defined()).collect();
            if grads.is_empty() {
                return 0.0;
            }
            let sq: Vec<Tensor> = grads.iter().map(|g| g.square().sum(Kind::Double)).collect();
            let total = Tensor::stack(&sq, 0).sum(Kind::Double).sqrt().double_value(&[]);
            let coef = max_norm / (total + 1e-6);
            if coef < 1.0 {
                for mut g in grads {
                    let _ = g.g_mul_scalar_(coef);
                }
            }
            total
        })
    }

    /// One AdamW update of every variable that has a gradient.
    pub fn step(&mut self) {
        self.step += 1;
        let c = self.config;
        let t = self.step as f64;
        let bc1 = 1.0 - c.beta1.powf(t);
        let bc2 = 1.0 - c.beta2.powf(t);
        tch::no_grad(|| {
            for (_, p, m, v) in &mut self.params {
                let g = p.grad();
                if !g.defined() {
                    continue;
                }
                let _ = p.g_mul_scalar_(1.0 - c.lr * c.weight_decay);
                let _ = m.g_mul_scalar_(c.beta1);
                let _ = m.g_add_(&(&g * (1.0 - c.beta1)));
                let _ = v.g_mul_scalar_(c.beta2);
                let _ = v.g_add_(&(g.square() * (1.0 - c.beta2)));
                let denom = v.sqrt() / bc2.sqrt() + c.eps;
                let _ = p.g_add_(&(&*m / &denom * (-c.lr / bc1)));
            }
        });
    }

    /// Write the moments (`optimizer.safetensors`) and the step count and settings
    /// (`optimizer.json`) into `dir`.
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut named: Vec<(String, Tensor)> = Vec::new();
        for (n, _, m, v) in &self.params {
            named.push((format!("exp_avg.{n}"), m.to_device(Device::Cpu)));
            named.push((format!("exp_avg_sq.{n}"), v.to_device(Device::Cpu)));
        }
        let path = dir.join(STATE_FILE);
        Tensor::write_safetensors(&named, &path)
            .with_context(|| format!("writing optimizer state {}", path.display()))?;
        let meta = Meta { step: self.step, config: self.config };
        let mpath = dir.join(META_FILE);
        std::fs::write(&mpath, serde_json::to_string_pretty(&meta)?)
            .with_context(|| format!("writing {}", mpath.display()))?;
        Ok(())
    }

    /// Restore what [`AdamW::save`] wrote. Every variable must have its moments there. The
    /// settings are taken from the file unless `keep_config` (to change e.g. the lr).
    pub fn load(&mut self, dir: &Path, keep_config: bool) -> Result<()> {
        let mpath = dir.join(META_FILE);
        let meta: Meta = serde_json::from_str(
            &std::fs::read_to_string(&mpath)
                .with_context(|| format!("reading {}", mpath.display()))?,
        )
        .with_context(|| format!("parsing {}", mpath.display()))?;
        let path = dir.join(STATE_FILE);
        let mut state: HashMap<String, Tensor> = Tensor::read_safetensors(&path)
            .with_context(|| format!("reading optimizer state {}", path.display()))?
            .into_iter()
            .collect();
        tch::no_grad(|| -> Result<()> {
            for (n, p, m, v) in &mut self.params {
                for (prefix, dst) in [("exp_avg", m), ("exp_avg_sq", v)] {
                    let key = format!("{prefix}.{n}");
                    let src = state
                        .remove(&key)
                        .with_context(|| format!("{}: no tensor `{key}`", path.display()))?;
                    if src.size() != p.size() {
                        bail!(
                            "{}: `{key}` has shape {:?}, variable has {:?}",
                            path.display(),
                            src.size(),
                            p.size()
                        );
                    }
                    dst.copy_(&src);
                }
            }
            Ok(())
        })?;
        self.step = meta.step;
        if !keep_config {
            self.config = meta.config;
        }
        Ok(())
    }
}
