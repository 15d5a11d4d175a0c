//! Finished runs read back from their folders (`report`): each run's typed
//! `metrics.json` record, one table row per folder given.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::report::{labels, summarise_requested, SeedRun, SweepReport, SweepRow};
use super::SweepError;
use crate::experiment::Experiment;
use crate::train::record::{RunRecord, RunState};

/// The run folders under `dir`: `dir` itself when it holds a `metrics.json`,
/// else its subfolders that do (sorted), e.g. every run of one experiment
/// under `logs/<name>/`.
fn run_folders(dir: &Path) -> Result<Vec<PathBuf>, SweepError> {
    if dir.join(crate::train::METRICS_FILE).is_file() {
        return Ok(vec![dir.to_path_buf()]);
    }
    let entries = std::fs::read_dir(dir).map_err(|source| SweepError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut runs: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join(crate::train::METRICS_FILE).is_file())
        .collect();
    runs.sort();
    Ok(runs)
}

/// A run as recorded in its `metrics.json`; a record that cannot be read
/// (damaged, or written by another version) becomes a failed run saying
/// why, so one bad folder does not hide the others.
fn recorded_run(run_dir: &Path) -> SeedRun {
    let path = run_dir.join(crate::train::METRICS_FILE);
    match RunRecord::read(&path) {
        Ok(rec) => run_of_record(run_dir, &rec),
        Err(e) => SeedRun {
            // The run's own experiment copy still says which seed it was.
            seed: Experiment::load(&run_dir.join(crate::train::EXPERIMENT_COPY))
                .map(|e| e.seed)
                .unwrap_or(0),
            run_dir: Some(run_dir.to_path_buf()),
            status: RunState::Failed,
            error: Some(format!("unreadable {}: {e}", path.display())),
            waiting: None,
            metrics: BTreeMap::new(),
            dim: None,
            selected_by: None,
        },
    }
}

/// The table row entry of a readable record.
pub(crate) fn run_of_record(run_dir: &Path, rec: &RunRecord) -> SeedRun {
    let mut metrics = BTreeMap::new();
    for block in [&rec.test, &rec.best].into_iter().flatten() {
        for (k, v) in block.values() {
            if v.is_finite() {
                metrics.insert(k, v);
            }
        }
    }
    if let Some(x) = rec.train.seconds_per_iteration {
        metrics.insert("train/seconds_per_iteration".into(), x.0);
    }
    let error = match rec.status {
        RunState::Finished => None,
        RunState::Running => Some(format!(
            "not finished: still running or stopped at step {}",
            rec.step
        )),
        other => Some(
            rec.error
                .clone()
                .unwrap_or_else(|| format!("run status `{}`", other.as_str())),
        ),
    };
    SeedRun {
        seed: rec.seed,
        run_dir: Some(run_dir.to_path_buf()),
        status: rec.status,
        error,
        waiting: None,
        metrics,
        dim: Some(rec.dim),
        selected_by: Some(rec.selection_metric.clone()),
    }
}

/// The sweep table from runs that already finished: each of `dirs` is one
/// row, either a run folder or an experiment's folder of runs
/// (`logs/<name>/`, every run in it counted, e.g. one per seed). Nothing is
/// trained and nothing is written; `sweep_dir` of the report is empty.
pub fn report_runs(
    dirs: &[PathBuf],
    metrics: &Option<Vec<String>>,
) -> Result<SweepReport, SweepError> {
    if dirs.is_empty() {
        return Err(SweepError::Empty("no run folders"));
    }
    let mut parsed = Vec::new();
    let mut runs = Vec::new();
    for dir in dirs {
        let folders = run_folders(dir)?;
        // The row's experiment: the first run folder whose copy is readable
        // (else the first folder's error).
        let mut found: Result<(PathBuf, Experiment), SweepError> = Err(SweepError::Empty(
            "a folder holds no run (no metrics.json in it or its subfolders)",
        ));
        for f in &folders {
            let exp_path = f.join(crate::train::EXPERIMENT_COPY);
            match Experiment::load(&exp_path) {
                Ok(exp) => {
                    found = Ok((exp_path, exp));
                    break;
                }
                Err(e) if matches!(found, Err(SweepError::Empty(_))) => found = Err(e.into()),
                Err(_) => {}
            }
        }
        let (exp_path, exp) = found?;
        parsed.push((exp_path, exp, String::new()));
        runs.push(folders.iter().map(|f| recorded_run(f)).collect::<Vec<_>>());
    }
    let labels = labels(&parsed);
    let mut rows: Vec<SweepRow> = parsed
        .iter()
        .zip(labels)
        .zip(runs)
        .map(|(((f, e, _), label), runs)| SweepRow {
            label,
            file: f.clone(),
            experiment: e.name.clone(),
            objective: e.objective_name().to_string(),
            model: e.model_name().to_string(),
            task: e.task.name.clone(),
            runs,
            cells: BTreeMap::new(),
        })
        .collect();
    let chosen = summarise_requested(&mut rows, metrics)?;
    let mut seeds: Vec<u64> = rows
        .iter()
        .flat_map(|r| r.runs.iter().map(|s| s.seed))
        .collect();
    seeds.sort_unstable();
    seeds.dedup();
    Ok(SweepReport {
        sweep_dir: PathBuf::new(),
        seeds,
        metrics: chosen,
        rows,
    })
}
