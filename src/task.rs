//! The [`Task`] trait: owns data, hands out training batches and evaluates.
//!
//! The training loop asks the task for a batch every step and for metrics on
//! the validation split every evaluation interval; after training it reloads
//! the best checkpoint (by [`Task::selection_metric`]) and asks for the test
//! metrics.

use std::collections::BTreeMap;

use rand::seq::SliceRandom;
use rand::RngCore;

use crate::device::Dev;
use crate::model::ScoreModel;

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
    /// Data dimension `D`.
    fn dim(&self) -> usize;

    /// One line describing the data (shown at the start of a run).
    fn describe(&self) -> String;

    /// A training batch of `batch_size` rows, row-major `batch_size × D`.
    fn train_batch(&mut self, rng: &mut dyn RngCore, batch_size: usize) -> Vec<f64>;

    /// Metrics of `model` on a held-out split.
    fn evaluate(&self, dev: &Dev, model: &dyn ScoreModel, split: Split) -> Metrics;

    /// The metric (lower is better) that picks the best checkpoint.
    fn selection_metric(&self) -> &'static str;

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
