//! The `slicedscore` command line: run, check, list, score.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand, ValueEnum};

use slicedscore::autodiff::Graph;
use slicedscore::experiment::Experiment;
use slicedscore::registry::{
    ComponentKind, ModelConfig, ObjectiveConfig, ProjectionConfig, TaskConfig,
};
use slicedscore::run_loader::{load_model, Which};
use slicedscore::train::{run_file, RunOptions};
use slicedscore::{device, points_csv};

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
}

#[derive(Clone, Copy, ValueEnum)]
enum CheckpointArg {
    Best,
    Last,
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
            eprintln!("error: {e:#}");
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
                    exp.model.name,
                    built.model.num_parameters(),
                    exp.objective.name,
                    exp.projection.name
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
            let s = device::to_host(&loaded.model.score(&mut g, &x));
            print!("{}", points_csv::to_csv(&s, loaded.dim, "score"));
        }
    }
    Ok(())
}
