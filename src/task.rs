//! The [`Task`] trait: owns data, hands out training batches and evaluates.
//!
//! The training loop asks the task for a batch every step and for metrics on
//! the validation split every evaluation interval; after training it reloads
//! the best checkpoint (by [`Task::selection_metric`]) and asks for the test
//! metrics.

use std::collections::BTreeMap;

use rand::RngCore;

use crate::device::Dev;
use crate::model::ScoreModel;

/// Metric name → value. Names use `/`-free snake case; the loop prefixes the split.
pub type Metrics = BTreeMap<String, f64>;

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
}
