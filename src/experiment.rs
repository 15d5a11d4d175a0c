//! Experiment files: parse, validate and build.
//!
//! Data flow: [`Experiment::load`] reads RON (errors carry path, line and
//! column; data paths in the file resolve against the file's folder, see
//! [`crate::data_path`]), [`Experiment::validate`] checks the top-level
//! settings, and
//! [`Experiment::build`] asks each plugin to validate its own settings and
//! build the runtime objects ([`Built`]), prefixing any error with the
//! component's path (`objective.ssm.projections`).

use std::path::{Path, PathBuf};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::device::{Backend, Device, Precision};
use crate::error::{require_at_least, require_positive, ConfigError, ExperimentError};
use crate::model::{ModelSlot, ScoreModel};
use crate::objective::Objective;
use crate::projection::Projection;
use crate::registry::{
    BuiltModel, Component, ModelConfig, ObjectiveConfig, ProjectionConfig, TaskConfig,
};
use crate::sampling::evaluation::SamplingEval;
use crate::task::{ModelUse, Task};
use crate::train::selection::{Selection, SelectionRule};

/// Where tensors live.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
pub enum DeviceChoice {
    /// The native CPU kernels (the default).
    #[default]
    Cpu,
    /// dfdx's CUDA device; needs a build with `--features cuda`.
    Cuda,
    /// dfdx's CPU ops: a slow reference implementation of every kernel,
    /// for cross-checking results.
    Reference,
}

impl DeviceChoice {
    /// The backend this choice computes on.
    pub fn backend(self) -> Backend {
        match self {
            DeviceChoice::Cpu => Backend::Cpu,
            DeviceChoice::Cuda => Backend::Cuda,
            DeviceChoice::Reference => Backend::Reference,
        }
    }
}

/// The optimizer and its settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub enum OptimizerConfig {
    /// Adam (Kingma & Ba) with bias correction.
    Adam {
        /// Learning rate.
        lr: f64,
        /// First-moment decay (default 0.9).
        #[serde(default = "default_beta1")]
        beta1: f64,
        /// Second-moment decay (default 0.999).
        #[serde(default = "default_beta2")]
        beta2: f64,
        /// Denominator offset (default 1e-8).
        #[serde(default = "default_eps")]
        eps: f64,
    },
    /// RMSProp (Hinton; PyTorch's `RMSprop` without momentum or centring):
    /// `v ← ρv + (1−ρ)g²`, `θ ← θ − lr·g/(√v + eps)`. The paper's optimizer
    /// for the implicit VAE/WAE and their score networks.
    RmsProp {
        /// Learning rate.
        lr: f64,
        /// Decay `ρ` of the squared-gradient average (default 0.99).
        #[serde(default = "default_rho")]
        rho: f64,
        /// Denominator offset (default 1e-8).
        #[serde(default = "default_eps")]
        eps: f64,
    },
    /// Stochastic gradient descent with optional momentum.
    Sgd {
        /// Learning rate.
        lr: f64,
        /// Momentum (default 0).
        #[serde(default)]
        momentum: f64,
    },
}

fn default_beta1() -> f64 {
    0.9
}
fn default_beta2() -> f64 {
    0.999
}
fn default_eps() -> f64 {
    1e-8
}
fn default_rho() -> f64 {
    0.99
}
fn default_log_every() -> usize {
    10
}

impl OptimizerConfig {
    /// The learning rate.
    pub fn lr(&self) -> f64 {
        match self {
            OptimizerConfig::Adam { lr, .. }
            | OptimizerConfig::RmsProp { lr, .. }
            | OptimizerConfig::Sgd { lr, .. } => *lr,
        }
    }

    /// Checks the settings (fields named `optimizer.…`).
    ///
    /// # Errors
    /// A learning rate that is not positive, a decay outside `[0, 1)`, a
    /// non-positive `eps`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        require_positive("optimizer.lr", self.lr())?;
        match *self {
            OptimizerConfig::Adam {
                beta1, beta2, eps, ..
            } => {
                for (f, b) in [("optimizer.beta1", beta1), ("optimizer.beta2", beta2)] {
                    if !(0.0..1.0).contains(&b) {
                        return Err(ConfigError::new(f, format!("must be in [0, 1), got {b}")));
                    }
                }
                require_positive("optimizer.eps", eps)
            }
            OptimizerConfig::RmsProp { rho, eps, .. } => {
                if !(0.0..1.0).contains(&rho) {
                    return Err(ConfigError::new(
                        "optimizer.rho",
                        format!("must be in [0, 1), got {rho}"),
                    ));
                }
                require_positive("optimizer.eps", eps)
            }
            OptimizerConfig::Sgd { momentum, .. } => {
                if !(0.0..1.0).contains(&momentum) {
                    return Err(ConfigError::new(
                        "optimizer.momentum",
                        format!("must be in [0, 1), got {momentum}"),
                    ));
                }
                Ok(())
            }
        }
    }
}

/// One experiment, as written in a RON file.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Experiment {
    /// Name of the run folder under `logs/` (letters, digits, `-`, `_`, `.`).
    pub name: String,
    /// Seed of every random stream (data, initialisation, projections, noise).
    #[serde(default)]
    pub seed: u64,
    /// Seed of the task's data stream (generation, splits, shuffles at build
    /// time) when it should stay fixed while `seed` varies, e.g. in a sweep
    /// over initialisations (default: `seed`).
    #[serde(default)]
    pub data_seed: Option<u64>,
    /// Compute device (default `Cpu`).
    #[serde(default)]
    pub device: DeviceChoice,
    /// Precision of the model's tensors (default `F32`; `F64` for exact
    /// checks). Kernel estimators, AIS and evaluation sums use `f64`
    /// whatever this says.
    #[serde(default)]
    pub precision: Precision,
    /// Data and evaluation.
    pub task: Component<dyn TaskConfig>,
    /// The score model; left out only for a task that uses none (see
    /// [`crate::task::Task::model_use`]).
    #[serde(default, with = "bare", skip_serializing_if = "Option::is_none")]
    pub model: Option<Component<dyn ModelConfig>>,
    /// The training loss; needed when the model is trained (not for a kernel
    /// estimator fitted from samples, or a task without a model).
    #[serde(default, with = "bare", skip_serializing_if = "Option::is_none")]
    pub objective: Option<Component<dyn ObjectiveConfig>>,
    /// Distribution of projection directions (used by sliced objectives);
    /// given exactly when `objective` is.
    #[serde(default, with = "bare", skip_serializing_if = "Option::is_none")]
    pub projection: Option<Component<dyn ProjectionConfig>>,
    /// Optimizer and learning rate.
    pub optimizer: OptimizerConfig,
    /// Points per training step.
    pub batch_size: usize,
    /// Training steps (0 for a model fitted from samples, with nothing to train).
    pub iterations: usize,
    /// Steps between validation evaluations (and checkpoints).
    pub eval_every: usize,
    /// Steps between training-loss log records (default 10).
    #[serde(default = "default_log_every")]
    pub log_every: usize,
    /// Clip the global gradient norm to this value (default: no clipping).
    #[serde(default)]
    pub grad_clip: Option<f64>,
    /// Stop early when the validation selection metric has not improved for
    /// this many training steps (default: never; checked at evaluations).
    #[serde(default)]
    pub patience: Option<usize>,
    /// Langevin sampling at every evaluation: the samples-vs-data metrics
    /// and the pictures (default: 128 chains of 100 steps of size 0.01; `chains: 0`
    /// switches it off). See [`crate::sampling::evaluation`].
    #[serde(default)]
    pub sampling: SamplingEval,
    /// The validation metric that picks the best checkpoint: `Task` (the
    /// task's own, default) or `LogLikelihood` (flows; see
    /// [`crate::train::selection`]).
    #[serde(default, skip_serializing_if = "Selection::is_task")]
    pub selection: Selection,
    /// What a Slurm array task running this experiment asks for, used by
    /// `sweep --launcher slurm` (default: none; see
    /// [`crate::sweep::slurm::SlurmSettings`]). Not part of the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slurm: Option<crate::sweep::slurm::SlurmSettings>,
    /// The folder relative data paths were resolved against (the
    /// experiment file's folder), when the experiment was read from a file.
    #[serde(skip)]
    base_dir: Option<PathBuf>,
}

/// The runtime objects an experiment describes.
pub struct Built {
    /// The device everything lives on.
    pub dev: Device,
    /// Data and evaluation.
    pub task: Box<dyn Task>,
    /// The model being trained or fitted.
    pub model: ModelSlot,
    /// The training loss, when the model is trained.
    pub objective: Option<Box<dyn Objective>>,
    /// Where projection directions come from, with `objective`.
    pub projection: Option<Box<dyn Projection>>,
    /// The validation metric that picks the best checkpoint.
    pub selection: SelectionRule,
}

/// A component written in the file (`model: {"mlp_score": (…)}`), which an
/// `Option` field would otherwise need as `Some(…)`.
fn present<'de, D, C>(d: D) -> Result<Option<Component<C>>, D::Error>
where
    D: serde::Deserializer<'de>,
    C: ?Sized + crate::registry::ComponentKind,
    Component<C>: Deserialize<'de>,
{
    Component::<C>::deserialize(d).map(Some)
}

/// Writes a present component bare (the form [`present`] reads).
fn written<S, C>(c: &Option<Component<C>>, s: S) -> Result<S::Ok, S::Error>
where
    S: serde::Serializer,
    C: ?Sized + crate::registry::ComponentKind + serde::Serialize,
{
    match c {
        Some(c) => c.serialize(s),
        None => s.serialize_none(),
    }
}

/// `#[serde(with = "bare")]`: an optional component read by [`present`]
/// and written by [`written`].
mod bare {
    pub(super) use super::present as deserialize;
    pub(super) use super::written as serialize;
}

/// The seed of random stream `stream` of a run seeded `seed` (SplitMix64).
pub fn derive_seed(seed: u64, stream: u64) -> u64 {
    // SplitMix64 finaliser over (seed, stream).
    let mut z = seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Seed streams used by the core.
pub mod streams {
    /// Task data generation and splits.
    pub const TASK: u64 = 1;
    /// Model initialisation.
    pub const MODEL: u64 = 2;
    /// Batches, projections and noise during training.
    pub const TRAIN: u64 = 3;
    /// Samples drawn for artifacts (sample grids).
    pub const ARTIFACTS: u64 = 4;
    /// Langevin chains of the evaluation-time sampling metrics.
    pub const SAMPLING: u64 = 5;
    /// Directions and noise of the closed-form coefficients' refit before
    /// each evaluation (seeded with the step as well).
    pub const REFIT: u64 = 6;
}

impl Experiment {
    /// Parses RON text read from the file at `path` (named in error
    /// messages); relative data paths resolve against its folder.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ExperimentError> {
        let base = crate::data_path::absolute_folder(path.parent().unwrap_or(Path::new("")));
        Self::parse_with_base(text, path, base.as_deref())
    }

    /// Parses RON text with `base` as the folder relative data paths resolve
    /// against (`None`: the working directory); `path` is only used in error
    /// messages. Reloading a run folder's copy of an experiment uses the
    /// folder of the original file.
    pub fn parse_with_base(
        text: &str,
        path: &Path,
        base: Option<&Path>,
    ) -> Result<Self, ExperimentError> {
        let parsed: Result<Experiment, _> =
            crate::data_path::with_base_dir(base, || ron::from_str(text));
        let mut exp = parsed.map_err(|e| ExperimentError::Parse {
            path: path.to_path_buf(),
            line: e.position.line,
            column: e.position.col,
            message: e.code.to_string(),
        })?;
        exp.base_dir = base.map(Path::to_path_buf);
        exp.validate().map_err(|source| ExperimentError::Invalid {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(exp)
    }

    /// The folder relative data paths were resolved against, when the
    /// experiment was parsed with one (see [`Experiment::parse`]).
    pub fn base_dir(&self) -> Option<&Path> {
        self.base_dir.as_deref()
    }

    /// The experiment as RON text that [`Experiment::parse`] reads back to an
    /// equal experiment (every setting written out, defaults included; data
    /// paths as resolved, so absolute when read from a file).
    pub fn to_ron(&self) -> String {
        let cfg = ron::ser::PrettyConfig::new()
            .struct_names(false)
            .depth_limit(4);
        let body = ron::ser::to_string_pretty(self, cfg).expect("experiment settings serialize");
        format!("Experiment{body}\n")
    }

    /// Reads and parses an experiment file.
    pub fn load(path: &Path) -> Result<Self, ExperimentError> {
        let text = std::fs::read_to_string(path).map_err(|source| ExperimentError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Checks the top-level settings (components check their own in `build`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            || self.name.starts_with('.')
        {
            return Err(ConfigError::new(
                "name",
                format!(
                    "must be a folder name of letters, digits, '-', '_' or '.', got {:?}",
                    self.name
                ),
            ));
        }
        require_at_least("batch_size", self.batch_size, 1)?;
        require_at_least("eval_every", self.eval_every, 1)?;
        require_at_least("log_every", self.log_every, 1)?;
        if let Some(c) = self.grad_clip {
            require_positive("grad_clip", c)?;
        }
        if let Some(p) = self.patience {
            require_at_least("patience", p, 1)?;
        }
        self.optimizer.validate()?;
        self.sampling.validate().map_err(|e| e.within("sampling"))?;
        if let Some(s) = &self.slurm {
            s.validate()?;
        }
        if self.device == DeviceChoice::Cuda && !cfg!(feature = "cuda") {
            return Err(ConfigError::new(
                "device",
                "Cuda needs a build with `--features cuda` (this build computes on the CPU)",
            ));
        }
        Ok(())
    }

    /// The device the experiment asks for.
    pub fn device(&self) -> Result<Device, ConfigError> {
        Device::new(self.device.backend(), self.precision)
            .map_err(|e| ConfigError::new("device", e.to_string()))
    }

    /// Builds the task, model, objective and projection, validating each
    /// plugin's settings and that the file gives exactly the components the
    /// task and model use.
    pub fn build(&self) -> Result<Built, ConfigError> {
        let dev = self.device()?;
        let data_seed = self.data_seed.unwrap_or(self.seed);
        let mut task_rng = ChaCha8Rng::seed_from_u64(derive_seed(data_seed, streams::TASK));
        let task = self
            .task
            .config
            .build(&dev, &mut task_rng)
            .map_err(|e| e.within(&format!("task.{}", self.task.name)))?;
        let task_name = &self.task.name;
        if task.model_use() == ModelUse::None {
            self.reject_given(&["model", "objective", "projection"], |field| {
                format!("task `{task_name}` with these settings uses no {field}; remove it")
            })?;
            return self.finish_build(dev, task, ModelSlot::None, None, None);
        }
        let model = self.build_model_for(&dev, &*task)?;
        task.check_model(&model)?;
        let model_name = self.model_name();
        let trained = match model {
            ModelSlot::Trained(m) => m,
            fitted => {
                self.reject_given(&["objective", "projection"], |field| {
                    format!("model `{model_name}` is fitted from samples, not trained; remove the {field}")
                })?;
                return self.finish_build(dev, task, fitted, None, None);
            }
        };
        let objective = self.objective.as_ref().ok_or_else(|| {
            ConfigError::new(
                "objective",
                format!("model `{model_name}` is trained: name an objective"),
            )
        })?;
        let projection = self.projection.as_ref().ok_or_else(|| {
            ConfigError::new(
                "projection",
                "needed with an objective (e.g. `projection: {\"rademacher\": ()}`)",
            )
        })?;
        let objective_built = objective
            .config
            .build()
            .map_err(|e| e.within(&format!("objective.{}", objective.name)))?;
        let projection_built = projection
            .config
            .build()
            .map_err(|e| e.within(&format!("projection.{}", projection.name)))?;
        check_compatible(
            &objective.name,
            &*objective_built,
            &*trained,
            &projection.name,
            &*projection_built,
        )?;
        if trained.as_linear_coefficients().is_some() && self.batch_size < 2 {
            return Err(ConfigError::new(
                "batch_size",
                "the model solves its coefficients on half of each batch and takes the loss on the other half: needs at least 2",
            ));
        }
        self.check_step_memory(&*trained, &*objective_built, &dev)?;
        self.finish_build(
            dev,
            task,
            ModelSlot::Trained(trained),
            Some(objective_built),
            Some(projection_built),
        )
    }

    /// Refuses a batch whose training step would not fit in memory: the
    /// rows the model sees (batch × projections or noise draws) times the
    /// values a point keeps per forward pass, with room for jets, their
    /// backward pass and the optimizer.
    fn check_step_memory(
        &self,
        model: &dyn ScoreModel,
        objective: &dyn Objective,
        dev: &Device,
    ) -> Result<(), ConfigError> {
        let rows = crate::budget::bytes(&[self.batch_size, objective.rows_per_point().max(1)]);
        let per_row = crate::budget::bytes(&[
            model.width_per_point().max(model.dim()),
            dev.precision().bytes(),
            16,
        ]);
        crate::budget::require_fits(
            "batch_size",
            "one training step",
            rows.saturating_mul(per_row),
        )
    }

    /// An error naming the first of `fields` that the file gives, with
    /// `why(field)` as the message.
    fn reject_given(
        &self,
        fields: &[&str],
        why: impl Fn(&str) -> String,
    ) -> Result<(), ConfigError> {
        let given = |f: &str| match f {
            "model" => self.model.is_some(),
            "objective" => self.objective.is_some(),
            _ => self.projection.is_some(),
        };
        match fields.iter().find(|f| given(f)) {
            Some(f) => Err(ConfigError::new(*f, why(f))),
            None => Ok(()),
        }
    }

    fn finish_build(
        &self,
        dev: Device,
        task: Box<dyn Task>,
        model: ModelSlot,
        objective: Option<Box<dyn Objective>>,
        projection: Option<Box<dyn Projection>>,
    ) -> Result<Built, ConfigError> {
        let trainable = model.scorer().map_or(0, crate::nn::module::num_trainable)
            * usize::from(!model.is_fitted_kind())
            + crate::nn::module::num_trainable(&*task);
        if self.iterations == 0 && trainable > 0 {
            return Err(ConfigError::new(
                "iterations",
                format!("must be ≥ 1: {trainable} parameters are trained"),
            ));
        }
        if self.iterations > 0 && trainable == 0 {
            return Err(ConfigError::new(
                "iterations",
                "must be 0: nothing is trained (the model is fitted from samples)",
            ));
        }
        let selection = self.selection.resolve(&*task, &model)?;
        Ok(Built {
            dev,
            task,
            model,
            objective,
            projection,
            selection,
        })
    }

    /// Builds the model the task asks for: of dimension `task.dim()`,
    /// conditional on the task's context columns when there are some. An
    /// estimator fitted from samples (a kernel estimator) is built
    /// unconditionally: refitted on the samples of each condition, it
    /// conditions by construction.
    pub fn build_model_for(&self, dev: &Device, task: &dyn Task) -> Result<ModelSlot, ConfigError> {
        let context = match task.model_use() {
            ModelUse::Conditional(c) => c,
            _ => 0,
        };
        match self.build_model_with_context(dev, task.dim(), context) {
            Err(e) if context > 0 => match self.build_model_with_context(dev, task.dim(), 0)? {
                slot @ ModelSlot::Fitted { .. } => Ok(slot),
                _ => Err(e),
            },
            built => built,
        }
    }

    /// Builds only the model, for data of dimension `dim` (used to reload a run).
    pub fn build_model(&self, dev: &Device, dim: usize) -> Result<ModelSlot, ConfigError> {
        self.build_model_with_context(dev, dim, 0)
    }

    /// Builds only the model, for `z` of dimension `dim` given `context`
    /// conditioning columns (0: an unconditional model).
    pub fn build_model_with_context(
        &self,
        dev: &Device,
        dim: usize,
        context: usize,
    ) -> Result<ModelSlot, ConfigError> {
        let model = self.model.as_ref().ok_or_else(|| {
            ConfigError::new("model", format!("task `{}` needs a model", self.task.name))
        })?;
        let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(self.seed, streams::MODEL));
        let built = if context == 0 {
            model.config.build(dev, dim, &mut rng)
        } else {
            model.config.build_conditional(dev, dim, context, &mut rng)
        };
        let built = built.map_err(|e| e.within(&format!("model.{}", model.name)))?;
        Ok(match built {
            BuiltModel::Trained(m) => ModelSlot::Trained(m),
            BuiltModel::Fitted(estimator) => ModelSlot::Fitted {
                estimator,
                fitted: None,
            },
        })
    }

    /// The model's plugin name, or `-` when the file has none.
    pub fn model_name(&self) -> &str {
        self.model.as_ref().map_or("-", |c| c.name.as_str())
    }

    /// The objective's plugin name, or `-` when the file has none.
    pub fn objective_name(&self) -> &str {
        self.objective.as_ref().map_or("-", |c| c.name.as_str())
    }

    /// The projection's plugin name, or `-` when the file has none.
    pub fn projection_name(&self) -> &str {
        self.projection.as_ref().map_or("-", |c| c.name.as_str())
    }

    /// The path of the run folder for a run started now.
    pub fn new_run_dir(&self, logs_root: &Path) -> PathBuf {
        let stamp = chrono::Local::now().format("%Y%m%d-%H%M%S%.3f");
        logs_root.join(&self.name).join(stamp.to_string())
    }
}

/// The one compatibility check between an objective, the model it trains and
/// the projection it draws from (used by `run`, `bench`, `sweep` and the
/// library): every need the objective states must be met.
pub fn check_compatible(
    objective_name: &str,
    objective: &dyn Objective,
    model: &dyn ScoreModel,
    projection_name: &str,
    projection: &dyn Projection,
) -> Result<(), ConfigError> {
    if model.as_linear_coefficients().is_some() && objective.coefficient_criterion().is_none() {
        return Err(ConfigError::new(
            "objective",
            format!("`{objective_name}` cannot have the model's coefficients solved in closed form (the model's `alpha: Solved`); use sm, ssm, ssm_vr, dsm, cp or approx_bp, or set the model's `alpha: Trained`"),
        ));
    }
    let needs = objective.needs();
    if let Some(why) = needs.unmet_by(model) {
        return Err(ConfigError::new(
            "objective",
            format!("`{objective_name}` {why}"),
        ));
    }
    if needs.isotropic_projection && !projection.isotropic() {
        return Err(ConfigError::new(
            "projection",
            format!("objective `{objective_name}` needs E[vvᵀ] = I, which projection `{projection_name}` does not satisfy"),
        ));
    }
    Ok(())
}
