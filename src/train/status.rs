//! The content of `metrics.json`: run state, best and last validation
//! metrics, test metrics and the evaluation history.

use std::path::Path;

use serde_json::{json, Value};

use crate::experiment::Experiment;
use crate::task::Metrics;

/// Everything `metrics.json` says about a run, updated as it goes.
pub struct RunStatus {
    header: Value,
    status: &'static str,
    error: Option<String>,
    step: u64,
    train_loss: Option<f64>,
    seconds_per_iteration: Option<f64>,
    best: Option<(u64, Metrics)>,
    last: Option<(u64, Metrics)>,
    test: Option<(u64, Metrics)>,
    history: Vec<Value>,
    stopped_early_at: Option<u64>,
}

fn prefixed(prefix: &str, m: &Metrics) -> Value {
    Value::Object(
        m.iter()
            .map(|(k, v)| (format!("{prefix}/{k}"), json_number(*v)))
            .collect(),
    )
}

fn json_number(v: f64) -> Value {
    serde_json::Number::from_f64(v)
        .map(Value::Number)
        .unwrap_or_else(|| Value::String(v.to_string()))
}

impl RunStatus {
    /// A run that is starting.
    /// `dim` is the dimension of the points the model scores (the task's).
    pub fn new(exp: &Experiment, selection: &str, dim: usize, run_dir: &Path) -> Self {
        Self {
            header: json!({
                "experiment": exp.name,
                "run_dir": run_dir.display().to_string(),
                "seed": exp.seed,
                "device": exp.device().map(|d| d.name()).unwrap_or_default(),
                "precision": exp.precision.name(),
                "task": exp.task.name,
                "dim": dim,
                "model": exp.model_name(),
                "objective": exp.objective_name(),
                "projection": exp.projection_name(),
                "iterations": exp.iterations,
                "batch_size": exp.batch_size,
                "selection_metric": format!("val/{selection}"),
            }),
            status: "running",
            error: None,
            step: 0,
            train_loss: None,
            seconds_per_iteration: None,
            best: None,
            last: None,
            test: None,
            history: Vec::new(),
            stopped_early_at: None,
        }
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
        self.train_loss = Some(train_loss);
        self.seconds_per_iteration = Some(seconds_per_iteration);
        self.last = Some((step, metrics.clone()));
        if improved {
            self.best = Some((step, metrics.clone()));
        }
        let mut h = prefixed("val", metrics);
        h["step"] = json!(step);
        h["train/loss"] = json_number(train_loss);
        self.history.push(h);
    }

    /// Marks the run finished with test metrics of the checkpoint from `best_step`.
    pub fn finish(&mut self, best_step: u64, test: &Metrics) {
        self.status = "finished";
        self.test = Some((best_step, test.clone()));
    }

    /// Records that training stopped early (patience ran out) at `step`.
    pub fn stopped_early(&mut self, step: u64) {
        self.stopped_early_at = Some(step);
    }

    /// Marks the run failed with an error message.
    pub fn fail(&mut self, error: String) {
        self.status = "failed";
        self.error = Some(error);
    }

    /// Validation metrics at the best step (empty before the first evaluation).
    pub fn best_metrics(&self) -> Metrics {
        self.best.as_ref().map(|b| b.1.clone()).unwrap_or_default()
    }

    /// The JSON document.
    pub fn to_json(&self) -> Value {
        let mut v = self.header.clone();
        v["status"] = json!(self.status);
        v["error"] = json!(self.error);
        v["step"] = json!(self.step);
        v["stopped_early_at"] = json!(self.stopped_early_at);
        v["train"] = json!({
            "loss": self.train_loss.map(json_number),
            "seconds_per_iteration": self.seconds_per_iteration.map(json_number),
        });
        let block = |b: &Option<(u64, Metrics)>, prefix: &str| match b {
            Some((s, m)) => json!({"step": s, "metrics": prefixed(prefix, m)}),
            None => Value::Null,
        };
        v["best"] = block(&self.best, "val");
        v["last_eval"] = block(&self.last, "val");
        v["test"] = block(&self.test, "test");
        v["history"] = Value::Array(self.history.clone());
        v
    }
}
