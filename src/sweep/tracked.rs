//! `report` of a sweep folder that holds a plan (a sweep handed to Slurm):
//! every planned (file, seed) with where it stands, then the same table a
//! local sweep prints.
//!
//! Data flow: [`task_states`] looks at each planned task's run folder
//! (`metrics.json`: finished, failed, diverged, interrupted, or still
//! `running`) and at the queue (`squeue`, `sacct` where kept, and Slurm's
//! output file of the task) and gives it one [`TaskState`] with the
//! details. [`report_sweep`] turns finished runs into table entries read
//! from their records (as `report DIR…` does), unfinished ones into
//! entries that say why, and writes `summary.{csv,json}` into the sweep
//! folder.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use super::collect::run_of_record;
use super::plan::{PlannedTask, SweepPlan};
use super::report::{labels, summarise_requested, SeedRun, SweepReport, SweepRow};
use super::slurm::queue::{QueueView, Queued};
use super::slurm::script::OUTPUT_DIR;
use super::SweepError;
use crate::experiment::Experiment;
use crate::train::record::{RunRecord, RunState};

/// Where a planned task stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskState {
    /// Its run finished.
    Finished,
    /// Queued, waiting for resources (or requeued).
    Pending,
    /// Running in Slurm.
    Running,
    /// Not finished, and the queue could not be asked (no `squeue` here).
    Unknown,
    /// Stopped with a checkpoint (signal, time limit); resubmitting continues it.
    Interrupted,
    /// Its job ended while the run was going (killed, timed out); resubmitting continues it.
    Stopped,
    /// The run failed.
    Failed,
    /// The run diverged.
    Diverged,
    /// Its job left the queue before the run started (cancelled, or failed to start).
    Cancelled,
    /// Never submitted.
    Unsubmitted,
}

impl TaskState {
    /// The word the report uses.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Finished => "finished",
            TaskState::Pending => "pending",
            TaskState::Running => "running",
            TaskState::Unknown => "unknown",
            TaskState::Interrupted => "interrupted",
            TaskState::Stopped => "stopped",
            TaskState::Failed => "failed",
            TaskState::Diverged => "diverged",
            TaskState::Cancelled => "cancelled",
            TaskState::Unsubmitted => "unsubmitted",
        }
    }

    /// Still going (or cannot be told apart from going).
    pub fn waiting(self) -> bool {
        matches!(
            self,
            TaskState::Pending | TaskState::Running | TaskState::Unknown
        )
    }

    /// Neither finished nor queued: `sweep --resubmit` submits it again.
    pub fn resubmittable(self) -> bool {
        !self.waiting() && self != TaskState::Finished
    }
}

/// One planned task and where it stands.
#[derive(Debug, Clone)]
pub struct TaskStatus {
    /// Its array index.
    pub index: usize,
    /// Its state.
    pub state: TaskState,
    /// Details: the job, the step, the error.
    pub detail: String,
    /// Its run's record, when readable.
    pub record: Option<RunRecord>,
}

/// How the task's Slurm job ended, from `sacct` or the end of its output
/// file (Slurm writes `CANCELLED` or `DUE TO TIME LIMIT` there).
fn how_it_ended(plan: &SweepPlan, job: &str, index: usize, queue: Option<&QueueView>) -> String {
    if let Some(state) = queue.and_then(|q| q.ended(job, index)) {
        return format!("Slurm state {state}");
    }
    let out = plan
        .sweep_dir
        .join(OUTPUT_DIR)
        .join(format!("{job}_{index}.out"));
    let Ok(text) = std::fs::read_to_string(&out) else {
        return "no output file: cancelled before it started".to_string();
    };
    if text.contains("DUE TO TIME LIMIT") {
        "time limit".to_string()
    } else if text.contains("PREEMPTION") {
        "preempted".to_string()
    } else if text.contains("CANCELLED") {
        "cancelled".to_string()
    } else {
        let last = text
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        format!("see {}: {}", out.display(), last.trim())
    }
}

/// Where `task` stands, from its run folder and the queue (`None`: the
/// queue could not be asked).
fn task_state(plan: &SweepPlan, task: &PlannedTask, queue: Option<&QueueView>) -> TaskStatus {
    let record_path = task.run_dir.join(crate::train::METRICS_FILE);
    let (record, unreadable) = if record_path.is_file() {
        match RunRecord::read(&record_path) {
            Ok(r) => (Some(r), None),
            Err(e) => (
                None,
                Some(format!("unreadable {}: {e}", record_path.display())),
            ),
        }
    } else {
        (None, None)
    };
    let status = |state, detail: String| TaskStatus {
        index: task.index,
        state,
        detail,
        record: record.clone(),
    };
    let step = record.as_ref().map(|r| r.step);
    if let Some(r) = &record {
        if r.status == RunState::Finished {
            return status(TaskState::Finished, "finished".into());
        }
    }
    let Some(sub) = plan.job_of(task.index) else {
        return status(TaskState::Unsubmitted, "never submitted".into());
    };
    let job = format!("Slurm job {}_{}", sub.job_id, task.index);
    let at_step = step.map(|s| format!(" at step {s}")).unwrap_or_default();
    match queue.map(|q| q.queued(&sub.job_id, task.index)) {
        Some(Some(Queued::Pending)) => {
            let requeued = if record.is_some() { " (requeued)" } else { "" };
            return status(TaskState::Pending, format!("in {job}{requeued}"));
        }
        Some(Some(Queued::Running)) => {
            return status(TaskState::Running, format!("in {job}{at_step}"));
        }
        None if record
            .as_ref()
            .is_none_or(|r| r.status == RunState::Running) =>
        {
            return status(
                TaskState::Unknown,
                format!("{job}: not finished{at_step}; squeue could not be asked whether it is still queued"),
            );
        }
        _ => {}
    }
    // Not queued (any more).
    if let Some(why) = unreadable {
        return status(TaskState::Failed, why);
    }
    let ended = || how_it_ended(plan, &sub.job_id, task.index, queue);
    match &record {
        None => status(
            TaskState::Cancelled,
            format!(
                "{job} left the queue without starting the run ({})",
                ended()
            ),
        ),
        Some(r) => match r.status {
            RunState::Interrupted => status(
                TaskState::Interrupted,
                format!(
                    "{job} stopped{at_step} with a checkpoint ({}); resubmitting continues it",
                    ended()
                ),
            ),
            RunState::Running => status(
                TaskState::Stopped,
                format!(
                    "{job} ended{at_step} without finishing ({}); resubmitting continues it",
                    ended()
                ),
            ),
            RunState::Diverged => status(
                TaskState::Diverged,
                r.error.clone().unwrap_or_else(|| "diverged".into()),
            ),
            _ => status(
                TaskState::Failed,
                r.error.clone().unwrap_or_else(|| format!("{job} failed")),
            ),
        },
    }
}

/// Where every task of `plan` stands (in index order).
pub fn task_states(plan: &SweepPlan, queue: Option<&QueueView>) -> Vec<TaskStatus> {
    plan.tasks
        .iter()
        .map(|t| task_state(plan, t, queue))
        .collect()
}

/// The table entry of a task.
fn seed_run(task: &PlannedTask, status: &TaskStatus) -> SeedRun {
    let run_dir = task.run_dir.exists().then(|| task.run_dir.clone());
    if let (TaskState::Finished, Some(rec)) = (status.state, &status.record) {
        return run_of_record(&task.run_dir, rec);
    }
    let text = format!("{}: {}", status.state.as_str(), status.detail);
    SeedRun {
        seed: task.seed,
        run_dir,
        status: status
            .record
            .as_ref()
            .map_or(RunState::Running, |r| r.status),
        error: (!status.state.waiting()).then(|| text.clone()),
        waiting: status.state.waiting().then_some(text),
        metrics: BTreeMap::new(),
        dim: status.record.as_ref().map(|r| r.dim),
        selected_by: status.record.as_ref().map(|r| r.selection_metric.clone()),
    }
}

/// What `report` says of a planned sweep.
#[derive(Debug, Clone)]
pub struct TrackedReport {
    /// The table (finished runs summarised, the others listed).
    pub report: SweepReport,
    /// Every task's state, in index order.
    pub tasks: Vec<TaskStatus>,
    /// Why the queue could not be asked, if it could not.
    pub queue_error: Option<String>,
}

impl TrackedReport {
    /// Tasks that `sweep --resubmit` would submit again.
    pub fn resubmittable(&self) -> usize {
        self.tasks
            .iter()
            .filter(|t| t.state.resubmittable())
            .count()
    }

    /// Number of tasks in each state, e.g. `2 finished, 1 pending`.
    pub fn counts(&self) -> String {
        let mut counts: Vec<(TaskState, usize)> = Vec::new();
        for t in &self.tasks {
            match counts.iter_mut().find(|(s, _)| *s == t.state) {
                Some((_, n)) => *n += 1,
                None => counts.push((t.state, 1)),
            }
        }
        counts
            .iter()
            .map(|(s, n)| format!("{n} {}", s.as_str()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The report of the sweep folder `sweep_dir` (which holds `plan.json`):
/// the table of finished runs, with every other planned run listed as
/// pending, running, failed, cancelled, …; writes `summary.{csv,json}`
/// into the folder.
pub fn report_sweep(
    sweep_dir: &Path,
    metrics: &Option<Vec<String>>,
) -> Result<TrackedReport, SweepError> {
    let plan = super::plan::SweepPlan::read(sweep_dir)?;
    let jobs: Vec<String> = plan.submissions.iter().map(|s| s.job_id.clone()).collect();
    let (queue, queue_error) = match super::slurm::queue::QueueView::query(&jobs) {
        Ok(q) => (Some(q), None),
        Err(e) => (None, Some(e.to_string())),
    };
    let tasks = task_states(&plan, queue.as_ref());
    // Each row's experiment: a run's own copy, else the file itself.
    let mut parsed = Vec::new();
    for (row, file) in plan.files.iter().enumerate() {
        let copy = plan
            .tasks
            .iter()
            .filter(|t| t.row == row)
            .map(|t| t.run_dir.join(crate::train::EXPERIMENT_COPY))
            .find_map(|p| Experiment::load(&p).ok());
        let exp = match copy {
            Some(e) => e,
            None => Experiment::load(&file.path)?,
        };
        parsed.push((file.given.clone(), exp, String::new()));
    }
    let labels = labels(&parsed);
    let mut rows: Vec<SweepRow> = parsed
        .iter()
        .zip(labels)
        .enumerate()
        .map(|(row, ((given, e, _), label))| SweepRow {
            label,
            file: given.clone(),
            experiment: e.name.clone(),
            objective: e.objective_name().to_string(),
            model: e.model_name().to_string(),
            task: e.task.name.clone(),
            runs: plan
                .tasks
                .iter()
                .zip(&tasks)
                .filter(|(t, _)| t.row == row)
                .map(|(t, s)| seed_run(t, s))
                .collect(),
            cells: BTreeMap::new(),
        })
        .collect();
    let chosen = summarise_requested(&mut rows, metrics)?;
    let report = SweepReport {
        sweep_dir: plan.sweep_dir.clone(),
        seeds: plan.seeds.clone(),
        metrics: chosen,
        rows,
    };
    if let Err(e) = report.write() {
        tracing::warn!("the summary could not be written: {e}");
    }
    Ok(TrackedReport {
        report,
        tasks,
        queue_error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sweep::plan::Submission;
    use crate::sweep::slurm::{ResourceFlags, Resources};
    use std::path::PathBuf;

    /// A `metrics.json` of a run in `state` at `step`.
    fn record(dir: &Path, state: &str, step: u64) {
        std::fs::create_dir_all(dir).unwrap();
        let json = serde_json::json!({
            "experiment": "e", "run_dir": dir.display().to_string(), "seed": 0,
            "device": "cpu", "precision": "f32", "task": "t", "dim": 2, "model": "m",
            "objective": "o", "projection": "p", "iterations": 100, "batch_size": 8,
            "selection_metric": "val/x", "status": state, "error": null, "step": step,
            "stopped_early_at": null, "train": {}, "best": null, "last_eval": null,
            "test": null, "history": []
        });
        std::fs::write(dir.join(crate::train::METRICS_FILE), json.to_string()).unwrap();
    }

    #[test]
    fn states_come_from_run_records_and_the_queue() {
        let tmp = tempfile::tempdir().unwrap();
        let files = vec![(PathBuf::from("e.ron"), "e".to_string())];
        let res = Resources::merge(&[], &ResourceFlags::default()).unwrap();
        let seeds: Vec<u64> = (0..8).collect();
        let mut plan =
            SweepPlan::new(Path::new("/bin/x"), tmp.path(), "S", &files, &seeds, res).unwrap();
        plan.submissions.push(Submission {
            job_id: "7".into(),
            indices: (0..7).collect(),
            submitted: String::new(),
        });
        let dir = |i: usize| plan.tasks[i].run_dir.clone();
        record(&dir(0), "finished", 100);
        record(&dir(1), "running", 50); // queued as running
                                        // 2: no run folder, pending
        record(&dir(3), "interrupted", 50); // requeued: pending again
        record(&dir(4), "interrupted", 50); // job gone
        record(&dir(5), "running", 20); // job gone: killed
                                        // 6: no folder, job gone: cancelled before it started
                                        // 7: never submitted
        let mut q = QueueView::default();
        q.queued.insert("7_1".into(), Queued::Running);
        q.queued.insert("7_2".into(), Queued::Pending);
        q.queued.insert("7_3".into(), Queued::Pending);
        let states: Vec<TaskState> = task_states(&plan, Some(&q))
            .iter()
            .map(|s| s.state)
            .collect();
        use TaskState::*;
        assert_eq!(
            states,
            [
                Finished,
                Running,
                Pending,
                Pending,
                Interrupted,
                Stopped,
                Cancelled,
                Unsubmitted
            ]
        );
        let details = task_states(&plan, Some(&q));
        assert_eq!(details[1].detail, "in Slurm job 7_1 at step 50");
        assert_eq!(details[3].detail, "in Slurm job 7_3 (requeued)");
        assert!(
            details[6].detail.contains("cancelled before it started"),
            "{}",
            details[6].detail
        );
        let resubmit: Vec<usize> = details
            .iter()
            .filter(|s| s.state.resubmittable())
            .map(|s| s.index)
            .collect();
        assert_eq!(resubmit, [4, 5, 6, 7]);
        // Without the queue: an unfinished run without a final state is unknown, not missing.
        let states: Vec<TaskState> = task_states(&plan, None).iter().map(|s| s.state).collect();
        assert_eq!(
            states,
            [
                Finished,
                Unknown,
                Unknown,
                Interrupted,
                Interrupted,
                Unknown,
                Unknown,
                Unsubmitted
            ]
        );
        // A time limit named in Slurm's output file.
        let out = plan.sweep_dir.join(OUTPUT_DIR);
        std::fs::create_dir_all(&out).unwrap();
        std::fs::write(
            out.join("7_5.out"),
            "slurmstepd: error: *** JOB 7 ON n CANCELLED AT 2026 DUE TO TIME LIMIT ***\n",
        )
        .unwrap();
        let s = &task_states(&plan, Some(&q))[5];
        assert!(s.detail.contains("(time limit)"), "{}", s.detail);
    }
}
