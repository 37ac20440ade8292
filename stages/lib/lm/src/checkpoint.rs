//! Saving the policy as a Hugging Face folder that this crate and `transformers` both load:
//! f32 `model.safetensors`, `config.json`, and the tokenizer/template files of the folder the
//! policy came from. Written to a temporary folder beside the target, then renamed into place.

use std::path::Path;

use anyhow::{Context, Result};
use tch::{Device, Tensor};

use crate::folder::{CONFIG, WEIGHTS, WEIGHTS_INDEX};
use crate::policy::Policy;

pub fn save(policy: &Policy, dir: &Path) -> Result<()> {
    let parent = dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let tmp = tempfile::Builder::new()
        .prefix(".checkpoint-")
        .tempdir_in(parent)
        .with_context(|| format!("creating a temporary folder in {}", parent.display()))?;

    // Weights: the f32 master variables under their checkpoint names. A tied head is the
    // embedding matrix and is not stored twice (transformers ties it again on load).
    let mut named: Vec<(String, Tensor)> = policy
        .var_store()
        .variables()
        .into_iter()
        .map(|(n, t)| (n, t.detach().to_device(Device::Cpu).contiguous()))
        .collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    let wpath = tmp.path().join(WEIGHTS);
    Tensor::write_safetensors(&named, &wpath)
        .with_context(|| format!("writing {}", wpath.display()))?;

    // config.json: the source's, saying the weights are now f32.
    let src = policy.source_dir();
    let cpath = src.join(CONFIG);
    let mut cfg: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&cpath).with_context(|| format!("reading {}", cpath.display()))?,
    )
    .with_context(|| format!("parsing {}", cpath.display()))?;
    if let Some(obj) = cfg.as_object_mut() {
        obj.insert("torch_dtype".into(), "float32".into());
        if obj.contains_key("dtype") {
            obj.insert("dtype".into(), "float32".into());
        }
    }
    let cout = tmp.path().join(CONFIG);
    std::fs::write(&cout, serde_json::to_string_pretty(&cfg)?)
        .with_context(|| format!("writing {}", cout.display()))?;

    // Everything else that describes the model (tokenizer, chat template, generation config).
    for entry in std::fs::read_dir(src).with_context(|| format!("listing {}", src.display()))? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let skip = name == CONFIG
            || name == WEIGHTS_INDEX
            || name.ends_with(".safetensors")
            || name.ends_with(".bin")
            || name.ends_with(".gguf")
            || name.starts_with('.')
            // A run's records, not the model's: a committed checkpoint's manifest (the new
            // folder is finished only when its own stage says so) and optimizer state.
            || (name.starts_with("_manifest") && name.ends_with(".json"))
            || name == crate::optim::META_FILE;
        if !skip && entry.file_type()?.is_file() {
            let to = tmp.path().join(&name);
            std::fs::copy(entry.path(), &to).with_context(|| {
                format!("copying {} to {}", entry.path().display(), to.display())
            })?;
        }
    }

    // Into place: an existing folder is moved aside first and removed after.
    let tmp_path = tmp.keep();
    let old = parent.join(format!(
        ".old-{}",
        dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
    ));
    let had_old = dir.exists();
    if had_old {
        let _ = std::fs::remove_dir_all(&old);
        std::fs::rename(dir, &old).with_context(|| format!("moving aside {}", dir.display()))?;
    }
    std::fs::rename(&tmp_path, dir)
        .with_context(|| format!("renaming {} to {}", tmp_path.display(), dir.display()))?;
    if had_old {
        std::fs::remove_dir_all(&old).with_context(|| format!("removing {}", old.display()))?;
    }
    Ok(())
}
