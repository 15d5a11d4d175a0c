//! Helpers shared by the integration tests: building plugins by name through
//! the registry, finite differences and tolerances.
#![allow(dead_code)]

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use slicedscore::autodiff::Graph;
use slicedscore::device::{self, Dev, Mat};
use slicedscore::model::ScoreModel;
use slicedscore::objective::{LossContext, Objective};
use slicedscore::projection::Projection;
use slicedscore::registry::{Component, ModelConfig, ObjectiveConfig, ProjectionConfig};

pub fn dev() -> Dev {
    device::new_device(0)
}

pub fn model(spec: &str, dim: usize, seed: u64) -> Box<dyn ScoreModel> {
    let c: Component<dyn ModelConfig> = ron::from_str(spec).expect("model spec parses");
    c.config
        .build(&dev(), dim, &mut ChaCha8Rng::seed_from_u64(seed))
        .expect("model builds")
}

pub fn objective(spec: &str) -> Box<dyn Objective> {
    let c: Component<dyn ObjectiveConfig> = ron::from_str(spec).expect("objective spec parses");
    c.config.build().expect("objective builds")
}

pub fn projection(spec: &str) -> Box<dyn Projection> {
    let c: Component<dyn ProjectionConfig> = ron::from_str(spec).expect("projection spec parses");
    c.config.build().expect("projection builds")
}

pub fn randn(rng: &mut impl Rng, n: usize) -> Vec<f64> {
    use rand_distr::{Distribution, StandardNormal};
    (0..n).map(|_| StandardNormal.sample(&mut *rng)).collect()
}

pub fn mat(data: Vec<f64>, rows: usize, cols: usize) -> Mat {
    device::to_mat(&dev(), data, rows, cols)
}

/// Relative error |a − b| / max(|b|, floor).
pub fn rel_err(a: f64, b: f64, floor: f64) -> f64 {
    (a - b).abs() / b.abs().max(floor)
}

pub fn assert_close(a: &[f64], b: &[f64], tol: f64, floor: f64, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths differ");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        let e = rel_err(*x, *y, floor);
        assert!(
            e <= tol,
            "{what}[{i}]: {x} vs {y} (relative error {e:.2e} > {tol:.0e})"
        );
    }
}

/// The loss of `obj` on `x` with the projection/noise stream seeded by `seed`.
pub fn loss_value(
    obj: &dyn Objective,
    model: &dyn ScoreModel,
    proj: &dyn Projection,
    x: &Mat,
    seed: u64,
) -> f64 {
    let mut g = Graph::inference(&dev());
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut ctx = LossContext {
        projection: proj,
        rng: &mut rng,
    };
    device::scalar(&obj.loss(&mut g, model, x, &mut ctx))
}

/// ∇θ of the loss by one backward pass, flattened in parameter order.
pub fn loss_grad(
    obj: &dyn Objective,
    model: &dyn ScoreModel,
    proj: &dyn Projection,
    x: &Mat,
    seed: u64,
) -> Vec<Vec<f64>> {
    let mut g = Graph::tracking(&dev());
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut ctx = LossContext {
        projection: proj,
        rng: &mut rng,
    };
    let loss = obj.loss(&mut g, model, x, &mut ctx);
    let params = model.params();
    let values: Vec<&Mat> = params.iter().map(|p| &p.value).collect();
    g.backward(&loss, &values)
        .iter()
        .map(device::to_host)
        .collect()
}
