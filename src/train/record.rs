//! `metrics.json`: the typed record of a run, written by the training loop
//! and read back by `report`, `sweep` and tests (one type for both, so the
//! reader cannot drift from the writer).
//!
//! Data flow: [`RunRecord::new`] fills the header from the experiment when a
//! run starts; the loop calls [`RunRecord::record_eval`] at every
//! evaluation, [`RunRecord::finish`], [`RunRecord::fail`] or
//! [`RunRecord::stopped_early`], and writes the whole record atomically
//! each time. Non-finite numbers are written as strings (`"NaN"`), which
//! JSON cannot hold as numbers.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::experiment::Experiment;
use crate::task::Metrics;

/// A number that may be NaN or infinite (written as a string then).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Num(pub f64);

impl Serialize for Num {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0.is_finite() {
            s.serialize_f64(self.0)
        } else {
            s.serialize_str(&self.0.to_string())
        }
    }
}

impl<'de> Deserialize<'de> for Num {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            N(f64),
            S(String),
        }
        Ok(Num(match Either::deserialize(d)? {
            Either::N(x) => x,
            Either::S(s) => s.parse().map_err(serde::de::Error::custom)?,
        }))
    }
}

/// Where a run is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    /// Training or evaluating (or killed without a word).
    Running,
    /// Trained and tested.
    Finished,
    /// Stopped by an error.
    Failed,
    /// Stopped by SIGINT/SIGTERM after saving a checkpoint; `resume` continues it.
    Interrupted,
    /// Stopped because the loss or a metric exploded or became NaN.
    Diverged,
}

impl RunState {
    /// The word written in `metrics.json`.
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Running => "running",
            RunState::Finished => "finished",
            RunState::Failed => "failed",
            RunState::Interrupted => "interrupted",
            RunState::Diverged => "diverged",
        }
    }
}

/// Metrics at one step, keyed with their split prefix (`val/…`, `test/…`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepMetrics {
    /// The training step.
    pub step: u64,
    /// The metrics.
    pub metrics: BTreeMap<String, Num>,
}

impl StepMetrics {
    fn new(step: u64, prefix: &str, m: &Metrics) -> Self {
        Self {
            step,
            metrics: prefixed(prefix, m),
        }
    }

    /// The finite metrics as plain numbers.
    pub fn values(&self) -> BTreeMap<String, f64> {
        self.metrics.iter().map(|(k, v)| (k.clone(), v.0)).collect()
    }
}

/// The latest training numbers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainRecord {
    /// The training loss at the last evaluation.
    pub loss: Option<Num>,
    /// Mean seconds per training step so far.
    pub seconds_per_iteration: Option<Num>,
}

/// One evaluation in the history: the step, the training loss and the
/// validation metrics (`val/…`), flat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// The step.
    pub step: u64,
    /// `train/loss` and the `val/…` metrics.
    #[serde(flatten)]
    pub values: BTreeMap<String, Num>,
}

/// Everything `metrics.json` says about a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The experiment's name.
    pub experiment: String,
    /// The run folder.
    pub run_dir: String,
    /// The seed.
    pub seed: u64,
    /// The device (`cpu f32`, …).
    pub device: String,
    /// The precision of the model's tensors.
    #[serde(default)]
    pub precision: String,
    /// The task's registered name.
    pub task: String,
    /// Dimension of the points the model scores (the task's).
    pub dim: usize,
    /// The model's registered name (`-` for none).
    pub model: String,
    /// The objective's registered name (`-` for none).
    pub objective: String,
    /// The projection's registered name (`-` for none).
    pub projection: String,
    /// Training steps asked for.
    pub iterations: usize,
    /// Points per step.
    pub batch_size: usize,
    /// The metric (`val/…`) that chooses the best checkpoint.
    pub selection_metric: String,
    /// Where the run is.
    pub status: RunState,
    /// Why it failed.
    pub error: Option<String>,
    /// The last step evaluated, or where the run stopped (interrupted, diverged or failed).
    pub step: u64,
    /// The step where patience ran out, if it did.
    pub stopped_early_at: Option<u64>,
    /// Latest training numbers.
    pub train: TrainRecord,
    /// The best validation evaluation.
    pub best: Option<StepMetrics>,
    /// The last validation evaluation.
    pub last_eval: Option<StepMetrics>,
    /// Test metrics of the best checkpoint (the step is the best step).
    pub test: Option<StepMetrics>,
    /// Every evaluation.
    pub history: Vec<HistoryEntry>,
}

fn prefixed(prefix: &str, m: &Metrics) -> BTreeMap<String, Num> {
    m.iter()
        .map(|(k, v)| (format!("{prefix}/{k}"), Num(*v)))
        .collect()
}

/// Why a record could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a run record.
    #[error("{path}: not a run record: {message}")]
    Format {
        /// The file.
        path: std::path::PathBuf,
        /// What the JSON parser said.
        message: String,
    },
}

impl RunRecord {
    /// The record of a run that is starting; `dim` is the dimension of the
    /// points the model scores (the task's).
    pub fn new(exp: &Experiment, selection: &str, dim: usize, run_dir: &Path) -> Self {
        Self {
            experiment: exp.name.clone(),
            run_dir: run_dir.display().to_string(),
            seed: exp.seed,
            device: exp.device().map(|d| d.name()).unwrap_or_default(),
            precision: exp.precision.name().to_string(),
            task: exp.task.name.clone(),
            dim,
            model: exp.model_name().to_string(),
            objective: exp.objective_name().to_string(),
            projection: exp.projection_name().to_string(),
            iterations: exp.iterations,
            batch_size: exp.batch_size,
            selection_metric: format!("val/{selection}"),
            status: RunState::Running,
            error: None,
            step: 0,
            stopped_early_at: None,
            train: TrainRecord::default(),
            best: None,
            last_eval: None,
            test: None,
            history: Vec::new(),
        }
    }

    /// Reads `metrics.json`.
    pub fn read(path: &Path) -> Result<Self, RecordError> {
        let text = std::fs::read_to_string(path).map_err(|source| RecordError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|e| RecordError::Format {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }

    /// Records a validation evaluation at `step`.
    pub fn record_eval(
        &mut self,
        step: u64,
        train_loss: f64,
        seconds_per_iteration: f64,
        metrics: &Metrics,
        improved: bool,
    ) {
        self.step = step;
        self.train = TrainRecord {
            loss: Some(Num(train_loss)),
            seconds_per_iteration: Some(Num(seconds_per_iteration)),
        };
        self.last_eval = Some(StepMetrics::new(step, "val", metrics));
        if improved {
            self.best = self.last_eval.clone();
        }
        let mut values = prefixed("val", metrics);
        values.insert("train/loss".into(), Num(train_loss));
        self.history.push(HistoryEntry { step, values });
    }

    /// Marks the run finished with test metrics of the checkpoint from `best_step`.
    pub fn finish(&mut self, best_step: u64, test: &Metrics) {
        self.status = RunState::Finished;
        self.test = Some(StepMetrics::new(best_step, "test", test));
    }

    /// Records that training stopped early (patience ran out) at `step`.
    pub fn stopped_early(&mut self, step: u64) {
        self.stopped_early_at = Some(step);
    }

    /// Marks the run failed with an error message.
    pub fn fail(&mut self, error: String) {
        self.status = RunState::Failed;
        self.error = Some(error);
    }

    /// Marks the run stopped by an error of kind `state` (failed,
    /// interrupted, diverged) at `step`, with the message.
    pub fn stop(&mut self, state: RunState, step: u64, error: String) {
        self.status = state;
        self.step = self.step.max(step);
        self.error = Some(error);
    }

    /// Takes the record of a run up again at `step` (a resume): later
    /// evaluations are forgotten, the status is `running` again.
    pub fn resume_at(&mut self, step: u64) {
        self.history.retain(|h| h.step <= step);
        self.status = RunState::Running;
        self.error = None;
        self.test = None;
        self.step = step;
        self.stopped_early_at = None;
    }

    /// Writes the record to `path` atomically (pretty JSON and a newline).
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let mut bytes = serde_json::to_vec_pretty(self).expect("a run record serializes");
        bytes.push(b'\n');
        crate::atomic_file::write_atomic(path, &bytes)
    }

    /// Validation metrics at the best step (empty before the first evaluation).
    pub fn best_metrics(&self) -> Metrics {
        self.best
            .as_ref()
            .map(|b| {
                b.metrics
                    .iter()
                    .map(|(k, v)| (k.strip_prefix("val/").unwrap_or(k).to_string(), v.0))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The JSON document.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("a run record serializes")
    }
}
