//! Scores and samples in the data's own units (issue 12, part 3): a run on
//! a CSV of draws from a known Gaussian, PCA-whitened by `tabular`, scored
//! by `slicedscore score` against the true `∇ₓ log p(x)` in the CSV's units;
//! `sample` maps its samples back the same way; data paths resolve against
//! the experiment file, also when the run folder is reloaded from elsewhere.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use slicedscore::data_map::DataMap;
use slicedscore::experiment::Experiment;
use slicedscore::points_csv;
use slicedscore::run_data::RunData;
use slicedscore::train::{run_file, RunOptions};

use common::{s, write_file};

/// The data: N(μ, Σ) with scales 2 and 0.7 and correlation 0.85.
const MU: [f64; 2] = [3.0, -2.0];
const SIGMA: [f64; 4] = [4.0, 1.2, 1.2, 0.5];

fn draws(n: usize, seed: u64) -> Vec<f64> {
    // x = μ + L z with L the Cholesky factor of Σ.
    let l11 = SIGMA[0].sqrt();
    let l21 = SIGMA[2] / l11;
    let l22 = (SIGMA[3] - l21 * l21).sqrt();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .flat_map(|_| {
            let (z1, z2): (f64, f64) = (rng.sample(StandardNormal), rng.sample(StandardNormal));
            [MU[0] + l11 * z1, MU[1] + l21 * z1 + l22 * z2]
        })
        .collect()
}

/// `∇ₓ log N(x; μ, Σ) = −Σ⁻¹ (x − μ)` for every row.
fn true_scores(x: &[f64]) -> Vec<f64> {
    let det = SIGMA[0] * SIGMA[3] - SIGMA[1] * SIGMA[2];
    let inv = [
        SIGMA[3] / det,
        -SIGMA[1] / det,
        -SIGMA[2] / det,
        SIGMA[0] / det,
    ];
    x.chunks(2)
        .flat_map(|p| {
            let (a, b) = (p[0] - MU[0], p[1] - MU[1]);
            [-(inv[0] * a + inv[1] * b), -(inv[2] * a + inv[3] * b)]
        })
        .collect()
}

fn slicedscore(args: &[&str], cwd: &Path) -> Output {
    common::binary()
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("the slicedscore binary starts")
}

fn ok(args: &[&str], cwd: &Path) -> (String, String) {
    let out = slicedscore(args, cwd);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "{args:?} failed:\n{stderr}");
    (stdout, stderr)
}

/// Σ‖a − b‖² / Σ‖b‖².
fn relative_error(a: &[f64], b: &[f64]) -> f64 {
    let num: f64 = a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum();
    num / b.iter().map(|y| y * y).sum::<f64>()
}

/// Writes the data CSV under `root/data/` and an experiment under
/// `root/exps/` that names it relative to itself; returns the experiment.
fn setup(root: &Path, preprocessing: &str, iterations: usize) -> PathBuf {
    std::fs::create_dir_all(root.join("data")).unwrap();
    std::fs::create_dir_all(root.join("exps")).unwrap();
    let csv = points_csv::to_csv(&draws(4000, 1), 2, "col");
    write_file(&root.join("data"), "gauss.csv", &csv);
    let text = format!(
        r#"Experiment(
    name: "units",
    task: {{"tabular": (source: Csv(path: "../data/gauss.csv", header: true), preprocessing: {preprocessing}, noise_std: 0.0)}},
    model: {{"mlp_score": (hidden: [32, 32], activation: Softplus)}},
    objective: {{"ssm_vr": (projections: 1)}},
    projection: {{"rademacher": ()}},
    optimizer: Adam(lr: 0.003),
    batch_size: 128,
    iterations: {iterations},
    eval_every: {},
    sampling: (chains: 64, steps: 20),
)
"#,
        iterations / 2
    );
    write_file(&root.join("exps"), "units.ron", &text)
}

fn train(file: &Path, run_dir: &Path) {
    let opts = RunOptions {
        logs_root: run_dir.parent().unwrap().to_path_buf(),
        run_dir: Some(run_dir.to_path_buf()),
        progress: false,
        ..RunOptions::default()
    };
    // The working directory (the package root) is not the experiment's
    // folder: the data are found relative to the file.
    run_file(file, &opts).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn score_returns_the_gradient_of_log_p_in_the_csv_units() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let file = setup(root, "Pca", 1500);
    let run_dir = root.join("run");
    train(&file, &run_dir);

    // The run recorded the experiment's folder and the whitening.
    let record = RunData::read(&run_dir).unwrap();
    assert_eq!(
        record.experiment_dir.as_deref(),
        Some(root.join("exps").as_path())
    );
    let DataMap::Affine(map) = &record.data_map else {
        panic!("not affine: {:?}", record.data_map);
    };
    assert!((map.mean()[0] - MU[0]).abs() < 0.15, "{:?}", map.mean());

    // `score` from another working directory, on points in the CSV's units.
    let elsewhere = root.join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let x = draws(300, 2);
    let input = write_file(root, "points.csv", &points_csv::to_csv(&x, 2, "x"));
    let (out, _) = ok(
        &["score", "--run", s(&run_dir), "--input", s(&input)],
        &elsewhere,
    );
    let scores = points_csv::parse_points(&out, 2, Path::new("stdout")).unwrap();
    let truth = true_scores(&x);
    let err = relative_error(&scores, &truth);
    eprintln!("relative squared error of the scores: {err:.4} in data units");
    assert!(
        err < 0.05,
        "relative squared error {err} of the scores in data units"
    );

    // In the model's coordinates the same model answers at y = A (x − m);
    // its raw answer is not the data's score (the check has power) …
    let y = record.data_map.to_model(&x).unwrap();
    let input_y = write_file(root, "whitened.csv", &points_csv::to_csv(&y, 2, "y"));
    let (out_y, _) = ok(
        &[
            "score",
            "--run",
            s(&run_dir),
            "--input",
            s(&input_y),
            "--internal",
        ],
        &elsewhere,
    );
    let internal = points_csv::parse_points(&out_y, 2, Path::new("stdout")).unwrap();
    let raw_err = relative_error(&internal, &truth);
    assert!(
        raw_err > 0.3,
        "unconverted scores are close to the truth: {raw_err}"
    );
    // … and the chain rule Aᵀ s(y) turns it into the data-unit answer.
    let chained = record.data_map.score_to_data(&internal).unwrap();
    for (a, b) in chained.iter().zip(&scores) {
        assert!((a - b).abs() <= 1e-9 * (1.0 + b.abs()), "{a} vs {b}");
    }

    // `sample` maps its samples back to the CSV's units: their moments are
    // the data's, not the whitened N(0, I). Starting from the training
    // rows needs the data, found through the run folder from elsewhere.
    let out_csv = root.join("samples.csv");
    let (_, log) = ok(
        &[
            "sample",
            "--run",
            s(&run_dir),
            "-n",
            "2000",
            "--steps",
            "300",
            "--init",
            "data",
            "--out",
            s(&out_csv),
        ],
        &elsewhere,
    );
    assert!(log.contains("data's units"), "{log}");
    let samples = points_csv::read_points(&out_csv, 2).unwrap();
    let n = (samples.len() / 2) as f64;
    let mean: Vec<f64> = (0..2)
        .map(|j| samples.iter().skip(j).step_by(2).sum::<f64>() / n)
        .collect();
    let var0 = samples
        .iter()
        .step_by(2)
        .map(|v| (v - mean[0]).powi(2))
        .sum::<f64>()
        / n;
    assert!(
        (mean[0] - MU[0]).abs() < 0.2 && (mean[1] - MU[1]).abs() < 0.1,
        "{mean:?}"
    );
    assert!((var0 / SIGMA[0] - 1.0).abs() < 0.2, "variance {var0}");
    // No picture of tabular points.
    assert!(!out_csv.with_extension("png").exists());
}

#[test]
fn preprocessing_none_records_the_identity_and_paths_resolve_against_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let file = setup(root, "None", 20);
    // The typed experiment holds (and writes back) the resolved path.
    let exp = Experiment::load(&file).unwrap();
    let resolved = root.join("exps/../data/gauss.csv");
    assert!(
        exp.to_ron().contains(&format!("{:?}", s(&resolved))),
        "{}",
        exp.to_ron()
    );
    let run_dir = root.join("run");
    train(&file, &run_dir);
    assert_eq!(RunData::read(&run_dir).unwrap().data_map, DataMap::Identity);
    // The run folder keeps the file as given, with its relative path.
    let copy = std::fs::read_to_string(run_dir.join("experiment.ron")).unwrap();
    assert!(copy.contains(r#"path: "../data/gauss.csv""#));
    // Without the record of the folder it came from, the copy would look for
    // the data next to the run folder; reloading finds them.
    slicedscore::run_loader::load_task(&run_dir).unwrap_or_else(|e| panic!("{e}"));
    let (out, _) = ok(
        &[
            "score",
            "--run",
            s(&run_dir),
            "--input",
            s(&write_file(root, "p.csv", "3,-2\n")),
        ],
        root,
    );
    assert_eq!(out.lines().count(), 2, "{out}");

    // A run folder from before runs recorded their data map: the data's
    // units are refused with the reason, the model's coordinates still work.
    std::fs::remove_file(run_dir.join("data.json")).unwrap();
    let p = write_file(root, "p.csv", "3,-2\n");
    let out = slicedscore(&["score", "--run", s(&run_dir), "--input", s(&p)], root);
    let e = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{e}");
    assert!(e.contains("data.json") && e.contains("--internal"), "{e}");
    ok(
        &[
            "score",
            "--run",
            s(&run_dir),
            "--input",
            s(&p),
            "--internal",
        ],
        root,
    );

    // A missing file is an error naming the resolved path.
    std::fs::remove_file(root.join("data/gauss.csv")).unwrap();
    let e = Experiment::load(&file)
        .unwrap()
        .build()
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains(s(&resolved)), "{e}");
}

#[test]
fn a_resumed_run_finds_its_data_through_the_recorded_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let file = setup(root, "Pca", 40);
    // Two levels below the root: the copy's `../data/gauss.csv` read against
    // the run folder would name `runs/data/gauss.csv`, which does not exist.
    let run_dir = root.join("runs/a/run");
    std::fs::create_dir_all(run_dir.parent().unwrap()).unwrap();
    let opts = RunOptions {
        logs_root: root.join("runs"),
        run_dir: Some(run_dir.clone()),
        progress: false,
        stop_after: Some(10),
    };
    let _ = run_file(&file, &opts);
    let again = RunOptions {
        stop_after: None,
        run_dir: None,
        ..opts
    };
    let summary = slicedscore::train::resume(&run_dir, &again).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(summary.steps, 40);
}
