//! The report as text: a terminal table (one column per iteration, one row per number) and
//! CSV (one row per iteration, maps flattened to `map/key` columns).

use std::collections::BTreeSet;
use std::fmt::Write;

use crate::numbers::{IterationReport, PerStage};

/// How a number is shown in the terminal table.
#[derive(Clone, Copy)]
enum Show {
    Count,
    Percent,
    Fixed(usize),
    /// Significant digits, for numbers of any size (grad norm).
    Sig(usize),
    /// Scientific with this many decimals (the loss, small and of either sign).
    Sci(usize),
}

enum Cell {
    Empty,
    Num(f64, Show),
    Text(String),
}

/// One number over the iterations: its CSV column, its label in the table, its cells.
struct Column {
    csv: String,
    label: String,
    cells: Vec<Cell>,
    /// Shown in the table (CSV has every column; the table shows a summary of some maps).
    in_table: bool,
    /// Shown in CSV.
    in_csv: bool,
}

/// A section heading in the table.
const HEADING: &str = "#";

/// The columns being built, with a shorthand for the numeric ones.
struct Columns<'a> {
    reports: &'a [IterationReport],
    cols: Vec<Column>,
}

impl Columns<'_> {
    /// A column of numbers, shown in the table and the CSV (`None` is an empty cell).
    fn num(
        &mut self,
        csv: &str,
        label: &str,
        show: Show,
        f: &dyn Fn(&IterationReport) -> Option<f64>,
    ) {
        let cells =
            self.reports.iter().map(|r| f(r).map_or(Cell::Empty, |v| Cell::Num(v, show))).collect();
        self.cols.push(Column {
            csv: csv.into(),
            label: label.into(),
            cells,
            in_table: true,
            in_csv: true,
        });
    }

    /// A 95% interval: its bounds as the CSV columns `lo` and `hi`, and one table row below
    /// the number it bounds, `[lo, hi]` in percent.
    fn interval(
        &mut self,
        (lo, hi): (&str, &str),
        f: &dyn Fn(&IterationReport) -> Option<(f64, f64)>,
    ) {
        self.num(lo, "", Show::Percent, &|r| f(r).map(|b| b.0));
        self.num(hi, "", Show::Percent, &|r| f(r).map(|b| b.1));
        let n = self.cols.len();
        for c in &mut self.cols[n - 2..] {
            c.in_table = false;
        }
        let cells = self
            .reports
            .iter()
            .map(|r| {
                f(r).map_or(Cell::Empty, |(lo, hi)| {
                    Cell::Text(format!("[{:.1}%, {:.1}%]", 100.0 * lo, 100.0 * hi))
                })
            })
            .collect();
        self.cols.push(Column {
            csv: String::new(),
            label: "  95% CI".into(),
            cells,
            in_table: true,
            in_csv: false,
        });
    }
}

fn both(lo: Option<f64>, hi: Option<f64>) -> Option<(f64, f64)> {
    lo.zip(hi)
}

fn columns(reports: &[IterationReport]) -> Vec<Column> {
    let mut cols = Columns { reports, cols: Vec::new() };
    let c = |v: Option<u64>| v.map(|v| v as f64);
    cols.num("iteration", "", Show::Count, &|r| Some(r.iteration as f64));
    cols.num(HEADING, "Challenger", Show::Count, &|_| None);
    cols.num("documents", "documents", Show::Count, &|r| c(r.documents));
    cols.num("attempts", "attempts", Show::Count, &|r| c(r.attempts));
    cols.num("valid_tasks", "valid tasks", Show::Count, &|r| c(r.valid_tasks));
    cols.num("valid_task_rate", "valid-task rate", Show::Percent, &|r| r.valid_task_rate);
    cols.interval(("valid_task_rate_lo", "valid_task_rate_hi"), &|r| {
        both(r.valid_task_rate_lo, r.valid_task_rate_hi)
    });
    cols.num("mcq_attempts", "MCQ attempts", Show::Count, &|r| c(r.mcq_attempts));
    cols.num("mcq_valid", "MCQ valid", Show::Count, &|r| c(r.mcq_valid));
    cols.num("free_form_attempts", "free-form attempts", Show::Count, &|r| c(r.free_form_attempts));
    cols.num("free_form_valid", "free-form valid", Show::Count, &|r| c(r.free_form_valid));
    cols.num("distinct_questions", "distinct questions", Show::Count, &|r| c(r.distinct_questions));
    cols.num("question_overlap", "question 3-gram overlap", Show::Fixed(3), &|r| {
        r.question_overlap
    });
    cols.num("challenger_completion_tokens", "completion tokens", Show::Fixed(1), &|r| {
        r.challenger_completion_tokens
    });
    let reasons: BTreeSet<&String> =
        reports.iter().flat_map(|r| r.invalid_reasons.keys()).collect();
    for reason in reasons {
        let cells = reports
            .iter()
            // 0 where the iteration's tasks are in but none failed for this reason.
            .map(|r| match r.invalid_reasons.get(reason).copied().or(r.valid_tasks.map(|_| 0)) {
                Some(n) => Cell::Num(n as f64, Show::Count),
                None => Cell::Empty,
            })
            .collect();
        cols.cols.push(Column {
            csv: format!("invalid/{reason}"),
            label: String::new(),
            cells,
            in_table: false,
            in_csv: true,
        });
    }
    for rank in 0..3 {
        let cells = reports
            .iter()
            .map(|r| {
                top_reasons(r)
                    .get(rank)
                    .map_or(Cell::Empty, |(k, n)| Cell::Text(format!("{k} {n}")))
            })
            .collect();
        let label = format!("invalid reason #{}", rank + 1);
        cols.cols.push(Column { csv: String::new(), label, cells, in_table: true, in_csv: false });
    }
    cols.num(HEADING, "Reasoner", Show::Count, &|_| None);
    cols.num("answered_tasks", "answered tasks", Show::Count, &|r| c(r.answered_tasks));
    cols.num("reasoner_answers", "answers", Show::Count, &|r| c(r.reasoner_answers));
    cols.num("reasoner_accuracy", "accuracy", Show::Percent, &|r| r.reasoner_accuracy);
    cols.interval(("reasoner_accuracy_lo", "reasoner_accuracy_hi"), &|r| {
        both(r.reasoner_accuracy_lo, r.reasoner_accuracy_hi)
    });
    cols.num("mean_pass_rate", "mean pass rate p̂", Show::Fixed(3), &|r| r.mean_pass_rate);
    cols.num("pass_rate_zero_share", "tasks at p̂ = 0", Show::Percent, &|r| {
        r.pass_rate_zero_share
    });
    cols.num("pass_rate_mid_share", "tasks at 0 < p̂ < 1", Show::Percent, &|r| {
        r.pass_rate_mid_share
    });
    cols.num("pass_rate_one_share", "tasks at p̂ = 1", Show::Percent, &|r| r.pass_rate_one_share);
    cols.num("mean_challenger_reward", "mean r_C", Show::Fixed(3), &|r| r.mean_challenger_reward);
    cols.num("reasoner_completion_tokens", "completion tokens", Show::Fixed(1), &|r| {
        r.reasoner_completion_tokens
    });
    cols.num(HEADING, "training batch: groups with all advantages 0", Show::Count, &|_| None);
    cols.num("challenger_groups", "Challenger groups (documents)", Show::Count, &|r| {
        c(r.challenger_groups)
    });
    cols.num("challenger_zero_advantage_share", "Challenger, all 0", Show::Percent, &|r| {
        r.challenger_zero_advantage_share
    });
    cols.num("reasoner_groups", "Reasoner groups (tasks)", Show::Count, &|r| c(r.reasoner_groups));
    cols.num("reasoner_zero_advantage_share", "Reasoner, all 0", Show::Percent, &|r| {
        r.reasoner_zero_advantage_share
    });
    cols.num(HEADING, "update", Show::Count, &|_| None);
    cols.num("update_steps", "optimizer steps", Show::Count, &|r| c(r.update_steps));
    cols.num("loss", "loss", Show::Sci(2), &|r| r.loss);
    cols.num("grad_norm", "grad norm (last step)", Show::Sig(3), &|r| r.grad_norm);
    cols.num("update_peak_rss_mib", "peak RSS (MiB)", Show::Fixed(0), &|r| r.update_peak_rss_mib);
    cols.num("update_peak_fraction", "share of GEMM peak", Show::Percent, &|r| {
        r.update_peak_fraction
    });
    cols.num(HEADING, "tokens/s", Show::Count, &|_| None);
    for stage in ["challenge", "rollout", "update", "eval"] {
        cols.num(&format!("tokens_per_second/{stage}"), stage, Show::Fixed(1), &|r| {
            r.tokens_per_second.get(stage)
        });
    }
    cols.num(HEADING, "peak RSS (MiB)", Show::Count, &|_| None);
    for stage in ["challenge", "rollout", "eval"] {
        cols.num(&format!("peak_rss_mib/{stage}"), stage, Show::Fixed(0), &|r| {
            r.peak_rss_mib.get(stage)
        });
    }
    cols.num(HEADING, "minutes", Show::Count, &|_| None);
    for stage in PerStage::STAGES {
        cols.num(&format!("minutes/{stage}"), stage, Show::Fixed(2), &|r| r.minutes.get(stage));
    }
    cols.num("minutes_total", "total", Show::Fixed(2), &|r| r.minutes_total);
    let before: BTreeSet<&String> = reports.iter().flat_map(|r| r.eval_before.keys()).collect();
    let after: BTreeSet<&String> = reports.iter().flat_map(|r| r.eval_after.keys()).collect();
    if !before.is_empty() || !after.is_empty() {
        cols.num(HEADING, "eval accuracy", Show::Count, &|_| None);
    }
    for (b, after) in before.iter().map(|b| (b, false)).chain(after.iter().map(|b| (b, true))) {
        let (key, policy) =
            if after { ("eval_after", "updated") } else { ("eval_before", "sampling") };
        let pick = |r: &IterationReport| {
            let (acc, n, lo, hi) = if after {
                (&r.eval_after, &r.eval_after_answers, &r.eval_after_lo, &r.eval_after_hi)
            } else {
                (&r.eval_before, &r.eval_before_answers, &r.eval_before_lo, &r.eval_before_hi)
            };
            let get = |m: &std::collections::BTreeMap<String, f64>| m.get(*b).copied();
            (get(acc), n.get(*b).map(|&n| n as f64), get(lo).zip(get(hi)))
        };
        cols.num(&format!("{key}/{b}"), &format!("{b}, {policy} policy"), Show::Percent, &|r| {
            pick(r).0
        });
        cols.interval((&format!("{key}_lo/{b}"), &format!("{key}_hi/{b}")), &|r| pick(r).2);
        cols.num(&format!("{key}_answers/{b}"), "", Show::Count, &|r| pick(r).1);
        cols.cols.last_mut().expect("just pushed").in_table = false;
    }
    cols.cols
}

/// Invalid reasons by count, most frequent first (ties by name).
pub fn top_reasons(r: &IterationReport) -> Vec<(&str, u64)> {
    let mut v: Vec<(&str, u64)> = r.invalid_reasons.iter().map(|(k, n)| (k.as_str(), *n)).collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    v
}

/// The terminal table: numbers as rows, iterations as columns.
pub fn table(reports: &[IterationReport]) -> String {
    let cols = columns(reports);
    let header: Vec<String> = reports.iter().map(|r| format!("iter {}", r.iteration)).collect();
    let rows: Vec<(String, bool, Vec<String>)> = cols
        .iter()
        .filter(|c| c.in_table && c.csv != "iteration")
        .map(|c| {
            let heading = c.csv == HEADING;
            let cells = c
                .cells
                .iter()
                .map(|v| if heading { String::new() } else { table_cell(v) })
                .collect();
            (if heading { c.label.clone() } else { format!("  {}", c.label) }, heading, cells)
        })
        .collect();
    let label_w = rows.iter().map(|r| width(&r.0)).max().unwrap_or(0);
    let widths: Vec<usize> = (0..reports.len())
        .map(|i| rows.iter().map(|r| width(&r.2[i])).chain([header[i].len()]).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    let line = |out: &mut String, label: &str, cells: &[String]| {
        let pad = label_w - width(label);
        let _ = write!(out, "{label}{}", " ".repeat(pad));
        for (cell, w) in cells.iter().zip(&widths) {
            let _ = write!(out, "  {}{cell}", " ".repeat(w - width(cell)));
        }
        out.push('\n');
    };
    line(&mut out, "", &header);
    for (label, heading, cells) in &rows {
        if *heading {
            out.push_str(label);
            out.push('\n');
        } else {
            line(&mut out, label, cells);
        }
    }
    out
}

/// Columns a string takes in a terminal: combining marks (the hat of p̂) take none.
fn width(s: &str) -> usize {
    s.chars().filter(|c| !('\u{0300}'..='\u{036F}').contains(c)).count()
}

fn table_cell(c: &Cell) -> String {
    match c {
        Cell::Empty => String::new(),
        Cell::Text(s) => s.clone(),
        Cell::Num(v, Show::Count) => format!("{v:.0}"),
        Cell::Num(v, Show::Percent) => format!("{:.1}%", 100.0 * v),
        Cell::Num(v, Show::Fixed(p)) => format!("{v:.p$}"),
        Cell::Num(v, Show::Sig(n)) => significant(*v, *n),
        Cell::Num(v, Show::Sci(p)) => format!("{v:.p$e}"),
    }
}

/// `v` with `n` significant digits: fixed notation from 1e-3 to 1e6, else scientific.
fn significant(v: f64, n: usize) -> String {
    let a = v.abs();
    if a == 0.0 || !a.is_finite() {
        return format!("{v}");
    }
    if !(1e-3..1e6).contains(&a) {
        return format!("{v:.prec$e}", prec = n.saturating_sub(1));
    }
    let decimals = (n as i32 - 1 - a.log10().floor() as i32).max(0) as usize;
    format!("{v:.decimals$}")
}

/// CSV: a header, then one line per iteration; numbers at full precision, empty cells empty.
pub fn csv(reports: &[IterationReport]) -> String {
    let cols: Vec<Column> =
        columns(reports).into_iter().filter(|c| c.in_csv && c.csv != HEADING).collect();
    let mut out = cols.iter().map(|c| quote(&c.csv)).collect::<Vec<_>>().join(",");
    out.push('\n');
    for i in 0..reports.len() {
        let line: Vec<String> = cols
            .iter()
            .map(|c| match &c.cells[i] {
                Cell::Empty => String::new(),
                Cell::Num(v, _) => format!("{v}"),
                Cell::Text(s) => quote(s),
            })
            .collect();
        out.push_str(&line.join(","));
        out.push('\n');
    }
    out
}

/// RFC 4180 quoting where needed.
fn quote(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}
