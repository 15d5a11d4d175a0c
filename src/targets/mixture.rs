//! Mixtures of isotropic Gaussians sharing one standard deviation: the ring of
//! [`super::TargetSpec::Mixture2d`] and the random mixture of
//! [`super::TargetSpec::Mixture`].
//!
//! `log p(x) = logsumexp_k (log wₖ − ‖x − μₖ‖² / 2σ²) − (d/2) ln(2πσ²)` and
//! `∇ log p(x) = (Σₖ rₖ μₖ − x) / σ²` with responsibilities
//! `rₖ = softmax_k(log wₖ − ‖x − μₖ‖² / 2σ²)`. Both are computed in a single
//! streaming log-sum-exp pass, so points far from every component stay finite.

use super::{check_point, std_normal, Target, LN_2PI};
use rand::Rng;

/// `Σₖ wₖ N(μₖ, σ² I)`.
#[derive(Debug, Clone)]
pub(super) struct IsotropicMixture {
    dim: usize,
    /// `K × dim`, row-major.
    means: Vec<f64>,
    /// Normalized weights `wₖ`.
    weights: Vec<f64>,
    /// `log wₖ` (`−∞` for a zero weight).
    log_weights: Vec<f64>,
    /// Cumulative weights, last entry 1, for sampling.
    cumulative: Vec<f64>,
    std: f64,
    description: String,
}

impl IsotropicMixture {
    /// Mixture with the given means (`K × dim`), weights (`K` non-negative
    /// finite values with a positive sum; normalized here) and common `std`.
    /// Callers validate the inputs.
    fn new(dim: usize, means: Vec<f64>, weights: Vec<f64>, std: f64, description: String) -> Self {
        debug_assert_eq!(means.len(), weights.len() * dim);
        let total: f64 = weights.iter().sum();
        let weights: Vec<f64> = weights.iter().map(|w| w / total).collect();
        let log_weights = weights.iter().map(|w| w.ln()).collect();
        let mut acc = 0.0;
        let mut cumulative: Vec<f64> = weights
            .iter()
            .map(|w| {
                acc += w;
                acc
            })
            .collect();
        if let Some(last) = cumulative.last_mut() {
            *last = 1.0;
        }
        Self {
            dim,
            means,
            weights,
            log_weights,
            cumulative,
            std,
            description,
        }
    }

    /// `components` equal-weight 2-D components at `radius·(cos 2πk/K, sin 2πk/K)`.
    pub(super) fn ring(components: usize, radius: f64, std: f64) -> Self {
        let means = (0..components)
            .flat_map(|k| {
                let angle = std::f64::consts::TAU * k as f64 / components as f64;
                [radius * angle.cos(), radius * angle.sin()]
            })
            .collect();
        let description = format!(
            "Mixture2d(components={components}, radius={radius}, std={std}): \
             equal-weight isotropic Gaussians on a circle"
        );
        Self::new(2, means, vec![1.0; components], std, description)
    }

    /// Means `μₖ ~ N(0, spread² I)` drawn first, then weights `~ Dirichlet(1)`
    /// (normalized `Exp(1)` draws), all from `rng`.
    pub(super) fn random(
        dim: usize,
        components: usize,
        spread: f64,
        std: f64,
        rng: &mut dyn rand::RngCore,
    ) -> Self {
        let means = (0..components * dim)
            .map(|_| spread * std_normal(rng))
            .collect();
        let mut weights: Vec<f64> = (0..components)
            .map(|_| rng.sample(rand_distr::Exp1))
            .collect();
        if !weights.iter().any(|&w: &f64| w > 0.0) {
            // Every Exp(1) draw was exactly zero (practically impossible): fall back to equal weights.
            weights = vec![1.0; components];
        }
        let description = format!(
            "Mixture(dim={dim}, components={components}, spread={spread}, std={std}): \
             isotropic Gaussians, means N(0, spread² I), Dirichlet(1) weights"
        );
        Self::new(dim, means, weights, std, description)
    }

    /// The component means, row-major `K × dim`.
    #[cfg(test)]
    pub(super) fn means(&self) -> &[f64] {
        &self.means
    }

    /// Streaming log-sum-exp over components of `aₖ = log wₖ − ‖x − μₖ‖²/2σ²`.
    ///
    /// Returns `(m, s)` with `logsumexp = m + ln s`; when `acc` is given it
    /// receives `Σₖ e^{aₖ − m} μₖ` (so `Σₖ rₖ μₖ = acc / s`).
    fn log_sum_exp(&self, x: &[f64], mut acc: Option<&mut [f64]>) -> (f64, f64) {
        let d = self.dim;
        let inv_two_var = 0.5 / (self.std * self.std);
        let mut m = f64::NEG_INFINITY;
        let mut s = 0.0;
        if let Some(acc) = acc.as_deref_mut() {
            acc.iter_mut().for_each(|a| *a = 0.0);
        }
        for (mu, &lw) in self.means.chunks_exact(d).zip(&self.log_weights) {
            if lw == f64::NEG_INFINITY {
                continue;
            }
            let dist2: f64 = x.iter().zip(mu).map(|(a, b)| (a - b) * (a - b)).sum();
            let a = lw - dist2 * inv_two_var;
            if a.is_nan() {
                return (f64::NAN, f64::NAN);
            }
            let e = if a > m {
                // Rescale what has been accumulated to the new maximum.
                let rescale = (m - a).exp();
                s *= rescale;
                if let Some(acc) = acc.as_deref_mut() {
                    acc.iter_mut().for_each(|v| *v *= rescale);
                }
                m = a;
                1.0
            } else {
                (a - m).exp()
            };
            s += e;
            if let Some(acc) = acc.as_deref_mut() {
                for (v, mu_i) in acc.iter_mut().zip(mu) {
                    *v += e * mu_i;
                }
            }
        }
        (m, s)
    }
}

impl Target for IsotropicMixture {
    fn dim(&self) -> usize {
        self.dim
    }

    fn sample(&self, rng: &mut dyn rand::RngCore, n: usize) -> Vec<f64> {
        let d = self.dim;
        let last = self.cumulative.len().saturating_sub(1);
        let mut out = vec![0.0; n * d];
        for row in out.chunks_exact_mut(d) {
            let u: f64 = rng.gen();
            let k = self.cumulative.partition_point(|&c| c <= u).min(last);
            for (r, mu) in row.iter_mut().zip(&self.means[k * d..(k + 1) * d]) {
                *r = mu + self.std * std_normal(rng);
            }
        }
        out
    }

    fn log_density(&self, x: &[f64]) -> f64 {
        check_point("Mixture::log_density", self.dim, x);
        let (m, s) = self.log_sum_exp(x, None);
        m + s.ln() - 0.5 * self.dim as f64 * (LN_2PI + 2.0 * self.std.ln())
    }

    fn score(&self, x: &[f64], out: &mut [f64]) {
        check_point("Mixture::score", self.dim, x);
        check_point("Mixture::score (out)", self.dim, out);
        let (_, s) = self.log_sum_exp(x, Some(out));
        let inv_var = 1.0 / (self.std * self.std);
        for (o, xi) in out.iter_mut().zip(x) {
            *o = (*o / s - xi) * inv_var;
        }
    }

    fn describe(&self) -> String {
        self.description.clone()
    }

    fn mean(&self) -> Option<Vec<f64>> {
        let d = self.dim;
        let mut mean = vec![0.0; d];
        for (mu, w) in self.means.chunks_exact(d).zip(&self.weights) {
            for (m, v) in mean.iter_mut().zip(mu) {
                *m += w * v;
            }
        }
        Some(mean)
    }

    /// `σ² I + Σₖ wₖ (μₖ − m)(μₖ − m)ᵀ`.
    fn covariance(&self) -> Option<Vec<f64>> {
        let d = self.dim;
        let mean = self.mean()?;
        let mut cov = vec![0.0; d * d];
        for (mu, w) in self.means.chunks_exact(d).zip(&self.weights) {
            for i in 0..d {
                for j in 0..d {
                    cov[i * d + j] += w * (mu[i] - mean[i]) * (mu[j] - mean[j]);
                }
            }
        }
        for i in 0..d {
            cov[i * d + i] += self.std * self.std;
        }
        Some(cov)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    /// Direct (non-streaming) formula, for comparison at moderate distances.
    fn naive_log_density(t: &IsotropicMixture, x: &[f64]) -> f64 {
        let d = t.dim as f64;
        let var = t.std * t.std;
        let p: f64 = t
            .means
            .chunks_exact(t.dim)
            .zip(&t.weights)
            .map(|(mu, w)| {
                let dist2: f64 = x.iter().zip(mu).map(|(a, b)| (a - b) * (a - b)).sum();
                w * (-dist2 / (2.0 * var)).exp() / (2.0 * std::f64::consts::PI * var).powf(d / 2.0)
            })
            .sum();
        p.ln()
    }

    #[test]
    fn ring_geometry_and_weights() {
        let t = IsotropicMixture::ring(8, 2.0, 0.3);
        assert_eq!(t.weights, vec![0.125; 8]);
        for k in 0..8 {
            let r = (t.means[2 * k].powi(2) + t.means[2 * k + 1].powi(2)).sqrt();
            assert!((r - 2.0).abs() < 1e-14);
        }
        assert_eq!(&t.means[..2], &[2.0, 0.0]);
        // Symmetric ring: mean is the origin.
        assert!(t.mean().unwrap().iter().all(|m| m.abs() < 1e-14));
    }

    #[test]
    fn random_weights_are_a_probability_vector() {
        let t = IsotropicMixture::random(3, 6, 2.0, 0.5, &mut ChaCha8Rng::seed_from_u64(1));
        assert!((t.weights.iter().sum::<f64>() - 1.0).abs() < 1e-14);
        assert!(t.weights.iter().all(|&w| w > 0.0));
        assert_eq!(*t.cumulative.last().unwrap(), 1.0);
        assert!(t.cumulative.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn streaming_log_sum_exp_matches_naive_formula() {
        let t = IsotropicMixture::random(3, 5, 1.0, 0.7, &mut ChaCha8Rng::seed_from_u64(2));
        for x in [[0.0, 0.0, 0.0], [1.0, -0.5, 2.0], [-2.0, 1.0, 0.3]] {
            assert!((t.log_density(&x) - naive_log_density(&t, &x)).abs() < 1e-12);
        }
    }

    #[test]
    fn far_points_stay_finite_and_point_to_the_nearest_mode() {
        // At distance 1000 every exp() underflows; log-sum-exp must not.
        let t = IsotropicMixture::ring(8, 2.0, 0.3);
        let x = [1000.0, 0.0];
        let lp = t.log_density(&x);
        let expected =
            (0.125f64).ln() - (998.0f64).powi(2) / (2.0 * 0.09) - LN_2PI - 2.0 * 0.3f64.ln();
        assert!(lp.is_finite());
        assert!(
            (lp - expected).abs() < 1e-9 * expected.abs(),
            "{lp} vs {expected}"
        );
        let mut s = [0.0; 2];
        t.score(&x, &mut s);
        assert!((s[0] - (2.0 - 1000.0) / 0.09).abs() < 1e-9 * s[0].abs());
        assert!(s[1].abs() < 1e-9);
    }

    #[test]
    fn sampling_hits_components_in_proportion_to_weights() {
        let t = IsotropicMixture::random(2, 4, 50.0, 0.01, &mut ChaCha8Rng::seed_from_u64(3));
        let n = 40_000;
        let x = t.sample(&mut ChaCha8Rng::seed_from_u64(4), n);
        let mut counts = [0usize; 4];
        for p in x.chunks_exact(2) {
            // Components are far apart relative to std: assign to the nearest mean.
            let k = (0..4)
                .min_by(|&a, &b| {
                    let da = (p[0] - t.means[2 * a]).powi(2) + (p[1] - t.means[2 * a + 1]).powi(2);
                    let db = (p[0] - t.means[2 * b]).powi(2) + (p[1] - t.means[2 * b + 1]).powi(2);
                    da.total_cmp(&db)
                })
                .unwrap();
            counts[k] += 1;
        }
        for (k, &count) in counts.iter().enumerate() {
            let w = t.weights[k];
            let se = (w * (1.0 - w) / n as f64).sqrt();
            let freq = count as f64 / n as f64;
            assert!((freq - w).abs() < 5.0 * se, "component {k}: {freq} vs {w}");
        }
    }
}
