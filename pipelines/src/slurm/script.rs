//! One sbatch script per stage, from the template in `pipelines/slurm/stage.sbatch`: the
//! same binary and arguments the local driver runs, with the stage's resources as `#SBATCH`
//! lines and a job array over `--shard I/N` for split stages.
//!
//! Template placeholders: `what`, `job_name`, `log`, `chdir`, `sbatch` (the `#SBATCH` lines
//! of the resources), `setup` (the setup lines) and `command`, each in double braces.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use spice_schemas::config::SlurmResources;

use crate::plan::StageCall;

/// The template compiled into the driver; `--template` replaces it.
pub const TEMPLATE: &str = include_str!("../../slurm/stage.sbatch");

/// What a stage's script needs besides its resources.
pub struct ScriptInput<'a> {
    pub call: &'a StageCall,
    /// Key of the job in the run: `chunk`, `iter-0003/rollout`.
    pub key: &'a str,
    /// Absolute run folder and binary folder.
    pub run: &'a Path,
    pub bin_dir: &'a Path,
    /// Working directory of the job (relative paths in run.toml resolve against it).
    pub chdir: &'a Path,
    pub device: Option<&'a str>,
    pub force: bool,
    /// The log pattern (`%A_%a` or `%j`), see [`log_pattern`].
    pub log: &'a Path,
}

/// `<logs>/<name>-%A_%a.log` for an array (master job id, task), `<logs>/<name>-%j.log`
/// otherwise; [`log_path`] resolves it for a job.
pub fn log_pattern(logs: &Path, name: &str, parts: u32) -> PathBuf {
    logs.join(if parts > 1 { format!("{name}-%A_%a.log") } else { format!("{name}-%j.log") })
}

/// The log of job `id` (array task `task`) written through [`log_pattern`].
pub fn log_path(pattern: &Path, id: &str, task: Option<&str>) -> PathBuf {
    let s = pattern.display().to_string();
    let s = match task {
        Some(t) => s.replace("%A", id).replace("%a", t),
        None => s.replace("%j", id),
    };
    PathBuf::from(s)
}

/// Render the script of one stage.
pub fn render(template: &str, input: &ScriptInput, res: &SlurmResources) -> Result<String> {
    let call = input.call;
    let bin = input.bin_dir.join(call.bin);
    for (what, p) in
        [("run folder", input.run), ("log", input.log), ("working directory", input.chdir)]
    {
        if p.display().to_string().contains(char::is_whitespace) {
            bail!("the {what} {} holds white space, which #SBATCH lines cannot carry; use a path without", p.display());
        }
    }
    // The shard comes from the array task; every other argument is fixed here.
    let mut argv: Vec<String> =
        call.args(input.run, 0, input.device, input.force).iter().map(|a| quote(a)).collect();
    if call.parts > 1 {
        let at =
            argv.iter().position(|a| a == "--shard").expect("a split stage passes --shard") + 1;
        argv[at] = format!("\"${{SLURM_ARRAY_TASK_ID}}/{}\"", call.parts);
    }
    let mut stage = format!("{} {}", quote(&bin.display().to_string()), argv.join(" "));
    // Several tasks are the update's data-parallel ranks: srun starts them (each reads its
    // rank from SLURM_PROCID) and stops the rest when one fails.
    let tasks = res.ntasks.unwrap_or(1);
    if tasks > 1 {
        stage = format!("srun --ntasks={tasks} --kill-on-bad-exit=1 {stage}");
    }
    // The jobs that finish an iteration or an evaluation also refresh `summary.jsonl` and
    // `tensorboard/`, as the local driver does; the stage's own exit status decides the job.
    let command = if call.summarizes() {
        let spice = quote(&input.bin_dir.join("spice").display().to_string());
        let run = quote(&input.run.display().to_string());
        format!(
            "{stage}\n{spice} summarize --run {run} || echo \"spice: summary.jsonl and tensorboard/ \
             not refreshed; the stage's output is kept\" >&2"
        )
    } else {
        format!("exec {stage}")
    };

    let mut sbatch = Vec::new();
    if call.parts > 1 {
        sbatch.push(format!("--array=0-{}", call.parts - 1));
    }
    let mut opt = |flag: &str, v: Option<String>| {
        if let Some(v) = v {
            sbatch.push(format!("--{flag}={v}"));
        }
    };
    opt("partition", res.partition.clone());
    opt("account", res.account.clone());
    opt("qos", res.qos.clone());
    opt("time", res.time.clone());
    if tasks > 1 {
        opt("ntasks", Some(tasks.to_string()));
        opt("gpus-per-task", res.gpus.filter(|g| *g > 0).map(|g| g.to_string()));
    } else {
        opt("gres", res.gpus.filter(|g| *g > 0).map(|g| format!("gpu:{g}")));
    }
    opt("cpus-per-task", res.cpus_per_task.map(|c| c.to_string()));
    opt("mem", res.mem.clone());
    for line in &res.extra_sbatch {
        let line = line.trim();
        let line = line.strip_prefix("#SBATCH").map(str::trim).unwrap_or(line);
        if line.contains('\n') {
            bail!("slurm extra_sbatch line {line:?} holds a line break");
        }
        sbatch.push(line.to_string());
    }
    let sbatch: Vec<String> = sbatch.into_iter().map(|o| format!("#SBATCH {o}")).collect();

    let what = match (call.iter, call.cell) {
        (None, None) => call.name.to_string(),
        _ => input.key.replace('/', " "),
    };
    let run_name =
        input.run.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let job_name: String = format!("spice-{run_name}-{}", input.key.replace('/', "-"))
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' })
        .collect();
    let mut text = template.to_string();
    for (k, v) in [
        ("what", what),
        ("job_name", job_name),
        ("log", input.log.display().to_string()),
        ("chdir", input.chdir.display().to_string()),
        ("sbatch", sbatch.join("\n")),
        ("setup", res.setup.join("\n")),
        ("command", command),
    ] {
        text = text.replace(&format!("{{{{{k}}}}}"), &v);
    }
    if let Some(at) = text.find("{{") {
        let rest: String = text[at..].chars().take(30).collect();
        bail!("the sbatch template has an unknown placeholder at `{rest}`");
    }
    Ok(text)
}

/// Quote a word for bash unless it is plainly safe.
pub fn quote(s: &str) -> String {
    let safe =
        !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "_./:=@%+-,".contains(c));
    if safe {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{eval_calls, iteration_calls};
    use spice_schemas::RunConfig;

    fn input<'a>(call: &'a StageCall, log: &'a Path) -> ScriptInput<'a> {
        ScriptInput {
            call,
            key: "iter-0002/rollout",
            run: Path::new("/runs/my-run"),
            bin_dir: Path::new("/opt/spice/my bin"),
            chdir: Path::new("/home/u/spice"),
            device: Some("cuda:0"),
            force: false,
            log,
        }
    }

    #[test]
    fn split_stage_is_an_array_with_resources_and_setup() {
        let mut cfg = RunConfig::default();
        cfg.run.shards = 4;
        cfg.slurm.partition = Some("gpu".into());
        cfg.slurm.gpus = Some(1);
        cfg.slurm.mem = Some("64G".into());
        cfg.slurm.extra_sbatch = vec!["#SBATCH --constraint=a100".into(), "--exclusive".into()];
        cfg.slurm.setup = vec!["module load cuda/12.4".into()];
        let calls = iteration_calls(Path::new("/runs/my-run"), &cfg, 2);
        let rollout = &calls[2];
        let log =
            log_pattern(Path::new("/runs/my-run/slurm/iter-0002/logs"), "rollout", rollout.parts);
        let text =
            render(TEMPLATE, &input(rollout, &log), &cfg.slurm.for_stage("rollout")).unwrap();
        for want in [
            "#SBATCH --array=0-3\n",
            "#SBATCH --partition=gpu\n",
            "#SBATCH --gres=gpu:1\n",
            "#SBATCH --mem=64G\n",
            "#SBATCH --constraint=a100\n",
            "#SBATCH --exclusive\n",
            "#SBATCH --output=/runs/my-run/slurm/iter-0002/logs/rollout-%A_%a.log\n",
            "#SBATCH --job-name=spice-my-run-iter-0002-rollout\n",
            "module load cuda/12.4\n",
            "exec '/opt/spice/my bin/spice-rollout' --run /runs/my-run --iter 2 --shard \"${SLURM_ARRAY_TASK_ID}/4\" --device cuda:0\n",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
        assert!(!text.contains("--account") && !text.contains("{{"), "{text}");
        assert!(text.starts_with("#!/bin/bash\n"));
    }

    #[test]
    fn single_stage_has_no_array() {
        let cfg = RunConfig::default();
        let calls = iteration_calls(Path::new("/r"), &cfg, 0);
        let log = log_pattern(Path::new("/r/slurm/iter-0000/logs"), "score", 1);
        let text =
            render(TEMPLATE, &input(&calls[3], &log), &cfg.slurm.for_stage("score")).unwrap();
        assert!(!text.contains("--array"), "{text}");
        assert!(
            text.contains("exec '/opt/spice/my bin/spice-score' --run /runs/my-run --iter 0 --device cuda:0\n"),
            "{text}"
        );
        assert_eq!(log_path(&log, "17", None), Path::new("/r/slurm/iter-0000/logs/score-17.log"));
        let arr = log_pattern(Path::new("/l"), "challenge", 2);
        assert_eq!(log_path(&arr, "17", Some("1")), Path::new("/l/challenge-17_1.log"));
    }

    #[test]
    fn a_multi_task_update_is_srun_ranks_with_gpus_per_task() {
        let cfg = RunConfig::from_toml(
            "[slurm]\ngpus = 1\n[slurm.stages.update]\nntasks = 8\n",
            "t.toml",
        )
        .unwrap();
        let calls = iteration_calls(Path::new("/r"), &cfg, 0);
        let log = PathBuf::from("/l");
        let update =
            render(TEMPLATE, &input(&calls[4], &log), &cfg.slurm.for_stage("update")).unwrap();
        for want in [
            "#SBATCH --ntasks=8\n",
            "#SBATCH --gpus-per-task=1\n",
            "srun --ntasks=8 --kill-on-bad-exit=1 '/opt/spice/my bin/spice-update' --run /runs/my-run --iter 0",
        ] {
            assert!(update.contains(want), "missing {want:?} in\n{update}");
        }
        assert!(!update.contains("--gres"), "{update}");
        // Other stages keep one task and --gres.
        let score =
            render(TEMPLATE, &input(&calls[3], &log), &cfg.slurm.for_stage("score")).unwrap();
        assert!(score.contains("#SBATCH --gres=gpu:1\n") && !score.contains("srun"), "{score}");
        let err =
            RunConfig::from_toml("[slurm.stages.rollout]\nntasks = 2\n", "t.toml").unwrap_err();
        assert!(format!("{err:#}").contains("only the update runs as several tasks"), "{err:#}");
    }

    #[test]
    fn update_and_eval_jobs_refresh_the_summary() {
        let mut cfg = RunConfig::default();
        cfg.eval.eval_every = 1;
        cfg.eval.benchmarks = vec!["b.jsonl".into()];
        let calls = iteration_calls(Path::new("/r"), &cfg, 0);
        let log = PathBuf::from("/l");
        let summarize = "'/opt/spice/my bin/spice' summarize --run /runs/my-run || echo";
        let update =
            render(TEMPLATE, &input(&calls[4], &log), &cfg.slurm.for_stage("update")).unwrap();
        // The stage runs first, not exec'd, so the summary comes after it; under `set -e` a
        // failed stage ends the job with its own status before the summary.
        let at_stage = update
            .find(
                "\n'/opt/spice/my bin/spice-update' --run /runs/my-run --iter 0 --device cuda:0\n",
            )
            .unwrap_or_else(|| panic!("{update}"));
        let at_summary = update.find(summarize).unwrap_or_else(|| panic!("{update}"));
        assert!(at_stage < at_summary && update.contains("set -euo pipefail"), "{update}");
        for eval in eval_calls(Path::new("/r"), &cfg, 0) {
            let text = render(TEMPLATE, &input(&eval, &log), &cfg.slurm.for_stage("eval")).unwrap();
            assert!(text.contains(summarize), "{text}");
        }
        let score =
            render(TEMPLATE, &input(&calls[3], &log), &cfg.slurm.for_stage("score")).unwrap();
        assert!(!score.contains("summarize"), "{score}");
    }

    #[test]
    fn unknown_placeholders_and_quoting() {
        let cfg = RunConfig::default();
        let calls = iteration_calls(Path::new("/r"), &cfg, 0);
        let log = PathBuf::from("/l");
        let err = render(
            "{{command}}\n{{comand}}\n",
            &input(&calls[0], &log),
            &cfg.slurm.for_stage("challenge"),
        )
        .unwrap_err();
        assert!(err.to_string().contains("{{comand}}"), "{err}");
        let spaced = PathBuf::from("/my logs/x-%j.log");
        let err = render(
            TEMPLATE,
            &ScriptInput { log: &spaced, ..input(&calls[0], &log) },
            &cfg.slurm.for_stage("challenge"),
        )
        .unwrap_err();
        assert!(err.to_string().contains("white space"), "{err}");
        assert_eq!(quote("a'b c"), r"'a'\''b c'");
        assert_eq!(quote("cuda:0"), "cuda:0");
        assert_eq!(quote(""), "''");
    }
}
