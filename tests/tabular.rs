//! The `tabular` task: preprocessing (whitening with training statistics,
//! dequantisation, split sizes, seeds), errors on bad input, the Parkinsons
//! reader, the embedded wine tables, the importance-sampling log-likelihood
//! against a model with a known normaliser, and a short training run.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use slicedscore::autodiff::Graph;
use slicedscore::device::{Device, Mat, Precision};
use slicedscore::error::ConfigError;
use slicedscore::experiment::Experiment;
use slicedscore::model::{EnergyModel, GaussianProposal, ScoreModel, Terms};
use slicedscore::plugins::tasks::tabular::likelihood;
use slicedscore::plugins::tasks::tabular::preprocess::{median_gap, Whitening};
use slicedscore::plugins::tasks::tabular::{Tabular, TabularConfig, TabularData};
use slicedscore::registry::{Component, TaskConfig};
use slicedscore::task::{Split, Task};
use slicedscore::train::{run_file, RunOptions};

const LN_2PI: f64 = 1.837_877_066_409_345_5;

/// Parses `{"tabular": (SETTINGS)}`.
fn config(settings: &str) -> TabularConfig {
    let text = format!("({settings})");
    ron::from_str(&text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn prepare(settings: &str, seed: u64) -> Result<TabularData, ConfigError> {
    config(settings).prepare(&mut ChaCha8Rng::seed_from_u64(seed))
}

fn ok(settings: &str, seed: u64) -> TabularData {
    prepare(settings, seed).unwrap_or_else(|e| panic!("{settings}: {e}"))
}

fn err(settings: &str) -> ConfigError {
    match prepare(settings, 0) {
        Ok(d) => panic!("{settings} was accepted: {}", d.source),
        Err(e) => e,
    }
}

fn mean_cov(x: &[f64], d: usize) -> (Vec<f64>, Vec<f64>) {
    let n = (x.len() / d) as f64;
    let mut m = vec![0.0; d];
    for r in x.chunks_exact(d) {
        for j in 0..d {
            m[j] += r[j] / n;
        }
    }
    let mut c = vec![0.0; d * d];
    for r in x.chunks_exact(d) {
        for i in 0..d {
            for j in 0..d {
                c[i * d + j] += (r[i] - m[i]) * (r[j] - m[j]) / (n - 1.0);
            }
        }
    }
    (m, c)
}

fn assert_white(x: &[f64], d: usize, tol: f64, what: &str) {
    let (m, c) = mean_cov(x, d);
    for (j, v) in m.iter().enumerate() {
        assert!(v.abs() < tol, "{what}: mean[{j}] = {v}");
    }
    for i in 0..d {
        for j in 0..d {
            let want = if i == j { 1.0 } else { 0.0 };
            let v = c[i * d + j];
            assert!((v - want).abs() < tol, "{what}: cov[{i}][{j}] = {v}");
        }
    }
}

const GAUSS: &str =
    "source: Synthetic(target: Gaussian(dim: 5, condition: 100.0), rows: 4000), noise_std: 0.0";

#[test]
fn whitened_training_split_has_zero_mean_and_identity_covariance() {
    let d = ok(GAUSS, 0);
    assert_eq!(d.dim, 5);
    assert_white(&d.data.train, 5, 1e-9, "Pca train");
    // Held-out splits are only approximately white.
    assert_white(&d.data.val, 5, 0.25, "Pca val");

    let s = ok(&format!("{GAUSS}, preprocessing: Standardize"), 0);
    let (m, c) = mean_cov(&s.data.train, 5);
    assert!(m.iter().all(|v| v.abs() < 1e-9), "{m:?}");
    for j in 0..5 {
        assert!(
            (c[j * 5 + j] - 1.0).abs() < 1e-9,
            "var[{j}] = {}",
            c[j * 5 + j]
        );
    }
    // Standardising keeps the correlations that PCA removes.
    let max_off = (0..25)
        .filter(|k| k / 5 != k % 5)
        .map(|k| c[k].abs())
        .fold(0.0, f64::max);
    assert!(
        max_off > 0.1,
        "standardised data has no correlation left: {max_off}"
    );

    // Real data too.
    let w = ok("source: RedWine, noise_std: 0.0", 3);
    assert_white(&w.data.train, 11, 1e-8, "RedWine Pca train");
}

#[test]
fn validation_and_test_use_the_training_statistics() {
    for pre in ["Pca", "Standardize"] {
        let d = ok(&format!("{GAUSS}, preprocessing: {pre}"), 1);
        let refit = Whitening::fit(&d.raw.train, 5, d.whitening.mode, &d.columns).unwrap();
        assert_eq!(
            refit, d.whitening,
            "{pre}: whitening is not the training fit"
        );
        assert_eq!(d.data.val, d.whitening.apply(&d.raw.val), "{pre}");
        assert_eq!(d.data.test, d.whitening.apply(&d.raw.test), "{pre}");
        // Whitening the validation split with its own statistics would differ.
        let own = Whitening::fit(&d.raw.val, 5, d.whitening.mode, &d.columns).unwrap();
        assert_ne!(own.mean, d.whitening.mean, "{pre}");
        let (m, _) = mean_cov(&d.data.val, 5);
        assert!(
            m.iter().any(|v| v.abs() > 1e-3),
            "{pre}: val mean {m:?} is exactly 0"
        );
    }
}

#[test]
fn noise_is_added_once_after_whitening() {
    let clean = ok(GAUSS, 4);
    let noisy = ok(&GAUSS.replace("noise_std: 0.0", "noise_std: 0.05"), 4);
    // Noise is the last draw: the splits and the whitening are the same.
    assert_eq!(clean.raw, noisy.raw);
    assert_eq!(clean.whitening, noisy.whitening);
    for (a, b, what) in [
        (&clean.data.train, &noisy.data.train, "train"),
        (&clean.data.val, &noisy.data.val, "val"),
        (&clean.data.test, &noisy.data.test, "test"),
    ] {
        let diff: Vec<f64> = a.iter().zip(b).map(|(x, y)| y - x).collect();
        let n = diff.len() as f64;
        let mean = diff.iter().sum::<f64>() / n;
        let sd = (diff.iter().map(|v| v * v).sum::<f64>() / n).sqrt();
        assert!(mean.abs() < 0.01, "{what}: noise mean {mean}");
        assert!((sd - 0.05).abs() < 0.005, "{what}: noise sd {sd}");
    }
}

#[test]
fn split_sizes_follow_the_formulas() {
    let sizes = |settings: &str| {
        let s = ok(settings, 0).sizes;
        (s.test, s.val, s.train)
    };
    let src = |rows: usize| format!("source: Synthetic(target: Gaussian(dim: 3), rows: {rows})");
    // test = min(1000, ⌊N/10⌋), val = min(1000, ⌊(N − test)/10⌋).
    assert_eq!(sizes(&src(777)), (77, 70, 630));
    assert_eq!(sizes(&src(12_345)), (1000, 1000, 10_345));
    assert_eq!(sizes(&src(10_500)), (1000, 950, 8550));
    assert_eq!(
        sizes(&format!("{}, max_test: 300, max_val: 200", src(12_345))),
        (300, 200, 11_845)
    );
    assert_eq!(
        sizes(&format!(
            "{}, test_fraction: 0.2, val_fraction: 0.25",
            src(1000)
        )),
        (200, 200, 600)
    );
    let d = ok(&src(777), 0);
    assert_eq!(d.data.test.len(), 77 * 3);
    assert_eq!(d.data.val.len(), 70 * 3);
    assert_eq!(d.data.train.len(), 630 * 3);
    assert_eq!(d.rows, 777);
}

#[test]
fn same_seed_same_splits_different_seed_different_splits() {
    for src in [GAUSS, "source: RedWine"] {
        let a = ok(src, 7);
        let b = ok(src, 7);
        let c = ok(src, 8);
        assert_eq!(a.data, b.data, "{src}");
        assert_eq!(a.raw, b.raw, "{src}");
        assert_ne!(a.raw.test, c.raw.test, "{src}");
        assert_ne!(a.data.train, c.data.train, "{src}");
    }
}

#[test]
fn wine_tables_load_without_the_quality_column_and_are_dequantised() {
    for (src, rows, table) in [
        ("RedWine", 1599, rustyml::dataset::load_red_wine_quality()),
        (
            "WhiteWine",
            4898,
            rustyml::dataset::load_white_wine_quality(),
        ),
    ] {
        let d = ok(&format!("source: {src}"), 0);
        assert_eq!((d.rows, d.dim), (rows, 11), "{src}");
        assert_eq!(d.sizes.test + d.sizes.val + d.sizes.train, rows);
        assert!(d.columns[0].contains("fixed acidity"), "{:?}", d.columns);
        assert!(d.columns[10].contains("alcohol"), "{:?}", d.columns);
        assert!(!d.columns.iter().any(|c| c.contains("quality")));
        let (_, features) = table;
        assert_eq!(features.dim(), (rows, 12));
        let all: Vec<f64> = [&d.raw.test, &d.raw.val, &d.raw.train]
            .iter()
            .flat_map(|s| s.iter().copied())
            .collect();
        for j in 0..11 {
            let original: Vec<f64> = features.column(j).to_vec();
            let gap = median_gap(&original).unwrap();
            assert_eq!(d.gaps[j], gap, "{src} column {j}");
            assert!(gap > 0.0);
            // Every dequantised value lies within half a gap of an original
            // value, and (almost surely) none is left on the grid.
            let mut grid = original.clone();
            grid.sort_by(f64::total_cmp);
            grid.dedup();
            let mut on_grid = 0;
            for v in all.iter().skip(j).step_by(11) {
                let i = grid.partition_point(|g| g < v);
                let near = [i.saturating_sub(1), i.min(grid.len() - 1)]
                    .iter()
                    .map(|&k| (grid[k] - v).abs())
                    .fold(f64::INFINITY, f64::min);
                assert!(
                    near <= 0.5 * gap + 1e-12,
                    "{src} col {j}: {v} is {near} off"
                );
                on_grid += usize::from(near == 0.0);
            }
            assert!(
                on_grid < rows / 100,
                "{src} col {j}: {on_grid} values not moved"
            );
        }
    }
}

/// A CSV file under a temporary folder.
fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    let mut f = std::fs::File::create(&p).unwrap();
    f.write_all(text.as_bytes()).unwrap();
    p
}

/// A CSV of `rows` rows: columns a, b, c with random values.
fn good_csv(rows: usize, seed: u64) -> String {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut s = String::from("a,b,c\n");
    for _ in 0..rows {
        let (x, y, z): (f64, f64, f64) = (rng.gen(), rng.gen(), rng.gen());
        s += &format!("{x},{},{}\n", x + y, z * 3.0);
    }
    s
}

fn csv_settings(path: &Path) -> String {
    format!(
        "source: Csv(path: {:?}, header: true)",
        path.display().to_string()
    )
}

#[test]
fn a_good_csv_loads_and_skips_columns() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_file(dir.path(), "good.csv", &good_csv(200, 0));
    let d = ok(&csv_settings(&p), 0);
    assert_eq!((d.rows, d.dim), (200, 3));
    let settings = format!(
        "source: Csv(path: {:?}, header: true, skip_columns: [0, 2])",
        p.display().to_string()
    );
    let d = ok(&settings, 0);
    assert_eq!(d.dim, 1);
    assert!(d.columns[0].contains("\"b\""), "{:?}", d.columns);
    assert!(d.gaps.is_empty());

    // The UCI wine layout: ';'-separated, quoted header, quantised values;
    // `dequantize: true` adds the same ± half-gap noise as the wine sources.
    let mut text = String::from("\"x\";\"y\"\n");
    for i in 0..100 {
        text += &format!(
            "{};{}\n",
            (i * 7 % 13) as f64 * 0.5,
            (i * 3 % 11) as f64 * 0.1
        );
    }
    let p = write_file(dir.path(), "semi.csv", &text);
    let settings = format!(
        "source: Csv(path: {:?}, header: true, delimiter: ';', dequantize: true)",
        p.display().to_string()
    );
    let d = ok(&settings, 0);
    assert_eq!((d.rows, d.dim), (100, 2));
    assert!(d.columns[1].ends_with("\"y\""), "{:?}", d.columns);
    assert_eq!(d.gaps.len(), 2);
    assert!(
        (d.gaps[0] - 0.5).abs() < 1e-12 && (d.gaps[1] - 0.1).abs() < 1e-12,
        "{:?}",
        d.gaps
    );
}

#[test]
fn bad_input_errors_name_the_row_column_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let good = good_csv(100, 1);
    let mut lines: Vec<String> = good.lines().map(String::from).collect();

    // NaN cell on line 5 (data row 4), column 1 "b".
    lines[4] = "0.5,NaN,1.0".into();
    let p = write_file(dir.path(), "nan.csv", &(lines.join("\n") + "\n"));
    let e = err(&csv_settings(&p));
    assert_eq!(e.field, "source.Csv.path", "{e}");
    for want in [
        p.display().to_string().as_str(),
        "line 5 (data row 4)",
        "column 1 (0-based) \"b\"",
        "not a finite number",
    ] {
        assert!(e.message.contains(want), "{e} lacks {want:?}");
    }

    // A word, and an infinity.
    lines[4] = "0.5,0.3,abc".into();
    let p = write_file(dir.path(), "word.csv", &(lines.join("\n") + "\n"));
    let e = err(&csv_settings(&p)).to_string();
    assert!(
        e.contains("line 5 (data row 4), column 2 (0-based) \"c\""),
        "{e}"
    );
    assert!(e.contains("\"abc\" is not a number"), "{e}");
    lines[4] = "-inf,0.3,1".into();
    let p = write_file(dir.path(), "inf.csv", &(lines.join("\n") + "\n"));
    let e = err(&csv_settings(&p)).to_string();
    assert!(e.contains("column 0 (0-based) \"a\""), "{e}");

    // A ragged row.
    lines[4] = "0.5,0.3".into();
    let p = write_file(dir.path(), "ragged.csv", &(lines.join("\n") + "\n"));
    let e = err(&csv_settings(&p)).to_string();
    assert!(e.contains("ragged.csv"), "{e}");
    assert!(
        e.contains("line 5 (data row 4) has 2 cells, expected 3"),
        "{e}"
    );

    // A constant column: named, on the field `source`.
    let constant: String = good
        .lines()
        .enumerate()
        .map(|(i, l)| {
            let cells: Vec<&str> = l.split(',').collect();
            let mid = if i == 0 { "b" } else { "2.5" };
            format!("{},{mid},{}\n", cells[0], cells[2])
        })
        .collect();
    let p = write_file(dir.path(), "constant.csv", &constant);
    let e = err(&csv_settings(&p));
    assert_eq!(e.field, "source", "{e}");
    assert!(
        e.message.contains("column 1 (0-based) \"b\" is constant"),
        "{e}"
    );
    assert!(e.message.contains("constant.csv"), "{e}");
    // A missing file.
    let missing = dir.path().join("nope.csv");
    let e = err(&csv_settings(&missing));
    assert_eq!(e.field, "source.Csv.path");
    assert!(e.message.contains(&missing.display().to_string()), "{e}");

    // Too few rows for the splits.
    let p = write_file(dir.path(), "small.csv", &good_csv(15, 2));
    let e = err(&csv_settings(&p));
    assert_eq!(e.field, "source", "{e}");
    assert!(
        e.message.contains("15 rows give test 1, validation 1"),
        "{e}"
    );

    // A skip_columns entry out of range.
    let p = write_file(dir.path(), "ok.csv", &good);
    let e = err(&format!(
        "source: Csv(path: {:?}, header: true, skip_columns: [3])",
        p.display().to_string()
    ));
    assert_eq!(e.field, "source.Csv.skip_columns", "{e}");

    // Out-of-range settings name their field.
    for (s, field) in [
        ("noise_std: -1.0", "noise_std"),
        ("test_fraction: 1.0", "test_fraction"),
        ("val_fraction: 0.0", "val_fraction"),
        ("max_val: 1", "max_val"),
        ("importance_samples: 100000000", "importance_samples"),
    ] {
        let e = err(&format!("source: RedWine, {s}"));
        assert_eq!(e.field, field, "{e}");
    }
    let e = err("source: Synthetic(target: Gaussian(dim: 2), rows: 0)");
    assert_eq!(e.field, "source.Synthetic.rows");
}

#[test]
fn a_column_constant_only_in_the_training_split_is_refused() {
    // Column "b" varies in exactly one row; with 100 rows, test and val
    // take 20, so for some seed the varying row lands in a held-out split.
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("a,b\n");
    for i in 0..100 {
        text += &format!(
            "{},{}\n",
            i as f64 * 0.37 % 5.0,
            if i == 0 { 9.0 } else { 1.0 }
        );
    }
    let p = write_file(dir.path(), "almost.csv", &text);
    let cfg = config(&csv_settings(&p));
    let mut refused = 0;
    let mut accepted = 0;
    for seed in 0..20 {
        match cfg.prepare(&mut ChaCha8Rng::seed_from_u64(seed)) {
            Ok(d) => {
                // The varying row is in the training split.
                assert!(d.raw.train.chunks_exact(2).any(|r| r[1] == 9.0));
                accepted += 1;
            }
            Err(e) => {
                assert!(
                    e.message
                        .contains("\"b\" is constant in the training split"),
                    "{e}"
                );
                refused += 1;
            }
        }
    }
    assert!(
        refused > 0 && accepted > 0,
        "{refused} refused, {accepted} accepted"
    );
}

#[test]
fn errors_carry_the_experiment_path_prefix() {
    let text = r#"Experiment(
        name: "t", task: {"tabular": (source: Csv(path: "/nonexistent/x.csv"))},
        model: {"mlp_energy": (hidden: [8])}, objective: {"ssm_vr": (projections: 1)},
        projection: {"rademacher": ()}, optimizer: Adam(lr: 0.01),
        batch_size: 10, iterations: 1, eval_every: 1)"#;
    let exp = Experiment::parse(text, Path::new("t.ron")).unwrap();
    let e = exp
        .build()
        .err()
        .expect("missing file accepted")
        .to_string();
    assert!(
        e.starts_with("task.tabular.source.Csv.path: cannot read /nonexistent/x.csv"),
        "{e}"
    );
}

/// The Parkinsons Telemonitoring header, as in `parkinsons_updrs.data`.
const PARKINSONS_HEADER: [&str; 22] = [
    "subject#",
    "age",
    "sex",
    "test_time",
    "motor_UPDRS",
    "total_UPDRS",
    "Jitter(%)",
    "Jitter(Abs)",
    "Jitter:RAP",
    "Jitter:PPQ5",
    "Jitter:DDP",
    "Shimmer",
    "Shimmer(dB)",
    "Shimmer:APQ3",
    "Shimmer:APQ5",
    "Shimmer:APQ11",
    "Shimmer:DDA",
    "NHR",
    "HNR",
    "RPDE",
    "DFA",
    "PPE",
];

/// A small file in the real layout. Near-copies (|corr| > 0.98) of an
/// earlier column: total_UPDRS (of motor_UPDRS), Jitter:DDP (= 3·RAP, as in
/// the real data), Shimmer:DDA (= 3·APQ3) and HNR (≈ −NHR, negative
/// correlation). Shimmer:APQ5 correlates with APQ3 at about 0.9 and is kept.
fn parkinsons_file(rows: usize, seed: u64) -> String {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut n = || -> f64 { rng.sample(StandardNormal) };
    let mut s = PARKINSONS_HEADER.join(",") + "\n";
    for i in 0..rows {
        let motor = 20.0 + 8.0 * n();
        let rap = 0.003 + 0.001 * n();
        let apq3 = 0.015 + 0.005 * n();
        let nhr = 0.03 + 0.01 * n();
        let row = [
            (1 + i % 42) as f64,
            (60 + i % 20) as f64,
            (i % 2) as f64,
            5.0 + 50.0 * n().abs(),
            motor,
            1.3 * motor + 0.05 * n(),
            0.006 + 0.002 * n(),
            0.00004 + 0.00001 * n(),
            rap,
            0.003 + 0.001 * n(),
            3.0 * rap,
            0.03 + 0.01 * n(),
            0.3 + 0.1 * n(),
            apq3,
            apq3 + 0.0025 * n(),
            0.03 + 0.01 * n(),
            3.0 * apq3,
            nhr,
            21.0 - 100.0 * nhr + 0.05 * n(),
            0.5 + 0.1 * n(),
            0.65 + 0.05 * n(),
            0.2 + 0.05 * n(),
        ];
        let cells: Vec<String> = row.iter().map(|v| format!("{v}")).collect();
        s += &cells.join(",");
        s += "\n";
    }
    s
}

#[test]
fn parkinsons_reader_keeps_columns_from_index_3_and_drops_correlated_features() {
    let dir = tempfile::tempdir().unwrap();
    let text = parkinsons_file(400, 0);
    let p = write_file(dir.path(), "parkinsons_updrs.data", &text);
    let settings = format!(
        "source: Parkinsons(path: {:?}), noise_std: 0.0",
        p.display().to_string()
    );
    let d = ok(&settings, 0);
    let dropped = ["total_UPDRS", "Jitter:DDP", "Shimmer:DDA", "HNR"];
    let kept: Vec<&str> = PARKINSONS_HEADER[3..]
        .iter()
        .copied()
        .filter(|c| !dropped.contains(c))
        .collect();
    assert_eq!(d.dim, 15, "{:?}", d.columns);
    assert_eq!(d.rows, 400);
    for (label, name) in d.columns.iter().zip(&kept) {
        assert!(label.ends_with(&format!("{name:?}")), "{label} vs {name}");
    }
    for (label, name) in d.dropped.iter().zip(dropped) {
        assert!(label.ends_with(&format!("{name:?}")), "{label} vs {name}");
    }
    assert_eq!(d.dropped.len(), 4);
    // Whitening copes with column variances from 1e-10 to 1e3.
    assert_white(&d.data.train, 15, 1e-8, "Parkinsons Pca train");
    // The kept values are the file's (here: test_time, the first kept column).
    let mut from_file: Vec<f64> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(3).unwrap().parse().unwrap())
        .collect();
    let mut loaded: Vec<f64> = [&d.raw.test, &d.raw.val, &d.raw.train]
        .iter()
        .flat_map(|s| s.chunks_exact(15).map(|r| r[0]))
        .collect();
    from_file.sort_by(f64::total_cmp);
    loaded.sort_by(f64::total_cmp);
    assert_eq!(from_file, loaded);
    assert!(d.gaps.is_empty(), "Parkinsons is not dequantised");

    // A stricter threshold drops more.
    let strict = ok(&settings.replace(")", ", max_correlation: 0.85)"), 0);
    assert!(strict.dim < 15, "{:?}", strict.columns);
}

#[test]
fn a_missing_parkinsons_file_says_where_to_get_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("data/parkinsons_updrs.data");
    let e = err(&format!(
        "source: Parkinsons(path: {:?})",
        missing.display().to_string()
    ));
    assert_eq!(e.field, "source.Parkinsons.path");
    assert!(e.message.contains(&missing.display().to_string()), "{e}");
    assert!(e.message.contains("UCI Parkinsons Telemonitoring"), "{e}");
    assert!(e.message.contains("put it at that path"), "{e}");
}

#[test]
fn needs_data_experiment_parses_and_fails_only_for_the_missing_file() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let path = root.join("experiments/needs-data/tabular_parkinsons_ssm_vr.ron");
    let exp = Experiment::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains("UCI Parkinsons Telemonitoring"),
        "comment says where"
    );
    // Relative to the experiment file's folder: `../../data` is the root's `data/`.
    if root.join("data/parkinsons_updrs.data").exists() {
        exp.build().unwrap_or_else(|e| panic!("{e}"));
    } else {
        let e = exp
            .build()
            .err()
            .expect("built without the file")
            .to_string();
        let want = format!(
            "task.tabular.source.Parkinsons.path: cannot read {}",
            root.join("experiments/needs-data/../../data/parkinsons_updrs.data")
                .display()
        );
        assert!(e.starts_with(&want), "{e}\nwanted: {want}");
    }
}

#[test]
fn tabular_experiment_files_parse_and_build() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if name.starts_with("tabular_") && name.ends_with(".ron") {
            let exp = Experiment::load(&path).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(format!("{}.ron", exp.name), name);
            assert!(exp.patience.is_some(), "{name}: no patience");
            exp.build().unwrap_or_else(|e| panic!("{name}: {e}"));
            names.push(name);
        }
    }
    names.sort();
    let mut want = Vec::new();
    for data in ["redwine", "whitewine"] {
        for obj in ["approx_bp", "cp", "dsm", "sm", "ssm", "ssm_vr"] {
            want.push(format!("tabular_{data}_{obj}.ron"));
        }
    }
    want.sort();
    assert_eq!(names, want);
}

#[test]
fn tabular_is_registered_and_its_example_builds() {
    let c: Component<dyn TaskConfig> =
        ron::from_str(r#"{"tabular": (source: Synthetic(target: Gaussian(dim: 4), rows: 500))}"#)
            .unwrap();
    let task = c
        .config
        .build(
            &slicedscore::device::Device::cpu(slicedscore::device::Precision::F64),
            &mut ChaCha8Rng::seed_from_u64(0),
        )
        .unwrap();
    assert_eq!(task.dim(), 4);
    assert_eq!(task.selection_metric(), "sm_loss");
    let d = task.describe();
    assert!(
        d.contains("Synthetic(Gaussian)") && d.contains("500 rows × 4 columns"),
        "{d}"
    );
    assert!(d.contains("405 train / 45 val / 50 test"), "{d}");
    assert!(!d.contains('\n'));
    // Unknown fields are refused.
    let e =
        ron::from_str::<Component<dyn TaskConfig>>(r#"{"tabular": (source: RedWine, noise: 0.1)}"#);
    assert!(e.err().unwrap().to_string().contains("noise"));
}

// ---------------------------------------------------------------------------
// Importance-sampling log-likelihood.

/// Test-only energy model: `log p̃(x) = −‖x‖²/2 + c`, so `Z = (2π)^{D/2} eᶜ`,
/// with an importance proposal `N(mean, std²I)` that differs from it.
struct GaussEnergy {
    dim: usize,
    c: f64,
    proposal: GaussianProposal,
}

slicedscore::module!(GaussEnergy {});

impl ScoreModel for GaussEnergy {
    fn dim(&self) -> usize {
        self.dim
    }
    fn score(&self, g: &mut Graph, x: &Mat) -> Mat {
        g.neg(x)
    }
    fn terms(&self, g: &mut Graph, x: &Mat, v: &Mat, want_score: bool) -> Terms {
        let s = g.neg(x);
        let vs_all = g.mul_blocks(v, &s);
        let vs = g.sum_cols(&vs_all);
        let vv = g.square(v);
        let vv = g.sum_cols(&vv);
        let vhv = g.neg(&vv);
        Terms {
            vs,
            vhv,
            score: want_score.then_some(s),
        }
    }
    slicedscore::capabilities!(energy);
}

impl EnergyModel for GaussEnergy {
    fn log_density(&self, g: &mut Graph, x: &Mat) -> Mat {
        let sq = g.square(x);
        let s = g.sum_cols(&sq);
        let h = g.scale(&s, -0.5);
        g.add_scalar(&h, self.c)
    }
    fn importance_proposal(&self) -> Option<GaussianProposal> {
        Some(self.proposal.clone())
    }
}

fn gauss_model(dim: usize, mean: f64, std: f64) -> GaussEnergy {
    GaussEnergy {
        dim,
        c: 3.7,
        proposal: GaussianProposal {
            mean: vec![mean; dim],
            std,
        },
    }
}

/// The exact mean log-likelihood of rows under `N(0, I)`.
fn exact_log_likelihood(x: &[f64], dim: usize) -> f64 {
    let n = (x.len() / dim) as f64;
    x.chunks_exact(dim)
        .map(|r| -0.5 * r.iter().map(|v| v * v).sum::<f64>() - 0.5 * dim as f64 * LN_2PI)
        .sum::<f64>()
        / n
}

#[test]
fn importance_sampling_matches_the_exact_log_likelihood() {
    let dev = Device::cpu(Precision::F64);
    let dim = 5;
    let model = gauss_model(dim, 0.0, 1.5);
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let x: Vec<f64> = (0..500 * dim).map(|_| rng.sample(StandardNormal)).collect();
    let exact = exact_log_likelihood(&x, dim);
    let exact_log_z = 0.5 * dim as f64 * LN_2PI + 3.7;
    let mut within = 0;
    for seed in 0..5 {
        let est = likelihood::estimate(
            &dev,
            &model,
            &x,
            dim,
            10_000,
            &mut ChaCha8Rng::seed_from_u64(seed),
        )
        .expect("model offers a proposal");
        // The mean log p̃ part is exact, so the whole error is log Ẑ's.
        let err = est.log_likelihood - exact;
        assert!((est.log_normalizer - exact_log_z + err).abs() < 1e-9);
        assert!(
            err.abs() < 4.0 * est.log_normalizer_stderr,
            "seed {seed}: error {err} vs stderr {}",
            est.log_normalizer_stderr
        );
        within += usize::from(err.abs() < est.log_normalizer_stderr);
        assert!(err.abs() < 0.05, "seed {seed}: {err}");
        // ESS for N(0, I) under N(0, 1.5²I) in 5-D: K / (σ²/√(2σ²−1))^D ≈ 0.40 K.
        assert!(
            est.ess > 0.34 * 10_000.0 && est.ess < 0.46 * 10_000.0,
            "ess {}",
            est.ess
        );
        assert!(est.log_likelihood_stderr > 0.0);
        assert_eq!(est.samples, 10_000);
    }
    assert!(within >= 2, "only {within} of 5 within one standard error");
}

#[test]
fn the_task_reports_the_likelihood_metrics_reproducibly() {
    let dev = Device::cpu(Precision::F64);
    let prepared = ok(
        "source: Synthetic(target: Gaussian(dim: 4), rows: 3000), noise_std: 0.0",
        0,
    );
    let test = prepared.data.test.clone();
    let task = Tabular::new(prepared, 20_000, 5);
    let model = gauss_model(4, 0.3, 1.4);
    let m = task.evaluate(&dev, Some(&model), Split::Test);
    for k in [
        "sm_loss",
        "sm_loss_stderr",
        "log_likelihood",
        "log_likelihood_stderr",
        "log_normalizer",
        "log_normalizer_stderr",
        "importance_ess",
    ] {
        assert!(
            m.get(k).is_some_and(|v| v.is_finite()),
            "{k} missing: {m:?}"
        );
    }
    let exact = exact_log_likelihood(&test, 4);
    let ll = m["log_likelihood"];
    assert!(
        (ll - exact).abs() < 4.0 * m["log_normalizer_stderr"],
        "{ll} vs exact {exact} (stderr {})",
        m["log_normalizer_stderr"]
    );
    // Exact SM of this model: −D + ½‖x‖² per point.
    let sm = test
        .chunks_exact(4)
        .map(|r| -4.0 + 0.5 * r.iter().map(|v| v * v).sum::<f64>())
        .sum::<f64>()
        / (test.len() / 4) as f64;
    assert!((m["sm_loss"] - sm).abs() < 1e-9, "{} vs {sm}", m["sm_loss"]);
    // Same split → same proposal draws; the other split uses other draws.
    assert_eq!(task.evaluate(&dev, Some(&model), Split::Test), m);
    assert_ne!(
        task.importance_seed(Split::Test),
        task.importance_seed(Split::Validation)
    );
    // No proposal → no likelihood metrics.
    let off = Tabular::new(
        ok("source: Synthetic(target: Gaussian(dim: 4), rows: 3000)", 0),
        0,
        5,
    );
    let m = off.evaluate(&dev, Some(&model), Split::Test);
    assert!(!m.contains_key("log_likelihood"), "{m:?}");
}

/// A `tracing` writer that keeps everything in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_poor_proposal_gives_a_small_ess_and_a_warning() {
    let dev = Device::cpu(Precision::F64);
    let task = Tabular::new(
        ok("source: Synthetic(target: Gaussian(dim: 4), rows: 1000)", 0),
        5000,
        1,
    );
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let bad = gauss_model(4, 3.0, 0.4);
    let m = tracing::subscriber::with_default(subscriber, || {
        task.evaluate(&dev, Some(&bad), Split::Validation)
    });
    let ess = m["importance_ess"];
    assert!(ess < 50.0, "ess {ess}");
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(log.contains("WARN"), "{log}");
    assert!(log.contains("val log-likelihood is unreliable"), "{log}");
    assert!(log.contains("of 5000 samples"), "{log}");
}

// ---------------------------------------------------------------------------
// End to end.

#[test]
fn a_short_training_run_on_synthetic_rows_completes() {
    let dir = tempfile::tempdir().unwrap();
    let text = r#"Experiment(
        name: "tabular_e2e",
        seed: 0,
        task: {"tabular": (source: Synthetic(target: Gaussian(dim: 5), rows: 3000), noise_std: 0.05)},
        model: {"mlp_energy": (hidden: [32, 32], activation: Softplus)},
        objective: {"ssm_vr": (projections: 1)},
        projection: {"rademacher": ()},
        optimizer: Adam(lr: 0.01),
        batch_size: 100,
        iterations: 300,
        eval_every: 100,
        grad_clip: Some(100.0),
        patience: Some(1000),
    )"#;
    let file = write_file(dir.path(), "e2e.ron", text);
    let started = std::time::Instant::now();
    let summary = run_file(
        &file,
        &RunOptions {
            run_dir: Some(dir.path().join("run")),
            progress: false,
            ..RunOptions::default()
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let took = started.elapsed().as_secs_f64();
    assert_eq!(summary.steps, 300);
    let sm = summary.test["sm_loss"];
    assert!(sm.is_finite() && summary.test["sm_loss_stderr"].is_finite());
    // Whitened 5-D Gaussian: a perfect model reaches about −D/2 = −2.5; an
    // untrained one sits near 0.
    assert!(sm < -1.5, "test sm_loss {sm}");
    // mlp_energy has a log-density but no proposal: no likelihood metrics.
    for k in ["log_likelihood", "log_normalizer", "importance_ess"] {
        assert!(
            !summary.test.contains_key(k),
            "{k} reported: {:?}",
            summary.test
        );
        assert!(!summary.best.contains_key(k));
    }
    assert!(took < 15.0, "took {took:.1} s");
}
