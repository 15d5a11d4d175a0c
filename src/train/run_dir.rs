//! Run folders that are never shared.
//!
//! A run folder is claimed with `create_dir`, which exactly one process can
//! win: [`create_unique`] tries `<base>`, `<base>-2`, `<base>-3`, … until it
//! creates one, so runs started at the same millisecond (a sweep run in
//! parallel, two users) get folders of their own. [`claim`] takes a folder a
//! user named (`--run-dir`): it must not exist yet, or be empty; a folder
//! that already holds a run is refused (continue it with `resume`).

use std::io;
use std::path::{Path, PathBuf};

use super::{TrainError, EXPERIMENT_COPY, METRICS_FILE};

/// Creates a new folder `<base>` or, if that exists, `<base>-k` for the
/// smallest `k ≥ 2` that does not; its parents are created as needed.
pub fn create_unique(base: &Path) -> io::Result<PathBuf> {
    if let Some(parent) = base.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let name = base
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "run".to_string());
    for k in 1u64.. {
        let dir = if k == 1 {
            base.to_path_buf()
        } else {
            base.with_file_name(format!("{name}-{k}"))
        };
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    unreachable!("some suffix is free")
}

/// Claims the folder `dir` a user named: creates it (and its parents), or
/// accepts it when it exists and holds no run.
///
/// # Errors
/// [`TrainError::RunDirTaken`] when the folder already holds a run (its
/// `experiment.ron` or `metrics.json`), an I/O error otherwise.
pub fn claim(dir: &Path) -> Result<(), TrainError> {
    let io_err = |source| TrainError::Io {
        path: dir.to_path_buf(),
        source,
    };
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent).map_err(io_err)?;
    }
    match std::fs::create_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            if dir.join(METRICS_FILE).exists() || dir.join(EXPERIMENT_COPY).exists() {
                Err(TrainError::RunDirTaken {
                    run_dir: dir.to_path_buf(),
                })
            } else if dir.is_dir() {
                Ok(())
            } else {
                Err(io_err(e))
            }
        }
        Err(e) => Err(io_err(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_claims_get_distinct_folders() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().join("exp").join("20260101-000000.000");
        let dirs: Vec<PathBuf> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..16)
                .map(|_| s.spawn(|| create_unique(&base).unwrap()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut unique = dirs.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 16, "{dirs:?}");
        assert!(dirs.iter().all(|d| d.is_dir()));
    }

    #[test]
    fn a_named_folder_holding_a_run_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("run");
        claim(&dir).unwrap();
        claim(&dir).unwrap(); // empty: fine
        std::fs::write(dir.join(METRICS_FILE), "{}").unwrap();
        assert!(matches!(claim(&dir), Err(TrainError::RunDirTaken { .. })));
    }
}
