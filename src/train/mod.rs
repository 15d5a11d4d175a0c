//! The training loop: batches → loss → one backward pass → optimizer step,
//! with validation, checkpoints, TensorBoard scalars and `metrics.json`.
//!
//! Run folder `logs/<experiment>/<timestamp>/` holds: `experiment.ron` (the
//! file as given), `data.json` (the experiment's folder and the task's map
//! from the data's units to the model's, [`crate::run_data`]), TensorBoard event files, `metrics.json` (rewritten
//! atomically at every evaluation and at the end), `last.safetensors` and
//! `best.safetensors` (atomic; best by the task's selection metric on the
//! validation split). A non-finite loss or gradient stops the run with the
//! step number; the checkpoints from the last good evaluation stay intact.

pub mod checkpoint;
pub mod optim;
pub mod record;
pub mod step;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::error::ExperimentError;
use crate::experiment::{derive_seed, streams, Built, Experiment};
use crate::logging::{LogError, Logger, TensorBoardLogger};
use crate::model::ModelSlot;
use crate::nn::module::num_trainable;
use crate::task::{Artifact, Metrics, Split};
use checkpoint::CheckpointError;
use optim::Optimizer;
use record::RunRecord;
use step::{checkpointed, train_step, StepError, StepParts};

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
    /// Use exactly this run folder instead of `<logs_root>/<name>/<timestamp>`.
    pub run_dir: Option<PathBuf>,
    /// Draw a progress bar on the terminal.
    pub progress: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            logs_root: PathBuf::from("logs"),
            run_dir: None,
            progress: true,
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
    /// The task could not build a step's loss, or a model could not be
    /// fitted from samples.
    #[error("step {step}: {message} (the last good checkpoint is kept in {run_dir})")]
    Step {
        /// Training step (0: before training).
        step: u64,
        /// What went wrong.
        message: String,
        /// The run folder.
        run_dir: PathBuf,
    },
    /// The loss, gradient or a validation metric became NaN or infinite.
    #[error(
        "{what} is {value} at step {step}; stopped (the last good checkpoint is kept in {run_dir})"
    )]
    NonFinite {
        /// Training step (1-based).
        step: u64,
        /// Which quantity.
        what: String,
        /// Its value.
        value: f64,
        /// The run folder.
        run_dir: PathBuf,
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

/// Encodes an RGB8 image as PNG.
pub fn png_bytes(rgb: &[u8], width: usize, height: usize) -> Result<Vec<u8>, String> {
    if rgb.len() != width * height * 3 {
        return Err(format!(
            "image of {width}×{height} needs {} bytes, got {}",
            width * height * 3,
            rgb.len()
        ));
    }
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, width as u32, height as u32);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc.write_header().map_err(|e| e.to_string())?;
        w.write_image_data(rgb).map_err(|e| e.to_string())?;
    }
    Ok(out)
}

fn progress_bar(iterations: u64, visible: bool) -> ProgressBar {
    let pb = ProgressBar::new(iterations);
    if !visible {
        pb.set_draw_target(ProgressDrawTarget::hidden());
    }
    pb.set_style(
        ProgressStyle::with_template(
            "{elapsed_precise} [{bar:30}] {pos}/{len} {per_sec} ETA {eta} {msg}",
        )
        .expect("valid progress template")
        .progress_chars("=> "),
    );
    pb
}

/// Trains an already built experiment; `source_text` is copied into the run folder.
pub fn train(
    exp: &Experiment,
    source_text: &str,
    built: Built,
    opts: &RunOptions,
) -> Result<RunSummary, TrainError> {
    let run_dir = opts
        .run_dir
        .clone()
        .unwrap_or_else(|| exp.new_run_dir(&opts.logs_root));
    std::fs::create_dir_all(&run_dir).map_err(io_err(&run_dir))?;
    let copy = run_dir.join(EXPERIMENT_COPY);
    crate::atomic_file::write_atomic(&copy, source_text.as_bytes()).map_err(io_err(&copy))?;
    let data_record = run_dir.join(crate::run_data::RUN_DATA_FILE);
    crate::run_data::RunData::of(exp, &*built.task)
        .write(&run_dir)
        .map_err(io_err(&data_record))?;
    let mut tb = TensorBoardLogger::create(&run_dir)?;
    let mut looper = Loop::new(exp, built, run_dir);
    let result = looper.run(&mut tb, opts.progress);
    if let Err(e) = &result {
        looper.status.fail(e.to_string());
        // Best effort: the original error matters more than a logging failure.
        let _ = looper.write_status();
    }
    // `close` waits until the event file is written; `flush` only asks. A
    // training error matters more than a logging error at close.
    let closed = tb.close();
    let summary = result?;
    closed?;
    Ok(summary)
}

struct Loop<'e> {
    exp: &'e Experiment,
    built: Built,
    run_dir: PathBuf,
    rng: ChaCha8Rng,
    opt: Optimizer,
    status: RunRecord,
    best: Option<(u64, f64)>,
}

impl<'e> Loop<'e> {
    fn new(exp: &'e Experiment, built: Built, run_dir: PathBuf) -> Self {
        let status = RunRecord::new(
            exp,
            built.task.selection_metric(),
            built.task.dim(),
            &run_dir,
        );
        Self {
            exp,
            rng: ChaCha8Rng::seed_from_u64(derive_seed(exp.seed, streams::TRAIN)),
            opt: Optimizer::new(exp.optimizer.clone()),
            built,
            run_dir,
            status,
            best: None,
        }
    }

    fn write_status(&self) -> Result<(), TrainError> {
        let path = self.run_dir.join(METRICS_FILE);
        crate::logging::write_metrics(&path, &self.status.to_json())?;
        Ok(())
    }

    fn save(&mut self, file: &str, step: u64) -> Result<(), TrainError> {
        let mut meta = HashMap::new();
        meta.insert("step".to_string(), step.to_string());
        meta.insert("dim".to_string(), self.built.task.dim().to_string());
        meta.insert("experiment".to_string(), self.exp.name.clone());
        let module = checkpointed(&mut self.built.model, &mut *self.built.task);
        checkpoint::save(&self.run_dir.join(file), &module, Some(&self.opt), meta)?;
        Ok(())
    }

    /// Logs the task's artifacts of the current model to TensorBoard and,
    /// with `save_to`, writes images there as PNG files.
    fn log_artifacts(
        &mut self,
        tb: &mut dyn Logger,
        step: u64,
        save_to: Option<&Path>,
    ) -> Result<(), TrainError> {
        let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(self.exp.seed, streams::ARTIFACTS));
        let mut artifacts =
            self.built
                .task
                .artifacts(&self.built.dev, self.built.model.scorer(), &mut rng);
        artifacts.extend(crate::sampling::evaluation::artifacts(
            &self.exp.sampling,
            &self.built.dev,
            &*self.built.task,
            self.built.model.scorer(),
            &mut rng,
        ));
        for a in artifacts {
            let Artifact::Image {
                name,
                rgb,
                width,
                height,
            } = a;
            tb.image(&format!("images/{name}"), step, &rgb, width, height)?;
            if let Some(dir) = save_to {
                let path = dir.join(format!("{name}.png"));
                let bytes = png_bytes(&rgb, width, height).map_err(|e| TrainError::Io {
                    path: path.clone(),
                    source: std::io::Error::other(e),
                })?;
                crate::atomic_file::write_atomic(&path, &bytes).map_err(io_err(&path))?;
            }
        }
        Ok(())
    }

    /// The Langevin samples-vs-data metrics of the current model on `split`.
    fn sampling_metrics(&self, split: Split) -> Metrics {
        crate::sampling::evaluation::metrics(
            &self.exp.sampling,
            &self.built.dev,
            &*self.built.task,
            self.built.model.scorer(),
            split,
            self.exp.seed,
        )
    }

    fn non_finite(&self, step: u64, what: &str, value: f64) -> TrainError {
        TrainError::NonFinite {
            step,
            what: what.to_string(),
            value,
            run_dir: self.run_dir.clone(),
        }
    }

    /// Evaluates on the validation split, logs, writes the last checkpoint
    /// and, when the selection metric improved, the best one; returns the
    /// selection metric.
    fn evaluate_and_checkpoint(
        &mut self,
        tb: &mut dyn Logger,
        step: u64,
        loss_value: f64,
        seconds_per_iteration: f64,
    ) -> Result<f64, TrainError> {
        let selection = self.built.task.selection_metric();
        let mut metrics = self.built.task.evaluate(
            &self.built.dev,
            self.built.model.scorer(),
            Split::Validation,
        );
        metrics.extend(self.sampling_metrics(Split::Validation));
        for (k, v) in &metrics {
            tb.scalar(&format!("val/{k}"), step, *v)?;
        }
        self.log_artifacts(tb, step, None)?;
        let sel = metrics.get(selection).copied().unwrap_or(f64::NAN);
        if !sel.is_finite() {
            return Err(self.non_finite(step, &format!("validation {selection}"), sel));
        }
        self.save(LAST_CHECKPOINT, step)?;
        let improved = self.best.is_none_or(|(_, b)| sel < b);
        if improved {
            self.best = Some((step, sel));
            self.save(BEST_CHECKPOINT, step)?;
        }
        self.status
            .record_eval(step, loss_value, seconds_per_iteration, &metrics, improved);
        self.write_status()?;
        tb.flush()?;
        Ok(sel)
    }

    fn run(&mut self, tb: &mut dyn Logger, progress: bool) -> Result<RunSummary, TrainError> {
        let exp = self.exp;
        let iterations = exp.iterations as u64;
        let bs = exp.batch_size;
        let selection = self.built.task.selection_metric();
        let parameters =
            self.built.model.scorer().map_or(0, num_trainable) + num_trainable(&*self.built.task);
        tracing::info!(
            "{}: {} | model {} ({} parameters) | objective {} | projection {} | device {}",
            exp.name,
            self.built.task.describe(),
            exp.model_name(),
            parameters,
            exp.objective_name(),
            exp.projection_name(),
            self.built.dev.name()
        );
        tracing::info!("run folder: {}", self.run_dir.display());
        let fit_only = iterations == 0;
        if let ModelSlot::Trained(m) = &mut self.built.model {
            if let Some(init) = m.as_data_init() {
                let points = init.data_init_points();
                let batch = self.built.task.train_batch(&mut self.rng, points);
                init.init_from_data(&self.built.dev, &batch);
            }
        }
        if let (ModelSlot::Fitted { estimator, fitted }, true) = (&mut self.built.model, fit_only) {
            let points = estimator.samples_wanted();
            let batch = self.built.task.train_batch(&mut self.rng, points);
            let model = estimator
                .fit(&self.built.dev, &batch)
                .map_err(|m| TrainError::Step {
                    step: 0,
                    message: format!("fitting the model to {points} training rows: {m}"),
                    run_dir: self.run_dir.clone(),
                })?;
            *fitted = Some(model);
        }
        self.save(LAST_CHECKPOINT, 0)?;
        self.write_status()?;
        if fit_only {
            self.evaluate_and_checkpoint(tb, 0, f64::NAN, 0.0)?;
        }

        let pb = progress_bar(iterations, progress);
        let mut train_time = Duration::ZERO;
        let mut window = (Duration::ZERO, 0u32);
        let mut last_loss = f64::NAN;
        let mut steps_taken = 0;
        for step in 1..=iterations {
            steps_taken = step;
            let started = Instant::now();
            let built = &mut self.built;
            let parts = StepParts {
                dev: &built.dev,
                model: &mut built.model,
                task: &mut *built.task,
                objective: match (&built.objective, &built.projection) {
                    (Some(o), Some(p)) => Some((&**o, &**p)),
                    _ => None,
                },
            };
            let outcome = match train_step(parts, &mut self.opt, &mut self.rng, bs, exp.grad_clip) {
                Ok(o) => o,
                Err(StepError::NonFinite { what, value }) => {
                    pb.abandon();
                    return Err(self.non_finite(step, what, value));
                }
                Err(StepError::Loss(message)) => {
                    pb.abandon();
                    return Err(TrainError::Step {
                        step,
                        message,
                        run_dir: self.run_dir.clone(),
                    });
                }
            };
            let (loss_value, grad_norm) = (outcome.loss, outcome.grad_norm);
            let dt = started.elapsed();
            train_time += dt;
            window.0 += dt;
            window.1 += 1;
            last_loss = loss_value;
            if step % exp.log_every as u64 == 0 || step == 1 {
                tb.scalar("train/loss", step, loss_value)?;
                tb.scalar("train/grad_norm", step, grad_norm)?;
                tb.scalar("train/learning_rate", step, self.opt.lr())?;
                let spi = window.0.as_secs_f64() / window.1 as f64;
                tb.scalar("train/seconds_per_iteration", step, spi)?;
                let scalars = self
                    .built
                    .task
                    .as_trainer()
                    .map(|t| t.train_scalars())
                    .unwrap_or_default();
                for (k, v) in scalars {
                    tb.scalar(&format!("train/{k}"), step, v)?;
                }
                window = (Duration::ZERO, 0);
                pb.set_message(format!("loss {loss_value:.4}"));
            }
            pb.inc(1);
            if step % exp.eval_every as u64 == 0 || step == iterations {
                let spi = train_time.as_secs_f64() / step as f64;
                let sel = match self.evaluate_and_checkpoint(tb, step, loss_value, spi) {
                    Ok(sel) => sel,
                    Err(e) => {
                        pb.abandon();
                        return Err(e);
                    }
                };
                pb.set_message(format!("loss {loss_value:.4} | val {selection} {sel:.4}"));
                if let (Some(patience), Some((best_step, _))) = (exp.patience, self.best) {
                    if step - best_step >= patience as u64 && step < iterations {
                        tracing::info!(
                            "early stop at step {step}: validation {selection} has not improved since step {best_step}"
                        );
                        self.status.stopped_early(step);
                        self.write_status()?;
                        break;
                    }
                }
            }
        }
        pb.finish();

        let (best_step, _) = self.best.expect("evaluated at the last step");
        let ckpt = checkpoint::Checkpoint::read(&self.run_dir.join(BEST_CHECKPOINT))?;
        let dev = self.built.dev.clone();
        ckpt.load_params(
            &dev,
            &mut checkpointed(&mut self.built.model, &mut *self.built.task),
        )?;
        let mut test =
            self.built
                .task
                .evaluate(&self.built.dev, self.built.model.scorer(), Split::Test);
        test.extend(self.sampling_metrics(Split::Test));
        for (k, v) in &test {
            tb.scalar(&format!("test/{k}"), steps_taken, *v)?;
        }
        self.log_artifacts(tb, steps_taken, Some(&self.run_dir.clone()))?;
        self.status.finish(best_step, &test);
        self.write_status()?;
        let seconds_per_iteration = if steps_taken == 0 {
            0.0
        } else {
            train_time.as_secs_f64() / steps_taken as f64
        };
        tracing::info!(
            "finished: best step {best_step}; test {}",
            test.iter()
                .map(|(k, v)| format!("{k} {v:.5}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        Ok(RunSummary {
            run_dir: self.run_dir.clone(),
            best_step,
            best: self.status.best_metrics(),
            test,
            final_loss: last_loss,
            seconds_per_iteration,
            steps: steps_taken,
            dim: self.built.task.dim(),
        })
    }
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
            .contains("needs 18 bytes"));
    }
}
