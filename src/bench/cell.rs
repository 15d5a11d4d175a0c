//! One cell of the scaling benchmark: Gaussian batches, the model for dimension `D`, timed training steps.

use std::time::Instant;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use super::memory;
use super::options::ScalingOptions;
use super::report::Timing;
use super::MIN_TIMED_STEPS;
use crate::device::Device;
use crate::experiment::{derive_seed, streams};
use crate::model::{ModelSlot, ScoreModel};
use crate::objective::Objective;
use crate::projection::Projection;
use crate::registry::{BuiltModel, Component, ModelConfig};
use crate::task::{Metrics, Split, Task};
use crate::train::optim::Optimizer;
use crate::train::step::{train_step, StepParts};

/// Normal `N(0, I_dim)` batches, row-major, drawn on the host.
pub(super) fn gaussian_batches(seed: u64, count: usize, batch: usize, dim: usize) -> Vec<Vec<f64>> {
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
pub(super) struct GaussianBatches {
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

pub(super) struct Measured {
    /// Seconds per step over the timed steps.
    pub(super) timing: Timing,
    /// Peak heap bytes above the baseline (with the counting allocator).
    pub(super) peak_bytes: Option<usize>,
}

/// The model of one cell, or why the cell is skipped.
pub(super) fn build_cell_model(
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

pub(super) fn measure(
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
