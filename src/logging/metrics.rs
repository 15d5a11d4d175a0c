//! `metrics.json`: summary numbers of a run, replaced atomically.
//!
//! The file is rewritten whole (pretty JSON, trailing newline) through
//! [`crate::atomic_file::write_atomic`], so a reader never sees half a file.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::LogError;
use crate::atomic_file::write_atomic;

/// A metrics file at a fixed path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsFile {
    path: PathBuf,
}

impl MetricsFile {
    /// A metrics file at `path` (nothing is written yet).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// Where the file lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Replace the file with `value` as pretty JSON plus a newline.
    /// (serde_json writes non-finite floats as `null`.)
    pub fn write<T: Serialize + ?Sized>(&self, value: &T) -> Result<(), LogError> {
        let json_err = |source| LogError::Json {
            path: self.path.clone(),
            source,
        };
        let mut bytes = serde_json::to_vec_pretty(value).map_err(json_err)?;
        bytes.push(b'\n');
        write_atomic(&self.path, &bytes).map_err(|source| LogError::Io {
            path: self.path.clone(),
            source,
        })
    }

    /// Read the file back as untyped JSON.
    pub fn read(&self) -> Result<serde_json::Value, LogError> {
        read_metrics(&self.path)
    }
}

/// Atomically replace `path` with `value` as pretty JSON plus a newline.
pub fn write_metrics(path: &Path, value: &serde_json::Value) -> Result<(), LogError> {
    MetricsFile::new(path).write(value)
}

/// Read a metrics file as untyped JSON.
pub fn read_metrics(path: &Path) -> Result<serde_json::Value, LogError> {
    let bytes = std::fs::read(path).map_err(|source| LogError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|source| LogError::Json {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn written_file_parses_back() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("metrics.json");
        let value = json!({"final_loss": 0.125, "steps": 1000, "nan": null, "tags": ["a", "b"]});
        write_metrics(&path, &value).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.ends_with("}\n") && text.contains("\n  \""), "{text}");
        assert_eq!(read_metrics(&path).unwrap(), value);

        let file = MetricsFile::new(&path);
        file.write(&json!({"final_loss": 0.0625})).unwrap();
        assert_eq!(file.read().unwrap()["final_loss"], 0.0625);
    }

    #[test]
    fn serializable_structs_work() {
        #[derive(Serialize)]
        struct Summary {
            loss: f64,
        }
        let tmp = tempfile::tempdir().unwrap();
        let file = MetricsFile::new(tmp.path().join("m.json"));
        file.write(&Summary { loss: 2.0 }).unwrap();
        assert_eq!(file.read().unwrap(), json!({"loss": 2.0}));
    }

    #[test]
    fn errors_name_the_path() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("missing-dir").join("metrics.json");
        let err = write_metrics(&path, &json!(1)).unwrap_err();
        assert!(matches!(err, LogError::Io { .. }));
        assert!(err.to_string().contains("missing-dir"), "{err}");

        std::fs::write(tmp.path().join("bad.json"), b"{").unwrap();
        let err = read_metrics(&tmp.path().join("bad.json")).unwrap_err();
        assert!(matches!(err, LogError::Json { .. }), "{err}");
    }
}
