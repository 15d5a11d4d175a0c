//! `slicedscore resume RUN_DIR`: continue an interrupted (or killed) run
//! from its last checkpoint.

use std::path::PathBuf;

use clap::Args;

use crate::train::{interrupt, resume as resume_run, RunOptions};

/// Arguments of `resume`.
#[derive(Args)]
pub struct ResumeArgs {
    /// The run folder (logs/<name>/<timestamp>).
    run_dir: PathBuf,
    /// Do not draw a progress bar.
    #[arg(long)]
    no_progress: bool,
    /// Stop after this step with a checkpoint, as if interrupted
    /// (`slicedscore resume` continues): for time-limited cluster jobs.
    #[arg(long)]
    stop_after: Option<u64>,
}

/// Resumes the run and prints what `run` prints at its end.
pub fn resume(a: ResumeArgs) -> anyhow::Result<()> {
    interrupt::install();
    let opts = RunOptions {
        progress: !a.no_progress,
        stop_after: a.stop_after,
        ..RunOptions::default()
    };
    let summary = resume_run(&a.run_dir, &opts)?;
    super::run::print_summary(&summary);
    Ok(())
}
