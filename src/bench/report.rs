//! What the scaling benchmark measured: timings per cell, the table, CSV and the SM/SSM ratio.

use std::path::PathBuf;

use serde::Serialize;

use crate::device::Precision;
use crate::format::{align_columns, csv_field};

/// Seconds per step over the timed steps.
#[derive(Debug, Clone, Serialize)]
pub struct Timing {
    /// Median.
    pub median: f64,
    /// 10th percentile (linear interpolation).
    pub p10: f64,
    /// 90th percentile (linear interpolation).
    pub p90: f64,
    /// Every timed step, in order.
    pub samples: Vec<f64>,
}

impl Timing {
    /// Summary of per-step seconds.
    pub fn from_samples(samples: Vec<f64>) -> Self {
        let mut s = samples.clone();
        s.sort_by(f64::total_cmp);
        Self {
            median: percentile(&s, 0.5),
            p10: percentile(&s, 0.1),
            p90: percentile(&s, 0.9),
            samples,
        }
    }
}

/// The `q`-quantile of sorted values by linear interpolation (NaN when empty).
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    match sorted.len() {
        0 => f64::NAN,
        1 => sorted[0],
        n => {
            let pos = q.clamp(0.0, 1.0) * (n - 1) as f64;
            let lo = pos.floor() as usize;
            let hi = (lo + 1).min(n - 1);
            sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
        }
    }
}

/// One objective (a column).
#[derive(Debug, Clone, Serialize)]
pub struct ObjectiveColumn {
    /// Column label: the registered name, plus the settings when two specs share it.
    pub label: String,
    /// The registered name.
    pub name: String,
    /// The spec as given.
    pub spec: String,
}

/// One objective at one dimension.
#[derive(Debug, Clone, Serialize)]
pub struct ScalingCell {
    /// The objective's column label.
    pub objective: String,
    /// Data dimension.
    pub dim: usize,
    /// Seconds per step (absent when skipped or failed).
    pub timing: Option<Timing>,
    /// Peak heap MiB above the baseline (absent when not measured).
    pub peak_mib: Option<f64>,
    /// Why it did not run, e.g. `D > 784`.
    pub skipped: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
}

/// `numerator / denominator` of median seconds per step at one dimension.
#[derive(Debug, Clone, Serialize)]
pub struct Ratio {
    /// Numerator column label.
    pub numerator: String,
    /// Denominator column label.
    pub denominator: String,
    /// The largest dimension where both ran.
    pub dim: usize,
    /// The ratio of medians.
    pub value: f64,
}

/// What [`scaling`](super::scaling) measured.
#[derive(Debug, Clone, Serialize)]
pub struct ScalingReport {
    /// The model spec.
    pub model: String,
    /// The projection spec.
    pub projection: String,
    /// Points per step.
    pub batch: usize,
    /// Timed steps per cell.
    pub steps: usize,
    /// Warm-up steps per cell.
    pub warmup: usize,
    /// Precision of the model's tensors.
    pub precision: Precision,
    /// The rows.
    pub dims: Vec<usize>,
    /// The columns.
    pub objectives: Vec<ObjectiveColumn>,
    /// Every (dimension, objective), dimension-major.
    pub cells: Vec<ScalingCell>,
    /// Whether peak memory was measured (the counting allocator is installed).
    pub memory_measured: bool,
    /// The requested ratio, when both objectives ran at some dimension.
    pub ratio: Option<Ratio>,
    /// `scaling.csv`, when written.
    pub csv_path: Option<PathBuf>,
    /// `scaling.png`, when written.
    pub png_path: Option<PathBuf>,
}

pub(super) fn fmt3(x: f64) -> String {
    if !x.is_finite() {
        return format!("{x}");
    }
    let a = x.abs();
    let decimals = if a >= 100.0 {
        0
    } else if a >= 10.0 {
        1
    } else if a >= 1.0 {
        2
    } else if a >= 0.1 {
        3
    } else {
        4
    };
    format!("{x:.decimals$}")
}

impl ScalingReport {
    /// The cell of column `label` at dimension `dim`.
    pub fn cell(&self, label: &str, dim: usize) -> Option<&ScalingCell> {
        self.cells
            .iter()
            .find(|c| c.objective == label && c.dim == dim)
    }

    /// Rows `D`, columns objectives, cells `ms/step (MiB)`.
    pub fn table(&self) -> String {
        let mut lines = Vec::new();
        let mut header = vec!["D".to_string()];
        header.extend(self.objectives.iter().map(|o| o.label.clone()));
        lines.push(header);
        for &d in &self.dims {
            let mut line = vec![d.to_string()];
            for o in &self.objectives {
                let text = match self.cell(&o.label, d) {
                    None => String::new(),
                    Some(c) => match (&c.timing, &c.skipped, &c.error) {
                        (_, Some(s), _) => format!("skipped: {s}"),
                        (_, _, Some(e)) => format!("failed: {e}"),
                        (Some(t), _, _) => format!(
                            "{} ({})",
                            fmt3(t.median * 1e3),
                            c.peak_mib.map(fmt3).unwrap_or_else(|| "n/a".into())
                        ),
                        _ => String::new(),
                    },
                };
                line.push(text);
            }
            lines.push(line);
        }
        let mut out = format!(
            "median ms per training step (peak heap MiB above the baseline); model {}; {}; batch {}; {} timed steps after {} warm-up (fewer in a cell that passes its time budget); projection {}\n",
            self.model, self.precision.name(), self.batch, self.steps, self.warmup, self.projection
        );
        out.push_str(&align_columns(&lines));
        if !self.memory_measured {
            out.push_str("peak memory n/a: this program does not install the counting allocator (bench::memory)\n");
        }
        if let Some(r) = &self.ratio {
            out.push_str(&format!(
                "{} / {} at D = {}: {:.1}×\n",
                r.numerator, r.denominator, r.dim, r.value
            ));
        }
        out
    }

    /// `objective,dim,median_seconds,p10,p90,peak_mib,skipped,error`, one
    /// line per cell; numbers empty when absent.
    pub fn csv(&self) -> String {
        let num = |x: Option<f64>| x.map(|v| format!("{v}")).unwrap_or_default();
        let mut out = String::from("objective,dim,median_seconds,p10,p90,peak_mib,skipped,error\n");
        for c in &self.cells {
            let t = c.timing.as_ref();
            out.push_str(&format!(
                "{},{},{},{},{},{},{},{}\n",
                csv_field(&c.objective),
                c.dim,
                num(t.map(|t| t.median)),
                num(t.map(|t| t.p10)),
                num(t.map(|t| t.p90)),
                num(c.peak_mib),
                csv_field(c.skipped.as_deref().unwrap_or("")),
                csv_field(c.error.as_deref().unwrap_or("")),
            ));
        }
        out
    }

    /// The ratio of median seconds per step of the first columns named
    /// `numerator` and `denominator` (registered names) at the largest
    /// dimension where both ran.
    pub fn ratio_of(&self, numerator: &str, denominator: &str) -> Option<Ratio> {
        let num = self.objectives.iter().find(|o| o.name == numerator)?;
        let den = self.objectives.iter().find(|o| o.name == denominator)?;
        self.dims.iter().rev().find_map(|&d| {
            let a = self.cell(&num.label, d)?.timing.as_ref()?.median;
            let b = self.cell(&den.label, d)?.timing.as_ref()?.median;
            Some(Ratio {
                numerator: num.label.clone(),
                denominator: den.label.clone(),
                dim: d,
                value: a / b,
            })
        })
    }
}
