//! `_manifest.json`: the success record a stage writes last into each output folder (one per
//! part when the stage is sharded).

use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::{digest::InputDigest, metrics::StageMetrics, shard::ShardSpec};

/// One output file of a stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputFile {
    /// File name inside the output folder.
    pub file: String,
    /// Rows, for Parquet shards (0 for other files).
    pub rows: u64,
    /// Size in bytes (absent, read as 0, in manifests written before sizes were recorded).
    #[serde(default)]
    pub bytes: u64,
    pub digest: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Stage binary that wrote the folder (`rollout`, `verify-score`, …).
    pub stage: String,
    /// spice-rs version of that binary.
    pub version: String,
    /// Schema id of the shards (`rollouts/1`), when the output is a shard folder.
    pub schema: Option<String>,
    pub iteration: Option<u32>,
    pub shard: ShardSpec,
    pub seed: u64,
    /// Digest of the configuration the stage ran with (its part of `run.toml`).
    pub config_digest: String,
    pub inputs: Vec<InputDigest>,
    pub outputs: Vec<OutputFile>,
    /// Digest over `outputs`' digests: what a downstream stage records as this input.
    pub output_digest: String,
    /// Total rows over `outputs`.
    pub rows: u64,
    pub started_at: String,
    pub finished_at: String,
    pub seconds: f64,
    pub host: String,
    /// The device the stage computed on (`cpu`, `cuda:0`), for stages that run the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// Stage-specific numbers (tokens/s, valid rate, skipped lines, …): one of the structs in
    /// [`crate::metrics`], read with [`Manifest::metrics_as`].
    #[serde(default)]
    pub metrics: serde_json::Map<String, serde_json::Value>,
}

impl Manifest {
    /// Read one manifest file.
    pub fn read(path: &Path) -> Result<Manifest> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading manifest {}", path.display()))?;
        serde_json::from_str(&text)
            .with_context(|| format!("{} is not a valid stage manifest", path.display()))
    }

    /// Every manifest in a folder (`_manifest.json` and `_manifest.part-*.json`), sorted by
    /// file name. An absent folder has none.
    pub fn read_all(dir: &Path) -> Result<Vec<Manifest>> {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Ok(Vec::new());
        };
        let mut paths: Vec<_> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| is_manifest_name(p))
            .collect();
        paths.sort();
        paths.iter().map(|p| Manifest::read(p)).collect()
    }

    /// The stage's metrics as their struct. A field missing from an older manifest takes its
    /// default; a field of the wrong type is an error naming it.
    pub fn metrics_as<M: StageMetrics>(&self) -> Result<M> {
        let value = serde_json::Value::Object(self.metrics.clone());
        serde_path_to_error::deserialize(value).map_err(|e| {
            anyhow::anyhow!(
                "the `{}` manifest of part {} has a bad metrics field `{}`: {}",
                self.stage,
                self.shard.index,
                e.path(),
                e.inner()
            )
        })
    }

    /// One number by name, for generic readers (tables of every metric) and tests.
    pub fn metric(&self, name: &str) -> Option<f64> {
        self.metrics.get(name).and_then(|v| v.as_f64())
    }
}

fn is_manifest_name(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("_manifest") && n.ends_with(".json"))
}

/// Whether every part of a (possibly sharded) folder has committed, and its manifests.
/// `None` while any part is missing.
pub fn folder_complete(dir: &Path) -> Result<Option<Vec<Manifest>>> {
    let manifests = Manifest::read_all(dir)?;
    let Some(first) = manifests.first() else {
        return Ok(None);
    };
    let count = first.shard.count as usize;
    let mut seen = vec![false; count];
    for m in &manifests {
        if m.shard.count as usize == count {
            seen[m.shard.index as usize] = true;
        }
    }
    Ok(seen.iter().all(|s| *s).then_some(manifests))
}

/// This machine's name, for the manifest.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".to_string())
}
