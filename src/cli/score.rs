//! `slicedscore score --run DIR --input points.csv [--internal]`: a trained
//! model's score at each row, as CSV.
//!
//! Data flow: the run is reloaded ([`load_model`]), the CSV rows are read
//! as points in the data's own units, mapped into the model's coordinates
//! through the run's preprocessing (`data.json`), scored, and the scores
//! mapped back by the chain rule (`Aᵀ s(A (x − m))`): the output is
//! `∇ₓ log p(x)` of the user's data. `--internal` reads and writes the
//! model's own coordinates instead (needed for tasks whose preprocessing is
//! not affine, such as `images`' logit).

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use crate::points_csv;
use crate::run_loader::{load_model, Units, Which};

/// Which checkpoint of a run.
#[derive(Clone, Copy, ValueEnum)]
pub enum CheckpointArg {
    /// The best by validation metric.
    Best,
    /// The most recent.
    Last,
}

impl CheckpointArg {
    /// The loader's name for it.
    pub fn which(self) -> Which {
        match self {
            CheckpointArg::Best => Which::Best,
            CheckpointArg::Last => Which::Last,
        }
    }
}

/// Arguments of `score`.
#[derive(Args)]
pub struct ScoreArgs {
    /// The run folder (logs/<name>/<timestamp>).
    #[arg(long)]
    run: PathBuf,
    /// CSV with one point per row (an optional header line is skipped), in
    /// the data's own units.
    #[arg(long)]
    input: PathBuf,
    /// Which checkpoint to use.
    #[arg(long, value_enum, default_value_t = CheckpointArg::Best)]
    checkpoint: CheckpointArg,
    /// Read points and write scores in the model's coordinates (after the
    /// task's preprocessing, e.g. whitening) instead of the data's units.
    #[arg(long)]
    internal: bool,
}

/// Loads the run's model and prints its score at every input row.
pub fn score(a: ScoreArgs) -> anyhow::Result<()> {
    let loaded = load_model(&a.run, a.checkpoint.which())?;
    let points = points_csv::read_points(&a.input, loaded.dim)?;
    let units = if a.internal {
        Units::Model
    } else {
        Units::Data
    };
    let s = loaded.scores(&points, units).map_err(|e| {
        anyhow::anyhow!(
            "run {}: {e}; pass --internal to read points and write scores in the model's coordinates",
            a.run.display()
        )
    })?;
    print!("{}", points_csv::to_csv(&s, loaded.dim, "score"));
    Ok(())
}
