//! The `images` task's maps into logit space on the embedded 8×8 digits:
//! the paper's clamp piles coordinates onto `logit(α)` (point masses), the
//! squeeze leaves no coordinate value repeated; the squeeze's pixel-space
//! log-Jacobian matches finite differences; `noise_sigma` adds noise in
//! logit space; the default is the clamp, drawn exactly as before; bad
//! settings are refused by field.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use slicedscore::image_data::transform::sigmoid;
use slicedscore::plugins::tasks::images::{ImagesConfig, ImagesTask};
use slicedscore::task::{Split, Task};

fn task(settings: &str) -> ImagesTask {
    let cfg: ImagesConfig = ron::from_str(&format!("(source: Digits{settings})")).unwrap();
    cfg.build_task(&mut ChaCha8Rng::seed_from_u64(0))
        .unwrap_or_else(|e| panic!("{settings}: {e}"))
}

/// Every coordinate of the held-out splits and of 20 training batches.
fn coordinates(t: &mut ImagesTask) -> Vec<f64> {
    let mut all = t.split_data(Split::Validation).x.clone();
    all.extend(&t.split_data(Split::Test).x);
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for _ in 0..20 {
        all.extend(t.train_batch(&mut rng, 128));
    }
    all
}

/// The fraction of values equal to another value.
fn repeated_fraction(values: &[f64]) -> f64 {
    let mut s = values.to_vec();
    s.sort_by(f64::total_cmp);
    let repeats = s
        .iter()
        .enumerate()
        .filter(|(i, v)| (*i > 0 && s[i - 1] == **v) || (i + 1 < s.len() && s[i + 1] == **v))
        .count();
    repeats as f64 / s.len() as f64
}

#[test]
fn the_clamp_makes_point_masses_the_squeeze_none() {
    let clamp = coordinates(&mut task(""));
    let f = repeated_fraction(&clamp);
    // Zero pixels are about half of the digits' pixels; half of them
    // dequantise below α (the noise is ±1/34 around 0).
    assert!(f > 0.2 && f < 0.35, "clamped: {f} of the values repeat");
    let floor = clamp.iter().copied().fold(f64::INFINITY, f64::min);
    let at_floor = clamp.iter().filter(|&&y| y == floor).count();
    let floor_fraction = at_floor as f64 / clamp.len() as f64;
    eprintln!("clamp: {f:.4} of the coordinates repeat, {floor_fraction:.4} sit at logit(α)");
    assert!(floor_fraction > 0.2, "{at_floor}");
    let squeeze = coordinates(&mut task(", logit_map: Squeeze"));
    assert_eq!(squeeze.len(), clamp.len());
    assert_eq!(repeated_fraction(&squeeze), 0.0, "squeezed values repeat");
    let noisy = coordinates(&mut task(", logit_map: Squeeze, noise_sigma: 0.05"));
    assert_eq!(repeated_fraction(&noisy), 0.0);
    // The squeeze maps [0, 1) into [logit(α), logit(1 − α)).
    let top = (999.0f64).ln();
    assert!(squeeze.iter().all(|&y| y >= -top - 1e-9 && y < top + 1e-9));
}

#[test]
fn squeeze_log_jacobian_matches_finite_differences_of_the_pixel_map() {
    let alpha: f64 = 1e-3;
    let t = task(", logit_map: Squeeze");
    let s = t.split_data(Split::Test);
    // y = logit(α + (1 − 2α)x) at x = (sigmoid(y) − α)/(1 − 2α) ∈ [0, 1).
    let map = |x: f64| {
        let u = alpha + (1.0 - 2.0 * alpha) * x;
        (u / (1.0 - u)).ln()
    };
    for (row, lj) in s.x.chunks(64).zip(&s.log_jacobian) {
        let want: f64 = row
            .iter()
            .map(|&y| {
                let x = (sigmoid(y) - alpha) / (1.0 - 2.0 * alpha);
                assert!((-1e-12..1.0).contains(&x), "{x}");
                assert!((map(x) - y).abs() < 1e-9);
                let h = 1e-7;
                ((map(x + h) - map(x - h)) / (2.0 * h)).ln()
            })
            .sum();
        assert!((lj - want).abs() < 1e-5 * want.abs(), "{lj} vs {want}");
    }
    // Digits dequantise into cells (p + U)/17: every pixel value is recovered.
    let v = t.split_data(Split::Validation);
    for &y in &v.x {
        let x = (sigmoid(y) - alpha) / (1.0 - 2.0 * alpha);
        assert!((0..17).contains(&((x * 17.0).floor() as i64)), "{x}");
    }
}

#[test]
fn noise_moves_the_coordinates_and_the_jacobian_follows() {
    let plain = task(", logit_map: Squeeze");
    let noisy = task(", logit_map: Squeeze, noise_sigma: 0.1");
    let (a, b) = (
        plain.split_data(Split::Validation),
        noisy.split_data(Split::Validation),
    );
    assert_eq!(a.x.len(), b.x.len());
    assert_ne!(a.x, b.x);
    // Jacobian at the noisy coordinate: ln(1 − 2α) − ln u − ln(1 − u), u = sigmoid(y).
    for (row, lj) in b.x.chunks(64).zip(&b.log_jacobian) {
        let want: f64 = row
            .iter()
            .map(|&y| {
                let u = sigmoid(y);
                (1.0 - 2e-3f64).ln() - u.ln() - (1.0 - u).ln()
            })
            .sum();
        assert!((lj - want).abs() < 1e-8 * want.abs(), "{lj} vs {want}");
    }
    assert!(noisy.describe().contains("noise"), "{}", noisy.describe());
}

#[test]
fn the_default_is_the_clamp_drawn_as_before() {
    let a = task("");
    let b = task(", logit_map: Clamp, noise_sigma: 0.0");
    for split in [Split::Validation, Split::Test] {
        assert_eq!(a.split_data(split).x, b.split_data(split).x);
        assert_eq!(
            a.split_data(split).log_jacobian,
            b.split_data(split).log_jacobian
        );
    }
    // (`tests/images.rs` checks what the clamp draws and how.)
    assert!(a.describe().contains("clamped"), "{}", a.describe());
}

#[test]
fn bad_preprocessing_settings_are_refused_by_field() {
    for (settings, field) in [
        (", logit: false, logit_map: Squeeze", "logit_map"),
        (", noise_sigma: -0.1", "noise_sigma"),
        (", noise_sigma: inf", "noise_sigma"),
    ] {
        let cfg: ImagesConfig = ron::from_str(&format!("(source: Digits{settings})")).unwrap();
        let e = cfg.validate().expect_err(settings);
        assert_eq!(e.field, field, "{settings}: {e}");
    }
    let e = ron::from_str::<ImagesConfig>("(source: Digits, logit_map: Squash)").unwrap_err();
    assert!(e.to_string().contains("Squash"), "{e}");
}
