//! Neal's funnel of [`super::TargetSpec::Funnel`]: `v = x1 ~ N(0, s²)` and
//! `xi | v ~ N(0, e^v)` for `i = 2 … d`.
//!
//! With `n = d − 1` and `S = Σ_{i≥2} xi²`,
//! `log p = −v²/2s² − ln s − (d/2) ln 2π − n·v/2 − S·e^{−v}/2`,
//! `∂v log p = −v/s² − n/2 + S·e^{−v}/2` and `∂xi log p = −xi·e^{−v}`.
//! The products `S·e^{−v}` and `xi·e^{−v}` are formed as `exp(ln S − v)` and
//! `sign(xi)·exp(ln|xi| − v)`, so large `|v|` neither overflows nor gives
//! `∞·0 = NaN`: the log-density is finite wherever the density is
//! representable and `−∞` past it.

use super::{check_point, std_normal, Target, LN_2PI};

/// The funnel density (validated parameters).
#[derive(Debug, Clone)]
pub(super) struct Funnel {
    dim: usize,
    scale: f64,
}

impl Funnel {
    /// Callers validate: `dim ≥ 2`, `0 < scale ≤ MAX_FUNNEL_SCALE`.
    pub(super) fn new(dim: usize, scale: f64) -> Self {
        Self { dim, scale }
    }
}

/// `a·e^{−v}` without forming `e^{−v}` on its own.
fn times_exp_neg(a: f64, v: f64) -> f64 {
    if a == 0.0 {
        0.0
    } else {
        a.signum() * (a.abs().ln() - v).exp()
    }
}

impl Target for Funnel {
    fn dim(&self) -> usize {
        self.dim
    }

    fn sample(&self, rng: &mut dyn rand::RngCore, n: usize) -> Vec<f64> {
        let d = self.dim;
        let mut out = vec![0.0; n * d];
        for row in out.chunks_exact_mut(d) {
            let v = self.scale * std_normal(rng);
            row[0] = v;
            let sd = (0.5 * v).exp();
            for r in row[1..].iter_mut() {
                *r = sd * std_normal(rng);
            }
        }
        out
    }

    fn log_density(&self, x: &[f64]) -> f64 {
        check_point("Funnel::log_density", self.dim, x);
        let v = x[0];
        let n = (self.dim - 1) as f64;
        let s: f64 = x[1..].iter().map(|xi| xi * xi).sum();
        let z = v / self.scale;
        -0.5 * z * z
            - self.scale.ln()
            - 0.5 * self.dim as f64 * LN_2PI
            - 0.5 * n * v
            - 0.5 * times_exp_neg(s, v)
    }

    fn score(&self, x: &[f64], out: &mut [f64]) {
        check_point("Funnel::score", self.dim, x);
        check_point("Funnel::score (out)", self.dim, out);
        let v = x[0];
        let n = (self.dim - 1) as f64;
        let s: f64 = x[1..].iter().map(|xi| xi * xi).sum();
        out[0] = -v / (self.scale * self.scale) - 0.5 * n + 0.5 * times_exp_neg(s, v);
        for (o, xi) in out[1..].iter_mut().zip(&x[1..]) {
            *o = -times_exp_neg(*xi, v);
        }
    }

    fn describe(&self) -> String {
        format!(
            "Funnel(dim={}, scale={}): v ~ N(0, scale²), x2..x{} | v ~ N(0, e^v)",
            self.dim, self.scale, self.dim
        )
    }

    fn mean(&self) -> Option<Vec<f64>> {
        Some(vec![0.0; self.dim])
    }

    /// `diag(s², e^{s²/2}, …, e^{s²/2})`: `Var(xi) = E[e^v] = e^{s²/2}`.
    fn covariance(&self) -> Option<Vec<f64>> {
        let d = self.dim;
        let mut cov = vec![0.0; d * d];
        let var_x = (0.5 * self.scale * self.scale).exp();
        for i in 0..d {
            cov[i * d + i] = var_x;
        }
        cov[0] = self.scale * self.scale;
        Some(cov)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn matches_the_direct_formula_at_moderate_v() {
        let t = Funnel::new(3, 3.0);
        let x = [1.2, 0.5, -2.0];
        let v: f64 = 1.2;
        let direct = -v * v / 18.0 - 0.5 * (2.0 * std::f64::consts::PI * 9.0).ln()
            + [0.5f64, -2.0]
                .iter()
                .map(|xi| {
                    -0.5 * (2.0 * std::f64::consts::PI * v.exp()).ln() - xi * xi / (2.0 * v.exp())
                })
                .sum::<f64>();
        assert!((t.log_density(&x) - direct).abs() < 1e-13);
    }

    #[test]
    fn large_v_stays_finite_or_minus_infinity_never_nan() {
        let t = Funnel::new(4, 3.0);
        let mut s = [0.0; 4];
        for v in [-700.0f64, -60.0, 60.0, 700.0] {
            // The funnel's own scale at v: finite density, finite score.
            let sd = (0.5 * v).exp();
            let x = [v, sd, -0.5 * sd, 0.0];
            let lp = t.log_density(&x);
            assert!(lp.is_finite(), "v = {v}: {lp}");
            t.score(&x, &mut s);
            assert!(s.iter().all(|c| c.is_finite()), "v = {v}: {s:?}");
            assert_eq!(s[3], 0.0);
        }
        // Far outside the funnel's neck: the density underflows to exactly 0.
        let lp = t.log_density(&[-800.0, 1.0, 0.0, 0.0]);
        assert_eq!(lp, f64::NEG_INFINITY);
        // x = 0 at very negative v: no ∞·0.
        let lp = t.log_density(&[-800.0, 0.0, 0.0, 0.0]);
        assert!(lp.is_finite());
        t.score(&[-800.0, 0.0, 0.0, 0.0], &mut s);
        assert!(s.iter().all(|c| c.is_finite()));
    }

    #[test]
    fn v_has_variance_scale_squared() {
        // Neal's setting: Var(v) = 9, within 5 standard errors of the sample variance.
        let t = Funnel::new(10, 3.0);
        let n = 100_000;
        let x = t.sample(&mut ChaCha8Rng::seed_from_u64(12), n);
        let sq: Vec<f64> = x.chunks_exact(10).map(|p| p[0] * p[0]).collect();
        let m = sq.iter().sum::<f64>() / n as f64;
        let var = sq.iter().map(|q| (q - m).powi(2)).sum::<f64>() / (n - 1) as f64;
        let se = (var / n as f64).sqrt();
        assert!((m - 9.0).abs() < 5.0 * se, "E[v²] ≈ {m} (se {se})");
        // And the conditional scale: E[xi² e^{−v}] = 1.
        let w: Vec<f64> = x
            .chunks_exact(10)
            .map(|p| {
                p[1..]
                    .iter()
                    .map(|xi| times_exp_neg(xi * xi, p[0]))
                    .sum::<f64>()
                    / 9.0
            })
            .collect();
        let mw = w.iter().sum::<f64>() / n as f64;
        let vw = w.iter().map(|q| (q - mw).powi(2)).sum::<f64>() / (n - 1) as f64;
        assert!((mw - 1.0).abs() < 5.0 * (vw / n as f64).sqrt(), "{mw}");
    }
}
