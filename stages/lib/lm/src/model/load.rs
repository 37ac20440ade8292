//! Checkpoint tensors turned into the model's f32 variables, by checkpoint name (what
//! candle's `VarBuilder` does for its models).

use std::collections::HashMap;

use anyhow::{bail, Context, Result};
use tch::{nn, Kind, Tensor};

/// The tensors of a checkpoint not yet taken by a module, and the `VarStore` they go to.
pub struct Vars<'a> {
    tensors: HashMap<String, Tensor>,
    root: nn::Path<'a>,
}

impl<'a> Vars<'a> {
    pub fn new(tensors: HashMap<String, Tensor>, root: nn::Path<'a>) -> Vars<'a> {
        Vars { tensors, root }
    }

    /// Take tensor `name`, which must have `shape`, as an f32 variable of the same name
    /// (any float dtype in the file). Missing or misshapen tensors are errors naming it.
    pub fn get(&mut self, name: &str, shape: &[i64]) -> Result<Tensor> {
        let t = self
            .tensors
            .remove(name)
            .with_context(|| format!("checkpoint has no tensor `{name}`"))?;
        if t.size() != shape {
            bail!("tensor `{name}` has shape {:?}, config.json implies {shape:?}", t.size());
        }
        let t = t.to_kind(Kind::Float);
        // tch joins path parts with '.', so the VarStore name is the checkpoint name.
        let (dir, leaf) = name.rsplit_once('.').unwrap();
        let p = dir.split('.').fold(self.root.clone(), |p, part| p / part);
        Ok(p.var_copy(leaf, &t))
    }

    /// [`Vars::get`] when `on` (a config switch), else `None`.
    pub fn get_if(&mut self, on: bool, name: &str, shape: &[i64]) -> Result<Option<Tensor>> {
        if on {
            self.get(name, shape).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Drop `name` if present (a tensor the model derives instead of reading).
    pub fn skip(&mut self, name: &str) {
        self.tensors.remove(name);
    }

    /// Fail on any tensor left over. Rotary tables are derived, never trained, so those are
    /// ignored; anything else is not used by a `model_type` model.
    pub fn finish(mut self, model_type: &str) -> Result<()> {
        self.tensors.retain(|k, _| !k.ends_with("rotary_emb.inv_freq"));
        if let Some(extra) = self.tensors.keys().next() {
            bail!("checkpoint tensor `{extra}` is not used by a {model_type} model");
        }
        Ok(())
    }
}
