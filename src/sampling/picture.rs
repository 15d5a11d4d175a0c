//! Pictures of a model and its samples: 2-D fields beside the truth, and
//! image grids of Langevin samples beside a flow's own samples.
//!
//! Data flow: [`field_picture`] takes a [`Field2d`] — the model (and the
//! true density, when known) as [`Density`]s, training points and Langevin
//! samples — evaluates the densities on a grid over the data's range, and
//! draws panels side by side with plotters into one RGB image (set up by
//! [`crate::plot`]):
//!
//! 1. the truth (when known): its density as a heat map (`exp(log p − max)`
//!    over the grid, so an unnormalized log-density draws the same) when the
//!    model has a log-density, otherwise its score field as arrows;
//! 2. the model the same way: the learned density, or the learned score
//!    field (arrow length ∝ ‖s‖, capped at one grid cell; the same scale as
//!    the truth's panel);
//! 3. the Langevin samples (orange) over the data (grey).
//!
//! A few hundred training points are drawn faintly on the first panels too.
//! [`side_by_side`] joins image grids (Langevin samples, flow samples) with a
//! caption above each.

use plotters::prelude::*;

use super::Density;
use crate::plot::{blit, canvas, register_font, COLORS};

/// Pixels of one square panel.
const PANEL: usize = 360;
/// Heat-map cells per axis.
const HEAT_CELLS: usize = 60;
/// Arrows per axis.
const ARROWS: usize = 19;
/// Most data points drawn.
const MAX_POINTS: usize = 1500;
/// Data points drawn over a field.
const FIELD_POINTS: usize = 400;

/// What [`field_picture`] draws.
pub struct Field2d<'a> {
    /// The model.
    pub model: &'a dyn Density,
    /// Draw log-densities (the model has one) rather than score fields.
    pub log_density: bool,
    /// The true density, when known.
    pub truth: Option<&'a dyn Density>,
    /// Training (or other data) points, row-major `n × 2`.
    pub data: &'a [f64],
    /// Langevin samples, row-major `m × 2`.
    pub samples: &'a [f64],
}

/// The data's range per axis, widened by 15 % on each side.
fn bounds(data: &[f64]) -> [(f64, f64); 2] {
    let mut b = [(f64::INFINITY, f64::NEG_INFINITY); 2];
    for p in data.chunks_exact(2) {
        for k in 0..2 {
            if p[k].is_finite() {
                b[k] = (b[k].0.min(p[k]), b[k].1.max(p[k]));
            }
        }
    }
    b.map(|(lo, hi)| {
        if !(lo.is_finite() && hi.is_finite()) {
            (-3.0, 3.0)
        } else {
            let pad = ((hi - lo) * 0.15).max(1e-3);
            (lo - pad, hi + pad)
        }
    })
}

/// Cell centres of an `n × n` grid over `b`, row-major (`y` outer).
fn grid(b: &[(f64, f64); 2], n: usize) -> Vec<f64> {
    let at = |k: usize, i: usize| b[k].0 + (i as f64 + 0.5) * (b[k].1 - b[k].0) / n as f64;
    (0..n)
        .flat_map(|iy| (0..n).flat_map(move |ix| [at(0, ix), at(1, iy)]))
        .collect()
}

/// Viridis at `t ∈ [0, 1]` (linear between nine anchors of matplotlib's map).
fn viridis(t: f64) -> RGBColor {
    const ANCHORS: [(u8, u8, u8); 9] = [
        (68, 1, 84),
        (71, 44, 122),
        (59, 81, 139),
        (44, 113, 142),
        (33, 144, 141),
        (39, 173, 129),
        (92, 200, 99),
        (170, 220, 50),
        (253, 231, 37),
    ];
    let x = t.clamp(0.0, 1.0) * (ANCHORS.len() - 1) as f64;
    let i = (x.floor() as usize).min(ANCHORS.len() - 2);
    let f = x - i as f64;
    let (a, b) = (ANCHORS[i], ANCHORS[i + 1]);
    let mix = |p: u8, q: u8| (p as f64 + f * (q as f64 - p as f64)).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// What one panel shows.
enum Layer<'a> {
    Heat(Vec<f64>),
    Arrows(Vec<f64>, f64),
    Points(&'a [f64], RGBColor, u32),
}

type Chart<'a, 'b> = ChartContext<
    'a,
    BitMapBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

fn draw_layer(chart: &mut Chart<'_, '_>, b: &[(f64, f64); 2], layer: &Layer) -> Result<(), String> {
    let e = |x: &dyn std::fmt::Display| x.to_string();
    match layer {
        Layer::Heat(logp) => {
            let n = HEAT_CELLS;
            let max = logp
                .iter()
                .copied()
                .filter(|v| v.is_finite())
                .fold(f64::NEG_INFINITY, f64::max);
            let (wx, wy) = ((b[0].1 - b[0].0) / n as f64, (b[1].1 - b[1].0) / n as f64);
            let cells = (0..n * n).map(|k| {
                let (ix, iy) = (k % n, k / n);
                let v = if logp[k].is_finite() && max.is_finite() {
                    (logp[k] - max).exp()
                } else {
                    0.0
                };
                let x0 = b[0].0 + ix as f64 * wx;
                let y0 = b[1].0 + iy as f64 * wy;
                Rectangle::new([(x0, y0), (x0 + wx, y0 + wy)], viridis(v).filled())
            });
            chart.draw_series(cells).map_err(|x| e(&x))?;
        }
        Layer::Arrows(scores, reference) => {
            let n = ARROWS;
            let centres = grid(b, n);
            let cell = ((b[0].1 - b[0].0) / n as f64).min((b[1].1 - b[1].0) / n as f64);
            let color = RGBColor(30, 30, 30);
            let mut paths = Vec::new();
            for (p, s) in centres.chunks_exact(2).zip(scores.chunks_exact(2)) {
                let norm = (s[0] * s[0] + s[1] * s[1]).sqrt();
                if !(norm.is_finite() && norm > 0.0) {
                    continue;
                }
                let len = 0.9 * cell * (norm / reference).min(1.0);
                let (ux, uy) = (s[0] / norm, s[1] / norm);
                let tip = (p[0] + ux * len, p[1] + uy * len);
                paths.push(vec![(p[0], p[1]), tip]);
                let head = 0.3 * len;
                for ang in [2.6f64, -2.6] {
                    let (c, si) = (ang.cos(), ang.sin());
                    let hx = ux * c - uy * si;
                    let hy = ux * si + uy * c;
                    paths.push(vec![tip, (tip.0 + hx * head, tip.1 + hy * head)]);
                }
            }
            chart
                .draw_series(paths.into_iter().map(|p| PathElement::new(p, color)))
                .map_err(|x| e(&x))?;
        }
        Layer::Points(points, color, size) => {
            let step = (points.len() / 2).div_ceil(MAX_POINTS).max(1);
            let dots = points
                .chunks_exact(2)
                .step_by(step)
                .filter(|p| (b[0].0..=b[0].1).contains(&p[0]) && (b[1].0..=b[1].1).contains(&p[1]))
                .map(|p| Circle::new((p[0], p[1]), *size, color.filled()));
            chart.draw_series(dots).map_err(|x| e(&x))?;
        }
    }
    Ok(())
}

/// The 90th percentile of the score norms (the arrow length of one cell).
fn arrow_reference(scores: &[f64]) -> f64 {
    let mut norms: Vec<f64> = scores
        .chunks_exact(2)
        .map(|s| (s[0] * s[0] + s[1] * s[1]).sqrt())
        .filter(|v| v.is_finite())
        .collect();
    if norms.is_empty() {
        return 1.0;
    }
    norms.sort_by(f64::total_cmp);
    norms[(norms.len() * 9 / 10).min(norms.len() - 1)].max(1e-12)
}

/// The field layer of a density: its log-density on the heat-map grid, or
/// its scores on the arrow grid (with the arrow scale `reference`, or its
/// own when `None`).
fn field_layer<'a>(
    d: &dyn Density,
    log_density: bool,
    b: &[(f64, f64); 2],
    reference: Option<f64>,
) -> Layer<'a> {
    if log_density {
        if let Some(l) = d.log_densities(&grid(b, HEAT_CELLS)) {
            return Layer::Heat(l);
        }
    }
    let s = d.scores(&grid(b, ARROWS));
    let r = reference.unwrap_or_else(|| arrow_reference(&s));
    Layer::Arrows(s, r)
}

/// Draws the panels described in the module documentation; returns
/// `(rgb, width, height)`.
///
/// # Errors
/// A drawing failure, as text.
pub fn field_picture(f: &Field2d) -> Result<(Vec<u8>, usize, usize), String> {
    register_font();
    let b = bounds(f.data);
    let what = if f.log_density {
        "density"
    } else {
        "score field"
    };
    // A few hundred data points over the fields, all of them on the samples.
    let sparse = &f.data[..f.data.len().min(2 * FIELD_POINTS)];
    let faint = RGBColor(200, 200, 200);
    let truth_ref = f
        .truth
        .map(|t| arrow_reference(&t.scores(&grid(&b, ARROWS))));
    let mut panels: Vec<(String, Vec<Layer>)> = Vec::new();
    if let Some(t) = f.truth {
        panels.push((
            format!("true {what}"),
            vec![
                field_layer(t, f.log_density, &b, truth_ref),
                Layer::Points(sparse, faint, 1),
            ],
        ));
    }
    panels.push((
        format!("learned {what}"),
        vec![
            field_layer(f.model, f.log_density, &b, truth_ref),
            Layer::Points(sparse, faint, 1),
        ],
    ));
    panels.push((
        "Langevin samples (orange) over data".into(),
        vec![
            Layer::Points(f.data, RGBColor(150, 150, 150), 1),
            Layer::Points(f.samples, COLORS[1], 2),
        ],
    ));
    let (w, h) = (PANEL * panels.len(), PANEL);
    let mut rgb = canvas(w, h);
    {
        let e = |x: &dyn std::fmt::Display| x.to_string();
        let root = BitMapBackend::with_buffer(&mut rgb, (w as u32, h as u32)).into_drawing_area();
        let areas = root.split_evenly((1, panels.len()));
        for (area, (title, layers)) in areas.iter().zip(&panels) {
            let mut chart = ChartBuilder::on(area)
                .caption(title, ("sans-serif", 16))
                .margin(8)
                .x_label_area_size(22)
                .y_label_area_size(34)
                .build_cartesian_2d(b[0].0..b[0].1, b[1].0..b[1].1)
                .map_err(|x| e(&x))?;
            chart
                .configure_mesh()
                .disable_mesh()
                .x_labels(5)
                .y_labels(5)
                .label_style(("sans-serif", 11))
                .draw()
                .map_err(|x| e(&x))?;
            for layer in layers {
                draw_layer(&mut chart, &b, layer)?;
            }
        }
        root.present().map_err(|x| e(&x))?;
    }
    Ok((rgb, w, h))
}

/// Joins RGB images `(caption, rgb, width, height)` left to right with a
/// caption band above each; returns `(rgb, width, height)`.
///
/// # Errors
/// A drawing failure, as text.
pub fn side_by_side(
    images: &[(&str, &[u8], usize, usize)],
) -> Result<(Vec<u8>, usize, usize), String> {
    register_font();
    const BAND: usize = 24;
    const GAP: usize = 12;
    let w = images.iter().map(|i| i.2).sum::<usize>() + GAP * images.len().saturating_sub(1);
    let h = BAND + images.iter().map(|i| i.3).max().unwrap_or(0);
    let mut rgb = canvas(w.max(1), h);
    let mut x = 0;
    let mut captions = Vec::new();
    for (caption, img, iw, ih) in images {
        blit(&mut rgb, w, img, *iw, *ih, x, BAND);
        captions.push((caption.to_string(), x));
        x += iw + GAP;
    }
    {
        let e = |x: &dyn std::fmt::Display| x.to_string();
        let root =
            BitMapBackend::with_buffer(&mut rgb, (w.max(1) as u32, h as u32)).into_drawing_area();
        for (caption, x) in captions {
            root.draw(&Text::new(caption, (x as i32 + 2, 4), ("sans-serif", 15)))
                .map_err(|x| e(&x))?;
        }
        root.present().map_err(|x| e(&x))?;
    }
    Ok((rgb, w.max(1), h))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Gauss;
    impl Density for Gauss {
        fn dim(&self) -> usize {
            2
        }
        fn scores(&self, x: &[f64]) -> Vec<f64> {
            x.iter().map(|v| -v).collect()
        }
        fn log_densities(&self, x: &[f64]) -> Option<Vec<f64>> {
            Some(
                x.chunks(2)
                    .map(|p| -0.5 * (p[0] * p[0] + p[1] * p[1]))
                    .collect(),
            )
        }
    }

    #[test]
    fn panels_are_drawn() {
        let data: Vec<f64> = (0..200)
            .map(|i| ((i * 37) % 101) as f64 / 25.0 - 2.0)
            .collect();
        for log_density in [true, false] {
            let f = Field2d {
                model: &Gauss,
                log_density,
                truth: Some(&Gauss),
                data: &data,
                samples: &data[..100],
            };
            let (rgb, w, h) = field_picture(&f).unwrap();
            assert_eq!((w, h), (3 * PANEL, PANEL));
            assert_eq!(rgb.len(), w * h * 3);
            // Something other than white was drawn in every panel.
            for p in 0..3 {
                let x = p * PANEL + PANEL / 2;
                let drawn = (0..h).any(|y| rgb[(y * w + x) * 3..(y * w + x) * 3 + 3] != [255; 3]);
                assert!(drawn, "panel {p} is blank");
            }
        }
        let a = vec![0u8; 4 * 3 * 3];
        let (rgb, w, h) = side_by_side(&[("a", &a, 4, 3), ("b", &a, 4, 3)]).unwrap();
        assert_eq!((w, h), (20, 27));
        assert_eq!(rgb.len(), w * h * 3);
    }
}
