//! `slicedscore sweep FILE… --seeds …` and `slicedscore report DIR…`: the
//! table of test metrics over seeds, from new runs or finished ones.

use std::path::PathBuf;

use clap::Args;

use crate::sweep::{report_runs, run_sweep, SweepOptions};

/// Arguments of `sweep`.
#[derive(Args)]
pub struct SweepArgs {
    /// The experiment files (one table row each).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Seeds, comma-separated (each overrides the files' `seed`).
    #[arg(long, value_delimiter = ',', default_value = "0,1,2,3,4")]
    seeds: Vec<u64>,
    /// Root folder for run folders and the sweep summary.
    #[arg(long, default_value = "logs")]
    logs: PathBuf,
    /// Metrics to report, comma-separated (default: every test/* metric
    /// present in all runs); `name` means `test/name`; `val/…` are the
    /// best validation metrics.
    #[arg(long, value_delimiter = ',')]
    metrics: Option<Vec<String>>,
    /// Do not draw progress bars.
    #[arg(long)]
    no_progress: bool,
}

/// Runs the sweep and prints its table; fails when any run failed.
pub fn sweep(a: SweepArgs) -> anyhow::Result<()> {
    crate::train::interrupt::install();
    let opts = SweepOptions {
        logs_root: a.logs,
        metrics: a.metrics,
        progress: !a.no_progress,
    };
    let report = run_sweep(&a.files, &a.seeds, &opts)?;
    print!("{}", report.table());
    println!("summary: {}", report.sweep_dir.display());
    let unknown = crate::sweep::unknown_metrics(&report.rows, &report.metrics);
    if !unknown.is_empty() {
        eprintln!(
            "note: no run recorded {}; the runs recorded: {} \
             (`slicedscore report` re-tabulates the run folders with other --metrics)",
            unknown.join(", "),
            crate::sweep::available_metrics(&report.rows).join(", ")
        );
    }
    if report.any_failed() {
        let total: usize = report.rows.iter().map(|r| r.runs.len()).sum();
        anyhow::bail!("{} of {total} runs failed", report.failed_runs());
    }
    Ok(())
}

/// Arguments of `report`.
#[derive(Args)]
pub struct ReportArgs {
    /// Run folders or experiment folders.
    #[arg(required = true)]
    dirs: Vec<PathBuf>,
    /// Metrics to report, comma-separated (as for `sweep`).
    #[arg(long, value_delimiter = ',')]
    metrics: Option<Vec<String>>,
    /// Also print each metric as a grid: rows = score estimator
    /// (objective, fitted model or ELBO), columns = task and dimension
    /// (the layout of the paper's Table 2).
    #[arg(long)]
    grid: bool,
}

/// Prints the table of finished runs (and the grids).
pub fn report(a: ReportArgs) -> anyhow::Result<()> {
    let report = report_runs(&a.dirs, &a.metrics)?;
    print!("{}", report.table());
    if a.grid {
        for m in &report.metrics {
            println!();
            print!("{}", report.grid(m));
        }
    }
    Ok(())
}
