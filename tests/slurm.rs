//! Sweeps on a real Slurm cluster: `sweep --launcher slurm` submits a job
//! array, `report` on the sweep folder lists pending and cancelled runs and
//! then gives the same table as a local sweep of the same files and seeds,
//! and `sweep --resubmit` runs only the missing pair; a task requeued by
//! Slurm while it trains continues its run. Also (without Slurm): what an
//! array task runs (`run --seed --run-dir --resume-existing`) continues a
//! stopped run exactly when it is started again.
//!
//! The Slurm test needs a cluster: when `sinfo` does not answer and the
//! test runs as root, it starts a single-node one with
//! `scripts/slurm-single-node.sh start` (and stops what it started);
//! otherwise it fails saying so. `.ci/run` starts the cluster before the tests.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{binary, read_json, s, success_stdout, text, write_file, ExpSpec};

/// Runs `slicedscore args` (one Rayon thread, as each Slurm task gets) and
/// returns stdout, failing with both streams otherwise.
fn ok(args: &[&str]) -> String {
    let out = binary()
        .env("RAYON_NUM_THREADS", "1")
        .args(args)
        .output()
        .expect("slicedscore starts");
    success_stdout(args, &out)
}

/// Runs a command and returns (success, stdout + stderr).
fn sh(cmd: &str, args: &[&str]) -> (bool, String) {
    match Command::new(cmd).args(args).output() {
        Ok(o) => (
            o.status.success(),
            format!("{}{}", text(&o.stdout), text(&o.stderr)),
        ),
        Err(e) => (false, format!("{cmd}: {e}")),
    }
}

/// Runs a Slurm command that must succeed.
fn slurm(cmd: &str, args: &[&str]) -> String {
    let (good, out) = sh(cmd, args);
    assert!(good, "{cmd} {args:?} failed: {out}");
    out
}

/// Stops the daemons the test started, when it started them.
struct Cluster {
    started: bool,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.started {
            let (_, out) = sh("bash", &[s(&script()), "stop"]);
            eprintln!("{out}");
        }
    }
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/slurm-single-node.sh")
}

/// Whether the node answers as usable (`idle`, `mix` or `alloc`).
fn node_up() -> Result<(), String> {
    let (good, out) = sh("sinfo", &["--noheader", "--format=%t"]);
    if !good {
        return Err(out.trim().to_string());
    }
    if out.lines().any(|l| {
        let l = l.trim();
        l.starts_with("idle") || l.starts_with("mix") || l.starts_with("alloc")
    }) {
        Ok(())
    } else {
        Err(format!("no usable node: sinfo says {:?}", out.trim()))
    }
}

/// A cluster to submit to: the running one, or a single-node one started
/// now (as root); otherwise the test fails with the reason.
fn cluster() -> Cluster {
    let Err(why) = node_up() else {
        return Cluster { started: false };
    };
    let (_, uid) = sh("id", &["-u"]);
    if uid.trim() != "0" {
        panic!(
            "Slurm does not answer here ({why}). Start a single-node cluster with \
             `sudo scripts/slurm-single-node.sh start` (what .ci/run does), then run the test again."
        );
    }
    eprintln!("Slurm does not answer ({why}); starting a single-node cluster");
    let (good, out) = sh("bash", &[s(&script()), "start"]);
    let cluster = Cluster { started: true };
    assert!(
        good,
        "Slurm could not be started by scripts/slurm-single-node.sh start:\n{out}"
    );
    if let Err(why) = node_up() {
        panic!("Slurm was started but does not answer: {why}\n{out}");
    }
    cluster
}

/// Two short experiments (≈0.1 s each); the `slurm` section holds every
/// array at submission (`sbatch --hold`) so the test sees pending tasks.
fn experiments(dir: &Path) -> Vec<PathBuf> {
    [("ssm_vr", r#"{"ssm_vr": (projections: 1)}"#), ("dsm", r#"{"dsm": (sigma: 0.1)}"#)]
        .iter()
        .map(|(o, objective)| {
            let spec = ExpSpec {
                name: format!("slurm_{o}"),
                objective: objective.to_string(),
                train_size: 500,
                val_size: 200,
                test_size: 200,
                model: r#"{"mlp_score": (hidden: [16], activation: Softplus)}"#.into(),
                iterations: 100,
                eval_every: 50,
                ..ExpSpec::default()
            };
            let ron = spec.ron().replace(
                "    eval_every: 50,\n",
                "    eval_every: 50,\n    sampling: (chains: 0),\n    slurm: Some((extra: [\"--hold\"])),\n",
            );
            write_file(dir, &format!("{o}.ron"), &ron)
        })
        .collect()
}

/// The table: the lines before `summary:` (local sweep) or `tasks:` (report).
fn table(out: &str) -> String {
    out.lines()
        .take_while(|l| !l.starts_with("summary:") && !l.starts_with("tasks:"))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// The value after `prefix` on the line starting with it.
fn line_after<'a>(out: &'a str, prefix: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no line `{prefix}…` in:\n{out}"))
}

/// Waits until job `job` has left the queue.
fn wait_for(job: &str, sweep: &Path) {
    let start = Instant::now();
    loop {
        let (_, out) = sh(
            "squeue",
            &["--noheader", "--array", &format!("--jobs={job}")],
        );
        if out.trim().is_empty() || out.contains("Invalid job id") {
            return;
        }
        if start.elapsed() > Duration::from_secs(90) {
            let logs = std::fs::read_dir(sweep.join("slurm"))
                .map(|d| {
                    d.filter_map(|e| e.ok())
                        .map(|e| {
                            let p = e.path();
                            format!(
                                "{}:\n{}",
                                p.display(),
                                std::fs::read_to_string(&p).unwrap_or_default()
                            )
                        })
                        .collect::<Vec<_>>()
                        .join("\n")
                })
                .unwrap_or_default();
            panic!("Slurm job {job} still queued after 90 s:\n{out}\n{logs}");
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn a_slurm_sweep_reports_like_a_local_one_and_resubmits_the_missing_pair() {
    let _cluster = cluster();
    let tmp = tempfile::tempdir().unwrap();
    let files = experiments(tmp.path());
    let (a, b) = (s(&files[0]), s(&files[1]));
    let local = ok(&[
        "sweep",
        a,
        b,
        "--seeds",
        "0,1",
        "--no-progress",
        "--logs",
        s(&tmp.path().join("local")),
    ]);
    let expected = table(&local);
    assert!(expected.contains("2/2"), "{local}");

    let logs = tmp.path().join("slurm");
    let submitted = ok(&[
        "sweep",
        a,
        b,
        "--seeds",
        "0,1",
        "--launcher",
        "slurm",
        "--cpus-per-task",
        "1",
        "--logs",
        s(&logs),
    ]);
    let job = line_after(&submitted, "submitted Slurm job ")
        .split(':')
        .next()
        .unwrap()
        .to_string();
    assert!(
        submitted.contains("4 array tasks of 2 files × 2 seeds"),
        "{submitted}"
    );
    let sweep = PathBuf::from(line_after(
        &submitted,
        "collect the results: slicedscore report ",
    ));
    assert!(sweep.join("plan.json").is_file() && sweep.join("sweep.sbatch").is_file());

    // Held: every task is listed as pending, none as missing.
    let report = ok(&["report", s(&sweep)]);
    assert!(report.contains("tasks: 4 pending"), "{report}");
    for i in 0..4 {
        assert!(
            report.contains(&format!("pending: in Slurm job {job}_{i}")),
            "{report}"
        );
    }
    // Cancel one pair before it starts: the report says so and offers the resubmission.
    slurm("scancel", &[&format!("{job}_3")]);
    slurm("scontrol", &["release", &job]);
    wait_for(&job, &sweep);
    let report = ok(&["report", s(&sweep)]);
    assert!(
        report.contains("tasks: 3 finished, 1 cancelled"),
        "{report}"
    );
    assert!(report.contains("dsm seed 1: cancelled:"), "{report}");
    assert!(
        report.contains(&format!(
            "resubmit the 1 run neither finished nor queued: slicedscore sweep --resubmit {}",
            sweep.display()
        )),
        "{report}"
    );
    assert_ne!(table(&report), expected);

    // One command resubmits only the missing pair.
    let again = ok(&["sweep", "--resubmit", s(&sweep)]);
    assert!(
        again.contains("1 array task of 2 files × 2 seeds"),
        "{again}"
    );
    let job2 = line_after(&again, "submitted Slurm job ")
        .split(':')
        .next()
        .unwrap()
        .to_string();
    let plan = read_json(&sweep.join("plan.json"));
    assert_eq!(
        plan["submissions"][1]["indices"],
        serde_json::json!([3]),
        "{plan}"
    );
    slurm("scontrol", &["release", &job2]);
    wait_for(&job2, &sweep);

    // The same table as the local sweep: the runs are deterministic per seed.
    let report = ok(&["report", s(&sweep)]);
    assert!(report.contains("tasks: 4 finished"), "{report}");
    assert!(!report.contains("resubmit"), "{report}");
    assert_eq!(
        table(&report),
        expected,
        "slurm report:\n{report}\nlocal sweep:\n{local}"
    );
    assert!(sweep.join("summary.csv").is_file());
    let again = ok(&["sweep", "--resubmit", s(&sweep)]);
    assert!(again.starts_with("nothing to resubmit"), "{again}");

    requeued_task_continues(tmp.path());
}

/// A task requeued by Slurm while it trains (SIGTERM, then the same array
/// task starts again) continues its run from the checkpoint and ends with
/// the metrics of an uninterrupted run.
fn requeued_task_continues(dir: &Path) {
    let spec = ExpSpec {
        name: "slurm_requeue".into(),
        model: r#"{"mlp_score": (hidden: [16], activation: Softplus)}"#.into(),
        train_size: 500,
        val_size: 200,
        test_size: 200,
        iterations: 60000,
        eval_every: 1000,
        ..ExpSpec::default()
    };
    let ron = spec.ron().replace(
        "    eval_every: 1000,\n",
        "    eval_every: 1000,\n    sampling: (chains: 0),\n",
    );
    let file = write_file(dir, "long.ron", &ron);
    let logs = dir.join("requeue");
    let out = ok(&[
        "sweep",
        s(&file),
        "--seeds",
        "3",
        "--launcher",
        "slurm",
        "--logs",
        s(&logs),
    ]);
    let job = line_after(&out, "submitted Slurm job ")
        .split(':')
        .next()
        .unwrap()
        .to_string();
    let sweep = PathBuf::from(line_after(&out, "collect the results: slicedscore report "));
    let plan = read_json(&sweep.join("plan.json"));
    let run_dir = PathBuf::from(plan["tasks"][0]["run_dir"].as_str().unwrap());
    // Requeue once the run has a checkpoint and is still training.
    let start = Instant::now();
    loop {
        let rec = std::fs::read_to_string(run_dir.join("metrics.json")).unwrap_or_default();
        if run_dir.join("last.safetensors").is_file() && rec.contains("\"running\"") {
            break;
        }
        assert!(
            !rec.contains("\"finished\""),
            "the run finished before it could be requeued; make it longer"
        );
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no checkpoint in {}",
            run_dir.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let task = format!("{job}_0");
    slurm("scontrol", &["requeue", &task]);
    // Slurm delays a requeued job's start (BeginTime): start it now, once
    // it is pending again (until then the update is refused).
    let out = sweep.join("slurm").join(format!("{task}.out"));
    let start = Instant::now();
    loop {
        let log = std::fs::read_to_string(&out).unwrap_or_default();
        if log.matches(" task 0 on ").count() >= 2 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{task} did not start again after the requeue:\n{log}"
        );
        let _ = sh(
            "scontrol",
            &["update", &format!("JobId={task}"), "StartTime=now"],
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let start = Instant::now();
    loop {
        let rec = std::fs::read_to_string(run_dir.join("metrics.json")).unwrap_or_default();
        let (_, queued) = sh(
            "squeue",
            &["--noheader", "--array", &format!("--jobs={job}")],
        );
        if rec.contains("\"finished\"") && !queued.contains(&task) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "{task} did not finish after the requeue:\n{}",
            std::fs::read_to_string(&out).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = std::fs::read_to_string(&out).unwrap();
    for said in ["DUE TO JOB REQUEUE", "interrupted at step", "continuing"] {
        assert!(
            log.contains(said),
            "no `{said}` in {}:\n{log}",
            out.display()
        );
    }
    let continued = read_json(&run_dir.join("metrics.json"));
    assert_eq!(continued["status"], "finished", "{log}");
    let whole = dir.join("whole");
    ok(&[
        "run",
        s(&file),
        "--seed",
        "3",
        "--run-dir",
        s(&whole),
        "--no-progress",
    ]);
    let whole = read_json(&whole.join("metrics.json"));
    assert_eq!(
        continued["test"], whole["test"],
        "requeued:\n{continued}\nuninterrupted:\n{whole}"
    );
    let report = ok(&["report", s(&sweep)]);
    assert!(report.contains("tasks: 1 finished"), "{report}");
}

#[test]
fn an_array_task_started_again_continues_its_run_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let file = experiments(tmp.path()).remove(0);
    let f = s(&file);
    let task = tmp.path().join("task");
    let whole = tmp.path().join("whole");
    let args = |dir: &Path| {
        vec![
            "run",
            f,
            "--seed",
            "7",
            "--run-dir",
            s(dir),
            "--resume-existing",
            "--no-progress",
        ]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>()
    };
    // First start: stopped at step 50 as a preempted task is (exit 130).
    let mut first = args(&task);
    first.extend(["--stop-after".to_string(), "50".to_string()]);
    let out = binary().args(&first).output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", text(&out.stderr));
    let rec = read_json(&task.join("metrics.json"));
    assert_eq!(rec["status"], "interrupted", "{rec}");
    assert_eq!(rec["seed"], 7, "{rec}");
    // Started again (requeued): continues, and ends as the uninterrupted run.
    let refs = |v: &[String]| v.iter().map(String::as_str).collect::<Vec<_>>().join(" ");
    let out = binary().args(args(&task)).output().unwrap();
    assert!(
        out.status.success(),
        "{}: {}",
        refs(&args(&task)),
        text(&out.stderr)
    );
    assert!(
        text(&out.stderr).contains("continuing"),
        "{}",
        text(&out.stderr)
    );
    let out = binary().args(args(&whole)).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (t, w) = (
        read_json(&task.join("metrics.json")),
        read_json(&whole.join("metrics.json")),
    );
    assert_eq!(t["status"], "finished");
    assert_eq!(t["test"], w["test"], "continued:\n{t}\nuninterrupted:\n{w}");
    // Started once more: already finished, nothing done.
    let out = binary().args(args(&task)).output().unwrap();
    assert!(
        text(&out.stdout).contains("(already finished)"),
        "{}",
        text(&out.stdout)
    );
    // A folder holding another seed's run is refused, not touched.
    let mut other = args(&task);
    other[3] = "8".into();
    let out = binary().args(&other).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("with seed 7, not `slurm_ssm_vr` with seed 8"),
        "{}",
        text(&out.stderr)
    );
}

/// Runs `slicedscore args` with `PATH` emptied (no Slurm commands) and
/// returns (exit code, stdout, stderr).
fn without_slurm(args: &[&str]) -> (Option<i32>, String, String) {
    let out = binary().env("PATH", "").args(args).output().unwrap();
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

#[test]
fn dry_runs_print_the_script_and_errors_name_the_flag_or_command() {
    let tmp = tempfile::tempdir().unwrap();
    let file = experiments(tmp.path()).remove(0);
    let logs = tmp.path().join("logs");
    let base = ["sweep", s(&file), "--seeds", "0,1", "--logs", s(&logs)];
    fn with<'a>(base: &[&'a str], more: &[&'a str]) -> Vec<&'a str> {
        [base, more].concat()
    }

    let (code, script, err) = without_slurm(&with(
        &base,
        &["--launcher", "slurm", "--dry-run", "--time", "90"],
    ));
    assert_eq!(code, Some(0), "{err}");
    assert!(script.starts_with("#!/bin/bash\n"), "{script}");
    for line in [
        "#SBATCH --array=0-1",
        "#SBATCH --time=0-01:30:00",
        "#SBATCH --hold",
        "--resume-existing",
    ] {
        assert!(script.contains(line), "no `{line}` in:\n{script}");
    }
    assert!(!script.contains("--gpus-per-task"), "{script}");
    assert!(!logs.exists(), "a dry run writes nothing");

    let (code, _, err) = without_slurm(&with(&base, &["--launcher", "slurm"]));
    assert_eq!(code, Some(1));
    assert!(
        err.contains("`sbatch` not found") && err.contains("--dry-run"),
        "{err}"
    );
    let (code, _, err) = without_slurm(&with(&base, &["--launcher", "slurm", "--time", "1h"]));
    assert_eq!(code, Some(1));
    assert!(err.contains("--time: \"1h\" is not a Slurm time"), "{err}");
    let (code, _, err) = without_slurm(&with(&base, &["--partition", "gpu"]));
    assert_eq!(code, Some(1));
    assert!(
        err.contains("--partition only applies to `--launcher slurm`"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}
