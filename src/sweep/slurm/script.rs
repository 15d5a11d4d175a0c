//! The `sbatch` job-array script of a planned sweep: a pure function from
//! the plan to the script's text.
//!
//! Array task `i` looks its experiment file, seed and run folder up in a
//! `case` on `$SLURM_ARRAY_TASK_ID` and `exec`s
//! `slicedscore run FILE --seed K --run-dir DIR --resume-existing`, so the
//! run is the process Slurm signals (SIGTERM at a time limit or preemption
//! stops it cleanly with a checkpoint) and a requeued or resubmitted task
//! continues its run instead of restarting it.

use std::path::Path;

use super::SlurmError;
use crate::sweep::plan::{array_spec, SweepPlan};

/// The name Slurm shows for the sweep's jobs.
pub const JOB_NAME: &str = "slicedscore-sweep";

/// Folder of Slurm's output files (`<job>_<index>.out`) inside the sweep folder.
pub const OUTPUT_DIR: &str = "slurm";

/// File name of the script in the sweep folder.
pub const SCRIPT_FILE: &str = "sweep.sbatch";

/// `p` single-quoted for the shell.
///
/// # Errors
/// When the path is not UTF-8 (the script is text).
fn quoted(p: &Path) -> Result<String, SlurmError> {
    let s = p
        .to_str()
        .ok_or_else(|| SlurmError::NotUtf8(p.to_path_buf()))?;
    Ok(format!("'{}'", s.replace('\'', r"'\''")))
}

/// The script running `indices` of `plan` as one job array (every task of
/// the plan has its `case` branch, so a later `sbatch --array=…` of the
/// same script can run any of them).
pub fn script(plan: &SweepPlan, indices: &[usize]) -> Result<String, SlurmError> {
    let out_dir = plan.sweep_dir.join(OUTPUT_DIR);
    let mut s = String::from("#!/bin/bash\n");
    s.push_str(&format!(
        "# slicedscore sweep: {} files x {} seeds, one array task per (file, seed).\n",
        plan.files.len(),
        plan.seeds.len()
    ));
    s.push_str(
        "# Task i runs `slicedscore run FILE --seed K --run-dir DIR --resume-existing`:\n\
         # a requeued or resubmitted task continues its run from the last checkpoint,\n\
         # a finished run is left as it is. Collect with `slicedscore report SWEEP_DIR`.\n",
    );
    s.push_str(&format!("#SBATCH --job-name={JOB_NAME}\n"));
    s.push_str(&format!("#SBATCH --array={}\n", array_spec(indices)));
    let out = out_dir.join("%A_%a.out");
    let out = out
        .to_str()
        .ok_or_else(|| SlurmError::NotUtf8(out.clone()))?;
    if out.contains(char::is_whitespace) {
        return Err(SlurmError::Spaces(out_dir));
    }
    s.push_str(&format!("#SBATCH --output={out}\n"));
    s.push_str("#SBATCH --open-mode=append\n");
    s.push_str("#SBATCH --requeue\n");
    for o in plan.resources.sbatch_options() {
        s.push_str(&format!("#SBATCH {o}\n"));
    }
    s.push_str("set -euo pipefail\n");
    s.push_str("case \"${SLURM_ARRAY_TASK_ID:?not started as a Slurm array task}\" in\n");
    for t in &plan.tasks {
        s.push_str(&format!(
            "  {}) file={}; seed={}; run_dir={} ;;\n",
            t.index,
            quoted(&t.file)?,
            t.seed,
            quoted(&t.run_dir)?
        ));
    }
    s.push_str("  *) echo \"no task $SLURM_ARRAY_TASK_ID in this sweep\" >&2; exit 2 ;;\nesac\n");
    s.push_str("# The run's thread pool uses the CPUs Slurm gave the task.\n");
    s.push_str("export RAYON_NUM_THREADS=\"${SLURM_CPUS_PER_TASK:-1}\"\n");
    s.push_str("echo \"$(date -Is) task $SLURM_ARRAY_TASK_ID on $(hostname): $file seed $seed -> $run_dir\"\n");
    s.push_str(&format!(
        "exec {} run \"$file\" --seed \"$seed\" --run-dir \"$run_dir\" --resume-existing --no-progress --logs {}\n",
        quoted(&plan.binary)?,
        quoted(&plan.logs_root)?
    ));
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sweep::slurm::{ResourceFlags, Resources};
    use std::path::PathBuf;

    #[test]
    fn the_script_maps_each_array_index_to_its_run() {
        let res = Resources::merge(
            &[],
            &ResourceFlags {
                partition: Some("debug".into()),
                time: Some("10".into()),
                cpus_per_task: Some(2),
                gpus_per_task: Some(1),
            },
        )
        .unwrap();
        let files = vec![
            (PathBuf::from("/e/a.ron"), "a".to_string()),
            (PathBuf::from("/e/it's.ron"), "b".to_string()),
        ];
        let plan = SweepPlan::new(
            Path::new("/bin/slicedscore"),
            Path::new("/logs"),
            "S",
            &files,
            &[0, 1],
            res,
        )
        .unwrap();
        let text = script(&plan, &[0, 1, 3]).unwrap();
        let expected = r#"#!/bin/bash
# slicedscore sweep: 2 files x 2 seeds, one array task per (file, seed).
# Task i runs `slicedscore run FILE --seed K --run-dir DIR --resume-existing`:
# a requeued or resubmitted task continues its run from the last checkpoint,
# a finished run is left as it is. Collect with `slicedscore report SWEEP_DIR`.
#SBATCH --job-name=slicedscore-sweep
#SBATCH --array=0-1,3
#SBATCH --output=/logs/sweeps/S/slurm/%A_%a.out
#SBATCH --open-mode=append
#SBATCH --requeue
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=2
#SBATCH --gpus-per-task=1
#SBATCH --partition=debug
#SBATCH --time=0-00:10:00
set -euo pipefail
case "${SLURM_ARRAY_TASK_ID:?not started as a Slurm array task}" in
  0) file='/e/a.ron'; seed=0; run_dir='/logs/a/S-seed0' ;;
  1) file='/e/a.ron'; seed=1; run_dir='/logs/a/S-seed1' ;;
  2) file='/e/it'\''s.ron'; seed=0; run_dir='/logs/b/S-seed0' ;;
  3) file='/e/it'\''s.ron'; seed=1; run_dir='/logs/b/S-seed1' ;;
  *) echo "no task $SLURM_ARRAY_TASK_ID in this sweep" >&2; exit 2 ;;
esac
# The run's thread pool uses the CPUs Slurm gave the task.
export RAYON_NUM_THREADS="${SLURM_CPUS_PER_TASK:-1}"
echo "$(date -Is) task $SLURM_ARRAY_TASK_ID on $(hostname): $file seed $seed -> $run_dir"
exec '/bin/slicedscore' run "$file" --seed "$seed" --run-dir "$run_dir" --resume-existing --no-progress --logs '/logs'
"#;
        assert_eq!(text, expected);
    }
}
