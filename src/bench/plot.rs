//! `scaling.png`: log-log median seconds per step against `D`, one line per
//! objective, with p10–p90 whiskers. Text is drawn with `ab_glyph` from the
//! DejaVu Sans font bundled by the `dejavu` crate (no system fonts needed;
//! set up in [`crate::plot`]).

use std::path::Path;

use plotters::coord::combinators::BindKeyPoints;
use plotters::prelude::*;

use super::{BenchError, ScalingReport};
use crate::plot::{register_font as register, COLORS};

/// Draws the report's timings into a PNG at `path`.
pub fn scaling_png(report: &ScalingReport, path: &Path) -> Result<(), BenchError> {
    draw(report, path).map_err(|message| BenchError::Plot {
        path: path.to_path_buf(),
        message,
    })
}

fn draw(report: &ScalingReport, path: &Path) -> Result<(), String> {
    register();
    let e = |x: &dyn std::fmt::Display| x.to_string();
    let xs: Vec<f64> = report.dims.iter().map(|&d| d as f64).collect();
    let (mut x0, mut x1) = xs
        .iter()
        .fold((f64::INFINITY, 0.0f64), |(a, b), &x| (a.min(x), b.max(x)));
    if x0 >= x1 {
        x0 = (x0 / 2.0).max(0.5);
        x1 = x1.max(1.0) * 2.0;
    }
    let ys = report
        .cells
        .iter()
        .filter_map(|c| c.timing.as_ref())
        .flat_map(|t| [t.p10, t.p90, t.median])
        .filter(|y| y.is_finite() && *y > 0.0);
    let (mut y0, mut y1) = ys.fold((f64::INFINITY, 0.0f64), |(a, b), y| (a.min(y), b.max(y)));
    if !y0.is_finite() || y1 <= 0.0 {
        (y0, y1) = (1e-4, 1.0);
    }
    let (y0, y1) = (y0 / 1.5, y1 * 1.5);

    let root = BitMapBackend::new(path, (1000, 700)).into_drawing_area();
    root.fill(&WHITE).map_err(|x| e(&x))?;
    let caption = format!(
        "Seconds per training step vs D (batch {}, median of {} steps)",
        report.batch, report.steps
    );
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 24))
        .margin(16)
        .x_label_area_size(50)
        .y_label_area_size(80)
        .build_cartesian_2d(
            (x0 * 0.9..x1 * 1.1).log_scale().with_key_points(xs.clone()),
            (y0..y1).log_scale(),
        )
        .map_err(|x| e(&x))?;
    chart
        .configure_mesh()
        .x_desc("data dimension D")
        .y_desc("seconds per step (bars: p10-p90)")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.0e}"))
        .label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 17))
        .draw()
        .map_err(|x| e(&x))?;
    for (i, col) in report.objectives.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let points: Vec<(f64, &super::Timing)> = report
            .dims
            .iter()
            .filter_map(|&d| {
                let t = report.cell(&col.label, d)?.timing.as_ref()?;
                Some((d as f64, t))
            })
            .filter(|(_, t)| t.median > 0.0)
            .collect();
        let line: Vec<(f64, f64)> = points.iter().map(|(d, t)| (*d, t.median)).collect();
        chart
            .draw_series(LineSeries::new(line.clone(), color.stroke_width(2)))
            .map_err(|x| e(&x))?
            .label(col.label.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 24, y)], color.stroke_width(2))
            });
        chart
            .draw_series(line.iter().map(|p| Circle::new(*p, 4, color.filled())))
            .map_err(|x| e(&x))?;
        chart
            .draw_series(points.iter().filter(|(_, t)| t.p10 > 0.0).map(|(d, t)| {
                PathElement::new(vec![(*d, t.p10), (*d, t.p90)], color.stroke_width(1))
            }))
            .map_err(|x| e(&x))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 16))
        .draw()
        .map_err(|x| e(&x))?;
    root.present().map_err(|x| e(&x))?;
    Ok(())
}
