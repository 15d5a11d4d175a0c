//! `stein`: the Stein gradient estimator of Li & Turner (2018), a score
//! model fitted from samples with no training loop.
//!
//! Data flow: [`FitsFromSamples::fit`] takes samples `x_1..x_n`, has
//! [`RbfFit::fit`] build the RBF Gram matrix `K` and `R = ⟨∇, K⟩` (see
//! [`crate::kernels`] for the kernel and bandwidth conventions), factors
//! `K + ηI` by Cholesky and keeps the estimates at the samples,
//!
//! `Ĝ = −(K + ηI)⁻¹ R`,   `R_i = Σ_j ∇_{x_j} k(x_i, x_j)`.
//!
//! `score` and `terms` then read these off for query rows equal (bit for
//! bit) to a fitted sample. Any other query `x*` gets the out-of-sample
//! extension "add the query to the samples and solve": the last row of the
//! estimator refitted on `x_1..x_n, x*` with the fitted bandwidth σ (the
//! idea of Li & Turner's §3.4 predictive estimator, treating `x*` as one
//! more sample), computed exactly from the stored factor by a Schur
//! complement in `O(n² + nD)` per query, queries batched through one solve:
//!
//! with `b_i = k(x_i, x*)`, `w = (K + ηI)⁻¹ b`, `s = 1 + η − bᵀw` (≥ η > 0),
//! `r* = Σ_j b_j (x* − x_j)/σ²` and `R̃_i = R_i + b_i (x_i − x*)/σ²`
//! (the old rows of `⟨∇, K⟩` gain the query's term),
//! `ĝ(x*) = −(r* − Σ_i w_i R̃_i) / s`.
//!
//! The extension is smooth in `x*` but does not tend to the fitted `Ĝ_k`
//! as `x*` → `x_k` (the refit counts `x_k` twice): a fitted sample is scored
//! from `Ĝ`, a perturbed one by the extension.
//!
//! `vᵀ(∇s)v` is a central finite difference of the extension along `v`,
//! step `h = 10⁻⁴ σ / ‖v‖` (a displacement of `10⁻⁴` bandwidths).

use serde::{Deserialize, Serialize};

use crate::error::{require_at_least, ConfigError};
use crate::kernels::{self, Bandwidth, PointScore, RbfFit};
use crate::model::{FitError, FitsFromSamples, Unfitted};

fn default_eta() -> f64 {
    1e-3
}

fn default_samples() -> usize {
    100
}

/// Relative finite-difference step of `vᵀ(∇s)v`, in bandwidths.
const FD_STEP: f64 = 1e-4;

/// Entries of the `n × block` kernel block in one out-of-sample solve.
const EXTEND_BLOCK: usize = 1 << 17;

/// Settings of `stein`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SteinConfig {
    /// Ridge `η ≥ 0` added to the Gram matrix (default `1e-3`, the paper's).
    #[serde(default = "default_eta")]
    pub eta: f64,
    /// RBF bandwidth (default `Median`, the median heuristic).
    #[serde(default)]
    pub bandwidth: Bandwidth,
    /// Number of training rows the estimator is fitted to in a standalone
    /// run ([`crate::model::SampleEstimator::samples_wanted`]; default 100, at least 2).
    #[serde(default = "default_samples")]
    pub samples: usize,
}

impl SteinConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if !(self.eta.is_finite() && self.eta >= 0.0) {
            return Err(ConfigError::new(
                "eta",
                format!("must be finite and ≥ 0, got {}", self.eta),
            ));
        }
        self.bandwidth.validate("bandwidth")?;
        require_at_least("samples", self.samples, 2)
    }
}

/// The Stein gradient estimator (see the module documentation).
pub struct Stein {
    /// Ridge `η` of the fit.
    eta: f64,
    /// Samples, bandwidth, `R` and the estimates `Ĝ`; its Gram matrix is
    /// overwritten by the Cholesky factor of `K + ηI` (lower).
    fit: RbfFit,
}

impl FitsFromSamples for Stein {
    type Config = SteinConfig;

    fn samples_wanted(cfg: &SteinConfig) -> usize {
        cfg.samples
    }

    /// The estimator of scores in `ℝ^dim` fitted to samples (row-major
    /// `n × dim`), taking input rows with `context` extra columns that it
    /// ignores (0 for an unconditional model; a conditional user refits it
    /// for every conditioning value).
    ///
    /// # Errors
    /// Too few samples (< 2), a non-finite sample, all samples identical
    /// (median bandwidth 0), or `K + ηI` not numerically positive definite
    /// (possible only with `η = 0` and repeated samples).
    fn fit(dim: usize, context: usize, cfg: &SteinConfig, x: &[f64]) -> Result<Self, FitError> {
        let mut fit = RbfFit::new(dim, context);
        fit.fit(x, cfg.bandwidth)?;
        let n = fit.n;
        for i in 0..n {
            fit.k[i * n + i] += cfg.eta;
        }
        crate::linalg::cholesky_in_place(&mut fit.k, n).map_err(|e| {
            FitError::Other(format!(
                "K + ηI (η = {}) cannot be factored: {e}; the samples repeat or nearly so — use η > 0",
                cfg.eta
            ))
        })?;
        fit.g.clear();
        fit.g.extend(fit.r.iter().map(|v| -v));
        crate::linalg::cholesky_solve_rows(&fit.k, n, &mut fit.g, dim);
        if let Some(p) = fit.first_non_finite() {
            return Err(FitError::Other(format!(
                "the Stein estimate at sample {p} is not finite (ill-conditioned K + ηI, η = {})",
                cfg.eta
            )));
        }
        Ok(Self { eta: cfg.eta, fit })
    }
}

impl Stein {
    /// The out-of-sample extension (see the module documentation) at the
    /// rows `idx` of `q` (`· × dim`), written to the same rows of `out`.
    /// Queries go through the Cholesky solve in blocks, as columns of one
    /// right-hand side.
    fn extend_rows(&self, q: &[f64], idx: &[usize], out: &mut [f64]) {
        let f = &self.fit;
        let (n, d, sigma) = (f.n, f.dim, f.sigma);
        if idx.is_empty() {
            return;
        }
        let inv_s2 = 1.0 / (sigma * sigma);
        let block_len = (EXTEND_BLOCK / n).clamp(1, 256).min(idx.len());
        let mut b = Vec::with_capacity(n * block_len);
        let mut w = Vec::with_capacity(n * block_len);
        let mut acc = vec![0.0; block_len * d];
        let mut bw = vec![0.0; block_len];
        let mut alpha_sum = vec![0.0; block_len];
        for block in idx.chunks(block_len) {
            let p = block.len();
            // b_ic = k(x_i, q_c); w = (K + ηI)⁻¹ b.
            b.clear();
            for i in 0..n {
                let xi = &f.x[i * d..(i + 1) * d];
                b.extend(
                    block
                        .iter()
                        .map(|&r| kernels::rbf(xi, &q[r * d..(r + 1) * d], sigma)),
                );
            }
            w.clear();
            w.extend_from_slice(&b);
            crate::linalg::cholesky_solve_rows(&f.k, n, &mut w, p);
            // r* − Σ_i w_i R̃_i = Σ_i α_i (q − x_i) − Σ_i w_i R_i with
            // α_i = b_i (1 + w_i) / σ².
            acc[..p * d].fill(0.0);
            bw[..p].fill(0.0);
            alpha_sum[..p].fill(0.0);
            for i in 0..n {
                let xi = &f.x[i * d..(i + 1) * d];
                let ri = &f.r[i * d..(i + 1) * d];
                for c in 0..p {
                    let (bi, wi) = (b[i * p + c], w[i * p + c]);
                    bw[c] += bi * wi;
                    let alpha = bi * (1.0 + wi) * inv_s2;
                    alpha_sum[c] += alpha;
                    for ((ac, xa), ra) in acc[c * d..(c + 1) * d].iter_mut().zip(xi).zip(ri) {
                        *ac -= alpha * xa + wi * ra;
                    }
                }
            }
            for (c, &r) in block.iter().enumerate() {
                // The Schur complement is ≥ η in exact arithmetic; keep it positive.
                let s = (1.0 + self.eta - bw[c]).max(f64::EPSILON * (1.0 + self.eta));
                let qr = &q[r * d..(r + 1) * d];
                for ((o, ac), qa) in out[r * d..(r + 1) * d]
                    .iter_mut()
                    .zip(&acc[c * d..(c + 1) * d])
                    .zip(qr)
                {
                    *o = -(ac + alpha_sum[c] * qa) / s;
                }
            }
        }
    }
}

impl PointScore for Stein {
    fn fitted(&self) -> &RbfFit {
        &self.fit
    }
    fn scores_into(&self, q: &[f64], out: &mut [f64]) {
        let d = self.fit.dim;
        let mut off = Vec::new();
        for (i, (qi, oi)) in q.chunks_exact(d).zip(out.chunks_exact_mut(d)).enumerate() {
            match self.fit.fitted_row(qi, i) {
                Some(g) => oi.copy_from_slice(g),
                None => off.push(i),
            }
        }
        self.extend_rows(q, &off, out);
    }
    fn vhv_into(&self, q: &[f64], v: &[f64], _s: &[f64], out: &mut [f64]) {
        let d = self.fit.dim;
        let n = q.len() / d;
        // Rows 2i and 2i + 1 of `p`: q_i ± h_i v_i.
        let mut p = Vec::with_capacity(2 * n * d);
        let mut steps = Vec::with_capacity(n);
        for (qi, vi) in q.chunks_exact(d).zip(v.chunks_exact(d)) {
            let norm = vi.iter().map(|a| a * a).sum::<f64>().sqrt();
            let h = if norm > 0.0 {
                FD_STEP * self.fit.sigma / norm
            } else {
                0.0
            };
            steps.push(h);
            p.extend(qi.iter().zip(vi).map(|(a, b)| a + h * b));
            p.extend(qi.iter().zip(vi).map(|(a, b)| a - h * b));
        }
        let all: Vec<usize> = (0..2 * n).collect();
        let mut sp = vec![0.0; 2 * n * d];
        self.extend_rows(&p, &all, &mut sp);
        for (i, o) in out.iter_mut().enumerate() {
            let h = steps[i];
            *o = if h > 0.0 {
                let vi = &v[i * d..(i + 1) * d];
                let plus = &sp[2 * i * d..(2 * i + 1) * d];
                let minus = &sp[(2 * i + 1) * d..(2 * i + 2) * d];
                vi.iter()
                    .zip(plus.iter().zip(minus))
                    .map(|(va, (a, b))| va * (a - b))
                    .sum::<f64>()
                    / (2.0 * h)
            } else {
                0.0
            };
        }
    }
}

crate::point_score_model!(Stein, fit);

/// The unfitted estimator: settings and dimensions, fitted on demand.
pub type SteinEstimator = Unfitted<Stein>;

crate::fitted_model_config!(SteinConfig => Stein);

crate::register_plugin!(
    ModelConfig,
    "stein",
    "Stein gradient estimator (Li & Turner 2018): RBF kernel, -(K + eta I)^-1 <grad, K>, fitted from samples",
    "(eta: 0.001, bandwidth: Median, samples: 100)",
    SteinConfig
);
