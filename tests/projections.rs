//! Projections and the sliced objectives' unbiasedness: every registered
//! projection has E[vvᵀ] = I (as it claims), and for each of them the
//! expectations over v of SSM and SSM-VR equal exact score matching on a
//! fixed model. Also: a plugin defined outside the crate registers itself,
//! and a non-isotropic projection is refused for SSM-VR.

mod common;

use common::*;
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use slicedscore::autodiff::Graph;
use slicedscore::error::ConfigError;
use slicedscore::objective::exact_sm_loss;
use slicedscore::projection::Projection;
use slicedscore::registry::{names, ProjectionConfig};

/// A deliberately wrong projection (unit sphere: E[vvᵀ] = I/D), registered
/// from this test crate as a user's plugin would be.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct UnitSphereConfig {}
struct UnitSphere;
impl Projection for UnitSphere {
    fn sample(&self, rng: &mut dyn RngCore, n: usize, dim: usize) -> Vec<f64> {
        let mut rng = rng;
        let g = randn(&mut rng, n * dim);
        g.chunks(dim)
            .flat_map(|r| {
                let norm = r.iter().map(|x| x * x).sum::<f64>().sqrt();
                r.iter().map(move |x| x / norm).collect::<Vec<_>>()
            })
            .collect()
    }
    fn isotropic(&self) -> bool {
        false
    }
}
impl ProjectionConfig for UnitSphereConfig {
    fn build(&self) -> Result<Box<dyn Projection>, ConfigError> {
        Ok(Box::new(UnitSphere))
    }
}
slicedscore::register_plugin!(
    ProjectionConfig,
    "test_unit_sphere",
    "unit-sphere directions (E[vvᵀ] = I/D): for tests only",
    "()",
    UnitSphereConfig
);

/// The empirical second moment of each registered projection, entry by
/// entry, must match its `isotropic()` claim.
#[test]
fn every_projection_has_identity_second_moment_as_claimed() {
    let d = 5;
    let n = 40_000;
    for name in names::<dyn ProjectionConfig>() {
        let p = projection(&format!("{{\"{name}\": ()}}"));
        let v = p.sample(&mut ChaCha8Rng::seed_from_u64(1), n, d);
        assert_eq!(v.len(), n * d, "{name}: wrong number of values");
        let mut max_dev: f64 = 0.0;
        for i in 0..d {
            for j in 0..d {
                let m = v.chunks(d).map(|r| r[i] * r[j]).sum::<f64>() / n as f64;
                let want = if i == j { 1.0 } else { 0.0 };
                max_dev = max_dev.max((m - want).abs());
            }
        }
        // E[v_i v_j] has standard error ≤ ~√(3/n) ≈ 0.009 for these laws.
        if p.isotropic() {
            assert!(
                max_dev < 0.05,
                "{name}: E[vvᵀ] deviates from I by {max_dev}"
            );
        } else {
            assert!(max_dev > 0.5, "{name}: claims not isotropic but E[vvᵀ] ≈ I");
        }
    }
}

#[test]
fn sphere_projection_has_radius_sqrt_d() {
    let p = projection(r#"{"sphere": ()}"#);
    let v = p.sample(&mut ChaCha8Rng::seed_from_u64(2), 100, 7);
    for r in v.chunks(7) {
        let norm2: f64 = r.iter().map(|x| x * x).sum();
        assert!((norm2 - 7.0).abs() < 1e-9, "‖v‖² = {norm2}");
    }
}

/// Mean and standard error of `r` independent loss estimates.
fn mc(objective_spec: &str, proj: &str, model_spec: &str, reps: u64) -> (f64, f64, f64) {
    let (n, d) = (6, 5);
    let m = model(model_spec, d, 3);
    let x = mat(randn(&mut ChaCha8Rng::seed_from_u64(4), n * d), n, d);
    let exact = {
        let mut g = Graph::inference(&dev());
        exact_sm_loss(&mut g, &*m, &x).scalar()
    };
    let obj = objective(objective_spec);
    let p = projection(&format!("{{\"{proj}\": ()}}"));
    let vals: Vec<f64> = (0..reps)
        .map(|s| loss_value(&*obj, &*m, &*p, &x, 1000 + s))
        .collect();
    let mean = vals.iter().sum::<f64>() / reps as f64;
    let var = vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (reps - 1) as f64;
    (mean, (var / reps as f64).sqrt(), exact)
}

#[test]
fn sliced_objectives_are_unbiased_for_exact_sm_with_every_isotropic_projection() {
    for model_spec in [
        r#"{"dkef": (features: 8, layers: 2, inducing_points: 10, alpha: Trained)}"#,
        r#"{"mlp_energy": (hidden: [16, 16], activation: Softplus)}"#,
        r#"{"mlp_score": (hidden: [16], activation: Tanh)}"#,
        r#"{"nice": (couplings: 2, hidden_layers: 1, hidden_units: 8)}"#,
    ] {
        for proj in ["rademacher", "gaussian", "sphere"] {
            for obj in [
                r#"{"ssm": (projections: 200)}"#,
                r#"{"ssm_vr": (projections: 200)}"#,
            ] {
                let (mean, se, exact) = mc(obj, proj, model_spec, 30);
                let z = (mean - exact).abs() / se.max(1e-12);
                assert!(
                    z < 5.0,
                    "{model_spec} {obj} {proj}: E_v[loss] ≈ {mean} ± {se}, exact SM {exact} (z = {z:.1})"
                );
                // The check has power: the estimate is tight compared with the loss scale.
                assert!(
                    se < 0.05 * exact.abs().max(0.1),
                    "{obj} {proj}: standard error {se} too large to test"
                );
            }
        }
    }
}

#[test]
fn a_wrongly_scaled_projection_biases_ssm_detectably() {
    // The same Monte Carlo check rejects the unit-sphere projection, so the
    // test above would catch a wrong scaling.
    let (mean, se, exact) = mc(
        r#"{"ssm": (projections: 200)}"#,
        "test_unit_sphere",
        r#"{"mlp_energy": (hidden: [16, 16], activation: Softplus)}"#,
        30,
    );
    assert!(
        (mean - exact).abs() / se > 5.0,
        "unit sphere not detected: {mean} ± {se} vs {exact}"
    );
}

#[test]
fn ssm_vr_refuses_a_non_isotropic_projection() {
    let text = r#"(
        name: "t", task: {"synthetic": (target: Mixture2d(components: 2, radius: 1.0, std: 0.5))},
        model: {"mlp_score": ()}, objective: {"ssm_vr": ()}, projection: {"test_unit_sphere": ()},
        optimizer: Adam(lr: 0.001), batch_size: 8, iterations: 1, eval_every: 1)"#;
    let exp =
        slicedscore::experiment::Experiment::parse(text, std::path::Path::new("x.ron")).unwrap();
    let err = exp.build().err().expect("must be refused").to_string();
    assert!(
        err.starts_with("projection:") && err.contains("E[vvᵀ] = I"),
        "{err}"
    );
    // Plain SSM accepts it: E[vvᵀ] = cI only rescales the SSM loss.
    let ok = text.replace(r#"{"ssm_vr": ()}"#, r#"{"ssm": ()}"#);
    let exp =
        slicedscore::experiment::Experiment::parse(&ok, std::path::Path::new("x.ron")).unwrap();
    assert!(exp.build().is_ok());
}
