//! `slicedscore sample`: CSV output, MALA for energy models, annealing,
//! seeds, image grids for image tasks, fitted models, and clear errors for
//! bad input (never a panic).

mod common;

use std::path::{Path, PathBuf};

use common::{run_binary, s, text, train_file, write_file, ExpSpec};
use slicedscore::points_csv;

/// `sample --run <run> -n <n>` followed by `extra`.
fn sample_args<'a>(run: &'a str, n: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["sample", "--run", run, "-n", n];
    args.extend_from_slice(extra);
    args
}

/// Runs `args`, expects success; returns (stdout, stderr).
fn ok(args: &[&str]) -> (String, String) {
    let out = run_binary(args);
    let (o, e) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{args:?} failed:\n{e}");
    (o, e)
}

/// Runs `args`, expects a clean failure (exit status 1, or clap's 2 for a
/// malformed argument); returns stderr.
fn fails(args: &[&str]) -> String {
    let out = run_binary(args);
    let e = text(&out.stderr);
    assert!(matches!(out.status.code(), Some(1 | 2)), "{args:?}: {e}");
    assert!(!e.contains("panicked"), "{args:?} panicked:\n{e}");
    assert!(e.contains("error: "), "{e}");
    e
}

/// Trains the experiment text `ron` into `dir/run`.
fn train(dir: &Path, ron: &str) -> PathBuf {
    let file = write_file(dir, "exp.ron", ron);
    let run_dir = dir.join("run");
    train_file(&file, &run_dir);
    run_dir
}

fn quick(model: &str) -> String {
    ExpSpec {
        name: "sample_cli".into(),
        model: model.into(),
        iterations: 40,
        eval_every: 20,
        ..ExpSpec::default()
    }
    .ron()
}

#[test]
fn energy_models_sample_with_and_without_mala() {
    let tmp = tempfile::tempdir().unwrap();
    let run = train(
        tmp.path(),
        &quick(r#"{"mlp_energy": (hidden: [16], activation: Softplus)}"#),
    );
    let r = s(&run);
    let out = tmp.path().join("a.csv");
    let (_, log) = ok(&sample_args(r, "40", &["--steps", "30", "--out", s(&out)]));
    assert!(log.contains("40 samples after 30 Langevin steps"), "{log}");
    let a = points_csv::read_points(&out, 2).unwrap();
    assert_eq!(a.len(), 80);
    // To stdout, with a header; the same seed gives the same samples.
    let (csv, _) = ok(&["sample", "--run", r, "-n", "40", "--steps", "30"]);
    assert!(csv.starts_with("x0,x1\n"), "{csv}");
    assert_eq!(
        points_csv::parse_points(&csv, 2, Path::new("-")).unwrap(),
        a
    );
    let (other, _) = ok(&[
        "sample", "--run", r, "-n", "40", "--steps", "30", "--seed", "1",
    ]);
    assert_ne!(other, csv);
    // MALA and annealing.
    let (_, log) = ok(&sample_args(
        r,
        "20",
        &["--steps", "10", "--mala", "--step-size", "0.05"],
    ));
    assert!(log.contains("MALA acceptance"), "{log}");
    let (csv, log) = ok(&sample_args(
        r,
        "10",
        &[
            "--steps",
            "10",
            "--annealed",
            "1.0..0.1:3",
            "--init",
            "gaussian",
        ],
    ));
    assert!(log.contains("after 30 Langevin steps"), "{log}");
    assert_eq!(csv.lines().count(), 11);
}

#[test]
fn bad_input_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let run = train(
        tmp.path(),
        &quick(r#"{"mlp_score": (hidden: [16], activation: Softplus)}"#),
    );
    let r = s(&run);
    let e = fails(&["sample", "--run", r, "-n", "5", "--mala"]);
    assert!(e.contains("MALA needs a log-density"), "{e}");
    let e = fails(&["sample", "--run", r, "-n", "5", "--annealed", "0.1..1:3"]);
    assert!(e.contains("σ_max ≥ σ_min"), "{e}");
    let e = fails(&["sample", "--run", r, "-n", "5", "--annealed", "fast"]);
    assert!(e.contains("σ_max..σ_min:L"), "{e}");
    let e = fails(&["sample", "--run", r, "-n", "0"]);
    assert!(e.contains("-n: must be between 1"), "{e}");
    let e = fails(&["sample", "--run", r, "-n", "5", "--step-size", "0"]);
    assert!(e.contains("--step-size: must be finite and > 0"), "{e}");
    let e = fails(&sample_args(
        r,
        "5",
        &["--init", "noise", "--init-std", "0"],
    ));
    assert!(e.contains("standard deviation"), "{e}");
    // A step size far too large for the model: the step and chain are named.
    let e = fails(&sample_args(
        r,
        "5",
        &["--steps", "500", "--step-size", "1e6"],
    ));
    assert!(e.contains("not finite at level 0, step"), "{e}");
    // An output file in a missing folder: nothing half-written, the path named.
    let bad_out = tmp.path().join("no/such/dir/s.csv");
    let e = fails(&sample_args(
        r,
        "5",
        &["--steps", "2", "--out", s(&bad_out)],
    ));
    assert!(e.contains(s(&bad_out)), "{e}");
    let e = fails(&["sample", "--run", s(&tmp.path().join("nope")), "-n", "5"]);
    assert!(e.contains("experiment.ron"), "{e}");
}

#[test]
fn image_runs_get_a_grid_and_fitted_models_sample_too() {
    let tmp = tempfile::tempdir().unwrap();
    let images = tmp.path().join("images");
    std::fs::create_dir_all(&images).unwrap();
    let run = train(
        &images,
        r#"Experiment(
    name: "nice_tiny",
    task: {"images": (source: Digits, sm_eval_points: 10, samples: 4)},
    model: {"nice": (couplings: 2, hidden_layers: 1, hidden_units: 16, activation: Softplus, prior: Logistic)},
    objective: {"mle": ()},
    projection: {"rademacher": ()},
    optimizer: Adam(lr: 0.001),
    batch_size: 16,
    iterations: 2,
    eval_every: 2,
    sampling: (chains: 8, steps: 5),
)
"#,
    );
    // The run folder has the Langevin grid beside the flow's own samples.
    assert!(run.join("langevin_samples.png").exists());
    let out = tmp.path().join("digits.csv");
    let (_, log) = ok(&sample_args(
        s(&run),
        "9",
        &["--steps", "5", "--out", s(&out)],
    ));
    // The logit is not affine: the CSV is in the model's coordinates, and says so.
    assert!(log.contains("model's coordinates"), "{log}");
    assert_eq!(points_csv::read_points(&out, 64).unwrap().len(), 9 * 64);
    let png = std::fs::read(out.with_extension("png")).unwrap();
    let info = png::Decoder::new(std::io::Cursor::new(png))
        .read_info()
        .unwrap();
    assert!(info.info().width > 8 && info.info().height > 8);
    // `score` refuses the data's units there and points to --internal.
    let input = write_file(tmp.path(), "one.csv", &vec!["0.5"; 64].join(","));
    let e = fails(&["score", "--run", s(&run), "--input", s(&input)]);
    assert!(e.contains("--internal") && e.contains("logit"), "{e}");
    ok(&[
        "score",
        "--run",
        s(&run),
        "--input",
        s(&input),
        "--internal",
    ]);

    // A kernel estimator, refitted from its checkpoint, samples as well.
    let stein = tmp.path().join("stein");
    std::fs::create_dir_all(&stein).unwrap();
    let ron = ExpSpec {
        name: "stein".into(),
        model: r#"{"stein": (samples: 100)}"#.into(),
        iterations: 0,
        eval_every: 1,
        ..ExpSpec::default()
    }
    .ron()
    .replace("    objective: {\"ssm_vr\": (projections: 1)},\n", "")
    .replace("    projection: {\"rademacher\": ()},\n", "");
    let run = train(&stein, &ron);
    let (csv, _) = ok(&["sample", "--run", s(&run), "-n", "10", "--steps", "20"]);
    assert_eq!(csv.lines().count(), 11);
}
