//! Closed-form coefficients (`dkef` with `alpha: Solved`): the graph's
//! positive-definite solve against finite differences, the solved `α` as
//! the minimiser of each objective's own loss on the fit half (so a wrong
//! `G` or `b` of any criterion fails), ∇θ through the solve against finite
//! differences, and the build-time refusal of an objective that cannot
//! solve.

mod common;

use common::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use slicedscore::autodiff::Graph;
use slicedscore::closed_form::{
    gradient_gram_by_jets, solve_in_graph, solved_loss, LinearCoefficients,
};
use slicedscore::model::ScoreModel;
use slicedscore::nn::module::trainable_values;
use slicedscore::objective::{LossContext, Objective};
use slicedscore::projection::Projection;

const D: usize = 3;
const SOLVED: &str = r#"{"dkef": (features: 5, layers: 2, inducing_points: 6, alpha: Solved, train_base_std: true)}"#;
/// Fewer features than inputs: the gradient Gram is formed in feature space.
const NARROW: &str = r#"{"dkef": (features: 2, layers: 2, inducing_points: 6, alpha: Solved, train_base_std: true)}"#;
/// Both routes to the gradient Gram.
const SOLVED_MODELS: [&str; 2] = [SOLVED, NARROW];

#[test]
fn the_positive_definite_solve_matches_finite_differences() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let n = 4;
    let m = randn(&mut rng, n * n);
    // A = MᵀM + I (positive definite), B (n × 2), loss = Σ W ∘ A⁻¹B.
    let mut a = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            a[i * n + j] = (0..n).map(|k| m[k * n + i] * m[k * n + j]).sum::<f64>();
        }
        a[i * n + i] += 1.0;
    }
    let b = randn(&mut rng, n * 2);
    let w = randn(&mut rng, n * 2);
    let loss = |a: &[f64], b: &[f64], track: bool| -> (f64, Vec<Vec<f64>>) {
        let (am, bm) = (mat(a.to_vec(), n, n), mat(b.to_vec(), n, 2));
        let mut g = if track {
            Graph::tracking(&dev(), &[&am, &bm])
        } else {
            Graph::inference(&dev())
        };
        let x = g.solve_spd(&am, &bm);
        let wm = mat(w.clone(), n, 2);
        let p = g.mul(&x, &wm);
        let l = g.sum_all(&p);
        let v = l.scalar();
        let grads = if track {
            g.backward(&l).iter().map(|m| m.to_host()).collect()
        } else {
            Vec::new()
        };
        (v, grads)
    };
    let (_, grads) = loss(&a, &b, true);
    let h = 1e-6;
    // The solve reads the symmetric part, so perturb A symmetrically and
    // compare with the symmetric pair of gradient entries.
    for i in 0..n {
        for j in 0..=i {
            let (mut ap, mut am) = (a.clone(), a.clone());
            ap[i * n + j] += h;
            am[i * n + j] -= h;
            if i != j {
                ap[j * n + i] += h;
                am[j * n + i] -= h;
            }
            let fd = (loss(&ap, &b, false).0 - loss(&am, &b, false).0) / (2.0 * h);
            let by = if i == j {
                grads[0][i * n + i]
            } else {
                grads[0][i * n + j] + grads[0][j * n + i]
            };
            assert!(rel_err(by, fd, 1e-6) < 1e-5, "∂/∂A[{i},{j}]: {by} vs {fd}");
        }
    }
    for k in 0..n * 2 {
        let (mut bp, mut bm) = (b.clone(), b.clone());
        bp[k] += h;
        bm[k] -= h;
        let fd = (loss(&a, &bp, false).0 - loss(&a, &bm, false).0) / (2.0 * h);
        assert!(
            rel_err(grads[1][k], fd, 1e-6) < 1e-5,
            "∂/∂B[{k}]: {} vs {fd}",
            grads[1][k]
        );
    }
}

fn solved_model(spec: &str, seed: u64) -> Box<dyn ScoreModel> {
    model(spec, D, seed)
}

fn coefficients(m: &dyn ScoreModel) -> &dyn LinearCoefficients {
    m.as_linear_coefficients()
        .expect("dkef with alpha: Solved solves its coefficients")
}

/// The objective's loss on `x` with the model at `alpha`, draws from `seed`.
fn loss_at(
    m: &dyn ScoreModel,
    obj: &dyn Objective,
    proj: &dyn Projection,
    x: &[f64],
    alpha: &[f64],
    seed: u64,
) -> f64 {
    let view = coefficients(m).with_coefficients(mat(alpha.to_vec(), alpha.len(), 1));
    loss_value(obj, &*view, proj, &mat(x.to_vec(), x.len() / D, D), seed)
}

#[test]
fn the_solved_coefficients_minimise_each_objectives_loss_plus_the_ridge() {
    let proj = projection(r#"{"rademacher": ()}"#);
    for (ospec, mspec) in SCORE_OBJECTIVES
        .iter()
        .flat_map(|o| SOLVED_MODELS.iter().map(move |m| (*o, *m)))
    {
        let m = solved_model(mspec, 5);
        let obj = objective(ospec);
        let criterion = obj.coefficient_criterion().expect("a criterion");
        let mut rng = ChaCha8Rng::seed_from_u64(6);
        let x = randn(&mut rng, 8 * D);
        let seed = 41;
        let alpha = {
            let mut g = Graph::inference(&dev());
            let mut r = ChaCha8Rng::seed_from_u64(seed);
            let mut ctx = LossContext {
                projection: &*proj,
                rng: &mut r,
            };
            let xm = mat(x.clone(), 8, D);
            solve_in_graph(&mut g, coefficients(&*m), &xm, D, criterion, &mut ctx).to_host()
        };
        let lambda = 10f64.powf(coefficients(&*m).log10_ridge().scalar());
        // ∇_α [L(α) + ½λ‖α‖²] by central differences (L is quadratic in α,
        // so they are exact up to rounding): zero at the solution, not at 0.
        let grad_at = |a: &[f64]| -> Vec<f64> {
            let h = 1e-3;
            (0..a.len())
                .map(|l| {
                    let (mut p, mut q) = (a.to_vec(), a.to_vec());
                    p[l] += h;
                    q[l] -= h;
                    let fd = (loss_at(&*m, &*obj, &*proj, &x, &p, seed)
                        - loss_at(&*m, &*obj, &*proj, &x, &q, seed))
                        / (2.0 * h);
                    fd + lambda * a[l]
                })
                .collect()
        };
        let at_solution = grad_at(&alpha);
        let at_zero = grad_at(&vec![0.0; alpha.len()]);
        let norm = |v: &[f64]| v.iter().map(|a| a * a).sum::<f64>().sqrt();
        assert!(
            norm(&at_zero) > 1e-3,
            "{ospec} on {mspec}: the loss does not depend on α ({:e})",
            norm(&at_zero)
        );
        assert!(
            norm(&at_solution) < 1e-6 * norm(&at_zero).max(1.0),
            "{ospec} on {mspec}: ∇α at the solved α is {:e} (at 0: {:e}); α = {alpha:?}",
            norm(&at_solution),
            norm(&at_zero)
        );
    }
}

/// The split-and-solve loss of a training step on `batch`, draws from `seed`.
fn step_loss(
    m: &dyn ScoreModel,
    obj: &dyn Objective,
    proj: &dyn Projection,
    batch: &[f64],
    seed: u64,
) -> (f64, Vec<Vec<f64>>) {
    let params = trainable_values(m);
    let refs: Vec<&slicedscore::device::Mat> = params.iter().collect();
    let mut g = Graph::tracking(&dev(), &refs);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut ctx = LossContext {
        projection: proj,
        rng: &mut rng,
    };
    let loss = solved_loss(&mut g, coefficients(m), obj, batch, D, &mut ctx).expect("loss");
    let v = loss.scalar();
    (v, g.backward(&loss).iter().map(|m| m.to_host()).collect())
}

#[test]
fn gradients_through_the_solve_match_finite_differences() {
    let proj = projection(r#"{"gaussian": ()}"#);
    let objectives: Vec<&str> = SCORE_OBJECTIVES
        .iter()
        .copied()
        .chain([r#"{"cp": ()}"#, r#"{"approx_bp": ()}"#])
        .collect();
    for (ospec, mspec) in objectives
        .iter()
        .flat_map(|o| SOLVED_MODELS.iter().map(move |m| (*o, *m)))
    {
        let mut m = solved_model(mspec, 7);
        let obj = objective(ospec);
        let mut rng = ChaCha8Rng::seed_from_u64(8);
        let batch = randn(&mut rng, 10 * D);
        let seed = 13;
        let (_, grads) = step_loss(&*m, &*obj, &*proj, &batch, seed);
        let names = param_names(&*m);
        assert!(
            names.iter().any(|n| n == "log10_ridge"),
            "the ridge is trained: {names:?}"
        );
        assert!(
            !names.iter().any(|n| n == "alpha"),
            "α is not trained: {names:?}"
        );
        let label = format!("{ospec} on {mspec}");
        let checked = check_gradients_against(&mut *m, &grads, &mut rng, 6, &label, |m| {
            step_loss(m, &*obj, &*proj, &batch, seed).0
        });
        assert!(
            checked > 20,
            "{ospec} on {mspec}: only {checked} entries checked"
        );
    }
}

#[test]
fn an_objective_that_cannot_solve_is_refused_when_the_experiment_is_built() {
    let dir = tempfile::tempdir().unwrap();
    let spec = ExpSpec {
        model: SOLVED.into(),
        objective: r#"{"mle": ()}"#.into(),
        ..ExpSpec::default()
    };
    let path = spec.write(dir.path(), "e.ron");
    let out = binary().args(["check", s(&path)]).output().unwrap();
    let err = text(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("alpha: Trained"), "{err}");
}

#[test]
fn a_run_refits_the_coefficients_before_evaluating_and_checkpoints_them() {
    let dir = tempfile::tempdir().unwrap();
    let spec = ExpSpec {
        model: SOLVED.into(),
        target: "Gaussian(dim: 2, condition: 3.0)".into(),
        train_size: 300,
        val_size: 100,
        test_size: 100,
        batch_size: 40,
        iterations: 40,
        eval_every: 20,
        ..ExpSpec::default()
    };
    let path = spec.write(dir.path(), "e.ron");
    let run = dir.path().join("run");
    let out = binary()
        .args(["run", s(&path), "--run-dir", s(&run), "--no-progress"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let ckpt = slicedscore::train::checkpoint::Checkpoint::read(&run.join("best.safetensors"))
        .expect("best checkpoint");
    let alpha = ckpt
        .tensor(&dev(), "alpha")
        .expect("readable")
        .expect("α is checkpointed")
        .to_host();
    assert_eq!(alpha.len(), 6);
    assert!(
        alpha.iter().all(|a| a.is_finite()) && alpha.iter().any(|a| *a != 0.0),
        "the stored α was not refitted: {alpha:?}"
    );
    let metrics = read_json(&run.join("metrics.json"));
    let test = metrics["test"]["metrics"]
        .as_object()
        .expect("test metrics");
    assert!(!test.is_empty());
    for (k, v) in test {
        assert!(v.as_f64().is_some_and(f64::is_finite), "{k} = {v}");
    }
}

/// `Σᵢⱼ Gᵢⱼ Rᵢⱼ + Σᵢ cᵢ rᵢ` for fixed weights, and its parameter gradient.
fn weighted_gram(
    m: &dyn ScoreModel,
    x: &[f64],
    extra: Option<&[f64]>,
    feature_space: bool,
) -> (Vec<f64>, Vec<Vec<f64>>) {
    let params = trainable_values(m);
    let refs: Vec<&slicedscore::device::Mat> = params.iter().collect();
    let mut g = Graph::tracking(&dev(), &refs);
    let n = x.len() / D;
    let xm = g.constant(x.to_vec(), n, D);
    let extra = extra.map(|e| g.constant(e.to_vec(), n, D));
    let lc = coefficients(m);
    let (gram, cross) = if feature_space {
        lc.gradient_gram(&mut g, &xm, extra.as_ref())
            .expect("fewer features than inputs: the feature-space route")
    } else {
        gradient_gram_by_jets(&mut g, lc, &xm, D, extra.as_ref())
    };
    let l = lc.coefficient_count();
    let mut rng = ChaCha8Rng::seed_from_u64(99);
    let rg = g.constant(randn(&mut rng, l * l), l, l);
    let rc = g.constant(randn(&mut rng, l), l, 1);
    let a = g.mul(&gram, &rg);
    let a = g.sum_all(&a);
    let b = g.mul(&cross, &rc);
    let b = g.sum_all(&b);
    let total = g.add(&a, &b);
    let mut values = gram.to_host();
    values.extend(cross.to_host());
    (
        values,
        g.backward(&total).iter().map(|m| m.to_host()).collect(),
    )
}

#[test]
fn the_feature_space_gram_equals_the_basis_jets_gram() {
    let m = solved_model(NARROW, 3);
    assert!(
        coefficients(&*solved_model(SOLVED, 3))
            .gradient_gram(
                &mut Graph::inference(&dev()),
                &mat(vec![0.0; D], 1, D),
                None
            )
            .is_none(),
        "as many features as inputs or more: the basis jets"
    );
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let x = randn(&mut rng, 7 * D);
    let extra = randn(&mut rng, 7 * D);
    for extra in [None, Some(&extra[..])] {
        let (fast, fast_grad) = weighted_gram(&*m, &x, extra, true);
        let (jets, jets_grad) = weighted_gram(&*m, &x, extra, false);
        let scale = jets.iter().fold(0.0f64, |a, v| a.max(v.abs()));
        assert!(scale > 1e-3, "a vanishing Gram tests nothing");
        for (k, (a, b)) in fast.iter().zip(&jets).enumerate() {
            assert!(
                (a - b).abs() <= 1e-9 * scale,
                "entry {k} (extra: {}): {a} vs {b}",
                extra.is_some()
            );
        }
        for (p, (ga, gb)) in fast_grad.iter().zip(&jets_grad).enumerate() {
            let gscale = gb.iter().fold(0.0f64, |a, v| a.max(v.abs())).max(1e-12);
            for (k, (a, b)) in ga.iter().zip(gb).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-8 * gscale,
                    "∂/∂ parameter {p}[{k}] (extra: {}): {a} vs {b}",
                    extra.is_some()
                );
            }
        }
    }
}
