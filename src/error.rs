//! Error types of the library. Every error names the file, field or step it
//! is about, so a user can fix the input without reading code.

use std::path::PathBuf;

/// An invalid setting, naming the field by its dotted path in the experiment.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ConfigError {
    /// Dotted path of the field, e.g. `objective.ssm.projections`.
    pub field: String,
    /// What is wrong and what is allowed.
    pub message: String,
}

impl ConfigError {
    /// A new error about `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The same error with `prefix.` put before the field path.
    pub fn within(mut self, prefix: &str) -> Self {
        self.field = if self.field.is_empty() {
            prefix.to_string()
        } else {
            format!("{prefix}.{}", self.field)
        };
        self
    }
}

/// Checks `value ≥ min` for a count, naming `field` otherwise.
pub fn require_at_least(field: &str, value: usize, min: usize) -> Result<(), ConfigError> {
    if value < min {
        return Err(ConfigError::new(
            field,
            format!("must be ≥ {min}, got {value}"),
        ));
    }
    Ok(())
}

/// Checks that `value` is finite and `> 0`, naming `field` otherwise.
pub fn require_positive(field: &str, value: f64) -> Result<(), ConfigError> {
    if !(value.is_finite() && value > 0.0) {
        return Err(ConfigError::new(
            field,
            format!("must be finite and > 0, got {value}"),
        ));
    }
    Ok(())
}

/// Errors from loading an experiment file.
#[derive(Debug, thiserror::Error)]
pub enum ExperimentError {
    /// The file could not be read.
    #[error("cannot read experiment file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// RON syntax or schema error, with position.
    #[error("{path}:{line}:{column}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What the parser said.
        message: String,
    },
    /// A setting is out of range.
    #[error("{path}: {source}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Which field and why.
        source: ConfigError,
    },
}

/// The message of a caught panic (`""` when it carries none).
pub fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        String::new()
    }
}
