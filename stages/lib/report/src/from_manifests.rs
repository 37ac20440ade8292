//! Time and throughput per stage, from the manifests (the rows do not record them).

use std::collections::BTreeMap;

use anyhow::Result;
use spice_schemas::{layout::RunLayout, Manifest};

use crate::numbers::{IterationReport, PerStage};
use crate::shards::complete;

/// Folders of each stage (update's `checkpoint/` is not counted: its time is inside
/// `update/`'s, whose stage saves it), and the metrics its tokens/s is made of (tokens,
/// seconds), summed over parts and folders.
const STAGES: [(&str, &[&str], Option<(&str, &str)>); 6] = [
    ("challenge", &["challenger"], Some(("new_tokens", "generation_seconds"))),
    ("filter", &["tasks"], None),
    ("rollout", &["rollouts"], Some(("new_tokens", "generation_seconds"))),
    ("score", &["scored"], None),
    ("update", &["update"], Some(("tokens", "train_seconds"))),
    ("eval", &["eval", "eval-checkpoint"], Some(("new_tokens", "generation_seconds"))),
];

pub fn fill(
    layout: &RunLayout,
    iterations: &[u32],
    reports: &mut BTreeMap<u32, IterationReport>,
) -> Result<()> {
    for &it in iterations {
        let mut minutes = PerStage::default();
        let mut rates = PerStage::default();
        for (stage, folders, rate) in STAGES {
            let mut ms: Vec<Manifest> = Vec::new();
            for f in folders {
                ms.extend(complete(&layout.folder(it, f))?.unwrap_or_default());
            }
            if ms.is_empty() {
                continue;
            }
            minutes.set(stage, Some(ms.iter().map(|m| m.seconds).sum::<f64>() / 60.0));
            if let Some((tokens, seconds)) = rate {
                let sum = |k: &str| ms.iter().filter_map(|m| m.metric(k)).sum::<f64>();
                let s = sum(seconds);
                rates.set(stage, (s > 0.0).then(|| sum(tokens) / s));
            }
        }
        let times: Vec<f64> = PerStage::STAGES.iter().filter_map(|s| minutes.get(s)).collect();
        let r = reports.entry(it).or_default();
        r.iteration = it;
        r.minutes = minutes;
        r.tokens_per_second = rates;
        r.minutes_total = (!times.is_empty()).then(|| times.iter().sum());
    }
    Ok(())
}
