//! Benchmarks. [`scaling`] is the paper's Figure 2: seconds per training
//! step and peak heap memory of each objective as the data dimension `D`
//! grows.
//!
//! Data flow: for each `D` and each objective (RON specs parsed through
//! [`Component`], so this module names no plugin) the model is built for
//! dimension `D`, batches of `N(0, I_D)` are drawn on the host from a seeded
//! RNG before timing, and `warmup + steps` full training steps run through
//! the training loop's own step ([`crate::train::step::train_step`]: graph →
//! loss → backward → gradient norm → Adam), after the same compatibility
//! check as `run` ([`crate::experiment::check_compatible`]). The
//! timed steps give the median (and 10th/90th percentiles) of seconds per
//! step; the peak heap bytes above the baseline at the start of the timed
//! steps come from [`memory`] when the binary installed its counting
//! allocator ("n/a" otherwise). The report prints as a table
//! ([`ScalingReport::table`]) and is written as `scaling.csv` and
//! `scaling.png` (log-log seconds per step against `D`).
//!
//! Files: `options.rs` (defaults and options), `cell.rs` (one cell: model,
//! batches, timed steps), `report.rs` (timings, table, CSV, ratio),
//! `plot.rs` (the PNG), `memory.rs` (the counting allocator); this file
//! runs the grid of cells.

pub mod memory;
mod plot;

mod cell;
mod options;
mod report;

use cell::{build_cell_model, measure};
pub use options::{ScalingDefaults, ScalingOptions};
use report::fmt3;
pub use report::{percentile, ObjectiveColumn, Ratio, ScalingCell, ScalingReport, Timing};

use std::path::PathBuf;

use crate::device::Device;
use crate::experiment::check_compatible;
use crate::objective::Objective;
use crate::registry::{Component, ComponentKind, ModelConfig, ObjectiveConfig, ProjectionConfig};

/// Default dimensions of the scaling benchmark (the paper's Figure 2 range, up to MNIST's 784).
pub const DEFAULT_DIMS: [usize; 10] = [2, 4, 8, 16, 32, 64, 128, 256, 512, 784];
/// Default batch size (the paper's).
pub const DEFAULT_BATCH: usize = 100;
/// Default time budget of one cell, in seconds.
pub const DEFAULT_CELL_BUDGET_SECONDS: f64 = 30.0;
/// Timed steps a cell runs even past its time budget.
pub const MIN_TIMED_STEPS: usize = 3;
/// Default number of timed steps.
pub const DEFAULT_STEPS: usize = 20;
/// Default number of untimed warm-up steps.
pub const DEFAULT_WARMUP: usize = 3;
/// Default optimizer (RON), with the core's Adam defaults.
pub const DEFAULT_OPTIMIZER: &str = "Adam(lr: 0.001)";

/// Why a benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A component spec does not parse or its settings are invalid.
    #[error("{what} {spec}: {message}")]
    Spec {
        /// Which option (`model`, `objective`, `projection`, `optimizer`).
        what: &'static str,
        /// The spec as given.
        spec: String,
        /// What went wrong.
        message: String,
    },
    /// An option is out of range.
    #[error("{0}")]
    Invalid(String),
    /// An output file could not be written.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The plot could not be drawn.
    #[error("plot {path}: {message}")]
    Plot {
        /// The PNG file.
        path: PathBuf,
        /// What the plotting library said.
        message: String,
    },
}

fn parse_spec<C: ?Sized + ComponentKind>(
    what: &'static str,
    spec: &str,
) -> Result<Component<C>, BenchError> {
    ron::from_str(spec).map_err(|e| BenchError::Spec {
        what,
        spec: spec.to_string(),
        message: e.to_string(),
    })
}

/// Column labels: the registered name, or name plus the spec's settings
/// (whitespace removed) when several specs share a name.
fn column_labels(names: &[String], specs: &[String]) -> Vec<String> {
    names
        .iter()
        .zip(specs)
        .map(|(n, spec)| {
            if names.iter().filter(|m| *m == n).count() == 1 {
                return n.clone();
            }
            let compact: String = spec.chars().filter(|c| !c.is_whitespace()).collect();
            let settings = compact
                .split_once(':')
                .map(|(_, s)| s.strip_suffix('}').unwrap_or(s).to_string())
                .unwrap_or(compact);
            format!("{n}{settings}")
        })
        .collect()
}

/// Runs the scaling benchmark; see the module documentation. Spec errors
/// stop it before anything runs; a cell that fails (a model that cannot be
/// built for that `D`, a non-finite loss) is reported in its cell.
pub fn scaling(opts: &ScalingOptions) -> Result<ScalingReport, BenchError> {
    if opts.dims.is_empty() || opts.dims.contains(&0) {
        return Err(BenchError::Invalid(
            "dims: give at least one dimension, each ≥ 1".into(),
        ));
    }
    if opts.objectives.is_empty() {
        return Err(BenchError::Invalid("objectives: give at least one".into()));
    }
    if opts.batch == 0 || opts.steps == 0 {
        return Err(BenchError::Invalid("batch and steps must be ≥ 1".into()));
    }
    let model = parse_spec::<dyn ModelConfig>("model", &opts.model)?;
    let projection_c = parse_spec::<dyn ProjectionConfig>("projection", &opts.projection)?;
    let projection = projection_c.config.build().map_err(|e| BenchError::Spec {
        what: "projection",
        spec: opts.projection.clone(),
        message: e.to_string(),
    })?;
    let mut names = Vec::new();
    let mut objectives: Vec<Box<dyn Objective>> = Vec::new();
    for spec in &opts.objectives {
        let c = parse_spec::<dyn ObjectiveConfig>("objective", spec)?;
        let o = c.config.build().map_err(|e| BenchError::Spec {
            what: "objective",
            spec: spec.clone(),
            message: e.to_string(),
        })?;
        names.push(c.name);
        objectives.push(o);
    }
    // A model spec that cannot be built, or that an objective cannot train,
    // is an error of the options, not of one cell.
    let dev = Device::cpu(opts.precision);
    let probe =
        build_cell_model(opts, &model, &dev, opts.dims[0]).map_err(|message| BenchError::Spec {
            what: "model",
            spec: opts.model.clone(),
            message: format!("for D = {}: {message}", opts.dims[0]),
        })?;
    for ((name, spec), o) in names.iter().zip(&opts.objectives).zip(&objectives) {
        check_compatible(name, &**o, &*probe, &projection_c.name, &*projection).map_err(|e| {
            BenchError::Spec {
                what: "objective",
                spec: spec.clone(),
                message: e.to_string(),
            }
        })?;
    }
    let labels = column_labels(&names, &opts.objectives);
    let columns: Vec<ObjectiveColumn> = labels
        .iter()
        .zip(&names)
        .zip(&opts.objectives)
        .map(|((label, name), spec)| ObjectiveColumn {
            label: label.clone(),
            name: name.clone(),
            spec: spec.clone(),
        })
        .collect();
    let mut cells = Vec::new();
    for &dim in &opts.dims {
        for (col, objective) in columns.iter().zip(&objectives) {
            let limit = opts
                .max_dim
                .iter()
                .filter(|(n, _)| *n == col.name)
                .map(|(_, d)| *d)
                .min();
            let mut cell = ScalingCell {
                objective: col.label.clone(),
                dim,
                timing: None,
                peak_mib: None,
                skipped: None,
                error: None,
            };
            match limit {
                Some(max) if dim > max => cell.skipped = Some(format!("D > {max}")),
                _ => match build_cell_model(opts, &model, &dev, dim)
                    .and_then(|m| measure(opts, m, &**objective, &*projection, dim))
                {
                    Ok(m) => {
                        cell.peak_mib = m.peak_bytes.map(|b| b as f64 / (1024.0 * 1024.0));
                        cell.timing = Some(m.timing);
                    }
                    Err(e) => cell.error = Some(e),
                },
            }
            if opts.verbose {
                let what = match (&cell.timing, &cell.skipped, &cell.error) {
                    (_, Some(s), _) => format!("skipped ({s})"),
                    (_, _, Some(e)) => format!("failed: {e}"),
                    (Some(t), _, _) => format!(
                        "{} ms per step (p10 {}, p90 {}), peak {} MiB",
                        fmt3(t.median * 1e3),
                        fmt3(t.p10 * 1e3),
                        fmt3(t.p90 * 1e3),
                        cell.peak_mib.map(fmt3).unwrap_or_else(|| "n/a".into())
                    ),
                    _ => String::new(),
                };
                tracing::info!("D = {dim}, {}: {what}", col.label);
            }
            cells.push(cell);
        }
    }
    let mut report = ScalingReport {
        model: opts.model.clone(),
        projection: opts.projection.clone(),
        batch: opts.batch,
        steps: opts.steps,
        warmup: opts.warmup,
        precision: opts.precision,
        dims: opts.dims.clone(),
        objectives: columns,
        cells,
        memory_measured: memory::is_installed(),
        ratio: None,
        csv_path: None,
        png_path: None,
    };
    report.ratio = opts.ratio.as_ref().and_then(|(a, b)| report.ratio_of(a, b));
    if let Some(dir) = &opts.out {
        let io = |path: &PathBuf| {
            let path = path.clone();
            move |source| BenchError::Io { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let csv = dir.join("scaling.csv");
        crate::atomic_file::write_atomic(&csv, report.csv().as_bytes()).map_err(io(&csv))?;
        report.csv_path = Some(csv);
        let png = dir.join("scaling.png");
        plot::scaling_png(&report, &png)?;
        report.png_path = Some(png);
    }
    Ok(report)
}
