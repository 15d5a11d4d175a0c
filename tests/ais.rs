//! Annealed importance sampling: estimates against a closed-form marginal
//! likelihood, exact weights when nothing is annealed, HMC correctness,
//! step-size adaptation, non-finite targets, ESS collapse and schedules.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use slicedscore::ais::{
    self, leapfrog, linear_schedule, log_std_normal, sigmoid_schedule, AisConfig, AisError,
    HmcChains, LogTarget, Schedule, StepSizeAdaptation,
};
use slicedscore::linalg::Cholesky;

fn randn(rng: &mut impl Rng, n: usize) -> Vec<f64> {
    (0..n).map(|_| rng.sample(StandardNormal)).collect()
}

/// z ~ N(0, I_k), x | z ~ N(W z + b, σ² I_d); one target per data point x,
/// f(z) = p(x|z) p(z), so that ∫ f = p(x) = N(x; b, W Wᵀ + σ² I).
struct LinearGaussian {
    k: usize,
    d: usize,
    w: Vec<f64>, // d × k
    b: Vec<f64>,
    sigma: f64,
    xs: Vec<f64>, // points × d
}

impl LinearGaussian {
    fn new(k: usize, d: usize, sigma: f64, points: usize, seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let w = randn(&mut rng, d * k);
        let b = randn(&mut rng, d);
        let mut m = LinearGaussian {
            k,
            d,
            w,
            b,
            sigma,
            xs: Vec::new(),
        };
        for _ in 0..points {
            let z = randn(&mut rng, k);
            let mean = m.mean(&z);
            let eps = randn(&mut rng, d);
            m.xs.extend(mean.iter().zip(&eps).map(|(mu, e)| mu + sigma * e));
        }
        m
    }

    fn mean(&self, z: &[f64]) -> Vec<f64> {
        (0..self.d)
            .map(|i| {
                self.b[i]
                    + (0..self.k)
                        .map(|j| self.w[i * self.k + j] * z[j])
                        .sum::<f64>()
            })
            .collect()
    }

    /// log N(x; b, W Wᵀ + σ² I) for data point `p`.
    fn exact_log_marginal(&self, p: usize) -> f64 {
        let (d, k) = (self.d, self.k);
        let mut c = vec![0.0; d * d];
        for i in 0..d {
            for j in 0..d {
                c[i * d + j] = (0..k)
                    .map(|l| self.w[i * k + l] * self.w[j * k + l])
                    .sum::<f64>()
                    + if i == j { self.sigma * self.sigma } else { 0.0 };
            }
        }
        let chol = Cholesky::new(&c, d).unwrap();
        let r: Vec<f64> = (0..d).map(|i| self.xs[p * d + i] - self.b[i]).collect();
        let mut s = r.clone();
        chol.solve_in_place(&mut s);
        let quad: f64 = r.iter().zip(&s).map(|(a, b)| a * b).sum();
        -0.5 * quad - 0.5 * chol.log_det() - 0.5 * d as f64 * (2.0 * std::f64::consts::PI).ln()
    }
}

impl LogTarget for LinearGaussian {
    fn dim(&self) -> usize {
        self.k
    }
    fn num_points(&self) -> usize {
        self.xs.len() / self.d
    }
    fn log_prob_and_grad(&self, z: &[f64], n: usize) -> (Vec<f64>, Vec<f64>) {
        let (d, k, s2) = (self.d, self.k, self.sigma * self.sigma);
        let per_point = n / self.num_points();
        let norm = -0.5 * d as f64 * (2.0 * std::f64::consts::PI * s2).ln();
        let mut lp = Vec::with_capacity(n);
        let mut grad = vec![0.0; n * k];
        for r in 0..n {
            let zr = &z[r * k..(r + 1) * k];
            let x = &self.xs[(r / per_point) * d..(r / per_point + 1) * d];
            let mean = self.mean(zr);
            let res: Vec<f64> = x.iter().zip(&mean).map(|(a, m)| a - m).collect();
            lp.push(-0.5 * res.iter().map(|v| v * v).sum::<f64>() / s2 + norm + log_std_normal(zr));
            for j in 0..k {
                grad[r * k + j] =
                    (0..d).map(|i| self.w[i * k + j] * res[i]).sum::<f64>() / s2 - zr[j];
            }
        }
        (lp, grad)
    }
}

/// f(z) = exp(−½ (z−μ)ᵀ Λ (z−μ)), a Gaussian with precision Λ (unnormalized),
/// optionally NaN where z₀ > `nan_above`.
struct Gaussian {
    mu: Vec<f64>,
    prec: Vec<f64>, // dim × dim
    nan_above: f64,
    points: usize,
}

impl Gaussian {
    fn new(mu: Vec<f64>, prec: Vec<f64>) -> Self {
        Gaussian {
            mu,
            prec,
            nan_above: f64::INFINITY,
            points: 1,
        }
    }
}

impl LogTarget for Gaussian {
    fn dim(&self) -> usize {
        self.mu.len()
    }
    fn num_points(&self) -> usize {
        self.points
    }
    fn log_prob_and_grad(&self, z: &[f64], n: usize) -> (Vec<f64>, Vec<f64>) {
        let k = self.mu.len();
        let mut lp = vec![0.0; n];
        let mut grad = vec![0.0; n * k];
        for r in 0..n {
            let zr = &z[r * k..(r + 1) * k];
            let c: Vec<f64> = zr.iter().zip(&self.mu).map(|(a, m)| a - m).collect();
            let mut q = 0.0;
            for i in 0..k {
                let g: f64 = (0..k).map(|j| self.prec[i * k + j] * c[j]).sum();
                grad[r * k + i] = -g;
                q += c[i] * g;
            }
            lp[r] = -0.5 * q;
            if zr[0] > self.nan_above {
                lp[r] = f64::NAN;
                grad[r * k..(r + 1) * k].fill(f64::NAN);
            }
        }
        (lp, grad)
    }
}

/// f = N(0, I) exactly, computed the way AIS computes its initial density.
struct StdNormal {
    dim: usize,
    points: usize,
}

impl LogTarget for StdNormal {
    fn dim(&self) -> usize {
        self.dim
    }
    fn num_points(&self) -> usize {
        self.points
    }
    fn log_prob_and_grad(&self, z: &[f64], n: usize) -> (Vec<f64>, Vec<f64>) {
        let lp = (0..n)
            .map(|r| log_std_normal(&z[r * self.dim..(r + 1) * self.dim]))
            .collect();
        (lp, z.iter().map(|v| -v).collect())
    }
}

fn config(num_temperatures: usize, chains: usize) -> AisConfig {
    AisConfig {
        num_temperatures,
        chains,
        ..AisConfig::default()
    }
}

#[test]
fn linear_gaussian_matches_closed_form_marginal() {
    // Default settings (1000 sigmoid temperatures, adaptive steps) with 64
    // chains. The chains' log weights spread by sd ≈ 0.15–0.33 here, so the
    // standard error of each estimate is ≈ 0.02–0.04 nats: 0.1 is ≥ 2.5 SE for
    // the hardest point (6 seeds × 6 points all came within 0.07).
    let points = 6;
    let model = LinearGaussian::new(3, 5, 1.0, points, 1);
    let cfg = config(1000, 64);
    let out = ais::run(&model, &cfg, &mut ChaCha8Rng::seed_from_u64(7), None).unwrap();
    let errs: Vec<f64> = (0..points)
        .map(|p| out.log_marginal[p] - model.exact_log_marginal(p))
        .collect();
    eprintln!(
        "errors {errs:.3?}\ness {:.1?}\nacceptance {:.2?}\nstep {:.3?}",
        out.ess, out.acceptance, out.step_size
    );
    for (p, e) in errs.iter().enumerate() {
        assert!(
            e.abs() < 0.1,
            "point {p}: AIS error {e} nats (exact {})",
            model.exact_log_marginal(p)
        );
    }
    assert_eq!(out.collapsed, 0);
    assert!(out.ess.iter().all(|&e| e > 0.8 * 64.0), "ESS {:?}", out.ess);
    assert_eq!(out.non_finite_rejections, 0);
    assert_eq!(out.log_weights.len(), points * 64);
    assert_eq!(out.states.len(), points * 64 * 3);
}

#[test]
fn same_seed_same_result() {
    let model = LinearGaussian::new(2, 4, 1.0, 3, 5);
    let cfg = config(50, 8);
    let a = ais::run(&model, &cfg, &mut ChaCha8Rng::seed_from_u64(1), None).unwrap();
    let b = ais::run(&model, &cfg, &mut ChaCha8Rng::seed_from_u64(1), None).unwrap();
    let c = ais::run(&model, &cfg, &mut ChaCha8Rng::seed_from_u64(2), None).unwrap();
    assert_eq!(a, b);
    assert_ne!(a.log_weights, c.log_weights);
}

#[test]
fn few_temperatures_are_biased_low() {
    // AIS gives an unbiased estimate of p(x), hence E[log p̂] ≤ log p(x): with
    // only 3 temperatures and 4 chains the bias is several nats; with 300
    // temperatures it is gone (each of the 20 errors has SE ≈ 0.15, so their
    // mean has SE ≈ 0.035).
    let points = 20;
    let model = LinearGaussian::new(3, 5, 1.0, points, 2);
    let mean_err = |cfg: &AisConfig, seed: u64| {
        let out = ais::run(&model, cfg, &mut ChaCha8Rng::seed_from_u64(seed), None).unwrap();
        (0..points)
            .map(|p| out.log_marginal[p] - model.exact_log_marginal(p))
            .sum::<f64>()
            / points as f64
    };
    let crude = mean_err(
        &AisConfig {
            step_size: 0.05,
            ..config(3, 4)
        },
        3,
    );
    let fine = mean_err(
        &AisConfig {
            step_size: 0.05,
            ..config(300, 4)
        },
        3,
    );
    eprintln!("mean error: 3 temperatures {crude}, 300 temperatures {fine}");
    assert!(
        crude < -0.5,
        "3 temperatures: mean error {crude} should be clearly negative"
    );
    assert!(fine.abs() < 0.12, "300 temperatures: mean error {fine}");
}

#[test]
fn target_equal_to_initial_gives_zero_log_weights() {
    let target = StdNormal { dim: 3, points: 4 };
    let out = ais::run(
        &target,
        &config(50, 16),
        &mut ChaCha8Rng::seed_from_u64(0),
        None,
    )
    .unwrap();
    assert!(
        out.log_weights.iter().all(|&w| w == 0.0),
        "{:?}",
        out.log_weights
    );
    assert!(out.ess.iter().all(|&e| e == 16.0), "{:?}", out.ess);
    assert!(
        out.log_marginal.iter().all(|&l| l == 0.0),
        "{:?}",
        out.log_marginal
    );
    assert_eq!(out.collapsed, 0);
}

fn correlated_gaussian() -> Gaussian {
    // Σ = [[1, 0.6], [0.6, 0.5]], Λ = Σ⁻¹.
    let det = 1.0 * 0.5 - 0.6 * 0.6;
    Gaussian::new(
        vec![1.0, -2.0],
        vec![0.5 / det, -0.6 / det, -0.6 / det, 1.0 / det],
    )
}

#[test]
fn leapfrog_is_reversible_and_nearly_conserves_energy() {
    let target = correlated_gaussian();
    let beta = 0.7;
    let n = 8;
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let z0 = randn(&mut rng, 2 * n);
    let p0 = randn(&mut rng, 2 * n);
    let steps: Vec<f64> = (0..n).map(|i| 0.03 + 0.005 * i as f64).collect();
    let energy = |z: &[f64], p: &[f64]| -> Vec<f64> {
        let (lf, _) = target.log_prob_and_grad(z, n);
        (0..n)
            .map(|i| {
                let zi = &z[2 * i..2 * i + 2];
                let pi = &p[2 * i..2 * i + 2];
                -((1.0 - beta) * log_std_normal(zi) + beta * lf[i])
                    + 0.5 * pi.iter().map(|v| v * v).sum::<f64>()
            })
            .collect()
    };
    let (mut z, mut p) = (z0.clone(), p0.clone());
    let diverged = leapfrog(&target, beta, &mut z, &mut p, &steps, 40).unwrap();
    assert!(diverged.iter().all(|d| !d));
    let moved: f64 = z.iter().zip(&z0).map(|(a, b)| (a - b).abs()).sum();
    assert!(moved > 1.0, "the integrator should move the chains");
    for (h0, h1) in energy(&z0, &p0).iter().zip(energy(&z, &p)) {
        assert!(
            (h0 - h1).abs() < 0.02 * h0.abs() + 0.05,
            "energy drift {h0} → {h1}"
        );
    }
    p.iter_mut().for_each(|v| *v = -*v);
    leapfrog(&target, beta, &mut z, &mut p, &steps, 40).unwrap();
    p.iter_mut().for_each(|v| *v = -*v);
    for (a, b) in z.iter().zip(&z0).chain(p.iter().zip(&p0)) {
        assert!((a - b).abs() < 1e-10, "not reversible: {a} vs {b}");
    }
}

#[test]
fn hmc_leaves_gaussian_invariant() {
    let target = correlated_gaussian();
    let n = 200;
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let mut chains = HmcChains::new(&target, randn(&mut rng, 2 * n)).unwrap();
    let steps = vec![0.15; n];
    let mut accept = vec![0.0; n];
    let (mut s, mut ss, mut count) = ([0.0; 2], [0.0; 3], 0.0);
    let mut mean_accept = 0.0;
    for t in 0..300 {
        chains
            .step(&target, 1.0, &steps, 10, &mut rng, &mut accept)
            .unwrap();
        mean_accept += accept.iter().sum::<f64>() / n as f64 / 300.0;
        if t >= 100 {
            for z in chains.positions().chunks(2) {
                s[0] += z[0];
                s[1] += z[1];
                ss[0] += z[0] * z[0];
                ss[1] += z[0] * z[1];
                ss[2] += z[1] * z[1];
                count += 1.0;
            }
        }
    }
    let m = [s[0] / count, s[1] / count];
    let cov = [
        ss[0] / count - m[0] * m[0],
        ss[1] / count - m[0] * m[1],
        ss[2] / count - m[1] * m[1],
    ];
    eprintln!("mean {m:?} cov {cov:?} acceptance {mean_accept}");
    assert!(
        (m[0] - 1.0).abs() < 0.05 && (m[1] + 2.0).abs() < 0.05,
        "mean {m:?}"
    );
    for (got, want) in cov.iter().zip([1.0, 0.6, 0.5]) {
        assert!(
            (got - want).abs() < 0.08 * want.max(0.5),
            "covariance {cov:?}"
        );
    }
    assert!(
        mean_accept > 0.5 && mean_accept < 1.0,
        "acceptance {mean_accept}"
    );
}

#[test]
fn step_size_adapts_toward_target_acceptance() {
    // Badly scaled: standard deviations 1 and 0.03; the step must shrink ~10×.
    let target = Gaussian::new(vec![0.0, 0.0], vec![1.0, 0.0, 0.0, 1.0 / (0.03 * 0.03)]);
    let cfg = AisConfig {
        step_size: 0.5,
        ..config(400, 16)
    };
    let out = ais::run(&target, &cfg, &mut ChaCha8Rng::seed_from_u64(6), None).unwrap();
    eprintln!(
        "final acceptance {:?} step {:?} mean {}",
        out.final_acceptance, out.step_size, out.mean_acceptance
    );
    assert!(
        (0.45..0.85).contains(&out.final_acceptance[0]),
        "{:?}",
        out.final_acceptance
    );
    assert!(out.step_size[0] < 0.15, "step size {:?}", out.step_size);
    assert!(
        out.mean_acceptance > 0.4,
        "mean acceptance {}",
        out.mean_acceptance
    );

    // Without adaptation the same starting step is rejected most of the time.
    let fixed = AisConfig {
        adaptation: None,
        ..cfg
    };
    let out = ais::run(&target, &fixed, &mut ChaCha8Rng::seed_from_u64(6), None).unwrap();
    assert!(out.final_acceptance[0] < 0.2, "{:?}", out.final_acceptance);
    assert_eq!(out.step_size, vec![0.5]);
}

#[test]
fn non_finite_proposals_are_rejected() {
    // f(z) = exp(−‖z − μ‖²), μ = (0.5, 0), but NaN where z₀ > 2.5: proposals
    // that land there are rejected. (No initial state of this seed lies there.)
    // ∫ f over z₀ ≤ 2.5 is π·Φ(2√2) ≈ π·0.9977.
    let mut target = Gaussian::new(vec![0.5, 0.0], vec![2.0, 0.0, 0.0, 2.0]);
    target.nan_above = 2.5;
    target.points = 2;
    let cfg = AisConfig {
        adaptation: None,
        step_size: 0.5,
        ..config(1000, 64)
    };
    let out = ais::run(&target, &cfg, &mut ChaCha8Rng::seed_from_u64(1), None).unwrap();
    let want = std::f64::consts::PI.ln() + 0.9977f64.ln();
    eprintln!(
        "rejected {} estimates {:?} (≈ {want})",
        out.non_finite_rejections, out.log_marginal
    );
    assert!(out.non_finite_rejections > 0);
    assert!(out.log_weights.iter().all(|l| l.is_finite()));
    assert!(out
        .states
        .chunks(2)
        .all(|z| z[0] <= 2.5 && z[1].is_finite()));
    for l in &out.log_marginal {
        assert!((l - want).abs() < 0.05, "estimate {l}, ≈ {want}");
    }
}

#[test]
fn non_finite_initial_state_is_an_error_naming_the_chain() {
    let mut target = Gaussian::new(vec![0.0, 0.0], vec![1.0, 0.0, 0.0, 1.0]);
    target.nan_above = 1.5;
    target.points = 3;
    let cfg = config(10, 8);
    let err = ais::run(&target, &cfg, &mut ChaCha8Rng::seed_from_u64(2), None).unwrap_err();
    // The initial states are the first draws of the stream.
    let z0 = randn(&mut ChaCha8Rng::seed_from_u64(2), 3 * 8 * 2);
    let first = z0.chunks(2).position(|z| z[0] > 1.5).unwrap();
    match err {
        AisError::NonFinite {
            temperature,
            point,
            chain,
            quantity,
            value,
        } => {
            assert_eq!(
                (temperature, point, chain, quantity),
                (0, first / 8, first % 8, "log-probability")
            );
            assert!(value.is_nan());
        }
        other => panic!("expected NonFinite, got {other:?}"),
    }
    assert!(err.to_string().contains("temperature index 0"), "{err}");
}

#[test]
fn collapsed_effective_sample_size_is_counted() {
    // Plain importance sampling from N(0, I) (2 temperatures) onto a narrow,
    // distant target: one chain carries almost all the weight.
    let mut target = Gaussian::new(vec![3.0, 3.0], vec![400.0, 0.0, 0.0, 400.0]);
    target.points = 4;
    let out = ais::run(
        &target,
        &config(2, 16),
        &mut ChaCha8Rng::seed_from_u64(3),
        None,
    )
    .unwrap();
    eprintln!("ess {:?}", out.ess);
    assert_eq!(out.collapsed, 4);
    assert!(
        out.ess.iter().all(|&e| (1.0..1.6).contains(&e)),
        "{:?}",
        out.ess
    );
    // A threshold of 0 counts nothing.
    let lax = AisConfig {
        ess_collapse_fraction: 0.0,
        ..config(2, 16)
    };
    let out = ais::run(&target, &lax, &mut ChaCha8Rng::seed_from_u64(3), None).unwrap();
    assert_eq!(out.collapsed, 0);
}

#[test]
fn schedules_run_from_zero_to_one_monotonically() {
    for num in [2, 3, 10, 1000] {
        for betas in [
            sigmoid_schedule(num, 4.0),
            linear_schedule(num),
            Schedule::default().betas(num),
        ] {
            assert_eq!(betas.len(), num);
            assert_eq!(betas[0], 0.0);
            assert_eq!(betas[num - 1], 1.0);
            assert!(
                betas.windows(2).all(|w| w[0] < w[1]),
                "not increasing: {betas:?}"
            );
        }
    }
    // The sigmoid schedule is denser than the linear one near both ends.
    let s = sigmoid_schedule(1000, 4.0);
    assert!(s[1] < 1.0 / 999.0 / 5.0 && 1.0 - s[998] < 1.0 / 999.0 / 5.0);
}

#[test]
fn bad_settings_and_shapes_are_errors() {
    let target = StdNormal { dim: 2, points: 1 };
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let bad = [
        (
            AisConfig {
                chains: 0,
                ..AisConfig::default()
            },
            "chains",
        ),
        (
            AisConfig {
                num_temperatures: 1,
                ..AisConfig::default()
            },
            "num_temperatures",
        ),
        (
            AisConfig {
                step_size: f64::NAN,
                ..AisConfig::default()
            },
            "step_size",
        ),
        (
            AisConfig {
                step_size: 2.0,
                ..AisConfig::default()
            },
            "step_size",
        ),
        (
            AisConfig {
                adaptation: Some(StepSizeAdaptation {
                    factor: 1.0,
                    ..Default::default()
                }),
                ..AisConfig::default()
            },
            "adaptation.factor",
        ),
    ];
    for (cfg, field) in bad {
        match ais::run(&target, &cfg, &mut rng, None) {
            Err(AisError::InvalidConfig { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{field}: expected InvalidConfig, got {other:?}"),
        }
    }

    struct Short;
    impl LogTarget for Short {
        fn dim(&self) -> usize {
            2
        }
        fn log_prob_and_grad(&self, _z: &[f64], n: usize) -> (Vec<f64>, Vec<f64>) {
            (vec![0.0; n], vec![0.0; n])
        }
    }
    let err = ais::run(&Short, &config(10, 4), &mut rng, None).unwrap_err();
    assert_eq!(
        err,
        AisError::TargetShape {
            what: "gradient",
            expected: 8,
            got: 4
        }
    );

    // Settings read from RON, defaults filled in.
    let cfg: AisConfig = ron::from_str("(num_temperatures: 200, schedule: Linear)").unwrap();
    assert_eq!(
        cfg,
        AisConfig {
            num_temperatures: 200,
            schedule: Schedule::Linear,
            ..AisConfig::default()
        }
    );
}
