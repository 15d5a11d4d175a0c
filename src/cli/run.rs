//! `slicedscore run FILE`: train one experiment.

use std::path::PathBuf;

use clap::Args;

use crate::error::ExperimentError;
use crate::experiment::Experiment;
use crate::train::requeue::{run_or_resume, Requeued};
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
    /// Override the file's `seed`; the run folder's `experiment.ron` is then
    /// the experiment with this seed, as a sweep writes it.
    #[arg(long)]
    seed: Option<u64>,
    /// With --run-dir: when the folder already holds this run, continue it
    /// from its last checkpoint (or do nothing if it finished) instead of
    /// refusing; a failed attempt is moved aside and the run starts afresh.
    /// What each task of a Slurm sweep runs, so a requeued task continues.
    #[arg(long, requires = "run_dir")]
    resume_existing: bool,
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
        run_dir: a.run_dir.clone(),
        progress: !a.no_progress,
        stop_after: a.stop_after,
    };
    interrupt::install();
    if a.seed.is_none() && !a.resume_existing {
        let summary = run_file(&a.file, &opts)?;
        print_summary(&summary);
        return Ok(());
    }
    let text = std::fs::read_to_string(&a.file).map_err(|source| ExperimentError::Read {
        path: a.file.clone(),
        source,
    })?;
    let mut exp = Experiment::parse(&text, &a.file)?;
    // With a new seed the copy is the typed experiment (as a sweep writes it).
    let copy = match a.seed {
        Some(seed) => {
            exp.seed = seed;
            exp.to_ron()
        }
        None => text,
    };
    match (&a.run_dir, a.resume_existing) {
        (Some(dir), true) => match run_or_resume(&a.file, &exp, &copy, dir, &opts)? {
            Requeued::Ran(summary) => print_summary(&summary),
            Requeued::AlreadyFinished(dir) => {
                println!("run folder: {} (already finished)", dir.display())
            }
        },
        _ => {
            let built = exp.build().map_err(|source| ExperimentError::Invalid {
                path: a.file.clone(),
                source,
            })?;
            print_summary(&crate::train::train(&exp, &copy, built, &opts)?);
        }
    }
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
