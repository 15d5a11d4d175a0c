//! The scaling benchmark's settings: defaults from RON and the options of one run.

use std::path::PathBuf;

use serde::Deserialize;

use super::{
    BenchError, DEFAULT_BATCH, DEFAULT_CELL_BUDGET_SECONDS, DEFAULT_DIMS, DEFAULT_OPTIMIZER,
    DEFAULT_STEPS, DEFAULT_WARMUP,
};
use crate::device::Precision;
use crate::experiment::OptimizerConfig;

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
    /// (and at least [`MIN_TIMED_STEPS`](super::MIN_TIMED_STEPS) ran), the cell stops early; warm-up
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
