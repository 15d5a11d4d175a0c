//! The [`Task`] trait: owns data, hands out training batches and evaluates.
//!
//! The training loop asks the task for a batch every step and for metrics on
//! the validation split every evaluation interval; after training it reloads
//! the best checkpoint (by [`Task::selection_metric`], or by
//! [`Task::log_likelihood_metric`] when the experiment selects by
//! likelihood; see [`crate::train::selection`]) and asks for the test
//! metrics.
//!
//! Most tasks only supply data: the loop trains the experiment's model with
//! the experiment's objective. A task that trains networks of its own (a VAE,
//! a WAE) has them as its [`Module`] parameters and builds each step's loss
//! through [`OwnTraining`], using the experiment's model as an auxiliary
//! score estimator ([`ScoreSource`]: a score network trained by the
//! objective alongside, or a kernel estimator refitted on every batch).
//!
//! A task also says how its points relate to the user's data
//! ([`Task::data_map`]: e.g. a whitening), and offers what generic
//! diagnostics need: its training and held-out points, the true density when
//! it knows one, and a picture of points (an image grid); the evaluation-time
//! Langevin sampling ([`crate::sampling::evaluation`]) uses these.

use std::collections::BTreeMap;

use rand::seq::SliceRandom;
use rand::RngCore;

use crate::autodiff::Graph;
use crate::data_map::DataMap;
use crate::device::{Device, Mat};
use crate::model::{ModelSlot, SampleEstimator, ScoreModel};
use crate::nn::Module;
use crate::objective::Objective;
use crate::projection::Projection;
use crate::targets::Target;

/// Metric name → value. Names use `/`-free snake case; the loop prefixes the split.
pub type Metrics = BTreeMap<String, f64>;

/// Draws training rows in epochs: a fresh random order of all `n` rows each
/// epoch, so every row is seen once per epoch (the first epoch is shuffled too).
/// Its state (the order and the position in it) is saved with a run's
/// checkpoint so a resumed run draws the same rows.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EpochSampler {
    order: Vec<usize>,
    cursor: usize,
}

impl EpochSampler {
    /// A sampler over rows `0..n`.
    pub fn new(n: usize) -> Self {
        Self {
            order: (0..n).collect(),
            cursor: n,
        }
    }

    /// The sampler's state as JSON (for [`Task::state`]).
    pub fn state(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("an epoch sampler serializes")
    }

    /// Restores a state from [`EpochSampler::state`] of a sampler over the same rows.
    ///
    /// # Errors
    /// When the state is not a sampler's, or is over another number of rows.
    pub fn set_state(&mut self, state: &serde_json::Value) -> Result<(), TaskError> {
        let s: EpochSampler = serde_json::from_value(state.clone())
            .map_err(|e| TaskError::Invalid(format!("saved epoch state: {e}")))?;
        let mut sorted = s.order.clone();
        sorted.sort_unstable();
        if sorted.len() != self.order.len()
            || sorted.iter().enumerate().any(|(i, &v)| i != v)
            || s.cursor > s.order.len()
        {
            return Err(TaskError::Invalid(format!(
                "saved epoch state is over {} rows, the task has {}",
                s.order.len(),
                self.order.len()
            )));
        }
        *self = s;
        Ok(())
    }

    /// The next row index, reshuffling at the start of each epoch.
    ///
    /// # Panics
    /// If the sampler has no rows.
    pub fn next_index(&mut self, rng: &mut dyn RngCore) -> usize {
        assert!(!self.order.is_empty(), "EpochSampler over no rows");
        if self.cursor == self.order.len() {
            self.order.shuffle(rng);
            self.cursor = 0;
        }
        let i = self.order[self.cursor];
        self.cursor += 1;
        i
    }
}

/// Which held-out split to evaluate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// Used for model selection during training.
    Validation,
    /// Reported once, with the selected model.
    Test,
}

impl Split {
    /// `"val"` or `"test"`, used as the metric prefix in logs.
    pub fn prefix(&self) -> &'static str {
        match self {
            Split::Validation => "val",
            Split::Test => "test",
        }
    }
}

/// Something a task produces for people to look at, such as a grid of
/// model samples. The training loop logs images to TensorBoard at every
/// evaluation and saves the best model's as `<name>.png` in the run folder.
#[derive(Debug, Clone, PartialEq)]
pub enum Artifact {
    /// An RGB8 image, row-major, 3 bytes a pixel.
    Image {
        /// File stem and TensorBoard tag suffix (letters, digits, `_`, `-`).
        name: String,
        /// `width · height · 3` bytes.
        rgb: Vec<u8>,
        /// Width in pixels.
        width: usize,
        /// Height in pixels.
        height: usize,
    },
}

/// How a task uses the experiment's model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelUse {
    /// No model (the experiment file leaves `model`, `objective` and
    /// `projection` out).
    None,
    /// A model of the task's `dim` points.
    Scores,
    /// A conditional model `h(z | c)` with this many context columns
    /// appended to every input row (see [`ScoreModel::context_dim`]); a
    /// model fitted from samples is refitted per condition instead.
    Conditional(usize),
}

/// How a task that trains networks of its own updates the experiment's
/// trained score model.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum ScoreSchedule {
    /// Each step, first one step of the score model alone with its own
    /// `optimizer` on the step's samples, then one step of the task's
    /// networks (the experiment's optimizer) with the updated model's
    /// scores on the same samples: the paper's schedule.
    Alternating {
        /// The score model's optimizer (the paper: RMSProp, lr 1e-3).
        optimizer: crate::experiment::OptimizerConfig,
    },
    /// One step of both at once with the experiment's optimizer (the
    /// model's loss added to the task's).
    Joint,
}

impl ScoreSchedule {
    /// Checks the score model's optimizer (errors name
    /// `score_schedule.optimizer.…`).
    ///
    /// # Errors
    /// An invalid optimizer setting.
    pub fn validate(&self) -> Result<(), crate::error::ConfigError> {
        match self {
            ScoreSchedule::Alternating { optimizer } => {
                optimizer.validate().map_err(|e| e.within("score_schedule"))
            }
            ScoreSchedule::Joint => Ok(()),
        }
    }
}

impl Default for ScoreSchedule {
    fn default() -> Self {
        ScoreSchedule::Alternating {
            optimizer: crate::experiment::OptimizerConfig::RmsProp {
                lr: 1e-3,
                rho: 0.99,
                eps: 1e-8,
            },
        }
    }
}

/// Where a task that trains networks of its own gets scores of its samples.
pub enum ScoreSource<'a> {
    /// No model.
    None,
    /// A score model trained alongside by the experiment's objective.
    Trained {
        /// The model.
        model: &'a dyn ScoreModel,
        /// Its objective.
        objective: &'a dyn Objective,
        /// The objective's projection.
        projection: &'a dyn Projection,
    },
    /// An estimator refitted on the task's samples at every step.
    Fitted(&'a dyn SampleEstimator),
}

/// Data, batches and evaluation for one experiment. The task's own
/// parameters (networks it trains, e.g. a VAE's encoder and decoder) are
/// its [`Module`] parameters; most tasks have none.
pub trait Task: Module {
    /// Dimension `D` of the points the model scores: the data for density
    /// estimation, the latent codes for an autoencoder.
    fn dim(&self) -> usize;

    /// One line describing the data (shown at the start of a run).
    fn describe(&self) -> String;

    /// The metric (lower is better) that picks the best checkpoint.
    fn selection_metric(&self) -> &'static str;

    /// The name of the validation log-likelihood (higher is better) this
    /// task reports for `model`, if it reports one: what the experiment's
    /// `selection: LogLikelihood` selects by (default: none).
    fn log_likelihood_metric(&self, _model: &dyn ScoreModel) -> Option<&'static str> {
        None
    }

    /// How the task uses the experiment's model (default: a model of its points).
    fn model_use(&self) -> ModelUse {
        ModelUse::Scores
    }

    /// Checks that the experiment's model suits the task (called once the
    /// model is built); the error names the setting to change.
    fn check_model(&self, _model: &ModelSlot) -> Result<(), crate::error::ConfigError> {
        Ok(())
    }

    /// A training batch of `batch_size` rows, row-major `batch_size × D`.
    fn train_batch(&mut self, rng: &mut dyn RngCore, batch_size: usize) -> Vec<f64>;

    /// Metrics on a held-out split, of `model` when the task scores with one.
    fn evaluate(&self, dev: &Device, model: Option<&dyn ScoreModel>, split: Split) -> Metrics;

    /// Images and other artifacts (e.g. sample grids); none by default.
    fn artifacts(
        &self,
        _dev: &Device,
        _model: Option<&dyn ScoreModel>,
        _rng: &mut dyn RngCore,
    ) -> Vec<Artifact> {
        Vec::new()
    }

    /// The task's own training step, for a task that trains networks of its own.
    fn as_trainer(&mut self) -> Option<&mut dyn OwnTraining> {
        None
    }

    /// The map from the data's own units to the points the model sees
    /// (default: the identity). A task that preprocesses must say so; the
    /// run saves the map, and `score` and `sample` convert through it.
    fn data_map(&self) -> DataMap {
        DataMap::Identity
    }

    /// The training points as the model sees them (row-major `n × D`), when
    /// the task keeps a fixed set of them (default: none).
    fn train_points(&self) -> Option<&[f64]> {
        None
    }

    /// A held-out split as the model sees it (row-major `n × D`), when the
    /// task's points are data a model's samples can be compared with
    /// (default: none).
    fn held_out_points(&self, _split: Split) -> Option<&[f64]> {
        None
    }

    /// The density the data were drawn from, when the task knows it in
    /// closed form (synthetic targets; default: none).
    fn truth(&self) -> Option<&dyn Target> {
        None
    }

    /// A picture of points in the model's coordinates (row-major `n × D`),
    /// e.g. images tiled into a grid: `(rgb, width, height)`; `None` when the
    /// task has no picture of its points (default).
    fn picture_points(&self, _points: &[f64]) -> Option<(Vec<u8>, usize, usize)> {
        None
    }

    /// The state that changes as the task hands out batches (e.g. the epoch
    /// order), saved with every checkpoint so a resumed run continues
    /// exactly; `Null` (the default) for a task without such state.
    fn state(&self) -> serde_json::Value {
        serde_json::Value::Null
    }

    /// Restores what [`Task::state`] returned.
    ///
    /// # Errors
    /// When the state does not fit this task (another data set).
    fn set_state(&mut self, _state: &serde_json::Value) -> Result<(), TaskError> {
        Ok(())
    }
}

/// Why a task's own training step failed.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// The score estimator could not be fitted to the task's samples.
    #[error("fitting the score estimator: {0}")]
    Fit(#[from] crate::model::FitError),
    /// The experiment's objective could not build its loss.
    #[error(transparent)]
    Loss(#[from] crate::objective::LossError),
    /// Anything else the task checks (a non-finite score estimate, a missing model).
    #[error("{0}")]
    Invalid(String),
}

/// A task that trains networks of its own, with the experiment's model as an
/// auxiliary score estimator.
pub trait OwnTraining {
    /// The step's loss: a `1 × 1` matrix on `g` whose gradient reaches the
    /// task's parameters and a trained model's.
    ///
    /// # Errors
    /// What went wrong (a kernel estimator that could not be fitted, a
    /// non-finite score estimate); the run stops with the step number.
    fn train_loss(
        &mut self,
        g: &mut Graph,
        scores: ScoreSource<'_>,
        rng: &mut dyn RngCore,
        batch_size: usize,
    ) -> Result<Mat, TaskError>;

    /// Scalars of the last step worth logging under `train/` (e.g.
    /// reconstruction error, the score network's own loss).
    fn train_scalars(&self) -> Metrics {
        Metrics::new()
    }

    /// How a trained score model is updated relative to the task's
    /// networks (default: jointly). With [`ScoreSchedule::Alternating`]
    /// the step calls [`OwnTraining::train_loss`] twice on the same draws
    /// (the task's [`Task::state`] is rewound in between), so it must draw
    /// only from `rng` and that state.
    fn score_schedule(&self) -> ScoreSchedule {
        ScoreSchedule::Joint
    }
}
