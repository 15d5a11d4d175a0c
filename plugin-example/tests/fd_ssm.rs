//! `fd_ssm` against its definition: its settings are validated, its loss
//! approaches `ssm`'s on the same directions as ε → 0 (error O(ε²)), and
//! its parameter gradients from one backward pass match central finite
//! differences in θ, for an energy model and a score network (f64).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use slicedscore::autodiff::Graph;
use slicedscore::device::{Device, Mat, Precision};
use slicedscore::model::ScoreModel;
use slicedscore::nn::module::{for_each_param_mut, trainable_values};
use slicedscore::objective::{LossContext, Objective};
use slicedscore::projection::Projection;
use slicedscore::registry::{Component, ModelConfig, ObjectiveConfig, ProjectionConfig};
// Links the plugin crate, so its registration runs (a crate that is never
// named is left out by the linker, and `fd_ssm` would be unknown).
use slicedscore_fd_ssm as _;

const D: usize = 3;
const N: usize = 5;
const MODELS: [&str; 2] = [
    r#"{"mlp_energy": (hidden: [8, 8], activation: Softplus)}"#,
    r#"{"mlp_score": (hidden: [8, 8], activation: Tanh)}"#,
];

fn dev(p: Precision) -> Device {
    Device::cpu(p)
}

fn model(spec: &str, p: Precision) -> Box<dyn ScoreModel> {
    let c: Component<dyn ModelConfig> = ron::from_str(spec).expect("model spec parses");
    c.config
        .build(&dev(p), D, &mut ChaCha8Rng::seed_from_u64(7))
        .expect("model builds")
        .trained()
        .expect("a trained model")
}

fn objective(spec: &str) -> Box<dyn Objective> {
    let c: Component<dyn ObjectiveConfig> = ron::from_str(spec).expect("objective spec parses");
    c.config.build().expect("objective builds")
}

fn projection() -> Box<dyn Projection> {
    let c: Component<dyn ProjectionConfig> = ron::from_str(r#"{"gaussian": ()}"#).unwrap();
    c.config.build().unwrap()
}

fn batch(p: Precision) -> Mat {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let x: Vec<f64> = (0..N * D).map(|_| rng.gen_range(-1.5..1.5)).collect();
    dev(p).mat(&x, N, D)
}

/// The loss with directions drawn from a stream seeded by `seed`.
fn loss(obj: &dyn Objective, m: &dyn ScoreModel, x: &Mat, seed: u64) -> f64 {
    let proj = projection();
    let mut g = Graph::inference(&dev(x.precision()));
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut ctx = LossContext {
        projection: &*proj,
        rng: &mut rng,
    };
    obj.loss(&mut g, m, x, &mut ctx).expect("loss").scalar()
}

#[test]
fn settings_are_validated_naming_the_field() {
    for (settings, field) in [
        ("(eps: 0.0)", "eps"),
        ("(eps: -0.1)", "eps"),
        ("(eps: inf)", "eps"),
        ("(eps: NaN)", "eps"),
        ("(eps: 0.1, projections: 0)", "projections"),
    ] {
        let c: Component<dyn ObjectiveConfig> =
            ron::from_str(&format!("{{\"fd_ssm\": {settings}}}")).expect("parses");
        let err = c.config.build().err().expect(settings);
        assert_eq!(err.field, field, "{settings}: {err}");
    }
    // eps has no default: leaving it out is a parse error naming it.
    let err = ron::from_str::<Component<dyn ObjectiveConfig>>(r#"{"fd_ssm": ()}"#)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("eps"), "{err}");
}

#[test]
fn a_step_too_small_for_f32_is_an_error_not_noise() {
    let m = model(MODELS[0], Precision::F32);
    let x = batch(Precision::F32);
    let proj = projection();
    let mut g = Graph::inference(&dev(Precision::F32));
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut ctx = LossContext {
        projection: &*proj,
        rng: &mut rng,
    };
    let err = objective(r#"{"fd_ssm": (eps: 1e-4)}"#)
        .loss(&mut g, &*m, &x, &mut ctx)
        .expect_err("eps 1e-4 in f32 must be refused");
    assert!(err.0.contains("eps") && err.0.contains("F64"), "{}", err.0);
    // The same step is fine in f64, and 1e-2 is fine in f32.
    let m64 = model(MODELS[0], Precision::F64);
    let fd = objective(r#"{"fd_ssm": (eps: 1e-4)}"#);
    assert!(loss(&*fd, &*m64, &batch(Precision::F64), 1).is_finite());
    let fd = objective(r#"{"fd_ssm": (eps: 1e-2)}"#);
    assert!(loss(&*fd, &*m, &x, 1).is_finite());
}

#[test]
fn approaches_ssm_on_the_same_directions_as_eps_shrinks() {
    for spec in MODELS {
        for projections in [1, 3] {
            let m = model(spec, Precision::F64);
            let x = batch(Precision::F64);
            let ssm = objective(&format!("{{\"ssm\": (projections: {projections})}}"));
            let exact = loss(&*ssm, &*m, &x, 11);
            let err = |eps: f64| {
                let fd = objective(&format!(
                    "{{\"fd_ssm\": (eps: {eps}, projections: {projections})}}"
                ));
                (loss(&*fd, &*m, &x, 11) - exact).abs()
            };
            let (e1, e2, e3) = (err(1e-1), err(1e-2), err(1e-3));
            let label =
                format!("{spec}, M = {projections}: ssm {exact}, errors {e1:e} {e2:e} {e3:e}");
            // Central differences: the error falls as ε² (100× per decade)
            // until rounding (~1e-16/ε²) takes over.
            assert!(e2 < e1 / 50.0 && e3 < e2 / 50.0, "{label}");
            assert!(e3 < 1e-6 * exact.abs().max(1.0), "{label}");
            // A different stream gives different directions, hence a
            // different loss: the match above is not a coincidence.
            let fd = objective(&format!(
                "{{\"fd_ssm\": (eps: 1e-3, projections: {projections})}}"
            ));
            assert!(
                (loss(&*fd, &*m, &x, 12) - exact).abs() > 1e3 * e3,
                "{label}"
            );
        }
    }
}

/// ∇θ by one backward pass, per trainable parameter.
fn backward_grads(obj: &dyn Objective, m: &dyn ScoreModel, x: &Mat, seed: u64) -> Vec<Vec<f64>> {
    let params = trainable_values(m);
    let refs: Vec<&Mat> = params.iter().collect();
    let proj = projection();
    let mut g = Graph::tracking(&dev(Precision::F64), &refs);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut ctx = LossContext {
        projection: &*proj,
        rng: &mut rng,
    };
    let l = obj.loss(&mut g, m, x, &mut ctx).expect("loss");
    g.backward(&l).iter().map(|m| m.to_host()).collect()
}

/// Adds `delta` to entry `k` of trainable parameter `index`.
fn nudge(m: &mut dyn ScoreModel, index: usize, k: usize, delta: f64) {
    let mut i = 0;
    for_each_param_mut(m, |_, p| {
        if !p.is_trainable() {
            return;
        }
        if i == index {
            let mut v = p.value.to_host();
            v[k] += delta;
            let (r, c) = p.shape();
            p.value = Device::cpu(Precision::F64).mat(&v, r, c);
        }
        i += 1;
    });
}

#[test]
fn parameter_gradients_match_finite_differences_in_theta() {
    for spec in MODELS {
        for settings in ["(eps: 0.1)", "(eps: 0.05, projections: 2)"] {
            let mut m = model(spec, Precision::F64);
            let x = batch(Precision::F64);
            let obj = objective(&format!("{{\"fd_ssm\": {settings}}}"));
            let grads = backward_grads(&*obj, &*m, &x, 5);
            let mut checked = 0;
            let mut pick = ChaCha8Rng::seed_from_u64(9);
            for (index, grad) in grads.iter().enumerate() {
                assert!(
                    grad.iter().any(|g| *g != 0.0),
                    "{spec} {settings}: parameter {index} gets no gradient"
                );
                for _ in 0..4 {
                    let k = pick.gen_range(0..grad.len());
                    let h = 1e-5;
                    nudge(&mut *m, index, k, h);
                    let up = loss(&*obj, &*m, &x, 5);
                    nudge(&mut *m, index, k, -2.0 * h);
                    let down = loss(&*obj, &*m, &x, 5);
                    nudge(&mut *m, index, k, h);
                    let want = (up - down) / (2.0 * h);
                    let err = (grad[k] - want).abs() / want.abs().max(1e-3);
                    assert!(
                        err < 1e-5,
                        "{spec} {settings}: parameter {index}[{k}]: backward {} vs finite difference {want} (relative error {err:.1e})",
                        grad[k]
                    );
                    checked += 1;
                }
            }
            assert!(checked >= 16, "{spec}: only {checked} entries checked");
        }
    }
}
