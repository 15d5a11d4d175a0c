//! Training runs: the loop, its checkpoints and record, and what makes a
//! run survive (unshared folders, resume, clean stops, divergence).
//!
//! Data flow: [`run_file`] reads and builds an experiment and hands it to
//! [`train`], which claims a run folder of its own ([`run_dir`]), copies the
//! experiment there and runs the loop (`looping.rs`): batches → loss → one
//! backward pass → optimizer step ([`step`]), with validation, checkpoints
//! ([`checkpoint`]), TensorBoard scalars and `metrics.json` ([`record`]) at
//! every evaluation. [`resume`] takes a run up again from its last
//! checkpoint, which holds everything the loop needs to continue exactly:
//! parameters, optimizer moments, the random stream's position, the task's
//! epoch order, the step, the best-so-far and the divergence baselines.
//!
//! Run folder `logs/<experiment>/<timestamp>[-k]/` holds: `experiment.ron`
//! (the file as given; a sweep writes the typed experiment with its seed),
//! `data.json` (the experiment file's folder, against which the copy's
//! relative data paths resolve on resume, and the task's map from the data's
//! units to the model's coordinates; [`crate::run_data`]), TensorBoard event
//! files (a resumed run adds one and never logs a step
//! twice; they also hold the experiment file as text and the run's settings
//! and outcome for the HParams dashboard, see [`hparams`]), `metrics.json` (rewritten atomically; status `running`,
//! `finished`, `failed`, `interrupted` or `diverged`), `last.safetensors`
//! and `best.safetensors` (atomic; best by the selection metric on
//! the validation split, [`selection`]). SIGINT/SIGTERM stop after the current step with a
//! checkpoint ([`interrupt`]); a loss or metric that explodes or turns
//! non-finite stops the run as `diverged` ([`divergence`]).

pub mod checkpoint;
pub mod divergence;
pub mod hparams;
pub mod interrupt;
mod looping;
pub mod optim;
pub mod record;
pub mod requeue;
pub mod run_dir;
pub mod selection;
pub mod step;

use std::path::{Path, PathBuf};

use crate::error::ExperimentError;
use crate::experiment::{Built, Experiment};
use crate::logging::LogError;
use crate::task::Metrics;
use checkpoint::CheckpointError;

/// File name of the last checkpoint in a run folder.
pub const LAST_CHECKPOINT: &str = "last.safetensors";
/// File name of the best checkpoint in a run folder.
pub const BEST_CHECKPOINT: &str = "best.safetensors";
/// File name of the copy of the experiment in a run folder.
pub const EXPERIMENT_COPY: &str = "experiment.ron";
/// File name of the machine-readable metrics in a run folder.
pub const METRICS_FILE: &str = "metrics.json";

/// How to run (not part of the experiment itself).
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Root of the run folders (default `logs`).
    pub logs_root: PathBuf,
    /// Use exactly this run folder (it must not hold a run) instead of a new
    /// `<logs_root>/<name>/<timestamp>`.
    pub run_dir: Option<PathBuf>,
    /// Draw a progress bar on the terminal.
    pub progress: bool,
    /// Stop after this step as if interrupted (a checkpoint, status
    /// `interrupted`; `resume` continues): for time-limited jobs on a
    /// cluster, or to split a run.
    pub stop_after: Option<u64>,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            logs_root: PathBuf::from("logs"),
            run_dir: None,
            progress: true,
            stop_after: None,
        }
    }
}

/// Why a run stopped early.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The experiment file is unreadable or invalid.
    #[error(transparent)]
    Experiment(#[from] ExperimentError),
    /// A file in the run folder could not be written.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A checkpoint could not be written or read.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// TensorBoard or metrics logging failed.
    #[error(transparent)]
    Log(#[from] LogError),
    /// The run folder named with `--run-dir` already holds a run.
    #[error("{run_dir} already holds a run; continue it with `slicedscore resume {run_dir}` or name another folder")]
    RunDirTaken {
        /// The folder.
        run_dir: PathBuf,
    },
    /// The task could not build a step's loss, or a model could not be
    /// fitted from samples.
    #[error("step {step}: {message} ({kept})")]
    Step {
        /// Training step (0: before training).
        step: u64,
        /// What went wrong.
        message: String,
        /// Which checkpoint is kept where.
        kept: String,
    },
    /// The loss, the gradient or the selection metric exploded or became
    /// NaN or infinite.
    #[error("{what} diverged at step {step}: {value}{first}; stopped ({kept})")]
    Diverged {
        /// Training step (0: before training).
        step: u64,
        /// Which quantity.
        what: String,
        /// Its value.
        value: f64,
        /// `" (first value …)"` when it had one.
        first: String,
        /// Which checkpoint is kept where.
        kept: String,
    },
    /// SIGINT or SIGTERM stopped the run after saving a checkpoint.
    #[error("interrupted at step {step}; the checkpoint is saved: continue with `slicedscore resume {run_dir}`")]
    Interrupted {
        /// The last step taken.
        step: u64,
        /// The run folder.
        run_dir: PathBuf,
    },
    /// A run cannot be resumed.
    #[error("cannot resume {run_dir}: {message}")]
    Resume {
        /// The run folder.
        run_dir: PathBuf,
        /// Why not.
        message: String,
    },
}

/// What a finished run reports.
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// The run folder.
    pub run_dir: PathBuf,
    /// Step of the best validation evaluation.
    pub best_step: u64,
    /// Validation metrics at the best step.
    pub best: Metrics,
    /// Test metrics of the best checkpoint.
    pub test: Metrics,
    /// Last training loss.
    pub final_loss: f64,
    /// Mean seconds per training step (excluding evaluation).
    pub seconds_per_iteration: f64,
    /// Training steps taken (fewer than `iterations` after an early stop).
    pub steps: u64,
    /// Dimension of the points the model scored (the task's `dim`).
    pub dim: usize,
    /// The metric that chose the best checkpoint (`val/<metric>`).
    pub selection_metric: String,
}

/// Loads, builds and trains the experiment in `path`.
pub fn run_file(path: &Path, opts: &RunOptions) -> Result<RunSummary, TrainError> {
    let text = std::fs::read_to_string(path).map_err(|source| ExperimentError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let exp = Experiment::parse(&text, path)?;
    let built = exp.build().map_err(|source| ExperimentError::Invalid {
        path: path.to_path_buf(),
        source,
    })?;
    train(&exp, &text, built, opts)
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> TrainError + '_ {
    move |source| TrainError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Trains an already built experiment in a run folder of its own;
/// `source_text` is copied into it.
pub fn train(
    exp: &Experiment,
    source_text: &str,
    built: Built,
    opts: &RunOptions,
) -> Result<RunSummary, TrainError> {
    let run_dir = match &opts.run_dir {
        Some(dir) => {
            run_dir::claim(dir)?;
            dir.clone()
        }
        None => {
            let base = exp.new_run_dir(&opts.logs_root);
            run_dir::create_unique(&base).map_err(io_err(&base))?
        }
    };
    let copy = run_dir.join(EXPERIMENT_COPY);
    crate::atomic_file::write_atomic(&copy, source_text.as_bytes()).map_err(io_err(&copy))?;
    let data_record = run_dir.join(crate::run_data::RUN_DATA_FILE);
    crate::run_data::RunData::of(exp, &*built.task)
        .write(&run_dir)
        .map_err(io_err(&data_record))?;
    looping::Loop::fresh(exp, source_text, built, run_dir)?.run_to_end(opts)
}

/// Continues the run in `run_dir` from its last checkpoint: same
/// parameters, optimizer state, random stream, data order, step, best-so-far
/// and patience, so it ends as the uninterrupted run would have.
pub fn resume(run_dir: &Path, opts: &RunOptions) -> Result<RunSummary, TrainError> {
    let exp_path = run_dir.join(EXPERIMENT_COPY);
    // Relative data paths in the copy resolve against the original file's folder.
    let base = crate::run_data::RunData::read(run_dir)
        .map_err(|e| match e {
            crate::run_data::RunDataError::Io { path, source } => TrainError::Io { path, source },
            crate::run_data::RunDataError::Invalid { path, message } => TrainError::Io {
                path,
                source: std::io::Error::new(std::io::ErrorKind::InvalidData, message),
            },
        })?
        .experiment_dir;
    let text = std::fs::read_to_string(&exp_path).map_err(|source| ExperimentError::Read {
        path: exp_path.clone(),
        source,
    })?;
    let exp = Experiment::parse_with_base(&text, &exp_path, base.as_deref())?;
    let built = exp.build().map_err(|source| ExperimentError::Invalid {
        path: exp_path.clone(),
        source,
    })?;
    looping::Loop::resumed(&exp, built, run_dir.to_path_buf())?.run_to_end(opts)
}

/// Why an image could not be encoded.
#[derive(Debug, thiserror::Error)]
pub enum PngError {
    /// The pixel buffer does not match the size.
    #[error("image of {width}×{height} needs {needed} bytes, got {got}")]
    Size {
        /// Width in pixels.
        width: usize,
        /// Height in pixels.
        height: usize,
        /// `width · height · 3`.
        needed: usize,
        /// Bytes given.
        got: usize,
    },
    /// The encoder failed.
    #[error(transparent)]
    Encode(#[from] png::EncodingError),
}

/// Encodes an RGB8 image as PNG.
///
/// # Errors
/// When `rgb` does not hold `width · height · 3` bytes, or encoding fails.
pub fn png_bytes(rgb: &[u8], width: usize, height: usize) -> Result<Vec<u8>, PngError> {
    if rgb.len() != width * height * 3 {
        return Err(PngError::Size {
            width,
            height,
            needed: width * height * 3,
            got: rgb.len(),
        });
    }
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, width as u32, height as u32);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc.write_header()?;
        w.write_image_data(rgb)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::png_bytes;

    #[test]
    fn png_round_trip_and_size_check() {
        let (w, h) = (3, 2);
        let rgb: Vec<u8> = (0..w * h * 3).map(|i| (i * 13) as u8).collect();
        let bytes = png_bytes(&rgb, w, h).unwrap();
        let dec = png::Decoder::new(std::io::Cursor::new(bytes));
        let mut reader = dec.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height), (w as u32, h as u32));
        assert_eq!(&buf[..info.buffer_size()], &rgb[..]);
        assert!(png_bytes(&rgb[1..], w, h)
            .unwrap_err()
            .to_string()
            .contains("needs 18 bytes"));
    }
}
