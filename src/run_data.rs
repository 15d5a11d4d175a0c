//! `data.json` in a run folder: where the run's data came from and how the
//! data's units map to the model's coordinates.
//!
//! Data flow: when a run starts, [`crate::train::train`] builds a
//! [`RunData`] from the experiment (the folder its relative data paths
//! resolved against, [`crate::data_path`]) and the task (its
//! [`DataMap`], e.g. the whitening fitted on the training split) and writes
//! it atomically next to `experiment.ron`. [`crate::run_loader`] reads it
//! back: the folder to parse the run's verbatim experiment copy against, so
//! the data are found from any working directory, and the map to convert
//! points, scores and samples to the data's own units.
//!
//! A run folder from before this file existed has none; [`RunData::read`]
//! then answers with the working directory and an [`DataMap::Opaque`] map
//! that says so (its scores stay available in the model's coordinates).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::data_map::DataMap;
use crate::experiment::Experiment;
use crate::task::Task;

/// File name of the run's data record.
pub const RUN_DATA_FILE: &str = "data.json";

/// Why `data.json` could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum RunDataError {
    /// Reading or writing failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a valid record.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        message: String,
    },
}

/// What a run records about its data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunData {
    /// The folder relative data paths in the run's `experiment.ron` resolve
    /// against (the experiment file's folder); `None`: the working directory.
    pub experiment_dir: Option<PathBuf>,
    /// The map from the data's units to the model's coordinates.
    pub data_map: DataMap,
}

impl RunData {
    /// The record of a run of `exp` with the built `task`.
    pub fn of(exp: &Experiment, task: &dyn Task) -> Self {
        Self {
            experiment_dir: exp.base_dir().map(Path::to_path_buf),
            data_map: task.data_map(),
        }
    }

    /// What a run folder without `data.json` (written before it existed) is
    /// read as.
    pub fn unrecorded() -> Self {
        Self {
            experiment_dir: None,
            data_map: DataMap::Opaque {
                description: format!(
                    "this run folder has no {RUN_DATA_FILE}: it was written before runs recorded \
                     their preprocessing"
                ),
            },
        }
    }

    /// Writes `run_dir/data.json` atomically.
    ///
    /// # Errors
    /// The I/O error (the caller names the file, `run_dir/`[`RUN_DATA_FILE`]).
    pub fn write(&self, run_dir: &Path) -> std::io::Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        crate::atomic_file::write_atomic(&run_dir.join(RUN_DATA_FILE), text.as_bytes())
    }

    /// Reads `run_dir/data.json`, or [`RunData::unrecorded`] when the run
    /// folder has none.
    pub fn read(run_dir: &Path) -> Result<Self, RunDataError> {
        let path = run_dir.join(RUN_DATA_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::unrecorded()),
            Err(source) => return Err(RunDataError::Io { path, source }),
        };
        serde_json::from_str(&text).map_err(|e| RunDataError::Invalid {
            path,
            message: e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data_map::Affine;

    #[test]
    fn round_trip_and_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(RunData::read(dir.path()).unwrap(), RunData::unrecorded());
        let r = RunData {
            experiment_dir: Some("/a/b".into()),
            data_map: DataMap::Affine(
                Affine::new(vec![0.1, 0.2], vec![1.0 / 3.0, 0.0, 0.7, 2.0]).unwrap(),
            ),
        };
        r.write(dir.path()).unwrap();
        assert_eq!(
            RunData::read(dir.path()).unwrap(),
            r,
            "exact f64 round trip"
        );
        std::fs::write(dir.path().join(RUN_DATA_FILE), "{").unwrap();
        let e = RunData::read(dir.path()).unwrap_err().to_string();
        assert!(e.contains("data.json"), "{e}");
    }
}
