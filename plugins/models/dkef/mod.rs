//! `dkef`: the deep kernel exponential family (Wenliang, Sutherland, Strathmann
//! & Gretton 2019), as used for density estimation in the SSM paper:
//!
//! `log p̃(x) = Σ_l α_l Σ_k w_k exp(−‖φ(x) − φ(z_l)‖² / (2·10^{ℓ_k})) − ‖x‖²/(2s²)`
//!
//! with `φ` a feature MLP (dense softplus layers, all activated, plus a
//! bias-free linear skip from the input), `L` inducing points `z_l`, a
//! mixture of `K` Gaussian kernels with weights `w = softmax(β)` and
//! bandwidth exponents `ℓ_k`, and a Gaussian base `q₀ = N(0, s²I)` (`s`
//! fixed at 2 as in the original code, or trained with `train_base_std`).
//!
//! `alpha: Solved` (the default, as the paper and the original code train
//! it): `α` is not trained. Each training step solves
//! `(G + 10^{logλ} I)α = −b` in the graph from half of the batch, with the
//! objective's own quadratic in `α`, and takes the loss on the other half,
//! the gradient flowing through the solve into `φ`, `z`, `ℓ`, `β`, `s` and
//! the ridge `logλ` (initialised at −2); before every evaluation `α` is
//! refitted on the whole training set and stored (see
//! [`crate::closed_form`]). `alpha: Trained`: `α` is a parameter like the
//! others (initialised uniformly in ±0.1), which any objective can train.
//!
//! Data flow: the input jet goes through `φ` (core MLP jets), the squared
//! distances to the inducing features and the kernels are jet ops giving
//! the kernel-mixture jet `k(x)` (`n × L`, the basis the closed form
//! solves over); `log p̃ = k(x)·α + log q₀`. The score and the curvature
//! estimates are written backward by hand with the core's graph ops
//! (`∇_φ` of the kernel sum is `Σ_l b_l (φ − φ(z_l))`). Every evaluation
//! goes through a view [`DkefAt`] of the model at some `α`: the stored one,
//! or the one a training step solved. For inputs wider than the features,
//! the closed form's gradient Gram is formed in feature space (`gram`).

mod gram;

use std::sync::Arc;

use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use crate::autodiff::curvature::{Curvature, CurvatureMethod};
use crate::autodiff::jet::{Jet, JetKind};
use crate::autodiff::Graph;
use crate::closed_form::LinearCoefficients;
use crate::device::{Device, Mat};
use crate::error::{require_at_least, require_positive, ConfigError};
use crate::model::{
    CurvatureModel, DataInit, EnergyModel, GaussianProposal, ScoreModel, Terms, TraceTerms,
};
use crate::nn::{Activation, Mlp, MlpCache, Param};
use crate::registry::{BuiltModel, ModelConfig};

fn default_features() -> usize {
    30
}
fn default_layers() -> usize {
    3
}
fn default_inducing() -> usize {
    200
}
fn default_bandwidths() -> Vec<f64> {
    vec![0.0, 0.5185, 1.0]
}
fn default_base_std() -> f64 {
    2.0
}
fn default_true() -> bool {
    true
}
fn default_ridge() -> f64 {
    -2.0
}

/// How `dkef` gets its kernel coefficients `α`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum AlphaMode {
    /// Solved in closed form each step from half of the batch (the paper's
    /// and the original code's training); refitted on the training set
    /// before each evaluation.
    #[default]
    Solved,
    /// A trained parameter like the others.
    Trained,
}

/// Settings of `dkef`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DkefConfig {
    /// Width of every feature layer (default 30).
    #[serde(default = "default_features")]
    pub features: usize,
    /// Number of dense feature layers (default 3).
    #[serde(default = "default_layers")]
    pub layers: usize,
    /// Number of inducing points `L` (default 200), initialised from data.
    #[serde(default = "default_inducing")]
    pub inducing_points: usize,
    /// Initial bandwidth exponents `ℓ_k`, one kernel each (default `[0, 0.5185, 1]`).
    #[serde(default = "default_bandwidths")]
    pub log10_bandwidths: Vec<f64>,
    /// Standard deviation `s` of the base `q₀ = N(0, s²I)` (default 2; at
    /// start when `train_base_std`).
    #[serde(default = "default_base_std")]
    pub base_std: f64,
    /// Train `s` with the rest (default false: fixed, as the original code
    /// keeps `q₀ = N(0, 2²I)`; a trained `s` can spread the base far beyond
    /// the data, which score matching does not see and the likelihood does).
    #[serde(default)]
    pub train_base_std: bool,
    /// Feature activation (default `Softplus`).
    #[serde(default)]
    pub activation: Activation,
    /// Add the bias-free linear skip `xW` to the features (default true).
    #[serde(default = "default_true")]
    pub skip: bool,
    /// How `α` is obtained (default `Solved`).
    #[serde(default)]
    pub alpha: AlphaMode,
    /// Initial `log₁₀ λ` of the closed-form ridge (default −2; trained;
    /// only with `alpha: Solved`).
    #[serde(default = "default_ridge")]
    pub log10_ridge: f64,
}

/// A deep kernel exponential family model.
pub struct Dkef {
    phi: Mlp,
    skip: Option<Param>,
    inducing: Param,
    alpha: Param,
    log10_bandwidth: Param,
    kernel_logits: Param,
    log_base_std: Param,
    /// `log₁₀ λ` of the closed-form ridge (`alpha: Solved` only).
    log10_ridge: Option<Param>,
    /// `[k]` for each kernel `k` (column selections of the kernel rows).
    kernel_cols: Vec<Arc<[usize]>>,
}

crate::module!(Dkef {
    phi as "features",
    skip as "features.skip.weight",
    inducing as "inducing_points",
    alpha,
    log10_bandwidth,
    kernel_logits as "kernel_weight_logits",
    log_base_std,
    log10_ridge,
});

/// The model evaluated at coefficients `alpha` (its stored ones, or those
/// a training step solved on the graph).
pub struct DkefAt<'a> {
    model: &'a Dkef,
    alpha: Mat,
}

/// The kernel mixture `k(x)` before the coefficients, with what the
/// score and curvature passes need of it.
struct Mixture {
    /// Jet of `Σ_k w_k K_k(x, z)` (`n × L`).
    mix: Jet,
    /// Jet of `log q₀(x)` (`n × 1`).
    q0: Jet,
    /// Features `φ(x)` and their MLP cache.
    phi: Mat,
    cache: MlpCache,
    /// Inducing features `φ(z)`.
    phiz: Mat,
    /// Per kernel: its values `K_k` (`n × L`), `c_k` and `w_k` (`1 × 1`).
    kernels: Vec<(Mat, Mat, Mat)>,
    /// `1/s²` as `1 × 1`.
    inv_var: Mat,
}

/// What the kernel part of a forward pass leaves for the backward passes.
struct Forward {
    /// Jet of `log p̃`.
    logp: Jet,
    /// Features `φ(x)` (`n × F`) and their MLP cache.
    phi: Mat,
    cache: MlpCache,
    /// Inducing features `φ(z)` (`L × F`).
    phiz: Mat,
    /// `b_{il} = α_l Σ_k w_k (−2c_k) K_{k,il}` (`n × L`): ∇_φ = rowsum(b)φ − b φ(z).
    b: Mat,
    /// `Σ_k 4c_k² w_k α_l K_{k,il}` (`n × L`): the rank-one Hessian coefficients.
    rank_one: Option<Mat>,
    /// `1/s²` as `1 × 1`.
    inv_var: Mat,
}

impl Dkef {
    fn new(dev: &Device, dim: usize, cfg: &DkefConfig, rng: &mut ChaCha8Rng) -> Self {
        let mut widths = vec![dim];
        widths.extend(std::iter::repeat_n(cfg.features, cfg.layers));
        let phi = Mlp::new(dev, &widths, cfg.activation, rng).with_activated_output();
        let skip = cfg
            .skip
            .then(|| Param::uniform(dev, dim, cfg.features, 1.0 / (dim as f64).sqrt(), rng));
        let z: Vec<f64> = (0..cfg.inducing_points * dim)
            .map(|_| StandardNormal.sample(&mut *rng))
            .collect();
        let k = cfg.log10_bandwidths.len();
        let (alpha, log10_ridge) = match cfg.alpha {
            AlphaMode::Trained => (Param::uniform(dev, cfg.inducing_points, 1, 0.1, rng), None),
            AlphaMode::Solved => (
                Param::buffer(dev.zeros(cfg.inducing_points, 1)),
                Some(Param::filled(dev, 1, 1, cfg.log10_ridge)),
            ),
        };
        Self {
            phi,
            skip,
            inducing: Param::from_host(dev, &z, cfg.inducing_points, dim),
            alpha,
            log10_bandwidth: Param::from_host(dev, &cfg.log10_bandwidths, 1, k),
            kernel_logits: Param::filled(dev, 1, k, 0.0),
            log_base_std: if cfg.train_base_std {
                Param::filled(dev, 1, 1, cfg.base_std.ln())
            } else {
                Param::buffer(dev.filled(1, 1, cfg.base_std.ln()))
            },
            log10_ridge,
            kernel_cols: (0..k).map(|i| Arc::from(vec![i])).collect(),
        }
    }

    /// The width `F` of the features `φ(x)`.
    fn feature_count(&self) -> usize {
        self.phi.output_dim()
    }

    /// The model at its stored coefficients.
    fn at_stored(&self) -> DkefAt<'_> {
        DkefAt {
            model: self,
            alpha: self.alpha.value.clone(),
        }
    }

    fn features(&self, g: &mut Graph, x: Jet, keep: usize) -> (Jet, MlpCache) {
        let (mut phi, cache) = self.phi.jet_cached(g, x.clone(), keep);
        if let Some(w) = &self.skip {
            let s = x.matmul(g, &w.value);
            phi = phi.add(g, &s);
        }
        (phi, cache)
    }

    /// The kernel mixture `k(x)` (`keep`: derivative orders the backward
    /// passes need of the features) and the base's jet.
    fn mixture(&self, g: &mut Graph, xj: Jet, keep: usize) -> Mixture {
        let l = self.inducing.shape().0;
        let (phi, cache) = self.features(g, xj.clone(), keep);
        let (phiz, _) = self.features(g, Jet::value(self.inducing.value.clone()), 0);
        let phiz = phiz.value;
        // Squared distances ‖φ − φ(z_l)‖² as a jet (n × L).
        let sq = phi.square(g).sum_cols(g).repeat_col(g, l);
        let cross = phi.matmul_t(g, &phiz).scale(g, -2.0);
        let mut dist = sq.add(g, &cross);
        let z2 = g.square(&phiz);
        let z2 = g.sum_cols(&z2);
        let z2 = g.transpose(&z2);
        dist.value = g.add_row(&dist.value, &z2);
        // Kernel weights w = softmax(β) and scales c_k = ½·10^{−ℓ_k}.
        let logits = &self.kernel_logits.value;
        let e = g.exp(logits);
        let esum = g.sum_cols(&e);
        let esum = g.repeat_col(&esum, e.cols());
        let w = g.div(&e, &esum);
        let c = g.scale(&self.log10_bandwidth.value, -std::f64::consts::LN_10);
        let c = g.exp(&c);
        let c = g.scale(&c, 0.5);
        let mut mix: Option<Jet> = None;
        let mut kernels = Vec::with_capacity(self.kernel_cols.len());
        for cols in &self.kernel_cols {
            let ck = g.select_cols(&c, cols);
            let wk = g.select_cols(&w, cols);
            let neg_c = g.neg(&ck);
            let kern = dist.mul_scalar(g, &neg_c).exp(g);
            let term = kern.mul_scalar(g, &wk);
            mix = Some(match mix {
                Some(acc) => acc.add(g, &term),
                None => term,
            });
            kernels.push((kern.value, ck, wk));
        }
        // log q₀ = −‖x‖²/(2s²).
        let m2 = g.scale(&self.log_base_std.value, -2.0);
        let inv_var = g.exp(&m2);
        let half = g.scale(&inv_var, -0.5);
        let q0 = xj.square(g).sum_cols(g).mul_scalar(g, &half);
        Mixture {
            mix: mix.expect("at least one kernel"),
            q0,
            phi: phi.value,
            cache,
            phiz,
            kernels,
            inv_var,
        }
    }

    /// `−x/s²`, the base measure's score.
    fn base_score(g: &mut Graph, x: &Mat, inv_var: &Mat) -> Mat {
        let t = g.mul_scalar(x, inv_var);
        g.neg(&t)
    }
}

impl DkefAt<'_> {
    fn forward(&self, g: &mut Graph, xj: Jet, keep: usize) -> Forward {
        let n = xj.rows();
        let l = self.model.inducing.shape().0;
        let m = self.model.mixture(g, xj, keep);
        let alpha_row = g.transpose(&self.alpha);
        let mut b: Option<Mat> = None;
        let mut rank_one: Option<Mat> = None;
        for (kern, ck, wk) in &m.kernels {
            if keep >= 1 {
                // b += (−2 c_k) w_k K_k ∘ α.
                let cw = g.mul(ck, wk);
                let cw = g.scale(&cw, -2.0);
                let t = g.mul_scalar(kern, &cw);
                let t = g.mul_row(&t, &alpha_row);
                b = Some(match b {
                    Some(acc) => g.add(&acc, &t),
                    None => t,
                });
            }
            if keep >= 2 {
                // rank-one coefficient += 4 c_k² w_k K_k ∘ α.
                let c2 = g.square(ck);
                let cw = g.mul(&c2, wk);
                let cw = g.scale(&cw, 4.0);
                let t = g.mul_scalar(kern, &cw);
                let t = g.mul_row(&t, &alpha_row);
                rank_one = Some(match rank_one {
                    Some(acc) => g.add(&acc, &t),
                    None => t,
                });
            }
        }
        let f = m.mix.matmul(g, &self.alpha);
        Forward {
            logp: f.add(g, &m.q0),
            phi: m.phi,
            cache: m.cache,
            phiz: m.phiz,
            b: b.unwrap_or_else(|| g.filled(n, l, 0.0)),
            rank_one,
            inv_var: m.inv_var,
        }
    }

    /// ∇_φ of the kernel sum: `rowsum(b)∘φ − b φ(z)`.
    fn grad_phi(g: &mut Graph, fw: &Forward) -> Mat {
        let bs = g.sum_cols(&fw.b);
        let a = g.mul_col(&fw.phi, &bs);
        let bz = g.matmul(&fw.b, &fw.phiz);
        g.sub(&a, &bz)
    }

    fn score_from(&self, g: &mut Graph, x: &Mat, fw: &Forward) -> Mat {
        let gphi = Self::grad_phi(g, fw);
        let mut s = self.model.phi.vjp(g, &fw.cache, &gphi);
        if let Some(w) = &self.model.skip {
            let t = g.matmul_t(&gphi, &w.value);
            s = g.add(&s, &t);
        }
        let base = Dkef::base_score(g, x, &fw.inv_var);
        g.add(&s, &base)
    }
}

impl crate::nn::Module for DkefAt<'_> {
    // A view holds no parameters of its own.
    fn visit(&self, _: &mut crate::nn::ParamPath, _: &mut dyn FnMut(&str, &Param)) {}
    fn visit_mut(&mut self, _: &mut crate::nn::ParamPath, _: &mut dyn FnMut(&str, &mut Param)) {}
}

impl ScoreModel for DkefAt<'_> {
    fn dim(&self) -> usize {
        self.model.inducing.shape().1
    }
    fn score(&self, g: &mut Graph, x: &Mat) -> Mat {
        let fw = self.forward(g, Jet::value(x.clone()), 1);
        self.score_from(g, x, &fw)
    }
    fn terms(&self, g: &mut Graph, x: &Mat, v: &Mat, want_score: bool) -> Terms {
        let jet = Jet::along(x.clone(), v.clone(), JetKind::Second);
        let fw = self.forward(g, jet, usize::from(want_score));
        let score = want_score.then(|| self.score_from(g, x, &fw));
        Terms {
            vs: fw.logp.d1_or_zero(g),
            vhv: fw.logp.d2_or_zero(g),
            score,
        }
    }
    fn trace_terms(&self, g: &mut Graph, x: &Mat, start: usize, count: usize) -> TraceTerms {
        let fw = self.forward(g, Jet::basis(x.clone(), start, count, JetKind::Trace), 0);
        TraceTerms {
            vs: fw.logp.d1_or_zero(g),
            trace: fw.logp.d2_or_zero(g),
        }
    }
    fn trace_width(&self) -> usize {
        self.model.trace_width()
    }
    fn width_per_point(&self) -> usize {
        self.model.width_per_point()
    }
    crate::capabilities!(energy, curvature);
}

impl EnergyModel for DkefAt<'_> {
    fn log_density(&self, g: &mut Graph, x: &Mat) -> Mat {
        self.forward(g, Jet::value(x.clone()), 0).logp.value
    }
    fn importance_proposal(&self) -> Option<GaussianProposal> {
        self.model.importance_proposal()
    }
}

impl CurvatureModel for DkefAt<'_> {
    fn curvature(&self, g: &mut Graph, x: &Mat, method: &mut CurvatureMethod<'_>) -> (Mat, Mat) {
        let fw = self.forward(g, Jet::value(x.clone()), 2);
        let (n, d) = x.shape();
        let f = fw.phi.cols();
        let gphi = Self::grad_phi(g, &fw);
        // Hessian of the kernel sum in φ: Σ_l C_l u_l u_lᵀ + rowsum(b)·I.
        let diag = g.sum_cols(&fw.b);
        let diag = g.repeat_col(&diag, f);
        let at_phi = Curvature::with_gradient(g, gphi, method)
            .add_diagonal(g, None, &diag, method)
            .add_rank_one_centred(
                g,
                fw.rank_one.as_ref().expect("kept for curvature"),
                &fw.phi,
                &fw.phiz,
                method,
            );
        let mut at_x = self
            .model
            .phi
            .curvature(g, &fw.cache, at_phi.clone(), method);
        if let Some(w) = &self.model.skip {
            let skip = at_phi.linear(g, &w.value);
            at_x = at_x.merge(g, skip);
        }
        let base_grad = Dkef::base_score(g, x, &fw.inv_var);
        let neg_iv = g.neg(&fw.inv_var);
        let base_diag = g.repeat_scalar(&neg_iv, n, d);
        let at_x = at_x.add_diagonal(g, Some(&base_grad), &base_diag, method);
        let diag = at_x.diagonal(g);
        (at_x.grad, diag)
    }
}

impl ScoreModel for Dkef {
    fn dim(&self) -> usize {
        self.inducing.shape().1
    }
    fn score(&self, g: &mut Graph, x: &Mat) -> Mat {
        self.at_stored().score(g, x)
    }
    fn terms(&self, g: &mut Graph, x: &Mat, v: &Mat, want_score: bool) -> Terms {
        self.at_stored().terms(g, x, v, want_score)
    }
    fn trace_terms(&self, g: &mut Graph, x: &Mat, start: usize, count: usize) -> TraceTerms {
        self.at_stored().trace_terms(g, x, start, count)
    }
    fn trace_width(&self) -> usize {
        self.phi.max_width().max(self.inducing.shape().0)
    }
    fn width_per_point(&self) -> usize {
        // Features, then distances and one kernel matrix per bandwidth.
        self.phi.total_width() + self.inducing.shape().0 * (2 + self.kernel_cols.len())
    }
    fn as_linear_coefficients(&self) -> Option<&dyn LinearCoefficients> {
        self.log10_ridge
            .is_some()
            .then_some(self as &dyn LinearCoefficients)
    }
    fn as_linear_coefficients_mut(&mut self) -> Option<&mut dyn LinearCoefficients> {
        if self.log10_ridge.is_some() {
            Some(self)
        } else {
            None
        }
    }
    crate::capabilities!(energy, curvature, data_init);
}

impl EnergyModel for Dkef {
    fn log_density(&self, g: &mut Graph, x: &Mat) -> Mat {
        self.at_stored().log_density(g, x)
    }
    fn importance_proposal(&self) -> Option<GaussianProposal> {
        Some(GaussianProposal {
            mean: vec![0.0; self.dim()],
            std: self.log_base_std.value.scalar().exp(),
        })
    }
}

impl CurvatureModel for Dkef {
    fn curvature(&self, g: &mut Graph, x: &Mat, method: &mut CurvatureMethod<'_>) -> (Mat, Mat) {
        self.at_stored().curvature(g, x, method)
    }
}

impl LinearCoefficients for Dkef {
    fn coefficient_count(&self) -> usize {
        self.inducing.shape().0
    }
    fn basis_jets(&self, g: &mut Graph, x: Jet) -> (Jet, Jet) {
        let m = self.mixture(g, x, 0);
        (m.mix, m.q0)
    }
    fn log10_ridge(&self) -> &Mat {
        &self
            .log10_ridge
            .as_ref()
            .expect("closed-form coefficients only with a ridge")
            .value
    }
    fn with_coefficients(&self, alpha: Mat) -> Box<dyn ScoreModel + '_> {
        Box::new(DkefAt { model: self, alpha })
    }
    fn set_coefficients(&mut self, dev: &Device, alpha: &[f64]) {
        self.alpha.value = dev.mat(alpha, alpha.len(), 1);
    }
    fn gradient_gram(&self, g: &mut Graph, x: &Mat, extra: Option<&Mat>) -> Option<(Mat, Mat)> {
        self.prefers_feature_space_gram(x.cols())
            .then(|| self.feature_space_gram(g, x, extra))
    }
}

impl DataInit for Dkef {
    fn data_init_points(&self) -> usize {
        self.inducing.shape().0
    }
    fn init_from_data(&mut self, dev: &Device, x: &[f64]) {
        let (l, d) = self.inducing.shape();
        if x.len() == l * d {
            self.inducing.value = dev.mat(x, l, d);
        }
    }
}

impl ModelConfig for DkefConfig {
    fn build(
        &self,
        dev: &Device,
        dim: usize,
        rng: &mut ChaCha8Rng,
    ) -> Result<BuiltModel, ConfigError> {
        require_at_least("features", self.features, 1)?;
        require_at_least("layers", self.layers, 1)?;
        require_at_least("inducing_points", self.inducing_points, 1)?;
        if self.log10_bandwidths.is_empty() {
            return Err(ConfigError::new(
                "log10_bandwidths",
                "needs at least one kernel",
            ));
        }
        if let Some(b) = self.log10_bandwidths.iter().find(|b| !b.is_finite()) {
            return Err(ConfigError::new(
                "log10_bandwidths",
                format!("{b} is not finite"),
            ));
        }
        require_positive("base_std", self.base_std)?;
        if !self.log10_ridge.is_finite() {
            return Err(ConfigError::new(
                "log10_ridge",
                format!("{} is not finite", self.log10_ridge),
            ));
        }
        Mlp::check_repeated_memory(
            ("features", "layers"),
            dim,
            self.features,
            self.layers,
            None,
        )?;
        crate::budget::require_fits(
            "inducing_points",
            "the inducing points and their features",
            crate::budget::bytes(&[
                self.inducing_points,
                dim.saturating_add(self.features),
                8,
                4,
            ]),
        )?;
        Ok(BuiltModel::Trained(Box::new(Dkef::new(
            dev, dim, self, rng,
        ))))
    }
}

crate::register_plugin!(
    ModelConfig,
    "dkef",
    "deep kernel exponential family: kernel mixture on learned features, inducing points, Gaussian base",
    "(features: 30, layers: 3, inducing_points: 200, log10_bandwidths: [0.0, 0.5185, 1.0], base_std: 2.0, train_base_std: false, alpha: Solved, log10_ridge: -2.0)",
    DkefConfig
);
