//! `slicedscore sweep FILE… --seeds …` and `slicedscore report DIR…`: the
//! table of test metrics over seeds, from new runs or finished ones.
//! `sweep --launcher slurm` submits the runs as a Slurm job array instead
//! of running them here; `report SWEEP_DIR` collects it and
//! `sweep --resubmit SWEEP_DIR` submits what is missing.

use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};

use crate::sweep::slurm::{self, Launched, ResourceFlags};
use crate::sweep::{report_runs, run_sweep, SweepOptions};

/// Where the runs of a sweep run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Launcher {
    /// One after the other in this process.
    Local,
    /// As one Slurm job array (one task per file and seed), submitted with sbatch.
    Slurm,
}

/// Arguments of `sweep`.
#[derive(Args)]
pub struct SweepArgs {
    /// The experiment files (one table row each).
    #[arg(required_unless_present = "resubmit")]
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
    /// Run here, one run after the other (`local`), or submit one Slurm job
    /// array with a task per file and seed (`slurm`).
    #[arg(long, value_enum, default_value_t = Launcher::Local)]
    launcher: Launcher,
    /// Slurm partition (overrides the files' `slurm.partition`).
    #[arg(long)]
    partition: Option<String>,
    /// Slurm time limit per task: MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS.
    #[arg(long)]
    time: Option<String>,
    /// CPUs per Slurm task (default: the files' `slurm.cpus_per_task`, else 1).
    #[arg(long)]
    cpus_per_task: Option<u32>,
    /// GPUs per Slurm task (default: the files' `slurm.gpus_per_task`, else 1
    /// for `device: Cuda`, else none).
    #[arg(long)]
    gpus_per_task: Option<u32>,
    /// Print the Slurm job script instead of writing and submitting it.
    #[arg(long)]
    dry_run: bool,
    /// Submit again the runs of this Slurm sweep folder that are neither
    /// finished nor queued (a run with a checkpoint continues).
    #[arg(long, value_name = "SWEEP_DIR", conflicts_with_all = ["files", "seeds", "metrics"])]
    resubmit: Option<PathBuf>,
}

impl SweepArgs {
    fn flags(&self) -> ResourceFlags {
        ResourceFlags {
            partition: self.partition.clone(),
            time: self.time.clone(),
            cpus_per_task: self.cpus_per_task,
            gpus_per_task: self.gpus_per_task,
        }
    }

    /// The Slurm-only flags given, by name.
    fn slurm_flags_given(&self) -> Vec<&'static str> {
        let mut given = Vec::new();
        for (name, set) in [
            ("--partition", self.partition.is_some()),
            ("--time", self.time.is_some()),
            ("--cpus-per-task", self.cpus_per_task.is_some()),
            ("--gpus-per-task", self.gpus_per_task.is_some()),
            ("--dry-run", self.dry_run),
        ] {
            if set {
                given.push(name);
            }
        }
        given
    }
}

/// Runs the sweep and prints its table (fails when any run failed), or
/// submits it to Slurm and says how to collect it.
pub fn sweep(a: SweepArgs) -> anyhow::Result<()> {
    if let Some(dir) = &a.resubmit {
        return match slurm::resubmit(dir, &a.flags(), a.dry_run)? {
            None => {
                println!(
                    "nothing to resubmit: every run of {} is finished or still queued",
                    dir.display()
                );
                Ok(())
            }
            Some(l) => print_launched(&l, a.dry_run),
        };
    }
    if a.launcher == Launcher::Slurm {
        if a.metrics.is_some() {
            anyhow::bail!(
                "--metrics: a Slurm sweep's table comes later, from `slicedscore report SWEEP_DIR --metrics …`"
            );
        }
        let launched = slurm::launch(&a.files, &a.seeds, &a.logs, &a.flags(), a.dry_run)?;
        return print_launched(&launched, a.dry_run);
    }
    let given = a.slurm_flags_given();
    if !given.is_empty() {
        anyhow::bail!(
            "{} only appl{} to `--launcher slurm` (this sweep runs here)",
            given.join(", "),
            if given.len() == 1 { "ies" } else { "y" }
        );
    }
    crate::train::interrupt::install();
    let opts = SweepOptions {
        logs_root: a.logs,
        metrics: a.metrics,
        progress: !a.no_progress,
    };
    let report = run_sweep(&a.files, &a.seeds, &opts)?;
    print!("{}", report.table());
    println!("summary: {}", report.sweep_dir.display());
    let unknown = crate::sweep::unknown_metrics(&report.rows, &report.metrics);
    if !unknown.is_empty() {
        eprintln!(
            "note: no run recorded {}; the runs recorded: {} \
             (`slicedscore report` re-tabulates the run folders with other --metrics)",
            unknown.join(", "),
            crate::sweep::available_metrics(&report.rows).join(", ")
        );
    }
    if report.any_failed() {
        let total: usize = report.rows.iter().map(|r| r.runs.len()).sum();
        anyhow::bail!("{} of {total} runs failed", report.failed_runs());
    }
    Ok(())
}

/// Prints the script (dry run) or the job id and the `report` command.
fn print_launched(l: &Launched, dry_run: bool) -> anyhow::Result<()> {
    let n = l.indices.len();
    let shape = format!(
        "{n} array task{} of {} files × {} seeds",
        if n == 1 { "" } else { "s" },
        l.plan.files.len(),
        l.plan.seeds.len()
    );
    match &l.job_id {
        None => {
            debug_assert!(dry_run);
            print!("{}", l.script);
            eprintln!("dry run: {shape}; nothing was written or submitted");
        }
        Some(id) => {
            println!("submitted Slurm job {id}: {shape}");
            println!(
                "script: {}",
                l.plan.sweep_dir.join(slurm::script::SCRIPT_FILE).display()
            );
            println!(
                "collect the results: slicedscore report {}",
                l.plan.sweep_dir.display()
            );
        }
    }
    Ok(())
}

/// Arguments of `report`.
#[derive(Args)]
pub struct ReportArgs {
    /// Run folders or experiment folders, or one sweep folder of a Slurm
    /// sweep (`logs/sweeps/<timestamp>`, holding `plan.json`).
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
}

/// Whether `dir` is the folder of a sweep handed to a scheduler.
fn is_planned_sweep(dir: &Path) -> bool {
    dir.join(crate::sweep::plan::PLAN_FILE).is_file()
}

/// Prints the table of finished runs (and the grids); for a Slurm sweep
/// folder also where each unfinished run stands and how to resubmit.
pub fn report(a: ReportArgs) -> anyhow::Result<()> {
    let planned = a.dirs.iter().any(|d| is_planned_sweep(d));
    if planned && a.dirs.len() > 1 {
        anyhow::bail!("a Slurm sweep folder is reported on its own; give one folder");
    }
    let (report, tracked) = if planned {
        let t = crate::sweep::tracked::report_sweep(&a.dirs[0], &a.metrics)?;
        (t.report.clone(), Some(t))
    } else {
        (report_runs(&a.dirs, &a.metrics)?, None)
    };
    print!("{}", report.table());
    if a.grid {
        for m in &report.metrics {
            println!();
            print!("{}", report.grid(m));
        }
    }
    if let Some(t) = tracked {
        println!("tasks: {}", t.counts());
        if let Some(e) = &t.queue_error {
            println!("note: the Slurm queue could not be asked ({e})");
        }
        let n = t.resubmittable();
        if n > 0 {
            println!(
                "resubmit the {n} run{} neither finished nor queued: slicedscore sweep --resubmit {}",
                if n == 1 { "" } else { "s" },
                report.sweep_dir.display()
            );
        }
    }
    Ok(())
}
