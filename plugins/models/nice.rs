//! `nice`: NICE, a normalizing flow of additive couplings (Dinh, Krueger &
//! Bengio 2014), as the SSM paper trains it on MNIST:
//!
//! * `couplings` additive coupling layers. Layer `i` reads one half of the
//!   coordinates and shifts the other: layer 0 updates the **odd**
//!   coordinates from the **even** ones (`y_odd = x_odd + m₀(x_even)`),
//!   layer 1 the even from the odd, and so on. Each `mᵢ` is a core [`Mlp`]
//!   with `hidden_layers` × `hidden_units` smooth units and a linear output.
//! * a diagonal scaling `h = y ∘ exp(s)` (`s` initialised at 0);
//! * a factorized prior on `h`: standard logistic (default),
//!   `log p(h) = −Σ (softplus(h) + softplus(−h))`, or standard Gaussian.
//!
//! Couplings have unit Jacobian determinant, so
//! `log p(x) = log p_prior(h(x)) + Σ s` exactly: the model is normalized, can
//! be trained by maximum likelihood (`mle`) and sampled by inverting the map.
//!
//! Data flow: the halves are picked and put back with constant 0/1 selection
//! matrices (`z = y·S_in`, `y ← y + m(z)·S_outᵀ`) through [`Jet::matmul`], so
//! the second-order jets of `log p` along `v` are ordinary tape-tracked jet
//! ops. The full score is a hand-written vector–Jacobian product back through
//! the prior, the scaling and the couplings (`Mlp::vjp`), and the curvature
//! estimates for `approx_bp`/`cp` walk the same path backwards.
//!
//! Approximate backprop is exact only where no linear map mixes curvature
//! that the method has already reduced to its diagonal: for a single coupling
//! it is exact on the coordinates that coupling does not read, and on all
//! coordinates when every hidden layer has one unit; with wider hidden layers
//! the curvature coming down from the prior through the MLP's output layer is
//! a full matrix and approx-BP keeps only its diagonal (see `tests/nice.rs`).

use std::sync::Arc;

use rand::distributions::Open01;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use crate::autodiff::curvature::{Curvature, CurvatureMethod};
use crate::autodiff::jet::{JetKind, Slopes};
use crate::autodiff::{Graph, Jet};
use crate::device::{Device, Mat};
use crate::error::{require_at_least, ConfigError};
use crate::model::{CurvatureModel, EnergyModel, FlowModel, ScoreModel, Terms, TraceTerms};
use crate::nn::{Activation, Mlp, MlpCache, Param};
use crate::registry::{BuiltModel, ModelConfig};

fn default_couplings() -> usize {
    4
}
fn default_hidden_layers() -> usize {
    5
}
fn default_hidden_units() -> usize {
    1000
}

/// The factorized prior on the flow's output `h`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum NicePrior {
    /// Standard logistic per coordinate (as in NICE on MNIST).
    #[default]
    Logistic,
    /// Standard normal per coordinate.
    Gaussian,
}

/// Settings of `nice`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NiceConfig {
    /// Number of additive coupling layers (default 4), alternating halves.
    #[serde(default = "default_couplings")]
    pub couplings: usize,
    /// Hidden layers of each coupling MLP (default 5).
    #[serde(default = "default_hidden_layers")]
    pub hidden_layers: usize,
    /// Units of every hidden layer (default 1000).
    #[serde(default = "default_hidden_units")]
    pub hidden_units: usize,
    /// Smooth activation of the coupling MLPs (default `Softplus`).
    #[serde(default)]
    pub activation: Activation,
    /// Prior on the output (default `Logistic`).
    #[serde(default)]
    pub prior: NicePrior,
}

impl Default for NiceConfig {
    fn default() -> Self {
        Self {
            couplings: default_couplings(),
            hidden_layers: default_hidden_layers(),
            hidden_units: default_hidden_units(),
            activation: Activation::default(),
            prior: NicePrior::default(),
        }
    }
}

impl NiceConfig {
    /// Checks every setting and the data dimension, naming the field.
    pub fn validate(&self, dim: usize) -> Result<(), ConfigError> {
        if dim < 2 {
            return Err(ConfigError::new(
                "",
                format!(
                    "needs data of dimension ≥ 2 (couplings split the coordinates into even and odd halves), got {dim}"
                ),
            ));
        }
        require_at_least("couplings", self.couplings, 1)?;
        require_at_least("hidden_layers", self.hidden_layers, 1)?;
        require_at_least("hidden_units", self.hidden_units, 1)?;
        Mlp::check_repeated_memory(
            ("hidden_units", "hidden_layers"),
            dim,
            self.hidden_units,
            self.hidden_layers,
            Some(dim),
        )?;
        crate::budget::require_fits(
            "couplings",
            "the couplings' parameters, gradients and optimizer state",
            crate::budget::bytes(&[
                self.couplings,
                self.hidden_units,
                self.hidden_units,
                self.hidden_layers,
                32,
            ]),
        )?;
        Ok(())
    }
}

/// A NICE flow.
pub struct Nice {
    dim: usize,
    couplings: Vec<Mlp>,
    scale: Param,
    prior: NicePrior,
    /// `half[p]`: the coordinates of parity `p` (0 even, 1 odd).
    half: [Arc<[usize]>; 2],
}

crate::module!(Nice { couplings, scale });

/// What a forward pass keeps for the backward passes.
struct Forward {
    /// Jet of `h`, the flow's output.
    h: Jet,
    /// One MLP cache per coupling.
    caches: Vec<MlpCache>,
    /// `exp(s)` (`1 × D`).
    exp_s: Mat,
}

const HALF_LN_2PI: f64 = 0.918_938_533_204_672_7;

impl Nice {
    /// A NICE flow on `dim`-dimensional data; checks the settings first.
    pub fn new(
        dev: &Device,
        dim: usize,
        cfg: &NiceConfig,
        rng: &mut impl Rng,
    ) -> Result<Self, ConfigError> {
        cfg.validate(dim)?;
        let half = |p: usize| -> Arc<[usize]> { (0..dim).filter(|j| j % 2 == p).collect() };
        let half = [half(0), half(1)];
        let couplings = (0..cfg.couplings)
            .map(|i| {
                let (read, write) = Self::halves(i);
                let mut widths = vec![half[read].len()];
                widths.extend(std::iter::repeat_n(cfg.hidden_units, cfg.hidden_layers));
                widths.push(half[write].len());
                Mlp::new(dev, &widths, cfg.activation, rng)
            })
            .collect();
        Ok(Self {
            dim,
            couplings,
            scale: Param::filled(dev, 1, dim, 0.0),
            prior: cfg.prior,
            half,
        })
    }

    /// `(read, written)` parities of coupling `i`: layer 0 reads the even
    /// coordinates and shifts the odd ones, layer 1 the reverse, …
    fn halves(i: usize) -> (usize, usize) {
        let read = i % 2;
        (read, 1 - read)
    }

    /// Pushes a jet of `x` through the couplings and the scaling; `keep` as
    /// in [`Mlp::jet_cached`].
    fn forward_jet(&self, g: &mut Graph, x: Jet, keep: usize) -> Forward {
        let mut y = x;
        let mut caches = Vec::with_capacity(self.couplings.len());
        for (i, m) in self.couplings.iter().enumerate() {
            let (read, write) = Self::halves(i);
            let z = y.select_cols(g, &self.half[read]);
            let (u, cache) = m.jet_cached(g, z, keep);
            let shift = u.scatter_cols(g, &self.half[write], self.dim);
            y = y.add(g, &shift);
            caches.push(cache);
        }
        let exp_s = g.exp(&self.scale.value);
        let h = y.mul_row(g, &exp_s);
        Forward { h, caches, exp_s }
    }

    /// The prior's log-density per coordinate and, up to `order`, its first
    /// and second derivatives at `h`.
    fn prior_derivs(&self, g: &mut Graph, h: &Mat, order: usize) -> (Mat, Slopes) {
        match self.prior {
            NicePrior::Logistic => {
                // −softplus(h) − softplus(−h); derivatives −tanh(h/2), −½sech²(h/2).
                let a = g.softplus(h);
                let nh = g.neg(h);
                let b = g.softplus(&nh);
                let ab = g.add(&a, &b);
                let f0 = g.neg(&ab);
                if order == 0 {
                    return (f0, Slopes { f1: None, f2: None });
                }
                let half = g.scale(h, 0.5);
                let t = g.tanh(&half);
                let f1 = g.neg(&t);
                let f2 = (order >= 2).then(|| {
                    let t2 = g.square(&t);
                    let t2 = g.scale(&t2, 0.5);
                    g.add_scalar(&t2, -0.5)
                });
                (f0, Slopes { f1: Some(f1), f2 })
            }
            NicePrior::Gaussian => {
                let sq = g.square(h);
                let sq = g.scale(&sq, -0.5);
                let f0 = g.add_scalar(&sq, -HALF_LN_2PI);
                let f1 = (order >= 1).then(|| g.neg(h));
                let f2 = (order >= 2).then(|| {
                    let (r, c) = h.shape();
                    g.filled(r, c, -1.0)
                });
                (f0, Slopes { f1, f2 })
            }
        }
    }

    /// `log p` as a jet from the prior's value and slopes: `Σ_j ℓ(h_j) + Σ s`.
    fn log_p(&self, g: &mut Graph, fw: &Forward, f0: Mat, slopes: &Slopes) -> Jet {
        let mut lp = fw.h.through(g, f0, slopes).sum_cols(g);
        let ssum = g.sum_cols(&self.scale.value);
        lp.value = g.add_scalar_mat(&lp.value, &ssum);
        lp
    }

    /// The score by a vector–Jacobian product from `∂ log p/∂h = ℓ'(h)`
    /// back through the scaling and the couplings (tape-tracked).
    fn score_from(&self, g: &mut Graph, fw: &Forward, prior_grad: &Mat) -> Mat {
        let mut gy = g.mul_row(prior_grad, &fw.exp_s);
        for (i, m) in self.couplings.iter().enumerate().rev() {
            let (read, write) = Self::halves(i);
            let gu = g.select_cols(&gy, &self.half[write]);
            let gz = m.vjp(g, &fw.caches[i], &gu);
            let back = g.scatter_cols(&gz, &self.half[read], self.dim);
            gy = g.add(&gy, &back);
        }
        gy
    }

    /// The flow's forward map `h(x)` (`n × D`).
    pub fn forward(&self, g: &mut Graph, x: &Mat) -> Mat {
        self.forward_jet(g, Jet::value(x.clone()), 0).h.value
    }

    /// The inverse map `x(h)`: unscale, then undo the couplings in reverse
    /// order (`x_write = y_write − m(y_read)`).
    pub fn inverse(&self, g: &mut Graph, h: &Mat) -> Mat {
        let ns = g.neg(&self.scale.value);
        let ens = g.exp(&ns);
        let mut y = g.mul_row(h, &ens);
        for (i, m) in self.couplings.iter().enumerate().rev() {
            let (read, write) = Self::halves(i);
            let z = g.select_cols(&y, &self.half[read]);
            let u = m.forward(g, &z);
            let shift = g.scatter_cols(&u, &self.half[write], self.dim);
            y = g.sub(&y, &shift);
        }
        y
    }

    /// `n` independent draws from the prior (row-major `n × D`): logistic by
    /// the inverse CDF `ln u − ln(1 − u)`, `u ~ U(0, 1)`; Gaussian directly.
    pub fn draw_prior(&self, rng: &mut dyn rand::RngCore, n: usize) -> Vec<f64> {
        let mut rng = rng;
        (0..n * self.dim)
            .map(|_| match self.prior {
                NicePrior::Logistic => {
                    let u: f64 = Open01.sample(&mut rng);
                    u.ln() - (-u).ln_1p()
                }
                NicePrior::Gaussian => StandardNormal.sample(&mut rng),
            })
            .collect()
    }
}

impl Nice {
    fn log_p_jet(&self, g: &mut Graph, x: Jet, keep: usize) -> (Jet, Option<Mat>, Forward) {
        let order = x.order();
        let fw = self.forward_jet(g, x, keep);
        let (f0, slopes) = self.prior_derivs(g, &fw.h.value, order.max(keep.min(1)));
        let lp = self.log_p(g, &fw, f0, &slopes);
        (lp, slopes.f1, fw)
    }
}

impl ScoreModel for Nice {
    fn dim(&self) -> usize {
        self.dim
    }
    fn score(&self, g: &mut Graph, x: &Mat) -> Mat {
        let (_, f1, fw) = self.log_p_jet(g, Jet::value(x.clone()), 1);
        self.score_from(g, &fw, f1.as_ref().expect("first derivative requested"))
    }
    fn terms(&self, g: &mut Graph, x: &Mat, v: &Mat, want_score: bool) -> Terms {
        let jet = Jet::along(x.clone(), v.clone(), JetKind::Second);
        let (lp, f1, fw) = self.log_p_jet(g, jet, usize::from(want_score));
        let score = want_score
            .then(|| self.score_from(g, &fw, f1.as_ref().expect("first derivative requested")));
        Terms {
            vs: lp.d1_or_zero(g),
            vhv: lp.d2_or_zero(g),
            score,
        }
    }
    fn trace_terms(&self, g: &mut Graph, x: &Mat, start: usize, count: usize) -> TraceTerms {
        let jet = Jet::basis(x.clone(), start, count, JetKind::Trace);
        let (lp, _, _) = self.log_p_jet(g, jet, 0);
        TraceTerms {
            vs: lp.d1_or_zero(g),
            trace: lp.d2_or_zero(g),
        }
    }
    fn trace_width(&self) -> usize {
        self.couplings
            .iter()
            .map(|m| m.max_width())
            .max()
            .unwrap_or(1)
            .max(self.dim)
    }
    crate::capabilities!(energy, flow, curvature);
}

impl EnergyModel for Nice {
    fn log_density(&self, g: &mut Graph, x: &Mat) -> Mat {
        self.log_p_jet(g, Jet::value(x.clone()), 0).0.value
    }
}

impl FlowModel for Nice {
    fn sample(&self, dev: &Device, rng: &mut dyn rand::RngCore, n: usize) -> Vec<f64> {
        let h = self.draw_prior(rng, n);
        let mut g = Graph::inference(dev);
        let hm = g.constant(h, n, self.dim);
        self.inverse(&mut g, &hm).to_host()
    }
}

impl CurvatureModel for Nice {
    fn curvature(&self, g: &mut Graph, x: &Mat, method: &mut CurvatureMethod<'_>) -> (Mat, Mat) {
        let fw = self.forward_jet(g, Jet::value(x.clone()), 2);
        let (_, d) = self.prior_derivs(g, &fw.h.value, 2);
        let f1 = d.f1.expect("first derivative requested");
        let f2 = d.f2.expect("second derivative requested");
        // The prior seen from the scaling's input y (h = y∘eˢ is linear with a
        // diagonal matrix): gradient ℓ'(h)eˢ, diagonal Hessian ℓ''(h)e^{2s}.
        let grad = g.mul_row(&f1, &fw.exp_s);
        let e2 = g.square(&fw.exp_s);
        let hess = g.mul_row(&f2, &e2);
        let mut c = Curvature::with_gradient(g, grad, method).add_diagonal(g, None, &hess, method);
        for (i, m) in self.couplings.iter().enumerate().rev() {
            let (read, write) = Self::halves(i);
            // y_out = y_in + m(y_in[:, read])[:, write]: identity path plus MLP path.
            let through = c.clone().select_cols(g, &self.half[write]);
            let through = m.curvature(g, &fw.caches[i], through, method);
            let through = through.scatter_cols(g, &self.half[read], self.dim);
            c = c.merge(g, through);
        }
        let diag = c.diagonal(g);
        (c.grad, diag)
    }
}

impl ModelConfig for NiceConfig {
    fn build(
        &self,
        dev: &Device,
        dim: usize,
        rng: &mut ChaCha8Rng,
    ) -> Result<BuiltModel, ConfigError> {
        Ok(BuiltModel::Trained(Box::new(Nice::new(
            dev, dim, self, rng,
        )?)))
    }
}

crate::register_plugin!(
    ModelConfig,
    "nice",
    "NICE flow: additive couplings on even/odd halves (MLPs), diagonal scaling, logistic or Gaussian prior; normalized",
    "(couplings: 4, hidden_layers: 5, hidden_units: 1000, activation: Softplus, prior: Logistic)",
    NiceConfig
);
