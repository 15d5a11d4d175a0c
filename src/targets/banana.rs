//! Banana-shaped (Haario-style twisted Gaussian) target of
//! [`super::TargetSpec::Banana`].
//!
//! With `b = curvature`, `s = scale` and `u = x2 − b(x1² − s²)`, the map from
//! the Gaussian `y` to `x` has unit Jacobian, so
//! `log p(x) = −x1²/2s² − u²/2 − Σ_{i≥3} xi²/2 − ln s − (d/2) ln 2π` and
//! `∇ log p = (−x1/s² + 2b·x1·u, −u, −x3, …, −x_d)`.

use super::{check_point, std_normal, Target, LN_2PI};

/// The banana density (validated parameters).
#[derive(Debug, Clone)]
pub(super) struct Banana {
    dim: usize,
    curvature: f64,
    scale: f64,
}

impl Banana {
    /// Callers validate: `dim ≥ 2`, finite `curvature`, `scale > 0`.
    pub(super) fn new(dim: usize, curvature: f64, scale: f64) -> Self {
        Self {
            dim,
            curvature,
            scale,
        }
    }

    /// `u = x2 − b(x1² − s²)`, the untwisted second coordinate.
    fn untwist(&self, x: &[f64]) -> f64 {
        x[1] - self.curvature * (x[0] * x[0] - self.scale * self.scale)
    }
}

impl Target for Banana {
    fn dim(&self) -> usize {
        self.dim
    }

    fn sample(&self, rng: &mut dyn rand::RngCore, n: usize) -> Vec<f64> {
        let d = self.dim;
        let s2 = self.scale * self.scale;
        let mut out = vec![0.0; n * d];
        for row in out.chunks_exact_mut(d) {
            row.iter_mut().for_each(|r| *r = std_normal(rng));
            let y1 = self.scale * row[0];
            row[0] = y1;
            row[1] += self.curvature * (y1 * y1 - s2);
        }
        out
    }

    fn log_density(&self, x: &[f64]) -> f64 {
        check_point("Banana::log_density", self.dim, x);
        let u = self.untwist(x);
        let x1 = x[0] / self.scale;
        let rest: f64 = x[2..].iter().map(|v| v * v).sum();
        -0.5 * (x1 * x1 + u * u + rest) - self.scale.ln() - 0.5 * self.dim as f64 * LN_2PI
    }

    fn score(&self, x: &[f64], out: &mut [f64]) {
        check_point("Banana::score", self.dim, x);
        check_point("Banana::score (out)", self.dim, out);
        let u = self.untwist(x);
        out[0] = -x[0] / (self.scale * self.scale) + 2.0 * self.curvature * x[0] * u;
        out[1] = -u;
        for (o, v) in out[2..].iter_mut().zip(&x[2..]) {
            *o = -v;
        }
    }

    fn describe(&self) -> String {
        format!(
            "Banana(dim={}, curvature={}, scale={}): x1 ~ N(0, scale²), \
             x2 = y2 + curvature·(x1² − scale²), others N(0, 1)",
            self.dim, self.curvature, self.scale
        )
    }

    fn mean(&self) -> Option<Vec<f64>> {
        Some(vec![0.0; self.dim])
    }

    /// `diag(s², 1 + 2b²s⁴, 1, …, 1)`: `Var(b(y1² − s²)) = b²·2s⁴` and
    /// `Cov(x1, x2) = b·E[y1³] = 0`.
    fn covariance(&self) -> Option<Vec<f64>> {
        let d = self.dim;
        let s2 = self.scale * self.scale;
        let mut cov = vec![0.0; d * d];
        for i in 0..d {
            cov[i * d + i] = 1.0;
        }
        cov[0] = s2;
        cov[d + 1] = 1.0 + 2.0 * self.curvature * self.curvature * s2 * s2;
        Some(cov)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn zero_curvature_is_a_diagonal_gaussian() {
        let t = Banana::new(3, 0.0, 2.0);
        let x = [1.0, -0.5, 0.25];
        let expected = -0.5 * (0.25 + 0.25 + 0.0625) - 2f64.ln() - 1.5 * LN_2PI;
        assert!((t.log_density(&x) - expected).abs() < 1e-14);
    }

    #[test]
    fn density_follows_the_ridge() {
        // On the ridge x2 = b(x1² − s²) the density equals the x1-marginal times N(0; 0, 1).
        let t = Banana::new(2, 1.0, 1.0);
        for x1 in [-2.0, 0.0, 1.5] {
            let on = [x1, x1 * x1 - 1.0];
            let expected = -0.5 * x1 * x1 - LN_2PI;
            assert!((t.log_density(&on) - expected).abs() < 1e-14);
            let mut s = [0.0; 2];
            t.score(&on, &mut s);
            assert!((s[0] + x1).abs() < 1e-14 && s[1] == 0.0);
        }
    }

    #[test]
    fn second_coordinate_has_mean_zero() {
        // E[x2] = 0 because E[y1²] = s²; checked within 5 standard errors.
        let t = Banana::new(2, 0.1, 10.0);
        let n = 200_000;
        let x = t.sample(&mut ChaCha8Rng::seed_from_u64(8), n);
        let x2: Vec<f64> = x.chunks_exact(2).map(|p| p[1]).collect();
        let mean = x2.iter().sum::<f64>() / n as f64;
        let var = x2.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        let se = (var / n as f64).sqrt();
        assert!(mean.abs() < 5.0 * se, "E[x2] ≈ {mean} (se {se})");
        // Var(x2) = 1 + 2b²s⁴ = 201.
        assert!((var - 201.0).abs() < 0.05 * 201.0, "Var(x2) ≈ {var}");
    }
}
