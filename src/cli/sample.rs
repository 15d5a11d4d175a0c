//! `slicedscore sample --run DIR -n N …`: Langevin samples from a trained
//! (or fitted) model, as CSV in the data's own units, plus an image grid for
//! tasks that draw their points (images).
//!
//! Data flow: the run is reloaded ([`load_model`]); the chains start from
//! noise in the model's coordinates, or from the run's training data
//! (the task is rebuilt for that, [`load_task`]); [`langevin::sample`] runs
//! (annealed) Langevin dynamics, with the Metropolis correction for energy
//! models on `--mala`; the final points are mapped back to the data's units
//! through the run's preprocessing (`x = A⁻¹ y + m`, unless `--internal` or
//! the map is not affine, which is said on stderr) and written as CSV to
//! `--out` (atomically) or stdout. With `--out`, a task with a picture of
//! its points also gets `<out>.png`.

use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::score::CheckpointArg;
use crate::points_csv;
use crate::run_loader::{load_model, load_task};
use crate::sampling::init::Init;
use crate::sampling::langevin::{self, Annealing, Langevin};
use crate::sampling::{ModelDensity, SampleError};

/// Where chains start.
#[derive(Clone, Copy, ValueEnum)]
pub enum InitArg {
    /// N(0, s²I) in the model's coordinates (s = --init-std).
    Noise,
    /// Gaussian noise matched to each coordinate of the training data.
    Gaussian,
    /// Training rows (drawn with replacement).
    Data,
}

/// Arguments of `sample`.
#[derive(Args)]
pub struct SampleArgs {
    /// The run folder (logs/<name>/<timestamp>).
    #[arg(long)]
    run: PathBuf,
    /// Number of samples (independent chains).
    #[arg(short = 'n', long = "samples")]
    samples: usize,
    /// Langevin steps (per annealing level).
    #[arg(long, default_value_t = 1000)]
    steps: usize,
    /// Step size ε, in the model's coordinates.
    #[arg(long, default_value_t = 0.01)]
    step_size: f64,
    /// Annealing levels σ_max..σ_min:L (temperatures 1 + σ², see the docs of
    /// `sampling::langevin`), e.g. 1.0..0.01:10.
    #[arg(long)]
    annealed: Option<Annealing>,
    /// Metropolis-adjusted Langevin (MALA), for models with a log-density.
    #[arg(long)]
    mala: bool,
    /// Where chains start.
    #[arg(long, value_enum, default_value_t = InitArg::Noise)]
    init: InitArg,
    /// Standard deviation of `--init noise`.
    #[arg(long, default_value_t = 1.0)]
    init_std: f64,
    /// Seed of the starting points and the noise.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Which checkpoint to use.
    #[arg(long, value_enum, default_value_t = CheckpointArg::Best)]
    checkpoint: CheckpointArg,
    /// Write the CSV here (and `<out>.png` for image tasks) instead of stdout.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Write samples in the model's coordinates (after the task's
    /// preprocessing) instead of the data's units.
    #[arg(long)]
    internal: bool,
}

/// Largest accepted `-n`.
const MAX_SAMPLES: usize = 10_000_000;

fn write(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    crate::atomic_file::write_atomic(path, bytes)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))
}

/// Samples from the run's model and writes the samples.
pub fn sample(a: SampleArgs) -> anyhow::Result<()> {
    if a.samples == 0 || a.samples > MAX_SAMPLES {
        anyhow::bail!("-n: must be between 1 and {MAX_SAMPLES}, got {}", a.samples);
    }
    let settings = Langevin {
        steps: a.steps,
        step_size: a.step_size,
        annealed: a.annealed,
        mala: a.mala,
    };
    settings.validate().map_err(|e| match e {
        SampleError::Setting { field, message } => {
            anyhow::anyhow!("--{}: {message}", field.replace('_', "-"))
        }
        other => anyhow::anyhow!("{other}"),
    })?;
    let init = match a.init {
        InitArg::Noise => Init::Noise { std: a.init_std },
        InitArg::Gaussian => Init::Gaussian,
        InitArg::Data => Init::Data,
    };
    let run = &a.run;
    let loaded = load_model(run, a.checkpoint.which())?;
    let in_run = |e: SampleError| anyhow::anyhow!("run {}: {e}", run.display());
    let density = ModelDensity::new(&loaded.dev, &*loaded.model).map_err(in_run)?;
    if a.mala && !density.has_log_density() {
        return Err(in_run(SampleError::NoLogDensity));
    }
    let d = loaded.dim;
    let mut rng = ChaCha8Rng::seed_from_u64(a.seed);
    let mut task = None;
    let data = if init.needs_data() {
        let mut t = load_task(run)?;
        let rows = match t.train_points() {
            Some(p) => p.to_vec(),
            None => t.train_batch(&mut rng, a.samples.max(1000)),
        };
        task = Some(t);
        Some(rows)
    } else {
        None
    };
    let x0 = init
        .points(a.samples, d, data.as_deref(), &mut rng)
        .map_err(in_run)?;
    let chains = langevin::sample(&density, x0, &settings, &mut rng).map_err(in_run)?;
    let model_points = chains.points;
    let (points, units) = if a.internal {
        (model_points.clone(), "the model's coordinates".to_string())
    } else {
        match loaded.data_map.to_data(&model_points) {
            Ok(x) => (
                x,
                format!("the data's units ({})", loaded.data_map.describe()),
            ),
            Err(e) => {
                tracing::warn!("{e}: writing samples in the model's coordinates");
                (model_points.clone(), "the model's coordinates".to_string())
            }
        }
    };
    let csv = points_csv::to_csv(&points, d, "x");
    let mut summary = format!(
        "{} samples after {} Langevin steps (ε = {}{}), in {units}",
        a.samples,
        settings.total_steps(),
        settings.step_size,
        match chains.acceptance {
            Some(r) => format!(", MALA acceptance {r:.3}"),
            None => String::new(),
        }
    );
    match &a.out {
        None => print!("{csv}"),
        Some(out) => {
            write(out, csv.as_bytes())?;
            summary.push_str(&format!("; wrote {}", out.display()));
            let task = match task {
                Some(t) => Some(t),
                None => load_task(run)
                    .map_err(|e| tracing::warn!("no image grid: rebuilding the task failed: {e}"))
                    .ok(),
            };
            if let Some((rgb, w, h)) = task.and_then(|t| t.picture_points(&model_points)) {
                let png = out.with_extension("png");
                let bytes = crate::train::png_bytes(&rgb, w, h).map_err(anyhow::Error::msg)?;
                write(&png, &bytes)?;
                summary.push_str(&format!(" and {}", png.display()));
            }
        }
    }
    tracing::info!("{summary}");
    Ok(())
}
