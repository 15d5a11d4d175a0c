//! The two implementations of every kernel agree: the native CPU kernels
//! and dfdx's ops (the `Reference` backend, the same code that runs on CUDA
//! in a `cuda` build), on every model's terms, trace terms, score and ∇θ of
//! every objective, in f64. And the precisions agree: the same model in f32
//! and f64 gives the same losses to f32 accuracy.

mod common;

use common::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use slicedscore::autodiff::Graph;
use slicedscore::device::{Backend, Device, Mat, Precision};
use slicedscore::model::ScoreModel;
use slicedscore::nn::module::trainable_values;
use slicedscore::objective::{LossContext, Objective};
use slicedscore::projection::Projection;

const N: usize = 3;
const D: usize = 4;

const MODELS: [&str; 6] = [
    r#"{"dkef": (features: 5, layers: 2, inducing_points: 4, alpha: Trained)}"#,
    r#"{"mlp_energy": (hidden: [6, 5], activation: Softplus)}"#,
    r#"{"mlp_energy": (hidden: [6], activation: Elu)}"#,
    r#"{"mlp_score": (hidden: [6, 5], activation: Swish)}"#,
    r#"{"mlp_score": (hidden: [7], activation: Sigmoid)}"#,
    r#"{"nice": (couplings: 3, hidden_layers: 2, hidden_units: 5, activation: Tanh)}"#,
];

const OBJECTIVES: [&str; 6] = [
    r#"{"sm": ()}"#,
    r#"{"ssm": (projections: 2)}"#,
    r#"{"ssm_vr": (projections: 2)}"#,
    r#"{"dsm": (sigma: 0.5, noise_samples: 2)}"#,
    r#"{"cp": ()}"#,
    r#"{"approx_bp": ()}"#,
];

fn loss_and_grad(
    dev: &Device,
    m: &dyn ScoreModel,
    obj: &dyn Objective,
    proj: &dyn Projection,
    x: &[f64],
) -> (f64, Vec<Vec<f64>>) {
    let params = trainable_values(m);
    let refs: Vec<&Mat> = params.iter().collect();
    let mut g = Graph::tracking(dev, &refs);
    let xm = dev.mat(x, N, D);
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let mut ctx = LossContext {
        projection: proj,
        rng: &mut rng,
    };
    let l = obj.loss(&mut g, m, &xm, &mut ctx).expect("loss");
    let v = l.scalar();
    (v, g.backward(&l).iter().map(|g| g.to_host()).collect())
}

#[test]
fn the_reference_backend_agrees_with_the_native_kernels() {
    let native = Device::cpu(Precision::F64);
    let reference = Device::new(Backend::Reference, Precision::F64).unwrap();
    let proj = projection(r#"{"gaussian": ()}"#);
    for spec in MODELS {
        let a = model_on(&native, spec, D, 3);
        let b = model_on(&reference, spec, D, 3);
        assert!(trainable_values(&*b)
            .iter()
            .all(|p| p.backend() == Backend::Reference));
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let x = randn(&mut rng, N * D);
        let v = randn(&mut rng, 2 * N * D);
        // Terms along two directions per point, and the trace along a chunk.
        let terms = |dev: &Device, m: &dyn ScoreModel| {
            let mut g = Graph::inference(dev);
            let t = m.terms(&mut g, &dev.mat(&x, N, D), &dev.mat(&v, 2 * N, D), true);
            let tt = m.trace_terms(&mut g, &dev.mat(&x, N, D), 1, 2);
            [
                t.vs.to_host(),
                t.vhv.to_host(),
                t.score.unwrap().to_host(),
                tt.vs.to_host(),
                tt.trace.to_host(),
            ]
        };
        for (i, (p, q)) in terms(&native, &*a)
            .iter()
            .zip(terms(&reference, &*b).iter())
            .enumerate()
        {
            assert_close(p, q, 1e-11, 1e-11, &format!("{spec} terms part {i}"));
        }
        for ospec in OBJECTIVES {
            let obj = objective(ospec);
            if obj.needs().unmet_by(&*a).is_some() {
                continue;
            }
            let (la, ga) = loss_and_grad(&native, &*a, &*obj, &*proj, &x);
            let (lb, gb) = loss_and_grad(&reference, &*b, &*obj, &*proj, &x);
            assert!(
                rel_err(la, lb, 1e-10) < 1e-10,
                "{spec} {ospec}: loss {la} vs {lb}"
            );
            for (p, q) in ga.iter().zip(&gb) {
                assert_close(p, q, 1e-9, 1e-9, &format!("{spec} {ospec} ∇θ"));
            }
        }
    }
}

#[test]
fn f32_and_f64_agree_to_f32_accuracy() {
    let (d32, d64) = (Device::cpu(Precision::F32), Device::cpu(Precision::F64));
    let proj = projection(r#"{"rademacher": ()}"#);
    for spec in MODELS {
        let a = model_on(&d32, spec, D, 5);
        let b = model_on(&d64, spec, D, 5);
        let x = randn(&mut ChaCha8Rng::seed_from_u64(6), N * D);
        for ospec in OBJECTIVES {
            let obj = objective(ospec);
            if obj.needs().unmet_by(&*a).is_some() {
                continue;
            }
            let (la, ga) = loss_and_grad(&d32, &*a, &*obj, &*proj, &x);
            let (lb, gb) = loss_and_grad(&d64, &*b, &*obj, &*proj, &x);
            assert!(
                rel_err(la, lb, 1e-2) < 2e-4,
                "{spec} {ospec}: f32 loss {la} vs f64 {lb}"
            );
            let scale = gb.iter().flatten().fold(0.0f64, |m, v| m.max(v.abs()));
            for (p, q) in ga.iter().zip(&gb) {
                assert_close(
                    p,
                    q,
                    2e-3,
                    scale.max(1e-3),
                    &format!("{spec} {ospec} f32 ∇θ"),
                );
            }
        }
    }
}
