//! Plots of a run over its iterations, each as PNG and SVG: pass rate and r_C, the pass-rate
//! histogram per iteration (difficulty), the valid-task rate, loss and grad norm, the minutes
//! per stage, question diversity, the batch's groups with all advantages 0, and benchmark
//! accuracy. Proportions of counted trials carry their 95% Wilson interval as a band or error
//! bars.
//!
//! Text is drawn with DejaVu Sans compiled into the binary, so the PNGs do not depend on the
//! fonts of the machine.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{anyhow, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::numbers::{IterationReport, PerStage};

pub(crate) const FONT: &str = "sans-serif";
const WIDTH: u32 = 900;
/// Iterations drawn as panels of the difficulty figure (evenly spaced over the run).
const MAX_PANELS: usize = 12;
/// Markers on the lines up to this many iterations; beyond, they would cover the line.
const MAX_MARKERS: usize = 60;
pub(crate) const BLUE: RGBColor = RGBColor(31, 119, 180);
pub(crate) const ORANGE: RGBColor = RGBColor(255, 127, 14);
const GREEN: RGBColor = RGBColor(44, 160, 44);
const RED: RGBColor = RGBColor(214, 39, 40);
const PURPLE: RGBColor = RGBColor(148, 103, 189);
const BROWN: RGBColor = RGBColor(140, 86, 75);
const STAGE_COLORS: [RGBColor; 6] = [BLUE, ORANGE, GREEN, RED, PURPLE, BROWN];

#[derive(Clone, Copy)]
enum Figure {
    PassRate,
    Difficulty,
    ValidRate,
    Loss,
    StageTime,
    Diversity,
    ZeroAdvantage,
    Eval,
}

const FIGURES: [(&str, Figure); 8] = [
    ("pass_rate", Figure::PassRate),
    ("difficulty", Figure::Difficulty),
    ("valid_rate", Figure::ValidRate),
    ("loss", Figure::Loss),
    ("stage_time", Figure::StageTime),
    ("diversity", Figure::Diversity),
    ("zero_advantage", Figure::ZeroAdvantage),
    ("eval", Figure::Eval),
];

/// Write every figure as `<name>.png` and `<name>.svg` into `dir`; returns the files written.
pub fn write_all(dir: &Path, reports: &[IterationReport]) -> Result<Vec<PathBuf>> {
    register_font()?;
    let mut files = Vec::new();
    for (name, fig) in FIGURES {
        let size = (WIDTH, height(fig, reports));
        let png = dir.join(format!("{name}.png"));
        let root = BitMapBackend::new(&png, size).into_drawing_area();
        draw(&root, fig, reports)?;
        root.present().map_err(|e| anyhow!("writing {}: {e}", png.display()))?;
        drop(root);
        let svg = dir.join(format!("{name}.svg"));
        let root = SVGBackend::new(&svg, size).into_drawing_area();
        draw(&root, fig, reports)?;
        root.present().map_err(|e| anyhow!("writing {}: {e}", svg.display()))?;
        drop(root);
        files.extend([png, svg]);
    }
    Ok(files)
}

pub(crate) fn register_font() -> Result<()> {
    static DONE: OnceLock<bool> = OnceLock::new();
    let ok = DONE.get_or_init(|| {
        plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular()).is_ok()
    });
    if *ok {
        Ok(())
    } else {
        Err(anyhow!("the embedded DejaVu Sans font could not be loaded"))
    }
}

pub(crate) fn err<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow!("drawing a plot: {e}")
}

fn height(fig: Figure, reports: &[IterationReport]) -> u32 {
    match fig {
        Figure::Difficulty => {
            let rows = panels(reports).len().div_ceil(4).max(1) as u32;
            60 + 230 * rows
        }
        Figure::Loss => 700,
        _ => 550,
    }
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    fig: Figure,
    reports: &[IterationReport],
) -> Result<()> {
    root.fill(&WHITE).map_err(err)?;
    let x = |f: fn(&IterationReport) -> Option<f64>| -> Vec<(f64, Option<f64>)> {
        reports.iter().map(|r| (r.iteration as f64, f(r))).collect()
    };
    let band =
        |f: fn(&IterationReport) -> (Option<f64>, Option<f64>)| -> Vec<(f64, Option<(f64, f64)>)> {
            reports
                .iter()
                .map(|r| {
                    let (lo, hi) = f(r);
                    (r.iteration as f64, lo.zip(hi))
                })
                .collect()
        };
    match fig {
        Figure::PassRate => line_chart(
            root,
            "Reasoner pass rate and Challenger reward",
            "",
            YAxis { range: Some(-0.15..1.05), percent: false },
            reports,
            &[
                // Reasoner accuracy is the same line whenever every task has K answers.
                ("mean pass rate", BLUE, x(|r| r.mean_pass_rate)),
                ("mean r_C", ORANGE, x(|r| r.mean_challenger_reward)),
                ("share of tasks with 0 < pass rate < 1", PURPLE, x(|r| r.pass_rate_mid_share)),
            ],
            &[(
                "Reasoner accuracy, 95% CI",
                BLUE,
                band(|r| (r.reasoner_accuracy_lo, r.reasoner_accuracy_hi)),
            )],
        ),
        Figure::ValidRate => line_chart(
            root,
            "Valid tasks among the Challenger's attempts",
            "valid-task rate",
            YAxis { range: Some(-0.03..1.05), percent: true },
            reports,
            &[
                ("all attempts", BLUE, x(|r| r.valid_task_rate)),
                ("MCQ attempts", ORANGE, x(|r| ratio(r.mcq_valid, r.mcq_attempts))),
                (
                    "free-form attempts",
                    GREEN,
                    x(|r| ratio(r.free_form_valid, r.free_form_attempts)),
                ),
            ],
            &[(
                "all attempts, 95% CI",
                BLUE,
                band(|r| (r.valid_task_rate_lo, r.valid_task_rate_hi)),
            )],
        ),
        Figure::Loss => {
            let (top, bottom) = root.split_vertically(350);
            line_chart(
                &top,
                "Update: mean loss per iteration",
                "loss",
                YAxis { range: None, percent: false },
                reports,
                &[("loss", BLUE, x(|r| r.loss))],
                &[],
            )?;
            line_chart(
                &bottom,
                "Update: gradient norm of the last step",
                "grad norm",
                YAxis { range: None, percent: false },
                reports,
                &[("grad norm", RED, x(|r| r.grad_norm))],
                &[],
            )
        }
        Figure::StageTime => stage_time(root, reports),
        Figure::Diversity => line_chart(
            root,
            "Question diversity among valid tasks",
            "",
            YAxis { range: Some(-0.03..1.05), percent: false },
            reports,
            &[
                (
                    "distinct questions / valid tasks",
                    BLUE,
                    x(|r| ratio(r.distinct_questions, r.valid_tasks)),
                ),
                ("mean pairwise word-3-gram overlap (Jaccard)", RED, x(|r| r.question_overlap)),
            ],
            &[],
        ),
        Figure::ZeroAdvantage => line_chart(
            root,
            "Training batch: groups whose advantages are all 0 (no learning signal)",
            "share of groups",
            YAxis { range: Some(-0.03..1.05), percent: true },
            reports,
            &[
                ("Challenger groups (documents)", ORANGE, x(|r| r.challenger_zero_advantage_share)),
                ("Reasoner groups (tasks)", BLUE, x(|r| r.reasoner_zero_advantage_share)),
            ],
            &[],
        ),
        Figure::Eval => eval(root, reports),
        Figure::Difficulty => difficulty(root, reports),
    }
}

fn ratio(a: Option<u64>, b: Option<u64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0 => Some(a as f64 / b as f64),
        _ => None,
    }
}

/// Iterations on the x axis: integers, with half an iteration of room on either side.
fn x_range(reports: &[IterationReport]) -> Range<f64> {
    let first = reports.first().map_or(0.0, |r| r.iteration as f64);
    let last = reports.last().map_or(0.0, |r| r.iteration as f64);
    first - 0.5..last + 0.5
}

fn x_labels(reports: &[IterationReport]) -> usize {
    let span =
        reports.last().map_or(0, |r| r.iteration) - reports.first().map_or(0, |r| r.iteration);
    (span as usize + 1).min(12)
}

/// Only whole iterations get a label.
fn iteration_label(x: &f64) -> String {
    if (x - x.round()).abs() < 1e-6 {
        format!("{}", x.round() as i64)
    } else {
        String::new()
    }
}

/// Tick labels of an axis over `range`: one number of decimals for all ticks, enough to tell
/// neighbouring ticks apart (about six per axis); scientific notation for very small or large
/// numbers.
fn axis_label(range: &Range<f64>) -> impl Fn(&f64) -> String {
    let span = (range.end - range.start).abs();
    let big = range.start.abs().max(range.end.abs());
    let decimals = if span > 0.0 { (-(span / 6.0).log10()).ceil().max(0.0) as usize } else { 2 };
    let scientific = decimals > 6 || big >= 1e6;
    move |v: &f64| {
        if scientific {
            format!("{v:.1e}")
        } else if v.abs() < 0.5 * 10f64.powi(-(decimals as i32)) {
            // Not `-0.00` for a tick a rounding error below zero.
            format!("{:.decimals$}", 0.0)
        } else {
            format!("{v:.decimals$}")
        }
    }
}

/// Room around the data: 8% of the spread, or of the value when all values are equal.
fn padded(values: &[f64]) -> Range<f64> {
    let (lo, hi) =
        values.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| (l.min(*v), h.max(*v)));
    if !lo.is_finite() {
        return 0.0..1.0;
    }
    let pad = if hi > lo {
        0.08 * (hi - lo)
    } else if lo != 0.0 {
        0.1 * lo.abs()
    } else {
        1.0
    };
    lo - pad..hi + pad
}

type Line<'a> = (&'a str, RGBColor, Vec<(f64, Option<f64>)>);

/// The y axis of a line chart: its range (None: fitted to the data), and whether its values
/// are shares shown as percentages.
struct YAxis {
    range: Option<Range<f64>>,
    percent: bool,
}

/// One evaluation point: x, accuracy, its interval, and whether it is of the updated policy.
type EvalPoint = (f64, f64, Option<(f64, f64)>, bool);
/// A shaded interval (lo, hi) over the iterations, drawn under the lines.
type Band<'a> = (&'a str, RGBColor, Vec<(f64, Option<(f64, f64)>)>);

/// `c` a quarter as strong over white: opaque, so a band does not depend on the backend's
/// blending.
fn light(c: RGBColor) -> RGBColor {
    let f = |v: u8| 255 - (255 - v as u16) / 4;
    RGBColor(f(c.0) as u8, f(c.1) as u8, f(c.2) as u8)
}

fn line_chart<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    y_desc: &str,
    axis: YAxis,
    reports: &[IterationReport],
    lines: &[Line],
    bands: &[Band],
) -> Result<()> {
    let (y, percent) = (axis.range, axis.percent);
    // Several lines get a legend in a strip below the plot, where it covers no data; one
    // line needs none (the title and axis name it).
    let (area, strip) = if lines.len() + bands.len() > 1 {
        let (plot, strip) = area.split_vertically(area.dim_in_pixel().1 as i32 - LEGEND_HEIGHT);
        (plot, Some(strip))
    } else {
        (area.clone(), None)
    };
    let area = &area;
    if let Some(strip) = &strip {
        let entries = lines.iter().map(|l| (l.0, l.1, false));
        let entries = entries.chain(bands.iter().map(|b| (b.0, light(b.1), true)));
        legend(strip, &entries.collect::<Vec<_>>())?;
    }
    let values: Vec<f64> = lines
        .iter()
        .flat_map(|l| l.2.iter().filter_map(|p| p.1))
        .chain(bands.iter().flat_map(|b| b.2.iter().filter_map(|p| p.1)).flat_map(|(l, h)| [l, h]))
        .collect();
    let y = y.unwrap_or_else(|| padded(&values));
    let number = axis_label(&y);
    let y_fmt = |v: &f64| {
        if percent {
            format!("{:.0}%", 100.0 * v)
        } else {
            number(v)
        }
    };
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FONT, 22))
        .margin(14)
        .x_label_area_size(44)
        .y_label_area_size(70)
        .build_cartesian_2d(x_range(reports), y)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_labels(x_labels(reports))
        .x_label_formatter(&iteration_label)
        .y_label_formatter(&y_fmt)
        .x_desc("iteration")
        .y_desc(y_desc)
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 15))
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(err)?;
    if values.is_empty() {
        no_data(area, "no data yet")?;
        return Ok(());
    }
    for (_, color, points) in bands {
        // Like a line, a band breaks where a value is missing; one point is a bar.
        let mut runs: Vec<Vec<(f64, (f64, f64))>> = vec![Vec::new()];
        for (x, v) in points {
            match v {
                Some(v) => runs.last_mut().expect("one run").push((*x, *v)),
                None => runs.push(Vec::new()),
            }
        }
        let fill = light(*color).filled();
        for run in runs.iter().filter(|r| !r.is_empty()) {
            let half = if run.len() == 1 { 0.08 } else { 0.0 };
            let upper = run.iter().map(|(x, (_, h))| (*x, *h));
            let lower = run.iter().rev().map(|(x, (l, _))| (*x, *l));
            let mut outline: Vec<(f64, f64)> = Vec::new();
            if half > 0.0 {
                let (x, (l, h)) = run[0];
                outline.extend([(x - half, l), (x - half, h), (x + half, h), (x + half, l)]);
            } else {
                outline.extend(upper.chain(lower));
            }
            chart.draw_series(std::iter::once(Polygon::new(outline, fill))).map_err(err)?;
        }
    }
    let markers = reports.len() <= MAX_MARKERS;
    for (_, color, points) in lines {
        let color = *color;
        // A missing value breaks the line rather than joining its neighbours.
        let mut runs: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
        for (x, v) in points {
            match v {
                Some(v) => runs.last_mut().expect("one run").push((*x, *v)),
                None => runs.push(Vec::new()),
            }
        }
        let style = ShapeStyle::from(color).stroke_width(2);
        for run in runs.iter().filter(|r| !r.is_empty()) {
            chart.draw_series(LineSeries::new(run.clone(), style)).map_err(err)?;
            if markers {
                chart
                    .draw_series(run.iter().map(|p| Circle::new(*p, 4, color.filled())))
                    .map_err(err)?;
            }
        }
    }
    Ok(())
}

const LEGEND_HEIGHT: i32 = 40;

/// One row of legend entries (a line or, for bars, a box, then the label), centred in `strip`.
fn legend<DB: DrawingBackend>(
    strip: &DrawingArea<DB, Shift>,
    entries: &[(&str, RGBColor, bool)],
) -> Result<()> {
    let text = TextStyle::from((FONT, 14).into_font());
    let (sample, gap, space) = (22, 6, 26);
    let widths: Vec<i32> = entries
        .iter()
        .map(|e| strip.estimate_text_size(e.0, &text).map(|(w, _)| w as i32).map_err(err))
        .collect::<Result<_>>()?;
    let total: i32 =
        widths.iter().map(|w| sample + gap + w).sum::<i32>() + space * (entries.len() as i32 - 1);
    let (w, h) = strip.dim_in_pixel();
    let (mut x, y) = ((w as i32 - total).max(0) / 2, h as i32 / 2);
    for ((label, color, bar), width) in entries.iter().zip(widths) {
        if *bar {
            strip
                .draw(&Rectangle::new([(x + 4, y - 7), (x + sample - 4, y + 7)], color.filled()))
                .map_err(err)?;
        } else {
            let style = ShapeStyle::from(*color).stroke_width(3);
            strip.draw(&PathElement::new(vec![(x, y), (x + sample, y)], style)).map_err(err)?;
        }
        let pos = plotters::style::text_anchor::Pos::new(
            plotters::style::text_anchor::HPos::Left,
            plotters::style::text_anchor::VPos::Center,
        );
        strip.draw_text(label, &text.pos(pos), (x + sample + gap, y)).map_err(err)?;
        x += sample + gap + width + space;
    }
    Ok(())
}

fn no_data<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, text: &str) -> Result<()> {
    let (w, h) = area.dim_in_pixel();
    let grey = BLACK.mix(0.6);
    let style = TextStyle::from((FONT, 18).into_font()).color(&grey).pos(
        plotters::style::text_anchor::Pos::new(
            plotters::style::text_anchor::HPos::Center,
            plotters::style::text_anchor::VPos::Center,
        ),
    );
    area.draw_text(text, &style, (w as i32 / 2, h as i32 / 2)).map_err(err)?;
    Ok(())
}

/// Minutes per stage, stacked, one bar per iteration.
fn stage_time<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    reports: &[IterationReport],
) -> Result<()> {
    let (plot, strip) = area.split_vertically(area.dim_in_pixel().1 as i32 - LEGEND_HEIGHT);
    let area = &plot;
    let shown: Vec<(&str, RGBColor, bool)> = PerStage::STAGES
        .iter()
        .zip(STAGE_COLORS)
        .filter(|(stage, _)| reports.iter().any(|r| r.minutes.get(stage).is_some()))
        .map(|(stage, color)| (*stage, color, true))
        .collect();
    legend(&strip, &shown)?;
    let top = reports.iter().filter_map(|r| r.minutes_total).fold(0.0, f64::max);
    let y_max = if top > 0.0 { top * 1.08 } else { 1.0 };
    let mut chart = ChartBuilder::on(area)
        .caption("Wall time per stage", (FONT, 22))
        .margin(14)
        .x_label_area_size(44)
        .y_label_area_size(70)
        .build_cartesian_2d(x_range(reports), 0.0..y_max)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_labels(x_labels(reports))
        .x_label_formatter(&iteration_label)
        .y_label_formatter(&axis_label(&(0.0..y_max)))
        .x_desc("iteration")
        .y_desc("minutes")
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 15))
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(err)?;
    if top <= 0.0 {
        return no_data(area, "no stage has finished yet");
    }
    // Bars fill 70% of an iteration's width.
    let half = 0.35;
    let mut base: Vec<f64> = vec![0.0; reports.len()];
    for (stage, color) in PerStage::STAGES.iter().zip(STAGE_COLORS) {
        if reports.iter().all(|r| r.minutes.get(stage).is_none()) {
            continue;
        }
        let mut bars = Vec::new();
        for (i, r) in reports.iter().enumerate() {
            if let Some(m) = r.minutes.get(stage) {
                let x = r.iteration as f64;
                bars.push(Rectangle::new(
                    [(x - half, base[i]), (x + half, base[i] + m)],
                    color.filled(),
                ));
                base[i] += m;
            }
        }
        chart.draw_series(bars).map_err(err)?;
    }
    Ok(())
}

/// Benchmark accuracy with 95% Wilson error bars, one line per benchmark. An iteration's
/// sampling policy (`eval/`) is drawn at its start (x = N − ½, a hollow marker) and its updated
/// policy (`eval-checkpoint/`) at its end (x = N + ½, filled), so iteration N's updated policy and
/// N + 1's sampling policy, the same checkpoint, share a place. Evaluations are usually sparse,
/// so a benchmark's points are joined across iterations without one.
fn eval<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    reports: &[IterationReport],
) -> Result<()> {
    let benches: std::collections::BTreeSet<&String> =
        reports.iter().flat_map(|r| r.eval_before.keys().chain(r.eval_after.keys())).collect();
    let colors: Vec<RGBColor> =
        benches.iter().enumerate().map(|(i, _)| STAGE_COLORS[i % 6]).collect();
    let (plot, strip) = area.split_vertically(area.dim_in_pixel().1 as i32 - LEGEND_HEIGHT);
    let entries: Vec<(&str, RGBColor, bool)> =
        benches.iter().zip(&colors).map(|(b, c)| (b.as_str(), *c, false)).collect();
    legend(&strip, &entries)?;
    let area = &plot;
    let x = x_range(reports);
    let mut chart = ChartBuilder::on(area)
        .caption("Benchmark accuracy with 95% Wilson intervals", (FONT, 22))
        .margin(14)
        .x_label_area_size(44)
        .y_label_area_size(70)
        .build_cartesian_2d(x.start - 0.3..x.end + 0.3, -0.03..1.05)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_labels(x_labels(reports))
        .x_label_formatter(&iteration_label)
        .y_label_formatter(&|v| format!("{:.0}%", 100.0 * v))
        .x_desc(
            "iteration (hollow: its sampling policy, at its start; filled: its update, at its end)",
        )
        .y_desc("accuracy")
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 15))
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(err)?;
    if benches.is_empty() {
        return no_data(area, "no evaluation yet");
    }
    let cap = 0.08;
    for (b, color) in benches.iter().zip(colors) {
        let mut points: Vec<EvalPoint> = Vec::new();
        for r in reports {
            let it = r.iteration as f64;
            for (after, acc, lo, hi) in [
                (false, &r.eval_before, &r.eval_before_lo, &r.eval_before_hi),
                (true, &r.eval_after, &r.eval_after_lo, &r.eval_after_hi),
            ] {
                if let Some(a) = acc.get(*b) {
                    let x = if after { it + 0.5 } else { it - 0.5 };
                    points.push((x, *a, lo.get(*b).copied().zip(hi.get(*b).copied()), after));
                }
            }
        }
        let style = ShapeStyle::from(color).stroke_width(2);
        chart
            .draw_series(LineSeries::new(points.iter().map(|p| (p.0, p.1)), style))
            .map_err(err)?;
        let bar = ShapeStyle::from(color).stroke_width(1);
        for (x, _, ci, _) in &points {
            if let Some((lo, hi)) = ci {
                chart
                    .draw_series([
                        PathElement::new(vec![(*x, *lo), (*x, *hi)], bar),
                        PathElement::new(vec![(x - cap, *lo), (x + cap, *lo)], bar),
                        PathElement::new(vec![(x - cap, *hi), (x + cap, *hi)], bar),
                    ])
                    .map_err(err)?;
            }
        }
        for (x, a, _, after) in &points {
            let marker = if *after {
                Circle::new((*x, *a), 5, color.filled())
            } else {
                Circle::new((*x, *a), 5, WHITE.filled())
            };
            chart.draw_series([marker]).map_err(err)?;
            if !*after {
                chart.draw_series([Circle::new((*x, *a), 5, style)]).map_err(err)?;
            }
        }
    }
    Ok(())
}

/// The iterations drawn as panels: all, or [`MAX_PANELS`] evenly spaced ones (first and last
/// included).
fn panels(reports: &[IterationReport]) -> Vec<&IterationReport> {
    let n = reports.len();
    if n <= MAX_PANELS {
        return reports.iter().collect();
    }
    let mut picked: Vec<usize> =
        (0..MAX_PANELS).map(|i| (i * (n - 1) + (MAX_PANELS - 1) / 2) / (MAX_PANELS - 1)).collect();
    picked.dedup();
    picked.into_iter().map(|i| &reports[i]).collect()
}

/// One histogram of p̂ per iteration: the share of the iteration's answered tasks at each
/// pass rate (p̂ = j/K for K answers per task). Mass at 0 and 1 is what the Challenger's reward pushes away from.
fn difficulty<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    reports: &[IterationReport],
) -> Result<()> {
    let area = root
        .titled("Difficulty: share of answered tasks at each Reasoner pass rate", (FONT, 22))
        .map_err(err)?;
    let shown = panels(reports);
    if shown.is_empty() {
        return no_data(&area, "no iterations yet");
    }
    let cols = shown.len().min(4);
    let rows = shown.len().div_ceil(cols);
    let cells = area.split_evenly((rows, cols));
    // K answers per task make the pass rates 0, 1/K, …, 1: one bar for each.
    let k = reports.iter().filter_map(|r| r.answers_per_task).max().unwrap_or(1).max(1);
    let bins: Vec<f64> = (0..=k).map(|j| j as f64 / k as f64).collect();
    let width = 1.0 / k as f64;
    for (r, cell) in shown.iter().zip(cells) {
        let n = r.pass_rates.len();
        let caption =
            format!("iteration {} · {} task{}", r.iteration, n, if n == 1 { "" } else { "s" });
        let mut chart = ChartBuilder::on(&cell)
            .caption(caption, (FONT, 15))
            .margin(8)
            .x_label_area_size(28)
            .y_label_area_size(42)
            .build_cartesian_2d(-width / 2.0..1.0 + width / 2.0, 0.0..1.0)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_labels(6)
            .y_labels(6)
            .x_label_formatter(&|v| {
                if (-1e-9..=1.0 + 1e-9).contains(v) {
                    format!("{v:.1}")
                } else {
                    String::new()
                }
            })
            .y_label_formatter(&|v| format!("{:.0}%", 100.0 * v))
            .label_style((FONT, 12))
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(err)?;
        if n == 0 {
            no_data(&cell, "no answered tasks")?;
            continue;
        }
        let bars = bins.iter().map(|c| {
            let in_bin = r.pass_rates.iter().filter(|p| nearest(**p, &bins) == *c).count();
            let share = in_bin as f64 / n as f64;
            Rectangle::new([(c - 0.4 * width, 0.0), (c + 0.4 * width, share)], BLUE.filled())
        });
        chart.draw_series(bars).map_err(err)?;
    }
    Ok(())
}

/// The bin centre nearest to `p` (the lower one on a tie), so every p̂ lands in one bin.
fn nearest(p: f64, bins: &[f64]) -> f64 {
    bins.iter().copied().fold(f64::NAN, |best, c| {
        if best.is_nan() || (p - c).abs() < (p - best).abs() {
            c
        } else {
            best
        }
    })
}
