//! The manifest of a sweep handed to a scheduler: `plan.json` in the sweep
//! folder. It lists, per array index, the experiment file (absolute), the
//! seed and the run folder the task writes, and every submission (job id
//! and the indices it ran), so each array task knows its folder and
//! `report` knows which (file, seed) pairs exist, which are missing and in
//! which job to look for them.
//!
//! Data flow: [`SweepPlan::new`] names the run folders (`<logs>/<name>/
//! <sweep stamp>-seed<k>`, as a local sweep does; `-2`, `-3`, … when two
//! files share a name) without creating them; the launcher writes the
//! plan with [`SweepPlan::write`] before it submits, and adds each
//! submission. [`SweepPlan::read`] gives it back to `report` and
//! `sweep --resubmit`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::slurm::Resources;
use super::SweepError;

/// File name of the manifest in a sweep folder.
pub const PLAN_FILE: &str = "plan.json";

/// One array task: one experiment file with one seed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedTask {
    /// The array index (`$SLURM_ARRAY_TASK_ID`).
    pub index: usize,
    /// Which file (index into [`SweepPlan::files`]): the table row.
    pub row: usize,
    /// The experiment file, absolute.
    pub file: PathBuf,
    /// The seed.
    pub seed: u64,
    /// The run folder the task trains into, absolute.
    pub run_dir: PathBuf,
}

/// One experiment file of the sweep.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedFile {
    /// The path as given on the command line (the table labels use it).
    pub given: PathBuf,
    /// The absolute path the tasks read.
    pub path: PathBuf,
}

/// One `sbatch` of (some of) the plan's tasks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Submission {
    /// The Slurm job id of the array.
    pub job_id: String,
    /// The array indices it runs.
    pub indices: Vec<usize>,
    /// When it was submitted (local time, RFC 3339).
    pub submitted: String,
}

/// The manifest of a scheduled sweep.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SweepPlan {
    /// Format version of this file (1).
    pub version: u32,
    /// The `slicedscore` program every task runs, absolute.
    pub binary: PathBuf,
    /// Root of the run folders, absolute.
    pub logs_root: PathBuf,
    /// The sweep folder (holds this file, the script and Slurm's output), absolute.
    pub sweep_dir: PathBuf,
    /// The experiment files, in table order.
    pub files: Vec<PlannedFile>,
    /// The seeds, in table order.
    pub seeds: Vec<u64>,
    /// Every task: files in the outer loop, seeds in the inner one.
    pub tasks: Vec<PlannedTask>,
    /// What each task asks Slurm for.
    pub resources: Resources,
    /// Every submission, oldest first.
    pub submissions: Vec<Submission>,
}

/// An absolute form of `p` (joined to the working directory when relative).
pub fn absolute(p: &Path) -> Result<PathBuf, SweepError> {
    std::path::absolute(p).map_err(|source| SweepError::Io {
        path: p.to_path_buf(),
        source,
    })
}

impl SweepPlan {
    /// Plans one task per (file, seed): `files` are `(path as given,
    /// experiment name)`, the sweep folder is `<logs_root>/sweeps/<stamp>`
    /// and the run folders `<logs_root>/<name>/<stamp>-seed<k>` (with `-2`,
    /// … when two files share a name or the folder exists). Nothing is
    /// created.
    pub fn new(
        binary: &Path,
        logs_root: &Path,
        stamp: &str,
        files: &[(PathBuf, String)],
        seeds: &[u64],
        resources: Resources,
    ) -> Result<Self, SweepError> {
        let logs_root = absolute(logs_root)?;
        let mut planned_files = Vec::new();
        let mut tasks: Vec<PlannedTask> = Vec::new();
        for (row, (given, name)) in files.iter().enumerate() {
            planned_files.push(PlannedFile {
                given: given.clone(),
                path: absolute(given)?,
            });
            for &seed in seeds {
                let base = logs_root.join(name).join(format!("{stamp}-seed{seed}"));
                let mut run_dir = base.clone();
                for k in 2.. {
                    if !run_dir.exists() && !tasks.iter().any(|t| t.run_dir == run_dir) {
                        break;
                    }
                    run_dir = PathBuf::from(format!("{}-{k}", base.display()));
                }
                tasks.push(PlannedTask {
                    index: tasks.len(),
                    row,
                    file: planned_files[row].path.clone(),
                    seed,
                    run_dir,
                });
            }
        }
        Ok(Self {
            version: 1,
            binary: absolute(binary)?,
            sweep_dir: logs_root.join("sweeps").join(stamp),
            logs_root,
            files: planned_files,
            seeds: seeds.to_vec(),
            tasks,
            resources,
            submissions: Vec::new(),
        })
    }

    /// Writes `plan.json` into the sweep folder (atomically; the folder is
    /// created).
    pub fn write(&self) -> Result<(), SweepError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| SweepError::Io { path, source }
        };
        std::fs::create_dir_all(&self.sweep_dir).map_err(io(&self.sweep_dir))?;
        let path = self.sweep_dir.join(PLAN_FILE);
        let text = serde_json::to_string_pretty(self).expect("a plan serializes");
        crate::atomic_file::write_atomic(&path, text.as_bytes()).map_err(io(&path))
    }

    /// Reads the plan of the sweep folder `dir`.
    pub fn read(dir: &Path) -> Result<Self, SweepError> {
        let path = dir.join(PLAN_FILE);
        let text = std::fs::read_to_string(&path).map_err(|source| SweepError::Io {
            path: path.clone(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|e| SweepError::BadPlan {
            path,
            message: e.to_string(),
        })
    }

    /// The latest submission that ran task `index`, if any.
    pub fn job_of(&self, index: usize) -> Option<&Submission> {
        self.submissions
            .iter()
            .rev()
            .find(|s| s.indices.contains(&index))
    }
}

/// Array indices in `sbatch --array` form: ranges joined by commas
/// (`0-3,5,7-8`).
pub fn array_spec(indices: &[usize]) -> String {
    let mut sorted = indices.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut parts = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let mut j = i;
        while j + 1 < sorted.len() && sorted[j + 1] == sorted[j] + 1 {
            j += 1;
        }
        parts.push(if i == j {
            sorted[i].to_string()
        } else {
            format!("{}-{}", sorted[i], sorted[j])
        });
        i = j + 1;
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_specs_compress_ranges() {
        assert_eq!(array_spec(&[0, 1, 2, 3]), "0-3");
        assert_eq!(array_spec(&[5, 1, 3, 2, 7, 8]), "1-3,5,7-8");
        assert_eq!(array_spec(&[4]), "4");
    }

    #[test]
    fn plans_name_distinct_run_folders_and_round_trip() {
        let tmp = tempfile::tempdir().unwrap();
        let logs = tmp.path().join("logs");
        let files = vec![
            (PathBuf::from("a.ron"), "same".to_string()),
            (PathBuf::from("b.ron"), "same".to_string()),
        ];
        let res = Resources {
            partition: None,
            time: None,
            cpus_per_task: 1,
            gpus_per_task: 0,
            extra: vec![],
        };
        let mut plan = SweepPlan::new(Path::new("bin"), &logs, "S", &files, &[3, 4], res).unwrap();
        let dirs: Vec<String> = plan
            .tasks
            .iter()
            .map(|t| t.run_dir.strip_prefix(&logs).unwrap().display().to_string())
            .collect();
        assert_eq!(
            dirs,
            [
                "same/S-seed3",
                "same/S-seed4",
                "same/S-seed3-2",
                "same/S-seed4-2"
            ]
        );
        assert!(plan.tasks.iter().all(|t| t.file.is_absolute()));
        assert_eq!(
            (plan.tasks[3].index, plan.tasks[3].row, plan.tasks[3].seed),
            (3, 1, 4)
        );
        plan.submissions.push(Submission {
            job_id: "7".into(),
            indices: vec![0, 1, 2, 3],
            submitted: "t".into(),
        });
        plan.submissions.push(Submission {
            job_id: "9".into(),
            indices: vec![2],
            submitted: "t".into(),
        });
        plan.write().unwrap();
        let back = SweepPlan::read(&logs.join("sweeps").join("S")).unwrap();
        assert_eq!(back, plan);
        assert_eq!(back.job_of(2).unwrap().job_id, "9");
        assert_eq!(back.job_of(1).unwrap().job_id, "7");
    }
}
