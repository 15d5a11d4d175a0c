//! One training step, shared by `run`, `sweep` (through `run`) and `bench`:
//! the step's loss on a fresh tracking graph, one backward pass, the global
//! gradient norm, clipping and the optimizer's update.
//!
//! Data flow: the trainable parameters of the model (when it is trained)
//! and of the task are the graph's leaves, in the [`crate::nn::Module`]
//! order the optimizer walks too. The loss comes from the task's own
//! training ([`crate::task::OwnTraining`]) or from the objective on a
//! training batch (for a model that solves its coefficients, through
//! [`crate::closed_form::solved_loss`]). A task whose schedule is
//! [`ScoreSchedule::Alternating`] gets two updates per step: the score
//! model's alone (its own optimizer rule, on a copy of the random stream),
//! then, with the task's batch state rewound so the draws repeat, the
//! task's networks' with the updated model's scores.

use rand::RngCore;
use rand_chacha::ChaCha8Rng;

use crate::autodiff::Graph;
use crate::device::{Device, Mat};
use crate::experiment::OptimizerConfig;
use crate::model::ModelSlot;
use crate::nn::module::{trainable_values, Pair};
use crate::objective::{LossContext, Objective};
use crate::projection::Projection;
use crate::task::{ScoreSchedule, ScoreSource, Task};

use super::optim::{clip_scale, global_norm, Optimizer};

/// Why a step failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StepError {
    /// The task or the objective could not build the loss.
    #[error("{0}")]
    Loss(String),
    /// The loss or the gradient became NaN or infinite.
    #[error("{what} is {value}")]
    NonFinite {
        /// Which quantity.
        what: &'static str,
        /// Its value.
        value: f64,
    },
}

/// What a step reports.
#[derive(Debug, Clone, Copy)]
pub struct StepOutcome {
    /// The loss before the update.
    pub loss: f64,
    /// The global gradient norm before clipping.
    pub grad_norm: f64,
}

/// The parts of an experiment one step uses.
pub struct StepParts<'a> {
    /// The device.
    pub dev: &'a Device,
    /// The model slot (only a trained model has parameters to update).
    pub model: &'a mut ModelSlot,
    /// The task (its own parameters are trained too).
    pub task: &'a mut dyn Task,
    /// The objective and projection, when the model is trained.
    pub objective: Option<(&'a dyn Objective, &'a dyn Projection)>,
}

/// A module of no parameters, standing in for a model that is not trained.
struct Nothing;
crate::module!(Nothing {});

/// One training step of `batch_size` points; see the module documentation.
///
/// # Errors
/// The task's or objective's error, or a non-finite loss or gradient norm
/// (the parameters of that update are then left as they were).
pub fn train_step(
    parts: StepParts<'_>,
    opt: &mut Optimizer,
    rng: &mut ChaCha8Rng,
    batch_size: usize,
    grad_clip: Option<f64>,
) -> Result<StepOutcome, StepError> {
    let StepParts {
        dev,
        model,
        task,
        objective,
    } = parts;
    let schedule = task.as_trainer().map(|t| t.score_schedule());
    if let (Some(ScoreSchedule::Alternating { optimizer }), ModelSlot::Trained(_), Some(_)) =
        (&schedule, &*model, objective)
    {
        // The score model's step on the step's draws, then the task's on
        // the same draws (rng copied, the task's batch state rewound).
        let saved = task.state();
        let mut again = rng.clone();
        let score = Group::Model(optimizer);
        let step = Step {
            dev,
            batch_size,
            grad_clip,
        };
        step.update(model, task, objective, opt, &mut again, score)?;
        task.set_state(&saved)
            .map_err(|e| StepError::Loss(format!("rewinding the task's batches: {e}")))?;
        return step.update(model, task, objective, opt, rng, Group::Task);
    }
    Step {
        dev,
        batch_size,
        grad_clip,
    }
    .update(model, task, objective, opt, rng, Group::All)
}

/// Which parameters one update trains.
enum Group<'a> {
    /// The model's and the task's, with the experiment's optimizer.
    All,
    /// The model's alone, with its own optimizer.
    Model(&'a OptimizerConfig),
    /// The task's alone, with the experiment's optimizer.
    Task,
}

/// What every update of a step shares.
struct Step<'a> {
    dev: &'a Device,
    batch_size: usize,
    grad_clip: Option<f64>,
}

impl Step<'_> {
    /// One loss, backward pass and update of `group`'s parameters.
    fn update(
        &self,
        model: &mut ModelSlot,
        task: &mut dyn Task,
        objective: Option<(&dyn Objective, &dyn Projection)>,
        opt: &mut Optimizer,
        rng: &mut dyn RngCore,
        group: Group<'_>,
    ) -> Result<StepOutcome, StepError> {
        let leaves: Vec<Mat> = {
            let mut v = match (model as &ModelSlot, &group) {
                (ModelSlot::Trained(m), Group::All | Group::Model(_)) => trainable_values(&**m),
                _ => Vec::new(),
            };
            if !matches!(group, Group::Model(_)) {
                v.extend(trainable_values(task));
            }
            v
        };
        let refs: Vec<&Mat> = leaves.iter().collect();
        let mut g = Graph::tracking(self.dev, &refs);
        let loss = step_loss(&mut g, model, task, objective, rng, self.batch_size)?;
        let loss_value = loss.scalar();
        if !loss_value.is_finite() {
            return Err(StepError::NonFinite {
                what: "training loss",
                value: loss_value,
            });
        }
        let grads = g.backward(&loss);
        let grad_norm = global_norm(&grads);
        if !grad_norm.is_finite() {
            return Err(StepError::NonFinite {
                what: "gradient norm",
                value: grad_norm,
            });
        }
        let scale = clip_scale(grad_norm, self.grad_clip);
        match (model, group) {
            (ModelSlot::Trained(m), Group::All) => {
                opt.step(&mut Pair(&mut **m, task), &grads, scale)
            }
            (ModelSlot::Trained(m), Group::Model(config)) => {
                opt.step_score(config, &mut **m, &grads, scale)
            }
            _ => opt.step(&mut Pair(&mut Nothing, task), &grads, scale),
        }
        Ok(StepOutcome {
            loss: loss_value,
            grad_norm,
        })
    }
}

fn step_loss(
    g: &mut Graph,
    model: &ModelSlot,
    task: &mut dyn Task,
    objective: Option<(&dyn Objective, &dyn Projection)>,
    rng: &mut dyn RngCore,
    batch_size: usize,
) -> Result<Mat, StepError> {
    let dim = task.dim();
    if let Some(trainer) = task.as_trainer() {
        let scores = match (model, objective) {
            (ModelSlot::Trained(m), Some((objective, projection))) => ScoreSource::Trained {
                model: &**m,
                objective,
                projection,
            },
            (ModelSlot::Fitted { estimator, .. }, _) => ScoreSource::Fitted(&**estimator),
            _ => ScoreSource::None,
        };
        return trainer
            .train_loss(g, scores, rng, batch_size)
            .map_err(|e| StepError::Loss(e.to_string()));
    }
    let (ModelSlot::Trained(model), Some((objective, projection))) = (model, objective) else {
        return Err(StepError::Loss(
            "the experiment has no objective to train its model".into(),
        ));
    };
    let batch = task.train_batch(rng, batch_size);
    if batch.len() != batch_size * (dim + model.context_dim()) {
        return Err(StepError::Loss(format!(
            "the task gave {} values for a batch of {batch_size} rows of width {}",
            batch.len(),
            dim + model.context_dim()
        )));
    }
    let width = dim + model.context_dim();
    let mut ctx = LossContext { projection, rng };
    if let Some(lc) = model.as_linear_coefficients() {
        return crate::closed_form::solved_loss(g, lc, objective, &batch, dim, &mut ctx)
            .map_err(|e| StepError::Loss(e.to_string()));
    }
    let x = g.constant(batch, batch_size, width);
    objective
        .loss(g, &**model, &x, &mut ctx)
        .map_err(|e| StepError::Loss(e.to_string()))
}

/// The parameters the loop checkpoints: the model's (trained or fitted) and
/// the task's, as one module.
pub fn checkpointed<'a>(
    model: &'a mut ModelSlot,
    task: &'a mut dyn Task,
) -> Pair<'a, ModelSlot, dyn Task + 'a> {
    Pair(model, task)
}
