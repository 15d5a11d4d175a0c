//! The kernel score estimators `stein` and `spectral`:
//!
//! 1. both agree with a plain dense-matrix reference written here (naive
//!    loops, Gaussian elimination; eigenpairs by the cyclic Jacobi rotations
//!    of the tabular task's whitening, independent of the `linalg`
//!    eigensolver the estimators use) on a small case, at the samples and
//!    off them;
//! 2. their error against the true score of Gaussians and a two-component
//!    mixture falls as the number of samples grows;
//! 3. the symmetric eigendecomposition reconstructs its input with
//!    orthonormal vectors;
//! 4. bad input (too few, non-finite, identical samples; η = 0 with repeats;
//!    zero bandwidth) gives an error or a documented finite fallback;
//! 5. `terms` agrees with `score` (`vᵀs`) and with finite differences of it
//!    (`vᵀ(∇s)v`), and scoring the fitted samples returns the fitted estimates;
//! 6. both parse from RON through the registry, and unknown or invalid
//!    settings are errors.

use std::path::Path;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use slicedscore::autodiff::Graph;
use slicedscore::device::{Device, Precision};
use slicedscore::experiment::Experiment;
use slicedscore::kernels::{self, Bandwidth, PointScore};
use slicedscore::model::{FitsFromSamples, ScoreModel};
use slicedscore::plugins::models::spectral::{Spectral, SpectralConfig};
use slicedscore::plugins::models::stein::{Stein, SteinConfig};
// The reference eigensolver: values in decreasing order, vectors as columns.
use slicedscore::plugins::tasks::tabular::preprocess::symmetric_eigen as ref_jacobi;
use slicedscore::registry::BuiltModel;
use slicedscore::registry::{Component, ModelConfig};

// ---------------------------------------------------------------- helpers

fn normal(rng: &mut ChaCha8Rng, n: usize) -> Vec<f64> {
    (0..n).map(|_| rng.sample(StandardNormal)).collect()
}

fn stein_cfg(eta: f64, bandwidth: Bandwidth) -> SteinConfig {
    SteinConfig {
        eta,
        bandwidth,
        samples: 100,
    }
}

fn spectral_cfg(num_eigen: Option<usize>, ratio: f64) -> SpectralConfig {
    SpectralConfig {
        num_eigen,
        eigen_ratio: ratio,
        bandwidth: Bandwidth::Median,
        samples: 100,
    }
}

fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

// ------------------------------------------------ the plain dense reference

/// Median of the pairwise distances, by sorting all of them.
fn ref_median_bandwidth(x: &[f64], n: usize, d: usize) -> f64 {
    let mut dist = Vec::new();
    for i in 0..n {
        for j in (i + 1)..n {
            let s: f64 = (0..d).map(|a| (x[i * d + a] - x[j * d + a]).powi(2)).sum();
            dist.push(s.sqrt());
        }
    }
    dist.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let m = dist.len();
    if m % 2 == 1 {
        dist[m / 2]
    } else {
        0.5 * (dist[m / 2 - 1] + dist[m / 2])
    }
}

fn ref_k(a: &[f64], b: &[f64], sigma: f64) -> f64 {
    let s: f64 = a.iter().zip(b).map(|(u, v)| (u - v).powi(2)).sum();
    (-s / (2.0 * sigma * sigma)).exp()
}

/// `∇_x k(x, y)` for the RBF kernel.
fn ref_grad_k_x(x: &[f64], y: &[f64], sigma: f64) -> Vec<f64> {
    let k = ref_k(x, y, sigma);
    x.iter()
        .zip(y)
        .map(|(a, b)| -k * (a - b) / (sigma * sigma))
        .collect()
}

/// Solves `A X = B` (`A` n × n, `B` n × m) by Gaussian elimination with
/// partial pivoting.
fn ref_solve(a: &[f64], b: &[f64], n: usize, m: usize) -> Vec<f64> {
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    for col in 0..n {
        let p = (col..n)
            .max_by(|&i, &j| {
                a[i * n + col]
                    .abs()
                    .partial_cmp(&a[j * n + col].abs())
                    .unwrap()
            })
            .unwrap();
        for c in 0..n {
            a.swap(col * n + c, p * n + c);
        }
        for c in 0..m {
            b.swap(col * m + c, p * m + c);
        }
        for r in (col + 1)..n {
            let f = a[r * n + col] / a[col * n + col];
            for c in 0..n {
                a[r * n + c] -= f * a[col * n + c];
            }
            for c in 0..m {
                b[r * m + c] -= f * b[col * m + c];
            }
        }
    }
    let mut x = vec![0.0; n * m];
    for r in (0..n).rev() {
        for c in 0..m {
            let mut s = b[r * m + c];
            for k in (r + 1)..n {
                s -= a[r * n + k] * x[k * m + c];
            }
            x[r * m + c] = s / a[r * n + r];
        }
    }
    x
}

/// Li & Turner: `Ĝ = −(K + ηI)⁻¹ ⟨∇, K⟩`, `⟨∇, K⟩_i = Σ_j ∇_{x_j} k(x_i, x_j)`.
fn ref_stein(x: &[f64], n: usize, d: usize, eta: f64, sigma: f64) -> Vec<f64> {
    let mut a = vec![0.0; n * n];
    let mut rhs = vec![0.0; n * d];
    for i in 0..n {
        for j in 0..n {
            let xi = &x[i * d..(i + 1) * d];
            let xj = &x[j * d..(j + 1) * d];
            a[i * n + j] = ref_k(xi, xj, sigma) + if i == j { eta } else { 0.0 };
            // ∇_{x_j} k(x_i, x_j) = ∇_x k(x_j, x_i) by symmetry.
            let gk = ref_grad_k_x(xj, xi, sigma);
            for c in 0..d {
                rhs[i * d + c] -= gk[c];
            }
        }
    }
    ref_solve(&a, &rhs, n, d)
}

/// Shi et al.: `ψ_j(x) = (√M/λ_j) Σ_m k(x, x_m) u_mj`,
/// `β_j = −(1/M) Σ_m ∇ψ_j(x_m)`, `ĝ(q) = Σ_j β_j ψ_j(q)`, with the `j`
/// leading eigenpairs, at each row of `q`.
fn ref_spectral(x: &[f64], m: usize, d: usize, sigma: f64, j: usize, q: &[f64]) -> Vec<f64> {
    let mut k = vec![0.0; m * m];
    for a in 0..m {
        for b in 0..m {
            k[a * m + b] = ref_k(&x[a * d..(a + 1) * d], &x[b * d..(b + 1) * d], sigma);
        }
    }
    let (vals, vecs) = ref_jacobi(&k, m);
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| vals[b].partial_cmp(&vals[a]).unwrap());
    let sm = (m as f64).sqrt();
    let psi = |jj: usize, p: &[f64]| -> f64 {
        let col = order[jj];
        (0..m)
            .map(|l| ref_k(p, &x[l * d..(l + 1) * d], sigma) * vecs[l * m + col])
            .sum::<f64>()
            * sm
            / vals[col]
    };
    let grad_psi = |jj: usize, p: &[f64]| -> Vec<f64> {
        let col = order[jj];
        let mut gsum = vec![0.0; d];
        for l in 0..m {
            let gk = ref_grad_k_x(p, &x[l * d..(l + 1) * d], sigma);
            for c in 0..d {
                gsum[c] += gk[c] * vecs[l * m + col] * sm / vals[col];
            }
        }
        gsum
    };
    let beta: Vec<Vec<f64>> = (0..j)
        .map(|jj| {
            let mut b = vec![0.0; d];
            for l in 0..m {
                let gp = grad_psi(jj, &x[l * d..(l + 1) * d]);
                for c in 0..d {
                    b[c] -= gp[c] / m as f64;
                }
            }
            b
        })
        .collect();
    let nq = q.len() / d;
    let mut out = vec![0.0; nq * d];
    for r in 0..nq {
        let p = &q[r * d..(r + 1) * d];
        for (jj, b) in beta.iter().enumerate() {
            let ps = psi(jj, p);
            for c in 0..d {
                out[r * d + c] += b[c] * ps;
            }
        }
    }
    out
}

// ------------------------------------------- 1. agreement with the reference

#[test]
fn stein_matches_the_dense_reference() {
    let (n, d) = (5, 2);
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let x = normal(&mut rng, n * d);
    let sigma = ref_median_bandwidth(&x, n, d);
    for eta in [1e-3, 0.1] {
        let est = Stein::fit(d, 0, &stein_cfg(eta, Bandwidth::Median), &x).unwrap();
        let bw = est.fitted().bandwidth();
        assert!((bw - sigma).abs() < 1e-14, "bandwidth {bw} vs {sigma}");
        let want = ref_stein(&x, n, d, eta, sigma);
        let err = max_abs_diff(est.fitted().fitted_scores(), &want);
        assert!(err < 1e-8, "eta {eta}: max error {err}");
        // Scoring the samples returns the fit.
        assert_eq!(est.scores(&x), est.fitted().fitted_scores());

        // Off-sample: the last row of the estimator refitted on the samples
        // plus the query, with the fitted bandwidth; scored in one batch
        // mixed with fitted samples.
        let mut batch = Vec::new();
        let mut want = Vec::new();
        for k in 0..4 {
            let q = normal(&mut rng, d);
            let mut aug = x.clone();
            aug.extend_from_slice(&q);
            let full = ref_stein(&aug, n + 1, d, eta, sigma);
            batch.extend_from_slice(&q);
            want.extend_from_slice(&full[n * d..]);
            batch.extend_from_slice(&x[k * d..(k + 1) * d]);
            want.extend_from_slice(&est.fitted().fitted_scores()[k * d..(k + 1) * d]);
        }
        let got = est.scores(&batch);
        let err = max_abs_diff(&got, &want);
        assert!(
            err < 1e-8,
            "eta {eta}: off-sample error {err}: {got:?} vs {want:?}"
        );
    }
}

#[test]
fn spectral_matches_the_dense_reference() {
    let (m, d) = (5, 2);
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let x = normal(&mut rng, m * d);
    let sigma = ref_median_bandwidth(&x, m, d);
    let mut q = x.clone();
    q.extend(normal(&mut rng, 3 * d));
    for j in 1..=m {
        let est = Spectral::fit(d, 0, &spectral_cfg(Some(j), 0.99), &x).unwrap();
        assert_eq!(est.num_eigenpairs(), j);
        assert!((est.fitted().bandwidth() - sigma).abs() < 1e-14);
        let want = ref_spectral(&x, m, d, sigma, j, &q);
        let got = est.scores(&q);
        let scale = want.iter().fold(1.0f64, |a, b| a.max(b.abs()));
        let err = max_abs_diff(&got, &want) / scale;
        assert!(err < 1e-8, "J = {j}: relative error {err}");
    }
    // The eigenvalue-mass rule keeps the fewest leading pairs reaching the ratio.
    let mut k = vec![0.0; m * m];
    for a in 0..m {
        for b in 0..m {
            k[a * m + b] = ref_k(&x[a * d..(a + 1) * d], &x[b * d..(b + 1) * d], sigma);
        }
    }
    let (mut vals, _) = ref_jacobi(&k, m);
    vals.sort_by(|a, b| b.partial_cmp(a).unwrap());
    let total: f64 = vals.iter().sum();
    for ratio in [0.5, 0.9, 0.99, 1.0] {
        let want = (1..=m)
            .find(|&j| vals[..j].iter().sum::<f64>() >= ratio * total * (1.0 - 1e-12))
            .unwrap();
        let est = Spectral::fit(d, 0, &spectral_cfg(None, ratio), &x).unwrap();
        assert_eq!(
            est.num_eigenpairs(),
            want,
            "ratio {ratio}, eigenvalues {vals:?}"
        );
    }
}

// ------------------------------------------- 2. error falls with more samples

/// A target with a closed-form score.
enum Target {
    /// Standard normal in `d` dimensions.
    Gaussian(usize),
    /// ½N(−μ, I) + ½N(μ, I) in 2-D, μ = (1.5, 0).
    Mixture,
}

impl Target {
    fn dim(&self) -> usize {
        match self {
            Target::Gaussian(d) => *d,
            Target::Mixture => 2,
        }
    }
    fn sample(&self, rng: &mut ChaCha8Rng, n: usize) -> Vec<f64> {
        let mut x = normal(rng, n * self.dim());
        if let Target::Mixture = self {
            for row in x.chunks_mut(2) {
                row[0] += if rng.gen_bool(0.5) { 1.5 } else { -1.5 };
            }
        }
        x
    }
    fn score(&self, x: &[f64]) -> Vec<f64> {
        match self {
            Target::Gaussian(_) => x.iter().map(|v| -v).collect(),
            Target::Mixture => x
                .chunks(2)
                .flat_map(|r| {
                    // Responsibility of the +μ component.
                    let w = 1.0 / (1.0 + (-2.0 * 1.5 * r[0]).exp());
                    let m0 = w * 1.5 - (1.0 - w) * 1.5;
                    [m0 - r[0], -r[1]]
                })
                .collect(),
        }
    }
}

fn mse(a: &[f64], b: &[f64], d: usize) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum::<f64>() / (a.len() / d) as f64
}

/// Where an estimator's error is measured.
#[derive(Clone, Copy, Debug)]
enum Mode {
    /// Stein at its own samples (where it is defined).
    SteinAtSamples,
    /// Stein's out-of-sample extension at fresh points.
    SteinHeldOut,
    /// Spectral at fresh points.
    SpectralHeldOut,
}

/// Mean over seeds of the squared score error per point, for each n.
fn errors(target: &Target, mode: Mode, ns: &[usize], seeds: u64) -> Vec<f64> {
    let d = target.dim();
    ns.iter()
        .map(|&n| {
            (0..seeds)
                .map(|seed| {
                    let mut rng = ChaCha8Rng::seed_from_u64(100 + seed);
                    let x = target.sample(&mut rng, n);
                    let held_out = target.sample(&mut rng, 200);
                    match mode {
                        Mode::SpectralHeldOut => {
                            let est = Spectral::fit(d, 0, &spectral_cfg(None, 0.99), &x).unwrap();
                            mse(&est.scores(&held_out), &target.score(&held_out), d)
                        }
                        Mode::SteinAtSamples | Mode::SteinHeldOut => {
                            let est =
                                Stein::fit(d, 0, &stein_cfg(1e-3, Bandwidth::Median), &x).unwrap();
                            if let Mode::SteinAtSamples = mode {
                                mse(est.fitted().fitted_scores(), &target.score(&x), d)
                            } else {
                                mse(&est.scores(&held_out), &target.score(&held_out), d)
                            }
                        }
                    }
                })
                .sum::<f64>()
                / seeds as f64
        })
        .collect()
}

fn check_decreasing(what: &str, errs: &[f64]) {
    eprintln!("{what}: {errs:?}");
    for w in errs.windows(2) {
        assert!(w[1] < w[0], "{what}: error did not fall with n: {errs:?}");
    }
    assert!(
        errs[errs.len() - 1] < 0.6 * errs[0],
        "{what}: error fell too little: {errs:?}"
    );
}

#[test]
fn stein_error_falls_with_more_samples() {
    let ns = [25, 100, 400];
    for target in [Target::Gaussian(2), Target::Gaussian(5), Target::Mixture] {
        for mode in [Mode::SteinAtSamples, Mode::SteinHeldOut] {
            let what = format!(
                "{mode:?}, {}-D, mixture: {}",
                target.dim(),
                matches!(target, Target::Mixture)
            );
            check_decreasing(&what, &errors(&target, mode, &ns, 4));
        }
    }
}

#[test]
fn spectral_error_falls_with_more_samples() {
    let ns = [25, 100, 400];
    for target in [Target::Gaussian(2), Target::Gaussian(5), Target::Mixture] {
        let what = format!(
            "spectral, {}-D, mixture: {}",
            target.dim(),
            matches!(target, Target::Mixture)
        );
        check_decreasing(&what, &errors(&target, Mode::SpectralHeldOut, &ns, 4));
    }
}

// ------------------------------------------------- 3. the eigendecomposition

fn check_eigen(a: &[f64], n: usize, tol: f64) {
    let e = slicedscore::linalg::sym_eigen(a, n).unwrap();
    assert_eq!(e.values.len(), n);
    for w in e.values.windows(2) {
        assert!(w[0] >= w[1], "not sorted: {:?}", e.values);
    }
    let scale = a.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    for i in 0..n {
        for j in 0..n {
            let rec: f64 = (0..n)
                .map(|k| e.values[k] * e.vector(k)[i] * e.vector(k)[j])
                .sum();
            assert!(
                (rec - a[i * n + j]).abs() < tol * scale,
                "reconstruction ({i}, {j}): {rec} vs {}",
                a[i * n + j]
            );
            let dot: f64 = (0..n).map(|k| e.vector(i)[k] * e.vector(j)[k]).sum();
            let want = if i == j { 1.0 } else { 0.0 };
            assert!((dot - want).abs() < tol, "orthonormality ({i}, {j}): {dot}");
        }
        // A v = λ v.
        let av: Vec<f64> = (0..n)
            .map(|r| (0..n).map(|c| a[r * n + c] * e.vector(i)[c]).sum())
            .collect();
        let lv: Vec<f64> = e.vector(i).iter().map(|v| v * e.values[i]).collect();
        assert!(max_abs_diff(&av, &lv) < tol * scale);
    }
}

#[test]
fn eigendecomposition_reconstructs_symmetric_matrices() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for n in [1, 2, 3, 7, 30, 100] {
        let b = normal(&mut rng, n * n);
        let a: Vec<f64> = (0..n * n)
            .map(|k| 0.5 * (b[k] + b[(k % n) * n + k / n]))
            .collect();
        check_eigen(&a, n, 1e-10);
    }
    // Repeated eigenvalues, a zero matrix, a diagonal, and a low-rank Gram matrix.
    check_eigen(&[2.0, 0.0, 0.0, 0.0, 2.0, 0.0, 0.0, 0.0, 5.0], 3, 1e-12);
    check_eigen(&[0.0; 16], 4, 1e-12);
    let x = normal(&mut rng, 40 * 2);
    let mut k = Vec::new();
    kernels::pairwise_sq_dists_into(&x, 40, 2, &mut k);
    kernels::rbf_from_sq_in_place(&mut k, 3.0);
    check_eigen(&k, 40, 1e-10);
    // Against the Jacobi reference: the same eigenvalues.
    let (mut jv, _) = ref_jacobi(&k, 40);
    jv.sort_by(|a, b| b.partial_cmp(a).unwrap());
    let e = slicedscore::linalg::sym_eigen(&k, 40).unwrap();
    assert!(max_abs_diff(&jv, &e.values) < 1e-10);
    // Bad input is an error, not NaN.
    assert!(slicedscore::linalg::sym_eigen(&[1.0, f64::NAN, f64::NAN, 1.0], 2).is_err());
    assert!(slicedscore::linalg::sym_eigen(&[1.0, 2.0, 3.0], 2).is_err());
}

#[test]
fn median_heuristic_convention() {
    // Three points on a line at 0, 1, 3: distances 1, 2, 3 → median 2.
    let x = [0.0, 1.0, 3.0];
    let mut sq = Vec::new();
    kernels::pairwise_sq_dists_into(&x, 3, 1, &mut sq);
    let s = kernels::median_heuristic(&sq, 3, &mut Vec::new()).unwrap();
    assert!((s - 2.0).abs() < 1e-15, "{s}");
    // Four points at 0, 1, 3, 7: distances 1, 2, 3, 4, 6, 7 → (3 + 4)/2.
    let x = [0.0, 1.0, 3.0, 7.0];
    kernels::pairwise_sq_dists_into(&x, 4, 1, &mut sq);
    let s = kernels::median_heuristic(&sq, 4, &mut Vec::new()).unwrap();
    assert!((s - 3.5).abs() < 1e-15, "{s}");
}

// ----------------------------------------------------------- 4. bad input

/// A fit's name and result: the fitted model or the error.
type Fitted = (String, Result<Box<dyn ScoreModel>, String>);

fn both(x: &[f64], d: usize) -> [Fitted; 2] {
    let rs = Stein::fit(d, 0, &stein_cfg(1e-3, Bandwidth::Median), x)
        .map(|m| Box::new(m) as Box<dyn ScoreModel>)
        .map_err(|e| e.to_string());
    let rp = Spectral::fit(d, 0, &spectral_cfg(None, 0.99), x)
        .map(|m| Box::new(m) as Box<dyn ScoreModel>)
        .map_err(|e| e.to_string());
    [("stein".to_string(), rs), ("spectral".to_string(), rp)]
}

fn assert_finite_scores(m: &dyn ScoreModel, x: &[f64], what: &str) {
    let d = m.dim();
    let dev = Device::cpu(Precision::F64);
    let mut g = Graph::inference(&dev);
    let xm = g.constant(x.to_vec(), x.len() / d, d);
    let s = m.score(&mut g, &xm).to_host();
    assert!(s.iter().all(|v| v.is_finite()), "{what}: {s:?}");
}

#[test]
fn bad_samples_are_errors_or_finite() {
    // Too few.
    for (name, r) in both(&[0.5, 0.5], 2) {
        let e = r.err().unwrap();
        assert!(e.contains("at least 2"), "{name}: {e}");
    }
    // Non-finite.
    for bad in [f64::NAN, f64::INFINITY] {
        for (name, r) in both(&[0.0, 1.0, bad, 2.0, 3.0, 4.0], 2) {
            let e = r.err().unwrap();
            assert!(
                e.contains("sample 1") && e.contains("non-finite"),
                "{name}: {e}"
            );
        }
    }
    // Not whole rows.
    for (name, r) in both(&[0.0, 1.0, 2.0], 2) {
        assert!(r.is_err(), "{name}");
    }
    // All identical: bandwidth 0 is reported.
    for (name, r) in both(&[1.5, -2.0].repeat(10), 2) {
        let e = r.err().unwrap();
        assert!(e.contains("same point"), "{name}: {e}");
    }
    // Mostly identical: the median distance is 0, the fallback bandwidth
    // (median of the positive distances) gives finite estimates.
    let mut x = [1.5, -2.0].repeat(7);
    x.extend_from_slice(&[0.0, 0.0, 3.0, 1.0]);
    for (name, r) in both(&x, 2) {
        let m = r.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_finite_scores(&*m, &x, &name);
        assert_finite_scores(&*m, &[0.3, 0.1, 1.5, -2.0 + 1e-9], &name);
    }
    let st = Stein::fit(2, 0, &stein_cfg(1e-3, Bandwidth::Median), &x).unwrap();
    // distances: 7·6/2 zeros, 7·2 + 1 positive → median of the 15 positive ones.
    let mut pos: Vec<f64> = Vec::new();
    for i in 0..9 {
        for j in (i + 1)..9 {
            let dd = ((x[2 * i] - x[2 * j]).powi(2) + (x[2 * i + 1] - x[2 * j + 1]).powi(2)).sqrt();
            if dd > 0.0 {
                pos.push(dd);
            }
        }
    }
    pos.sort_by(|a, b| a.partial_cmp(b).unwrap());
    assert_eq!(pos.len(), 15);
    assert!((st.fitted().bandwidth() - pos[7]).abs() < 1e-14);

    // η = 0 with repeated samples: K is singular, Cholesky fails, reported.
    let e = Stein::fit(2, 0, &stein_cfg(0.0, Bandwidth::Median), &x)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("cannot be factored"), "{e}");
    // η = 0 with distinct samples works.
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let y = normal(&mut rng, 20);
    let st0 = Stein::fit(2, 0, &stein_cfg(0.0, Bandwidth::Median), &y).unwrap();
    assert_finite_scores(&st0, &y, "stein eta 0");

    // Far-away queries: kernels underflow to 0, the scores stay finite (0).
    for (name, r) in both(&y, 2) {
        let m = r.unwrap();
        assert_finite_scores(&*m, &[1e3, -1e3, 1e300, 0.0], &name);
    }
}

#[test]
fn an_estimator_is_fitted_before_it_scores() {
    // The estimator (what an experiment builds) gives a model only by a fit,
    // so nothing can ask an unfitted one for scores; a failed fit is an error.
    let dev = Device::cpu(Precision::F64);
    let c = parse(r#"{"stein": ()}"#).unwrap();
    let BuiltModel::Fitted(est) = c
        .config
        .build(&dev, 2, &mut ChaCha8Rng::seed_from_u64(0))
        .unwrap()
    else {
        panic!("stein is fitted from samples")
    };
    assert!(est.fit(&dev, &[f64::NAN, 0.0, 1.0, 1.0]).is_err());
    let m = est.fit(&dev, &[0.0, 0.0, 1.0, 0.5, -1.0, 2.0]).unwrap();
    assert_finite_scores(&*m, &[0.2, 0.1], "stein");
}

// ----------------------------------------------------- 5. terms vs score

fn graph_terms(m: &dyn ScoreModel, x: &[f64], v: &[f64]) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let d = m.dim();
    let n = v.len() / d;
    let dev: Device = Device::cpu(Precision::F64);
    let mut g = Graph::inference(&dev);
    let xm = g.constant(x.to_vec(), n, x.len() / n);
    let vm = g.constant(v.to_vec(), n, d);
    let t = m.terms(&mut g, &xm, &vm, true);
    assert_eq!(t.vs.shape(), (n, 1));
    assert_eq!(t.vhv.shape(), (n, 1));
    (t.vs.to_host(), t.vhv.to_host(), t.score.unwrap().to_host())
}

fn graph_score(m: &dyn ScoreModel, x: &[f64], n: usize) -> Vec<f64> {
    let dev: Device = Device::cpu(Precision::F64);
    let mut g = Graph::inference(&dev);
    let xm = g.constant(x.to_vec(), n, x.len() / n);
    let s = m.score(&mut g, &xm);
    assert_eq!(s.shape(), (n, m.dim()));
    s.to_host()
}

#[test]
fn terms_match_the_score_and_its_finite_differences() {
    let (n, d) = (60, 3);
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let x = normal(&mut rng, n * d);
    let st = Stein::fit(d, 0, &stein_cfg(1e-3, Bandwidth::Median), &x).unwrap();
    let sp = Spectral::fit(d, 0, &spectral_cfg(None, 0.99), &x).unwrap();
    let models: [(&str, &dyn ScoreModel, f64); 2] = [("stein", &st, 1e-5), ("spectral", &sp, 1e-6)];
    for (name, m, tol) in models {
        // Off-sample queries and the fitted samples themselves.
        let mut q = normal(&mut rng, 10 * d);
        q.extend_from_slice(&x[..10 * d]);
        let nq = 20;
        let v: Vec<f64> = normal(&mut rng, nq * d);
        let (vs, vhv, s) = graph_terms(m, &q, &v);
        assert_eq!(s, graph_score(m, &q, nq), "{name}");
        for i in 0..nq {
            let qi = &q[i * d..(i + 1) * d];
            let vi = &v[i * d..(i + 1) * d];
            let si = &s[i * d..(i + 1) * d];
            let want_vs: f64 = si.iter().zip(vi).map(|(a, b)| a * b).sum();
            assert!((vs[i] - want_vs).abs() < 1e-12, "{name} row {i}");
            // Central difference of vᵀs along v (a step unlike Stein's own).
            let h = 1e-3;
            let p: Vec<f64> = qi.iter().zip(vi).map(|(a, b)| a + h * b).collect();
            let mn: Vec<f64> = qi.iter().zip(vi).map(|(a, b)| a - h * b).collect();
            let sp_ = graph_score(m, &p, 1);
            let sm_ = graph_score(m, &mn, 1);
            let fd: f64 = vi
                .iter()
                .zip(sp_.iter().zip(&sm_))
                .map(|(a, (b, c))| a * (b - c))
                .sum::<f64>()
                / (2.0 * h);
            let scale = 1.0 + fd.abs();
            assert!(
                (vhv[i] - fd).abs() < tol * scale * 100.0,
                "{name} row {i}: vhv {} vs finite difference {fd}",
                vhv[i]
            );
        }
    }
    // Scoring the fitted samples (in order or shuffled) returns the fit.
    assert_eq!(graph_score(&st, &x, n), st.fitted().fitted_scores());
    assert_eq!(graph_score(&sp, &x, n), sp.fitted().fitted_scores());
    let mut perm: Vec<usize> = (0..n).collect();
    perm.reverse();
    let xp: Vec<f64> = perm
        .iter()
        .flat_map(|&i| x[i * d..(i + 1) * d].to_vec())
        .collect();
    let want: Vec<f64> = perm
        .iter()
        .flat_map(|&i| st.fitted().fitted_scores()[i * d..(i + 1) * d].to_vec())
        .collect();
    assert_eq!(graph_score(&st, &xp, n), want);
    // The spectral expansion at a sample equals its fitted estimate.
    let mut nudged = x[..d].to_vec();
    nudged[0] += 1e-12;
    let a = graph_score(&sp, &nudged, 1);
    assert!(max_abs_diff(&a, &sp.fitted().fitted_scores()[..d]) < 1e-8);
}

#[test]
fn context_columns_are_ignored() {
    let (n, d) = (30, 2);
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let x = normal(&mut rng, n * d);
    let st = Stein::fit(d, 3, &stein_cfg(1e-3, Bandwidth::Median), &x).unwrap();
    assert_eq!(st.context_dim(), 3);
    let rows: Vec<f64> = x
        .chunks(d)
        .flat_map(|r| [r[0], r[1], 9.0, 8.0, 7.0])
        .collect();
    assert_eq!(graph_score(&st, &rows, n), st.fitted().fitted_scores());
}

// --------------------------------------------------------------- 6. registry

fn parse(text: &str) -> Result<Component<dyn ModelConfig>, String> {
    ron::from_str(text).map_err(|e| e.to_string())
}

#[test]
fn plugins_parse_from_ron_and_reject_bad_settings() {
    let dev = Device::cpu(Precision::F64);
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    for (text, samples) in [
        (r#"{"stein": ()}"#, 100),
        (
            r#"{"stein": (eta: 0.01, bandwidth: Fixed(0.5), samples: 50)}"#,
            50,
        ),
        (r#"{"spectral": ()}"#, 100),
        (
            r#"{"spectral": (num_eigen: Some(6), eigen_ratio: 0.9, bandwidth: Median, samples: 30)}"#,
            30,
        ),
    ] {
        let c = parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        let BuiltModel::Fitted(m) = c.config.build(&dev, 3, &mut rng).unwrap() else {
            panic!("{text}: not an estimator fitted from samples")
        };
        assert_eq!(m.dim(), 3);
        assert_eq!(m.samples_wanted(), samples);
    }
    for (text, needle) in [
        (r#"{"stein": (etta: 0.1)}"#, "etta"),
        (r#"{"spectral": (num_eigen: 3)}"#, "Expected option"),
        (r#"{"spectral": (bandwith: Median)}"#, "bandwith"),
        (r#"{"stein": (bandwidth: Silverman)}"#, "Silverman"),
    ] {
        let e = parse(text).err().unwrap_or_else(|| panic!("{text} parsed"));
        assert!(e.contains(needle), "{text}: {e}");
    }
    for (text, field) in [
        (r#"{"stein": (eta: -1.0)}"#, "eta"),
        (r#"{"stein": (bandwidth: Fixed(0.0))}"#, "bandwidth"),
        (r#"{"stein": (samples: 1)}"#, "samples"),
        (r#"{"spectral": (eigen_ratio: 1.5)}"#, "eigen_ratio"),
        (r#"{"spectral": (num_eigen: Some(0))}"#, "num_eigen"),
        (r#"{"spectral": (bandwidth: Fixed(-2.0))}"#, "bandwidth"),
    ] {
        let c = parse(text).unwrap();
        let e = c.config.build(&dev, 2, &mut rng).err().unwrap();
        assert!(e.field.starts_with(field), "{text}: {e}");
    }
}

#[test]
fn experiment_files_parse_and_build() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments");
    let mut found = 0;
    for name in [
        "mog2d_stein.ron",
        "mog2d_spectral.ron",
        "gaussian20d_stein.ron",
    ] {
        let path = dir.join(name);
        if !path.exists() {
            continue;
        }
        found += 1;
        let exp = Experiment::load(&path).unwrap_or_else(|e| panic!("{e}"));
        let built = exp
            .build()
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(built.model.is_fitted_kind());
    }
    assert!(found >= 2, "experiment files missing");
}

// ---------------------------------------------------------------- timing

/// Fit times for the implicit-VAE sizes: `cargo test --release --test
/// kernel_estimators -- --ignored --nocapture`.
#[test]
#[ignore]
fn fit_timing() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for d in [8, 32] {
        let x = normal(&mut rng, 100 * d);
        let reps = 200;
        let t = std::time::Instant::now();
        for _ in 0..reps {
            let st = Stein::fit(d, 0, &stein_cfg(1e-3, Bandwidth::Median), &x).unwrap();
            std::hint::black_box(st.scores(&x));
        }
        let ts = t.elapsed().as_secs_f64() / reps as f64;
        let t = std::time::Instant::now();
        let mut sp = None;
        for _ in 0..reps {
            let fitted = Spectral::fit(d, 0, &spectral_cfg(None, 0.99), &x).unwrap();
            std::hint::black_box(fitted.scores(&x));
            sp = Some(fitted);
        }
        let sp = sp.expect("fitted");
        let tp = t.elapsed().as_secs_f64() / reps as f64;
        let mut k = Vec::new();
        kernels::pairwise_sq_dists_into(&x, 100, d, &mut k);
        kernels::rbf_from_sq_in_place(&mut k, 3.0);
        let mut eig = slicedscore::linalg::SymEigen::default();
        let t = std::time::Instant::now();
        for _ in 0..reps {
            eig.compute(&k, 100).unwrap();
        }
        eprintln!(
            "  of which the 100 × 100 eigendecomposition: {:.3} ms",
            t.elapsed().as_secs_f64() / reps as f64 * 1e3
        );
        eprintln!(
            "K = 100, d = {d}: stein fit+score {:.3} ms, spectral fit+score {:.3} ms (J = {})",
            ts * 1e3,
            tp * 1e3,
            sp.num_eigenpairs()
        );
    }
}
