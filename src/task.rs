//! The [`Task`] trait: owns data, hands out training batches and evaluates.
//!
//! The training loop asks the task for a batch every step and for metrics on
//! the validation split every evaluation interval; after training it reloads
//! the best checkpoint (by [`Task::selection_metric`]) and asks for the test
//! metrics.
//!
//! Most tasks only supply data: the loop trains the experiment's model with
//! the experiment's objective. A task that trains networks of its own (a VAE,
//! a WAE) also returns them from [`Task::params`] and builds each step's loss
//! in [`Task::train_loss`], using the experiment's model as an auxiliary
//! score estimator (a score network trained by the objective alongside, or a
//! kernel estimator refitted on every batch).

use std::collections::BTreeMap;

use rand::seq::SliceRandom;
use rand::RngCore;

use crate::autodiff::Graph;
use crate::device::{Dev, Mat};
use crate::model::ScoreModel;
use crate::nn::Param;
use crate::objective::Objective;
use crate::projection::Projection;

/// Metric name → value. Names use `/`-free snake case; the loop prefixes the split.
pub type Metrics = BTreeMap<String, f64>;

/// Draws training rows in epochs: a fresh random order of all `n` rows each
/// epoch, so every row is seen once per epoch (the first epoch is shuffled too).
#[derive(Debug, Clone)]
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

/// Data, batches and evaluation for one experiment.
pub trait Task {
    /// Dimension `D` of the points the model scores: the data for density
    /// estimation, the latent codes for an autoencoder.
    fn dim(&self) -> usize;

    /// One line describing the data (shown at the start of a run).
    fn describe(&self) -> String;

    /// A training batch of `batch_size` rows, row-major `batch_size × D`.
    fn train_batch(&mut self, rng: &mut dyn RngCore, batch_size: usize) -> Vec<f64>;

    /// Metrics of `model` on a held-out split.
    fn evaluate(&self, dev: &Dev, model: &dyn ScoreModel, split: Split) -> Metrics;

    /// The metric (lower is better) that picks the best checkpoint.
    fn selection_metric(&self) -> &'static str;

    /// Parameters the task trains itself (e.g. a VAE's encoder and decoder),
    /// together with the model's; none by default. Their names must differ
    /// from the model's (prefix them with the task's name).
    fn params(&self) -> Vec<&Param> {
        Vec::new()
    }
    /// Mutable parameters in the same order as [`Task::params`].
    fn params_mut(&mut self) -> Vec<&mut Param> {
        Vec::new()
    }
    /// Whether the task uses the experiment's `model` (default true). A task
    /// that returns false gets no model (the experiment file leaves `model`,
    /// `objective` and `projection` out).
    fn uses_model(&self) -> bool {
        true
    }
    /// Number of conditioning columns the task appends to the model's input
    /// rows (see [`ScoreModel::context_dim`]); 0 by default.
    fn model_context_dim(&self) -> usize {
        0
    }
    /// Checks that the experiment's model suits the task (called once the
    /// model is built); the error names the setting to change.
    fn check_model(&self, _model: &dyn ScoreModel) -> Result<(), crate::error::ConfigError> {
        Ok(())
    }
    /// The step's loss for a task that trains networks of its own: a `1 × 1`
    /// matrix on `g` whose gradient reaches the task's and the model's
    /// parameters. `objective` is the experiment's objective and projection
    /// when the model is trained (not for a model that
    /// [`ScoreModel::fits_from_samples`]). `None` (the default): the loop
    /// uses `objective.loss(model, train_batch(batch_size))`. An `Err` stops
    /// the run with the step number.
    fn train_loss(
        &mut self,
        _g: &mut Graph,
        _model: &mut dyn ScoreModel,
        _objective: Option<(&dyn Objective, &dyn Projection)>,
        _rng: &mut dyn RngCore,
        _batch_size: usize,
    ) -> Option<Result<Mat, String>> {
        None
    }
    /// Scalars of the last [`Task::train_loss`] worth logging under
    /// `train/` (e.g. reconstruction error, the score network's own loss).
    fn train_scalars(&self) -> Metrics {
        Metrics::new()
    }
    /// Images and other artifacts of `model` (e.g. sample grids); none by default.
    fn artifacts(
        &self,
        _dev: &Dev,
        _model: &dyn ScoreModel,
        _rng: &mut dyn RngCore,
    ) -> Vec<Artifact> {
        Vec::new()
    }
}
