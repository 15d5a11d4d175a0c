//! Conditional score networks `h(z | c)`: derivatives move `z` only, the
//! objectives draw directions and noise in `z`, and the context columns
//! change the score.

mod common;

use common::{assert_close, dev, mat, randn};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use slicedscore::autodiff::Graph;
use slicedscore::model::ScoreModel;
use slicedscore::registry::{Component, ModelConfig};

fn conditional(dim: usize, context: usize) -> Box<dyn ScoreModel> {
    let c: Component<dyn ModelConfig> =
        ron::from_str(r#"{"mlp_score": (hidden: [16, 16], activation: Tanh)}"#).unwrap();
    c.config
        .build_conditional(&dev(), dim, context, &mut ChaCha8Rng::seed_from_u64(3))
        .unwrap()
        .trained()
        .unwrap()
}

fn score_host(m: &dyn ScoreModel, x: &[f64], rows: usize) -> Vec<f64> {
    let mut g = Graph::inference(&dev());
    let width = m.dim() + m.context_dim();
    (m.score(&mut g, &mat(x.to_vec(), rows, width))).to_host()
}

#[test]
fn terms_differentiate_z_only() {
    let (d, c, n) = (3, 4, 5);
    let m = conditional(d, c);
    assert_eq!((m.dim(), m.context_dim()), (d, c));
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let x = randn(&mut rng, n * (d + c));
    let v = randn(&mut rng, n * d);
    let mut g = Graph::inference(&dev());
    let t = m.terms(
        &mut g,
        &mat(x.clone(), n, d + c),
        &mat(v.clone(), n, d),
        true,
    );
    let s = score_host(&*m, &x, n);
    let vs: Vec<f64> = (0..n)
        .map(|r| (0..d).map(|j| v[r * d + j] * s[r * d + j]).sum())
        .collect();
    assert_close(&t.vs.to_host(), &vs, 1e-10, 1e-8, "vᵀs");
    assert_close(&t.score.unwrap().to_host(), &s, 1e-12, 1e-8, "score");
    // vᵀ(∂s/∂z)v by central differences along (v, 0).
    let eps = 1e-5;
    let shifted = |sign: f64| {
        let mut xs = x.clone();
        for r in 0..n {
            for j in 0..d {
                xs[r * (d + c) + j] += sign * eps * v[r * d + j];
            }
        }
        score_host(&*m, &xs, n)
    };
    let (sp, sm) = (shifted(1.0), shifted(-1.0));
    let fd: Vec<f64> = (0..n)
        .map(|r| {
            (0..d)
                .map(|j| v[r * d + j] * (sp[r * d + j] - sm[r * d + j]) / (2.0 * eps))
                .sum()
        })
        .collect();
    assert_close(&t.vhv.to_host(), &fd, 1e-6, 1e-6, "vᵀ∇s v");
}

#[test]
fn the_context_changes_the_score() {
    let (d, c) = (2, 3);
    let m = conditional(d, c);
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let mut x = randn(&mut rng, d + c);
    let a = score_host(&*m, &x, 1);
    x[d] += 1.0;
    let b = score_host(&*m, &x, 1);
    assert!(a.iter().zip(&b).any(|(p, q)| (p - q).abs() > 1e-6));
}

#[test]
fn objectives_train_a_conditional_model() {
    let (d, c, n) = (2, 3, 8);
    let m = conditional(d, c);
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let x = randn(&mut rng, n * (d + c));
    for spec in [
        r#"{"ssm": (projections: 2)}"#,
        r#"{"ssm_vr": (projections: 2)}"#,
        r#"{"sm": ()}"#,
        r#"{"dsm": (sigma: 0.1)}"#,
    ] {
        let obj = common::objective(spec);
        let proj = common::projection(r#"{"rademacher": ()}"#);
        let params = slicedscore::nn::module::trainable_values(&*m);
        let refs: Vec<_> = params.iter().collect();
        let mut g = Graph::tracking(&dev(), &refs);
        let xm = g.constant(x.clone(), n, d + c);
        let mut srng = ChaCha8Rng::seed_from_u64(5);
        let mut ctx = slicedscore::objective::LossContext {
            projection: &*proj,
            rng: &mut srng,
        };
        let loss = obj.loss(&mut g, &*m, &xm, &mut ctx).unwrap();
        let value = loss.scalar();
        assert!(value.is_finite(), "{spec}: loss {value}");
        let grads = g.backward(&loss);
        let norm: f64 = grads.iter().flat_map(|g| g.to_host()).map(|v| v * v).sum();
        assert!(
            norm.is_finite() && norm > 0.0,
            "{spec}: gradient norm {norm}"
        );
    }
}

#[test]
fn exact_sm_of_a_conditional_model_sums_z_directions_only() {
    // With D basis directions in z, exact SM per point is tr(∂s/∂z) + ½‖s‖².
    let (d, c, n) = (3, 2, 4);
    let m = conditional(d, c);
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let x = randn(&mut rng, n * (d + c));
    let per = slicedscore::objective::exact_sm_per_point(&dev(), &*m, &x, d + c, 1000);
    let s = score_host(&*m, &x, n);
    let eps = 1e-5;
    let mut expect = vec![0.0; n];
    for (r, e) in expect.iter_mut().enumerate() {
        *e = 0.5 * (0..d).map(|j| s[r * d + j].powi(2)).sum::<f64>();
    }
    for j in 0..d {
        let mut xp = x.clone();
        let mut xm = x.clone();
        for r in 0..n {
            xp[r * (d + c) + j] += eps;
            xm[r * (d + c) + j] -= eps;
        }
        let (sp, sm) = (score_host(&*m, &xp, n), score_host(&*m, &xm, n));
        for (r, e) in expect.iter_mut().enumerate() {
            *e += (sp[r * d + j] - sm[r * d + j]) / (2.0 * eps);
        }
    }
    assert_close(&per, &expect, 1e-6, 1e-6, "exact SM per point");
}
