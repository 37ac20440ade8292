//! AdamW over the policy's f32 master weights, written out so its state can be saved and
//! restored (tch's optimizers cannot save theirs). Same arithmetic as `torch.optim.AdamW`.
//!
//! Sharded (ZeRO stage 1): a data-parallel rank keeps the moments of only the elements it owns
//! ([`Partition`]), clips with the norm summed over ranks and updates only those elements; the
//! caller reduce-scatters the gradients before and all-gathers the weights after. Each rank
//! saves its own shard file, and the state reloads at any world size: every saved tensor names
//! the parameter and the first element it holds.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use safetensors::{Dtype, SafeTensors};
use serde::{Deserialize, Serialize};
use tch::{nn::VarStore, Device, Kind, Tensor};

use crate::partition::{Partition, Piece, BUCKET_ELEMENTS};

/// The state file of an unsharded optimizer.
pub const STATE_FILE: &str = "optimizer.safetensors";
pub const META_FILE: &str = "optimizer.json";

/// The state file of shard `rank` of `world` ([`STATE_FILE`] when there is one shard).
pub fn state_file(rank: usize, world: usize) -> String {
    if world == 1 {
        STATE_FILE.to_string()
    } else {
        format!("optimizer-rank{rank:05}-of-{world:05}.safetensors")
    }
}

/// Whether `dir` holds AdamW state: its settings file and every state file it names.
pub fn has_state(dir: &Path) -> bool {
    read_meta(dir).is_ok_and(|m| {
        m.shards >= 1 && (0..m.shards).all(|r| dir.join(state_file(r, m.shards)).is_file())
    })
}

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
    /// State files, one per rank that saved (files written before sharding hold one).
    #[serde(default = "one")]
    shards: usize,
}

fn one() -> usize {
    1
}

fn read_meta(dir: &Path) -> Result<Meta> {
    let path = dir.join(META_FILE);
    serde_json::from_str(
        &std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?,
    )
    .with_context(|| format!("parsing {}", path.display()))
}

/// The moments of one parameter's elements that this optimizer updates: all of them, or
/// (sharded) a run of its flattened elements.
struct Slot {
    /// Index into the sorted parameters.
    param: usize,
    /// `None`: the whole parameter, moments in its shape; else a run, moments flat.
    piece: Option<Piece>,
    m: Tensor,
    v: Tensor,
}

impl Slot {
    /// The slot's elements of `t` (the parameter or its gradient), as a view.
    fn of(&self, t: &Tensor) -> Tensor {
        match self.piece {
            None => t.shallow_clone(),
            Some(p) => t.view([-1]).narrow(0, p.start, p.len),
        }
    }

    fn start(&self) -> i64 {
        self.piece.map_or(0, |p| p.start)
    }

    fn len(&self) -> i64 {
        self.m.numel() as i64
    }
}

pub struct AdamW {
    pub config: AdamWConfig,
    /// Updates taken so far (bias correction uses it).
    pub step: i64,
    /// Trainable variables by name, sorted.
    params: Vec<(String, Tensor)>,
    /// The elements this optimizer updates, with their moments.
    slots: Vec<Slot>,
    /// Sharded: the partition and this rank.
    shard: Option<(Partition, usize)>,
}

impl AdamW {
    /// AdamW over every trainable variable of `vs`.
    pub fn new(vs: &VarStore, config: AdamWConfig) -> AdamW {
        let params = sorted_trainable(vs);
        let slots = (0..params.len())
            .map(|i| {
                let p = &params[i].1;
                Slot { param: i, piece: None, m: p.zeros_like(), v: p.zeros_like() }
            })
            .collect();
        AdamW { config, step: 0, params, slots, shard: None }
    }

    /// Rank `rank` of `world` under ZeRO stage 1: moments for only the elements the rank
    /// owns. With `world` 1 it is [`AdamW::new`].
    pub fn sharded(vs: &VarStore, config: AdamWConfig, rank: usize, world: usize) -> AdamW {
        if world == 1 {
            return AdamW::new(vs, config);
        }
        let params = sorted_trainable(vs);
        let sizes: Vec<i64> = params.iter().map(|(_, t)| t.numel() as i64).collect();
        let part = Partition::new(&sizes, world, BUCKET_ELEMENTS);
        let slots = part
            .owned_by(rank)
            .into_iter()
            .map(|piece| {
                let p = &params[piece.param].1;
                let zeros = || Tensor::zeros([piece.len], (p.kind(), p.device()));
                Slot { param: piece.param, piece: Some(piece), m: zeros(), v: zeros() }
            })
            .collect();
        AdamW { config, step: 0, params, slots, shard: Some((part, rank)) }
    }

    /// The trainable variables, in the sorted-name order every rank shares (what a
    /// data-parallel step reduces the gradients of).
    pub fn parameters(&self) -> impl Iterator<Item = (&str, &Tensor)> {
        self.params.iter().map(|(n, p)| (n.as_str(), p))
    }

    /// The partition and this rank, when sharded over more than one rank.
    pub fn shard(&self) -> Option<(&Partition, usize)> {
        self.shard.as_ref().map(|(p, r)| (p, *r))
    }

    /// Elements whose moments this optimizer holds (all of them unless sharded).
    pub fn state_elements(&self) -> i64 {
        self.slots.iter().map(Slot::len).sum()
    }

    pub fn zero_grad(&mut self) {
        for (_, p) in &mut self.params {
            p.zero_grad();
        }
    }

    /// Scale gradients so their global L2 norm is at most `max_norm` (as
    /// `torch.nn.utils.clip_grad_norm_`); returns the norm before clipping.
    pub fn clip_grad_norm(&mut self, max_norm: f64) -> f64 {
        self.clip_grad_norm_with(max_norm, &mut |sq| Ok(sq)).expect("no reduction to fail")
    }

    /// [`AdamW::clip_grad_norm`] over the elements this optimizer updates, with `sum_ranks`
    /// adding the squared norms of every rank's shard.
    pub fn clip_grad_norm_with(
        &mut self,
        max_norm: f64,
        sum_ranks: &mut dyn FnMut(f64) -> Result<f64>,
    ) -> Result<f64> {
        let grads: Vec<Tensor> = self.defined_grads().collect();
        let local = tch::no_grad(|| {
            if grads.is_empty() {
                return 0.0;
            }
            let sq: Vec<Tensor> = grads.iter().map(|g| g.square().sum(Kind::Double)).collect();
            Tensor::stack(&sq, 0).sum(Kind::Double).double_value(&[])
        });
        let total = sum_ranks(local)?.sqrt();
        let coef = max_norm / (total + 1e-6);
        if coef < 1.0 {
            tch::no_grad(|| {
                for mut g in grads {
                    let _ = g.g_mul_scalar_(coef);
                }
            });
        }
        Ok(total)
    }

    /// Each slot's elements of its parameter's gradient, for the slots that have one.
    fn defined_grads(&self) -> impl Iterator<Item = Tensor> + '_ {
        self.slots.iter().filter_map(|s| {
            let g = self.params[s.param].1.grad();
            g.defined().then(|| s.of(&g))
        })
    }

    /// One AdamW update of every element this optimizer holds that has a gradient.
    pub fn step(&mut self) {
        self.step += 1;
        let c = self.config;
        let t = self.step as f64;
        let bc1 = 1.0 - c.beta1.powf(t);
        let bc2 = 1.0 - c.beta2.powf(t);
        tch::no_grad(|| {
            for slot in &mut self.slots {
                let param = &self.params[slot.param].1;
                let g = param.grad();
                if !g.defined() {
                    continue;
                }
                let (mut p, g) = (slot.of(param), slot.of(&g));
                let (m, v) = (&mut slot.m, &mut slot.v);
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
    /// (`optimizer.json`) into `dir`. A sharded optimizer saves with [`AdamW::save_shard`] on
    /// every rank and [`AdamW::save_meta`] on one.
    pub fn save(&self, dir: &Path) -> Result<()> {
        if self.shard.is_some() {
            bail!("a sharded optimizer is saved shard by shard (save_shard on every rank)");
        }
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        self.save_shard(dir)?;
        self.save_meta(dir)
    }

    /// Write this rank's moments into its state file in `dir` ([`state_file`]). A tensor
    /// holding a whole parameter is named `exp_avg.<name>` (`exp_avg_sq.<name>`) in the
    /// parameter's shape; a run of its flattened elements from element s is named
    /// `exp_avg.<name>@s`, flat.
    pub fn save_shard(&self, dir: &Path) -> Result<()> {
        let mut named: Vec<(String, Tensor)> = Vec::new();
        for slot in &self.slots {
            let (name, param) = &self.params[slot.param];
            let whole = slot.len() == param.numel() as i64;
            for (prefix, t) in [("exp_avg", &slot.m), ("exp_avg_sq", &slot.v)] {
                let (key, t) = if whole {
                    (format!("{prefix}.{name}"), t.view(param.size().as_slice()))
                } else {
                    (format!("{prefix}.{name}@{}", slot.start()), t.shallow_clone())
                };
                named.push((key, t.to_device(Device::Cpu)));
            }
        }
        let (rank, world) = self.shard.as_ref().map_or((0, 1), |(p, r)| (*r, p.world));
        let path = dir.join(state_file(rank, world));
        Tensor::write_safetensors(&named, &path)
            .with_context(|| format!("writing optimizer state {}", path.display()))
    }

    /// Write the step count, the settings and the number of state files into `dir`.
    pub fn save_meta(&self, dir: &Path) -> Result<()> {
        let shards = self.shard.as_ref().map_or(1, |(p, _)| p.world);
        let meta = Meta { step: self.step, config: self.config, shards };
        let mpath = dir.join(META_FILE);
        std::fs::write(&mpath, serde_json::to_string_pretty(&meta)?)
            .with_context(|| format!("writing {}", mpath.display()))
    }

    /// Restore what [`AdamW::save`] (or every rank's [`AdamW::save_shard`]) wrote, at any
    /// world size: every element this optimizer holds must be in exactly one saved tensor.
    /// The settings are taken from the file unless `keep_config` (to change e.g. the lr).
    pub fn load(&mut self, dir: &Path, keep_config: bool) -> Result<()> {
        let meta = read_meta(dir)?;
        let index: HashMap<&str, usize> =
            self.params.iter().enumerate().map(|(i, (n, _))| (n.as_str(), i)).collect();
        let mut slots_of: Vec<Vec<usize>> = vec![Vec::new(); self.params.len()];
        for (k, s) in self.slots.iter().enumerate() {
            slots_of[s.param].push(k);
        }
        // Elements restored per slot, moment by moment.
        let mut covered = vec![[0i64; 2]; self.slots.len()];
        for r in 0..meta.shards {
            let path = dir.join(state_file(r, meta.shards));
            let bytes = std::fs::read(&path)
                .with_context(|| format!("reading optimizer state {}", path.display()))?;
            let file = SafeTensors::deserialize(&bytes)
                .with_context(|| format!("parsing optimizer state {}", path.display()))?;
            for (key, view) in file.tensors() {
                let err = |what: String| anyhow::anyhow!("{}: `{key}` {what}", path.display());
                let (moment, rest) = if let Some(rest) = key.strip_prefix("exp_avg_sq.") {
                    (1, rest)
                } else if let Some(rest) = key.strip_prefix("exp_avg.") {
                    (0, rest)
                } else {
                    return Err(err("is not an AdamW moment (exp_avg.*, exp_avg_sq.*)".into()));
                };
                let (name, start) = match rest.rsplit_once('@') {
                    Some((n, s)) => {
                        (n, s.parse::<i64>().map_err(|_| err(format!("has a bad offset `{s}`")))?)
                    }
                    None => (rest, 0),
                };
                let Some(&param) = index.get(name) else {
                    return Err(err("names no trainable variable of this model".into()));
                };
                if view.dtype() != Dtype::F32 {
                    return Err(err(format!("is {:?}, not F32", view.dtype())));
                }
                let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
                let len: i64 = shape.iter().product();
                let p = &self.params[param].1;
                if !rest.contains('@') && shape != p.size() {
                    return Err(err(format!("has shape {shape:?}, variable has {:?}", p.size())));
                }
                if start + len > p.numel() as i64 {
                    return Err(err(format!(
                        "holds elements {start}..{} of a variable of {}",
                        start + len,
                        p.numel()
                    )));
                }
                let data = view.data();
                tch::no_grad(|| {
                    for &k in &slots_of[param] {
                        let slot = &self.slots[k];
                        let (a, z) =
                            (start.max(slot.start()), (start + len).min(slot.start() + slot.len()));
                        if a >= z {
                            continue;
                        }
                        let src = &data[((a - start) * 4) as usize..((z - start) * 4) as usize];
                        let src = Tensor::from_data_size(src, &[z - a], Kind::Float);
                        let dst = if moment == 0 { &slot.m } else { &slot.v };
                        dst.view([-1]).narrow(0, a - slot.start(), z - a).copy_(&src);
                        covered[k][moment] += z - a;
                    }
                });
            }
        }
        for (slot, c) in self.slots.iter().zip(&covered) {
            for (moment, prefix) in ["exp_avg", "exp_avg_sq"].into_iter().enumerate() {
                if c[moment] != slot.len() {
                    bail!(
                        "{}: the saved state covers {} of the {} elements {}..{} of `{prefix}.{}` \
                         (missing or overlapping tensors)",
                        dir.display(),
                        c[moment],
                        slot.len(),
                        slot.start(),
                        slot.start() + slot.len(),
                        self.params[slot.param].0
                    );
                }
            }
        }
        self.step = meta.step;
        if !keep_config {
            self.config = meta.config;
        }
        Ok(())
    }
}

/// The trainable variables of `vs`, sorted by name (the order every rank shares).
fn sorted_trainable(vs: &VarStore) -> Vec<(String, Tensor)> {
    let mut vars: Vec<(String, Tensor)> =
        vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    vars
}
