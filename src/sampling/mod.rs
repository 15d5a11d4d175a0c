//! Sampling from any learned score: Langevin dynamics, annealed Langevin
//! and, for models with a log-density, Metropolis-adjusted Langevin (MALA);
//! distances between samples and data; the evaluation-time sampling metrics
//! and pictures.
//!
//! Data flow: a sampler sees a [`Density`] — what it needs of a density:
//! scores of a batch of points and, when there is one, log-densities.
//! [`ModelDensity`] wraps any unconditional [`ScoreModel`] (trained
//! networks, kernel estimators, flows: scores on an inference
//! [`Graph`], log-densities through [`ScoreModel::as_energy`]);
//! [`TargetDensity`] wraps a closed-form [`Target`] (for tests and
//! pictures of the truth). [`init::Init`] draws the chains' starting
//! points, [`langevin::sample`] moves them, and [`distance`] compares the
//! result with data. [`evaluation`] runs all of this at every evaluation of
//! a training run (seeded, so the same model gives the same numbers), and
//! [`picture`] draws 2-D fields and image grids.
//!
//! Every sampler works in the model's coordinates; mapping samples to the
//! data's own units is the caller's ([`crate::data_map::DataMap::to_data`]).

pub mod distance;
pub mod evaluation;
pub mod init;
pub mod langevin;
pub mod picture;

use crate::autodiff::Graph;
use crate::device::Device;
use crate::model::ScoreModel;
use crate::targets::{self, Target};

/// Rows scored at once on one inference graph.
const ROWS_PER_CALL: usize = 4096;

/// Why sampling could not run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SampleError {
    /// The model is conditional (`h(z | c)`): it has no density of its own to sample.
    #[error("the model is conditional on {context} context columns (h(z | c)); Langevin sampling needs an unconditional model")]
    Conditional {
        /// Context columns.
        context: usize,
    },
    /// MALA was asked of a model without a log-density.
    #[error("MALA needs a log-density (an energy model such as mlp_energy, dkef or nice); this model has only a score: sample without the Metropolis correction")]
    NoLogDensity,
    /// A sampler setting is out of range.
    #[error("{field}: {message}")]
    Setting {
        /// The setting.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// The starting points could not be drawn.
    #[error("initial points: {0}")]
    Init(String),
    /// A chain left the finite numbers.
    #[error("{what} is not finite at level {level}, step {step} (chain {chain}); the step size is too large for this model (try a smaller --step-size / step_size, or MALA for an energy model)")]
    NonFinite {
        /// What became non-finite (`score`, `sample`, `log-density`).
        what: &'static str,
        /// Annealing level (0-based; 0 without annealing).
        level: usize,
        /// Step within the level (0: the starting points).
        step: usize,
        /// The chain (row).
        chain: usize,
    },
}

/// What a sampler needs of a density, on host `f64` rows (`n × dim`, row-major).
pub trait Density {
    /// Dimension of the points.
    fn dim(&self) -> usize;
    /// The score `∇ₓ log p(x)` of every row.
    fn scores(&self, x: &[f64]) -> Vec<f64>;
    /// `log p̃(x)` of every row (up to a constant), or `None` when the
    /// density has no log-density (a score-only model).
    fn log_densities(&self, x: &[f64]) -> Option<Vec<f64>>;
}

/// A score model as a [`Density`].
pub struct ModelDensity<'a> {
    dev: &'a Device,
    model: &'a dyn ScoreModel,
}

impl<'a> ModelDensity<'a> {
    /// Wraps `model` (computing on `dev`).
    ///
    /// # Errors
    /// [`SampleError::Conditional`] for a conditional model.
    pub fn new(dev: &'a Device, model: &'a dyn ScoreModel) -> Result<Self, SampleError> {
        match model.context_dim() {
            0 => Ok(Self { dev, model }),
            context => Err(SampleError::Conditional { context }),
        }
    }

    /// Whether the model has a log-density (MALA applies).
    pub fn has_log_density(&self) -> bool {
        self.model.as_energy().is_some()
    }
}

impl Density for ModelDensity<'_> {
    fn dim(&self) -> usize {
        self.model.dim()
    }

    fn scores(&self, x: &[f64]) -> Vec<f64> {
        let d = self.dim();
        let mut out = Vec::with_capacity(x.len());
        for chunk in x.chunks(ROWS_PER_CALL * d) {
            let mut g = Graph::inference(self.dev);
            let m = g.constant(chunk.to_vec(), chunk.len() / d, d);
            out.extend(self.model.score(&mut g, &m).to_host());
        }
        out
    }

    fn log_densities(&self, x: &[f64]) -> Option<Vec<f64>> {
        crate::model::log_densities_in_chunks(self.dev, self.model, x, self.dim(), ROWS_PER_CALL)
    }
}

/// A closed-form target as a [`Density`] (exact scores and log-densities).
pub struct TargetDensity<'a>(pub &'a dyn Target);

impl Density for TargetDensity<'_> {
    fn dim(&self) -> usize {
        self.0.dim()
    }
    fn scores(&self, x: &[f64]) -> Vec<f64> {
        targets::scores(self.0, x)
    }
    fn log_densities(&self, x: &[f64]) -> Option<Vec<f64>> {
        Some(targets::log_densities(self.0, x))
    }
}
