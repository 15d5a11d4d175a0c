//! What a run tells TensorBoard besides its curves: the experiment file as
//! text, and its settings and outcome for the HParams dashboard.
//!
//! Data flow: [`log_start`] (when the run folder is made) writes the
//! experiment file to the text dashboard under [`EXPERIMENT_TEXT_TAG`] and
//! the run's hyperparameter values as a session start; [`log_end`] (after
//! training, also after a failure) writes the session's status and the
//! experiment summary: the hyperparameter columns ([`columns`], the same for
//! every run) and the metric columns, scalar tags of this run chosen from
//! its [`RunRecord`] ([`metrics`]).
//!
//! TensorBoard reads one experiment summary for a whole log folder (the
//! first it finds), so every run lists the same hyperparameter names, each
//! component's settings as one RON string (`objective.settings`) rather
//! than one column per plugin field; metric columns are the run's own
//! (runs of different tasks shown together get one task's metric columns).

use std::collections::BTreeMap;

use crate::experiment::Experiment;
use crate::logging::hparams::now_secs;
use crate::logging::{
    HParamInfo, HParamType, HParamValue, HParamsRecord, LogError, Logger, MetricInfo, SessionStatus,
};
use crate::registry::{Component, ComponentKind};

use super::record::{RunRecord, RunState};

/// The text-dashboard tag of the experiment file.
pub const EXPERIMENT_TEXT_TAG: &str = "experiment";
/// Prefix of the best checkpoint's validation metrics (`best/val/<name>`)
/// and sample images (`best/images/<name>`), logged at the best step.
pub const BEST_PREFIX: &str = "best";

/// The experiment file as Markdown: a code block, shown verbatim.
pub fn experiment_markdown(source_text: &str) -> String {
    source_text
        .lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

const COLUMNS: &[(&str, HParamType, &str)] = &[
    ("experiment", HParamType::Text, "the experiment's name"),
    ("task", HParamType::Text, "task plugin"),
    (
        "task.settings",
        HParamType::Text,
        "the task's settings (RON)",
    ),
    ("model", HParamType::Text, "model plugin (- for none)"),
    (
        "model.settings",
        HParamType::Text,
        "the model's settings (RON)",
    ),
    (
        "objective",
        HParamType::Text,
        "objective plugin (- for none)",
    ),
    (
        "objective.settings",
        HParamType::Text,
        "the objective's settings (RON)",
    ),
    (
        "projection",
        HParamType::Text,
        "projection plugin (- for none)",
    ),
    (
        "projection.settings",
        HParamType::Text,
        "the projection's settings (RON)",
    ),
    (
        "optimizer",
        HParamType::Text,
        "Adam or Sgd, with its settings (RON)",
    ),
    ("lr", HParamType::Number, "learning rate"),
    ("batch_size", HParamType::Number, "points per step"),
    ("iterations", HParamType::Number, "training steps asked for"),
    (
        "eval_every",
        HParamType::Number,
        "steps between evaluations",
    ),
    ("seed", HParamType::Number, "seed of every random stream"),
    ("data_seed", HParamType::Number, "seed of the task's data"),
    (
        "grad_clip",
        HParamType::Number,
        "global gradient-norm clip (empty: none)",
    ),
    (
        "patience",
        HParamType::Number,
        "early-stopping patience in steps (empty: none)",
    ),
    ("precision", HParamType::Text, "f32 or f64"),
    ("device", HParamType::Text, "Cpu, Cuda or Reference"),
];

/// The hyperparameter columns every run writes, in order.
pub fn columns() -> Vec<HParamInfo> {
    COLUMNS
        .iter()
        .map(|&(name, kind, description)| HParamInfo {
            name: name.to_string(),
            kind,
            description: description.to_string(),
        })
        .collect()
}

fn ron_text<T: serde::Serialize + ?Sized>(value: &T) -> String {
    ron::to_string(value).unwrap_or_else(|e| format!("(not writable as RON: {e})"))
}

fn component<C: ?Sized + ComponentKind + serde::Serialize>(
    out: &mut BTreeMap<String, HParamValue>,
    key: &str,
    c: Option<&Component<C>>,
) {
    let (name, settings) = match c {
        Some(c) => (c.name.clone(), ron_text(&*c.config)),
        None => ("-".to_string(), "-".to_string()),
    };
    out.insert(key.to_string(), HParamValue::Text(name));
    out.insert(format!("{key}.settings"), HParamValue::Text(settings));
}

/// This run's values of [`columns`] (an unset optional setting is left out).
pub fn values(exp: &Experiment) -> BTreeMap<String, HParamValue> {
    let mut out = BTreeMap::new();
    let num = |x: f64| HParamValue::Number(x);
    out.insert("experiment".into(), HParamValue::Text(exp.name.clone()));
    component(&mut out, "task", Some(&exp.task));
    component(&mut out, "model", exp.model.as_ref());
    component(&mut out, "objective", exp.objective.as_ref());
    component(&mut out, "projection", exp.projection.as_ref());
    out.insert(
        "optimizer".into(),
        HParamValue::Text(ron_text(&exp.optimizer)),
    );
    out.insert("lr".into(), num(exp.optimizer.lr()));
    out.insert("batch_size".into(), num(exp.batch_size as f64));
    out.insert("iterations".into(), num(exp.iterations as f64));
    out.insert("eval_every".into(), num(exp.eval_every as f64));
    out.insert("seed".into(), num(exp.seed as f64));
    out.insert(
        "data_seed".into(),
        num(exp.data_seed.unwrap_or(exp.seed) as f64),
    );
    if let Some(c) = exp.grad_clip {
        out.insert("grad_clip".into(), num(c));
    }
    if let Some(p) = exp.patience {
        out.insert("patience".into(), num(p as f64));
    }
    out.insert(
        "precision".into(),
        HParamValue::Text(exp.precision.name().to_string()),
    );
    out.insert(
        "device".into(),
        HParamValue::Text(format!("{:?}", exp.device)),
    );
    out
}

/// The metric columns of a run: the test metrics and the validation metrics
/// of the best checkpoint (both logged at the best step), the last
/// evaluation's validation metrics, and the last logged training loss and
/// step time; only those the record has.
pub fn metrics(record: &RunRecord) -> Vec<MetricInfo> {
    let mut out = Vec::new();
    let mut add = |tag: String, description: String| out.push(MetricInfo { tag, description });
    if let Some(test) = &record.test {
        for k in test.metrics.keys() {
            add(
                k.clone(),
                format!("test split, best checkpoint (step {})", test.step),
            );
        }
    }
    if let Some(best) = &record.best {
        for k in best.metrics.keys() {
            add(
                format!("{BEST_PREFIX}/{k}"),
                format!("validation, best checkpoint (step {})", best.step),
            );
        }
    }
    if let Some(last) = &record.last_eval {
        for k in last.metrics.keys() {
            add(
                k.clone(),
                format!("validation, last evaluation (step {})", last.step),
            );
        }
    }
    if record.iterations > 0 && record.train.loss.is_some() {
        add("train/loss".into(), "last logged training loss".into());
        add(
            "train/seconds_per_iteration".into(),
            "seconds per training step, last logging window".into(),
        );
    }
    out
}

/// Writes the experiment file as text and the session start (step 0).
pub fn log_start(tb: &mut dyn Logger, exp: &Experiment, source_text: &str) -> Result<(), LogError> {
    tb.text(EXPERIMENT_TEXT_TAG, 0, &experiment_markdown(source_text))?;
    tb.hparams(&HParamsRecord::SessionStart {
        hparams: values(exp),
        start_time_secs: now_secs(),
    })
}

/// Writes the session end (its status from the record) and the experiment
/// summary with the run's metric columns.
pub fn log_end(tb: &mut dyn Logger, record: &RunRecord) -> Result<(), LogError> {
    let status = match record.status {
        RunState::Finished => SessionStatus::Success,
        RunState::Failed | RunState::Diverged => SessionStatus::Failure,
        // Stopped with a checkpoint: `resume` takes it up again.
        RunState::Running | RunState::Interrupted => SessionStatus::Running,
    };
    tb.hparams(&HParamsRecord::SessionEnd {
        status,
        end_time_secs: now_secs(),
    })?;
    tb.hparams(&HParamsRecord::Experiment {
        hparams: columns(),
        metrics: metrics(record),
    })
}
