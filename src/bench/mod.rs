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

pub mod memory;
mod plot;

use std::path::PathBuf;
use std::time::Instant;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use crate::device::{Device, Precision};
use crate::experiment::{check_compatible, derive_seed, streams, OptimizerConfig};
use crate::format::{align_columns, csv_field};
use crate::model::{ModelSlot, ScoreModel};
use crate::objective::Objective;
use crate::projection::Projection;
use crate::registry::{
    BuiltModel, Component, ComponentKind, ModelConfig, ObjectiveConfig, ProjectionConfig,
};
use crate::task::{Metrics, Split, Task};
use crate::train::optim::Optimizer;
use crate::train::step::{train_step, StepParts};

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

/// Defaults of the `bench scaling` command line, read from a RON file so
/// that plugin names stay out of `src/` (the binary bundles
/// `benches/scaling_defaults.ron`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScalingDefaults {
    /// The model spec built for every `D`.
    pub model: String,
    /// The objective specs, one column each.
    pub objectives: Vec<String>,
    /// The projection spec used by sliced objectives.
    pub projection: String,
    /// Registered name of exact score matching: skipped above `--sm-max-dim`
    /// and the numerator of the reported ratio.
    pub exact: String,
    /// Registered name of the sliced objective in the ratio's denominator.
    pub sliced: String,
}

impl ScalingDefaults {
    /// Parses the defaults file's text.
    pub fn parse(text: &str) -> Result<Self, BenchError> {
        ron::from_str(text).map_err(|e| BenchError::Spec {
            what: "defaults",
            spec: "scaling defaults".into(),
            message: e.to_string(),
        })
    }
}

/// What to measure.
#[derive(Debug, Clone)]
pub struct ScalingOptions {
    /// Model spec (RON component), built for every `D`.
    pub model: String,
    /// Objective specs (RON components), one column each.
    pub objectives: Vec<String>,
    /// Projection spec for sliced objectives.
    pub projection: String,
    /// The optimizer of the timed steps.
    pub optimizer: OptimizerConfig,
    /// Data dimensions, one row each.
    pub dims: Vec<usize>,
    /// Points per step.
    pub batch: usize,
    /// Timed steps per cell.
    pub steps: usize,
    /// Untimed steps before them.
    pub warmup: usize,
    /// Time budget of one cell in seconds: once the timed steps have used it
    /// (and at least [`MIN_TIMED_STEPS`] ran), the cell stops early; warm-up
    /// stops after one step once it has used a quarter of it. Keeps exact SM
    /// at large `D` (tens of seconds a step) affordable.
    pub cell_budget_seconds: f64,
    /// Objectives (by registered name) run only up to a dimension; larger
    /// `D` is reported as skipped.
    pub max_dim: Vec<(String, usize)>,
    /// Report median(numerator) / median(denominator) at the largest `D`
    /// where both ran (registered names).
    pub ratio: Option<(String, String)>,
    /// Seed of the data, the initialisation and the projections.
    pub seed: u64,
    /// Precision of the model's tensors.
    pub precision: Precision,
    /// Write `scaling.csv` and `scaling.png` into this folder.
    pub out: Option<PathBuf>,
    /// Log each cell as it finishes.
    pub verbose: bool,
}

impl ScalingOptions {
    /// Options with the given specs and the default dims, batch, steps,
    /// warm-up and optimizer, no limits, no ratio and no output files.
    pub fn new(model: &str, objectives: &[&str], projection: &str) -> Self {
        Self {
            model: model.to_string(),
            objectives: objectives.iter().map(|s| s.to_string()).collect(),
            projection: projection.to_string(),
            optimizer: ron::from_str(DEFAULT_OPTIMIZER).expect("the default optimizer parses"),
            dims: DEFAULT_DIMS.to_vec(),
            batch: DEFAULT_BATCH,
            steps: DEFAULT_STEPS,
            warmup: DEFAULT_WARMUP,
            cell_budget_seconds: DEFAULT_CELL_BUDGET_SECONDS,
            max_dim: Vec::new(),
            ratio: None,
            seed: 0,
            precision: Precision::default(),
            out: None,
            verbose: false,
        }
    }
}

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

/// What [`scaling`] measured.
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

fn fmt3(x: f64) -> String {
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

/// Normal `N(0, I_dim)` batches, row-major, drawn on the host.
fn gaussian_batches(seed: u64, count: usize, batch: usize, dim: usize) -> Vec<Vec<f64>> {
    let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(seed ^ dim as u64, streams::TASK));
    (0..count)
        .map(|_| {
            (0..batch * dim)
                .map(|_| StandardNormal.sample(&mut rng))
                .collect()
        })
        .collect()
}

/// The benchmark's data: pre-drawn `N(0, I_D)` batches, handed out in order.
struct GaussianBatches {
    dim: usize,
    batches: std::vec::IntoIter<Vec<f64>>,
}

crate::module!(GaussianBatches {});

impl Task for GaussianBatches {
    fn dim(&self) -> usize {
        self.dim
    }
    fn describe(&self) -> String {
        format!("N(0, I_{})", self.dim)
    }
    fn selection_metric(&self) -> &'static str {
        "none"
    }
    fn train_batch(&mut self, _rng: &mut dyn rand::RngCore, _batch_size: usize) -> Vec<f64> {
        self.batches.next().expect("one batch drawn per step")
    }
    fn evaluate(&self, _dev: &Device, _model: Option<&dyn ScoreModel>, _split: Split) -> Metrics {
        Metrics::new()
    }
}

struct Measured {
    timing: Timing,
    peak_bytes: Option<usize>,
}

/// The model of one cell, or why the cell is skipped.
fn build_cell_model(
    opts: &ScalingOptions,
    model: &Component<dyn ModelConfig>,
    dev: &Device,
    dim: usize,
) -> Result<Box<dyn ScoreModel>, String> {
    let mut init = ChaCha8Rng::seed_from_u64(derive_seed(opts.seed, streams::MODEL));
    match model
        .config
        .build(dev, dim, &mut init)
        .map_err(|e| format!("model.{}: {e}", model.name))?
    {
        BuiltModel::Trained(m) => Ok(m),
        BuiltModel::Fitted(_) => Err(format!(
            "model {} is fitted from samples, not trained",
            model.name
        )),
    }
}

fn measure(
    opts: &ScalingOptions,
    built: Box<dyn ScoreModel>,
    objective: &dyn Objective,
    projection: &dyn Projection,
    dim: usize,
) -> Result<Measured, String> {
    let dev = Device::cpu(opts.precision);
    let batches = gaussian_batches(opts.seed, opts.warmup + opts.steps, opts.batch, dim);
    let mut task = GaussianBatches {
        dim,
        batches: batches.into_iter(),
    };
    let mut model = ModelSlot::Trained(built);
    let mut opt = Optimizer::new(opts.optimizer.clone());
    let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(opts.seed, streams::TRAIN));
    let mut step = |step: usize| -> Result<(), String> {
        let parts = StepParts {
            dev: &dev,
            model: &mut model,
            task: &mut task,
            objective: Some((objective, projection)),
        };
        train_step(parts, &mut opt, &mut rng, opts.batch, None)
            .map(|_| ())
            .map_err(|e| format!("step {step}: {e}"))
    };
    let warm_started = Instant::now();
    for i in 0..opts.warmup {
        step(i + 1)?;
        if warm_started.elapsed().as_secs_f64() > opts.cell_budget_seconds / 4.0 {
            break;
        }
    }
    let installed = memory::is_installed();
    let baseline = memory::reset_peak();
    let mut samples = Vec::with_capacity(opts.steps);
    let timed_started = Instant::now();
    for i in 0..opts.steps {
        let started = Instant::now();
        step(opts.warmup + i + 1)?;
        samples.push(started.elapsed().as_secs_f64());
        if samples.len() >= MIN_TIMED_STEPS
            && timed_started.elapsed().as_secs_f64() > opts.cell_budget_seconds
        {
            break;
        }
    }
    let peak = memory::peak_bytes().saturating_sub(baseline);
    Ok(Measured {
        timing: Timing::from_samples(samples),
        peak_bytes: installed.then_some(peak),
    })
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
