//! Seed sweeps: run every experiment file once per seed and summarise the
//! test metrics as `mean ± standard error` over seeds (the paper's Figure 1
//! table).
//!
//! Data flow: [`run_sweep`] parses every file first (a typo stops the sweep
//! before any training), then for each file and seed overrides
//! [`Experiment::seed`], builds and trains it with [`crate::train::train`]
//! into `<logs>/<name>/<timestamp>-seed<k>/` (the copied `experiment.ron`
//! carries the seed that was used). A run that fails (an invalid setting, a
//! diverging loss, a panic) is recorded as failed for that seed and the sweep
//! goes on. After every run `summary.csv` and `summary.json` are rewritten in
//! `<logs>/sweeps/<timestamp>/`, so an interrupted sweep keeps what it has.
//!
//! `--launcher slurm` hands the same (file, seed) pairs to Slurm as one job
//! array instead ([`slurm`]): a manifest ([`plan`]) in the sweep folder
//! lists every task and its run folder, and `report` on that folder
//! ([`tracked`]) gives the same table, listing runs that are not finished.

pub mod collect;
pub mod plan;
pub mod report;
pub mod slurm;
pub mod tracked;

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use crate::error::ExperimentError;
use crate::experiment::Experiment;
use crate::train::record::RunState;
use crate::train::{train, RunOptions, RunSummary, TrainError};

pub use collect::report_runs;
pub use report::{
    available_metrics, metric_key, unknown_metrics, Cell, SeedRun, SweepReport, SweepRow,
};
use report::{chosen_metrics, labels, summarise};

/// How to run a sweep.
#[derive(Debug, Clone)]
pub struct SweepOptions {
    /// Root of the run folders; the summary goes to `<logs_root>/sweeps/<timestamp>/`.
    pub logs_root: PathBuf,
    /// Metrics to report (`test/…`, `val/…` of the best checkpoint, or
    /// `train/seconds_per_iteration`, `train/final_loss`); a name without a
    /// `/` means `test/<name>`. `None`: every `test/*` metric present in all
    /// successful runs.
    pub metrics: Option<Vec<String>>,
    /// Draw a progress bar for each run.
    pub progress: bool,
}

impl Default for SweepOptions {
    fn default() -> Self {
        Self {
            logs_root: PathBuf::from("logs"),
            metrics: None,
            progress: true,
        }
    }
}

/// Why a sweep could not start or could not write its summary.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// No experiment files or no seeds were given.
    #[error("nothing to sweep: {0}")]
    Empty(&'static str),
    /// A seed was given twice.
    #[error("seed {0} is given twice")]
    DuplicateSeed(u64),
    /// An experiment file is unreadable or invalid (checked before any run).
    #[error(transparent)]
    Experiment(#[from] ExperimentError),
    /// A requested metric is recorded by no finished run.
    #[error("no run recorded the metric(s) {unknown}; the runs recorded: {available}")]
    UnknownMetric {
        /// The requested names nobody recorded (as keys, e.g. `test/loss`).
        unknown: String,
        /// Every recorded metric name.
        available: String,
    },
    /// A sweep handed to Slurm could not be written or submitted.
    #[error(transparent)]
    Slurm(#[from] slurm::SlurmError),
    /// A sweep folder's `plan.json` cannot be read.
    #[error("{path}: {message} (not a plan written by `sweep --launcher slurm`?)")]
    BadPlan {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The summary could not be written.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

fn run_metrics(s: &RunSummary) -> BTreeMap<String, f64> {
    let mut m = BTreeMap::new();
    for (k, v) in &s.test {
        m.insert(format!("test/{k}"), *v);
    }
    for (k, v) in &s.best {
        m.insert(format!("val/{k}"), *v);
    }
    m.insert(
        "train/seconds_per_iteration".into(),
        s.seconds_per_iteration,
    );
    m.insert("train/final_loss".into(), s.final_loss);
    m
}

/// Runs every file once per seed (sequentially, files in the outer loop)
/// and summarises the metrics over seeds. Failed runs are recorded, not
/// returned as errors; check [`SweepReport::any_failed`].
pub fn run_sweep(
    files: &[PathBuf],
    seeds: &[u64],
    opts: &SweepOptions,
) -> Result<SweepReport, SweepError> {
    let parsed = parse_files(files, seeds)?;
    let labels = labels(&parsed);
    let stamp = chrono::Local::now().format("%Y%m%d-%H%M%S%.3f").to_string();
    let mut report = SweepReport {
        sweep_dir: opts.logs_root.join("sweeps").join(stamp),
        seeds: seeds.to_vec(),
        metrics: opts
            .metrics
            .as_ref()
            .map(|m| m.iter().map(|k| metric_key(k)).collect())
            .unwrap_or_default(),
        rows: parsed
            .iter()
            .zip(&labels)
            .map(|((f, e, _), l)| SweepRow {
                label: l.clone(),
                file: f.clone(),
                experiment: e.name.clone(),
                objective: e.objective_name().to_string(),
                model: e.model_name().to_string(),
                task: e.task.name.clone(),
                runs: Vec::new(),
                cells: BTreeMap::new(),
            })
            .collect(),
    };
    let total = files.len() * seeds.len();
    let mut done = 0;
    let mut warned_unknown = false;
    for (row_index, (file, _, text)) in parsed.iter().enumerate() {
        for &seed in seeds {
            done += 1;
            tracing::info!(
                "sweep run {done}/{total}: {} with seed {seed}",
                file.display()
            );
            let run = run_one(file, text, seed, opts);
            if let Some(e) = &run.error {
                tracing::warn!("{} seed {seed} failed: {e}", file.display());
            }
            let interrupted = run.status == RunState::Interrupted;
            report.rows[row_index].runs.push(run);
            report.metrics = chosen_metrics(&report.rows, &opts.metrics);
            let metrics = report.metrics.clone();
            for row in &mut report.rows {
                summarise(row, &metrics);
            }
            let unknown = unknown_metrics(&report.rows, &metrics);
            if !unknown.is_empty() && !warned_unknown {
                // Known after the first finished run; the runs go on (their
                // folders can be reported with other metrics later).
                warned_unknown = true;
                tracing::warn!(
                    "no run recorded the metric(s) {}; recorded: {}",
                    unknown.join(", "),
                    available_metrics(&report.rows).join(", ")
                );
            }
            report.write()?;
            if interrupted {
                // A stop request ends the sweep; the interrupted run resumes on its own.
                tracing::warn!("sweep interrupted after {done} of {total} runs");
                return Ok(report);
            }
        }
    }
    Ok(report)
}

/// Checks the files and seeds of a sweep and parses every file (a typo in
/// the last file should not wait for hours): `(path, experiment, text)`.
pub(crate) fn parse_files(
    files: &[PathBuf],
    seeds: &[u64],
) -> Result<Vec<(PathBuf, Experiment, String)>, SweepError> {
    if files.is_empty() {
        return Err(SweepError::Empty("no experiment files"));
    }
    if seeds.is_empty() {
        return Err(SweepError::Empty("no seeds"));
    }
    for (i, s) in seeds.iter().enumerate() {
        if seeds[..i].contains(s) {
            return Err(SweepError::DuplicateSeed(*s));
        }
    }
    let mut parsed = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(f).map_err(|source| ExperimentError::Read {
            path: f.clone(),
            source,
        })?;
        let exp = Experiment::parse(&text, f)?;
        parsed.push((f.clone(), exp, text));
    }
    Ok(parsed)
}

fn run_one(file: &Path, text: &str, seed: u64, opts: &SweepOptions) -> SeedRun {
    let mut run = SeedRun {
        seed,
        run_dir: None,
        status: RunState::Failed,
        error: None,
        waiting: None,
        metrics: BTreeMap::new(),
        dim: None,
        selected_by: None,
    };
    let mut exp = match Experiment::parse(text, file) {
        Ok(e) => e,
        Err(e) => {
            run.error = Some(e.to_string());
            return run;
        }
    };
    exp.seed = seed;
    let run_dir = {
        let base = exp.new_run_dir(&opts.logs_root);
        let name = base
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        base.with_file_name(format!("{name}-seed{seed}"))
    };
    // The run folder's copy is the typed experiment with this seed.
    let copy = exp.to_ron();
    let run_dir = match crate::train::run_dir::create_unique(&run_dir) {
        Ok(d) => d,
        Err(e) => {
            run.error = Some(format!("{}: {e}", run_dir.display()));
            return run;
        }
    };
    let run_opts = RunOptions {
        logs_root: opts.logs_root.clone(),
        run_dir: Some(run_dir.clone()),
        progress: opts.progress,
        stop_after: None,
    };
    let outcome = catch_unwind(AssertUnwindSafe(|| -> Result<RunSummary, TrainError> {
        let built = exp.build().map_err(|source| ExperimentError::Invalid {
            path: file.to_path_buf(),
            source,
        })?;
        train(&exp, &copy, built, &run_opts)
    }));
    if run_dir.exists() {
        run.run_dir = Some(run_dir);
    }
    match outcome {
        Ok(Ok(summary)) => {
            run.status = RunState::Finished;
            run.metrics = run_metrics(&summary);
            run.dim = Some(summary.dim);
            run.selected_by = Some(summary.selection_metric);
        }
        Ok(Err(e)) => {
            run.status = match &e {
                TrainError::Interrupted { .. } => RunState::Interrupted,
                TrainError::Diverged { .. } => RunState::Diverged,
                _ => RunState::Failed,
            };
            run.error = Some(e.to_string());
        }
        Err(p) => run.error = Some(format!("panicked: {}", crate::error::panic_text(&*p))),
    }
    run
}
