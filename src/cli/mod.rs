//! The `slicedscore` command line as a library function, so a program that
//! links its own plugin crate gets every command with its components:
//!
//! ```no_run
//! // In a plugin crate's binary: `use my_plugins as _;` links the plugins.
//! fn main() -> std::process::ExitCode {
//!     slicedscore::cli::main()
//! }
//! ```
//!
//! Data flow: [`main`] sets up logging to stderr, parses the arguments with
//! `clap` into one [`Command`], checks the plugin registry (a name
//! registered twice is an error before anything runs), and hands the
//! command to its own module
//! (`run`, `check`/`list`, `evaluate`, `score`, `sample`, `sweep`/`report`, `bench`), each of which
//! calls the library and prints its result. An error goes to stderr with a
//! non-zero exit status.

mod bench;
mod check;
mod evaluate;
mod resume;
mod run;
mod sample;
mod score;
mod sweep;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Score matching experiments from RON files.
#[derive(Parser)]
#[command(name = "slicedscore", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// One command.
#[derive(Subcommand)]
pub enum Command {
    /// Train the experiment in FILE; writes `logs/<name>/<timestamp>/`.
    Run(run::RunArgs),
    /// Continue a run from its last checkpoint (after SIGINT/SIGTERM, a kill
    /// or a crash); it ends as the uninterrupted run would have.
    Resume(resume::ResumeArgs),
    /// Validate experiment files (parse and build every component) without training.
    Check(check::CheckArgs),
    /// List every registered task, model, objective and projection.
    List,
    /// Evaluate a run's best (or last) checkpoint on the test (or
    /// validation) split, as the run's own test evaluation does; for runs
    /// that stopped without test metrics, e.g. after diverging.
    Evaluate(evaluate::EvaluateArgs),
    /// Print a trained model's score at each row of a CSV file, as CSV (in
    /// the data's own units; --internal for the model's coordinates).
    Score(score::ScoreArgs),
    /// Draw samples from a trained model by (annealed) Langevin dynamics
    /// (MALA for energy models), as CSV in the data's own units.
    Sample(sample::SampleArgs),
    /// Run every experiment file once per seed and print mean ± standard error
    /// of the test metrics; writes `logs/sweeps/<timestamp>/summary.{csv,json}`.
    /// With --launcher slurm: submit the runs as one Slurm job array instead
    /// (collect with `report SWEEP_DIR`, resubmit missing runs with --resubmit).
    Sweep(sweep::SweepArgs),
    /// Print the sweep table (mean ± standard error) from runs that already
    /// finished: each DIR is a run folder or an experiment's folder of runs
    /// (`logs/<name>/`), one table row each, or the folder of a Slurm sweep
    /// (its unfinished runs listed with their state). Trains nothing.
    Report(sweep::ReportArgs),
    /// Benchmarks.
    Bench {
        /// Which benchmark.
        #[command(subcommand)]
        which: bench::BenchCommand,
    },
}

/// Parses the process arguments, runs the command, and returns the exit
/// status (errors are printed to stderr).
pub fn main() -> ExitCode {
    use std::io::IsTerminal;
    // Colours only on a terminal, and never with NO_COLOR set.
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_target(false)
        .init();
    match run_command(Cli::parse().command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            match e.downcast_ref::<crate::train::TrainError>() {
                // 128 + SIGINT, as shells report an interrupted program.
                Some(crate::train::TrainError::Interrupted { .. }) => ExitCode::from(130),
                _ => ExitCode::FAILURE,
            }
        }
    }
}

/// Runs one parsed command, after checking that no two plugins share a
/// name (an error naming both registrations).
pub fn run_command(command: Command) -> anyhow::Result<()> {
    crate::registry::check_unique()?;
    match command {
        Command::Run(a) => run::run(a),
        Command::Resume(a) => resume::resume(a),
        Command::Check(a) => check::check(a),
        Command::List => check::list(),
        Command::Evaluate(a) => evaluate::evaluate(a),
        Command::Score(a) => score::score(a),
        Command::Sample(a) => sample::sample(a),
        Command::Sweep(a) => sweep::sweep(a),
        Command::Report(a) => sweep::report(a),
        Command::Bench { which } => bench::bench(which),
    }
}
