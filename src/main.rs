//! The `slicedscore` command line: run, check, list, score, sweep, bench.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::OnceLock;

use anyhow::Result;
use clap::{Parser, Subcommand, ValueEnum};

use slicedscore::autodiff::Graph;
use slicedscore::bench::memory::CountingAllocator;
use slicedscore::bench::{self, ScalingDefaults, ScalingOptions};
use slicedscore::device::Precision;
use slicedscore::experiment::Experiment;
use slicedscore::points_csv;
use slicedscore::registry::{
    ComponentKind, ModelConfig, ObjectiveConfig, ProjectionConfig, TaskConfig,
};
use slicedscore::run_loader::{load_model, Which};
use slicedscore::sweep::{run_sweep, SweepOptions};
use slicedscore::train::{run_file, RunOptions};

/// Counts heap bytes so `bench scaling` can report peak memory (the library
/// leaves the allocator to the program).
#[global_allocator]
static ALLOC: CountingAllocator = CountingAllocator;

/// Defaults of `bench scaling`: the model spec (one line there), the
/// objective specs, the projection and which objectives the SM limit and the
/// SM / SSM ratio refer to. They live in a RON file outside `src/` because
/// the core, this binary included, names no plugin.
pub const BENCH_DEFAULTS: &str = include_str!("../benches/scaling_defaults.ron");

fn bench_defaults() -> &'static ScalingDefaults {
    static D: OnceLock<ScalingDefaults> = OnceLock::new();
    D.get_or_init(|| {
        ScalingDefaults::parse(BENCH_DEFAULTS)
            .unwrap_or_else(|e| panic!("benches/scaling_defaults.ron: {e}"))
    })
}

/// Score matching experiments from RON files.
#[derive(Parser)]
#[command(name = "slicedscore", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train the experiment in FILE; writes logs/<name>/<timestamp>/.
    Run {
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
    },
    /// Validate experiment files (parse and build every component) without training.
    Check {
        /// The experiment files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// List every registered task, model, objective and projection.
    List,
    /// Print a trained model's score at each row of a CSV file, as CSV.
    Score {
        /// The run folder (logs/<name>/<timestamp>).
        #[arg(long)]
        run: PathBuf,
        /// CSV with one point per row (an optional header line is skipped).
        #[arg(long)]
        input: PathBuf,
        /// Which checkpoint to use.
        #[arg(long, value_enum, default_value_t = CheckpointArg::Best)]
        checkpoint: CheckpointArg,
    },
    /// Run every experiment file once per seed and print mean ± standard error
    /// of the test metrics; writes logs/sweeps/<timestamp>/summary.{csv,json}.
    Sweep {
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
    },
    /// Print the sweep table (mean ± standard error) from runs that already
    /// finished: each DIR is a run folder or an experiment's folder of runs
    /// (logs/<name>/), one table row each. Trains nothing.
    Report {
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
    },
    /// Benchmarks.
    Bench {
        #[command(subcommand)]
        which: BenchCommand,
    },
}

#[derive(Subcommand)]
enum BenchCommand {
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
        /// Skip exact score matching above this D (its cost grows with D²).
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

#[derive(Clone, Copy, ValueEnum)]
enum CheckpointArg {
    Best,
    Last,
}

fn parse_precision(s: &str) -> Result<Precision, String> {
    Precision::parse(s).ok_or_else(|| format!("{s:?}: expected f32 or f64"))
}

fn list_kind<C: ?Sized + ComponentKind>(out: &mut String) {
    out.push_str(&format!("{}s:\n", C::KIND));
    for p in C::plugins() {
        out.push_str(&format!("  {:<12} {}\n", p.name, p.summary));
        out.push_str(&format!(
            "  {:<12} e.g. {{\"{}\": {}}}\n",
            "", p.name, p.example
        ));
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Run {
            file,
            logs,
            run_dir,
            no_progress,
        } => {
            let opts = RunOptions {
                logs_root: logs,
                run_dir,
                progress: !no_progress,
            };
            let summary = run_file(&file, &opts)?;
            println!("run folder: {}", summary.run_dir.display());
            println!(
                "best step {} | mean {:.2} ms per training step",
                summary.best_step,
                summary.seconds_per_iteration * 1e3
            );
            for (k, v) in &summary.test {
                println!("test/{k} = {v:.6}");
            }
        }
        Command::Check { files } => {
            for f in files {
                let exp = Experiment::load(&f)?;
                let built = exp
                    .build()
                    .map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))?;
                println!(
                    "{}: ok ({}; model {} with {} parameters; objective {}; projection {})",
                    f.display(),
                    built.task.describe(),
                    exp.model_name(),
                    built
                        .model
                        .scorer()
                        .map_or(0, slicedscore::nn::module::num_trainable)
                        + slicedscore::nn::module::num_trainable(&*built.task),
                    exp.objective_name(),
                    exp.projection_name()
                );
            }
        }
        Command::List => {
            let mut out = String::new();
            list_kind::<dyn TaskConfig>(&mut out);
            list_kind::<dyn ModelConfig>(&mut out);
            list_kind::<dyn ObjectiveConfig>(&mut out);
            list_kind::<dyn ProjectionConfig>(&mut out);
            print!("{out}");
        }
        Command::Score {
            run,
            input,
            checkpoint,
        } => {
            let which = match checkpoint {
                CheckpointArg::Best => Which::Best,
                CheckpointArg::Last => Which::Last,
            };
            let loaded = load_model(&run, which)?;
            let points = points_csv::read_points(&input, loaded.dim)?;
            let n = points.len() / loaded.dim;
            let mut g = Graph::inference(&loaded.dev);
            let x = g.constant(points, n, loaded.dim);
            let s = loaded.model.score(&mut g, &x).to_host();
            print!("{}", points_csv::to_csv(&s, loaded.dim, "score"));
        }
        Command::Sweep {
            files,
            seeds,
            logs,
            metrics,
            no_progress,
        } => {
            let opts = SweepOptions {
                logs_root: logs,
                metrics,
                progress: !no_progress,
            };
            let report = run_sweep(&files, &seeds, &opts)?;
            print!("{}", report.table());
            println!("summary: {}", report.sweep_dir.display());
            if report.any_failed() {
                let total: usize = report.rows.iter().map(|r| r.runs.len()).sum();
                anyhow::bail!("{} of {total} runs failed", report.failed_runs());
            }
        }
        Command::Report {
            dirs,
            metrics,
            grid,
        } => {
            let report = slicedscore::sweep::report_runs(&dirs, &metrics)?;
            print!("{}", report.table());
            if grid {
                for m in &report.metrics {
                    println!();
                    print!("{}", report.grid(m));
                }
            }
        }
        Command::Bench { which } => match which {
            BenchCommand::Scaling {
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
            } => {
                let defaults = bench_defaults();
                let out = out.unwrap_or_else(|| {
                    let stamp = chrono::Local::now().format("%Y%m%d-%H%M%S");
                    PathBuf::from("logs")
                        .join("bench")
                        .join(format!("scaling-{stamp}"))
                });
                let optimizer = ron::from_str(&optimizer)
                    .map_err(|e| anyhow::anyhow!("--optimizer {optimizer}: {e}"))?;
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
            }
        },
    }
    Ok(())
}
