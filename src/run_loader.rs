//! Reloading a trained model from a run folder (`experiment.ron`,
//! `data.json` and a checkpoint), for `slicedscore score` / `sample` and for
//! users' own code.
//!
//! Data flow: [`load_experiment`] parses the run's copy of the experiment
//! with the folder recorded in `data.json` as the base of relative data
//! paths ([`crate::run_data`]), so the data are found whatever the working
//! directory; [`load_model`] builds the model from it and loads the
//! checkpoint's parameters (or refits a kernel estimator on the samples the
//! checkpoint keeps), together with the run's [`DataMap`].
//! [`LoadedModel::scores`] then takes points in the data's own units (or the
//! model's, [`Units::Model`]) and returns `∇ₓ log p(x)` in the same units:
//! `Aᵀ s(A (x − m))` for a run whose task whitened its data.
//! [`load_task`] rebuilds the run's task (its data), e.g. to start chains
//! from training points.

use std::path::{Path, PathBuf};

use crate::autodiff::Graph;
use crate::data_map::{DataMap, UnitsError};
use crate::device::{Device, Precision};
use crate::error::ExperimentError;
use crate::experiment::{Built, Experiment};
use crate::model::ScoreModel;
use crate::model::{ModelSlot, FITTED_SAMPLES};
use crate::run_data::{RunData, RunDataError};
use crate::task::Task;
use crate::train::checkpoint::{Checkpoint, CheckpointError};
use crate::train::step::checkpointed;
use crate::train::{BEST_CHECKPOINT, EXPERIMENT_COPY, LAST_CHECKPOINT};

/// Which checkpoint of a run to load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Which {
    /// The best by validation metric.
    #[default]
    Best,
    /// The most recent.
    Last,
}

/// Why a run could not be reloaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The run folder's experiment file is missing or invalid.
    #[error(transparent)]
    Experiment(#[from] ExperimentError),
    /// The checkpoint is missing or broken.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// The run's `data.json` is unreadable.
    #[error(transparent)]
    RunData(#[from] RunDataError),
    /// The model settings in the run folder are invalid.
    #[error("{path}: {message}")]
    Model {
        /// The experiment file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// A model reloaded from a run folder.
pub struct LoadedModel {
    /// The device it lives on.
    pub dev: Device,
    /// Data dimension.
    pub dim: usize,
    /// Training step of the checkpoint.
    pub step: usize,
    /// The model with the checkpoint's parameters.
    pub model: Box<dyn ScoreModel>,
    /// The map from the data's own units to the model's coordinates.
    pub data_map: DataMap,
}

/// Which coordinates points and scores are in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Units {
    /// The data's own units (before the task's preprocessing).
    #[default]
    Data,
    /// The model's coordinates (after the task's preprocessing).
    Model,
}

impl LoadedModel {
    /// The score `∇ log p` at every row of `points` (row-major `n × dim`),
    /// both in `units`: in the data's units the rows are mapped into the
    /// model's coordinates, `y = A (x − m)`, and the scores back, `Aᵀ s(y)`.
    ///
    /// # Errors
    /// In the data's units, when the run's map is not affine
    /// ([`UnitsError::NotAffine`]) or the rows have the wrong width.
    pub fn scores(&self, points: &[f64], units: Units) -> Result<Vec<f64>, UnitsError> {
        let d = self.dim;
        let y = match units {
            Units::Data => self.data_map.to_model(points)?,
            Units::Model => points.to_vec(),
        };
        let mut s = Vec::with_capacity(y.len());
        for chunk in y.chunks(4096 * d.max(1)) {
            let mut g = Graph::inference(&self.dev);
            let x = g.constant(chunk.to_vec(), chunk.len() / d, d);
            s.extend(self.model.score(&mut g, &x).to_host());
        }
        match units {
            Units::Data => self.data_map.score_to_data(&s),
            Units::Model => Ok(s),
        }
    }
}

/// The run's experiment, parsed with the experiment file's folder (from the
/// run's `data.json`) as the base of relative data paths.
pub fn load_experiment(run_dir: &Path) -> Result<(Experiment, RunData), LoadError> {
    let exp_path = run_dir.join(EXPERIMENT_COPY);
    let record = RunData::read(run_dir)?;
    let text = std::fs::read_to_string(&exp_path).map_err(|source| ExperimentError::Read {
        path: exp_path.clone(),
        source,
    })?;
    let exp = Experiment::parse_with_base(&text, &exp_path, record.experiment_dir.as_deref())?;
    Ok((exp, record))
}

/// Rebuilds the run's task (its data, with the run's data seed) on the
/// device the experiment names.
pub fn load_task(run_dir: &Path) -> Result<Box<dyn Task>, LoadError> {
    let (exp, _) = load_experiment(run_dir)?;
    let built = exp.build().map_err(|source| ExperimentError::Invalid {
        path: run_dir.join(EXPERIMENT_COPY),
        source,
    })?;
    Ok(built.task)
}

/// Loads the checkpoint at `path` into a built experiment's model and task
/// (autoencoder tasks keep their own networks in it), as the training loop
/// restores its best checkpoint; returns the checkpoint's step.
pub fn load_checkpoint_into(built: &mut Built, path: &Path) -> Result<usize, CheckpointError> {
    let ckpt = Checkpoint::read(path)?;
    let dev = built.dev.clone();
    ckpt.load_params(&dev, &mut checkpointed(&mut built.model, &mut *built.task))?;
    ckpt.metadata_usize("step")
}

/// Loads the model of the run in `run_dir` from its `which` checkpoint.
pub fn load_model(run_dir: &Path, which: Which) -> Result<LoadedModel, LoadError> {
    let exp_path = run_dir.join(EXPERIMENT_COPY);
    let (exp, record) = load_experiment(run_dir)?;
    let file = match which {
        Which::Best => BEST_CHECKPOINT,
        Which::Last => LAST_CHECKPOINT,
    };
    let ckpt = Checkpoint::read(&run_dir.join(file))?;
    let dim = ckpt.metadata_usize("dim")?;
    let step = ckpt.metadata_usize("step")?;
    let model_err = |message: String| LoadError::Model {
        path: exp_path.clone(),
        message,
    };
    // The model computes in the precision it was trained in.
    let dev = exp
        .device()
        .map_err(|e| model_err(e.to_string()))?
        .with_precision(ckpt.precision()?);
    let model = match exp
        .build_model(&dev, dim)
        .map_err(|e| model_err(e.to_string()))?
    {
        ModelSlot::Trained(mut m) => {
            ckpt.load_params(&dev, &mut *m)?;
            m
        }
        ModelSlot::Fitted { estimator, .. } => {
            let samples = ckpt
                .tensor(&dev.with_precision(Precision::F64), FITTED_SAMPLES)?
                .ok_or_else(|| {
                    model_err(format!(
                        "the checkpoint holds no `{FITTED_SAMPLES}` to refit the estimator on"
                    ))
                })?;
            estimator.fit(&dev, &samples.to_host()).map_err(|e| {
                model_err(format!(
                    "refitting the estimator on the checkpoint's samples: {e}"
                ))
            })?
        }
        ModelSlot::None => return Err(model_err("the experiment has no model".into())),
    };
    Ok(LoadedModel {
        dev,
        dim,
        step,
        model,
        data_map: record.data_map,
    })
}
