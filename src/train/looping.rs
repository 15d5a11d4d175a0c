//! The training loop of one run, fresh or resumed.
//!
//! Data flow: [`Loop::fresh`] starts the record and the random stream from
//! the experiment; [`Loop::resumed`] restores them, with the parameters,
//! optimizer moments, task state and best-so-far, from the run's last
//! checkpoint and `metrics.json`. [`Loop::run_to_end`] then takes steps
//! ([`super::step::train_step`]), logs every `log_every` steps, evaluates
//! and checkpoints every `eval_every` steps, watches for divergence and for
//! a stop request after every step, and at the end reloads the best
//! checkpoint (by the built [`crate::train::selection::SelectionRule`]) and
//! tests it. Whatever stops the run, `metrics.json` says so
//! with its status and the event file is closed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::checkpoint::{self, Checkpoint};
use super::divergence::{Divergence, DivergenceGuard};
use super::optim::Optimizer;
use super::record::{RunRecord, RunState};
use super::step::{checkpointed, train_step, StepError, StepParts};
use super::{interrupt, io_err, png_bytes, RunSummary, TrainError};
use super::{BEST_CHECKPOINT, LAST_CHECKPOINT, METRICS_FILE};
use crate::experiment::{derive_seed, streams, Built, Experiment};
use crate::logging::{Logger, TensorBoardLogger};
use crate::model::ModelSlot;
use crate::nn::module::num_trainable;
use crate::task::{Artifact, Metrics, Split};

/// The checkpoint metadata key of [`ResumeState`].
const RESUME_KEY: &str = "resume";
/// Training rows a closed-form refit draws when the task keeps no fixed
/// training set (the original code refits on 1000 training rows).
const REFIT_POINTS: usize = 1000;

/// What a checkpoint holds, beyond parameters and optimizer moments, to
/// continue a run exactly.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ResumeState {
    /// The step the checkpoint was written after.
    step: u64,
    /// The position of the training random stream (a `u128`, as text).
    rng_word_pos: String,
    /// The task's state ([`crate::task::Task::state`]).
    task_state: serde_json::Value,
    /// The best evaluation so far: step and selection metric.
    best: Option<(u64, f64)>,
    /// Seconds spent in training steps so far.
    train_seconds: f64,
    /// The last training loss.
    last_loss: f64,
    /// The first values divergence is judged against.
    guard: DivergenceGuard,
}

/// A logger that drops training-time records at steps up to `until` (a
/// resumed run recomputes, bit for bit, steps an earlier process already
/// logged). End-of-run records (`test/…`, `best/…`), text and HParams
/// records pass: an unfinished run has not written them.
struct SkipLogged<'a> {
    inner: &'a mut dyn Logger,
    until: Option<u64>,
}

impl SkipLogged<'_> {
    fn skips(&self, tag: &str, step: u64) -> bool {
        let end_of_run = tag.starts_with("test/")
            || tag.starts_with(&format!("{}/", super::hparams::BEST_PREFIX));
        !end_of_run && self.until.is_some_and(|u| step <= u)
    }
}

impl Logger for SkipLogged<'_> {
    fn scalar(&mut self, tag: &str, step: u64, value: f64) -> Result<(), crate::logging::LogError> {
        if self.skips(tag, step) {
            return Ok(());
        }
        self.inner.scalar(tag, step, value)
    }
    fn image(
        &mut self,
        tag: &str,
        step: u64,
        rgb: &[u8],
        w: usize,
        h: usize,
    ) -> Result<(), crate::logging::LogError> {
        if self.skips(tag, step) {
            return Ok(());
        }
        self.inner.image(tag, step, rgb, w, h)
    }
    fn text(
        &mut self,
        tag: &str,
        step: u64,
        markdown: &str,
    ) -> Result<(), crate::logging::LogError> {
        self.inner.text(tag, step, markdown)
    }
    fn hparams(
        &mut self,
        record: &crate::logging::HParamsRecord,
    ) -> Result<(), crate::logging::LogError> {
        self.inner.hparams(record)
    }
    fn flush(&mut self) -> Result<(), crate::logging::LogError> {
        self.inner.flush()
    }
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

/// One run's state while it trains.
pub struct Loop<'e> {
    exp: &'e Experiment,
    built: Built,
    run_dir: PathBuf,
    rng: ChaCha8Rng,
    opt: Optimizer,
    record: RunRecord,
    best: Option<(u64, f64)>,
    guard: DivergenceGuard,
    /// The step to start after (0 for a fresh run).
    start: u64,
    train_time: Duration,
    last_loss: f64,
    /// The step of the last checkpoint written (`None`: none yet).
    last_checkpoint: Option<u64>,
    /// Events up to this step are already in the run's event files.
    logged_until: Option<u64>,
    /// The experiment file, logged as text when a fresh run starts.
    source_text: Option<String>,
}

impl<'e> Loop<'e> {
    /// A run that starts at step 0; `source_text` is the experiment file.
    pub fn fresh(
        exp: &'e Experiment,
        source_text: &str,
        built: Built,
        run_dir: PathBuf,
    ) -> Result<Self, TrainError> {
        let record = RunRecord::new(exp, &built.selection.metric, built.task.dim(), &run_dir);
        Ok(Self {
            exp,
            rng: ChaCha8Rng::seed_from_u64(derive_seed(exp.seed, streams::TRAIN)),
            opt: Optimizer::new(exp.optimizer.clone()),
            built,
            run_dir,
            record,
            best: None,
            guard: DivergenceGuard::default(),
            start: 0,
            train_time: Duration::ZERO,
            last_loss: f64::NAN,
            last_checkpoint: None,
            logged_until: None,
            source_text: Some(source_text.to_string()),
        })
    }

    /// A run taken up again from the last checkpoint in `run_dir`.
    pub fn resumed(
        exp: &'e Experiment,
        mut built: Built,
        run_dir: PathBuf,
    ) -> Result<Self, TrainError> {
        let fail = |message: String| TrainError::Resume {
            run_dir: run_dir.clone(),
            message,
        };
        let record_path = run_dir.join(METRICS_FILE);
        let mut record = RunRecord::read(&record_path).map_err(|e| fail(e.to_string()))?;
        if record.status == RunState::Finished {
            return Err(fail(
                "the run finished; there is nothing to continue".into(),
            ));
        }
        if exp.iterations == 0 {
            return Err(fail(
                "the model is fitted from samples, not trained; run it again".into(),
            ));
        }
        let ckpt = Checkpoint::read(&run_dir.join(LAST_CHECKPOINT))?;
        let state: ResumeState = match ckpt.metadata()?.get(RESUME_KEY) {
            Some(text) => serde_json::from_str(text)
                .map_err(|e| fail(format!("its checkpoint's resume state: {e}")))?,
            None => {
                return Err(fail(
                    "its last checkpoint has no resume state (written by an older version)".into(),
                ))
            }
        };
        let dev = built.dev.clone();
        ckpt.load_params(&dev, &mut checkpointed(&mut built.model, &mut *built.task))?;
        let mut opt = Optimizer::new(exp.optimizer.clone());
        ckpt.load_optimizer(
            &dev,
            &checkpointed(&mut built.model, &mut *built.task),
            &mut opt,
        )?;
        built
            .task
            .set_state(&state.task_state)
            .map_err(|e| fail(e.to_string()))?;
        let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(exp.seed, streams::TRAIN));
        let pos: u128 = state.rng_word_pos.parse().map_err(|e| {
            fail(format!(
                "random stream position {:?}: {e}",
                state.rng_word_pos
            ))
        })?;
        rng.set_word_pos(pos);
        record.resume_at(state.step);
        let logged_until = last_logged_step(&run_dir);
        tracing::info!(
            "resuming {} at step {} (events logged up to step {:?})",
            run_dir.display(),
            state.step,
            logged_until
        );
        Ok(Self {
            exp,
            built,
            run_dir,
            rng,
            opt,
            record,
            best: state.best,
            guard: state.guard,
            start: state.step,
            train_time: Duration::from_secs_f64(state.train_seconds.max(0.0)),
            last_loss: state.last_loss,
            last_checkpoint: Some(state.step),
            logged_until,
            source_text: None,
        })
    }

    /// Runs to the end (or to an early stop) and closes the event file;
    /// whatever stops the run, `metrics.json` records it.
    pub fn run_to_end(mut self, opts: &super::RunOptions) -> Result<RunSummary, TrainError> {
        let mut tb = TensorBoardLogger::create(&self.run_dir)?;
        if let Some(text) = self.source_text.take() {
            super::hparams::log_start(&mut tb, self.exp, &text)?;
        }
        let result = {
            let mut log = SkipLogged {
                inner: &mut tb,
                until: self.logged_until,
            };
            self.run(&mut log, opts.progress, opts.stop_after)
        };
        if let Err(e) = &result {
            let (state, step) = match e {
                TrainError::Interrupted { step, .. } => (RunState::Interrupted, *step),
                TrainError::Diverged { step, .. } => (RunState::Diverged, *step),
                TrainError::Step { step, .. } => (RunState::Failed, *step),
                _ => (RunState::Failed, 0),
            };
            self.record.stop(state, step, e.to_string());
            // Best effort: the original error matters more than a logging failure.
            let _ = self.write_record();
        }
        let ended = super::hparams::log_end(&mut tb, &self.record);
        // `close` waits until the event file is written. A training error
        // matters more than a logging error at close.
        let closed = tb.close();
        let summary = result?;
        ended?;
        closed?;
        Ok(summary)
    }

    fn write_record(&self) -> Result<(), TrainError> {
        let path = self.run_dir.join(METRICS_FILE);
        self.record.write(&path).map_err(io_err(&path))
    }

    /// Which checkpoint a stopped run keeps.
    fn kept(&self) -> String {
        match self.last_checkpoint {
            None => format!("nothing was saved in {}", self.run_dir.display()),
            Some(0) => format!(
                "the checkpoint from step 0 — the initial weights — is kept in {}",
                self.run_dir.display()
            ),
            Some(s) => format!(
                "the last checkpoint, from step {s}, is kept in {}",
                self.run_dir.display()
            ),
        }
    }

    fn diverged(&self, step: u64, what: &str, d: Divergence) -> TrainError {
        TrainError::Diverged {
            step,
            what: what.to_string(),
            value: d.value,
            first: d
                .first
                .map(|f| format!(" (first value {f})"))
                .unwrap_or_default(),
            kept: self.kept(),
        }
    }

    fn save(&mut self, file: &str, step: u64) -> Result<(), TrainError> {
        let state = ResumeState {
            step,
            rng_word_pos: self.rng.get_word_pos().to_string(),
            task_state: self.built.task.state(),
            best: self.best,
            train_seconds: self.train_time.as_secs_f64(),
            last_loss: self.last_loss,
            guard: self.guard.clone(),
        };
        let mut meta = HashMap::new();
        meta.insert("step".to_string(), step.to_string());
        meta.insert("dim".to_string(), self.built.task.dim().to_string());
        meta.insert("experiment".to_string(), self.exp.name.clone());
        meta.insert(
            RESUME_KEY.to_string(),
            serde_json::to_string(&state).expect("resume state serializes"),
        );
        let module = checkpointed(&mut self.built.model, &mut *self.built.task);
        checkpoint::save(&self.run_dir.join(file), &module, Some(&self.opt), meta)?;
        if file == LAST_CHECKPOINT {
            self.last_checkpoint = Some(step);
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

    /// Logs the task's artifacts of the current model to TensorBoard and,
    /// with `save_to`, writes images there as PNG files.
    fn log_artifacts(
        &mut self,
        tb: &mut dyn Logger,
        prefix: &str,
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
            tb.image(&format!("{prefix}{name}"), step, &rgb, width, height)?;
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

    /// Evaluates on the validation split, logs, writes the last checkpoint
    /// and, when the selection metric improved, the best one; returns the
    /// selection metric.
    fn evaluate_and_checkpoint(
        &mut self,
        tb: &mut dyn Logger,
        step: u64,
        seconds_per_iteration: f64,
    ) -> Result<f64, TrainError> {
        self.refit_coefficients(step)?;
        let selection = self.built.selection.metric.clone();
        let mut metrics = self.built.task.evaluate(
            &self.built.dev,
            self.built.model.scorer(),
            Split::Validation,
        );
        metrics.extend(self.sampling_metrics(Split::Validation));
        for (k, v) in &metrics {
            tb.scalar(&format!("val/{k}"), step, *v)?;
        }
        self.log_artifacts(tb, "images/", step, None)?;
        let sel = metrics.get(&selection).copied().unwrap_or(f64::NAN);
        if let Some(d) = self.guard.metric(sel) {
            return Err(self.diverged(step, &format!("validation {selection}"), d));
        }
        let improved = self
            .built
            .selection
            .improves(sel, self.best.map(|(_, b)| b));
        if improved {
            self.best = Some((step, sel));
            self.save(BEST_CHECKPOINT, step)?;
        }
        // Written after the best is updated, so it records the new best.
        self.save(LAST_CHECKPOINT, step)?;
        self.record.record_eval(
            step,
            self.last_loss,
            seconds_per_iteration,
            &metrics,
            improved,
        );
        self.write_record()?;
        tb.flush()?;
        Ok(sel)
    }

    /// For a model that solves its coefficients in closed form: refits them
    /// on the task's training points (all of them when the task keeps a
    /// fixed set, else [`REFIT_POINTS`] fresh draws) with the objective's
    /// criterion and stores them as the model's own, so the evaluation,
    /// the checkpoints and log Z use them (see [`crate::closed_form`]).
    fn refit_coefficients(&mut self, step: u64) -> Result<(), TrainError> {
        let (ModelSlot::Trained(m), Some(objective), Some(projection)) = (
            &mut self.built.model,
            &self.built.objective,
            &self.built.projection,
        ) else {
            return Ok(());
        };
        let (Some(criterion), Some(lc)) = (
            objective.coefficient_criterion(),
            m.as_linear_coefficients(),
        ) else {
            return Ok(());
        };
        let dim = self.built.task.dim();
        let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(
            derive_seed(self.exp.seed, streams::REFIT),
            step,
        ));
        let points = match self.built.task.train_points() {
            Some(p) => p.to_vec(),
            None => self.built.task.train_batch(&mut rng, REFIT_POINTS),
        };
        let alpha = crate::closed_form::refit(
            &self.built.dev,
            lc,
            &points,
            dim,
            criterion,
            &**projection,
            &mut rng,
        )
        .map_err(|e| TrainError::Step {
            step,
            message: format!(
                "refitting the closed-form coefficients on {} training rows: {e}",
                points.len() / dim.max(1)
            ),
            kept: format!("the checkpoints so far in {}", self.run_dir.display()),
        })?;
        if let Some(lc) = m.as_linear_coefficients_mut() {
            lc.set_coefficients(&self.built.dev, &alpha);
        }
        Ok(())
    }

    /// Before the first step: data-dependent initialisation, or the fit of
    /// a model fitted from samples.
    fn prepare(&mut self) -> Result<(), TrainError> {
        if let ModelSlot::Trained(m) = &mut self.built.model {
            if let Some(init) = m.as_data_init() {
                let points = init.data_init_points();
                let batch = self.built.task.train_batch(&mut self.rng, points);
                init.init_from_data(&self.built.dev, &batch);
            }
        }
        if let (ModelSlot::Fitted { estimator, fitted }, 0) =
            (&mut self.built.model, self.exp.iterations)
        {
            let points = estimator.samples_wanted();
            let batch = self.built.task.train_batch(&mut self.rng, points);
            let model = estimator
                .fit(&self.built.dev, &batch)
                .map_err(|m| TrainError::Step {
                    step: 0,
                    message: format!("fitting the model to {points} training rows: {m}"),
                    kept: format!("nothing was saved in {}", self.run_dir.display()),
                })?;
            *fitted = Some(model);
        }
        Ok(())
    }

    fn run(
        &mut self,
        tb: &mut dyn Logger,
        progress: bool,
        stop_after: Option<u64>,
    ) -> Result<RunSummary, TrainError> {
        let exp = self.exp;
        let iterations = exp.iterations as u64;
        let bs = exp.batch_size;
        let selection = self.built.selection.metric.clone();
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
        tracing::info!(
            "best checkpoint selected by {}",
            self.built.selection.describe()
        );
        if self.start == 0 {
            self.prepare()?;
            self.save(LAST_CHECKPOINT, 0)?;
            self.write_record()?;
            if iterations == 0 {
                self.evaluate_and_checkpoint(tb, 0, 0.0)?;
            }
        } else {
            self.write_record()?;
        }

        let pb = progress_bar(iterations, progress);
        pb.set_position(self.start);
        let mut window = (Duration::ZERO, 0u32);
        let mut steps_taken = self.start;
        let result = (|| -> Result<(), TrainError> {
            for step in self.start + 1..=iterations {
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
                let outcome =
                    match train_step(parts, &mut self.opt, &mut self.rng, bs, exp.grad_clip) {
                        Ok(o) => o,
                        Err(StepError::NonFinite { what, value }) => {
                            let first = if what == "training loss" {
                                self.guard.first_loss
                            } else {
                                None
                            };
                            return Err(self.diverged(step, what, Divergence { value, first }));
                        }
                        Err(StepError::Loss(message)) => {
                            return Err(TrainError::Step {
                                step,
                                message,
                                kept: self.kept(),
                            })
                        }
                    };
                let (loss_value, grad_norm) = (outcome.loss, outcome.grad_norm);
                if let Some(d) = self.guard.loss(loss_value) {
                    return Err(self.diverged(step, "training loss", d));
                }
                let dt = started.elapsed();
                self.train_time += dt;
                window.0 += dt;
                window.1 += 1;
                self.last_loss = loss_value;
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
                    let spi = self.train_time.as_secs_f64() / step as f64;
                    let sel = self.evaluate_and_checkpoint(tb, step, spi)?;
                    pb.set_message(format!("loss {loss_value:.4} | val {selection} {sel:.4}"));
                    if let (Some(patience), Some((best_step, _))) = (exp.patience, self.best) {
                        if step - best_step >= patience as u64 && step < iterations {
                            tracing::info!(
                                "early stop at step {step}: validation {selection} has not improved since step {best_step}"
                            );
                            self.record.stopped_early(step);
                            self.write_record()?;
                            break;
                        }
                    }
                }
                let stop_here = stop_after.is_some_and(|s| step >= s) && step < iterations;
                if interrupt::requested() || stop_here {
                    interrupt::clear();
                    if self.last_checkpoint != Some(step) {
                        self.save(LAST_CHECKPOINT, step)?;
                    }
                    tb.flush()?;
                    return Err(TrainError::Interrupted {
                        step,
                        run_dir: self.run_dir.clone(),
                    });
                }
            }
            Ok(())
        })();
        match &result {
            Ok(()) => pb.finish(),
            Err(_) => pb.abandon(),
        }
        result?;

        let Some((best_step, _)) = self.best else {
            return Err(TrainError::Step {
                step: steps_taken,
                message: "no evaluation was recorded".into(),
                kept: self.kept(),
            });
        };
        let ckpt = Checkpoint::read(&self.run_dir.join(BEST_CHECKPOINT))?;
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
        // The best checkpoint's numbers and images belong to its step (and
        // its own tags: TensorBoard keeps one image per tag and step).
        for (k, v) in &test {
            tb.scalar(&format!("test/{k}"), best_step, *v)?;
        }
        let best = super::hparams::BEST_PREFIX;
        for (k, v) in self.record.best_metrics() {
            tb.scalar(&format!("{best}/val/{k}"), best_step, v)?;
        }
        let images = format!("{best}/images/");
        self.log_artifacts(tb, &images, best_step, Some(&self.run_dir.clone()))?;
        self.record.finish(best_step, &test);
        self.write_record()?;
        let seconds_per_iteration = if steps_taken == 0 {
            0.0
        } else {
            self.train_time.as_secs_f64() / steps_taken as f64
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
            best: self.record.best_metrics(),
            test,
            final_loss: self.last_loss,
            seconds_per_iteration,
            steps: steps_taken,
            dim: self.built.task.dim(),
            selection_metric: self.record.selection_metric.clone(),
        })
    }
}

/// The largest step in the run folder's event files (`None`: none logged).
fn last_logged_step(run_dir: &Path) -> Option<u64> {
    let mut last = None;
    for f in crate::logging::find_event_files(run_dir) {
        // A file cut short by a kill still yields its complete records.
        if let Ok(events) = crate::logging::read_complete_events(&f) {
            for e in events {
                if !e.values.is_empty() {
                    last = last.max(Some(e.step.max(0) as u64));
                }
            }
        }
    }
    last
}
