//! The records of TensorBoard's HParams dashboard, as plain data.
//!
//! Data flow: the training loop describes a run as an [`HParamsRecord`]
//! (its settings when it starts, the columns of the table, how it ended) and
//! hands it to a [`super::Logger`]; the TensorBoard logger encodes it as the
//! hparams plugin's summaries (see `summaries`), and the event reader
//! decodes those summaries back into the same types, so a test compares
//! what was meant with what a reader finds.
//!
//! TensorBoard's layout: each run folder is one *session*. Its
//! `session_start_info` holds the hyperparameter values, its
//! `session_end_info` the status; an `experiment` summary lists the columns
//! (hyperparameters and metrics). A metric is a scalar tag of the session's
//! run; the table shows its last value.

use std::collections::BTreeMap;

/// The summary tag of the experiment record (TensorBoard's constant).
pub const EXPERIMENT_TAG: &str = "_hparams_/experiment";
/// The summary tag of the session-start record.
pub const SESSION_START_TAG: &str = "_hparams_/session_start_info";
/// The summary tag of the session-end record.
pub const SESSION_END_TAG: &str = "_hparams_/session_end_info";
/// The plugin name in the summaries' metadata.
pub const PLUGIN_NAME: &str = "hparams";

/// One hyperparameter's value.
#[derive(Debug, Clone, PartialEq)]
pub enum HParamValue {
    /// A number (shown on a numeric axis).
    Number(f64),
    /// Text (a discrete column).
    Text(String),
    /// A flag.
    Bool(bool),
}

/// The type of a hyperparameter column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HParamType {
    /// Numbers.
    Number,
    /// Text.
    Text,
    /// Flags.
    Bool,
}

/// One hyperparameter column of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HParamInfo {
    /// The name (the key in [`HParamsRecord::SessionStart`]).
    pub name: String,
    /// Its type.
    pub kind: HParamType,
    /// What it is, shown as a tooltip.
    pub description: String,
}

/// One metric column: a scalar tag of the run; the table shows its last value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricInfo {
    /// The scalar tag, e.g. `test/sm_loss`.
    pub tag: String,
    /// What it is, shown as a tooltip.
    pub description: String,
}

/// How a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionStatus {
    /// Not known.
    Unknown,
    /// Finished.
    Success,
    /// Stopped by an error.
    Failure,
    /// Still running.
    Running,
}

/// One record of the hparams plugin.
#[derive(Debug, Clone, PartialEq)]
pub enum HParamsRecord {
    /// The table's columns.
    Experiment {
        /// Hyperparameter columns.
        hparams: Vec<HParamInfo>,
        /// Metric columns.
        metrics: Vec<MetricInfo>,
    },
    /// A session (run) started with these values.
    SessionStart {
        /// Hyperparameter values by name.
        hparams: BTreeMap<String, HParamValue>,
        /// Seconds since the Unix epoch.
        start_time_secs: f64,
    },
    /// The session ended.
    SessionEnd {
        /// How.
        status: SessionStatus,
        /// Seconds since the Unix epoch.
        end_time_secs: f64,
    },
}

impl HParamsRecord {
    /// The summary tag TensorBoard expects this record under.
    pub fn tag(&self) -> &'static str {
        match self {
            HParamsRecord::Experiment { .. } => EXPERIMENT_TAG,
            HParamsRecord::SessionStart { .. } => SESSION_START_TAG,
            HParamsRecord::SessionEnd { .. } => SESSION_END_TAG,
        }
    }
}

/// Seconds since the Unix epoch, now.
pub fn now_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}
