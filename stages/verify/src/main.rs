//! `spice-verify`: answer verification from the command line, and the two pipeline stages
//! built on it.
//!
//! `spice-verify filter` and `spice-verify score` are the stages of record for task validity
//! and rewards (see `stage/`). `spice-verify check` reads JSON lines `{"gold": …, "pred": …, "answer_type"?: …,
//! "kind"?: …}` on stdin and writes one JSON line per input line,
//! `{"equivalent": bool, "extracted": …}`, or `{"error": …, "line": N}` for a line it cannot
//! read, so output line N always answers input line N.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use serde::Deserialize;
use serde_json::Value;
use spice_stage::StageArgs;
use spice_verify::{check_with_letters, AnswerType, TaskKind};
use std::io::{BufRead, BufWriter, Write};

mod stage;

#[derive(Parser, Debug)]
#[command(
    name = "spice-verify",
    version,
    about = "Task parsing and answer verification for SPICE"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Check predictions against gold answers: JSON lines on stdin, one verdict per line on stdout.
    ///
    /// Input lines: {"gold": "...", "pred": "<completion>", "answer_type"?: "integer|float|
    /// expression|string|boolean|list", "kind"?: "mcq|free_form|any"}. Output lines:
    /// {"equivalent": true|false, "extracted": "..."|null}, or {"error": "...", "line": N}.
    Check {
        /// Format assumed for lines without "kind".
        #[arg(long, default_value = "any")]
        kind: TaskKind,
        /// Highest option letter for multiple choice (D for SPICE tasks, J for MMLU-Pro).
        #[arg(long, default_value_t = 'D')]
        max_letter: char,
    },
    /// Parse and validate one iteration's Challenger attempts: challenger/ → tasks/.
    ///
    /// Every attempt of <run>/iter-N/challenger/ (all parts must be committed) becomes one row
    /// of <run>/iter-N/tasks/part-I.parquet, valid or not: task id i{iter}-d{doc}-a{attempt},
    /// question, options, gold answer (the letter for multiple choice), answer type, the JSON
    /// the model wrote, and for an invalid task a machine-readable reason (no_json,
    /// missing_field, bad_letter, …) with a detail. The manifest records attempts, valid rate,
    /// counts by reason and by format. A rerun with unchanged inputs and [challenger] config
    /// does nothing.
    Filter {
        #[command(flatten)]
        stage: StageArgs,
    },
    /// Verify the Reasoner's answers and compute both roles' rewards: tasks/ + rollouts/ +
    /// challenger/ → scored/.
    ///
    /// Reasoner rows: one per answer, reward 1 if equivalent to the gold answer, advantage
    /// against the mean of the task's answers; in the batch only for one valid task per
    /// document, drawn with a seed of (run seed, iteration, document). Challenger rows: one per
    /// selected attempt, reward from the task's pass rate ([reward] challenger_reward; the
    /// invalid_penalty for invalid tasks), advantage against the mean of the document's
    /// attempts. The manifest records pass-rate shares, Reasoner accuracy, mean rewards and
    /// advantages, and batch sizes. A rerun with unchanged inputs, [reward] config and seed
    /// does nothing.
    Score {
        #[command(flatten)]
        stage: StageArgs,
    },
}

#[derive(Deserialize)]
struct Line {
    gold: Value,
    pred: Value,
    #[serde(default)]
    answer_type: Option<String>,
    #[serde(default)]
    kind: Option<String>,
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// One verdict line for one input line.
fn verdict(raw: &str, default_kind: TaskKind, max_letter: char) -> Result<Value, String> {
    let line: Line = serde_json::from_str(raw)
        .map_err(|e| format!("not a JSON object with gold and pred: {e}"))?;
    let gold = text(&line.gold).ok_or("gold must be a string, number or boolean")?;
    let pred = text(&line.pred).ok_or("pred must be a string, number or boolean")?;
    let kind = match line.kind.as_deref() {
        Some(k) => k
            .parse::<TaskKind>()
            .map_err(|_| format!("kind {k:?} is not one of mcq, free_form, any"))?,
        None => default_kind,
    };
    let answer_type = match line.answer_type.as_deref() {
        Some(t) => Some(t.parse::<AnswerType>().map_err(|_| {
            format!(
                "answer_type {t:?} is not one of integer, float, expression, string, boolean, list"
            )
        })?),
        None => None,
    };
    let c = check_with_letters(&gold, &pred, kind, answer_type, max_letter);
    Ok(serde_json::json!({"equivalent": c.equivalent, "extracted": c.extracted}))
}

fn run_check(kind: TaskKind, max_letter: char) -> Result<()> {
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
    let mut input = stdin.lock();
    let mut buf = Vec::new();
    let mut n = 0usize;
    loop {
        buf.clear();
        let read = input.read_until(b'\n', &mut buf).context("reading stdin")?;
        if read == 0 {
            break;
        }
        n += 1;
        let raw = String::from_utf8_lossy(&buf);
        let value = match verdict(raw.trim_end_matches(['\n', '\r']), kind, max_letter) {
            Ok(v) => v,
            Err(e) => serde_json::json!({"error": format!("line {n}: {e}"), "line": n}),
        };
        serde_json::to_writer(&mut out, &value).context("writing stdout")?;
        out.write_all(b"\n").context("writing stdout")?;
    }
    out.flush().context("writing stdout")?;
    Ok(())
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    spice_stage::init_logging();
    match cli.command {
        Command::Check { kind, max_letter } => run_check(kind, max_letter),
        Command::Filter { stage } => stage::filter::run(&stage),
        Command::Score { stage } => stage::score::run(&stage),
    }
}
