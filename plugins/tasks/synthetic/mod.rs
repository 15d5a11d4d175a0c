//! `synthetic`: data drawn from a target density whose score is known in
//! closed form, so a trained model is judged against the truth.
//!
//! Data flow: `build` draws the target's random structure, then the training,
//! validation and test sets, all from the task's seeded stream. Training
//! batches are epochs of a shuffled training set (or fresh samples with
//! `fresh_samples: true`). Evaluation computes, on a held-out split:
//! * `fisher_divergence` = ½E‖s_model − s_true‖²,
//! * `relative_fisher_divergence` = that divided by ½E‖s_true‖²,
//! * `sm_loss` = E[tr ∇s_model + ½‖s_model‖²] (exact score matching, with
//!   its standard error `sm_loss_stderr`), and `sm_loss_optimum` =
//!   −½E‖s_true‖², the value a perfect model reaches; in expectation
//!   `sm_loss − sm_loss_optimum = fisher_divergence`.
//!
//! The best checkpoint is chosen by validation `sm_loss`, which needs no
//! ground truth, as it would on real data.
//!
//! The task offers its points and its target to the evaluation-time
//! sampling ([`crate::sampling::evaluation`]): Langevin samples are compared
//! with the held-out points, and 2-D targets are drawn beside the model.

use rand::RngCore;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::autodiff::Graph;
use crate::device::Device;
use crate::error::{require_at_least, ConfigError};
use crate::model::ScoreModel;
use crate::plugins::tasks::shared::{epoch_batch, insert_exact_sm, EVAL_ROWS};
use crate::registry::TaskConfig;
use crate::targets::{self, Target, TargetSpec};
use crate::task::{EpochSampler, Metrics, Split, Task};

fn default_train() -> usize {
    10_000
}
fn default_val() -> usize {
    1_000
}
fn default_test() -> usize {
    2_000
}

/// Settings of `synthetic`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyntheticConfig {
    /// The target density.
    pub target: TargetSpec,
    /// Training set size (default 10 000).
    #[serde(default = "default_train")]
    pub train_size: usize,
    /// Validation set size (default 1 000).
    #[serde(default = "default_val")]
    pub val_size: usize,
    /// Test set size (default 2 000).
    #[serde(default = "default_test")]
    pub test_size: usize,
    /// Draw fresh samples for every batch instead of cycling a training set.
    #[serde(default)]
    pub fresh_samples: bool,
}

/// A synthetic task.
pub struct Synthetic {
    target: Box<dyn Target>,
    dim: usize,
    train: Vec<f64>,
    val: Vec<f64>,
    test: Vec<f64>,
    fresh: bool,
    epochs: EpochSampler,
}

impl Synthetic {
    fn split(&self, split: Split) -> &[f64] {
        match split {
            Split::Validation => &self.val,
            Split::Test => &self.test,
        }
    }
}

/// Scores of `model` at row-major points, in chunks on an inference graph.
pub fn model_scores(dev: &Device, model: &dyn ScoreModel, x: &[f64], dim: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(x.len());
    for chunk in x.chunks(EVAL_ROWS * dim) {
        let mut g = Graph::inference(dev);
        let m = g.constant(chunk.to_vec(), chunk.len() / dim, dim);
        out.extend(model.score(&mut g, &m).to_host());
    }
    out
}

/// Fisher divergence metrics of model scores against true scores (row-major).
pub fn fisher_metrics(model_scores: &[f64], true_scores: &[f64], dim: usize) -> Metrics {
    let n = (true_scores.len() / dim) as f64;
    let diff: f64 = model_scores
        .iter()
        .zip(true_scores)
        .map(|(a, b)| (a - b).powi(2))
        .sum();
    let norm: f64 = true_scores.iter().map(|b| b * b).sum();
    let mut m = Metrics::new();
    m.insert("fisher_divergence".into(), 0.5 * diff / n);
    m.insert(
        "relative_fisher_divergence".into(),
        diff / norm.max(f64::MIN_POSITIVE),
    );
    m.insert("sm_loss_optimum".into(), -0.5 * norm / n);
    m
}

crate::module!(Synthetic {});

impl Task for Synthetic {
    fn dim(&self) -> usize {
        self.dim
    }

    fn describe(&self) -> String {
        format!(
            "synthetic {} ({} train / {} val / {} test points)",
            self.target.describe(),
            if self.fresh {
                "fresh".to_string()
            } else {
                (self.train.len() / self.dim).to_string()
            },
            self.val.len() / self.dim,
            self.test.len() / self.dim
        )
    }

    fn train_batch(&mut self, rng: &mut dyn RngCore, batch_size: usize) -> Vec<f64> {
        if self.fresh {
            return self.target.sample(rng, batch_size);
        }
        epoch_batch(&mut self.epochs, rng, &self.train, self.dim, batch_size)
    }

    fn evaluate(&self, dev: &Device, model: Option<&dyn ScoreModel>, split: Split) -> Metrics {
        let Some(model) = model else {
            return Metrics::new();
        };
        let x = self.split(split);
        let d = self.dim;
        let truth = targets::scores(&*self.target, x);
        let ms = model_scores(dev, model, x, d);
        let mut m = fisher_metrics(&ms, &truth, d);
        insert_exact_sm(&mut m, dev, model, x, d);
        m
    }

    fn selection_metric(&self) -> &'static str {
        "sm_loss"
    }

    fn train_points(&self) -> Option<&[f64]> {
        (!self.fresh).then_some(&self.train[..])
    }

    fn held_out_points(&self, split: Split) -> Option<&[f64]> {
        Some(self.split(split))
    }

    fn truth(&self) -> Option<&dyn Target> {
        Some(&*self.target)
    }

    fn state(&self) -> serde_json::Value {
        self.epochs.state()
    }

    fn set_state(&mut self, state: &serde_json::Value) -> Result<(), crate::task::TaskError> {
        self.epochs.set_state(state)
    }
}

impl TaskConfig for SyntheticConfig {
    fn build(&self, _dev: &Device, rng: &mut ChaCha8Rng) -> Result<Box<dyn Task>, ConfigError> {
        if !self.fresh_samples {
            require_at_least("train_size", self.train_size, 1)?;
        }
        require_at_least("val_size", self.val_size, 2)?;
        require_at_least("test_size", self.test_size, 2)?;
        let dim = self.target.dim();
        for (field, rows) in [
            ("train_size", self.train_size),
            ("val_size", self.val_size),
            ("test_size", self.test_size),
        ] {
            crate::budget::require_fits(
                field,
                "the data set",
                crate::budget::bytes(&[rows, dim, 8, 2]),
            )?;
        }
        let target = self.target.build(rng).map_err(
            |targets::TargetError::Invalid { field, message }| ConfigError::new(field, message),
        )?;
        let dim = target.dim();
        let train = if self.fresh_samples {
            Vec::new()
        } else {
            target.sample(rng, self.train_size)
        };
        let val = target.sample(rng, self.val_size);
        let test = target.sample(rng, self.test_size);
        Ok(Box::new(Synthetic {
            epochs: EpochSampler::new(train.len() / dim),
            target,
            dim,
            train,
            val,
            test,
            fresh: self.fresh_samples,
        }))
    }
}

crate::register_plugin!(
    TaskConfig,
    "synthetic",
    "samples from a density with a closed-form score (Gaussian, mixtures, banana, funnel); Fisher divergence to the truth",
    "(target: Mixture2d(components: 8, radius: 2.0, std: 0.3), train_size: 10000, val_size: 1000, test_size: 2000)",
    SyntheticConfig
);
