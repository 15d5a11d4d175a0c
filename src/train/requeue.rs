//! Runs a scheduler may start again: `run --run-dir DIR --resume-existing`,
//! what each task of a Slurm sweep runs.
//!
//! Data flow: [`run_or_resume`] looks at `DIR` first. Nothing there (or an
//! empty folder): a fresh run is trained into it ([`super::train`]). A
//! finished run of the same experiment and seed: nothing to do. A run
//! that stopped with a checkpoint (`interrupted`, or `running` when its
//! process was killed): it is continued exactly ([`super::resume`]). A run
//! that failed or diverged, or a folder without a usable record or
//! checkpoint: it is moved aside to `DIR.attempt-<k>` and a fresh run
//! starts. A folder holding a run of another experiment or seed is
//! refused, never touched.

use std::path::{Path, PathBuf};

use super::record::{RunRecord, RunState};
use super::{RunOptions, RunSummary, TrainError, LAST_CHECKPOINT, METRICS_FILE};
use crate::error::ExperimentError;
use crate::experiment::Experiment;

/// What [`run_or_resume`] did.
#[derive(Debug, Clone)]
pub enum Requeued {
    /// The run was trained (fresh or continued) to its end.
    Ran(RunSummary),
    /// The folder already held the finished run; nothing was done.
    AlreadyFinished(PathBuf),
}

/// Moves `dir` aside to the first free `<dir>.attempt-<k>` and returns it.
fn set_aside(dir: &Path) -> Result<PathBuf, TrainError> {
    for k in 1u32.. {
        let to = PathBuf::from(format!("{}.attempt-{k}", dir.display()));
        if to.exists() {
            continue;
        }
        std::fs::rename(dir, &to).map_err(|source| TrainError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        return Ok(to);
    }
    unreachable!("some attempt number is free")
}

/// Trains `exp`, read from `file` (named in errors), whose copy in the run
/// folder is `copy`, into `run_dir`,
/// continuing or skipping what an earlier start of the same task left
/// there (see the module documentation). `opts.run_dir` is ignored.
///
/// # Errors
/// What training or resuming returns, and [`TrainError::Resume`] when the
/// folder holds a run of another experiment or seed.
pub fn run_or_resume(
    file: &Path,
    exp: &Experiment,
    copy: &str,
    run_dir: &Path,
    opts: &RunOptions,
) -> Result<Requeued, TrainError> {
    let record_path = run_dir.join(METRICS_FILE);
    let occupied = std::fs::read_dir(run_dir).is_ok_and(|mut d| d.next().is_some());
    if occupied {
        let record = RunRecord::read(&record_path).ok();
        if let Some(r) = &record {
            if r.experiment != exp.name || r.seed != exp.seed {
                return Err(TrainError::Resume {
                    run_dir: run_dir.to_path_buf(),
                    message: format!(
                        "it holds a run of experiment `{}` with seed {}, not `{}` with seed {}",
                        r.experiment, r.seed, exp.name, exp.seed
                    ),
                });
            }
        }
        match record.as_ref().map(|r| r.status) {
            Some(RunState::Finished) => {
                tracing::info!("{} already finished; nothing to do", run_dir.display());
                return Ok(Requeued::AlreadyFinished(run_dir.to_path_buf()));
            }
            Some(RunState::Interrupted | RunState::Running)
                if run_dir.join(LAST_CHECKPOINT).is_file() =>
            {
                tracing::info!("continuing {} from its last checkpoint", run_dir.display());
                return super::resume(run_dir, opts).map(Requeued::Ran);
            }
            status => {
                let to = set_aside(run_dir)?;
                tracing::warn!(
                    "{} held an unusable attempt ({}); moved to {} and starting afresh",
                    run_dir.display(),
                    status.map_or("no record", |s| s.as_str()),
                    to.display()
                );
            }
        }
    }
    let built = exp.build().map_err(|source| ExperimentError::Invalid {
        path: file.to_path_buf(),
        source,
    })?;
    let opts = RunOptions {
        run_dir: Some(run_dir.to_path_buf()),
        ..opts.clone()
    };
    super::train(exp, copy, built, &opts).map(Requeued::Ran)
}
