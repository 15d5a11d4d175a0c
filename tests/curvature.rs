//! Backward curvature estimates of the Hessian diagonal: approximate
//! backprop is exact for one hidden layer, curvature propagation is unbiased
//! for deeper networks, and ∇θ of both objectives matches finite differences.

mod common;

use common::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use slicedscore::autodiff::curvature::CurvatureMethod;
use slicedscore::autodiff::Graph;
use slicedscore::model::ScoreModel;

const N: usize = 4;
const D: usize = 3;

fn estimate(
    m: &dyn ScoreModel,
    x: &[f64],
    method: &mut CurvatureMethod<'_>,
) -> (Vec<f64>, Vec<f64>) {
    curvature_of(m, x, D, method)
}

fn score(m: &dyn ScoreModel, x: &[f64]) -> Vec<f64> {
    let mut g = Graph::inference(&dev());
    (m.score(&mut g, &mat(x.to_vec(), N, D))).to_host()
}

#[test]
fn approx_bp_is_exact_for_one_hidden_layer() {
    for act in ["Softplus", "Tanh", "Swish"] {
        let m = model(
            &format!(r#"{{"mlp_energy": (hidden: [8], activation: {act})}}"#),
            D,
            1,
        );
        let x = randn(&mut ChaCha8Rng::seed_from_u64(2), N * D);
        let (s, d) = estimate(&*m, &x, &mut CurvatureMethod::ApproxBp);
        assert_close(
            &d,
            &exact_diag(&*m, &x, D),
            1e-10,
            1e-8,
            &format!("approx-BP diag {act}"),
        );
        assert_close(&s, &score(&*m, &x), 1e-12, 1e-12, "curvature pass score");
    }
}

const DKEF: &str = r#"{"dkef": (features: 5, layers: 2, inducing_points: 6, alpha: Trained)}"#;

#[test]
fn curvature_pass_gives_the_score_for_dkef() {
    let m = model(DKEF, D, 11);
    let x = randn(&mut ChaCha8Rng::seed_from_u64(12), N * D);
    let (s, _) = estimate(&*m, &x, &mut CurvatureMethod::ApproxBp);
    assert_close(
        &s,
        &score(&*m, &x),
        1e-10,
        1e-10,
        "dkef curvature-pass score",
    );
}

#[test]
fn cp_is_unbiased_for_dkef() {
    let m = model(DKEF, D, 13);
    let x = randn(&mut ChaCha8Rng::seed_from_u64(14), N * D);
    check_cp_unbiased(&*m, &x, 20_000, 15);
}

#[test]
fn approx_bp_is_only_approximate_for_deeper_networks() {
    let m = model(
        r#"{"mlp_energy": (hidden: [8, 8], activation: Tanh)}"#,
        D,
        3,
    );
    let x = randn(&mut ChaCha8Rng::seed_from_u64(4), N * D);
    let (_, d) = estimate(&*m, &x, &mut CurvatureMethod::ApproxBp);
    let e = exact_diag(&*m, &x, D);
    let max = d
        .iter()
        .zip(&e)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(max > 1e-6, "two hidden layers should show approx-BP's bias");
}

#[test]
fn cp_is_unbiased_for_the_hessian_diagonal() {
    let m = model(
        r#"{"mlp_energy": (hidden: [8, 6], activation: Softplus)}"#,
        D,
        5,
    );
    let x = randn(&mut ChaCha8Rng::seed_from_u64(6), N * D);
    check_cp_unbiased(&*m, &x, 20_000, 7);
}

fn check_cp_unbiased(m: &dyn ScoreModel, x: &[f64], draws: usize, seed: u64) {
    let exact = exact_diag(m, x, D);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut sum = [0.0; N * D];
    let mut sum2 = [0.0; N * D];
    for _ in 0..draws {
        let (_, d) = estimate(m, x, &mut CurvatureMethod::Cp { rng: &mut rng });
        for (k, v) in d.iter().enumerate() {
            sum[k] += v;
            sum2[k] += v * v;
        }
    }
    for k in 0..N * D {
        let mean = sum[k] / draws as f64;
        let var = (sum2[k] / draws as f64 - mean * mean).max(0.0);
        let se = (var / draws as f64).sqrt();
        assert!(
            (mean - exact[k]).abs() <= 5.0 * se + 1e-12,
            "entry {k}: CP mean {mean} ± {se}, exact {}",
            exact[k]
        );
    }
    // The check has power: a 20% scale error would be detected on most entries.
    let tight = (0..N * D).filter(|&k| {
        let mean = sum[k] / draws as f64;
        let se = ((sum2[k] / draws as f64 - mean * mean).max(0.0) / draws as f64).sqrt();
        5.0 * se < 0.2 * exact[k].abs()
    });
    assert!(
        tight.count() >= N * D / 2,
        "CP test too noisy to detect a 20% bias"
    );
}

#[test]
fn parameter_gradients_of_approx_bp_and_cp_match_finite_differences() {
    let proj = projection(r#"{"rademacher": ()}"#);
    for mspec in [
        DKEF,
        r#"{"mlp_energy": (hidden: [6, 5], activation: Softplus)}"#,
        r#"{"mlp_energy": (hidden: [5], activation: Tanh)}"#,
    ] {
        for ospec in [r#"{"approx_bp": ()}"#, r#"{"cp": ()}"#] {
            let mut m = model(mspec, D, 8);
            let obj = objective(ospec);
            let mut rng = ChaCha8Rng::seed_from_u64(9);
            let x = mat(randn(&mut rng, N * D), N, D);
            let label = format!("{mspec} {ospec}");
            let checked =
                check_param_gradients(&mut *m, &*obj, &*proj, &x, 77, &mut rng, 5, &label);
            assert!(checked > 10);
        }
    }
}

#[test]
fn curvature_objectives_refuse_models_without_it() {
    let text = r#"(name: "t", task: {"synthetic": (target: Mixture2d(components: 2, radius: 1.0, std: 0.5))},
        model: {"mlp_score": ()}, objective: {"cp": ()}, projection: {"rademacher": ()},
        optimizer: Adam(lr: 0.001), batch_size: 8, iterations: 1, eval_every: 1)"#;
    let exp =
        slicedscore::experiment::Experiment::parse(text, std::path::Path::new("x.ron")).unwrap();
    let err = exp.build().err().expect("refused").to_string();
    assert!(
        err.starts_with("objective: `cp`") && err.contains("curvature"),
        "{err}"
    );
}
