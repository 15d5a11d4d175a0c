//! `spectral`: the spectral Stein gradient estimator of Shi, Sun & Zhu
//! (2018), a score model fitted from samples with no training loop.
//!
//! Data flow: [`ScoreModel::fit_samples`] takes samples `x_1..x_M`, builds
//! the RBF Gram matrix `K` (kernel and bandwidth conventions in
//! [`crate::kernels`]) and eigendecomposes it, `K u_j = λ_j u_j`
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

use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::autodiff::Graph;
use crate::device::{Device, Mat, Precision};
use crate::error::{require_at_least, ConfigError};
use crate::kernels::{self, Bandwidth, PointScore};
use crate::linalg::SymEigen;
use crate::model::{FitError, SampleEstimator, ScoreModel, Terms};
use crate::nn::Param;
use crate::registry::{BuiltModel, ModelConfig};

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
    /// run ([`SampleEstimator::samples_wanted`]; default 100, at least 2).
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
    cfg: SpectralConfig,
    dim: usize,
    context: usize,
    /// Number of fitted samples; 0 when not fitted.
    n: usize,
    /// Eigenpairs kept at the last fit.
    j: usize,
    sigma: f64,
    /// Fitted samples, `n × dim`.
    x: Vec<f64>,
    /// Gram matrix `K`, `n × n`.
    k: Vec<f64>,
    eig: SymEigen,
    /// `R`, then reused.
    r: Vec<f64>,
    /// `U_Jᵀ R Λ_J⁻²`, `J × dim`.
    c: Vec<f64>,
    /// Expansion weights `W`, `n × dim`.
    w: Vec<f64>,
    /// Estimates at the samples `K W`, `n × dim`.
    g: Vec<f64>,
    scratch: Vec<f64>,
    /// The fitted samples as a buffer (`n × dim`, `f64`), so a checkpoint
    /// of the fitted model refits it exactly.
    fitted: Param,
}

crate::module!(Spectral { fitted as "samples" });
const _: () = assert!(matches!(
    crate::model::FITTED_SAMPLES.as_bytes(),
    b"samples"
));

impl Spectral {
    fn new(dim: usize, context: usize, cfg: &SpectralConfig) -> Self {
        Self {
            cfg: cfg.clone(),
            dim,
            context,
            n: 0,
            j: 0,
            sigma: 0.0,
            x: Vec::new(),
            k: Vec::new(),
            eig: SymEigen::default(),
            r: Vec::new(),
            c: Vec::new(),
            w: Vec::new(),
            g: Vec::new(),
            scratch: Vec::new(),
            fitted: Param::buffer(Device::cpu(Precision::F64).zeros(0, dim)),
        }
    }

    /// The estimator of scores in `ℝ^dim` fitted to samples (row-major
    /// `n × dim`), taking input rows with `context` extra columns that it
    /// ignores (0 for an unconditional model; a conditional user refits it
    /// for every conditioning value).
    ///
    /// # Errors
    /// Too few samples (< 2), a non-finite sample, all samples identical
    /// (median bandwidth 0), or a failed eigendecomposition.
    pub fn fit(
        dim: usize,
        context: usize,
        cfg: &SpectralConfig,
        x: &[f64],
    ) -> Result<Self, FitError> {
        let mut s = Self::new(dim, context, cfg);
        s.fit_inner(x)?;
        let n = x.len() / dim;
        s.fitted = Param::buffer(Device::cpu(Precision::F64).mat(x, n, dim));
        Ok(s)
    }

    fn fit_inner(&mut self, x: &[f64]) -> Result<(), FitError> {
        let d = self.dim;
        let n = kernels::check_samples(x, d)?;
        self.x.clear();
        self.x.extend_from_slice(x);
        kernels::pairwise_sq_dists_into(x, n, d, &mut self.k);
        let sigma = kernels::choose_bandwidth(self.cfg.bandwidth, &self.k, n, &mut self.scratch)?;
        kernels::rbf_from_sq_in_place(&mut self.k, sigma);
        kernels::stein_rhs_into(x, &self.k, n, d, sigma, &mut self.r);
        self.eig.compute(&self.k, n)?;
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
        let j = match self.cfg.num_eigen {
            Some(j) => j.min(usable),
            None => {
                let total: f64 = vals.iter().filter(|&&l| l > 0.0).sum();
                let target = self.cfg.eigen_ratio * total;
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
                for (ca, ra) in cj.iter_mut().zip(&self.r[m * d..(m + 1) * d]) {
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
        self.g.clear();
        self.g.resize(n * d, 0.0);
        for i in 0..n {
            let gi = &mut self.g[i * d..(i + 1) * d];
            for (m, &kim) in self.k[i * n..(i + 1) * n].iter().enumerate() {
                for (ga, wa) in gi.iter_mut().zip(&self.w[m * d..(m + 1) * d]) {
                    *ga += kim * wa;
                }
            }
        }
        if let Some(p) = self.g.iter().position(|v| !v.is_finite()) {
            return Err(FitError::Other(format!(
                "the spectral estimate at sample {} is not finite ({j} eigenpairs, smallest kept eigenvalue {:e})",
                p / d,
                vals[j - 1]
            )));
        }
        self.sigma = sigma;
        self.j = j;
        self.n = n;
        Ok(())
    }

    /// The bandwidth `σ` of the fit.
    pub fn bandwidth(&self) -> f64 {
        self.sigma
    }

    /// Number of eigenpairs `J` kept.
    pub fn num_eigenpairs(&self) -> usize {
        self.j
    }

    /// The fitted samples (`n × dim`).
    pub fn samples(&self) -> &[f64] {
        &self.x[..self.n * self.dim]
    }

    /// The expansion weights `W` (`n × dim`): `ĝ(x) = Σ_m k(x, x_m) W_m`.
    pub fn weights(&self) -> &[f64] {
        &self.w[..self.n * self.dim]
    }

    /// The estimates at the fitted samples (`n × dim`).
    pub fn fitted_scores(&self) -> &[f64] {
        &self.g[..self.n * self.dim]
    }

    /// Scores at rows of width `dim + context` (row-major), on the host.
    ///
    /// # Panics
    /// When the rows have the wrong width.
    pub fn scores(&self, x: &[f64]) -> Vec<f64> {
        kernels::host_scores(self, x)
    }

    /// Kernel values `k(q, x_m)`, `m = 1..n`, into `work`.
    fn kernels_at(&self, q: &[f64], work: &mut Vec<f64>) {
        let d = self.dim;
        work.clear();
        work.extend((0..self.n).map(|m| kernels::rbf(q, &self.x[m * d..(m + 1) * d], self.sigma)));
    }
}

impl PointScore for Spectral {
    fn score_dim(&self) -> usize {
        self.dim
    }
    fn context_cols(&self) -> usize {
        self.context
    }
    fn scores_into(&self, q: &[f64], out: &mut [f64]) {
        let d = self.dim;
        let mut work = Vec::with_capacity(self.n);
        for (i, (qi, oi)) in q.chunks_exact(d).zip(out.chunks_exact_mut(d)).enumerate() {
            if let Some(k) = kernels::find_sample(self.samples(), d, qi, i) {
                oi.copy_from_slice(&self.g[k * d..(k + 1) * d]);
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
        let (n, d) = (self.n, self.dim);
        let mut work = Vec::with_capacity(n);
        for (i, ((qi, vi), o)) in q
            .chunks_exact(d)
            .zip(v.chunks_exact(d))
            .zip(out.iter_mut())
            .enumerate()
        {
            let kq: &[f64] = match kernels::find_sample(self.samples(), d, qi, i) {
                Some(k) => &self.k[k * n..(k + 1) * n],
                None => {
                    self.kernels_at(qi, &mut work);
                    &work
                }
            };
            let mut acc = 0.0;
            for (m, &km) in kq.iter().enumerate() {
                let xm = &self.x[m * d..(m + 1) * d];
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
            *o = -acc / (self.sigma * self.sigma);
        }
    }
}

impl ScoreModel for Spectral {
    fn dim(&self) -> usize {
        self.dim
    }
    fn context_dim(&self) -> usize {
        self.context
    }
    fn score(&self, g: &mut Graph, x: &Mat) -> Mat {
        kernels::graph_score(self, g, x)
    }
    fn terms(&self, g: &mut Graph, x: &Mat, v: &Mat, want_score: bool) -> Terms {
        kernels::graph_terms(self, g, x, v, want_score)
    }
}

/// The unfitted estimator: settings and dimensions, fitted on demand.
pub struct SpectralEstimator {
    cfg: SpectralConfig,
    dim: usize,
}

impl SampleEstimator for SpectralEstimator {
    fn dim(&self) -> usize {
        self.dim
    }
    fn samples_wanted(&self) -> usize {
        self.cfg.samples
    }
    fn fit(&self, _dev: &Device, x: &[f64]) -> Result<Box<dyn ScoreModel>, FitError> {
        Ok(Box::new(Spectral::fit(self.dim, 0, &self.cfg, x)?))
    }
}

impl ModelConfig for SpectralConfig {
    fn build(
        &self,
        _dev: &Device,
        dim: usize,
        _rng: &mut ChaCha8Rng,
    ) -> Result<BuiltModel, ConfigError> {
        self.validate()?;
        Ok(BuiltModel::Fitted(Box::new(SpectralEstimator {
            cfg: self.clone(),
            dim,
        })))
    }
}

crate::register_plugin!(
    ModelConfig,
    "spectral",
    "spectral Stein gradient estimator (Shi et al. 2018): Nystrom eigenfunctions of the RBF kernel, fitted from samples",
    "(num_eigen: None, eigen_ratio: 0.99, bandwidth: Median, samples: 100)",
    SpectralConfig
);
