//! Reading a Hugging Face model folder: `config.json`, weights in `model.safetensors` or
//! shards listed by `model.safetensors.index.json`, and `generation_config.json` (EOS ids).

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use tch::Tensor;

use crate::config::{ids_of, Config};

pub const CONFIG: &str = "config.json";
pub const WEIGHTS: &str = "model.safetensors";
pub const WEIGHTS_INDEX: &str = "model.safetensors.index.json";
pub const TOKENIZER: &str = "tokenizer.json";
pub const GENERATION_CONFIG: &str = "generation_config.json";

/// A file of the folder that must exist, or an error naming it and the folder.
pub fn required(dir: &Path, name: &str) -> Result<PathBuf> {
    let p = dir.join(name);
    if !p.is_file() {
        bail!(
            "model folder {} has no {name}: expected a Hugging Face model folder \
             (config.json, model.safetensors, tokenizer.json, tokenizer_config.json)",
            dir.display()
        );
    }
    Ok(p)
}

pub fn read_config(dir: &Path) -> Result<Config> {
    Config::from_file(&required(dir, CONFIG)?)
}

/// The safetensors files holding the weights: the single file, or every shard named by the
/// index (each must exist).
pub fn weight_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let single = dir.join(WEIGHTS);
    if single.is_file() {
        return Ok(vec![single]);
    }
    let index_path = dir.join(WEIGHTS_INDEX);
    if !index_path.is_file() {
        bail!(
            "model folder {} has neither {WEIGHTS} nor {WEIGHTS_INDEX} (sharded weights)",
            dir.display()
        );
    }
    let index: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&index_path)
            .with_context(|| format!("reading {}", index_path.display()))?,
    )
    .with_context(|| format!("parsing {}", index_path.display()))?;
    let map = index["weight_map"]
        .as_object()
        .with_context(|| format!("{}: field `weight_map` is missing", index_path.display()))?;
    let shards: BTreeSet<&str> = map.values().filter_map(|v| v.as_str()).collect();
    shards
        .into_iter()
        .map(|s| {
            required(dir, s).with_context(|| format!("shard listed in {}", index_path.display()))
        })
        .collect()
}

/// Every tensor of the checkpoint, by name, on the CPU in its stored dtype.
pub fn read_weights(dir: &Path) -> Result<HashMap<String, Tensor>> {
    let mut all = HashMap::new();
    for file in weight_files(dir)? {
        let tensors = Tensor::read_safetensors(&file)
            .with_context(|| format!("reading weights {}", file.display()))?;
        for (name, t) in tensors {
            if all.insert(name.clone(), t).is_some() {
                bail!("tensor `{name}` appears twice (again in {})", file.display());
            }
        }
    }
    Ok(all)
}

/// EOS ids: `generation_config.json`'s `eos_token_id` (number or list) when the file exists,
/// together with config.json's.
pub fn eos_ids(dir: &Path, cfg: &Config) -> Result<Vec<u32>> {
    let mut ids = cfg.eos_ids();
    let p = dir.join(GENERATION_CONFIG);
    if p.is_file() {
        let v: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?,
        )
        .with_context(|| format!("parsing {}", p.display()))?;
        for id in ids_of(v.get("eos_token_id")) {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let e = read_config(dir.path()).unwrap_err();
        assert!(format!("{e:#}").contains("config.json"));
        let e = weight_files(dir.path()).unwrap_err();
        assert!(format!("{e:#}").contains("model.safetensors"));
        std::fs::write(
            dir.path().join(WEIGHTS_INDEX),
            r#"{"weight_map": {"a": "model-00001-of-00002.safetensors"}}"#,
        )
        .unwrap();
        let e = weight_files(dir.path()).unwrap_err();
        assert!(format!("{e:#}").contains("model-00001-of-00002.safetensors"), "{e:#}");
    }
}
