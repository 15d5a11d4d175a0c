//! The `images` task: IDX files (round trips, raw and gzip, every kind of
//! corruption), the sources (a small MNIST-layout folder the tests write,
//! the embedded digits, real MNIST and Fashion-MNIST when present),
//! dequantisation and the logit clamp, the log-likelihood change of
//! variables against a host computation for a normalized test model, the
//! exact SM loss on the fixed subset, sample grids and a short training run
//! that writes `samples.png`.

use std::path::{Path, PathBuf};

use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use slicedscore::autodiff::Graph;
use slicedscore::device::{Device, Mat, Precision};
use slicedscore::error::ConfigError;
use slicedscore::experiment::Experiment;
use slicedscore::image_data::idx::{
    self, encode_images, encode_labels, gzip, IdxImages, IdxProblem,
};
use slicedscore::image_data::source::{ImageSource, MNIST_FILES};
use slicedscore::image_data::transform::sigmoid;
use slicedscore::model::{EnergyModel, FlowModel, ScoreModel, Terms};
use slicedscore::nn::Param;
use slicedscore::plugins::tasks::images::{
    grid_shape, sample_grid, ImagesConfig, ImagesTask, SplitSizes, BORDER,
};
use slicedscore::task::{Artifact, Split, Task};
use slicedscore::train::{png_bytes, train, RunOptions};

const LN_2PI: f64 = 1.837_877_066_409_345_5;

fn config(settings: &str) -> ImagesConfig {
    let text = format!("({settings})");
    ron::from_str(&text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn build(settings: &str, seed: u64) -> Result<ImagesTask, ConfigError> {
    config(settings).build_task(&mut ChaCha8Rng::seed_from_u64(seed))
}

fn task(settings: &str, seed: u64) -> ImagesTask {
    build(settings, seed).unwrap_or_else(|e| panic!("{settings}: {e}"))
}

fn err(settings: &str) -> ConfigError {
    match build(settings, 0) {
        Ok(t) => panic!("{settings} was accepted: {}", t.describe()),
        Err(e) => e,
    }
}

fn write(dir: &Path, name: &str, bytes: &[u8], gz: bool) -> PathBuf {
    let (name, bytes) = if gz {
        (format!("{name}.gz"), gzip(bytes))
    } else {
        (name.to_string(), bytes.to_vec())
    };
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn random_images(count: usize, rows: usize, cols: usize, seed: u64) -> IdxImages {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    IdxImages {
        count,
        rows,
        cols,
        pixels: (0..count * rows * cols).map(|_| rng.gen()).collect(),
    }
}

fn labels(count: usize) -> Vec<u8> {
    (0..count).map(|i| (i % 10) as u8).collect()
}

/// A folder in MNIST's layout with `train` and `test` 28×28 images; the
/// training images gzip-compressed, the test images raw.
fn mnist_dir(dir: &Path, train: usize, test: usize) -> PathBuf {
    let d = dir.join("mnist");
    std::fs::create_dir_all(&d).unwrap();
    write(
        &d,
        MNIST_FILES[0],
        &encode_images(&random_images(train, 28, 28, 1)),
        true,
    );
    write(&d, MNIST_FILES[1], &encode_labels(&labels(train)), true);
    write(
        &d,
        MNIST_FILES[2],
        &encode_images(&random_images(test, 28, 28, 2)),
        false,
    );
    write(&d, MNIST_FILES[3], &encode_labels(&labels(test)), false);
    d
}

// ---------------------------------------------------------------------------
// IDX files

#[test]
fn idx_round_trip_raw_and_gzip() {
    let dir = tempfile::tempdir().unwrap();
    let imgs = random_images(7, 3, 5, 0);
    let labs = vec![0, 1, 2, 3, 4, 5, 255];
    for gz in [false, true] {
        let ip = write(dir.path(), &format!("i{gz}"), &encode_images(&imgs), gz);
        let lp = write(dir.path(), &format!("l{gz}"), &encode_labels(&labs), gz);
        let raw = std::fs::read(&ip).unwrap();
        assert_eq!(idx::is_gzip(&raw), gz);
        let (back, back_labels) = idx::read_pair(&ip, &lp, Some((3, 5)), None).unwrap();
        assert_eq!(back, imgs, "gz = {gz}");
        assert_eq!(back_labels, labs, "gz = {gz}");
    }
    // The header is big-endian: 0x00000803, then 7, 3, 5.
    let b = encode_images(&imgs);
    assert_eq!(&b[..16], &[0, 0, 8, 3, 0, 0, 0, 7, 0, 0, 0, 3, 0, 0, 0, 5]);
    assert_eq!(b.len(), 16 + 7 * 15);
}

/// Writes `bytes` as an image file next to good labels for 4 images and
/// returns the error of reading the pair.
fn pair_error(dir: &Path, name: &str, images: &[u8], labels: &[u8]) -> (String, IdxProblem) {
    let ip = write(dir, &format!("{name}-images"), images, false);
    let lp = write(dir, &format!("{name}-labels"), labels, false);
    let e = idx::read_pair(&ip, &lp, Some((2, 2)), Some(9)).unwrap_err();
    let msg = e.to_string();
    (msg, e.problem)
}

#[test]
fn corrupt_idx_files_are_named_with_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let good = encode_images(&random_images(4, 2, 2, 0));
    let good_labels = encode_labels(&[1, 2, 3, 4]);

    // Truncated data.
    let (m, p) = pair_error(d, "trunc", &good[..good.len() - 3], &good_labels);
    assert!(
        matches!(
            p,
            IdxProblem::Truncated {
                need: 16,
                have: 13,
                ..
            }
        ),
        "{m}"
    );
    assert!(
        m.contains("trunc-images") && m.contains("truncated") && m.contains("4 × 2 × 2"),
        "{m}"
    );
    // Truncated header.
    let (m, p) = pair_error(d, "head", &good[..9], &good_labels);
    assert!(
        matches!(
            p,
            IdxProblem::TruncatedHeader {
                len: 9,
                need: 16,
                ..
            }
        ),
        "{m}"
    );
    // Bytes after the data.
    let mut long = good.clone();
    long.push(0);
    let (m, p) = pair_error(d, "long", &long, &good_labels);
    assert!(matches!(p, IdxProblem::Trailing { extra: 1, .. }), "{m}");
    // Wrong magic: a label file where images are expected, and junk.
    let (m, p) = pair_error(d, "magic", &good_labels, &good_labels);
    assert!(
        matches!(
            p,
            IdxProblem::Magic {
                found: 0x801,
                expected: 0x803,
                ..
            }
        ),
        "{m}"
    );
    assert!(
        m.contains("magic-images") && m.contains("0x00000801") && m.contains("label file"),
        "{m}"
    );
    let (m, _) = pair_error(d, "junk", b"PK\x03\x04 not idx at all", &good_labels);
    assert!(m.contains("not an IDX file"), "{m}");
    // Wrong image size.
    let big = encode_images(&random_images(4, 3, 2, 0));
    let (m, p) = pair_error(d, "size", &big, &good_labels);
    assert!(
        matches!(
            p,
            IdxProblem::ImageSize {
                rows: 3,
                cols: 2,
                ..
            }
        ),
        "{m}"
    );
    assert!(
        m.contains("size-images") && m.contains("3×2") && m.contains("expected 2×2"),
        "{m}"
    );
    // Label count ≠ image count: the label file is named, and the image file.
    let (m, p) = pair_error(d, "count", &good, &encode_labels(&[1, 2, 3]));
    assert!(
        matches!(
            p,
            IdxProblem::CountMismatch {
                labels: 3,
                images: 4,
                ..
            }
        ),
        "{m}"
    );
    assert!(
        m.contains("count-labels") && m.contains("count-images"),
        "{m}"
    );
    // A label outside the classes.
    let (m, p) = pair_error(d, "class", &good, &encode_labels(&[1, 2, 10, 4]));
    assert!(
        matches!(
            p,
            IdxProblem::LabelRange {
                value: 10,
                index: 2,
                max: 9
            }
        ),
        "{m}"
    );
    // A truncated gzip stream.
    let gz = gzip(&good);
    let (m, p) = pair_error(d, "gz", &gz[..gz.len() / 2], &good_labels);
    assert!(matches!(p, IdxProblem::Gzip(_)), "{m}");
    assert!(m.contains("gz-images") && m.contains("gzip"), "{m}");
    // gzip that decompresses to a truncated IDX file.
    let (m, p) = pair_error(d, "gzt", &gzip(&good[..good.len() - 1]), &good_labels);
    assert!(matches!(p, IdxProblem::Truncated { .. }), "{m}");
    // A missing file.
    let e = idx::read_images(&d.join("nope")).unwrap_err();
    assert!(matches!(e.problem, IdxProblem::NotFound));
    assert!(e.to_string().contains("nope"), "{e}");
}

// ---------------------------------------------------------------------------
// Sources

#[test]
fn mnist_layout_loads_raw_and_gz_and_splits_90_10() {
    let dir = tempfile::tempdir().unwrap();
    let d = mnist_dir(dir.path(), 50, 12);
    let s = format!("source: Mnist(dir: {:?})", d.display().to_string());
    let t = task(&s, 0);
    assert_eq!(Task::dim(&t), 784);
    assert_eq!(t.image_shape(), (28, 28));
    assert_eq!(t.quantization().levels(), 256);
    assert_eq!(
        t.sizes(),
        SplitSizes {
            train: 45,
            val: 5,
            test: 12
        }
    );
    assert_eq!(t.split_data(Split::Test).labels, labels(12));
    // The training and validation images are the 50 training images, shuffled.
    let want = random_images(50, 28, 28, 1);
    let mut seen: Vec<&[u8]> = t.train_images().pixels.chunks(784).collect();
    let val = t.split_data(Split::Validation);
    let val_px: Vec<u8> = val
        .x
        .iter()
        .map(|&y| (sigmoid(y) * 255.0).round().clamp(0.0, 255.0) as u8)
        .collect();
    seen.extend(val_px.chunks(784));
    let mut want_rows: Vec<&[u8]> = want.pixels.chunks(784).collect();
    want_rows.sort();
    // Validation pixels come back through dequantisation (±½ level; the
    // clamp moves 0 and 255 by at most α·255 < ½), so compare after rounding.
    seen.sort();
    assert_eq!(seen.len(), want_rows.len());
    assert_eq!(seen, want_rows);
    assert!(
        t.describe().contains("45 train / 5 val / 12 test"),
        "{}",
        t.describe()
    );
    // Default folder parses.
    let c = config("source: Mnist()");
    assert_eq!(
        c.source,
        ImageSource::Mnist {
            dir: "data/mnist".into()
        }
    );
}

#[test]
fn missing_data_names_the_path_and_the_fetch_command() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    let e = err(&format!(
        "source: Mnist(dir: {:?})",
        empty.display().to_string()
    ));
    assert_eq!(e.field, "source.Mnist.dir");
    assert!(e.message.contains("empty/train-images-idx3-ubyte"), "{e}");
    assert!(e.message.contains(".gz"), "{e}");
    assert!(e.message.contains("scripts/fetch-mnist.sh"), "{e}");
    let e = err(&format!(
        "source: FashionMnist(dir: {:?})",
        empty.display().to_string()
    ));
    assert_eq!(e.field, "source.FashionMnist.dir");
    assert!(
        e.message
            .contains("apt-get install -y dataset-fashion-mnist"),
        "{e}"
    );
    let e = err(&format!(
        "source: Idx(images: {:?}, labels: \"x\")",
        empty.display().to_string()
    ));
    assert_eq!(e.field, "source.Idx.images");
    assert!(
        e.message.contains("empty") && e.message.contains("not found"),
        "{e}"
    );
}

#[test]
fn wrong_mnist_files_are_refused_by_field() {
    let dir = tempfile::tempdir().unwrap();
    let d = mnist_dir(dir.path(), 20, 5);
    let s = format!("source: Mnist(dir: {:?})", d.display().to_string());
    // A 27×28 test set.
    write(
        &d,
        MNIST_FILES[2],
        &encode_images(&random_images(5, 27, 28, 3)),
        false,
    );
    let e = err(&s);
    assert_eq!(e.field, "source.Mnist.dir");
    assert!(
        e.message.contains("t10k-images-idx3-ubyte") && e.message.contains("27×28"),
        "{e}"
    );
    // Labels for 4 of 5 test images.
    write(
        &d,
        MNIST_FILES[2],
        &encode_images(&random_images(5, 28, 28, 3)),
        false,
    );
    write(&d, MNIST_FILES[3], &encode_labels(&labels(4)), false);
    let e = err(&s);
    assert!(
        e.message.contains("t10k-labels-idx1-ubyte: 4 labels"),
        "{e}"
    );
    // A raw file wins over a .gz one: a broken raw training file is read.
    std::fs::write(d.join(MNIST_FILES[0]), b"\x00\x00\x08\x03").unwrap();
    let e = err(&s);
    assert!(
        e.message.contains("train-images-idx3-ubyte: truncated"),
        "{e}"
    );
}

#[test]
fn a_broken_idx_label_file_is_named_by_its_own_field() {
    let dir = tempfile::tempdir().unwrap();
    let ip = write(
        dir.path(),
        "i",
        &encode_images(&random_images(5, 2, 2, 0)),
        false,
    );
    let lp = write(dir.path(), "l", &encode_labels(&labels(4)), false);
    let s = |test: &str| {
        format!(
            "source: Idx(images: {:?}, labels: {:?}{test})",
            ip.display().to_string(),
            lp.display().to_string()
        )
    };
    let e = err(&s(""));
    assert_eq!(e.field, "source.Idx.labels", "{e}");
    assert!(e.message.contains("4 labels"), "{e}");
    // A good training pair, a broken test label file.
    std::fs::write(&lp, encode_labels(&labels(5))).unwrap();
    let bad = dir.path().join("tl");
    std::fs::write(&bad, b"\x00\x00\x08").unwrap();
    let test = format!(
        ", test_images: Some({:?}), test_labels: Some({:?})",
        ip.display().to_string(),
        bad.display().to_string()
    );
    let e = err(&s(&test));
    assert_eq!(e.field, "source.Idx.test_labels", "{e}");
    assert!(e.message.contains("truncated"), "{e}");
}

#[test]
fn digits_load_1797_by_64() {
    let set = ImageSource::Digits.load().unwrap();
    assert_eq!((set.height, set.width), (8, 8));
    assert_eq!(set.train.count, 1797);
    assert_eq!(set.train.pixels.len(), 1797 * 64);
    assert!(set.test.is_none());
    assert_eq!(set.quantization.levels(), 17);
    assert_eq!(*set.train.pixels.iter().max().unwrap(), 16);
    let mut classes = [0usize; 10];
    for &l in &set.train.labels {
        classes[l as usize] += 1;
    }
    assert!(
        classes.iter().all(|&c| (170..=190).contains(&c)),
        "{classes:?}"
    );
    // scikit-learn's first digit is a 0: row 0 starts 0, 0, 5, 13, 9, 1.
    assert_eq!(&set.train.pixels[..6], &[0, 0, 5, 13, 9, 1]);
    assert_eq!(set.train.labels[0], 0);
    // 10% test (179), then 10% of the rest for validation (161).
    let t = task("source: Digits", 0);
    assert_eq!(
        t.sizes(),
        SplitSizes {
            train: 1457,
            val: 161,
            test: 179
        }
    );
}

#[test]
fn bad_settings_are_refused_by_field() {
    for (s, field) in [
        ("source: Digits, val_fraction: 0.0", "val_fraction"),
        ("source: Digits, test_fraction: 1.0", "test_fraction"),
        ("source: Digits, logit_alpha: 0.5", "logit_alpha"),
        ("source: Digits, logit_alpha: 0.0", "logit_alpha"),
        ("source: Digits, sm_eval_points: 1", "sm_eval_points"),
        ("source: Digits, samples: 5000", "samples"),
        (
            "source: Idx(images: \"a\", labels: \"b\", test_images: Some(\"c\"))",
            "source.Idx.test_labels",
        ),
    ] {
        assert_eq!(err(s).field, field, "{s}");
    }
    let e = ron::from_str::<ImagesConfig>("(source: Digits, logit_eps: 0.1)").unwrap_err();
    assert!(e.to_string().contains("logit_eps"), "{e}");
    // Too few images for the splits.
    let dir = tempfile::tempdir().unwrap();
    let ip = write(
        dir.path(),
        "i",
        &encode_images(&random_images(5, 2, 2, 0)),
        false,
    );
    let lp = write(dir.path(), "l", &encode_labels(&labels(5)), false);
    let e = err(&format!(
        "source: Idx(images: {:?}, labels: {:?})",
        ip.display().to_string(),
        lp.display().to_string()
    ));
    assert!(e.message.contains("too few"), "{e}");
}

// ---------------------------------------------------------------------------
// Dequantisation, logit and the clamp

/// An `Idx` task of `n` identical 2×3 images with the given pixels.
fn constant_task(
    pixels: [u8; 6],
    n: usize,
    extra: &str,
    seed: u64,
) -> (tempfile::TempDir, ImagesTask) {
    let dir = tempfile::tempdir().unwrap();
    let imgs = IdxImages {
        count: n,
        rows: 2,
        cols: 3,
        pixels: pixels.repeat(n),
    };
    let ip = write(dir.path(), "i", &encode_images(&imgs), false);
    let lp = write(dir.path(), "l", &encode_labels(&labels(n)), true);
    let s = format!(
        "source: Idx(images: {:?}, labels: {:?}){extra}",
        ip.display().to_string(),
        lp.display().to_string()
    );
    let t = task(&s, seed);
    (dir, t)
}

#[test]
fn training_batches_are_freshly_dequantised_and_clamped() {
    let px = [0u8, 255, 128, 1, 254, 64];
    let (_dir, mut t) = constant_task(px, 200, "", 0);
    assert_eq!(
        t.sizes(),
        SplitSizes {
            train: 162,
            val: 18,
            test: 20
        }
    );
    let alpha: f64 = 1e-3;
    let top = ((1.0 - alpha) / alpha).ln();
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let mut x = Vec::new();
    for _ in 0..50 {
        x.extend(t.train_batch(&mut rng, 100));
    }
    let rows = x.len() / 6;
    assert_eq!(rows, 5000);
    for (j, &p) in px.iter().enumerate() {
        let col: Vec<f64> = x.iter().skip(j).step_by(6).copied().collect();
        for &y in &col {
            assert!(y.is_finite() && y.abs() <= top + 1e-9, "pixel {p}: {y}");
        }
        let u: Vec<f64> = col.iter().map(|&y| sigmoid(y)).collect();
        let centre = p as f64 / 255.0;
        for &v in &u {
            assert!(
                v >= alpha - 1e-12 && v <= 1.0 - alpha + 1e-12,
                "pixel {p}: {v}"
            );
            assert!((v - centre).abs() <= 0.5 / 256.0 + 1e-9, "pixel {p}: {v}");
        }
        let clamped = u
            .iter()
            .filter(|&&v| (v - alpha).abs() < 1e-9 || (v - 1.0 + alpha).abs() < 1e-9);
        let frac = clamped.count() as f64 / rows as f64;
        if p == 0 || p == 255 {
            // P(p/255 + (U − ½)/256 < α) = ½ + 256α = 0.756.
            assert!(
                (frac - 0.756).abs() < 0.03,
                "pixel {p}: clamped fraction {frac}"
            );
        } else {
            assert_eq!(frac, 0.0, "pixel {p}");
            // Uniform on ±1/512 around p/255: mean 0, variance 1/(12·256²).
            let e: Vec<f64> = u.iter().map(|v| v - centre).collect();
            let mean = e.iter().sum::<f64>() / rows as f64;
            let var = e.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / rows as f64;
            let want = 1.0 / (12.0 * 256.0 * 256.0);
            assert!(
                mean.abs() < 4.0 * (want / rows as f64).sqrt(),
                "pixel {p}: mean {mean}"
            );
            assert!(
                (var / want - 1.0).abs() < 0.08,
                "pixel {p}: var {var} vs {want}"
            );
        }
        // Fresh draws: the same image never comes back identical.
        if p == 128 {
            let mut s = col.clone();
            s.sort_by(f64::total_cmp);
            s.dedup();
            assert_eq!(s.len(), rows, "repeated dequantised values");
        }
    }
}

#[test]
fn held_out_splits_are_dequantised_once_from_the_seed() {
    let px = [3u8, 200, 128, 1, 254, 64];
    let (_d1, a) = constant_task(px, 200, "", 7);
    let (_d2, b) = constant_task(px, 200, "", 7);
    let (_d3, c) = constant_task(px, 200, "", 8);
    for split in [Split::Validation, Split::Test] {
        assert_eq!(a.split_data(split).x, b.split_data(split).x);
        assert_ne!(a.split_data(split).x, c.split_data(split).x);
        assert_eq!(a.split_data(split).sm_rows, b.split_data(split).sm_rows);
    }
    // Validation and test use different uniforms.
    assert_ne!(
        a.split_data(Split::Validation).x[..6],
        a.split_data(Split::Test).x[..6]
    );
    // Each held-out image's log-Jacobian is Σ −ln x(1 − x) of its pixels.
    let s = a.split_data(Split::Test);
    for (row, lj) in s.x.chunks(6).zip(&s.log_jacobian) {
        let want: f64 = row
            .iter()
            .map(|&y| {
                let x = sigmoid(y);
                -(x * (1.0 - x)).ln()
            })
            .sum();
        assert!((lj - want).abs() < 1e-9, "{lj} vs {want}");
    }
}

#[test]
fn without_logit_the_model_sees_dequantised_pixels_unclamped() {
    let px = [0u8, 255, 128, 0, 255, 128];
    let (_dir, mut t) = constant_task(px, 100, ", logit: false", 0);
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let x = t.train_batch(&mut rng, 500);
    let below = x.iter().filter(|&&v| v < 0.0).count();
    let above = x.iter().filter(|&&v| v > 1.0).count();
    // Pixels 0 and 255 dequantise below 0 / above 1 half of the time.
    assert!(
        (300..700).contains(&below) && (300..700).contains(&above),
        "{below} {above}"
    );
    for (i, &v) in x.iter().enumerate() {
        let c = px[i % 6] as f64 / 255.0;
        assert!((v - c).abs() <= 0.5 / 256.0 + 1e-12, "{v}");
    }
    assert!(t
        .split_data(Split::Test)
        .log_jacobian
        .iter()
        .all(|&j| j == 0.0));
}

#[test]
fn digits_dequantise_by_one_seventeenth() {
    let mut t = task("source: Digits, logit: false", 3);
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let n = 400;
    let x = t.train_batch(&mut rng, n);
    // Every value lies within ±1/34 of some k/16; its offset is uniform.
    let mut offsets = Vec::new();
    for &v in &x {
        let k = (v * 16.0).round();
        let off = v - k / 16.0;
        assert!(off.abs() <= 0.5 / 17.0 + 1e-12, "{v}");
        offsets.push(off);
    }
    let var = offsets.iter().map(|o| o * o).sum::<f64>() / offsets.len() as f64;
    let want = 1.0 / (12.0 * 17.0 * 17.0);
    assert!((var / want - 1.0).abs() < 0.05, "var {var} vs {want}");
}

// ---------------------------------------------------------------------------
// A normalized test model: N(μ, diag σ²) in model coordinates.

struct DiagGauss {
    dim: usize,
    mu: Param,
    sigma: Vec<f64>,
}

impl DiagGauss {
    fn new(dev: &Device, dim: usize, mu: f64, seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let sigma = (0..dim).map(|_| rng.gen_range(0.5..3.0)).collect();
        Self {
            dim,
            mu: Param::filled(dev, 1, dim, mu),
            sigma,
        }
    }

    fn mu(&self) -> Vec<f64> {
        self.mu.value.to_host()
    }

    fn inv_var(&self, g: &Graph, n: usize) -> Mat {
        let row: Vec<f64> = self.sigma.iter().map(|s| 1.0 / (s * s)).collect();
        g.constant(row.repeat(n), n, self.dim)
    }

    /// log N(y; μ, σ²) on the host.
    fn host_log_density(&self, y: &[f64]) -> f64 {
        let mu = self.mu();
        y.iter()
            .zip(&mu)
            .zip(&self.sigma)
            .map(|((y, m), s)| -0.5 * ((y - m) / s).powi(2) - s.ln() - 0.5 * LN_2PI)
            .sum()
    }

    /// tr ∇s + ½‖s‖² on the host.
    fn host_sm(&self, y: &[f64]) -> f64 {
        let mu = self.mu();
        y.iter()
            .zip(&mu)
            .zip(&self.sigma)
            .map(|((y, m), s)| -1.0 / (s * s) + 0.5 * ((y - m) / (s * s)).powi(2))
            .sum()
    }
}

slicedscore::module!(DiagGauss { mu });

impl ScoreModel for DiagGauss {
    fn dim(&self) -> usize {
        self.dim
    }
    fn score(&self, g: &mut Graph, x: &Mat) -> Mat {
        let n = x.shape().0;
        let neg = g.neg(x);
        let diff = g.add_row(&neg, &self.mu.value);
        let iv = self.inv_var(g, n);
        g.mul(&diff, &iv)
    }
    fn terms(&self, g: &mut Graph, x: &Mat, v: &Mat, want_score: bool) -> Terms {
        let n = x.shape().0;
        let s = self.score(g, x);
        let vs = g.mul_blocks(v, &s);
        let vs = g.sum_cols(&vs);
        let vv = g.square(v);
        let iv = self.inv_var(g, n);
        let vhv = g.mul_blocks(&vv, &iv);
        let vhv = g.sum_cols(&vhv);
        let vhv = g.neg(&vhv);
        Terms {
            vs,
            vhv,
            score: want_score.then_some(s),
        }
    }
    slicedscore::capabilities!(energy, flow);
}

impl EnergyModel for DiagGauss {
    fn log_density(&self, g: &mut Graph, x: &Mat) -> Mat {
        let n = x.shape().0;
        let neg_mu = g.neg(&self.mu.value);
        let diff = g.add_row(x, &neg_mu);
        let sq = g.square(&diff);
        let iv = self.inv_var(g, n);
        let q = g.mul(&sq, &iv);
        let q = g.sum_cols(&q);
        let q = g.scale(&q, -0.5);
        let c: f64 = self.sigma.iter().map(|s| -s.ln() - 0.5 * LN_2PI).sum();
        g.add_scalar(&q, c)
    }
}

impl FlowModel for DiagGauss {
    fn sample(&self, _dev: &Device, rng: &mut dyn RngCore, n: usize) -> Vec<f64> {
        let mu = self.mu();
        let mut out = Vec::with_capacity(n * self.dim);
        for _ in 0..n {
            for (m, s) in mu.iter().zip(&self.sigma) {
                let e: f64 = rng.sample(StandardNormal);
                out.push(m + s * e);
            }
        }
        out
    }
}

/// An unnormalized copy: same log-density, but not declared normalized and
/// cannot sample.
struct Unnormalized(DiagGauss);

slicedscore::module!(Unnormalized { 0 as "" });

impl ScoreModel for Unnormalized {
    fn dim(&self) -> usize {
        self.0.dim
    }
    fn score(&self, g: &mut Graph, x: &Mat) -> Mat {
        self.0.score(g, x)
    }
    fn terms(&self, g: &mut Graph, x: &Mat, v: &Mat, w: bool) -> Terms {
        self.0.terms(g, x, v, w)
    }
    slicedscore::capabilities!(energy);
}

impl EnergyModel for Unnormalized {
    fn log_density(&self, g: &mut Graph, x: &Mat) -> Mat {
        self.0.log_density(g, x)
    }
}

fn logit(x: f64) -> f64 {
    (x / (1.0 - x)).ln()
}

#[test]
fn log_likelihood_is_the_pixel_space_change_of_variables() {
    let dev = Device::cpu(Precision::F64);
    let t = task("source: Digits, sm_eval_points: 37", 0);
    let model = DiagGauss::new(&dev, 64, -2.0, 9);
    for split in [Split::Validation, Split::Test] {
        let m = t.evaluate(&dev, Some(&model), split);
        let s = t.split_data(split);
        let n = s.len() as f64;
        // Host: the clamped pixel x = sigmoid(y) ∈ [α, 1 − α]; its density is
        // p_Y(logit x) · |d logit/dx|, the derivative by central differences.
        let mut ll_logit = 0.0;
        let mut ll_pixel = 0.0;
        for row in s.x.chunks(64) {
            let x: Vec<f64> = row.iter().map(|&y| sigmoid(y)).collect();
            assert!(x
                .iter()
                .all(|&v| (1e-3 - 1e-12..=1.0 - 1e-3 + 1e-12).contains(&v)));
            let y: Vec<f64> = x.iter().map(|&v| logit(v)).collect();
            let lp = model.host_log_density(&y);
            let log_jac: f64 = x
                .iter()
                .map(|&v| {
                    let h = 1e-4 * v.min(1.0 - v);
                    ((logit(v + h) - logit(v - h)) / (2.0 * h)).ln()
                })
                .sum();
            ll_logit += lp / n;
            ll_pixel += (lp + log_jac) / n;
        }
        let d = 64.0 * std::f64::consts::LN_2;
        let what = split.prefix();
        assert!(
            (m["log_likelihood_logit"] - ll_logit).abs() < 1e-6,
            "{what}: {m:?} vs {ll_logit}"
        );
        assert!(
            (m["log_likelihood"] - ll_pixel).abs() < 1e-5,
            "{what}: {m:?} vs {ll_pixel}"
        );
        // The Jacobian matters: pixel space is far from logit space.
        assert!(
            m["log_likelihood"] - m["log_likelihood_logit"] > 100.0,
            "{m:?}"
        );
        assert!((m["bits_per_dim"] + ll_pixel / d).abs() < 1e-6, "{m:?}");
        let disc = m["bits_per_dim_discrete"] - m["bits_per_dim"];
        assert!((disc - 17f64.log2()).abs() < 1e-12, "{disc}");
        assert!(m["log_likelihood_stderr"] > 0.0);
        // Exact SM on the fixed 37-image subset.
        assert_eq!(s.sm_rows.len(), 37);
        let per: Vec<f64> = s
            .sm_rows
            .iter()
            .map(|&r| model.host_sm(&s.x[r * 64..(r + 1) * 64]))
            .collect();
        let sm = per.iter().sum::<f64>() / 37.0;
        assert!(
            (m["sm_loss"] - sm).abs() < 1e-9 * sm.abs().max(1.0),
            "{what}: {} vs {sm}",
            m["sm_loss"]
        );
        assert!(m["sm_loss_stderr"] > 0.0);
    }
    // The change of variables is a density on (0, 1): ∫ N(logit x; μ, σ²) /
    // (x(1 − x)) dx = 1 (midpoint rule in 1-D).
    let (mu, sig) = (-2.0, 1.3);
    let k = 200_000;
    let integral: f64 = (0..k)
        .map(|i| {
            let x = (i as f64 + 0.5) / k as f64;
            let z = (logit(x) - mu) / sig;
            (-0.5 * z * z).exp() / (sig * (2.0 * std::f64::consts::PI).sqrt()) / (x * (1.0 - x))
        })
        .sum::<f64>()
        / k as f64;
    assert!((integral - 1.0).abs() < 1e-4, "{integral}");
    // An unnormalized model gets only the SM metrics.
    let m = t.evaluate(&dev, Some(&Unnormalized(model)), Split::Test);
    assert_eq!(m.keys().collect::<Vec<_>>(), ["sm_loss", "sm_loss_stderr"]);
}

#[test]
fn eight_bit_bits_per_dim_counts_256_levels_and_no_logit_has_no_jacobian() {
    let dev = Device::cpu(Precision::F64);
    let px = [3u8, 200, 128, 1, 254, 64];
    let (_d, t) = constant_task(px, 100, "", 0);
    let model = DiagGauss::new(&dev, 6, 0.0, 1);
    let m = t.evaluate(&dev, Some(&model), Split::Test);
    assert!((m["bits_per_dim_discrete"] - m["bits_per_dim"] - 8.0).abs() < 1e-12);
    let (_d, t) = constant_task(px, 100, ", logit: false", 0);
    let model = DiagGauss::new(&dev, 6, 0.5, 1);
    let m = t.evaluate(&dev, Some(&model), Split::Test);
    assert!(!m.contains_key("log_likelihood_logit"));
    let s = t.split_data(Split::Test);
    let want =
        s.x.chunks(6)
            .map(|r| model.host_log_density(r))
            .sum::<f64>()
            / s.len() as f64;
    assert!(
        (m["log_likelihood"] - want).abs() < 1e-9,
        "{} vs {want}",
        m["log_likelihood"]
    );
}

// ---------------------------------------------------------------------------
// Sample grids

#[test]
fn sample_grid_has_the_right_size_and_encodes_as_png() {
    let dev = Device::cpu(Precision::F64);
    let model = DiagGauss::new(&dev, 64, 0.0, 2);
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let (rgb, w, h) = sample_grid(&model, &dev, &mut rng, 64, 8).expect("the model samples");
    assert_eq!((w, h), (8 * 9 + 1, 8 * 9 + 1));
    assert_eq!(rgb.len(), w * h * 3);
    // Borders are grey; tiles hold grey levels (R = G = B), not all one value.
    assert_eq!(&rgb[..3], &[BORDER; 3]);
    assert!(rgb.chunks(3).all(|p| p[0] == p[1] && p[1] == p[2]));
    let tile: Vec<u8> = (1..9).map(|j| rgb[(w + j) * 3]).collect();
    assert!(tile.iter().any(|&v| v != tile[0]), "{tile:?}");
    // The grey level is sigmoid of the sample: redraw the first sample.
    let first = model.sample(&dev, &mut ChaCha8Rng::seed_from_u64(0), 1);
    assert_eq!(rgb[(w + 1) * 3], (sigmoid(first[0]) * 255.0).round() as u8);
    let png = png_bytes(&rgb, w, h).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let mut reader = png::Decoder::new(png.as_slice()).read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!((info.width as usize, info.height as usize), (w, h));
    assert_eq!(info.color_type, png::ColorType::Rgb);
    assert_eq!(&buf[..info.buffer_size()], rgb.as_slice());
    // 10 samples: 4 columns, 3 rows.
    assert_eq!(grid_shape(10), (4, 3));
    let (_, w, h) = sample_grid(&model, &dev, &mut rng, 10, 8).unwrap();
    assert_eq!((w, h), (4 * 9 + 1, 3 * 9 + 1));
    // No grid from a model that cannot sample, for 0 samples or a wrong size.
    let u = Unnormalized(DiagGauss::new(&dev, 64, 0.0, 2));
    assert!(sample_grid(&u, &dev, &mut rng, 64, 8).is_none());
    assert!(sample_grid(&model, &dev, &mut rng, 0, 8).is_none());
    assert!(sample_grid(&model, &dev, &mut rng, 4, 7).is_none());
    // The task's artifact.
    let t = task("source: Digits, samples: 16", 0);
    let a = t.artifacts(&dev, Some(&model), &mut rng);
    assert_eq!(a.len(), 1);
    let Artifact::Image {
        name,
        width,
        height,
        rgb,
    } = &a[0];
    assert_eq!((name.as_str(), *width, *height), ("samples", 37, 37));
    assert_eq!(rgb.len(), 37 * 37 * 3);
    assert!(t.artifacts(&dev, Some(&u), &mut rng).is_empty());
    let t = task("source: Digits, samples: 0", 0);
    assert!(t.artifacts(&dev, Some(&model), &mut rng).is_empty());
}

#[test]
fn a_training_run_reports_likelihoods_and_writes_samples_png() {
    let dir = tempfile::tempdir().unwrap();
    let text = r#"Experiment(
    name: "images_run",
    seed: 0,
    task: {"images": (source: Digits, sm_eval_points: 50, samples: 25)},
    model: {"mlp_energy": (hidden: [4], activation: Softplus)},
    objective: {"sm": ()},
    projection: {"rademacher": ()},
    optimizer: Adam(lr: 0.05),
    batch_size: 64,
    iterations: 60,
    eval_every: 20,
)"#;
    let path = dir.path().join("e.ron");
    std::fs::write(&path, text).unwrap();
    let exp = Experiment::parse(text, &path).unwrap();
    let mut built = exp.build().unwrap();
    let before = DiagGauss::new(&built.dev, 64, 0.0, 4);
    built.model =
        slicedscore::model::ModelSlot::Trained(Box::new(DiagGauss::new(&built.dev, 64, 0.0, 4)));
    let untrained = built.task.evaluate(&built.dev, Some(&before), Split::Test);
    let run = dir.path().join("run");
    let summary = train(
        &exp,
        text,
        built,
        &RunOptions {
            run_dir: Some(run.clone()),
            progress: false,
            ..RunOptions::default()
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    for k in [
        "sm_loss",
        "sm_loss_stderr",
        "log_likelihood_logit",
        "log_likelihood",
        "bits_per_dim",
        "bits_per_dim_discrete",
    ] {
        assert!(summary.test[k].is_finite(), "{k}: {:?}", summary.test);
    }
    // Exact SM moves μ towards the data mean: both metrics improve.
    assert!(
        summary.test["sm_loss"] < untrained["sm_loss"],
        "{:?} vs {untrained:?}",
        summary.test
    );
    assert!(summary.test["log_likelihood"] > untrained["log_likelihood"]);
    let bytes = std::fs::read(run.join("samples.png")).expect("samples.png written");
    let mut reader = png::Decoder::new(bytes.as_slice()).read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!((info.width, info.height), (5 * 9 + 1, 5 * 9 + 1));
    let events = slicedscore::logging::find_event_files(&run);
    let events = slicedscore::logging::read_events(&events[0]).unwrap();
    let images = |tag: &str| -> Vec<(i64, Vec<u8>)> {
        events
            .iter()
            .flat_map(|e| e.values.iter().map(move |v| (e.step, v)))
            .filter(|(_, v)| v.tag == tag)
            .map(|(step, v)| match &v.kind {
                slicedscore::logging::ValueKind::Image { png, .. } => (step, png.clone()),
                other => panic!("{tag} at step {step} is not an image: {other:?}"),
            })
            .collect()
    };
    // One grid per evaluation, each under its own step; the best model's
    // grid under its own tag at the best step (TensorBoard keeps one image
    // per tag and step, so neither replaces the other).
    let evals = images("images/samples");
    let steps: Vec<i64> = evals.iter().map(|(s, _)| *s).collect();
    assert_eq!(steps, [20, 40, 60]);
    let best = images("best/images/samples");
    assert_eq!(best.len(), 1);
    assert_eq!(best[0].0, summary.best_step as i64);
    // The best model is the one evaluated at the best step: the same grid
    // (the samples' stream is seeded the same way each time).
    let at_best = evals.iter().find(|(s, _)| *s == best[0].0).unwrap();
    assert_eq!(at_best.1, best[0].1);
}

// ---------------------------------------------------------------------------
// Real data, when present

fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

#[test]
fn real_mnist_when_present() {
    let dir = repo_path("data/mnist");
    if !dir.join(MNIST_FILES[0]).exists() && !dir.join(format!("{}.gz", MNIST_FILES[0])).exists() {
        eprintln!(
            "SKIP real_mnist_when_present: {} has no MNIST; run scripts/fetch-mnist.sh",
            dir.display()
        );
        return;
    }
    let set = ImageSource::Mnist { dir: dir.clone() }.load().unwrap();
    assert_eq!((set.height, set.width), (28, 28));
    assert_eq!(set.train.count, 60_000);
    assert_eq!(set.train.pixels.len(), 60_000 * 784);
    let test = set.test.as_ref().unwrap();
    assert_eq!(test.count, 10_000);
    let mut classes = [0usize; 10];
    for &l in &set.train.labels {
        classes[l as usize] += 1;
    }
    // MNIST's training class counts: 5923 zeros … 5949 nines.
    assert_eq!(
        classes,
        [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    );
    assert_eq!(set.train.labels[..5], [5, 0, 4, 1, 9]);
    let t = task(
        &format!("source: Mnist(dir: {:?})", dir.display().to_string()),
        0,
    );
    assert_eq!(
        t.sizes(),
        SplitSizes {
            train: 54_000,
            val: 6_000,
            test: 10_000
        }
    );
    assert_eq!(Task::dim(&t), 784);
}

#[test]
fn real_fashion_mnist_when_present() {
    let dir = std::env::var_os("SLICEDSCORE_FASHION_MNIST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/usr/share/datasets/fashion-mnist".into());
    if !dir.exists() {
        eprintln!(
            "SKIP real_fashion_mnist_when_present: {} does not exist; \
             apt-get install -y dataset-fashion-mnist",
            dir.display()
        );
        return;
    }
    let set = ImageSource::FashionMnist { dir }.load().unwrap();
    assert_eq!(
        (set.train.count, set.test.as_ref().unwrap().count),
        (60_000, 10_000)
    );
    let mut classes = [0usize; 10];
    for &l in &set.train.labels {
        classes[l as usize] += 1;
    }
    assert_eq!(classes, [6000; 10]);
}
