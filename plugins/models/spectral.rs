//! `spectral`: the spectral Stein gradient estimator of Shi, Sun & Zhu
//! (2018), a score model fitted from samples with no training loop.
//!
//! Data flow: [`FitsFromSamples::fit`] takes samples `x_1..x_M`, has
//! [`RbfFit::fit`] build the RBF Gram matrix `K` (kernel and bandwidth
//! conventions in [`crate::kernels`]) and eigendecomposes it, `K u_j = λ_j u_j`
//! (`λ_1 ≥ λ_2 ≥ …`). The Nyström eigenfunctions of the kernel are
//! `ψ_j(x) = (√M/λ_j) Σ_m k(x, x_m) u_mj`, and the score estimate is
//! `ĝ(x) = Σ_{j≤J} β_j ψ_j(x)` with `β_j = −(1/M) Σ_m ∇ψ_j(x_m)`.
//! Collecting terms, `ĝ(x) = Σ_m k(x, x_m) W_m` with
//!
//! `W = −U_J Λ_J⁻² U_Jᵀ R`,   `R_m = Σ_l ∇_{x_l} k(x_m, x_l)`,
//!
//! so a fit costs one eigendecomposition plus `O(MJD)`, and a query
//! `O(MD)`. At the samples `ĝ = KW = −U_J Λ_J⁻¹ U_Jᵀ R`, a truncated
//! pseudo-inverse where the Stein estimator uses `(K + ηI)⁻¹`.
//!
//! `J`: `num_eigen` when given, else the fewest leading eigenpairs holding
//! `eigen_ratio` (default 0.99) of the eigenvalue mass `Σ_j λ_j`. Either way
//! eigenvalues below `10⁻¹⁰ λ_1` are never used (their `1/λ²` weights would
//! only amplify rounding).
//!
//! `vᵀ(∇ĝ)v` is analytic: `−Σ_m k(x, x_m) (vᵀW_m) (vᵀ(x − x_m)) / σ²`.

use serde::{Deserialize, Serialize};

use crate::error::{require_at_least, ConfigError};
use crate::kernels::{self, Bandwidth, PointScore, RbfFit};
use crate::linalg::SymEigen;
use crate::model::{FitError, FitsFromSamples, Unfitted};

fn default_ratio() -> f64 {
    0.99
}

fn default_samples() -> usize {
    100
}

/// Eigenvalues below this fraction of the largest are never used.
pub const MIN_EIGEN_FRACTION: f64 = 1e-10;

/// Settings of `spectral`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpectralConfig {
    /// Number of eigenpairs `J` to keep (`None`, the default: chosen by
    /// `eigen_ratio`); capped by the number of usable eigenvalues.
    #[serde(default)]
    pub num_eigen: Option<usize>,
    /// Fraction of the eigenvalue mass the kept eigenpairs hold, in `(0, 1]`
    /// (default 0.99); used when `num_eigen` is `None`.
    #[serde(default = "default_ratio")]
    pub eigen_ratio: f64,
    /// RBF bandwidth (default `Median`, the median heuristic).
    #[serde(default)]
    pub bandwidth: Bandwidth,
    /// Number of training rows the estimator is fitted to in a standalone
    /// run ([`crate::model::SampleEstimator::samples_wanted`]; default 100, at least 2).
    #[serde(default = "default_samples")]
    pub samples: usize,
}

impl SpectralConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if let Some(j) = self.num_eigen {
            require_at_least("num_eigen", j, 1)?;
        }
        if !(self.eigen_ratio > 0.0 && self.eigen_ratio <= 1.0) {
            return Err(ConfigError::new(
                "eigen_ratio",
                format!("must be in (0, 1], got {}", self.eigen_ratio),
            ));
        }
        self.bandwidth.validate("bandwidth")?;
        require_at_least("samples", self.samples, 2)
    }
}

/// The spectral Stein gradient estimator (see the module documentation).
pub struct Spectral {
    /// Samples, bandwidth, `K`, `R` and the estimates `K W` at the samples.
    fit: RbfFit,
    /// Eigenpairs kept at the fit.
    j: usize,
    eig: SymEigen,
    /// `U_Jᵀ R Λ_J⁻²`, `J × dim`.
    c: Vec<f64>,
    /// Expansion weights `W`, `n × dim`.
    w: Vec<f64>,
}

impl FitsFromSamples for Spectral {
    type Config = SpectralConfig;

    fn samples_wanted(cfg: &SpectralConfig) -> usize {
        cfg.samples
    }

    /// The estimator of scores in `ℝ^dim` fitted to samples (row-major
    /// `n × dim`), taking input rows with `context` extra columns that it
    /// ignores (0 for an unconditional model; a conditional user refits it
    /// for every conditioning value).
    ///
    /// # Errors
    /// Too few samples (< 2), a non-finite sample, all samples identical
    /// (median bandwidth 0), or a failed eigendecomposition.
    fn fit(dim: usize, context: usize, cfg: &SpectralConfig, x: &[f64]) -> Result<Self, FitError> {
        let mut s = Self {
            fit: RbfFit::new(dim, context),
            j: 0,
            eig: SymEigen::default(),
            c: Vec::new(),
            w: Vec::new(),
        };
        s.fit.fit(x, cfg.bandwidth)?;
        s.solve(cfg)?;
        Ok(s)
    }
}

impl Spectral {
    /// The weights `W` and the estimates at the samples from the fitted `K`
    /// and `R`, keeping `J` eigenpairs as `cfg` says.
    fn solve(&mut self, cfg: &SpectralConfig) -> Result<(), FitError> {
        let f = &mut self.fit;
        let (n, d) = (f.n, f.dim);
        self.eig.compute(&f.k, n)?;
        let vals = &self.eig.values;
        let top = vals[0];
        if top.is_nan() || top <= 0.0 {
            return Err(FitError::Other(format!(
                "the Gram matrix has no positive eigenvalue (largest {top:e})"
            )));
        }
        let usable = vals
            .iter()
            .take_while(|&&l| l > MIN_EIGEN_FRACTION * top)
            .count();
        let j = match cfg.num_eigen {
            Some(j) => j.min(usable),
            None => {
                let total: f64 = vals.iter().filter(|&&l| l > 0.0).sum();
                let target = cfg.eigen_ratio * total;
                let mut acc = 0.0;
                let mut j = 0;
                for &l in &vals[..usable] {
                    acc += l;
                    j += 1;
                    if acc >= target {
                        break;
                    }
                }
                j
            }
        };
        // C = Λ_J⁻² U_Jᵀ R (J × d).
        self.c.clear();
        self.c.resize(j * d, 0.0);
        for (jj, &lambda) in vals[..j].iter().enumerate() {
            let u = self.eig.vector(jj);
            let cj = &mut self.c[jj * d..(jj + 1) * d];
            for (m, &um) in u.iter().enumerate() {
                for (ca, ra) in cj.iter_mut().zip(&f.r[m * d..(m + 1) * d]) {
                    *ca += um * ra;
                }
            }
            let scale = 1.0 / (lambda * lambda);
            for ca in cj.iter_mut() {
                *ca *= scale;
            }
        }
        // W = −U_J C (n × d).
        self.w.clear();
        self.w.resize(n * d, 0.0);
        for jj in 0..j {
            let u = self.eig.vector(jj);
            let cj = &self.c[jj * d..(jj + 1) * d];
            for (m, &um) in u.iter().enumerate() {
                for (wa, ca) in self.w[m * d..(m + 1) * d].iter_mut().zip(cj) {
                    *wa -= um * ca;
                }
            }
        }
        // G = K W.
        f.g.clear();
        f.g.resize(n * d, 0.0);
        for i in 0..n {
            let gi = &mut f.g[i * d..(i + 1) * d];
            for (m, &kim) in f.k[i * n..(i + 1) * n].iter().enumerate() {
                for (ga, wa) in gi.iter_mut().zip(&self.w[m * d..(m + 1) * d]) {
                    *ga += kim * wa;
                }
            }
        }
        if let Some(p) = f.first_non_finite() {
            return Err(FitError::Other(format!(
                "the spectral estimate at sample {p} is not finite ({j} eigenpairs, smallest kept eigenvalue {:e})",
                vals[j - 1]
            )));
        }
        self.j = j;
        Ok(())
    }

    /// Number of eigenpairs `J` kept.
    pub fn num_eigenpairs(&self) -> usize {
        self.j
    }

    /// The expansion weights `W` (`n × dim`): `ĝ(x) = Σ_m k(x, x_m) W_m`.
    pub fn weights(&self) -> &[f64] {
        &self.w[..self.fit.n * self.fit.dim]
    }

    /// Kernel values `k(q, x_m)`, `m = 1..n`, into `work`.
    fn kernels_at(&self, q: &[f64], work: &mut Vec<f64>) {
        let f = &self.fit;
        let d = f.dim;
        work.clear();
        work.extend((0..f.n).map(|m| kernels::rbf(q, &f.x[m * d..(m + 1) * d], f.sigma)));
    }
}

impl PointScore for Spectral {
    fn fitted(&self) -> &RbfFit {
        &self.fit
    }
    fn scores_into(&self, q: &[f64], out: &mut [f64]) {
        let d = self.fit.dim;
        let mut work = Vec::with_capacity(self.fit.n);
        for (i, (qi, oi)) in q.chunks_exact(d).zip(out.chunks_exact_mut(d)).enumerate() {
            if let Some(g) = self.fit.fitted_row(qi, i) {
                oi.copy_from_slice(g);
                continue;
            }
            self.kernels_at(qi, &mut work);
            oi.fill(0.0);
            for (m, &km) in work.iter().enumerate() {
                for (o, wa) in oi.iter_mut().zip(&self.w[m * d..(m + 1) * d]) {
                    *o += km * wa;
                }
            }
        }
    }
    fn vhv_into(&self, q: &[f64], v: &[f64], _s: &[f64], out: &mut [f64]) {
        let f = &self.fit;
        let (n, d) = (f.n, f.dim);
        let mut work = Vec::with_capacity(n);
        for (i, ((qi, vi), o)) in q
            .chunks_exact(d)
            .zip(v.chunks_exact(d))
            .zip(out.iter_mut())
            .enumerate()
        {
            let kq: &[f64] = match kernels::find_sample(f.samples(), d, qi, i) {
                Some(k) => &f.k[k * n..(k + 1) * n],
                None => {
                    self.kernels_at(qi, &mut work);
                    &work
                }
            };
            let mut acc = 0.0;
            for (m, &km) in kq.iter().enumerate() {
                let xm = &f.x[m * d..(m + 1) * d];
                let vw: f64 = vi
                    .iter()
                    .zip(&self.w[m * d..(m + 1) * d])
                    .map(|(a, b)| a * b)
                    .sum();
                let vdx: f64 = vi
                    .iter()
                    .zip(qi.iter().zip(xm))
                    .map(|(a, (b, c))| a * (b - c))
                    .sum();
                acc += km * vw * vdx;
            }
            *o = -acc / (f.sigma * f.sigma);
        }
    }
}

crate::point_score_model!(Spectral, fit);

/// The unfitted estimator: settings and dimensions, fitted on demand.
pub type SpectralEstimator = Unfitted<Spectral>;

crate::fitted_model_config!(SpectralConfig => Spectral);

crate::register_plugin!(
    ModelConfig,
    "spectral",
    "spectral Stein gradient estimator (Shi et al. 2018): Nystrom eigenfunctions of the RBF kernel, fitted from samples",
    "(num_eigen: None, eigen_ratio: 0.99, bandwidth: Median, samples: 100)",
    SpectralConfig
);
