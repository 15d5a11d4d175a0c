//! Reloading a trained model from a run folder (`experiment.ron` + a
//! checkpoint), for `slicedscore score` and for users' own code.

use std::path::{Path, PathBuf};

use crate::device::{Device, Precision};
use crate::error::ExperimentError;
use crate::experiment::Experiment;
use crate::model::ScoreModel;
use crate::model::{ModelSlot, FITTED_SAMPLES};
use crate::train::checkpoint::{Checkpoint, CheckpointError};
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
}

/// Loads the model of the run in `run_dir` from its `which` checkpoint.
pub fn load_model(run_dir: &Path, which: Which) -> Result<LoadedModel, LoadError> {
    let exp_path = run_dir.join(EXPERIMENT_COPY);
    let exp = Experiment::load(&exp_path)?;
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
    })
}
