//! Time and throughput per stage, from the manifests (the rows do not record them).

use std::collections::BTreeMap;

use anyhow::Result;
use spice_schemas::metrics::{GenerationMetrics, UpdateMetrics};
use spice_schemas::{layout::RunLayout, Manifest};

use crate::numbers::{IterationReport, PerStage};
use crate::shards::complete;

/// What a stage's tokens/s is made of: one part's (tokens, seconds).
type Rate = fn(&Manifest) -> Result<(u64, f64)>;

fn generated(m: &Manifest) -> Result<(u64, f64)> {
    let g: GenerationMetrics = m.metrics_as()?;
    Ok((g.new_tokens, g.generation_seconds))
}

/// The largest `peak_rss_mib` of generation manifests (0, not recorded, counts as none).
fn peak_rss_mib(ms: &[Manifest]) -> Result<Option<f64>> {
    let mut peak: Option<f64> = None;
    for m in ms {
        let g: GenerationMetrics = m.metrics_as()?;
        if g.peak_rss_mib > 0.0 {
            peak = Some(peak.map_or(g.peak_rss_mib, |p| p.max(g.peak_rss_mib)));
        }
    }
    Ok(peak)
}

fn trained(m: &Manifest) -> Result<(u64, f64)> {
    let u: UpdateMetrics = m.metrics_as()?;
    Ok((u.tokens, u.train_seconds))
}

/// Folders of each stage (update's `checkpoint/` is not counted: its time is inside
/// `update/`'s, whose stage saves it), and its tokens/s, summed over parts and folders.
const STAGES: [(&str, &[&str], Option<Rate>); 6] = [
    ("challenge", &["challenger"], Some(generated)),
    ("filter", &["tasks"], None),
    ("rollout", &["rollouts"], Some(generated)),
    ("score", &["scored"], None),
    ("update", &["update"], Some(trained)),
    ("eval", &["eval", "eval-checkpoint"], Some(generated)),
];

/// The stages that generate, whose manifests record their peak memory.
const GENERATION: [&str; 3] = ["challenge", "rollout", "eval"];

pub fn fill(
    layout: &RunLayout,
    iterations: &[u32],
    reports: &mut BTreeMap<u32, IterationReport>,
) -> Result<()> {
    for &it in iterations {
        let mut minutes = PerStage::default();
        let mut rates = PerStage::default();
        let mut peaks = PerStage::default();
        for (stage, folders, rate) in STAGES {
            let mut ms: Vec<Manifest> = Vec::new();
            for f in folders {
                ms.extend(complete(&layout.folder(it, f))?.unwrap_or_default());
            }
            if ms.is_empty() {
                continue;
            }
            minutes.set(stage, Some(ms.iter().map(|m| m.seconds).sum::<f64>() / 60.0));
            if let Some(rate) = rate {
                let (mut tokens, mut seconds) = (0u64, 0.0);
                for m in &ms {
                    let (t, s) = rate(m)?;
                    (tokens, seconds) = (tokens + t, seconds + s);
                }
                rates.set(stage, (seconds > 0.0).then(|| tokens as f64 / seconds));
            }
            if GENERATION.contains(&stage) {
                peaks.set(stage, peak_rss_mib(&ms)?);
            }
        }
        let times: Vec<f64> = PerStage::STAGES.iter().filter_map(|s| minutes.get(s)).collect();
        // Updates from before the GEMM peak was measured record none.
        let mut peak_fraction = None;
        for m in complete(&layout.folder(it, "update"))?.unwrap_or_default() {
            let u: UpdateMetrics = m.metrics_as()?;
            peak_fraction = (u.model_gflops_per_second > 0.0).then_some(u.peak_fraction);
        }
        let r = reports.entry(it).or_default();
        r.update_peak_fraction = peak_fraction;
        r.iteration = it;
        r.minutes = minutes;
        r.tokens_per_second = rates;
        r.peak_rss_mib = peaks;
        r.minutes_total = (!times.is_empty()).then(|| times.iter().sum());
    }
    Ok(())
}
