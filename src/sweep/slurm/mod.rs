//! Sweeps handed to Slurm: one job array, one array task per (experiment
//! file, seed), each training into its own run folder.
//!
//! Data flow: [`launch`] parses every file (as a local sweep does), merges
//! the resources ([`resources`]), plans the tasks and their run folders
//! ([`crate::sweep::plan`]), writes `plan.json` and `sweep.sbatch`
//! ([`script`]) into `<logs>/sweeps/<timestamp>/` and submits the script
//! with `sbatch` ([`queue::submit`]), recording the job id in the plan
//! (`--dry-run`: only returns the script). Each task runs
//! `slicedscore run FILE --seed K --run-dir DIR --resume-existing`.
//! `report` reads the plan back ([`crate::sweep::tracked`]); [`resubmit`]
//! submits the same script again for the tasks that are neither finished
//! nor queued.

pub mod queue;
pub mod resources;
pub mod script;

use std::path::{Path, PathBuf};

pub use resources::{FileNeeds, ResourceFlags, Resources, SlurmSettings, SlurmTime};

use super::plan::{array_spec, Submission, SweepPlan};
use super::SweepError;

/// Why a Slurm sweep could not be written or submitted.
#[derive(Debug, thiserror::Error)]
pub enum SlurmError {
    /// A resource setting (flag or `slurm` section) is invalid.
    #[error("{what}: {message}")]
    Setting {
        /// The flag (`--time`) or `file: slurm.field`.
        what: String,
        /// What is wrong and what is allowed.
        message: String,
    },
    /// Two files ask for different partitions.
    #[error("{} asks for partition `{first_partition}` and {} for `{second_partition}`, but a job array runs in one: sweep them separately or choose one with --partition", first.display(), second.display())]
    PartitionConflict {
        /// The first file.
        first: PathBuf,
        /// Its partition.
        first_partition: String,
        /// The file that disagrees.
        second: PathBuf,
        /// Its partition.
        second_partition: String,
    },
    /// A path cannot be written into the script.
    #[error("{0}: not UTF-8, so it cannot be written into the job script")]
    NotUtf8(PathBuf),
    /// Slurm's output folder has whitespace, which `#SBATCH` lines cannot hold.
    #[error("{0}: Slurm's output path cannot contain whitespace; choose --logs without spaces")]
    Spaces(PathBuf),
    /// A Slurm command is not installed here.
    #[error("`{command}` not found: is Slurm installed and on PATH here? (`sweep --launcher slurm --dry-run` prints the job script without submitting it)")]
    CommandMissing {
        /// The command.
        command: String,
    },
    /// A Slurm command failed.
    #[error("`{command}` failed: {message}")]
    CommandFailed {
        /// The command line.
        command: String,
        /// Its exit status and message.
        message: String,
    },
}

/// What [`launch`] or [`resubmit`] did.
#[derive(Debug, Clone)]
pub struct Launched {
    /// The plan (with the new submission, unless a dry run).
    pub plan: SweepPlan,
    /// The job script.
    pub script: String,
    /// The array indices submitted (or that would be).
    pub indices: Vec<usize>,
    /// The job id (`None` for a dry run).
    pub job_id: Option<String>,
}

/// Plans the sweep of `files` × `seeds` as one job array and submits it
/// (`dry_run`: writes and submits nothing, returns the script).
pub fn launch(
    files: &[PathBuf],
    seeds: &[u64],
    logs_root: &Path,
    flags: &ResourceFlags,
    dry_run: bool,
) -> Result<Launched, SweepError> {
    let parsed = super::parse_files(files, seeds)?;
    let needs: Vec<FileNeeds<'_>> = parsed
        .iter()
        .map(|(f, e, _)| FileNeeds {
            path: f,
            settings: e.slurm.as_ref(),
            cuda: e.device == crate::experiment::DeviceChoice::Cuda,
        })
        .collect();
    let resources = Resources::merge(&needs, flags)?;
    let binary = std::env::current_exe().map_err(|source| SweepError::Io {
        path: PathBuf::from("slicedscore (this program)"),
        source,
    })?;
    let stamp = chrono::Local::now().format("%Y%m%d-%H%M%S%.3f").to_string();
    let names: Vec<(PathBuf, String)> = parsed
        .iter()
        .map(|(f, e, _)| (f.clone(), e.name.clone()))
        .collect();
    let plan = SweepPlan::new(&binary, logs_root, &stamp, &names, seeds, resources)?;
    let indices: Vec<usize> = plan.tasks.iter().map(|t| t.index).collect();
    submit_plan(plan, indices, dry_run)
}

/// Submits the plan's tasks that are neither finished nor still queued
/// again (a task with a checkpoint continues its run); `flags` override the
/// plan's resources for this and later submissions. Returns `None` when
/// every task is finished or queued.
pub fn resubmit(
    sweep_dir: &Path,
    flags: &ResourceFlags,
    dry_run: bool,
) -> Result<Option<Launched>, SweepError> {
    let mut plan = SweepPlan::read(sweep_dir)?;
    let jobs: Vec<String> = plan.submissions.iter().map(|s| s.job_id.clone()).collect();
    let queue = queue::QueueView::query(&jobs)?;
    let states = super::tracked::task_states(&plan, Some(&queue));
    let indices: Vec<usize> = states
        .iter()
        .filter(|s| s.state.resubmittable())
        .map(|s| s.index)
        .collect();
    if indices.is_empty() {
        return Ok(None);
    }
    let overridden = ResourceFlags {
        partition: flags.partition.clone().or(plan.resources.partition.clone()),
        time: flags
            .time
            .clone()
            .or(plan.resources.time.map(|t| t.to_slurm())),
        cpus_per_task: flags.cpus_per_task.or(Some(plan.resources.cpus_per_task)),
        gpus_per_task: flags.gpus_per_task.or(Some(plan.resources.gpus_per_task)),
    };
    let extra = std::mem::take(&mut plan.resources.extra);
    plan.resources = Resources::merge(&[], &overridden)?;
    plan.resources.extra = extra;
    submit_plan(plan, indices, dry_run).map(Some)
}

/// Writes the plan and the script, submits `indices` and records the job.
fn submit_plan(
    mut plan: SweepPlan,
    indices: Vec<usize>,
    dry_run: bool,
) -> Result<Launched, SweepError> {
    let text = script::script(&plan, &indices)?;
    if dry_run {
        return Ok(Launched {
            plan,
            script: text,
            indices,
            job_id: None,
        });
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SweepError::Io { path, source }
    };
    // Slurm does not create the output folder; a task could not start without it.
    let out_dir = plan.sweep_dir.join(script::OUTPUT_DIR);
    std::fs::create_dir_all(&out_dir).map_err(io(&out_dir))?;
    plan.write()?;
    let script_path = plan.sweep_dir.join(script::SCRIPT_FILE);
    crate::atomic_file::write_atomic(&script_path, text.as_bytes()).map_err(io(&script_path))?;
    let job_id = queue::submit(&script_path, &array_spec(&indices))?;
    plan.submissions.push(Submission {
        job_id: job_id.clone(),
        indices: indices.clone(),
        submitted: chrono::Local::now().to_rfc3339(),
    });
    plan.write()?;
    Ok(Launched {
        plan,
        script: text,
        indices,
        job_id: Some(job_id),
    })
}
