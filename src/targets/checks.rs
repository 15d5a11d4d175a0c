//! Numerical checks shared by the target tests (compiled only for tests):
//! finite-difference scores, 2-D grid integrals, moment and Stein-identity
//! checks with standard-error tolerances, and a deliberately wrong target to
//! show that each check can fail.

use super::Target;

/// `‖s − fd‖∞ / max(‖s‖∞, ‖fd‖∞)` between the score at `x` and fourth-order
/// central differences of the log-density with per-coordinate steps `steps`:
/// `(8(f(x+h) − f(x−h)) − (f(x+2h) − f(x−2h))) / 12h`, exact for polynomials
/// of degree ≤ 4.
pub fn score_fd_relative_error(target: &dyn Target, x: &[f64], steps: &[f64]) -> f64 {
    let d = target.dim();
    let mut s = vec![0.0; d];
    target.score(x, &mut s);
    let mut y = x.to_vec();
    let mut f = |i: usize, delta: f64| {
        y[i] = x[i] + delta;
        let v = target.log_density(&y);
        y[i] = x[i];
        v
    };
    let fd: Vec<f64> = (0..d)
        .map(|i| {
            let h = steps[i];
            (8.0 * (f(i, h) - f(i, -h)) - (f(i, 2.0 * h) - f(i, -2.0 * h))) / (12.0 * h)
        })
        .collect();
    let err = s
        .iter()
        .zip(&fd)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    let scale = s.iter().chain(&fd).map(|v| v.abs()).fold(0.0, f64::max);
    if err == 0.0 {
        0.0
    } else {
        err / scale
    }
}

/// Midpoint rule for `∫∫ f` over `[b0[0], b0[1]] × [b1[0], b1[1]]` with `n[0] × n[1]` cells.
pub fn grid_integral_2d(
    f: impl Fn(&[f64]) -> f64,
    b0: [f64; 2],
    b1: [f64; 2],
    n: [usize; 2],
) -> f64 {
    let h0 = (b0[1] - b0[0]) / n[0] as f64;
    let h1 = (b1[1] - b1[0]) / n[1] as f64;
    let mut total = 0.0;
    for i in 0..n[0] {
        let x0 = b0[0] + (i as f64 + 0.5) * h0;
        let mut row = 0.0;
        for j in 0..n[1] {
            row += f(&[x0, b1[0] + (j as f64 + 0.5) * h1]);
        }
        total += row;
    }
    total * h0 * h1
}

/// Running sums for the mean of a statistic and its standard error.
#[derive(Clone, Copy, Default)]
struct Acc {
    n: f64,
    sum: f64,
    sum_sq: f64,
}

impl Acc {
    fn push(&mut self, g: f64) {
        self.n += 1.0;
        self.sum += g;
        self.sum_sq += g * g;
    }

    fn mean(&self) -> f64 {
        self.sum / self.n
    }

    /// Standard error of the mean, from the sample variance.
    fn se(&self) -> f64 {
        let m = self.mean();
        let var = ((self.sum_sq - self.n * m * m) / (self.n - 1.0)).max(0.0);
        (var / self.n).sqrt()
    }

    /// A message when the mean is more than `k` standard errors from `expected`.
    fn check(&self, what: String, expected: f64, k: f64) -> Option<String> {
        let (m, se) = (self.mean(), self.se());
        let ok = (m - expected).abs() <= k * se + 1e-12 * (1.0 + expected.abs());
        (!ok).then(|| format!("{what}: expected {expected}, estimated {m} ± {se} (se)"))
    }
}

/// Compares sample means with `mean` and centred second moments
/// `E[(xi − μi)(xj − μj)]` with `cov`, each within `k` standard errors;
/// returns one message per violation.
pub fn moment_violations(x: &[f64], dim: usize, mean: &[f64], cov: &[f64], k: f64) -> Vec<String> {
    let mut first = vec![Acc::default(); dim];
    let mut second = vec![Acc::default(); dim * dim];
    for p in x.chunks_exact(dim) {
        for i in 0..dim {
            first[i].push(p[i]);
            for j in 0..=i {
                second[i * dim + j].push((p[i] - mean[i]) * (p[j] - mean[j]));
            }
        }
    }
    let mut bad = Vec::new();
    for i in 0..dim {
        bad.extend(first[i].check(format!("E[x{i}]"), mean[i], k));
        for j in 0..=i {
            bad.extend(second[i * dim + j].check(format!("Cov[{i},{j}]"), cov[i * dim + j], k));
        }
    }
    bad
}

/// Stein identities `E_p[s(x)] = 0` and `E_p[s(x) xᵀ] = −I`, each entry
/// within `k` standard errors over the samples `x`; one message per violation.
pub fn stein_violations(target: &dyn Target, x: &[f64], k: f64) -> Vec<String> {
    let d = target.dim();
    let mut s = vec![0.0; d];
    let mut first = vec![Acc::default(); d];
    let mut outer = vec![Acc::default(); d * d];
    for p in x.chunks_exact(d) {
        target.score(p, &mut s);
        for i in 0..d {
            first[i].push(s[i]);
            for j in 0..d {
                outer[i * d + j].push(s[i] * p[j]);
            }
        }
    }
    let mut bad = Vec::new();
    for i in 0..d {
        bad.extend(first[i].check(format!("E[s{i}]"), 0.0, k));
        for j in 0..d {
            let expected = if i == j { -1.0 } else { 0.0 };
            bad.extend(outer[i * d + j].check(format!("E[s{i} x{j}]"), expected, k));
        }
    }
    bad
}

/// A target whose score is the wrapped one times a factor: wrong unless the factor is 1.
pub struct ScaledScore(pub Box<dyn Target>, pub f64);

impl Target for ScaledScore {
    fn dim(&self) -> usize {
        self.0.dim()
    }

    fn sample(&self, rng: &mut dyn rand::RngCore, n: usize) -> Vec<f64> {
        self.0.sample(rng, n)
    }

    fn log_density(&self, x: &[f64]) -> f64 {
        self.0.log_density(x)
    }

    fn score(&self, x: &[f64], out: &mut [f64]) {
        self.0.score(x, out);
        out.iter_mut().for_each(|o| *o *= self.1);
    }

    fn describe(&self) -> String {
        format!("{} with score × {}", self.0.describe(), self.1)
    }
}
