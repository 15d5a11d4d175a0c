//! Multivariate Gaussian target `N(μ, Σ)` with a dense covariance, evaluated
//! through its Cholesky factor; [`GaussianTarget::random`] draws the random
//! covariance of [`super::TargetSpec::Gaussian`].

use super::{check_point, std_normal, Target, LN_2PI};
use crate::linalg::{random_rotation, Cholesky, LinalgError};

/// `N(mean, cov)` with `cov = L Lᵀ`.
#[derive(Debug, Clone)]
pub(super) struct GaussianTarget {
    dim: usize,
    mean: Vec<f64>,
    cov: Vec<f64>,
    chol: Cholesky,
    /// `−½ log det Σ − (d/2) ln 2π`.
    log_norm: f64,
    description: String,
}

impl GaussianTarget {
    /// `N(mean, cov)`; `cov` is row-major `d × d` with `d = mean.len()`,
    /// symmetric positive definite.
    pub(super) fn new(
        mean: Vec<f64>,
        cov: Vec<f64>,
        description: String,
    ) -> Result<Self, LinalgError> {
        let dim = mean.len();
        let chol = Cholesky::new(&cov, dim)?;
        let log_norm = -0.5 * chol.log_det() - 0.5 * dim as f64 * LN_2PI;
        Ok(Self {
            dim,
            mean,
            cov,
            chol,
            log_norm,
            description,
        })
    }

    /// `N(0, Q diag(λ) Qᵀ)` with `Q` a Haar rotation drawn from `rng` and
    /// `λᵢ = condition^{−i/(dim−1)}` (see [`super::TargetSpec::Gaussian`]).
    pub(super) fn random(
        dim: usize,
        condition: f64,
        rng: &mut dyn rand::RngCore,
    ) -> Result<Self, LinalgError> {
        let q = random_rotation(rng, dim)?;
        let lambda = eigenvalues(dim, condition);
        let mut cov = vec![0.0; dim * dim];
        for i in 0..dim {
            for j in 0..=i {
                let c: f64 = (0..dim)
                    .map(|k| q[i * dim + k] * lambda[k] * q[j * dim + k])
                    .sum();
                cov[i * dim + j] = c;
                cov[j * dim + i] = c;
            }
        }
        let description = format!(
            "Gaussian(dim={dim}, condition={condition}): N(0, Q diag(λ) Qᵀ), \
             λ geometric from 1 to {}, Q a random rotation",
            1.0 / condition
        );
        Self::new(vec![0.0; dim], cov, description)
    }
}

/// `λᵢ = condition^{−i/(dim−1)}`, `i = 0 … dim−1` (`[1]` for `dim = 1`).
fn eigenvalues(dim: usize, condition: f64) -> Vec<f64> {
    if dim == 1 {
        return vec![1.0];
    }
    (0..dim)
        .map(|i| condition.powf(-(i as f64) / (dim - 1) as f64))
        .collect()
}

impl Target for GaussianTarget {
    fn dim(&self) -> usize {
        self.dim
    }

    fn sample(&self, rng: &mut dyn rand::RngCore, n: usize) -> Vec<f64> {
        let d = self.dim;
        let mut out = vec![0.0; n * d];
        let mut z = vec![0.0; d];
        for row in out.chunks_exact_mut(d) {
            z.iter_mut().for_each(|zi| *zi = std_normal(rng));
            self.chol.mul_lower(&z, row);
            for (r, m) in row.iter_mut().zip(&self.mean) {
                *r += m;
            }
        }
        out
    }

    fn log_density(&self, x: &[f64]) -> f64 {
        check_point("Gaussian::log_density", self.dim, x);
        let mut w: Vec<f64> = x.iter().zip(&self.mean).map(|(a, m)| a - m).collect();
        self.chol.solve_lower_in_place(&mut w);
        self.log_norm - 0.5 * w.iter().map(|v| v * v).sum::<f64>()
    }

    fn score(&self, x: &[f64], out: &mut [f64]) {
        check_point("Gaussian::score", self.dim, x);
        check_point("Gaussian::score (out)", self.dim, out);
        for ((o, a), m) in out.iter_mut().zip(x).zip(&self.mean) {
            *o = a - m;
        }
        self.chol.solve_in_place(out);
        out.iter_mut().for_each(|o| *o = -*o);
    }

    fn describe(&self) -> String {
        self.description.clone()
    }

    fn mean(&self) -> Option<Vec<f64>> {
        Some(self.mean.clone())
    }

    fn covariance(&self) -> Option<Vec<f64>> {
        Some(self.cov.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linalg::determinant;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn covariance_has_the_promised_spectrum() {
        for (dim, condition) in [(1, 10.0), (2, 10.0), (5, 100.0), (10, 1e4)] {
            let t =
                GaussianTarget::random(dim, condition, &mut ChaCha8Rng::seed_from_u64(1)).unwrap();
            let cov = t.covariance().unwrap();
            let lambda = eigenvalues(dim, condition);
            assert!((lambda[0] - 1.0).abs() < 1e-15);
            if dim > 1 {
                assert!((lambda[0] / lambda[dim - 1] - condition).abs() < 1e-9 * condition);
            }
            // Symmetric, trace = Σλ, log det = Σ log λ.
            for i in 0..dim {
                for j in 0..dim {
                    assert_eq!(cov[i * dim + j], cov[j * dim + i]);
                }
            }
            let trace: f64 = (0..dim).map(|i| cov[i * dim + i]).sum();
            assert!((trace - lambda.iter().sum::<f64>()).abs() < 1e-12);
            let log_det: f64 = lambda.iter().map(|l| l.ln()).sum();
            assert!((t.chol.log_det() - log_det).abs() < 1e-8);
            assert!((determinant(&cov, dim).unwrap().ln() - log_det).abs() < 1e-8);
            // tr(Σ²) = Σλ² pins down the spectrum further.
            let tr_sq: f64 = cov.iter().map(|c| c * c).sum();
            let sum_sq: f64 = lambda.iter().map(|l| l * l).sum();
            assert!((tr_sq - sum_sq).abs() < 1e-12);
        }
    }

    #[test]
    fn log_density_matches_closed_form_in_1d_and_diagonal_case() {
        let t = GaussianTarget::random(1, 10.0, &mut ChaCha8Rng::seed_from_u64(0)).unwrap();
        assert_eq!(t.covariance().unwrap(), vec![1.0]);
        for x in [-3.0, 0.0, 0.7, 12.0] {
            let expected = -0.5 * x * x - 0.5 * LN_2PI;
            assert!((t.log_density(&[x]) - expected).abs() < 1e-14);
            let mut s = [0.0];
            t.score(&[x], &mut s);
            assert!((s[0] + x).abs() < 1e-14);
        }
        let t =
            GaussianTarget::new(vec![1.0, -2.0], vec![4.0, 0.0, 0.0, 0.25], "test".into()).unwrap();
        let x = [2.0, -1.0];
        // N(1, 4) at 2 and N(−2, 1/4) at −1.
        let expected = (-0.5 * 0.25 - 0.5 * (8.0 * std::f64::consts::PI).ln())
            + (-0.5 * 4.0 - 0.5 * (0.5 * std::f64::consts::PI).ln());
        assert!((t.log_density(&x) - expected).abs() < 1e-13);
        let mut s = [0.0; 2];
        t.score(&x, &mut s);
        assert!((s[0] + 0.25).abs() < 1e-14 && (s[1] + 4.0).abs() < 1e-13);
    }

    #[test]
    fn rejects_non_positive_definite_covariance() {
        assert!(GaussianTarget::new(vec![0.0; 2], vec![1.0, 2.0, 2.0, 1.0], "x".into()).is_err());
    }
}
