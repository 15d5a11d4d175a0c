//! The sweep's table: runs per experiment file and seed, the mean and
//! standard error of each metric over seeds, and the outputs (aligned
//! table, Table-2 grid, `summary.csv`, `summary.json`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::SweepError;
use crate::experiment::Experiment;
use crate::format::{align_columns, csv_field, csv_number, format_mean_se};
use crate::train::record::RunState;

/// One run of one experiment file with one seed.
#[derive(Debug, Clone, Serialize)]
pub struct SeedRun {
    /// The seed.
    pub seed: u64,
    /// The run folder (absent when the run failed before it was created).
    pub run_dir: Option<PathBuf>,
    /// Where the run ended (`finished`, `failed`, or `running` for a run
    /// that is still going or was killed).
    pub status: RunState,
    /// Why it failed.
    pub error: Option<String>,
    /// Where a run that has not ended yet stands (a sweep task pending or
    /// running in Slurm): neither finished nor failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting: Option<String>,
    /// Every reportable metric of a finished run (`test/…`, `val/…`, `train/…`).
    pub metrics: BTreeMap<String, f64>,
    /// Dimension of the points the model scored (the task's `dim`, e.g. the
    /// latent dimension of an autoencoder), when recorded.
    pub dim: Option<usize>,
    /// The validation metric that chose the run's best checkpoint
    /// (`val/sm_loss`, `val/log_likelihood`, …), when known.
    pub selected_by: Option<String>,
}

impl SeedRun {
    /// Whether the run finished.
    pub fn ok(&self) -> bool {
        self.error.is_none() && self.waiting.is_none()
    }

    /// Whether the run failed (it ended without finishing).
    pub fn failed(&self) -> bool {
        self.error.is_some()
    }
}

/// Mean and standard error of one metric over the seeds that have it.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Cell {
    /// Number of runs with a finite value of the metric.
    pub n: usize,
    /// Mean over those runs (NaN when `n = 0`).
    pub mean: f64,
    /// Sample standard deviation (divisor `n − 1`; NaN when `n < 2`).
    pub std: f64,
    /// Standard error `std / √n` (NaN when `n < 2`).
    pub se: f64,
}

impl Cell {
    /// Mean, sample standard deviation (`n − 1`) and standard error of `values`.
    pub fn from_values(values: &[f64]) -> Self {
        let n = values.len();
        let mean = if n == 0 {
            f64::NAN
        } else {
            values.iter().sum::<f64>() / n as f64
        };
        let std = if n < 2 {
            f64::NAN
        } else {
            (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
        };
        Self {
            n,
            mean,
            std,
            se: std / (n as f64).sqrt(),
        }
    }
}

/// One experiment file: its runs and one cell per reported metric.
#[derive(Debug, Clone, Serialize)]
pub struct SweepRow {
    /// The row label: the objective, plus model and task when the files differ in them.
    pub label: String,
    /// The experiment file.
    pub file: PathBuf,
    /// The experiment's name.
    pub experiment: String,
    /// Registered names of its components.
    pub objective: String,
    /// The model's registered name.
    pub model: String,
    /// The task's registered name.
    pub task: String,
    /// One run per seed, in the order of the seeds.
    pub runs: Vec<SeedRun>,
    /// Metric → summary over the finished runs.
    pub cells: BTreeMap<String, Cell>,
}

impl SweepRow {
    /// Number of finished runs.
    pub fn finished(&self) -> usize {
        self.runs.iter().filter(|r| r.ok()).count()
    }

    /// Seeds whose run failed.
    pub fn failed_seeds(&self) -> Vec<u64> {
        self.runs
            .iter()
            .filter(|r| r.failed())
            .map(|r| r.seed)
            .collect()
    }

    /// Seeds whose run has not ended yet.
    pub fn waiting_seeds(&self) -> Vec<u64> {
        self.runs
            .iter()
            .filter(|r| r.waiting.is_some())
            .map(|r| r.seed)
            .collect()
    }
}

/// What a sweep measured.
#[derive(Debug, Clone, Serialize)]
pub struct SweepReport {
    /// `<logs>/sweeps/<timestamp>/`, holding `summary.csv` and `summary.json`.
    pub sweep_dir: PathBuf,
    /// The seeds, in run order.
    pub seeds: Vec<u64>,
    /// The reported metrics (columns).
    pub metrics: Vec<String>,
    /// One row per experiment file, in the order given.
    pub rows: Vec<SweepRow>,
}

impl SweepReport {
    /// Whether any run failed.
    pub fn any_failed(&self) -> bool {
        self.failed_runs() > 0
    }

    /// Number of failed runs.
    pub fn failed_runs(&self) -> usize {
        self.rows.iter().map(|r| r.failed_seeds().len()).sum()
    }

    /// Number of runs that have not ended yet.
    pub fn waiting_runs(&self) -> usize {
        self.rows.iter().map(|r| r.waiting_seeds().len()).sum()
    }

    /// The summary table: one row per experiment file, one column per metric,
    /// cells `mean ± standard error` over the finished seeds, then the errors
    /// of failed runs (and an `unfinished` column and list when some runs
    /// have not ended yet).
    pub fn table(&self) -> String {
        let any_waiting = self.waiting_runs() > 0;
        let mut header = vec!["experiment".to_string(), "n".to_string()];
        header.extend(self.metrics.iter().cloned());
        header.push("failed".to_string());
        if any_waiting {
            header.push("unfinished".to_string());
        }
        let mut lines = vec![header];
        for row in &self.rows {
            let n = row.finished();
            let mut line = vec![row.label.clone(), format!("{n}/{}", row.runs.len())];
            for m in &self.metrics {
                let cell = match row.cells.get(m) {
                    Some(c) if c.n > 0 => {
                        let s = format_mean_se(c.mean, c.se);
                        if c.n == n {
                            s
                        } else {
                            format!("{s} (n={})", c.n)
                        }
                    }
                    _ if n == 0 && row.waiting_seeds().is_empty() => "failed".to_string(),
                    _ => "–".to_string(),
                };
                line.push(cell);
            }
            let seeds = |seeds: Vec<u64>| {
                if seeds.is_empty() {
                    String::new()
                } else {
                    format!(
                        "seed {}",
                        seeds
                            .iter()
                            .map(|s| s.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                }
            };
            line.push(seeds(row.failed_seeds()));
            if any_waiting {
                line.push(seeds(row.waiting_seeds()));
            }
            lines.push(line);
        }
        let mut out = format!(
            "mean ± standard error over seeds {} (sample std with n − 1, se = std/√n; n = finished runs)\n",
            self.seeds
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        out.push_str(&align_columns(&lines));
        out.push_str(&self.selection_line());
        let failures: Vec<String> = self
            .rows
            .iter()
            .flat_map(|row| {
                row.runs.iter().filter(|r| r.failed()).map(move |r| {
                    format!(
                        "  {} seed {}: {}",
                        row.label,
                        r.seed,
                        r.error.as_deref().unwrap_or("")
                    )
                })
            })
            .collect();
        if !failures.is_empty() {
            out.push_str("failed runs:\n");
            for f in failures {
                out.push_str(&f);
                out.push('\n');
            }
        }
        if any_waiting {
            out.push_str("unfinished runs:\n");
            for row in &self.rows {
                for r in &row.runs {
                    if let Some(w) = &r.waiting {
                        out.push_str(&format!("  {} seed {}: {w}\n", row.label, r.seed));
                    }
                }
            }
        }
        out
    }

    /// The line saying which validation metric chose the best checkpoints:
    /// one metric for every row, or each row's when they differ (empty
    /// when no run recorded it).
    pub fn selection_line(&self) -> String {
        let per_row: Vec<(String, String)> = self
            .rows
            .iter()
            .filter_map(|row| {
                let mut names: Vec<&str> = row
                    .runs
                    .iter()
                    .filter_map(|r| r.selected_by.as_deref())
                    .collect();
                names.sort_unstable();
                names.dedup();
                (!names.is_empty()).then(|| (row.label.clone(), names.join(" / ")))
            })
            .collect();
        let mut distinct: Vec<&str> = per_row.iter().map(|(_, m)| m.as_str()).collect();
        distinct.sort_unstable();
        distinct.dedup();
        match distinct.as_slice() {
            [] => String::new(),
            [one] => format!("best checkpoints selected by {one}\n"),
            _ => {
                let mut out = "best checkpoints selected by:\n".to_string();
                for (label, m) in &per_row {
                    out.push_str(&format!("  {label}: {m}\n"));
                }
                out
            }
        }
    }

    /// A pivot table of one metric in the layout of the paper's Table 2:
    /// one row per score estimator (the objective that trains the model,
    /// the name of a model fitted from samples, or `ELBO` for a run without
    /// a model) and one column per task and dimension (`wae / dim 8`);
    /// cells `mean ± se` over finished runs (`–` where no run is given).
    pub fn grid(&self, metric: &str) -> String {
        let estimator = |r: &SweepRow| match (r.model.as_str(), r.objective.as_str()) {
            ("-", _) => "ELBO".to_string(),
            (m, "-") => m.to_string(),
            (_, o) => o.to_string(),
        };
        let column = |r: &SweepRow| {
            let dim = r.runs.iter().find_map(|s| s.dim);
            match dim {
                Some(d) => format!("{} / dim {d}", r.task),
                None => r.task.clone(),
            }
        };
        let mut rows: Vec<String> = Vec::new();
        let mut cols: Vec<String> = Vec::new();
        for r in &self.rows {
            let (e, c) = (estimator(r), column(r));
            if !rows.contains(&e) {
                rows.push(e);
            }
            if !cols.contains(&c) {
                cols.push(c);
            }
        }
        let mut header = vec![metric.to_string()];
        header.extend(cols.iter().cloned());
        let mut lines = vec![header];
        for e in &rows {
            let mut line = vec![e.clone()];
            for c in &cols {
                let cell = self
                    .rows
                    .iter()
                    .find(|r| &estimator(r) == e && &column(r) == c)
                    .map(|r| match r.cells.get(metric) {
                        Some(cell) if cell.n > 0 => format_mean_se(cell.mean, cell.se),
                        _ if r.finished() == 0 => "failed".to_string(),
                        _ => "–".to_string(),
                    })
                    .unwrap_or_else(|| "–".to_string());
                line.push(cell);
            }
            lines.push(line);
        }
        align_columns(&lines)
    }

    /// The summary as CSV: `label,file,metric,n,mean,std,se`, one line per
    /// row and metric.
    pub fn csv(&self) -> String {
        let mut out = String::from("label,file,metric,n,mean,std,se\n");
        for row in &self.rows {
            for m in &self.metrics {
                let c = row
                    .cells
                    .get(m)
                    .copied()
                    .unwrap_or_else(|| Cell::from_values(&[]));
                out.push_str(&format!(
                    "{},{},{},{},{},{},{}\n",
                    csv_field(&row.label),
                    csv_field(&row.file.display().to_string()),
                    csv_field(m),
                    c.n,
                    csv_number(c.mean),
                    csv_number(c.std),
                    csv_number(c.se)
                ));
            }
        }
        out
    }

    /// The whole report (including every run's metrics and errors) as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("a sweep report serializes")
    }

    pub(crate) fn write(&self) -> Result<(), SweepError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| SweepError::Io { path, source }
        };
        std::fs::create_dir_all(&self.sweep_dir).map_err(io(&self.sweep_dir))?;
        let csv = self.sweep_dir.join("summary.csv");
        crate::atomic_file::write_atomic(&csv, self.csv().as_bytes()).map_err(io(&csv))?;
        let json = self.sweep_dir.join("summary.json");
        let text = serde_json::to_string_pretty(&self.json()).expect("JSON text");
        crate::atomic_file::write_atomic(&json, text.as_bytes()).map_err(io(&json))?;
        Ok(())
    }
}

/// `name` as a metric key: a name without `/` means `test/<name>`.
pub fn metric_key(name: &str) -> String {
    if name.contains('/') {
        name.to_string()
    } else {
        format!("test/{name}")
    }
}

/// Labels: the objective, plus model and task when the files differ in
/// them, plus the experiment name (or file) when labels still collide.
pub(crate) fn labels(exps: &[(PathBuf, Experiment, String)]) -> Vec<String> {
    let differ = |f: &dyn Fn(&Experiment) -> &str| {
        exps.iter()
            .map(|(_, e, _)| f(e))
            .collect::<std::collections::BTreeSet<_>>()
            .len()
            > 1
    };
    let model = differ(&|e| e.model_name());
    let task = differ(&|e| &e.task.name);
    let mut labels: Vec<String> = exps
        .iter()
        .map(|(_, e, _)| {
            // A model fitted from samples has no objective; a task without
            // a model (the Gaussian-encoder VAE) has neither.
            let mut l = match (&e.model, &e.objective) {
                (None, _) => "no model".to_string(),
                (Some(m), None) => m.name.clone(),
                (Some(_), Some(o)) => o.name.clone(),
            };
            if model && e.objective.is_some() {
                l.push_str(&format!(" / {}", e.model_name()));
            }
            if task {
                l.push_str(&format!(" / {}", e.task.name));
            }
            l
        })
        .collect();
    let count = |labels: &[String], l: &String| labels.iter().filter(|x| *x == l).count();
    let snapshot = labels.clone();
    for (i, (path, e, _)) in exps.iter().enumerate() {
        if count(&snapshot, &snapshot[i]) > 1 {
            labels[i] = format!("{} ({})", snapshot[i], e.name);
            let names_clash = exps.iter().filter(|(_, o, _)| o.name == e.name).count() > 1;
            if names_clash {
                labels[i] = format!("{} ({})", snapshot[i], path.display());
            }
        }
    }
    labels
}

pub(crate) fn summarise(row: &mut SweepRow, metrics: &[String]) {
    row.cells = metrics
        .iter()
        .map(|m| {
            let values: Vec<f64> = row
                .runs
                .iter()
                .filter(|r| r.ok())
                .filter_map(|r| r.metrics.get(m).copied())
                .filter(|v| v.is_finite())
                .collect();
            (m.clone(), Cell::from_values(&values))
        })
        .collect();
}

/// Every metric some finished run recorded (sorted), to list when a
/// requested name matches none.
pub fn available_metrics(rows: &[SweepRow]) -> Vec<String> {
    let all: std::collections::BTreeSet<String> = rows
        .iter()
        .flat_map(|r| &r.runs)
        .filter(|r| r.ok())
        .flat_map(|r| r.metrics.keys().cloned())
        .collect();
    all.into_iter().collect()
}

/// The requested metrics that no finished run recorded (empty when no run
/// finished: then nothing can be told apart from a misspelling).
pub fn unknown_metrics(rows: &[SweepRow], chosen: &[String]) -> Vec<String> {
    let available = available_metrics(rows);
    if available.is_empty() {
        return Vec::new();
    }
    chosen
        .iter()
        .filter(|m| !available.contains(m))
        .cloned()
        .collect()
}

/// The metrics to report: the requested ones, or every `test/*` metric
/// present in all finished runs (sorted).
/// Summarises every row over the requested metrics (all recorded `test/*`
/// when none are requested) and returns the metrics chosen.
///
/// # Errors
/// A requested metric that no run recorded.
pub(crate) fn summarise_requested(
    rows: &mut [SweepRow],
    requested: &Option<Vec<String>>,
) -> Result<Vec<String>, super::SweepError> {
    let chosen = chosen_metrics(rows, requested);
    let unknown = super::unknown_metrics(rows, &chosen);
    if !unknown.is_empty() {
        return Err(super::SweepError::UnknownMetric {
            unknown: unknown.join(", "),
            available: super::available_metrics(rows).join(", "),
        });
    }
    for row in rows.iter_mut() {
        summarise(row, &chosen);
    }
    Ok(chosen)
}

pub(crate) fn chosen_metrics(rows: &[SweepRow], requested: &Option<Vec<String>>) -> Vec<String> {
    if let Some(r) = requested {
        return r.iter().map(|m| metric_key(m)).collect();
    }
    let mut common: Option<std::collections::BTreeSet<String>> = None;
    for run in rows.iter().flat_map(|r| &r.runs).filter(|r| r.ok()) {
        let keys: std::collections::BTreeSet<String> = run
            .metrics
            .keys()
            .filter(|k| k.starts_with("test/"))
            .cloned()
            .collect();
        common = Some(match common {
            None => keys,
            Some(c) => c.intersection(&keys).cloned().collect(),
        });
    }
    common.unwrap_or_default().into_iter().collect()
}
