//! `spice iterate`: run every stage of N iterations as separate processes. Each stage skips
//! itself when its manifest says it is done, so running the same command again resumes a
//! run where it stopped.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use spice_schemas::{layout::RunLayout, vocab::Grounding, RunConfig};

use crate::plan::{chunk_call, eval_calls, iteration_calls, StageCall, BINARIES};
use crate::summary::summarize;
use crate::IterateArgs;

pub fn run(args: &IterateArgs, cfg: &RunConfig) -> Result<()> {
    let bin_dir = match &args.bin_dir {
        Some(d) => d.clone(),
        None => std::env::current_exe()?.parent().map(Path::to_path_buf).unwrap_or_default(),
    };
    let evaluating = cfg.eval.eval_every > 0 && !cfg.eval.benchmarks.is_empty();
    let missing: Vec<&str> = BINARIES
        .iter()
        .copied()
        .chain(evaluating.then_some("spice-eval"))
        .filter(|s| !bin_dir.join(s).exists())
        .collect();
    if !missing.is_empty() {
        bail!(
            "stage binaries missing from {}: {} (build them with `cargo build --release --workspace`, \
             or run `just setup`)",
            bin_dir.display(),
            missing.join(", ")
        );
    }
    let layout = RunLayout::new(&args.run);
    let iterations = args.iterations.unwrap_or(cfg.run.iterations);
    eprintln!(
        "spice iterate: run {} (profile `{}`), {} iteration(s), {} document(s) per iteration",
        args.run.display(),
        cfg.run.name,
        iterations,
        cfg.challenger.documents_per_iteration
    );
    let device = args.device.as_deref();
    if cfg.challenger.grounding == Grounding::Corpus {
        run_stage(&bin_dir, &args.run, &chunk_call(&args.run), device, args.force)?;
    }
    for iter in 0..iterations {
        let t0 = Instant::now();
        for call in iteration_calls(&args.run, cfg, iter)
            .into_iter()
            .chain(eval_calls(&args.run, cfg, iter))
        {
            run_stage(&bin_dir, &args.run, &call, device, args.force)?;
        }
        let s = summarize(&layout.iter_dir(iter), iter)?;
        eprintln!("{} (this session: {:.1} min)", s.line(), t0.elapsed().as_secs_f64() / 60.0);
        println!("{}", s.line());
        crate::summarize::write_run(&layout)?;
    }
    Ok(())
}

pub fn run_stage(
    bin_dir: &Path,
    run: &Path,
    call: &StageCall,
    device: Option<&str>,
    force: bool,
) -> Result<()> {
    for part in 0..call.parts {
        let bin: PathBuf = bin_dir.join(call.bin);
        let argv = call.args(run, part, device, force);
        let shown = format!("{} {}", call.bin, argv.join(" "));
        let what = match (call.iter, call.cell) {
            (_, Some(c)) => format!("crossplay {c} {}", call.name),
            (Some(i), None) => format!("iter {i:04} {}", call.name),
            (None, None) => call.name.to_string(),
        };
        let part_note =
            if call.parts > 1 { format!(" part {part}/{}", call.parts) } else { String::new() };
        eprintln!("==> {what}{part_note}: {shown}");
        let t0 = Instant::now();
        let status = Command::new(&bin)
            .args(&argv)
            .status()
            .with_context(|| format!("starting {}", bin.display()))?;
        if !status.success() {
            bail!(
                "{what}{part_note} failed ({status}) after {:.0} s. Finished stages are kept: fix \
                 the cause and run the same `spice iterate` again to resume, or run the stage \
                 alone: {shown}",
                t0.elapsed().as_secs_f64()
            );
        }
    }
    Ok(())
}
