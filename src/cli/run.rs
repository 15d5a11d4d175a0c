//! `slicedscore run FILE`: train one experiment.

use std::path::PathBuf;

use clap::Args;

use crate::train::{interrupt, run_file, RunOptions, RunSummary};

/// Arguments of `run`.
#[derive(Args)]
pub struct RunArgs {
    /// The experiment file (RON).
    file: PathBuf,
    /// Root folder for run folders.
    #[arg(long, default_value = "logs")]
    logs: PathBuf,
    /// Write into exactly this run folder (it must not hold a run already).
    #[arg(long)]
    run_dir: Option<PathBuf>,
    /// Do not draw a progress bar.
    #[arg(long)]
    no_progress: bool,
    /// Stop after this step with a checkpoint, as if interrupted
    /// (`slicedscore resume` continues): for time-limited cluster jobs.
    #[arg(long)]
    stop_after: Option<u64>,
}

/// Trains and prints the run folder, the step time and the test metrics.
pub fn run(a: RunArgs) -> anyhow::Result<()> {
    let opts = RunOptions {
        logs_root: a.logs,
        run_dir: a.run_dir,
        progress: !a.no_progress,
        stop_after: a.stop_after,
    };
    interrupt::install();
    let summary = run_file(&a.file, &opts)?;
    print_summary(&summary);
    Ok(())
}

/// Prints the run folder, the best step and the metric that chose it, the
/// step time and the test metrics of a run.
pub fn print_summary(summary: &RunSummary) {
    println!("run folder: {}", summary.run_dir.display());
    println!(
        "best step {} (by {}) | mean {:.2} ms per training step",
        summary.best_step,
        summary.selection_metric,
        summary.seconds_per_iteration * 1e3
    );
    for (k, v) in &summary.test {
        println!("test/{k} = {v:.6}");
    }
}
