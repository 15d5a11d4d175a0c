//! Langevin sampling (`slicedscore::sampling`): with a known score it
//! reproduces the target's moments (plain Langevin up to its known step-size
//! bias, MALA exactly, annealing across the modes of a mixture); sampling a
//! trained model lands near its data; the evaluation-time metrics are
//! seeded, and the 2-D pictures are written.

mod common;

use std::path::Path;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use slicedscore::linalg;
use slicedscore::run_loader::{load_experiment, load_model, load_task, Which};
use slicedscore::sampling::distance::sliced_wasserstein;
use slicedscore::sampling::init::Init;
use slicedscore::sampling::langevin::{sample, Annealing, Langevin};
use slicedscore::sampling::{evaluation, Density, ModelDensity, SampleError, TargetDensity};
use slicedscore::targets::{Target, TargetSpec};
use slicedscore::task::Split;

use common::{num, read_json, train_file, ExpSpec};

fn target(spec: &str, seed: u64) -> Box<dyn Target> {
    let s: TargetSpec = ron::from_str(spec).unwrap();
    s.build(&mut ChaCha8Rng::seed_from_u64(seed)).unwrap()
}

/// Entries of the sample mean and the centred second moments that miss
/// `mean` / `cov` by more than `k` standard errors (estimated from the
/// samples), one message each.
fn moment_violations(x: &[f64], d: usize, mean: &[f64], cov: &[f64], k: f64) -> Vec<String> {
    let n = (x.len() / d) as f64;
    let check = |vals: Vec<f64>, want: f64, what: String| -> Option<String> {
        let m = vals.iter().sum::<f64>() / n;
        let var = vals.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (n - 1.0);
        let se = (var / n).sqrt();
        ((m - want).abs() > k * se).then(|| format!("{what}: {m} vs {want} (se {se:.2e})"))
    };
    let mut bad = Vec::new();
    for i in 0..d {
        let xi: Vec<f64> = x.chunks(d).map(|r| r[i]).collect();
        bad.extend(check(xi, mean[i], format!("E[x{i}]")));
        for j in 0..=i {
            let v = x
                .chunks(d)
                .map(|r| (r[i] - mean[i]) * (r[j] - mean[j]))
                .collect();
            bad.extend(check(v, cov[i * d + j], format!("Cov[{i},{j}]")));
        }
    }
    bad
}

/// The true score times a factor (wrong unless 1).
struct Scaled<'a>(&'a dyn Density, f64);

impl Density for Scaled<'_> {
    fn dim(&self) -> usize {
        self.0.dim()
    }
    fn scores(&self, x: &[f64]) -> Vec<f64> {
        self.0.scores(x).iter().map(|s| s * self.1).collect()
    }
    fn log_densities(&self, x: &[f64]) -> Option<Vec<f64>> {
        self.0
            .log_densities(x)
            .map(|l| l.iter().map(|v| v * self.1).collect())
    }
}

fn run(density: &dyn Density, init: Vec<f64>, l: &Langevin, seed: u64) -> Vec<f64> {
    sample(density, init, l, &mut ChaCha8Rng::seed_from_u64(seed))
        .unwrap_or_else(|e| panic!("{e}"))
        .points
}

#[test]
fn langevin_with_the_true_score_reproduces_a_correlated_gaussian() {
    // N(0, Σ) in 3-D with a random rotation and variances 1 … 0.1.
    let t = target("Gaussian(dim: 3, condition: 10.0)", 4);
    let (d, n) = (3, 8000);
    let sigma = t.covariance().unwrap();
    let mean = vec![0.0; d];
    let truth = TargetDensity(&*t);
    let init = Init::Noise { std: 1.0 }
        .points(n, d, None, &mut ChaCha8Rng::seed_from_u64(1))
        .unwrap();

    // Plain Langevin: stationary covariance (Σ⁻¹ − (ε/4)Σ⁻²)⁻¹ exactly
    // (the O(ε) bias of the unadjusted chain), not Σ.
    let eps = 0.02;
    let plain = Langevin {
        steps: 800,
        step_size: eps,
        ..Langevin::default()
    };
    let ula_cov = |eps: f64| {
        let p = linalg::inverse(&sigma, d).unwrap();
        let p2 = linalg::mat_mul(&p, &p, d, d, d).unwrap();
        let m: Vec<f64> = p.iter().zip(&p2).map(|(a, b)| a - eps / 4.0 * b).collect();
        linalg::inverse(&m, d).unwrap()
    };
    let x = run(&truth, init.clone(), &plain, 2);
    let bad = moment_violations(&x, d, &mean, &ula_cov(eps), 4.5);
    assert!(bad.is_empty(), "plain Langevin: {bad:#?}");

    // MALA at a step where the plain chain's bias is 60 % on the narrowest
    // direction: the Metropolis correction gives Σ itself …
    let mala = Langevin {
        steps: 500,
        step_size: 0.15,
        mala: true,
        ..Langevin::default()
    };
    let chains = sample(
        &truth,
        init.clone(),
        &mala,
        &mut ChaCha8Rng::seed_from_u64(3),
    )
    .unwrap();
    let acc = chains.acceptance.unwrap();
    assert!(acc > 0.4 && acc < 1.0, "acceptance {acc}");
    let bad = moment_violations(&chains.points, d, &mean, &sigma, 4.5);
    assert!(bad.is_empty(), "MALA: {bad:#?}");
    // … which the uncorrected chain at that step misses (the check has
    // power), landing on its own biased covariance instead.
    let plain_big = Langevin {
        mala: false,
        ..mala.clone()
    };
    let biased = run(&truth, init.clone(), &plain_big, 3);
    assert!(
        !moment_violations(&biased, d, &mean, &sigma, 4.5).is_empty(),
        "plain Langevin at ε = 0.15 passed as exact"
    );
    let bad = moment_violations(&biased, d, &mean, &ula_cov(0.15), 4.5);
    assert!(bad.is_empty(), "plain Langevin at ε = 0.15: {bad:#?}");
    // A score off by a factor 2 halves the covariance, and fails.
    let wrong = run(&Scaled(&truth, 2.0), init, &plain, 2);
    assert!(!moment_violations(&wrong, d, &mean, &ula_cov(eps), 4.5).is_empty());
}

/// Which of the `k` ring components (angle `2πj/k`) each 2-D point is nearest to.
fn ring_counts(x: &[f64], k: usize) -> Vec<usize> {
    let mut counts = vec![0; k];
    for p in x.chunks(2) {
        let a = p[1].atan2(p[0]).rem_euclid(std::f64::consts::TAU);
        counts[((a / std::f64::consts::TAU * k as f64).round() as usize) % k] += 1;
    }
    counts
}

#[test]
fn annealed_langevin_crosses_between_the_modes_of_a_mixture() {
    // Eight Gaussians on a ring of radius 2 (std 0.15: the density between
    // neighbours is e⁻¹³ of the peaks); every chain starts in the
    // component at angle 0.
    let t = target("Mixture2d(components: 8, radius: 2.0, std: 0.15)", 0);
    let n = 2000;
    let truth = TargetDensity(&*t);
    let init: Vec<f64> = Init::Noise { std: 0.1 }
        .points(n, 2, None, &mut ChaCha8Rng::seed_from_u64(5))
        .unwrap()
        .chunks(2)
        .flat_map(|p| [p[0] + 2.0, p[1]])
        .collect();
    let annealed = Langevin {
        steps: 300,
        step_size: 0.01,
        annealed: Some("5.0..0.05:8".parse::<Annealing>().unwrap()),
        mala: false,
    };
    let x = run(&truth, init.clone(), &annealed, 6);
    let counts = ring_counts(&x, 8);
    let p = 1.0 / 8.0;
    let se = (p * (1.0 - p) / n as f64).sqrt();
    for (j, &c) in counts.iter().enumerate() {
        let f = c as f64 / n as f64;
        assert!(
            (f - p).abs() < 5.0 * se,
            "component {j}: fraction {f} (counts {counts:?})"
        );
    }
    // Mean 0 and covariance (r²/2 + std²)·I.
    let v = 2.0 + 0.15f64.powi(2);
    let bad = moment_violations(&x, 2, &[0.0, 0.0], &[v, 0.0, 0.0, v], 4.5);
    assert!(bad.is_empty(), "{bad:#?}");
    // The same number of plain steps stays in the starting component.
    let plain = Langevin {
        steps: annealed.total_steps(),
        annealed: None,
        ..annealed
    };
    let stuck = ring_counts(&run(&truth, init, &plain, 6), 8);
    assert!(stuck[0] as f64 > 0.9 * n as f64, "{stuck:?}");
}

#[test]
fn bad_settings_and_divergence_are_errors() {
    let t = target("Gaussian(dim: 2, condition: 2.0)", 0);
    let truth = TargetDensity(&*t);
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let l = Langevin {
        step_size: -1.0,
        ..Langevin::default()
    };
    let e = sample(&truth, vec![0.0; 4], &l, &mut rng).unwrap_err();
    assert!(
        matches!(e, SampleError::Setting { ref field, .. } if field == "step_size"),
        "{e}"
    );
    let e = sample(&truth, vec![0.0; 3], &Langevin::default(), &mut rng).unwrap_err();
    assert!(e.to_string().contains("rows of dimension 2"), "{e}");
    // A step far beyond the stability limit 4λ_min = 2 blows up: an error
    // naming the step, not NaN samples.
    let big = Langevin {
        steps: 2000,
        step_size: 10.0,
        ..Langevin::default()
    };
    let e = sample(&truth, vec![1.0; 20], &big, &mut rng).unwrap_err();
    assert!(matches!(e, SampleError::NonFinite { .. }), "{e}");
    assert!(e.to_string().contains("step size is too large"), "{e}");
}

/// A correlated 2-D Gaussian (variances 1 and 0.2, rotated).
const GAUSS: &str = "Gaussian(dim: 2, condition: 5.0)";

fn train_quick(dir: &Path, model: &str, iterations: usize) -> std::path::PathBuf {
    let spec = ExpSpec {
        name: "sampling".into(),
        target: GAUSS.into(),
        model: model.into(),
        iterations,
        eval_every: iterations / 2,
        train_size: 5000,
        ..ExpSpec::default()
    };
    let file = spec.write(dir, "sampling.ron");
    let run_dir = dir.join("run");
    train_file(&file, &run_dir);
    run_dir
}

#[test]
fn a_trained_model_samples_close_to_its_data_and_evaluation_is_seeded() {
    let tmp = tempfile::tempdir().unwrap();
    let run_dir = train_quick(
        tmp.path(),
        r#"{"mlp_score": (hidden: [32, 32], activation: Softplus)}"#,
        600,
    );
    let loaded = load_model(&run_dir, Which::Best).unwrap();
    let density = ModelDensity::new(&loaded.dev, &*loaded.model).unwrap();
    // The task's target (the data stream of seed 0 draws its rotation first).
    let task = load_task(&run_dir).unwrap();
    let t = task.truth().expect("a synthetic task");
    let n = 1000;
    let settings = Langevin {
        steps: 500,
        ..Langevin::default()
    };
    let init = Init::Noise { std: 1.5 }
        .points(n, 2, None, &mut ChaCha8Rng::seed_from_u64(7))
        .unwrap();
    let samples = run(&density, init.clone(), &settings, 8);
    let fresh = |seed| t.sample(&mut ChaCha8Rng::seed_from_u64(seed), n);
    let sw =
        |a: &[f64], b: &[f64]| sliced_wasserstein(a, b, 2, 128, &mut ChaCha8Rng::seed_from_u64(9));
    // The floor: two independent data sets of the same sizes.
    let floor = (0..5)
        .map(|k| sw(&fresh(100 + k), &fresh(200 + k)))
        .sum::<f64>()
        / 5.0;
    let model_sw = sw(&samples, &fresh(300));
    // The same sampler with a score off by a factor 1/2 (variances doubled).
    let truth = TargetDensity(t);
    let wrong_sw = sw(&run(&Scaled(&truth, 0.5), init, &settings, 8), &fresh(300));
    eprintln!("SW₂: floor {floor:.4}, trained model {model_sw:.4}, wrong score {wrong_sw:.4}");
    assert!(
        model_sw < 2.0 * floor,
        "trained model's samples: SW₂ {model_sw} ≥ 2 × floor {floor}"
    );
    assert!(
        wrong_sw > 2.0 * floor,
        "a wrong score passed: {wrong_sw} vs floor {floor}"
    );

    // The run logged the samples-vs-data metrics, and recomputing them on the
    // reloaded best model with the run's seed gives the same numbers.
    let m = read_json(&run_dir.join("metrics.json"));
    let logged = num(
        &m["test"]["metrics"]["test/langevin_sliced_wasserstein"],
        "test SW",
    );
    assert!(logged.is_finite() && logged > 0.0);
    assert!(num(&m["test"]["metrics"]["test/langevin_mmd2"], "test MMD²").is_finite());
    let (exp, _) = load_experiment(&run_dir).unwrap();
    let again = evaluation::metrics(
        &exp.sampling,
        &loaded.dev,
        &*task,
        Some(&*loaded.model),
        Split::Test,
        exp.seed,
    );
    assert_eq!(
        again["langevin_sliced_wasserstein"].to_bits(),
        logged.to_bits()
    );
    let other_seed = evaluation::metrics(
        &exp.sampling,
        &loaded.dev,
        &*task,
        Some(&*loaded.model),
        Split::Test,
        exp.seed + 1,
    );
    assert_ne!(other_seed["langevin_sliced_wasserstein"], logged);
    // The 2-D picture of the best model is in the run folder.
    let png = std::fs::read(run_dir.join("field_and_samples.png")).unwrap();
    let info = png::Decoder::new(std::io::Cursor::new(png))
        .read_info()
        .unwrap();
    assert_eq!((info.info().width, info.info().height), (1080, 360));
}

#[test]
fn sampling_can_be_switched_off_and_refuses_conditional_models() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = ExpSpec {
        name: "off".into(),
        iterations: 20,
        eval_every: 10,
        ..ExpSpec::default()
    };
    let text = spec.ron().replace(
        "eval_every: 10,",
        "eval_every: 10,\n    sampling: (chains: 0),",
    );
    let file = common::write_file(tmp.path(), "off.ron", &text);
    let run_dir = tmp.path().join("run");
    train_file(&file, &run_dir);
    let m = read_json(&run_dir.join("metrics.json"));
    assert!(
        m["test"]["metrics"]
            .get("test/langevin_sliced_wasserstein")
            .is_none(),
        "{m:#}"
    );
    assert!(!run_dir.join("field_and_samples.png").exists());
    // A bad setting names its field.
    let bad = spec.ron().replace(
        "eval_every: 10,",
        "eval_every: 10,\n    sampling: (chains: 1),",
    );
    let e = slicedscore::experiment::Experiment::parse(&bad, Path::new("bad.ron"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("sampling.chains"), "{e}");

    let c: slicedscore::registry::Component<dyn slicedscore::registry::ModelConfig> =
        ron::from_str(r#"{"mlp_score": (hidden: [8])}"#).unwrap();
    let conditional = c
        .config
        .build_conditional(&common::dev(), 2, 3, &mut ChaCha8Rng::seed_from_u64(0))
        .unwrap()
        .trained()
        .unwrap();
    let dev = common::dev();
    assert_eq!(
        ModelDensity::new(&dev, &*conditional).err(),
        Some(SampleError::Conditional { context: 3 })
    );
}
