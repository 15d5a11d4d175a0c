//! Runs that survive: resume gives the same numbers as an uninterrupted run,
//! SIGINT/SIGTERM/SIGKILL leave a resumable run, concurrent runs never share
//! a folder, oversized settings and divergence end in clean errors.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{binary, read_json, run_binary, run_options, s, text, ExpSpec};
use slicedscore::device::{Device, Precision};
use slicedscore::experiment::Experiment;
use slicedscore::logging::event_reader::{find_event_files, read_events, read_scalars};
use slicedscore::logging::{HParamsRecord, SessionStatus, ValueKind};
use slicedscore::nn::module::named_params;
use slicedscore::train::checkpoint::Checkpoint;
use slicedscore::train::{
    resume, run_file, RunOptions, TrainError, EXPERIMENT_COPY, LAST_CHECKPOINT, METRICS_FILE,
};

/// The binary started with `args`, its stdout and stderr captured.
fn spawn_captured(args: &[&str]) -> Child {
    binary()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn opts(run_dir: &Path, stop_after: Option<u64>) -> RunOptions {
    RunOptions {
        stop_after,
        ..run_options(run_dir)
    }
}

/// The trained parameters of the run's last checkpoint, as bit patterns.
fn last_params(dir: &Path) -> BTreeMap<String, Vec<u64>> {
    let exp = Experiment::load(&dir.join(EXPERIMENT_COPY)).unwrap();
    let dev = Device::cpu(Precision::F64);
    let mut model = exp.build_model(&dev, 2).unwrap();
    Checkpoint::read(&dir.join(LAST_CHECKPOINT))
        .unwrap()
        .load_params(&dev, &mut model)
        .unwrap();
    named_params(&model)
        .into_iter()
        .map(|(n, p)| (n, p.value.to_host().iter().map(|x| x.to_bits()).collect()))
        .collect()
}

/// `metrics.json` without what depends on the clock or the folder.
fn reproducible_metrics(dir: &Path) -> serde_json::Value {
    let mut m = read_json(&dir.join(METRICS_FILE));
    let o = m.as_object_mut().unwrap();
    for k in ["run_dir", "started", "finished", "updated"] {
        o.remove(k);
    }
    if let Some(t) = o.get_mut("train").and_then(|t| t.as_object_mut()) {
        t.remove("seconds_per_iteration");
        t.remove("seconds");
    }
    m
}

/// Every scalar event of the run folder (all event files), keyed by tag and
/// step; panics on a (tag, step) logged twice.
fn events(dir: &Path) -> BTreeMap<(String, i64), f64> {
    let mut all = BTreeMap::new();
    for f in find_event_files(dir) {
        for e in read_scalars(&f).unwrap() {
            if e.tag.contains("seconds") {
                continue;
            }
            let key = (e.tag.clone(), e.step);
            assert!(
                all.insert(key.clone(), e.value as f64).is_none(),
                "{key:?} is logged twice in {}",
                dir.display()
            );
        }
    }
    all
}

fn spec() -> ExpSpec {
    ExpSpec {
        iterations: 200,
        eval_every: 50,
        ..ExpSpec::default()
    }
}

#[test]
fn stop_and_resume_give_the_numbers_of_an_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    let file = spec().write(tmp.path(), "exp.ron");
    let whole = tmp.path().join("whole");
    run_file(&file, &opts(&whole, None)).unwrap();

    // Stopped off an evaluation step, then mid-way again, then to the end.
    let parts = tmp.path().join("parts");
    for stop in [73, 150] {
        match run_or_resume(&file, &parts, Some(stop)) {
            Err(TrainError::Interrupted { step, run_dir }) => {
                assert_eq!(step, stop);
                assert_eq!(run_dir, parts);
            }
            other => panic!("expected an interrupted run, got {other:?}"),
        }
        let m = read_json(&parts.join(METRICS_FILE));
        assert_eq!(m["status"], "interrupted", "{m:#}");
        assert_eq!(m["step"], stop, "{m:#}");
    }
    let summary = resume(&parts, &opts(&parts, None)).unwrap();
    assert_eq!(summary.steps, 200);

    assert_eq!(last_params(&whole), last_params(&parts));
    assert_eq!(reproducible_metrics(&whole), reproducible_metrics(&parts));
    assert_eq!(events(&whole), events(&parts));
    assert!(find_event_files(&parts).len() >= 2);
    assert!(events(&parts)
        .keys()
        .any(|(tag, _)| tag.starts_with("test/")));

    // TensorBoard sees one session: started once (with the experiment
    // text), its last end a success.
    let mut starts = 0;
    let mut texts = 0;
    let mut ends = Vec::new();
    for f in find_event_files(&parts) {
        for e in read_events(&f).unwrap() {
            for v in e.values {
                match v.kind {
                    ValueKind::Text(_) => texts += 1,
                    ValueKind::HParams(HParamsRecord::SessionStart { .. }) => starts += 1,
                    ValueKind::HParams(HParamsRecord::SessionEnd { status, .. }) => {
                        ends.push(status)
                    }
                    _ => {}
                }
            }
        }
    }
    assert_eq!((starts, texts), (1, 1));
    assert_eq!(ends.last(), Some(&SessionStatus::Success), "{ends:?}");
}

/// Trains `file` into `dir` the first time, resumes it afterwards.
fn run_or_resume(
    file: &Path,
    dir: &Path,
    stop: Option<u64>,
) -> Result<slicedscore::train::RunSummary, TrainError> {
    if dir.join(METRICS_FILE).exists() {
        resume(dir, &opts(dir, stop))
    } else {
        run_file(file, &opts(dir, stop))
    }
}

#[test]
fn run_dir_into_an_existing_run_is_refused_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = ExpSpec {
        iterations: 20,
        eval_every: 10,
        ..ExpSpec::default()
    };
    let file = spec.write(tmp.path(), "exp.ron");
    let dir = tmp.path().join("run");
    run_file(&file, &opts(&dir, None)).unwrap();
    let before = std::fs::read(dir.join(METRICS_FILE)).unwrap();
    let params = last_params(&dir);
    let out = run_binary(&["run", s(&file), "--run-dir", s(&dir), "--no-progress"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("already holds a run") && err.contains("slicedscore resume"),
        "{err}"
    );
    assert_eq!(std::fs::read(dir.join(METRICS_FILE)).unwrap(), before);
    assert_eq!(last_params(&dir), params);
    // Resuming a finished run says so and changes nothing either.
    let out = run_binary(&["resume", s(&dir), "--no-progress"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("finished"), "{err}");
    assert_eq!(std::fs::read(dir.join(METRICS_FILE)).unwrap(), before);
}

/// A long run started by the binary, with its stderr captured.
fn start_long_run(root: &Path, name: &str) -> (Child, PathBuf) {
    let spec = ExpSpec {
        iterations: 1_000_000,
        eval_every: 20,
        ..ExpSpec::default()
    };
    let file = spec.write(root, &format!("{name}.ron"));
    let dir = root.join(name);
    let child = spawn_captured(&["run", s(&file), "--run-dir", s(&dir), "--no-progress"]);
    (child, dir)
}

/// Waits until the run has written a checkpoint after step `after`.
fn wait_for_checkpoint(dir: &Path, after: usize) {
    let start = Instant::now();
    loop {
        if let Ok(c) = Checkpoint::read(&dir.join(LAST_CHECKPOINT)) {
            if c.metadata_usize("step").unwrap_or(0) > after {
                return;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no checkpoint after step {after} in {}",
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal(child: &Child, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Resumes the run in `dir` with the binary, stopping after step `stop`.
fn resume_until(dir: &Path, stop: u64) -> Output {
    run_binary(&[
        "resume",
        s(dir),
        "--no-progress",
        "--stop-after",
        &stop.to_string(),
    ])
}

fn finish(child: Child) -> Output {
    child.wait_with_output().unwrap()
}

#[test]
fn sigint_and_sigterm_stop_with_a_checkpoint_and_a_resume_hint() {
    let tmp = tempfile::tempdir().unwrap();
    for sig in ["-INT", "-TERM"] {
        let (child, dir) = start_long_run(tmp.path(), &format!("run{sig}"));
        wait_for_checkpoint(&dir, 0);
        signal(&child, sig);
        let out = finish(child);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(130), "{sig}: {err}");
        assert!(!err.contains("panicked"), "{err}");
        assert!(
            err.contains(&format!("slicedscore resume {}", dir.display())),
            "{err}"
        );
        let m = read_json(&dir.join(METRICS_FILE));
        assert_eq!(m["status"], "interrupted", "{m:#}");
        let step = m["step"].as_u64().unwrap();
        let ckpt = Checkpoint::read(&dir.join(LAST_CHECKPOINT)).unwrap();
        assert_eq!(ckpt.metadata_usize("step").unwrap() as u64, step);
        // No temporary file is left behind.
        for e in std::fs::read_dir(&dir).unwrap() {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            assert!(!name.contains(".tmp"), "{name} left in {}", dir.display());
        }
        // Resume continues from that step (stopped again a few steps on).
        let out = resume_until(&dir, step + 7);
        assert_eq!(out.status.code(), Some(130), "{}", text(&out.stderr));
        let m = read_json(&dir.join(METRICS_FILE));
        assert_eq!(m["step"].as_u64().unwrap(), step + 7, "{m:#}");
        events(&dir);
    }
}

#[test]
fn a_killed_run_resumes_from_its_last_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut child, dir) = start_long_run(tmp.path(), "killed");
    wait_for_checkpoint(&dir, 40);
    child.kill().unwrap(); // SIGKILL: no handler runs
    finish(child);
    assert_eq!(read_json(&dir.join(METRICS_FILE))["status"], "running");
    let saved = Checkpoint::read(&dir.join(LAST_CHECKPOINT))
        .unwrap()
        .metadata_usize("step")
        .unwrap() as u64;
    let stop = saved + 30;
    let out = resume_until(&dir, stop);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    let m = read_json(&dir.join(METRICS_FILE));
    assert_eq!(m["status"], "interrupted");
    assert_eq!(m["step"].as_u64().unwrap(), stop);
    // Steps logged after the checkpoint by the killed process are not
    // logged again by the resumed one.
    events(&dir);
}

#[test]
fn many_concurrent_runs_get_their_own_folders() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = ExpSpec {
        iterations: 30,
        eval_every: 10,
        train_size: 300,
        val_size: 100,
        test_size: 100,
        ..ExpSpec::default()
    };
    let runs = 8;
    let logs = tmp.path().join("logs");
    let children: Vec<(u64, Child)> = (0..runs)
        .map(|i| {
            let seed = i % 2;
            let file = ExpSpec {
                seed,
                ..spec.clone()
            }
            .write(tmp.path(), &format!("e{i}.ron"));
            let child = spawn_captured(&["run", s(&file), "--logs", s(&logs), "--no-progress"]);
            (seed, child)
        })
        .collect();
    let mut folders = BTreeSet::new();
    let mut by_seed: BTreeMap<u64, Vec<serde_json::Value>> = BTreeMap::new();
    for (seed, child) in children {
        let out = finish(child);
        let stdout = text(&out.stdout);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let dir = stdout
            .lines()
            .find_map(|l| l.strip_prefix("run folder: "))
            .unwrap_or_else(|| panic!("no run folder in {stdout}"));
        let dir = PathBuf::from(dir);
        assert!(folders.insert(dir.clone()), "{} given twice", dir.display());
        let m = read_json(&dir.join(METRICS_FILE));
        assert_eq!(m["seed"], seed, "{}", dir.display());
        let copy = Experiment::load(&dir.join(EXPERIMENT_COPY)).unwrap();
        assert_eq!(copy.seed, seed, "{}", dir.display());
        assert_eq!(find_event_files(&dir).len(), 1, "{}", dir.display());
        by_seed.entry(seed).or_default().push(m["test"].clone());
    }
    assert_eq!(folders.len(), runs as usize);
    // Runs of one seed report the same test metrics: nobody evaluated
    // another process's checkpoint.
    for (seed, tests) in by_seed {
        assert!(
            tests.windows(2).all(|w| w[0] == w[1]),
            "seed {seed}: {tests:?}"
        );
    }
}

#[test]
fn huge_finite_divergence_ends_the_run_as_diverged() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = ExpSpec {
        optimizer: "Adam(lr: 1000.0)".into(),
        iterations: 300,
        eval_every: 20,
        ..ExpSpec::default()
    };
    let file = spec.write(tmp.path(), "exp.ron");
    let dir = tmp.path().join("run");
    let out = run_binary(&["run", s(&file), "--run-dir", s(&dir), "--no-progress"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("diverged at step"), "{err}");
    assert_eq!(read_json(&dir.join(METRICS_FILE))["status"], "diverged");
}

#[test]
fn settings_that_cannot_fit_in_memory_are_refused_by_field() {
    let tmp = tempfile::tempdir().unwrap();
    for (edit, field) in [
        (
            Box::new(|s: &mut ExpSpec| s.batch_size = 100_000_000_000) as Box<dyn Fn(&mut ExpSpec)>,
            "batch_size",
        ),
        (
            Box::new(|s: &mut ExpSpec| s.train_size = 100_000_000_000),
            "train_size",
        ),
        (
            Box::new(|s: &mut ExpSpec| {
                s.model = r#"{"mlp_score": (hidden: [100000000, 100000000])}"#.into()
            }),
            "hidden",
        ),
    ] {
        let mut spec = spec();
        edit(&mut spec);
        let file = spec.write(tmp.path(), "big.ron");
        for cmd in ["check", "run"] {
            let dir = tmp.path().join(format!("run-{field}-{cmd}"));
            let mut args = vec![cmd, s(&file)];
            if cmd == "run" {
                args.extend(["--run-dir", s(&dir), "--no-progress"]);
            }
            let out = run_binary(&args);
            let err = text(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{cmd} {field}: {err}");
            assert!(
                err.contains(field) && err.contains("GiB"),
                "{cmd} {field}: {err}"
            );
            assert!(
                !dir.join(METRICS_FILE).exists(),
                "{cmd} {field}: a run was started"
            );
        }
    }
}
