//! `ssm_cv`, sliced score matching with the control variate
//! `½((vᵀs)² − ‖s‖²)`: at a fixed coefficient its loss and gradient are
//! unbiased for exact SM over projection draws; coefficient 0 is `ssm` and 1
//! is `ssm_vr` draw for draw (so a sign or scale error in the control
//! variate fails here); the batch's optimal coefficient gives a variance no
//! larger than either.

mod common;

use common::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use slicedscore::autodiff::Graph;
use slicedscore::device::Mat;
use slicedscore::model::ScoreModel;
use slicedscore::objective::exact_sm_loss;

const NICE: &str = r#"{"nice": (couplings: 2, hidden_layers: 1, hidden_units: 8)}"#;
const ENERGY: &str = r#"{"mlp_energy": (hidden: [16, 16], activation: Softplus)}"#;

fn setup(spec: &str) -> (Box<dyn ScoreModel>, Mat) {
    setup_n(spec, 6)
}

/// A model of dimension 5 and a batch of `n` standard normal points.
fn setup_n(spec: &str, n: usize) -> (Box<dyn ScoreModel>, Mat) {
    let d = 5;
    let m = model(spec, d, 3);
    let x = mat(randn(&mut ChaCha8Rng::seed_from_u64(4), n * d), n, d);
    (m, x)
}

fn mean_var(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    (
        mean,
        v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0),
    )
}

/// Loss values over `reps` projection draws.
fn draws(obj: &str, proj: &str, m: &dyn ScoreModel, x: &Mat, reps: u64) -> Vec<f64> {
    let o = objective(obj);
    let p = projection(&format!("{{\"{proj}\": ()}}"));
    (0..reps)
        .map(|s| loss_value(&*o, m, &*p, x, 1000 + s))
        .collect()
}

fn flat(g: Vec<Vec<f64>>) -> Vec<f64> {
    g.into_iter().flatten().collect()
}

#[test]
fn coefficient_zero_is_ssm_and_one_is_ssm_vr_draw_for_draw() {
    let (m, x) = setup(NICE);
    for (c, other) in [("0.0", "ssm"), ("1.0", "ssm_vr")] {
        let cv = draws(
            &format!(r#"{{"ssm_cv": (projections: 3, coefficient: Some({c}))}}"#),
            "rademacher",
            &*m,
            &x,
            5,
        );
        let plain = draws(
            &format!(r#"{{"{other}": (projections: 3)}}"#),
            "rademacher",
            &*m,
            &x,
            5,
        );
        assert_close(&cv, &plain, 1e-10, 1e-8, &format!("c = {c} vs {other}"));
    }
}

#[test]
fn at_a_fixed_coefficient_loss_and_gradient_are_unbiased_for_exact_sm() {
    for spec in [NICE, ENERGY] {
        let (m, x) = setup(spec);
        let exact = exact_sm_loss(&mut Graph::inference(&dev()), &*m, &x).scalar();
        let p = projection(r#"{"gaussian": ()}"#);
        let exact_grad = flat(loss_grad(&*objective(r#"{"sm": ()}"#), &*m, &*p, &x, 0));
        for c in ["2.5", "-1.0"] {
            let spec_cv = format!(r#"{{"ssm_cv": (projections: 50, coefficient: Some({c}))}}"#);
            let o = objective(&spec_cv);
            let reps = 40;
            let vals: Vec<f64> = (0..reps)
                .map(|s| loss_value(&*o, &*m, &*p, &x, 2000 + s))
                .collect();
            let (mean, var) = mean_var(&vals);
            let se = (var / reps as f64).sqrt();
            let z = (mean - exact).abs() / se;
            assert!(z < 5.0, "{spec} c {c}: {mean} ± {se} vs exact {exact}");
            assert!(
                se < 0.05 * exact.abs().max(0.1),
                "{spec}: se {se} too large to test"
            );
            // Gradient: ‖mean − exact‖² against its expectation tr(Cov)/K.
            let grads: Vec<Vec<f64>> = (0..reps)
                .map(|s| flat(loss_grad(&*o, &*m, &*p, &x, 2000 + s)))
                .collect();
            let k = grads[0].len();
            let gmean: Vec<f64> = (0..k)
                .map(|j| grads.iter().map(|g| g[j]).sum::<f64>() / reps as f64)
                .collect();
            let trace_cov: f64 = (0..k)
                .map(|j| mean_var(&grads.iter().map(|g| g[j]).collect::<Vec<_>>()).1)
                .sum();
            let err2: f64 = gmean
                .iter()
                .zip(&exact_grad)
                .map(|(a, b)| (a - b).powi(2))
                .sum();
            let ratio = err2 / (trace_cov / reps as f64);
            assert!(
                ratio < 3.0,
                "{spec} c {c}: gradient error² / expected = {ratio}"
            );
            let norm2: f64 = exact_grad.iter().map(|g| g * g).sum();
            assert!(err2 < 0.05 * norm2, "{spec} c {c}: {err2} vs ‖∇‖² {norm2}");
        }
    }
}

#[test]
fn the_unbiasedness_check_has_power() {
    // The same check rejects Gaussian directions scaled by 1/√2 (E[vvᵀ] =
    // I/2), under which E_v[κ] = −‖s‖²/4 ≠ 0: a control variate of nonzero
    // mean (a wrong sign or scale inside it) shifts the mean the same way.
    let (m, x) = setup(ENERGY);
    let exact = exact_sm_loss(&mut Graph::inference(&dev()), &*m, &x).scalar();
    let o = objective(r#"{"ssm_cv": (projections: 50, coefficient: Some(2.5))}"#);
    let vals: Vec<f64> = (0..30)
        .map(|s| {
            let mut g = Graph::inference(&dev());
            let mut rng = ChaCha8Rng::seed_from_u64(3000 + s);
            let p = Halved;
            let mut ctx = slicedscore::objective::LossContext {
                projection: &p,
                rng: &mut rng,
            };
            o.loss(&mut g, &*m, &x, &mut ctx).unwrap().scalar()
        })
        .collect();
    let (mean, var) = mean_var(&vals);
    let se = (var / 30.0).sqrt();
    assert!(
        (mean - exact).abs() / se > 5.0,
        "bias not detected: {mean} ± {se} vs {exact}"
    );
}

/// Gaussian directions scaled by 1/√2 (E[vvᵀ] = I/2).
struct Halved;
impl slicedscore::projection::Projection for Halved {
    fn sample(&self, rng: &mut dyn rand::RngCore, n: usize, dim: usize) -> Vec<f64> {
        let mut rng = rng;
        randn(&mut rng, n * dim)
            .into_iter()
            .map(|v| v * std::f64::consts::FRAC_1_SQRT_2)
            .collect()
    }
    fn isotropic(&self) -> bool {
        false
    }
}

#[test]
fn the_optimal_coefficient_reduces_the_variance_of_both() {
    // A training-sized batch: the coefficient is estimated from its 64 rows.
    for spec in [NICE, ENERGY] {
        let (m, x) = setup_n(spec, 64);
        let exact = exact_sm_loss(&mut Graph::inference(&dev()), &*m, &x).scalar();
        let var = |obj: &str| {
            let v = draws(obj, "rademacher", &*m, &x, 200);
            mean_var(&v)
        };
        let (_, v_ssm) = var(r#"{"ssm": (projections: 1)}"#);
        let (_, v_vr) = var(r#"{"ssm_vr": (projections: 1)}"#);
        let (m_cv, v_cv) = var(r#"{"ssm_cv": (projections: 1)}"#);
        assert!(
            v_cv <= 1.05 * v_ssm.min(v_vr),
            "{spec}: variance ssm {v_ssm}, ssm_vr {v_vr}, ssm_cv {v_cv}"
        );
        // The estimated coefficient's bias is small next to the spread.
        let z = (m_cv - exact).abs() / (v_cv / 200.0).sqrt();
        assert!(z < 5.0, "{spec}: ssm_cv mean {m_cv} vs exact {exact}");
    }
}
