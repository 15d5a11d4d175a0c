//! `slicedscore run FILE`: train one experiment.

use std::path::PathBuf;

use clap::Args;

use crate::train::{run_file, RunOptions};

/// Arguments of `run`.
#[derive(Args)]
pub struct RunArgs {
    /// The experiment file (RON).
    file: PathBuf,
    /// Root folder for run folders.
    #[arg(long, default_value = "logs")]
    logs: PathBuf,
    /// Write into exactly this run folder.
    #[arg(long)]
    run_dir: Option<PathBuf>,
    /// Do not draw a progress bar.
    #[arg(long)]
    no_progress: bool,
}

/// Trains and prints the run folder, the step time and the test metrics.
pub fn run(a: RunArgs) -> anyhow::Result<()> {
    let opts = RunOptions {
        logs_root: a.logs,
        run_dir: a.run_dir,
        progress: !a.no_progress,
    };
    let summary = run_file(&a.file, &opts)?;
    println!("run folder: {}", summary.run_dir.display());
    println!(
        "best step {} | mean {:.2} ms per training step",
        summary.best_step,
        summary.seconds_per_iteration * 1e3
    );
    for (k, v) in &summary.test {
        println!("test/{k} = {v:.6}");
    }
    Ok(())
}
