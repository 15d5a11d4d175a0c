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

use rand::distributions::Open01;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::Deserialize;

use crate::autodiff::curvature::{Curvature, CurvatureMethod};
use crate::autodiff::jet::Derivs;
use crate::autodiff::{Graph, Jet};
use crate::device::{self, Dev, Mat};
use crate::error::{require_at_least, ConfigError};
use crate::model::{ModelFamily, ScoreModel, Terms};
use crate::nn::{Activation, Mlp, MlpCache, Param};
use crate::registry::ModelConfig;

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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum NicePrior {
    /// Standard logistic per coordinate (as in NICE on MNIST).
    #[default]
    Logistic,
    /// Standard normal per coordinate.
    Gaussian,
}

/// Settings of `nice`.
#[derive(Debug, Clone, Deserialize)]
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
        Ok(())
    }
}

/// A NICE flow.
pub struct Nice {
    dim: usize,
    couplings: Vec<Mlp>,
    scale: Param,
    prior: NicePrior,
    /// `select[p]` (`D × |half p|`) picks the coordinates of parity `p`
    /// (0 even, 1 odd): `z = y·select[p]`.
    select: [Mat; 2],
    /// `place[p] = select[p]ᵀ` puts a half back: `y += u·place[p]`.
    place: [Mat; 2],
}

/// What a forward pass keeps for the backward passes.
struct Forward {
    /// Jet of `h`, the flow's output.
    h: Jet,
    /// One MLP cache per coupling.
    caches: Vec<MlpCache>,
    /// `exp(s)` repeated over the rows (`n × D`).
    exp_s: Mat,
}

const HALF_LN_2PI: f64 = 0.918_938_533_204_672_7;

impl Nice {
    /// A NICE flow on `dim`-dimensional data; checks the settings first.
    pub fn new(
        dev: &Dev,
        dim: usize,
        cfg: &NiceConfig,
        rng: &mut impl Rng,
    ) -> Result<Self, ConfigError> {
        cfg.validate(dim)?;
        let half = |p: usize| (0..dim).filter(|j| j % 2 == p).count();
        let couplings = (0..cfg.couplings)
            .map(|i| {
                let (read, write) = Self::halves(i);
                let mut widths = vec![half(read)];
                widths.extend(std::iter::repeat_n(cfg.hidden_units, cfg.hidden_layers));
                widths.push(half(write));
                Mlp::new(dev, &format!("couplings.{i}"), &widths, cfg.activation, rng)
            })
            .collect();
        let select_of = |p: usize| {
            let k = half(p);
            let mut m = vec![0.0; dim * k];
            for c in 0..k {
                m[(2 * c + p) * k + c] = 1.0;
            }
            device::to_mat(dev, m, dim, k)
        };
        let place_of = |p: usize| {
            let k = half(p);
            let mut m = vec![0.0; k * dim];
            for c in 0..k {
                m[c * dim + 2 * c + p] = 1.0;
            }
            device::to_mat(dev, m, k, dim)
        };
        Ok(Self {
            dim,
            couplings,
            scale: Param::filled(dev, "scale", 1, dim, 0.0),
            prior: cfg.prior,
            select: [select_of(0), select_of(1)],
            place: [place_of(0), place_of(1)],
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
        let n = device::shape(&x.value).0;
        let mut y = x;
        let mut caches = Vec::with_capacity(self.couplings.len());
        for (i, m) in self.couplings.iter().enumerate() {
            let (read, write) = Self::halves(i);
            let z = y.matmul(g, &self.select[read]);
            let (u, cache) = m.jet_cached(g, z, keep);
            let shift = u.matmul(g, &self.place[write]);
            y = y.add(g, &shift);
            caches.push(cache);
        }
        let es = g.exp(&self.scale.value);
        let exp_s = g.repeat_row(&es, n);
        let h = y.mul(g, &Jet::constant(exp_s.clone(), y.order));
        Forward { h, caches, exp_s }
    }

    /// The prior's log-density per coordinate and, up to `order`, its first
    /// and second derivatives at `h`.
    fn prior_derivs(&self, g: &mut Graph, h: &Mat, order: usize) -> Derivs {
        match self.prior {
            NicePrior::Logistic => {
                // −softplus(h) − softplus(−h); derivatives −tanh(h/2), −½sech²(h/2).
                let a = g.softplus(h);
                let nh = g.neg(h);
                let b = g.softplus(&nh);
                let ab = g.add(&a, &b);
                let f0 = g.neg(&ab);
                if order == 0 {
                    return Derivs {
                        f0,
                        f1: None,
                        f2: None,
                    };
                }
                let half = g.scale(h, 0.5);
                let t = g.tanh(&half);
                let f1 = g.neg(&t);
                let f2 = (order >= 2).then(|| {
                    let t2 = g.square(&t);
                    let t2 = g.scale(&t2, 0.5);
                    g.add_scalar(&t2, -0.5)
                });
                Derivs {
                    f0,
                    f1: Some(f1),
                    f2,
                }
            }
            NicePrior::Gaussian => {
                let sq = g.square(h);
                let sq = g.scale(&sq, -0.5);
                let f0 = g.add_scalar(&sq, -HALF_LN_2PI);
                let f1 = (order >= 1).then(|| g.neg(h));
                let f2 = (order >= 2).then(|| {
                    let (r, c) = device::shape(h);
                    g.filled(r, c, -1.0)
                });
                Derivs { f0, f1, f2 }
            }
        }
    }

    /// `log p` as a jet from the prior's jet: `Σ_j ℓ(h_j) + Σ s`.
    fn log_p(&self, g: &mut Graph, fw: &Forward, d: Derivs) -> Jet {
        let n = device::shape(&fw.h.value).0;
        let mut lp = fw.h.unary(g, d).sum_cols(g);
        let ssum = g.sum_cols(&self.scale.value);
        let ssum = g.repeat_scalar(&ssum, n, 1);
        lp.value = g.add(&lp.value, &ssum);
        lp
    }

    /// The score by a vector–Jacobian product from `∂ log p/∂h = ℓ'(h)`
    /// back through the scaling and the couplings (tape-tracked).
    fn score_from(&self, g: &mut Graph, fw: &Forward, prior_grad: &Mat) -> Mat {
        let mut gy = g.mul(prior_grad, &fw.exp_s);
        for (i, m) in self.couplings.iter().enumerate().rev() {
            let (read, write) = Self::halves(i);
            let gu = g.matmul(&gy, &self.select[write]);
            let gz = m.vjp(g, &fw.caches[i], &gu);
            let back = g.matmul(&gz, &self.place[read]);
            gy = g.add(&gy, &back);
        }
        gy
    }

    /// The flow's forward map `h(x)` (`n × D`).
    pub fn forward(&self, g: &mut Graph, x: &Mat) -> Mat {
        self.forward_jet(g, Jet::constant(x.clone(), 0), 0).h.value
    }

    /// The inverse map `x(h)`: unscale, then undo the couplings in reverse
    /// order (`x_write = y_write − m(y_read)`).
    pub fn inverse(&self, g: &mut Graph, h: &Mat) -> Mat {
        let n = device::shape(h).0;
        let ns = g.neg(&self.scale.value);
        let ens = g.exp(&ns);
        let ens = g.repeat_row(&ens, n);
        let mut y = g.mul(h, &ens);
        for (i, m) in self.couplings.iter().enumerate().rev() {
            let (read, write) = Self::halves(i);
            let z = g.matmul(&y, &self.select[read]);
            let u = m.forward(g, &z);
            let shift = g.matmul(&u, &self.place[write]);
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

impl ScoreModel for Nice {
    fn dim(&self) -> usize {
        self.dim
    }
    fn family(&self) -> ModelFamily {
        ModelFamily::Energy
    }
    fn params(&self) -> Vec<&Param> {
        let mut p: Vec<&Param> = self.couplings.iter().flat_map(|m| m.params()).collect();
        p.push(&self.scale);
        p
    }
    fn params_mut(&mut self) -> Vec<&mut Param> {
        let mut p: Vec<&mut Param> = self
            .couplings
            .iter_mut()
            .flat_map(|m| m.params_mut())
            .collect();
        p.push(&mut self.scale);
        p
    }
    fn score(&self, g: &mut Graph, x: &Mat) -> Mat {
        let fw = self.forward_jet(g, Jet::constant(x.clone(), 0), 1);
        let d = self.prior_derivs(g, &fw.h.value, 1);
        let f1 = d.f1.expect("first derivative requested");
        self.score_from(g, &fw, &f1)
    }
    fn terms(&self, g: &mut Graph, x: &Mat, v: &Mat, want_score: bool) -> Terms {
        let keep = usize::from(want_score);
        let fw = self.forward_jet(g, Jet::seed(x.clone(), Some(v.clone()), 2), keep);
        let d = self.prior_derivs(g, &fw.h.value, 2);
        let f1 = d.f1.clone();
        let lp = self.log_p(g, &fw, d);
        let score = want_score
            .then(|| self.score_from(g, &fw, f1.as_ref().expect("first derivative requested")));
        Terms {
            vs: lp.d1_or_zero(g),
            vhv: lp.d2_or_zero(g),
            score,
        }
    }
    fn log_density(&self, g: &mut Graph, x: &Mat) -> Option<Mat> {
        let fw = self.forward_jet(g, Jet::constant(x.clone(), 0), 0);
        let d = self.prior_derivs(g, &fw.h.value, 0);
        Some(self.log_p(g, &fw, d).value)
    }
    fn curvature(
        &self,
        g: &mut Graph,
        x: &Mat,
        method: &mut CurvatureMethod<'_>,
    ) -> Option<(Mat, Mat)> {
        let fw = self.forward_jet(g, Jet::constant(x.clone(), 0), 2);
        let d = self.prior_derivs(g, &fw.h.value, 2);
        let f1 = d.f1.expect("first derivative requested");
        let f2 = d.f2.expect("second derivative requested");
        // The prior seen from the scaling's input y (h = y∘eˢ is linear with a
        // diagonal matrix): gradient ℓ'(h)eˢ, diagonal Hessian ℓ''(h)e^{2s}.
        let grad = g.mul(&f1, &fw.exp_s);
        let e2 = g.square(&fw.exp_s);
        let hess = g.mul(&f2, &e2);
        let mut c = Curvature::with_gradient(g, grad, method).add_diagonal(g, None, &hess, method);
        for (i, m) in self.couplings.iter().enumerate().rev() {
            let (read, write) = Self::halves(i);
            // y_out = y_in + m(y_in·S_read)·S_writeᵀ: identity path plus MLP path.
            let through = c.clone().linear(g, &self.place[write]);
            let through = m.curvature(g, &fw.caches[i], through, method);
            let through = through.linear(g, &self.select[read]);
            c = c.merge(g, through);
        }
        let diag = c.diagonal(g);
        Some((c.grad, diag))
    }
    fn supports_curvature(&self) -> bool {
        true
    }
    fn is_normalized(&self) -> bool {
        true
    }
    fn sample(&self, dev: &Dev, rng: &mut dyn rand::RngCore, n: usize) -> Option<Vec<f64>> {
        let h = self.draw_prior(rng, n);
        let mut g = Graph::inference(dev);
        let hm = g.constant(h, n, self.dim);
        Some(device::to_host(&self.inverse(&mut g, &hm)))
    }
}

impl ModelConfig for NiceConfig {
    fn build(
        &self,
        dev: &Dev,
        dim: usize,
        rng: &mut ChaCha8Rng,
    ) -> Result<Box<dyn ScoreModel>, ConfigError> {
        Ok(Box::new(Nice::new(dev, dim, self, rng)?))
    }
}

crate::register_plugin!(
    ModelConfig,
    "nice",
    "NICE flow: additive couplings on even/odd halves (MLPs), diagonal scaling, logistic or Gaussian prior; normalized",
    "(couplings: 4, hidden_layers: 5, hidden_units: 1000, activation: Softplus, prior: Logistic)",
    NiceConfig
);
