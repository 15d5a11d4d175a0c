//! `dkef`: the deep kernel exponential family (Wenliang, Sutherland, Strathmann
//! & Gretton 2019), as used for density estimation in the SSM paper:
//!
//! `log p̃(x) = Σ_l α_l Σ_k w_k exp(−‖φ(x) − φ(z_l)‖² / (2·10^{ℓ_k})) − ‖x‖²/(2s²)`
//!
//! with `φ` a feature MLP (dense softplus layers, all activated, plus a
//! bias-free linear skip from the input), `L` inducing points `z_l`, a
//! mixture of `K` Gaussian kernels with weights `w = softmax(β)` and
//! bandwidth exponents `ℓ_k`, and a Gaussian base `q₀ = N(0, s²I)` with
//! trainable `s`. All of `φ`, `z`, `α`, `ℓ`, `β`, `s` train jointly.
//!
//! Difference from the original code: there `α` is solved in closed form
//! inside every training step from half of the batch; here `α` is a trained
//! parameter like the others (initialised uniformly in ±0.1), which every objective can
//! use unchanged.
//!
//! Data flow: the input jet goes through `φ` (core MLP jets), the squared
//! distances to the inducing features and the kernels are jet ops, and the
//! score and the curvature estimates are written backward by hand with the
//! core's graph ops (`∇_φ` of the kernel sum is `Σ_l b_l (φ − φ(z_l))`).

use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::Deserialize;

use crate::autodiff::curvature::{Curvature, CurvatureMethod};
use crate::autodiff::jet::Jet;
use crate::autodiff::Graph;
use crate::device::{self, Dev, Mat};
use crate::error::{require_at_least, require_positive, ConfigError};
use crate::model::{GaussianProposal, ModelFamily, ScoreModel, Terms};
use crate::nn::{Activation, Mlp, MlpCache, Param};
use crate::registry::ModelConfig;

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

/// Settings of `dkef`.
#[derive(Debug, Clone, Deserialize)]
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
    /// Initial standard deviation `s` of the base `q₀ = N(0, s²I)` (default 2).
    #[serde(default = "default_base_std")]
    pub base_std: f64,
    /// Feature activation (default `Softplus`).
    #[serde(default)]
    pub activation: Activation,
    /// Add the bias-free linear skip `xW` to the features (default true).
    #[serde(default = "default_true")]
    pub skip: bool,
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
    fn new(dev: &Dev, dim: usize, cfg: &DkefConfig, rng: &mut ChaCha8Rng) -> Self {
        let mut widths = vec![dim];
        widths.extend(std::iter::repeat_n(cfg.features, cfg.layers));
        let phi = Mlp::new(dev, "features", &widths, cfg.activation, rng).with_activated_output();
        let skip = cfg.skip.then(|| {
            Param::uniform(
                dev,
                "features.skip.weight",
                dim,
                cfg.features,
                1.0 / (dim as f64).sqrt(),
                rng,
            )
        });
        let z: Vec<f64> = (0..cfg.inducing_points * dim)
            .map(|_| StandardNormal.sample(&mut *rng))
            .collect();
        let k = cfg.log10_bandwidths.len();
        Self {
            phi,
            skip,
            inducing: Param {
                name: "inducing_points".into(),
                value: device::to_mat(dev, z, cfg.inducing_points, dim),
            },
            alpha: Param::uniform(dev, "alpha", cfg.inducing_points, 1, 0.1, rng),
            log10_bandwidth: Param {
                name: "log10_bandwidth".into(),
                value: device::to_mat(dev, cfg.log10_bandwidths.clone(), 1, k),
            },
            kernel_logits: Param::filled(dev, "kernel_weight_logits", 1, k, 0.0),
            log_base_std: Param::filled(dev, "log_base_std", 1, 1, cfg.base_std.ln()),
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

    /// Column `k` of a `1 × K` parameter as a `1 × 1` matrix on the graph.
    fn entry(g: &mut Graph, row: &Mat, k: usize) -> Mat {
        let kk = device::shape(row).1;
        let mut e = vec![0.0; kk];
        e[k] = 1.0;
        let sel = g.constant(e, kk, 1);
        g.matmul(row, &sel)
    }

    fn forward(
        &self,
        g: &mut Graph,
        x: &Mat,
        v: Option<&Mat>,
        order: usize,
        keep: usize,
    ) -> Forward {
        let (n, _) = device::shape(x);
        let l = self.inducing.shape().0;
        let xj = Jet::seed(x.clone(), v.cloned(), order);
        let (phi, cache) = self.features(g, xj.clone(), keep);
        let (phiz, _) = self.features(g, Jet::constant(self.inducing.value.clone(), 0), 0);
        let phiz = phiz.value;
        // Squared distances ‖φ − φ(z_l)‖² as a jet (n × L).
        let sq = phi.square(g).sum_cols(g);
        let ones = g.filled(1, l, 1.0);
        let sqb = sq.matmul(g, &ones);
        let phiz_t = g.transpose(&phiz);
        let cross = phi.matmul(g, &phiz_t).scale(g, -2.0);
        let mut dist = sqb.add(g, &cross);
        let z2 = g.square(&phiz);
        let z2 = g.sum_cols(&z2);
        let z2 = g.transpose(&z2);
        dist.value = g.add_row(&dist.value, &z2);
        // Kernel weights and scales.
        let logits = &self.kernel_logits.value;
        let e = g.exp(logits);
        let esum = g.sum_cols(&e);
        let kk = device::shape(logits).1;
        let esum = g.repeat_scalar(&esum, 1, kk);
        let w = g.div(&e, &esum);
        // c_k = ½·10^{−ℓ_k}.
        let c = g.scale(&self.log10_bandwidth.value, -std::f64::consts::LN_10);
        let c = g.exp(&c);
        let c = g.scale(&c, 0.5);
        let alpha_row = g.transpose(&self.alpha.value);
        let alpha_rows = g.repeat_row(&alpha_row, n);
        let mut mix: Option<Jet> = None;
        let mut b: Option<Mat> = None;
        let mut rank_one: Option<Mat> = None;
        for k in 0..kk {
            let ck = Self::entry(g, &c, k);
            let wk = Self::entry(g, &w, k);
            let neg_c = g.neg(&ck);
            let neg_c = g.repeat_scalar(&neg_c, n, l);
            let kern = dist.mul(g, &Jet::constant(neg_c, dist.order)).exp(g);
            let wkm = g.repeat_scalar(&wk, n, l);
            let term = kern.mul(g, &Jet::constant(wkm.clone(), kern.order));
            if keep >= 1 {
                // b += (−2 c_k) w_k K_k ∘ α.
                let cw = g.mul(&ck, &wk);
                let cw = g.scale(&cw, -2.0);
                let cw = g.repeat_scalar(&cw, n, l);
                let t = g.mul(&kern.value, &cw);
                let t = g.mul(&t, &alpha_rows);
                b = Some(match b {
                    Some(acc) => g.add(&acc, &t),
                    None => t,
                });
            }
            if keep >= 2 {
                // rank-one coefficient += 4 c_k² w_k K_k ∘ α.
                let c2 = g.square(&ck);
                let cw = g.mul(&c2, &wk);
                let cw = g.scale(&cw, 4.0);
                let cw = g.repeat_scalar(&cw, n, l);
                let t = g.mul(&kern.value, &cw);
                let t = g.mul(&t, &alpha_rows);
                rank_one = Some(match rank_one {
                    Some(acc) => g.add(&acc, &t),
                    None => t,
                });
            }
            mix = Some(match mix {
                Some(acc) => acc.add(g, &term),
                None => term,
            });
        }
        let f = mix
            .expect("at least one kernel")
            .matmul(g, &self.alpha.value);
        // log q₀ = −‖x‖²/(2s²).
        let m2 = g.scale(&self.log_base_std.value, -2.0);
        let inv_var = g.exp(&m2);
        let half = g.scale(&inv_var, -0.5);
        let half = g.repeat_scalar(&half, n, 1);
        let q0 = xj.square(g).sum_cols(g);
        let q0 = q0.mul(g, &Jet::constant(half, q0.order));
        Forward {
            logp: f.add(g, &q0),
            phi: phi.value,
            cache,
            phiz,
            b: b.unwrap_or_else(|| g.filled(n, l, 0.0)),
            rank_one,
            inv_var,
        }
    }

    /// ∇_φ of the kernel sum: `rowsum(b)∘φ − b φ(z)`.
    fn grad_phi(g: &mut Graph, fw: &Forward) -> Mat {
        let bs = g.sum_cols(&fw.b);
        let a = g.mul_col(&fw.phi, &bs);
        let bz = g.matmul(&fw.b, &fw.phiz);
        g.sub(&a, &bz)
    }

    /// `−x/s²`, the base measure's score.
    fn base_score(g: &mut Graph, x: &Mat, inv_var: &Mat) -> Mat {
        let (n, d) = device::shape(x);
        let iv = g.repeat_scalar(inv_var, n, d);
        let t = g.mul(x, &iv);
        g.neg(&t)
    }

    fn score_from(&self, g: &mut Graph, x: &Mat, fw: &Forward) -> Mat {
        let gphi = Self::grad_phi(g, fw);
        let mut s = self.phi.vjp(g, &fw.cache, &gphi);
        if let Some(w) = &self.skip {
            let wt = g.transpose(&w.value);
            let t = g.matmul(&gphi, &wt);
            s = g.add(&s, &t);
        }
        let base = Self::base_score(g, x, &fw.inv_var);
        g.add(&s, &base)
    }
}

impl ScoreModel for Dkef {
    fn dim(&self) -> usize {
        self.inducing.shape().1
    }
    fn family(&self) -> ModelFamily {
        ModelFamily::Energy
    }
    fn params(&self) -> Vec<&Param> {
        let mut p = self.phi.params();
        if let Some(s) = &self.skip {
            p.push(s);
        }
        p.extend([
            &self.inducing,
            &self.alpha,
            &self.log10_bandwidth,
            &self.kernel_logits,
            &self.log_base_std,
        ]);
        p
    }
    fn params_mut(&mut self) -> Vec<&mut Param> {
        let mut p = self.phi.params_mut();
        if let Some(s) = &mut self.skip {
            p.push(s);
        }
        p.extend([
            &mut self.inducing,
            &mut self.alpha,
            &mut self.log10_bandwidth,
            &mut self.kernel_logits,
            &mut self.log_base_std,
        ]);
        p
    }
    fn score(&self, g: &mut Graph, x: &Mat) -> Mat {
        let fw = self.forward(g, x, None, 0, 1);
        self.score_from(g, x, &fw)
    }
    fn terms(&self, g: &mut Graph, x: &Mat, v: &Mat, want_score: bool) -> Terms {
        let fw = self.forward(g, x, Some(v), 2, usize::from(want_score));
        let score = want_score.then(|| self.score_from(g, x, &fw));
        Terms {
            vs: fw.logp.d1_or_zero(g),
            vhv: fw.logp.d2_or_zero(g),
            score,
        }
    }
    fn log_density(&self, g: &mut Graph, x: &Mat) -> Option<Mat> {
        Some(self.forward(g, x, None, 0, 0).logp.value)
    }
    fn curvature(
        &self,
        g: &mut Graph,
        x: &Mat,
        method: &mut CurvatureMethod<'_>,
    ) -> Option<(Mat, Mat)> {
        let fw = self.forward(g, x, None, 0, 2);
        let (n, d) = device::shape(x);
        let f = device::shape(&fw.phi).1;
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
        let mut at_x = self.phi.curvature(g, &fw.cache, at_phi.clone(), method);
        if let Some(w) = &self.skip {
            let skip = at_phi.linear(g, &w.value);
            at_x = at_x.merge(g, skip);
        }
        let base_grad = Self::base_score(g, x, &fw.inv_var);
        let neg_iv = g.neg(&fw.inv_var);
        let base_diag = g.repeat_scalar(&neg_iv, n, d);
        let at_x = at_x.add_diagonal(g, Some(&base_grad), &base_diag, method);
        let diag = at_x.diagonal(g);
        Some((at_x.grad, diag))
    }
    fn supports_curvature(&self) -> bool {
        true
    }
    fn importance_proposal(&self) -> Option<GaussianProposal> {
        Some(GaussianProposal {
            mean: vec![0.0; self.dim()],
            std: device::scalar(&self.log_base_std.value).exp(),
        })
    }
    fn data_init_points(&self) -> usize {
        self.inducing.shape().0
    }
    fn init_from_data(&mut self, x: &[f64]) {
        let (l, d) = self.inducing.shape();
        if x.len() == l * d {
            let dev = self.inducing.value.device().clone();
            self.inducing.value = device::to_mat(&dev, x.to_vec(), l, d);
        }
    }
}

impl ModelConfig for DkefConfig {
    fn build(
        &self,
        dev: &Dev,
        dim: usize,
        rng: &mut ChaCha8Rng,
    ) -> Result<Box<dyn ScoreModel>, ConfigError> {
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
        Ok(Box::new(Dkef::new(dev, dim, self, rng)))
    }
}

crate::register_plugin!(
    ModelConfig,
    "dkef",
    "deep kernel exponential family: kernel mixture on learned features, inducing points, Gaussian base",
    "(features: 30, layers: 3, inducing_points: 200, log10_bandwidths: [0.0, 0.5185, 1.0], base_std: 2.0)",
    DkefConfig
);
