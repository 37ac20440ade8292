//! The cross-play figure (`crossplay.png` and `.svg`): pass rate with its 95% interval against
//! the Challenger's policy for the fixed Reasoner (left), and against the Reasoner's policy on
//! the fixed Challenger's tasks (right); the Challenger's valid-task rate on the left too.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Result};
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::crossplay::{CrossplayPlan, CrossplayRow};
use crate::plots::{err, register_font, BLUE, FONT, ORANGE};

const SIZE: (u32, u32) = (1200, 520);

/// Write `crossplay.png` and `crossplay.svg` into `dir`.
pub fn write(dir: &Path, rows: &[CrossplayRow], plan: &CrossplayPlan) -> Result<Vec<PathBuf>> {
    register_font()?;
    let png = dir.join("crossplay.png");
    let root = BitMapBackend::new(&png, SIZE).into_drawing_area();
    draw(&root, rows, plan)?;
    root.present().map_err(|e| anyhow!("writing {}: {e}", png.display()))?;
    drop(root);
    let svg = dir.join("crossplay.svg");
    let root = SVGBackend::new(&svg, SIZE).into_drawing_area();
    draw(&root, rows, plan)?;
    root.present().map_err(|e| anyhow!("writing {}: {e}", svg.display()))?;
    drop(root);
    Ok(vec![png, svg])
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    rows: &[CrossplayRow],
    plan: &CrossplayPlan,
) -> Result<()> {
    root.fill(&WHITE).map_err(err)?;
    let (left, right) = root.split_horizontally(SIZE.0 as i32 / 2);
    let fixed_r: Vec<&CrossplayRow> =
        rows.iter().filter(|r| r.reasoner == plan.fixed_reasoner).collect();
    let fixed_c: Vec<&CrossplayRow> =
        rows.iter().filter(|r| r.challenger == plan.fixed_challenger).collect();
    panel(
        &left,
        &format!("Fixed Reasoner (policy {}) × Challengers", plan.fixed_reasoner),
        "Challenger policy",
        &fixed_r.iter().map(|r| (r.challenger, *r)).collect::<Vec<_>>(),
        true,
    )?;
    panel(
        &right,
        &format!("Fixed Challenger (policy {}) × Reasoners", plan.fixed_challenger),
        "Reasoner policy",
        &fixed_c.iter().map(|r| (r.reasoner, *r)).collect::<Vec<_>>(),
        false,
    )
}

/// Pass rate with interval bars at each policy; with `valid`, the valid-task rate as well.
fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    x_desc: &str,
    points: &[(u32, &CrossplayRow)],
    valid: bool,
) -> Result<()> {
    let xs: Vec<f64> = points.iter().map(|p| p.0 as f64).collect();
    let (lo, hi) =
        xs.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), x| (l.min(*x), h.max(*x)));
    let x_range = if lo.is_finite() { lo - 0.5..hi + 0.5 } else { -0.5..0.5 };
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FONT, 20))
        .margin(14)
        .x_label_area_size(44)
        .y_label_area_size(60)
        .build_cartesian_2d(x_range, -0.02..1.02)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_labels(points.len().clamp(1, 12))
        .x_label_formatter(&|x: &f64| {
            if (x - x.round()).abs() < 1e-6 {
                format!("{}", x.round() as i64)
            } else {
                String::new()
            }
        })
        .y_label_formatter(&|v: &f64| format!("{:.0}%", 100.0 * v))
        .x_desc(x_desc)
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 15))
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(err)?;
    let pass: Vec<(f64, f64)> =
        points.iter().filter_map(|(x, r)| Some((*x as f64, r.pass_rate?))).collect();
    let style = ShapeStyle::from(BLUE).stroke_width(2);
    chart
        .draw_series(LineSeries::new(pass.clone(), style))
        .map_err(err)?
        .label("pass rate (95% interval)")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
    chart.draw_series(pass.iter().map(|p| Circle::new(*p, 4, BLUE.filled()))).map_err(err)?;
    chart
        .draw_series(points.iter().filter_map(|(x, r)| {
            let (lo, hi, p) = (r.pass_rate_lo?, r.pass_rate_hi?, r.pass_rate?);
            Some(ErrorBar::new_vertical(*x as f64, lo, p, hi, BLUE.stroke_width(2), 10))
        }))
        .map_err(err)?;
    if valid {
        let v: Vec<(f64, f64)> =
            points.iter().filter_map(|(x, r)| Some((*x as f64, r.valid_task_rate?))).collect();
        let style = ShapeStyle::from(ORANGE).stroke_width(2);
        chart
            .draw_series(LineSeries::new(v.clone(), style))
            .map_err(err)?
            .label("valid-task rate")
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
        chart.draw_series(v.iter().map(|p| Circle::new(*p, 4, ORANGE.filled()))).map_err(err)?;
    }
    chart
        .configure_series_labels()
        .label_font((FONT, 14))
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK.mix(0.3))
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(err)?;
    Ok(())
}
