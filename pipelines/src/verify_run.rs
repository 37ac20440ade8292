//! `spice verify-run`: check every committed folder of a run against its manifests — parts,
//! sizes, content digests, inputs — and say what must be redone. `--repair` marks the damaged
//! parts unfinished, so the next `spice iterate` (or Slurm submission) redoes exactly those and
//! whatever depended on them.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use spice_schemas::{
    integrity::{check_folder, FolderCheck},
    layout::RunLayout,
};

#[derive(clap::Args)]
pub struct VerifyRunArgs {
    /// Run folder (also accepted as `--run`).
    #[arg(value_name = "RUN", required_unless_present = "run")]
    pub run_pos: Option<PathBuf>,
    #[arg(long, conflicts_with = "run_pos")]
    pub run: Option<PathBuf>,
    /// Mark the damaged parts unfinished (their manifests are renamed to
    /// `.corrupt-<name>`), so that the next `spice iterate` on the run redoes them.
    #[arg(long)]
    pub repair: bool,
    /// One JSON object per folder on stdout instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// One folder's line of the report.
#[derive(serde::Serialize)]
struct Row {
    folder: String,
    state: &'static str,
    #[serde(flatten)]
    check: FolderCheck,
}

impl Row {
    fn state_of(check: &FolderCheck) -> &'static str {
        if !check.damaged.is_empty() {
            "damaged"
        } else if check.parts_expected == 0 {
            "unfinished"
        } else if !check.complete() {
            "incomplete"
        } else if !check.stale_inputs.is_empty() {
            "stale"
        } else if check.pruned {
            "pruned"
        } else {
            "ok"
        }
    }
}

pub fn run(args: &VerifyRunArgs) -> Result<()> {
    let root = args.run.clone().or(args.run_pos.clone()).expect("clap requires one");
    if !root.join("run.toml").is_file() {
        bail!("{} is not a run folder (it has no run.toml)", root.display());
    }
    let t0 = Instant::now();
    let mut rows = Vec::new();
    for dir in output_folders(&root)? {
        let rel = dir.strip_prefix(&root).unwrap_or(&dir).display().to_string();
        if !args.json {
            eprint!("checking {rel} … ");
        }
        let check = check_folder(&dir, &root).with_context(|| format!("checking {rel}"))?;
        let state = Row::state_of(&check);
        if !args.json {
            eprintln!("{state}");
        }
        rows.push(Row { folder: rel, state, check });
    }
    if args.json {
        for r in &rows {
            println!("{}", serde_json::to_string(r)?);
        }
    } else {
        print!("{}", table(&rows));
    }

    let damaged: Vec<&Row> = rows.iter().filter(|r| r.state == "damaged").collect();
    let bytes: u64 = rows.iter().map(|r| r.check.bytes).sum();
    eprintln!(
        "verify-run: {} folder(s), {} file(s), {:.2} GB digested in {:.1} s",
        rows.len(),
        rows.iter().map(|r| r.check.files).sum::<u64>(),
        bytes as f64 / 1e9,
        t0.elapsed().as_secs_f64()
    );
    for r in rows.iter().filter(|r| r.state == "stale") {
        eprintln!(
            "  {}: inputs changed since it ran ({}); the next `spice iterate` redoes it",
            r.folder,
            r.check.stale_inputs.join(", ")
        );
    }
    if damaged.is_empty() {
        eprintln!("verify-run: every committed file matches its manifest");
        return Ok(());
    }
    eprintln!("must be redone:");
    for r in &damaged {
        for d in &r.check.damaged {
            eprintln!("  {}/{} (stage `{}`): {}", r.folder, d.file, d.stage, d.state);
        }
    }
    if args.repair {
        for d in damaged.iter().flat_map(|r| &r.check.damaged) {
            mark_unfinished(&d.manifest)?;
        }
        eprintln!(
            "verify-run: the damaged parts are marked unfinished; run the same `spice iterate \
             --run {}` (or `spice slurm iterate`) to redo them and what depends on them",
            root.display()
        );
        Ok(())
    } else {
        bail!(
            "{} damaged folder(s) in {}: rerun with --repair to mark their parts unfinished, then \
             `spice iterate --run {}` redoes them (or rerun each producing stage with --force)",
            damaged.len(),
            root.display(),
            root.display()
        )
    }
}

/// The run's output folders in stage order: `chunks/`, then every folder of each iteration.
fn output_folders(root: &Path) -> Result<Vec<PathBuf>> {
    let layout = RunLayout::new(root);
    let mut dirs = vec![layout.chunks()];
    for iter in layout.iterations() {
        let dir = layout.iter_dir(iter);
        let mut sub: Vec<PathBuf> = std::fs::read_dir(&dir)
            .with_context(|| format!("listing {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir() && !is_temporary(p))
            .collect();
        sub.sort_by_key(|p| stage_rank(p));
        dirs.extend(sub);
    }
    // Cross-play cells: `crossplay/challenger-C/{challenger,tasks}` and
    // `crossplay/challenger-C/reasoner-R/{rollouts,scored}`.
    let subdirs = |d: &Path| -> Result<Vec<PathBuf>> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(d)
            .with_context(|| format!("listing {}", d.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir() && !is_temporary(p))
            .collect();
        v.sort_by_key(|p| stage_rank(p));
        Ok(v)
    };
    let crossplay = root.join("crossplay");
    if crossplay.is_dir() {
        let mut challengers = subdirs(&crossplay)?;
        challengers.sort();
        for c in challengers {
            for d in subdirs(&c)? {
                if d.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("reasoner-"))
                {
                    dirs.extend(subdirs(&d)?);
                } else {
                    dirs.push(d);
                }
            }
        }
    }
    Ok(dirs.into_iter().filter(|d| d.is_dir()).collect())
}

fn is_temporary(p: &Path) -> bool {
    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    name.starts_with('.') || name.ends_with(".tmp")
}

/// Folders in the order the stages write them; others after, by name.
fn stage_rank(p: &Path) -> (usize, String) {
    const ORDER: [&str; 9] = [
        "eval",
        "challenger",
        "tasks",
        "rollouts",
        "scored",
        "update",
        "optimizer",
        "checkpoint",
        "eval-checkpoint",
    ];
    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
    (ORDER.iter().position(|o| *o == name).unwrap_or(ORDER.len()), name)
}

/// Rename a damaged part's manifest out of the way: the part reads as unfinished, and the
/// record stays beside it for whoever investigates.
fn mark_unfinished(manifest: &Path) -> Result<()> {
    let name = manifest.file_name().and_then(|n| n.to_str()).unwrap_or("_manifest.json");
    let aside = manifest.with_file_name(format!(".corrupt-{name}"));
    std::fs::rename(manifest, &aside)
        .with_context(|| format!("moving {} aside", manifest.display()))?;
    eprintln!("  marked unfinished: {} (record kept as {})", manifest.display(), aside.display());
    Ok(())
}

fn table(rows: &[Row]) -> String {
    let width = rows.iter().map(|r| r.folder.len()).max().unwrap_or(6).max(6);
    let mut out =
        format!("{:<width$}  {:>5}  {:>5}  {:>10}  state\n", "folder", "parts", "files", "MB");
    for r in rows {
        let parts = if r.check.parts_expected > 0 {
            format!("{}/{}", r.check.parts, r.check.parts_expected)
        } else {
            "-".into()
        };
        out.push_str(&format!(
            "{:<width$}  {:>5}  {:>5}  {:>10.1}  {}\n",
            r.folder,
            parts,
            r.check.files,
            r.check.bytes as f64 / 1e6,
            r.state
        ));
    }
    out
}
