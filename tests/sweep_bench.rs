//! `sweep` (mean ± standard error over seeds, failures reported) and
//! `bench scaling` (timings, skips, CSV, PNG), in process and through the
//! binary (which installs the counting allocator).

use std::path::{Path, PathBuf};
use std::process::Command;

use slicedscore::bench::{self, ScalingDefaults, ScalingOptions};
use slicedscore::experiment::Experiment;
use slicedscore::format::format_mean_se;
use slicedscore::sweep::{run_sweep, Cell, SweepOptions};

const DEFAULTS: &str = include_str!("../benches/scaling_defaults.ron");

fn tiny(name: &str, optimizer: &str) -> String {
    format!(
        r#"// a tiny experiment for the sweep tests
Experiment(
    name: "{name}",
    seed: 7,
    task: {{"synthetic": (target: Gaussian(dim: 2, condition: 3.0), train_size: 256, val_size: 128, test_size: 128)}},
    model: {{"mlp_score": (hidden: [8], activation: Softplus)}},
    objective: {{"ssm_vr": (projections: 1)}},
    projection: {{"rademacher": ()}},
    optimizer: {optimizer},
    batch_size: 32,
    iterations: 40,
    eval_every: 20,
)
"#
    )
}

fn write(dir: &Path, file: &str, text: &str) -> PathBuf {
    let p = dir.join(file);
    std::fs::write(&p, text).unwrap();
    p
}

fn quiet(logs: &Path) -> SweepOptions {
    SweepOptions {
        logs_root: logs.to_path_buf(),
        metrics: None,
        progress: false,
    }
}

fn read_json(p: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

#[test]
fn sweep_reports_mean_and_standard_error_of_the_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let file = write(tmp.path(), "tiny.ron", &tiny("tiny", "Adam(lr: 0.01)"));
    let logs = tmp.path().join("logs");
    let report = run_sweep(&[file], &[0, 1], &quiet(&logs)).unwrap();
    assert!(!report.any_failed());
    assert_eq!(report.rows.len(), 1);
    let row = &report.rows[0];
    assert_eq!(row.label, "ssm_vr");
    assert_eq!(row.runs.len(), 2);
    for m in [
        "test/sm_loss",
        "test/fisher_divergence",
        "test/sm_loss_optimum",
    ] {
        assert!(
            report.metrics.iter().any(|k| k == m),
            "{m} not in {:?}",
            report.metrics
        );
    }
    assert!(report.metrics.iter().all(|m| m.starts_with("test/")));

    // Each run has its own folder, metrics.json with its seed, and a copy of
    // the experiment that parses with that seed.
    let dirs: Vec<PathBuf> = row
        .runs
        .iter()
        .map(|r| r.run_dir.clone().unwrap())
        .collect();
    assert_ne!(dirs[0], dirs[1]);
    let mut per_run = Vec::new();
    for (run, dir) in row.runs.iter().zip(&dirs) {
        assert!(dir
            .to_string_lossy()
            .ends_with(&format!("-seed{}", run.seed)));
        let mj = read_json(&dir.join("metrics.json"));
        assert_eq!(mj["status"], "finished");
        assert_eq!(mj["seed"].as_u64(), Some(run.seed));
        let copy = dir.join("experiment.ron");
        let exp = Experiment::load(&copy).unwrap();
        assert_eq!(exp.seed, run.seed);
        per_run.push(mj["test"]["metrics"].clone());
    }

    let table = report.table();
    for m in &report.metrics {
        let values: Vec<f64> = per_run.iter().map(|v| v[m].as_f64().unwrap()).collect();
        let mean = (values[0] + values[1]) / 2.0;
        // n − 1 = 1 in the variance; se = std / √2.
        let std = ((values[0] - mean).powi(2) + (values[1] - mean).powi(2)).sqrt();
        let se = std / 2f64.sqrt();
        let cell = row.cells[m];
        assert_eq!(cell.n, 2);
        assert!(
            (cell.mean - mean).abs() <= 1e-12 * mean.abs().max(1.0),
            "{m}"
        );
        assert!(
            (cell.se - se).abs() <= 1e-12 * se.max(1e-300),
            "{m}: {} vs {se}",
            cell.se
        );
        let shown = format_mean_se(mean, se);
        assert!(table.contains(&shown), "{m}: {shown} not in\n{table}");
    }
    // Different seeds give different models.
    assert!(row.cells["test/sm_loss"].se > 0.0);
    assert!(table.contains("2/2"), "{table}");

    // summary.csv: one line per metric; summary.json: the same numbers.
    let csv = std::fs::read_to_string(report.sweep_dir.join("summary.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "label,file,metric,n,mean,std,se");
    assert_eq!(lines.len(), 1 + report.metrics.len());
    let sm_line = lines.iter().find(|l| l.contains(",test/sm_loss,")).unwrap();
    let fields: Vec<&str> = sm_line.split(',').collect();
    assert_eq!(fields[3], "2");
    let mean: f64 = fields[4].parse().unwrap();
    assert_eq!(mean, row.cells["test/sm_loss"].mean);
    let js = read_json(&report.sweep_dir.join("summary.json"));
    assert_eq!(
        js["rows"][0]["cells"]["test/sm_loss"]["mean"].as_f64(),
        Some(mean)
    );
    assert_eq!(js["rows"][0]["runs"][1]["seed"], 1);
}

#[test]
fn a_failing_run_is_reported_and_the_sweep_continues() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = write(tmp.path(), "bad.ron", &tiny("diverges", "Sgd(lr: 1e300)"));
    let good = write(tmp.path(), "good.ron", &tiny("fine", "Adam(lr: 0.01)"));
    let logs = tmp.path().join("logs");
    let report = run_sweep(&[bad, good], &[0, 1], &quiet(&logs)).unwrap();
    assert!(report.any_failed());
    assert_eq!(report.failed_runs(), 2);
    let (b, g) = (&report.rows[0], &report.rows[1]);
    // Same objective twice: the experiment names tell the rows apart.
    assert_eq!(b.label, "ssm_vr (diverges)");
    assert_eq!(g.label, "ssm_vr (fine)");
    assert_eq!(b.failed_seeds(), vec![0, 1]);
    for r in &b.runs {
        let e = r.error.as_deref().unwrap();
        assert!(e.contains("at step"), "{e}");
        let mj = read_json(&r.run_dir.as_ref().unwrap().join("metrics.json"));
        assert_eq!(mj["status"], "diverged");
    }
    assert_eq!(g.finished(), 2);
    assert!(!report.metrics.is_empty());
    assert_eq!(g.cells["test/sm_loss"].n, 2);
    let table = report.table();
    assert!(table.contains("0/2"), "{table}");
    assert!(table.contains("seed 0, 1"), "{table}");
    assert!(table.contains("failed runs:"), "{table}");
    assert!(table.contains("ssm_vr (diverges) seed 1: "), "{table}");
    let js = read_json(&report.sweep_dir.join("summary.json"));
    assert_eq!(js["rows"][0]["runs"][0]["status"], "diverged");
}

#[test]
fn the_sweep_command_prints_the_table_and_fails_when_a_run_failed() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = write(tmp.path(), "bad.ron", &tiny("diverges", "Sgd(lr: 1e300)"));
    let out = Command::new(env!("CARGO_BIN_EXE_slicedscore"))
        .args([
            "sweep",
            bad.to_str().unwrap(),
            "--seeds",
            "3",
            "--no-progress",
        ])
        .arg("--logs")
        .arg(tmp.path().join("logs"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stdout.contains("ssm_vr seed 3: "), "{stdout}");
    assert!(stderr.contains("1 of 1 runs failed"), "{stderr}");
}

#[test]
fn the_seed_is_set_on_the_typed_experiment_and_written_back() {
    // A sweep sets the seed on the parsed experiment and writes it out as
    // RON: the copy parses to the same experiment with the new seed, whether
    // or not the file wrote a seed.
    let p = Path::new("x.ron");
    let with = tiny("t", "Adam(lr: 0.01)");
    let without = with.replace("    seed: 7,\n", "");
    for text in [with, without] {
        let mut exp = Experiment::parse(&text, p).unwrap();
        exp.seed = 42;
        let copy = exp.to_ron();
        assert!(copy.contains("seed: 42,"), "{copy}");
        let back = Experiment::parse(&copy, p).unwrap();
        assert_eq!(back.seed, 42);
        assert_eq!(back.to_ron(), copy);
    }
}

#[test]
fn mean_and_standard_error_formatting() {
    let c = Cell::from_values(&[1.0, 2.0, 3.0, 4.0]);
    assert_eq!(c.n, 4);
    assert_eq!(c.mean, 2.5);
    assert!((c.std - (5.0f64 / 3.0).sqrt()).abs() < 1e-15);
    assert!((c.se - c.std / 2.0).abs() < 1e-15);
    assert_eq!(format_mean_se(-6.12277, 0.01234), "-6.123 ± 0.012");
    assert_eq!(format_mean_se(-8054.2, 123.0), "-8054 ± 123");
    assert!(format_mean_se(1.5, f64::NAN).ends_with("± n/a"));
    assert!(Cell::from_values(&[3.0]).se.is_nan());
}

fn small_options(defaults: &ScalingDefaults, out: &Path) -> ScalingOptions {
    let objectives: Vec<&str> = defaults.objectives.iter().map(String::as_str).collect();
    let mut o = ScalingOptions::new(&defaults.model, &objectives, &defaults.projection);
    o.dims = vec![2, 8];
    o.steps = 3;
    o.warmup = 1;
    o.ratio = Some((defaults.exact.clone(), defaults.sliced.clone()));
    o.out = Some(out.to_path_buf());
    o
}

#[test]
fn scaling_measures_every_cell_and_writes_csv_and_png() {
    let defaults = ScalingDefaults::parse(DEFAULTS).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let report = bench::scaling(&small_options(&defaults, tmp.path())).unwrap();
    assert_eq!(report.objectives.len(), defaults.objectives.len());
    assert_eq!(report.cells.len(), 2 * defaults.objectives.len());
    for c in &report.cells {
        let t = c.timing.as_ref().unwrap_or_else(|| panic!("{c:?}"));
        assert_eq!(t.samples.len(), 3);
        assert!(t.p10 <= t.median && t.median <= t.p90 && t.p10 > 0.0);
        assert!(c.skipped.is_none() && c.error.is_none());
        // A test binary does not install the counting allocator.
        assert!(c.peak_mib.is_none());
    }
    assert!(!report.memory_measured);
    // Timings are measured, not compared: speed lives in the benchmark
    // itself, never in a timed test on a shared machine.
    assert!(report.cell(&defaults.exact, 8).is_some() && report.cell(&defaults.exact, 2).is_some());
    let ratio = report.ratio.as_ref().unwrap();
    assert_eq!(ratio.dim, 8);
    let table = report.table();
    assert!(table.contains("n/a"), "{table}");
    assert!(table.contains(&format!(
        "{} / {} at D = 8",
        defaults.exact, defaults.sliced
    )));

    let csv = std::fs::read_to_string(tmp.path().join("scaling.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next().unwrap(),
        "objective,dim,median_seconds,p10,p90,peak_mib,skipped,error"
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), report.cells.len());
    for r in &rows {
        assert_eq!(r.len(), 8, "{r:?}");
        assert!(defaults
            .objectives
            .iter()
            .any(|o| o.contains(&format!("\"{}\"", r[0]))));
        let d: usize = r[1].parse().unwrap();
        assert!(d == 2 || d == 8);
        for f in &r[2..5] {
            assert!(f.parse::<f64>().unwrap() > 0.0);
        }
        assert_eq!(r[5], "");
    }
    let png = std::fs::read(tmp.path().join("scaling.png")).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
    assert!(png.len() > 5000);
}

#[test]
fn sm_above_its_max_dim_is_skipped() {
    let defaults = ScalingDefaults::parse(DEFAULTS).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut o = small_options(&defaults, tmp.path());
    o.objectives = vec![
        defaults.objectives[0].clone(),
        defaults.objectives[1].clone(),
    ];
    o.steps = 1;
    o.max_dim = vec![(defaults.exact.clone(), 4)];
    let report = bench::scaling(&o).unwrap();
    let at = |d| report.cell(&defaults.exact, d).unwrap();
    assert!(at(2).timing.is_some());
    assert_eq!(at(8).skipped.as_deref(), Some("D > 4"));
    assert!(at(8).timing.is_none());
    assert!(report.cell(&defaults.sliced, 8).unwrap().timing.is_some());
    assert_eq!(report.ratio.as_ref().unwrap().dim, 2);
    assert!(report.table().contains("skipped: D > 4"));
    let csv = std::fs::read_to_string(tmp.path().join("scaling.csv")).unwrap();
    let skipped = csv
        .lines()
        .find(|l| l.starts_with(&format!("{},8,", defaults.exact)))
        .unwrap();
    assert!(skipped.ends_with(",D > 4,"), "{skipped}");
}

#[test]
fn the_bench_command_reports_peak_memory() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_slicedscore"))
        .args([
            "bench",
            "scaling",
            "--dims",
            "2,8",
            "--steps",
            "2",
            "--warmup",
            "1",
            "--sm-max-dim",
            "4",
            "--out",
        ])
        .arg(tmp.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("skipped: D > 4"), "{stdout}");
    assert!(!stdout.contains("n/a"), "{stdout}");
    let csv = std::fs::read_to_string(tmp.path().join("scaling.csv")).unwrap();
    for l in csv.lines().skip(1).filter(|l| !l.contains("D > 4")) {
        let peak: f64 = l.split(',').nth(5).unwrap().parse().unwrap();
        assert!(peak > 0.0, "{l}");
    }
    assert!(tmp.path().join("scaling.png").exists());
}
