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

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::ExperimentError;
use crate::experiment::Experiment;
use crate::train::{train, RunOptions, RunSummary};

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
    /// The summary could not be written.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// One run of one experiment file with one seed.
#[derive(Debug, Clone, Serialize)]
pub struct SeedRun {
    /// The seed.
    pub seed: u64,
    /// The run folder (absent when the run failed before it was created).
    pub run_dir: Option<PathBuf>,
    /// `finished` or `failed`.
    pub status: &'static str,
    /// Why it failed.
    pub error: Option<String>,
    /// Every reportable metric of a finished run (`test/…`, `val/…`, `train/…`).
    pub metrics: BTreeMap<String, f64>,
    /// Dimension of the points the model scored (the task's `dim`, e.g. the
    /// latent dimension of an autoencoder), when recorded.
    pub dim: Option<usize>,
}

impl SeedRun {
    /// Whether the run finished.
    pub fn ok(&self) -> bool {
        self.error.is_none()
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
            .filter(|r| !r.ok())
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

/// `mean ± se` rounded to the standard error's second significant digit
/// (the format of [`SweepReport::table`]); `mean ± n/a` when `se` is not
/// finite (one run).
pub fn format_mean_se(mean: f64, se: f64) -> String {
    if !mean.is_finite() {
        return format!("{mean}");
    }
    if !se.is_finite() {
        return format!("{} ± n/a", format_sig(mean, 5));
    }
    if se == 0.0 {
        return format!("{} ± 0", format_sig(mean, 5));
    }
    let decimals = (1 - se.abs().log10().floor() as i64).clamp(0, 12) as usize;
    format!("{mean:.decimals$} ± {se:.decimals$}")
}

fn format_sig(x: f64, digits: i64) -> String {
    if x == 0.0 {
        return "0".into();
    }
    let decimals = (digits - 1 - x.abs().log10().floor() as i64).clamp(0, 12) as usize;
    format!("{x:.decimals$}")
}

impl SweepReport {
    /// Whether any run failed.
    pub fn any_failed(&self) -> bool {
        self.rows.iter().any(|r| r.finished() < r.runs.len())
    }

    /// Number of failed runs.
    pub fn failed_runs(&self) -> usize {
        self.rows.iter().map(|r| r.runs.len() - r.finished()).sum()
    }

    /// The summary table: one row per experiment file, one column per metric,
    /// cells `mean ± standard error` over the finished seeds, then the errors
    /// of failed runs.
    pub fn table(&self) -> String {
        let mut header = vec!["experiment".to_string(), "n".to_string()];
        header.extend(self.metrics.iter().cloned());
        header.push("failed".to_string());
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
                    _ if n == 0 => "failed".to_string(),
                    _ => "–".to_string(),
                };
                line.push(cell);
            }
            let failed = row.failed_seeds();
            line.push(if failed.is_empty() {
                String::new()
            } else {
                format!(
                    "seed {}",
                    failed
                        .iter()
                        .map(|s| s.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            });
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
        let failures: Vec<String> = self
            .rows
            .iter()
            .flat_map(|row| {
                row.runs.iter().filter(|r| !r.ok()).map(move |r| {
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
        out
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

    fn write(&self) -> Result<(), SweepError> {
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

/// Pads columns to equal widths (by characters, so `±` counts as one).
pub(crate) fn align_columns(lines: &[Vec<String>]) -> String {
    let cols = lines.iter().map(|l| l.len()).max().unwrap_or(0);
    let width: Vec<usize> = (0..cols)
        .map(|c| {
            lines
                .iter()
                .filter_map(|l| l.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for l in lines {
        let mut s = String::new();
        for (c, cell) in l.iter().enumerate() {
            if c > 0 {
                s.push_str("  ");
            }
            s.push_str(cell);
            if c + 1 < l.len() {
                s.push_str(&" ".repeat(width[c] - cell.chars().count()));
            }
        }
        out.push_str(s.trim_end());
        out.push('\n');
    }
    out
}

pub(crate) fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn csv_number(x: f64) -> String {
    if x.is_finite() {
        format!("{x}")
    } else {
        String::new()
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

/// The experiment text with its top-level `seed` set to `seed`, checked by
/// parsing it back; when no edit of a `seed:` field gives that seed (no
/// such field, or an unusual layout), the original text with a leading
/// comment that names the seed used.
pub fn text_with_seed(text: &str, path: &Path, seed: u64) -> String {
    let header = format!("// slicedscore sweep: this run used seed {seed}\n");
    let seed_of = |t: &str| Experiment::parse(t, path).ok().map(|e| e.seed);
    if seed_of(text) == Some(seed) {
        return format!("{header}{text}");
    }
    let bytes = text.as_bytes();
    let mut candidates = Vec::new();
    let mut from = 0;
    while let Some(i) = text[from..].find("seed") {
        let at = from + i;
        from = at + 4;
        let boundary = at == 0 || !(bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_');
        if boundary {
            candidates.push(at);
        }
    }
    for at in candidates {
        let rest = &text[at + 4..];
        let after_ws = rest.trim_start();
        let Some(value) = after_ws.strip_prefix(':') else {
            continue;
        };
        let value_start = at + 4 + (rest.len() - after_ws.len()) + 1;
        let lead = value.len() - value.trim_start().len();
        let num_start = value_start + lead;
        let num_len = text[num_start..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(text.len() - num_start);
        if num_len == 0 {
            continue;
        }
        let edited = format!(
            "{}{seed}{}",
            &text[..num_start],
            &text[num_start + num_len..]
        );
        if seed_of(&edited) == Some(seed) {
            return format!("{header}{edited}");
        }
    }
    // No `seed` field: add one before the top-level `name`.
    if let Some(at) = text.find("name") {
        let edited = format!("{}seed: {seed}, {}", &text[..at], &text[at..]);
        if seed_of(&edited) == Some(seed) {
            return format!("{header}{edited}");
        }
    }
    format!("// slicedscore sweep: this run used seed {seed}, not the seed written below\n{text}")
}

fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "panicked".to_string()
    }
}

/// Labels: the objective, plus model and task when the files differ in
/// them, plus the experiment name (or file) when labels still collide.
fn labels(exps: &[(PathBuf, Experiment, String)]) -> Vec<String> {
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

fn summarise(row: &mut SweepRow, metrics: &[String]) {
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

/// The metrics to report: the requested ones, or every `test/*` metric
/// present in all finished runs (sorted).
fn chosen_metrics(rows: &[SweepRow], requested: &Option<Vec<String>>) -> Vec<String> {
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

/// Runs every file once per seed (sequentially, files in the outer loop)
/// and summarises the metrics over seeds. Failed runs are recorded, not
/// returned as errors; check [`SweepReport::any_failed`].
pub fn run_sweep(
    files: &[PathBuf],
    seeds: &[u64],
    opts: &SweepOptions,
) -> Result<SweepReport, SweepError> {
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
    // Parse everything first: a typo in the last file should not wait for hours.
    let mut parsed = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(f).map_err(|source| ExperimentError::Read {
            path: f.clone(),
            source,
        })?;
        let exp = Experiment::parse(&text, f)?;
        parsed.push((f.clone(), exp, text));
    }
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
            report.rows[row_index].runs.push(run);
            report.metrics = chosen_metrics(&report.rows, &opts.metrics);
            let metrics = report.metrics.clone();
            for row in &mut report.rows {
                summarise(row, &metrics);
            }
            report.write()?;
        }
    }
    Ok(report)
}

fn run_one(file: &Path, text: &str, seed: u64, opts: &SweepOptions) -> SeedRun {
    let mut run = SeedRun {
        seed,
        run_dir: None,
        status: "failed",
        error: None,
        metrics: BTreeMap::new(),
        dim: None,
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
    let copy = text_with_seed(text, file, seed);
    let run_opts = RunOptions {
        logs_root: opts.logs_root.clone(),
        run_dir: Some(run_dir.clone()),
        progress: opts.progress,
    };
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let built = exp
            .build()
            .map_err(|e| format!("{}: {e}", file.display()))?;
        train(&exp, &copy, built, &run_opts).map_err(|e| e.to_string())
    }));
    if run_dir.exists() {
        run.run_dir = Some(run_dir);
    }
    match outcome {
        Ok(Ok(summary)) => {
            run.status = "finished";
            run.metrics = run_metrics(&summary);
            run.dim = Some(summary.dim);
        }
        Ok(Err(e)) => run.error = Some(e),
        Err(p) => run.error = Some(format!("panicked: {}", panic_message(p))),
    }
    run
}

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

/// A finished or failed run as recorded in its `metrics.json`.
fn recorded_run(run_dir: &Path) -> Result<SeedRun, SweepError> {
    let path = run_dir.join(crate::train::METRICS_FILE);
    let text = std::fs::read_to_string(&path).map_err(|source| SweepError::Io {
        path: path.clone(),
        source,
    })?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| SweepError::Io {
        path: path.clone(),
        source: std::io::Error::other(e),
    })?;
    let mut metrics = BTreeMap::new();
    for block in [&v["test"]["metrics"], &v["best"]["metrics"]] {
        if let Some(obj) = block.as_object() {
            for (k, x) in obj {
                if let Some(x) = x.as_f64() {
                    metrics.insert(k.clone(), x);
                }
            }
        }
    }
    if let Some(x) = v["train"]["seconds_per_iteration"].as_f64() {
        metrics.insert("train/seconds_per_iteration".into(), x);
    }
    let status = v["status"].as_str().unwrap_or("unknown");
    let finished = status == "finished";
    Ok(SeedRun {
        seed: v["seed"].as_u64().unwrap_or(0),
        run_dir: Some(run_dir.to_path_buf()),
        status: if finished { "finished" } else { "failed" },
        error: (!finished).then(|| {
            v["error"].as_str().map(String::from).unwrap_or_else(|| {
                if status == "running" {
                    format!(
                        "not finished: still running or stopped at step {}",
                        v["step"].as_u64().unwrap_or(0)
                    )
                } else {
                    format!("run status `{status}`")
                }
            })
        }),
        metrics,
        dim: v["dim"].as_u64().map(|d| d as usize),
    })
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
        let first = folders.first().ok_or(SweepError::Empty(
            "a folder holds no run (no metrics.json in it or its subfolders)",
        ))?;
        let exp_path = first.join(crate::train::EXPERIMENT_COPY);
        let exp = Experiment::load(&exp_path)?;
        let text = String::new();
        parsed.push((exp_path, exp, text));
        runs.push(
            folders
                .iter()
                .map(|f| recorded_run(f))
                .collect::<Result<Vec<_>, _>>()?,
        );
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
    let chosen = chosen_metrics(&rows, metrics);
    for row in &mut rows {
        summarise(row, &chosen);
    }
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
