//! Talking to Slurm: `sbatch --parsable` to submit, `squeue` (and `sacct`
//! where the cluster keeps accounting) to learn where each array task is.
//!
//! Data flow: [`submit`] runs `sbatch` on the written script and returns the
//! job id. [`QueueView::query`] runs `squeue` once for the user's jobs and
//! `sacct` once for the sweep's jobs, and answers per array task (`<job>_<index>`)
//! whether it is still queued ([`Queued`]) or how it ended.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use super::SlurmError;

/// Where a task still in Slurm's queue is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queued {
    /// Waiting for resources (or requeued, held, configuring).
    Pending,
    /// Running (or completing).
    Running,
}

/// Runs `command` and returns its standard output.
fn output(command: &str, args: &[String]) -> Result<String, SlurmError> {
    let shown = format!("{command} {}", args.join(" "));
    let out = Command::new(command)
        .args(args)
        .output()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => SlurmError::CommandMissing {
                command: command.to_string(),
            },
            _ => SlurmError::CommandFailed {
                command: shown.clone(),
                message: e.to_string(),
            },
        })?;
    if !out.status.success() {
        return Err(SlurmError::CommandFailed {
            command: shown,
            message: format!(
                "{}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Submits `script` as a job array of the tasks `array` (`sbatch --array`
/// syntax, overriding the script's own) and returns the job id.
///
/// # Errors
/// `sbatch` missing (the error suggests `--dry-run`), refusing the job
/// (its message), or answering something that is not a job id.
pub fn submit(script: &Path, array: &str) -> Result<String, SlurmError> {
    let args = vec![
        "--parsable".to_string(),
        format!("--array={array}"),
        script.display().to_string(),
    ];
    let out = output("sbatch", &args)?;
    // `--parsable` prints `<job id>[;<cluster>]`.
    let id = out
        .lines()
        .next()
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim();
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
        return Err(SlurmError::CommandFailed {
            command: format!("sbatch {}", args.join(" ")),
            message: format!("expected a job id, got {:?}", out.trim()),
        });
    }
    Ok(id.to_string())
}

/// The queue as seen once: array tasks still queued, and the final state
/// of those that left it where `sacct` knows it.
#[derive(Debug, Clone, Default)]
pub struct QueueView {
    /// `<job>_<index>` → where it is, for tasks still in the queue.
    pub queued: BTreeMap<String, Queued>,
    /// `<job>_<index>` → final Slurm state (`COMPLETED`, `CANCELLED`,
    /// `TIMEOUT`, …), from `sacct`; empty without accounting.
    pub ended: BTreeMap<String, String>,
}

/// A `squeue` state word as [`Queued`], `None` for a state that has left
/// the queue.
fn queued_state(state: &str) -> Option<Queued> {
    match state {
        "RUNNING" | "COMPLETING" | "SIGNALING" | "STAGE_OUT" => Some(Queued::Running),
        "PENDING" | "CONFIGURING" | "REQUEUED" | "REQUEUE_HOLD" | "REQUEUE_FED" | "RESIZING"
        | "SUSPENDED" | "STOPPED" => Some(Queued::Pending),
        _ => None,
    }
}

impl QueueView {
    /// Asks `squeue` for the user's queued array tasks and `sacct` (when
    /// the cluster keeps accounting; its failure is not an error) for the
    /// final states of `jobs`.
    ///
    /// # Errors
    /// When `squeue` is missing or fails: without it nothing tells a pending
    /// task from a cancelled one.
    pub fn query(jobs: &[String]) -> Result<Self, SlurmError> {
        let mut view = QueueView::default();
        let args: Vec<String> = ["--noheader", "--array", "--me", "--format=%i|%T"]
            .map(String::from)
            .to_vec();
        for line in output("squeue", &args)?.lines() {
            if let Some((id, state)) = line.trim().split_once('|') {
                if let Some(q) = queued_state(state.trim()) {
                    view.queued.insert(id.trim().to_string(), q);
                }
            }
        }
        if !jobs.is_empty() {
            let args = vec![
                "--noheader".to_string(),
                "--parsable2".to_string(),
                "--allocations".to_string(),
                "--format=JobID,State".to_string(),
                format!("--jobs={}", jobs.join(",")),
            ];
            if let Ok(out) = output("sacct", &args) {
                for line in out.lines() {
                    if let Some((id, state)) = line.trim().split_once('|') {
                        // `CANCELLED by 0` → `CANCELLED`.
                        let word = state.split_whitespace().next().unwrap_or("");
                        if queued_state(word).is_none() && !word.is_empty() {
                            view.ended.insert(id.to_string(), word.to_string());
                        }
                    }
                }
            }
        }
        Ok(view)
    }

    /// Where task `index` of job `job` is, if still queued.
    pub fn queued(&self, job: &str, index: usize) -> Option<Queued> {
        self.queued.get(&format!("{job}_{index}")).copied()
    }

    /// The final state `sacct` knows for task `index` of job `job`.
    pub fn ended(&self, job: &str, index: usize) -> Option<&str> {
        self.ended
            .get(&format!("{job}_{index}"))
            .map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn squeue_states_sort_into_queued_or_gone() {
        assert_eq!(queued_state("PENDING"), Some(Queued::Pending));
        assert_eq!(queued_state("REQUEUED"), Some(Queued::Pending));
        assert_eq!(queued_state("RUNNING"), Some(Queued::Running));
        assert_eq!(queued_state("COMPLETED"), None);
        assert_eq!(queued_state("CANCELLED"), None);
    }

    #[test]
    fn a_missing_command_is_named() {
        let e = output("slicedscore-no-such-command", &[]).unwrap_err();
        assert!(matches!(e, SlurmError::CommandMissing { .. }), "{e}");
        assert!(
            e.to_string().contains("`slicedscore-no-such-command`"),
            "{e}"
        );
    }
}
