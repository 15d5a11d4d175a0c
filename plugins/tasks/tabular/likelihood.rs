//! Log-likelihood of an energy model by importance sampling.
//!
//! Data flow: the model gives `log p̃(x)` on the held-out points (in chunks,
//! on an inference graph) and a normalised Gaussian proposal
//! `q = N(μ, s²I)`. We draw `y₁ … y_K ~ q` from a caller-supplied stream,
//! form log-weights `log wₖ = log p̃(yₖ) − log q(yₖ)` and estimate
//! `log Z ≈ log Ẑ = log (1/K) Σₖ wₖ` (a log-mean-exp, stable for any scale).
//! The log-likelihood is `mean log p̃(x) − log Ẑ`.
//!
//! Uncertainty: `log_likelihood_stderr` is the standard error of the mean of
//! `log p̃(x)` over points only and ignores the error of `log Ẑ`; that one is
//! reported separately as `log_normalizer_stderr`, by the delta method
//! `sd(w) / (√K · mean(w))` (itself unreliable when the weights are heavy
//! tailed, which a small effective sample size `(Σw)²/Σw²` flags).

use rand::{Rng, RngCore};
use rand_distr::StandardNormal;

use crate::device::Device;
use crate::model::ScoreModel;

/// Rows evaluated at once.
const CHUNK_ROWS: usize = 4096;

/// `ln(2π)`.
const LN_2PI: f64 = 1.837_877_066_409_345_5;

/// The result of [`estimate`].
#[derive(Debug, Clone, PartialEq)]
pub struct LikelihoodEstimate {
    /// `mean log p̃(x) − log Ẑ`.
    pub log_likelihood: f64,
    /// Standard error of the mean of `log p̃(x)` over points (ignores the
    /// error of `log Ẑ`).
    pub log_likelihood_stderr: f64,
    /// `mean log p̃(x)` over the points.
    pub mean_log_density: f64,
    /// `log Ẑ`.
    pub log_normalizer: f64,
    /// Delta-method standard error of `log Ẑ`.
    pub log_normalizer_stderr: f64,
    /// Effective sample size of the importance weights, `(Σw)²/Σw²`.
    pub ess: f64,
    /// Number of proposal samples `K`.
    pub samples: usize,
}

/// `log p̃` of every row of row-major `x` (`n × dim`), in chunks on an
/// inference graph; `None` when the model has no log-density.
pub fn log_densities(
    dev: &Device,
    model: &dyn ScoreModel,
    x: &[f64],
    dim: usize,
) -> Option<Vec<f64>> {
    crate::model::log_densities_in_chunks(dev, model, x, dim, CHUNK_ROWS)
}

/// `log (1/n) Σ exp(aᵢ)`, stable; `−∞` for an empty slice or all `−∞`.
pub fn log_mean_exp(a: &[f64]) -> f64 {
    let m = a.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if a.is_empty() || m == f64::NEG_INFINITY {
        return f64::NEG_INFINITY;
    }
    if !m.is_finite() {
        return m;
    }
    let s: f64 = a.iter().map(|v| (v - m).exp()).sum();
    m + (s / a.len() as f64).ln()
}

/// Effective sample size `(Σw)²/Σw²` of weights given by their logs.
pub fn effective_sample_size(log_w: &[f64]) -> f64 {
    let m = log_w.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !m.is_finite() {
        return 0.0;
    }
    let (s1, s2) = log_w.iter().fold((0.0, 0.0), |(s1, s2), l| {
        let w = (l - m).exp();
        (s1 + w, s2 + w * w)
    });
    s1 * s1 / s2
}

/// Delta-method standard error of `log mean w`: `sd(w)/(√K·mean(w))`.
fn log_mean_stderr(log_w: &[f64]) -> f64 {
    let k = log_w.len() as f64;
    let m = log_w.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !m.is_finite() || log_w.len() < 2 {
        return f64::NAN;
    }
    let w: Vec<f64> = log_w.iter().map(|l| (l - m).exp()).collect();
    let mean = w.iter().sum::<f64>() / k;
    let var = w.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (k - 1.0);
    (var / k).sqrt() / mean
}

/// Estimates the log-likelihood of `model` on row-major `x` (`n × dim`)
/// with `samples` draws from the model's importance proposal, taken from
/// `rng` (the caller fixes the stream so evaluations are comparable).
///
/// `None` when the model has no log-density or no proposal, the proposal
/// does not match `dim` or is degenerate, or `x` or `samples` is empty.
pub fn estimate(
    dev: &Device,
    model: &dyn ScoreModel,
    x: &[f64],
    dim: usize,
    samples: usize,
    rng: &mut dyn RngCore,
) -> Option<LikelihoodEstimate> {
    let q = model.as_energy()?.importance_proposal()?;
    if q.mean.len() != dim || !(q.std.is_finite() && q.std > 0.0) || samples == 0 || x.is_empty() {
        return None;
    }
    let lx = log_densities(dev, model, x, dim)?;
    let n = lx.len() as f64;
    let mean_log_density = lx.iter().sum::<f64>() / n;
    let var = lx
        .iter()
        .map(|v| (v - mean_log_density).powi(2))
        .sum::<f64>()
        / (n - 1.0).max(1.0);

    let log_q_const = -0.5 * dim as f64 * LN_2PI - dim as f64 * q.std.ln();
    let mut log_w = Vec::with_capacity(samples);
    let mut done = 0;
    while done < samples {
        let rows = (samples - done).min(CHUNK_ROWS);
        let mut y = Vec::with_capacity(rows * dim);
        let mut log_q = Vec::with_capacity(rows);
        for _ in 0..rows {
            let mut sq = 0.0;
            for mu in &q.mean {
                let z: f64 = rng.sample(StandardNormal);
                sq += z * z;
                y.push(mu + q.std * z);
            }
            log_q.push(log_q_const - 0.5 * sq);
        }
        let lp = log_densities(dev, model, &y, dim)?;
        log_w.extend(lp.iter().zip(&log_q).map(|(p, q)| p - q));
        done += rows;
    }
    let log_normalizer = log_mean_exp(&log_w);
    Some(LikelihoodEstimate {
        log_likelihood: mean_log_density - log_normalizer,
        log_likelihood_stderr: (var / n).sqrt(),
        mean_log_density,
        log_normalizer,
        log_normalizer_stderr: log_mean_stderr(&log_w),
        ess: effective_sample_size(&log_w),
        samples,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_mean_exp_is_stable() {
        let a = [1000.0, 1000.0 + 2f64.ln()];
        assert!((log_mean_exp(&a) - (1000.0 + 1.5f64.ln())).abs() < 1e-12);
        let b = [-1000.0, -1000.0];
        assert!((log_mean_exp(&b) + 1000.0).abs() < 1e-12);
        assert_eq!(log_mean_exp(&[]), f64::NEG_INFINITY);
        assert_eq!(log_mean_exp(&[f64::NEG_INFINITY]), f64::NEG_INFINITY);
        assert!(log_mean_exp(&[0.0, f64::NAN]).is_nan());
    }

    #[test]
    fn ess_of_equal_and_degenerate_weights() {
        assert!((effective_sample_size(&[3.0; 10]) - 10.0).abs() < 1e-9);
        let ess = effective_sample_size(&[0.0, -800.0, -800.0]);
        assert!((ess - 1.0).abs() < 1e-9);
        assert_eq!(effective_sample_size(&[f64::NEG_INFINITY]), 0.0);
        // Weights 1, 1, 2: (4)² / 6.
        let ess = effective_sample_size(&[0.0, 0.0, 2f64.ln()]);
        assert!((ess - 16.0 / 6.0).abs() < 1e-12);
    }
}
