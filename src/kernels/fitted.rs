//! What both RBF kernel estimators keep from a fit: the samples, the
//! bandwidth, the Gram matrix `K`, the Stein right-hand side `R`, the
//! estimates `Ĝ` at the samples, and the samples as the one buffer a
//! checkpoint holds ([`crate::model::FITTED_SAMPLES`]).
//!
//! Data flow: an estimator's `fit` makes an [`RbfFit`] with
//! [`RbfFit::new`] and calls [`RbfFit::fit`], which checks and copies the
//! samples, picks the bandwidth, and builds `K` and `R` (see [`super`] for
//! the conventions). The estimator then does its own algebra on `K` and
//! `R` (the Stein estimator factors `K + ηI` in place, the spectral one
//! eigendecomposes `K`), writes its estimates at the samples into
//! [`RbfFit::g`], and reads them back for queries that repeat a fitted
//! sample with [`RbfFit::fitted_row`].

use crate::device::{Device, Precision};
use crate::model::FitError;
use crate::nn::Param;

/// The state of an RBF kernel estimator fitted to `n` samples in `ℝ^dim`
/// (all matrices row-major `f64`).
pub struct RbfFit {
    /// Dimension `D` of the samples and of the score.
    pub dim: usize,
    /// Conditioning columns after the first `D` of every query row (ignored).
    pub context: usize,
    /// Number of fitted samples; 0 when not fitted.
    pub n: usize,
    /// The bandwidth `σ` of the fit.
    pub sigma: f64,
    /// Fitted samples, `n × dim`.
    pub x: Vec<f64>,
    /// The Gram matrix `K` (`n × n`); an estimator may overwrite it with a
    /// factor of its own (the Stein estimator keeps the Cholesky factor of
    /// `K + ηI` here).
    pub k: Vec<f64>,
    /// `R = ⟨∇, K⟩`, `n × dim`.
    pub r: Vec<f64>,
    /// The estimates at the samples, `n × dim`, written by the estimator.
    pub g: Vec<f64>,
    scratch: Vec<f64>,
    /// The fitted samples as a buffer (`n × dim`, `f64`), so a checkpoint
    /// of the fitted model refits it exactly.
    samples: Param,
}

crate::module!(RbfFit { samples });
const _: () = assert!(matches!(
    crate::model::FITTED_SAMPLES.as_bytes(),
    b"samples"
));

impl RbfFit {
    /// An empty fit for samples in `ℝ^dim` and query rows with `context`
    /// extra columns.
    pub fn new(dim: usize, context: usize) -> Self {
        Self {
            dim,
            context,
            n: 0,
            sigma: 0.0,
            x: Vec::new(),
            k: Vec::new(),
            r: Vec::new(),
            g: Vec::new(),
            scratch: Vec::new(),
            samples: Param::buffer(Device::cpu(Precision::F64).zeros(0, dim)),
        }
    }

    /// Fits to the samples `x` (row-major `n × dim`): checks them, keeps a
    /// copy (and the checkpoint buffer), picks the bandwidth, and builds the
    /// Gram matrix [`RbfFit::k`] and the Stein right-hand side [`RbfFit::r`].
    ///
    /// # Errors
    /// Too few samples (< 2), a non-finite sample, or all samples identical
    /// (median bandwidth 0).
    pub fn fit(&mut self, x: &[f64], bandwidth: super::Bandwidth) -> Result<(), FitError> {
        let d = self.dim;
        let n = super::check_samples(x, d)?;
        self.x.clear();
        self.x.extend_from_slice(x);
        super::pairwise_sq_dists_into(x, n, d, &mut self.k);
        let sigma = super::choose_bandwidth(bandwidth, &self.k, n, &mut self.scratch)?;
        super::rbf_from_sq_in_place(&mut self.k, sigma);
        super::stein_rhs_into(x, &self.k, n, d, sigma, &mut self.r);
        self.sigma = sigma;
        self.n = n;
        self.samples = Param::buffer(Device::cpu(Precision::F64).mat(x, n, d));
        Ok(())
    }

    /// The bandwidth `σ` of the fit.
    pub fn bandwidth(&self) -> f64 {
        self.sigma
    }

    /// The fitted samples (`n × dim`).
    pub fn samples(&self) -> &[f64] {
        &self.x[..self.n * self.dim]
    }

    /// The estimates at the fitted samples (`n × dim`).
    pub fn fitted_scores(&self) -> &[f64] {
        &self.g[..self.n * self.dim]
    }

    /// The first fitted sample whose estimate is not finite, if any.
    pub fn first_non_finite(&self) -> Option<usize> {
        self.g
            .iter()
            .position(|v| !v.is_finite())
            .map(|p| p / self.dim)
    }

    /// The estimate at query row `qi` (row `i` of its batch) when the query
    /// repeats a fitted sample bit for bit (see [`super::find_sample`]).
    pub fn fitted_row(&self, qi: &[f64], i: usize) -> Option<&[f64]> {
        let d = self.dim;
        super::find_sample(self.samples(), d, qi, i).map(|k| &self.g[k * d..(k + 1) * d])
    }
}
