//! `slicedscore score --run DIR --input points.csv`: a trained model's score
//! at each row, as CSV.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use crate::autodiff::Graph;
use crate::points_csv;
use crate::run_loader::{load_model, Which};

/// Which checkpoint of a run.
#[derive(Clone, Copy, ValueEnum)]
pub enum CheckpointArg {
    /// The best by validation metric.
    Best,
    /// The most recent.
    Last,
}

/// Arguments of `score`.
#[derive(Args)]
pub struct ScoreArgs {
    /// The run folder (logs/<name>/<timestamp>).
    #[arg(long)]
    run: PathBuf,
    /// CSV with one point per row (an optional header line is skipped).
    #[arg(long)]
    input: PathBuf,
    /// Which checkpoint to use.
    #[arg(long, value_enum, default_value_t = CheckpointArg::Best)]
    checkpoint: CheckpointArg,
}

/// Loads the run's model and prints its score at every input row.
pub fn score(a: ScoreArgs) -> anyhow::Result<()> {
    let which = match a.checkpoint {
        CheckpointArg::Best => Which::Best,
        CheckpointArg::Last => Which::Last,
    };
    let loaded = load_model(&a.run, which)?;
    let points = points_csv::read_points(&a.input, loaded.dim)?;
    let n = points.len() / loaded.dim;
    let mut g = Graph::inference(&loaded.dev);
    let x = g.constant(points, n, loaded.dim);
    let s = loaded.model.score(&mut g, &x).to_host();
    print!("{}", points_csv::to_csv(&s, loaded.dim, "score"));
    Ok(())
}
