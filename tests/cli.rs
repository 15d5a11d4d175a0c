//! The `slicedscore` binary: `list`, `check`, `run` and `score`, including
//! the messages for bad input (never a panic).

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use common::{run_binary, s, success_stdout, text, write_file, ExpSpec};
use slicedscore::registry::{
    names, ComponentKind, ModelConfig, ObjectiveConfig, ProjectionConfig, TaskConfig,
};
use slicedscore::run_loader::{load_model, Which};

/// Runs `args`, expects success and returns stdout.
fn ok(args: &[&str]) -> String {
    success_stdout(args, &run_binary(args))
}

/// Runs `args`, expects a clean failure (non-zero exit, no panic) and
/// returns stderr.
fn fails(args: &[&str]) -> String {
    let out = run_binary(args);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(
        !out.status.success(),
        "slicedscore {args:?} succeeded:\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
    assert!(
        !stderr.contains("panicked"),
        "slicedscore {args:?} panicked:\n{stderr}"
    );
    assert!(stderr.contains("error: "), "{args:?}: {stderr}");
    stderr
}

/// `heading` → plugin names listed under it, from `slicedscore list`.
fn listed(out: &str, heading: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut inside = false;
    for line in out.lines() {
        if !line.starts_with(' ') {
            inside = line.trim_end() == heading;
            continue;
        }
        // Entries are `  name  summary`; examples are indented further.
        if inside && line.len() > 2 && !line[2..].starts_with(' ') {
            names.insert(line.split_whitespace().next().unwrap().to_string());
        }
    }
    names
}

fn registered<C: ?Sized + ComponentKind>() -> BTreeSet<String> {
    names::<C>().into_iter().map(String::from).collect()
}

#[test]
fn list_names_every_plugin_under_its_kind() {
    let out = ok(&["list"]);
    let kinds = [
        ("tasks:", registered::<dyn TaskConfig>(), &["synthetic"][..]),
        (
            "models:",
            registered::<dyn ModelConfig>(),
            &["mlp_energy", "mlp_score"][..],
        ),
        (
            "objectives:",
            registered::<dyn ObjectiveConfig>(),
            &["dsm", "sm", "ssm", "ssm_vr"][..],
        ),
        (
            "projections:",
            registered::<dyn ProjectionConfig>(),
            &["gaussian", "rademacher", "sphere"][..],
        ),
    ];
    for (heading, all, required) in kinds {
        let got = listed(&out, heading);
        for r in required {
            assert!(got.contains(*r), "`{r}` not under `{heading}`:\n{out}");
        }
        assert_eq!(
            got, all,
            "`{heading}` lists other names than registered:\n{out}"
        );
    }
}

#[test]
fn check_accepts_every_shipped_experiment() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "ron"))
        .map(|p| format!("experiments/{}", p.file_name().unwrap().to_str().unwrap()))
        .collect();
    files.sort();
    assert!(
        files.iter().any(|f| f.ends_with("quickstart.ron")),
        "{files:?}"
    );
    let mut args = vec!["check"];
    args.extend(files.iter().map(String::as_str));
    let out = ok(&args);
    for f in &files {
        assert!(
            out.contains(&format!("{f}: ok")),
            "{f} not reported ok:\n{out}"
        );
    }
}

/// Writes `spec` (edited by `edit`) to `dir/file`, runs `check` on it,
/// expects a clean failure and returns (path, stderr).
fn check_bad(dir: &Path, file: &str, contents: &str) -> (PathBuf, String) {
    let path = write_file(dir, file, contents);
    let err = fails(&["check", s(&path)]);
    assert!(
        err.contains(s(&path)),
        "{file}: the path is not named:\n{err}"
    );
    (path, err)
}

fn spec_with(edit: impl FnOnce(&mut ExpSpec)) -> String {
    let mut spec = ExpSpec::default();
    edit(&mut spec);
    spec.ron()
}

/// The `(line, column)` right after `path:` in `err`, if it is there.
fn position_after(err: &str, path: &Path) -> Option<(usize, usize)> {
    let rest = &err[err.find(&format!("{}:", s(path)))? + s(path).len() + 1..];
    let mut parts = rest.splitn(3, ':');
    let line = parts.next()?.parse().ok()?;
    let column = parts.next()?.parse().ok()?;
    Some((line, column))
}

#[test]
fn check_rejects_bad_files_naming_the_problem() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();

    // Malformed RON: path:line:column of the offending line.
    let good = ExpSpec::default().ron();
    let line = good
        .lines()
        .position(|l| l.trim_start().starts_with("iterations:"))
        .unwrap()
        + 1;
    let (path, err) = check_bad(
        dir,
        "malformed.ron",
        &good.replace("iterations: ", "iterations "),
    );
    let (l, c) = position_after(&err, &path).unwrap_or_else(|| panic!("no line:column:\n{err}"));
    assert_eq!(l, line, "{err}");
    assert!(c >= 1, "{err}");
    // Unbalanced braces (the file ends early) also carry a position.
    let (path, err) = check_bad(dir, "truncated.ron", &good[..good.len() / 2]);
    assert!(position_after(&err, &path).is_some(), "{err}");

    // Unknown plugin name: the registered ones are listed.
    let (_, err) = check_bad(
        dir,
        "unknown.ron",
        &spec_with(|e| e.objective = r#"{"nope": ()}"#.into()),
    );
    assert!(err.contains("unknown objective `nope`"), "{err}");
    for name in names::<dyn ObjectiveConfig>() {
        assert!(err.contains(name), "objective `{name}` not listed:\n{err}");
    }
    let (_, err) = check_bad(
        dir,
        "unknown_model.ron",
        &spec_with(|e| e.model = r#"{"mlp": ()}"#.into()),
    );
    assert!(err.contains("unknown model `mlp`"), "{err}");
    assert!(
        err.contains("mlp_score") && err.contains("mlp_energy"),
        "{err}"
    );

    // Out-of-range plugin settings name the dotted field.
    let cases = [
        (
            "projections0.ron",
            spec_with(|e| e.objective = r#"{"ssm": (projections: 0)}"#.into()),
            "objective.ssm.projections",
        ),
        (
            "vr_projections0.ron",
            spec_with(|e| e.objective = r#"{"ssm_vr": (projections: 0)}"#.into()),
            "objective.ssm_vr.projections",
        ),
        (
            "sigma0.ron",
            spec_with(|e| e.objective = r#"{"dsm": (sigma: 0.0)}"#.into()),
            "objective.dsm.sigma",
        ),
        (
            "sigma_negative.ron",
            spec_with(|e| e.objective = r#"{"dsm": (sigma: -1.0)}"#.into()),
            "objective.dsm.sigma",
        ),
        ("batch0.ron", spec_with(|e| e.batch_size = 0), "batch_size"),
        (
            "gaussian_dim0.ron",
            spec_with(|e| e.target = "Gaussian(dim: 0)".into()),
            "task.synthetic.target.Gaussian.dim",
        ),
        (
            "lr0.ron",
            spec_with(|e| e.optimizer = "Adam(lr: 0.0)".into()),
            "optimizer.lr",
        ),
        (
            "eval_every0.ron",
            spec_with(|e| e.eval_every = 0),
            "eval_every",
        ),
    ];
    for (file, contents, field) in cases {
        let (_, err) = check_bad(dir, file, &contents);
        assert!(err.contains(field), "{file}: `{field}` not named:\n{err}");
    }
    let (_, err) = check_bad(
        dir,
        "sigma_value.ron",
        &spec_with(|e| e.objective = r#"{"dsm": (sigma: -1.0)}"#.into()),
    );
    assert!(err.contains("-1"), "the bad value is not shown:\n{err}");

    // Unknown fields (typos) in a plugin's settings are named, with a position.
    let typos = [
        (
            "typo_objective.ron",
            spec_with(|e| e.objective = r#"{"ssm": (projectons: 1)}"#.into()),
            "projectons",
        ),
        (
            "typo_model.ron",
            spec_with(|e| e.model = r#"{"mlp_score": (hiden: [32])}"#.into()),
            "hiden",
        ),
        (
            "typo_target.ron",
            spec_with(|e| e.target = "Mixture2d(components: 8, radius: 2.0, sdt: 0.3)".into()),
            "sdt",
        ),
        (
            "typo_top.ron",
            good.replace("    eval_every:", "    eval_evry: 5,\n    eval_every:"),
            "eval_evry",
        ),
    ];
    for (file, contents, field) in typos {
        let (path, err) = check_bad(dir, file, &contents);
        assert!(err.contains(field), "{file}: `{field}` not named:\n{err}");
        assert!(
            position_after(&err, &path).is_some(),
            "{file}: no position:\n{err}"
        );
    }

    // A missing file is named.
    let missing = dir.join("no_such_experiment.ron");
    let err = fails(&["check", s(&missing)]);
    assert!(err.contains(s(&missing)), "{err}");

    // One bad file among good ones fails the whole check.
    let good_path = write_file(dir, "good.ron", &good);
    ok(&["check", s(&good_path)]);
    let err = fails(&["check", s(&good_path), s(&missing)]);
    assert!(err.contains(s(&missing)), "{err}");
}

#[test]
fn run_then_score_a_csv() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = ExpSpec {
        iterations: 60,
        eval_every: 20,
        ..ExpSpec::default()
    };
    let file = spec.write(tmp.path(), "tiny.ron");
    let run = tmp.path().join("run");
    let out = ok(&["run", s(&file), "--run-dir", s(&run), "--no-progress"]);
    assert!(out.contains(&format!("run folder: {}", s(&run))), "{out}");
    assert!(out.contains("test/relative_fisher_divergence = "), "{out}");
    for f in [
        "experiment.ron",
        "metrics.json",
        "best.safetensors",
        "last.safetensors",
    ] {
        assert!(run.join(f).is_file(), "{f} missing after `run`");
    }

    let points = [[0.5, -1.0], [2.0, 0.25], [-1.5, 1.5]];
    let csv = write_file(
        tmp.path(),
        "pts.csv",
        "x0,x1\n0.5,-1.0\n2.0, 0.25\n\n-1.5,1.5\n",
    );
    let loaded = load_model(&run, Which::Best).unwrap_or_else(|e| panic!("{e}"));
    let flat: Vec<f64> = points.iter().flatten().copied().collect();
    let expected =
        slicedscore::plugins::tasks::synthetic::model_scores(&loaded.dev, &*loaded.model, &flat, 2);
    let out = ok(&["score", "--run", s(&run), "--input", s(&csv)]);
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("score0,score1"), "{out}");
    let rows: Vec<Vec<f64>> = lines
        .map(|l| {
            l.split(',')
                .map(|v| v.parse().unwrap_or_else(|e| panic!("{v:?} in {l:?}: {e}")))
                .collect()
        })
        .collect();
    assert_eq!(rows.len(), 3, "{out}");
    let got: Vec<f64> = rows
        .iter()
        .inspect(|r| assert_eq!(r.len(), 2, "{out}"))
        .flatten()
        .copied()
        .collect();
    common::assert_close(&got, &expected, 1e-12, 1e-300, "scores from the CLI");
    assert!(got.iter().all(|v| v.is_finite()));

    // `--checkpoint last` uses the last checkpoint.
    let last = load_model(&run, Which::Last).unwrap();
    let expected_last =
        slicedscore::plugins::tasks::synthetic::model_scores(&last.dev, &*last.model, &flat, 2);
    let out = ok(&[
        "score",
        "--run",
        s(&run),
        "--input",
        s(&csv),
        "--checkpoint",
        "last",
    ]);
    let got_last: Vec<f64> = out
        .lines()
        .skip(1)
        .flat_map(|l| {
            l.split(',')
                .map(|v| v.parse::<f64>().unwrap())
                .collect::<Vec<_>>()
        })
        .collect();
    common::assert_close(&got_last, &expected_last, 1e-12, 1e-300, "last scores");

    // Bad CSVs name the file and the line.
    let wide = write_file(tmp.path(), "wide.csv", "x0,x1\n1,2\n1,2,3\n");
    let err = fails(&["score", "--run", s(&run), "--input", s(&wide)]);
    assert!(err.contains(&format!("{}:3", s(&wide))), "{err}");
    assert!(err.contains("expected 2 values"), "{err}");
    let nan = write_file(tmp.path(), "word.csv", "1,2\n3,abc\n");
    let err = fails(&["score", "--run", s(&run), "--input", s(&nan)]);
    assert!(err.contains(&format!("{}:2", s(&nan))), "{err}");
    let missing = tmp.path().join("none.csv");
    let err = fails(&["score", "--run", s(&run), "--input", s(&missing)]);
    assert!(err.contains(s(&missing)), "{err}");
    // A folder that is not a run is named.
    let err = fails(&["score", "--run", s(tmp.path()), "--input", s(&csv)]);
    assert!(err.contains("experiment.ron"), "{err}");
}

#[test]
fn diverging_run_fails_with_the_step() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = ExpSpec::diverging(10);
    let file = spec.write(tmp.path(), "diverge.ron");
    let run = tmp.path().join("run");
    let err = fails(&["run", s(&file), "--run-dir", s(&run), "--no-progress"]);
    let at = err
        .find("at step ")
        .unwrap_or_else(|| panic!("no step in:\n{err}"));
    let step: String = err[at + 8..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let step: u64 = step
        .parse()
        .unwrap_or_else(|_| panic!("no step number in:\n{err}"));
    assert!((1..=100).contains(&step), "{err}");
    assert!(
        err.contains("diverged at step")
            && (err.contains(": inf") || err.contains(": NaN") || err.contains("e")),
        "{err}"
    );
    let m = common::read_json(&run.join("metrics.json"));
    assert_eq!(m["status"], "diverged");
    assert!(
        m["error"]
            .as_str()
            .unwrap()
            .contains(&format!("at step {step}")),
        "{m:#}"
    );
}

#[test]
fn run_rejects_an_invalid_experiment_before_training() {
    let tmp = tempfile::tempdir().unwrap();
    let file = write_file(
        tmp.path(),
        "bad.ron",
        &spec_with(|e| e.objective = r#"{"ssm": (projections: 0)}"#.into()),
    );
    let run = tmp.path().join("run");
    let err = fails(&["run", s(&file), "--run-dir", s(&run), "--no-progress"]);
    assert!(err.contains("objective.ssm.projections"), "{err}");
    assert!(err.contains(s(&file)), "{err}");
    assert!(
        !run.exists(),
        "a run folder was created for an invalid experiment"
    );
}
