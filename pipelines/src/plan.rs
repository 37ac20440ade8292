//! The stage invocations of a run, in order: what the local driver runs as processes (and
//! what a scheduler would submit as jobs).

use std::path::{Path, PathBuf};

use spice_schemas::RunConfig;

/// One stage of an iteration, possibly split into parts (`--shard I/N`).
#[derive(Debug, Clone, PartialEq)]
pub struct StageCall {
    /// Short name for logs and summaries: `chunk`, `challenge`, `filter`, …
    pub name: &'static str,
    /// Binary and leading subcommand.
    pub bin: &'static str,
    pub subcommand: Option<&'static str>,
    /// Iteration, or None for the run-level chunking.
    pub iter: Option<u32>,
    /// Parts this stage is split into (1 = not sharded).
    pub parts: u32,
    /// The folder whose manifests say whether the stage is done.
    pub output: PathBuf,
}

impl StageCall {
    /// Command-line arguments of part `part`.
    pub fn args(&self, run: &Path, part: u32, device: Option<&str>, force: bool) -> Vec<String> {
        let mut a: Vec<String> = self.subcommand.iter().map(|s| s.to_string()).collect();
        a.extend(["--run".to_string(), run.display().to_string()]);
        if let Some(i) = self.iter {
            a.extend(["--iter".to_string(), i.to_string()]);
        }
        if self.parts > 1 {
            a.extend(["--shard".to_string(), format!("{part}/{}", self.parts)]);
        }
        if let Some(d) = device {
            a.extend(["--device".to_string(), d.to_string()]);
        }
        if force {
            a.push("--force".to_string());
        }
        a
    }
}

/// The run-level stage: chunking the corpus once for all iterations.
pub fn chunk_call(run: &Path) -> StageCall {
    StageCall { name: "chunk", bin: "spice-chunk", subcommand: None, iter: None, parts: 1, output: run.join("chunks") }
}

/// The stages of iteration `iter`: challenge → filter → rollout → score → update.
/// Generation stages are split into `run.shards` parts.
pub fn iteration_calls(run: &Path, cfg: &RunConfig, iter: u32) -> Vec<StageCall> {
    let dir = run.join(format!("iter-{iter:04}"));
    let n = cfg.run.shards.max(1);
    let call = |name, bin, subcommand, parts, out: &str| StageCall {
        name,
        bin,
        subcommand,
        iter: Some(iter),
        parts,
        output: dir.join(out),
    };
    vec![
        call("challenge", "spice-challenge", None, n, "challenger"),
        call("filter", "spice-verify", Some("filter"), 1, "tasks"),
        call("rollout", "spice-rollout", None, n, "rollouts"),
        call("score", "spice-verify", Some("score"), 1, "scored"),
        call("update", "spice-update", None, 1, "update"),
    ]
}

/// Every stage binary a run needs.
pub const BINARIES: &[&str] = &["spice-chunk", "spice-challenge", "spice-verify", "spice-rollout", "spice-update"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sharded_stages_get_parts_and_flags() {
        let mut cfg = RunConfig::default();
        cfg.run.shards = 3;
        let calls = iteration_calls(Path::new("r"), &cfg, 2);
        let names: Vec<&str> = calls.iter().map(|c| c.name).collect();
        assert_eq!(names, ["challenge", "filter", "rollout", "score", "update"]);
        assert_eq!(calls[0].parts, 3);
        assert_eq!(calls[1].parts, 1);
        assert_eq!(
            calls[0].args(Path::new("r"), 1, Some("cpu"), true),
            ["--run", "r", "--iter", "2", "--shard", "1/3", "--device", "cpu", "--force"]
        );
        assert_eq!(calls[3].args(Path::new("r"), 0, None, false), ["score", "--run", "r", "--iter", "2"]);
        assert_eq!(calls[4].output, Path::new("r/iter-0002/update"));
    }
}
