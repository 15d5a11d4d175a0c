//! `slicedscore evaluate --run DIR [--checkpoint best|last] [--split test|val]`:
//! a run's checkpoint evaluated on a held-out split, as the run's own test
//! evaluation does it. For runs that stopped without test metrics (a
//! diverged or interrupted run keeps its best and last checkpoints) and for
//! comparing the last checkpoint with the selected one.
//!
//! Data flow: the run's experiment copy is rebuilt ([`load_experiment`],
//! data paths resolved through `data.json`), the checkpoint's parameters
//! are loaded into its model and task (autoencoder tasks keep their own
//! networks in the checkpoint), and the task's `evaluate` gives the split's
//! metrics, printed as `split/name = value` lines. The run folder is only
//! read. The sampling metrics (`langevin_*`) of the training loop are not
//! recomputed.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use super::score::CheckpointArg;
use crate::error::ExperimentError;
use crate::run_loader::{load_checkpoint_into, load_experiment, Which};
use crate::task::Split;
use crate::train::{BEST_CHECKPOINT, EXPERIMENT_COPY, LAST_CHECKPOINT};

/// A held-out split.
#[derive(Clone, Copy, ValueEnum)]
pub enum SplitArg {
    /// The test split.
    Test,
    /// The validation split.
    Val,
}

/// Arguments of `evaluate`.
#[derive(Args)]
pub struct EvaluateArgs {
    /// The run folder (logs/<name>/<timestamp>).
    #[arg(long)]
    run: PathBuf,
    /// Which checkpoint to evaluate.
    #[arg(long, value_enum, default_value_t = CheckpointArg::Best)]
    checkpoint: CheckpointArg,
    /// Which split to evaluate on.
    #[arg(long, value_enum, default_value_t = SplitArg::Test)]
    split: SplitArg,
}

/// Rebuilds the run, loads the checkpoint and prints the split's metrics.
pub fn evaluate(a: EvaluateArgs) -> anyhow::Result<()> {
    let (exp, _) = load_experiment(&a.run)?;
    let mut built = exp.build().map_err(|source| ExperimentError::Invalid {
        path: a.run.join(EXPERIMENT_COPY),
        source,
    })?;
    let file = a.run.join(match a.checkpoint.which() {
        Which::Best => BEST_CHECKPOINT,
        Which::Last => LAST_CHECKPOINT,
    });
    let step = load_checkpoint_into(&mut built, &file)
        .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let dev = built.dev.clone();
    let (split, prefix) = match a.split {
        SplitArg::Test => (Split::Test, "test"),
        SplitArg::Val => (Split::Validation, "val"),
    };
    let metrics = built.task.evaluate(&dev, built.model.scorer(), split);
    println!("{} (step {step}), {prefix} split", file.display());
    for (name, value) in &metrics {
        println!("{prefix}/{name} = {value:.6}");
    }
    Ok(())
}
