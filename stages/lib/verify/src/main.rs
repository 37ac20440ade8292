//! `spice-verify check`: answer verification from the command line. It reads JSON lines
//! `{"gold": …, "pred": …, "answer_type"?: …, "kind"?: …, "options"?: […]}` on stdin and
//! writes one JSON line per input line, `{"equivalent": bool, "extracted": …}`, or
//! `{"error": …, "line": N}` for a line it cannot read, so output line N always answers input
//! line N. Each line goes through `check_with_options`, the same check the pipeline stages
//! (`spice-filter`, `spice-score`) use: the gold is read like the prediction when it is more
//! than a bare answer.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use serde::Deserialize;
use serde_json::Value;
use spice_verify::{check_with_options, AnswerType, TaskKind};
use std::io::{BufRead, BufWriter, Write};

#[derive(Parser, Debug)]
#[command(name = "spice-verify", version, about = "Task parsing and answer verification for SPICE")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Check predictions against gold answers: JSON lines on stdin, one verdict per line on stdout.
    ///
    /// Input lines: {"gold": "...", "pred": "<completion>", "answer_type"?: "integer|float|
    /// expression|string|boolean|list", "kind"?: "mcq|free_form|any", "options"?: ["text of
    /// A", "text of B", ...]}. The gold is read like the prediction when it is more than a bare
    /// answer (a whole solution, a boxed answer). Output lines:
    /// {"equivalent": true|false, "extracted": "..."|null}, or {"error": "...", "line": N}.
    Check {
        /// Format assumed for lines without "kind".
        #[arg(long, default_value = "any")]
        kind: TaskKind,
        /// Highest option letter for multiple choice (D for SPICE tasks, J for MMLU-Pro); a line
        /// with "options" uses A up to its last option instead.
        #[arg(long, default_value_t = 'D')]
        max_letter: char,
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
    /// Option texts of a multiple-choice question, A first.
    #[serde(default)]
    options: Vec<Value>,
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
    let options = line
        .options
        .iter()
        .map(|o| text(o).ok_or("options must be strings, numbers or booleans"))
        .collect::<Result<Vec<String>, _>>()?;
    if options.len() > 26 {
        return Err("options: at most 26 (A to Z)".into());
    }
    let c = check_with_options(&gold, &pred, kind, answer_type, max_letter, &options);
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
    match cli.command {
        Command::Check { kind, max_letter } => run_check(kind, max_letter),
    }
}
