//! `slicedscore bench scaling`: seconds per training step and peak memory
//! against the dimension (the paper's Figure 2).

use std::path::PathBuf;
use std::sync::OnceLock;

use clap::Subcommand;

use crate::bench::{self, ScalingDefaults, ScalingOptions};
use crate::device::Precision;

/// Defaults of `bench scaling`: the model spec, the objective specs, the
/// projection and which objectives the SM limit and the SM / SSM ratio refer
/// to. They live in a RON file outside `src/` because the core names no
/// plugin.
pub const BENCH_DEFAULTS: &str = include_str!("../../benches/scaling_defaults.ron");

fn bench_defaults() -> &'static ScalingDefaults {
    static D: OnceLock<ScalingDefaults> = OnceLock::new();
    D.get_or_init(|| {
        ScalingDefaults::parse(BENCH_DEFAULTS)
            .unwrap_or_else(|e| panic!("benches/scaling_defaults.ron: {e}"))
    })
}

fn parse_precision(s: &str) -> Result<Precision, String> {
    Precision::parse(s).ok_or_else(|| format!("{s:?}: expected f32 or f64"))
}

/// The benchmarks.
#[derive(Subcommand)]
pub enum BenchCommand {
    /// Seconds per training step and peak heap memory against the data
    /// dimension D, per objective (paper Figure 2): N(0, I_D) data, Adam.
    /// Writes scaling.csv and scaling.png.
    Scaling {
        /// The model (RON component spec), built for every D.
        #[arg(long, default_value_t = bench_defaults().model.clone())]
        model: String,
        /// Objective specs separated by `;`, one column each.
        #[arg(long, default_value_t = bench_defaults().objectives.join(";"))]
        objectives: String,
        /// The projection of the sliced objectives.
        #[arg(long, default_value_t = bench_defaults().projection.clone())]
        projection: String,
        /// Data dimensions, comma-separated.
        #[arg(long, value_delimiter = ',', default_values_t = bench::DEFAULT_DIMS)]
        dims: Vec<usize>,
        /// Points per step.
        #[arg(long, default_value_t = bench::DEFAULT_BATCH)]
        batch: usize,
        /// Timed steps per cell (the median is reported).
        #[arg(long, default_value_t = bench::DEFAULT_STEPS)]
        steps: usize,
        /// Untimed steps before them.
        #[arg(long, default_value_t = bench::DEFAULT_WARMUP)]
        warmup: usize,
        /// Seconds one cell may take before it stops timing (after at least 3 steps).
        #[arg(long, default_value_t = bench::DEFAULT_CELL_BUDGET_SECONDS)]
        cell_budget: f64,
        /// Skip exact score matching above this D.
        #[arg(long, default_value_t = 784)]
        sm_max_dim: usize,
        /// The optimizer (RON, as in experiment files).
        #[arg(long, default_value = bench::DEFAULT_OPTIMIZER)]
        optimizer: String,
        /// Seed of data, initialisation and projections.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Precision of the model's tensors: f32 or f64.
        #[arg(long, default_value = "f32", value_parser = parse_precision)]
        precision: Precision,
        /// Output folder (default logs/bench/scaling-<timestamp>).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// Runs a benchmark and prints its table and output files.
pub fn bench(which: BenchCommand) -> anyhow::Result<()> {
    let BenchCommand::Scaling {
        model,
        objectives,
        projection,
        dims,
        batch,
        steps,
        warmup,
        cell_budget,
        sm_max_dim,
        optimizer,
        seed,
        precision,
        out,
    } = which;
    let defaults = bench_defaults();
    let out = out.unwrap_or_else(|| {
        let stamp = chrono::Local::now().format("%Y%m%d-%H%M%S");
        PathBuf::from("logs")
            .join("bench")
            .join(format!("scaling-{stamp}"))
    });
    let optimizer =
        ron::from_str(&optimizer).map_err(|e| anyhow::anyhow!("--optimizer {optimizer}: {e}"))?;
    let opts = ScalingOptions {
        model,
        objectives: objectives
            .split(';')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect(),
        projection,
        optimizer,
        dims,
        batch,
        steps,
        warmup,
        cell_budget_seconds: cell_budget,
        max_dim: vec![(defaults.exact.clone(), sm_max_dim)],
        ratio: Some((defaults.exact.clone(), defaults.sliced.clone())),
        seed,
        precision,
        out: Some(out),
        verbose: true,
    };
    let report = bench::scaling(&opts)?;
    print!("{}", report.table());
    if report.ratio.is_none() {
        println!(
            "{} / {}: no dimension where both ran",
            defaults.exact, defaults.sliced
        );
    }
    for p in [&report.csv_path, &report.png_path].into_iter().flatten() {
        println!("wrote {}", p.display());
    }
    Ok(())
}
