//! `mlp_score`: a score network `h: ℝᴰ → ℝᴰ`, an MLP used directly as the score.
//!
//! Terms along `v` come from a first-order jet: `vᵀh(x)` and `vᵀ(J_h v)`.
//! Built conditionally (`h(z | c)`, for a task that asks for context
//! columns), the network reads rows `[z, c]` and its jets move `z` only: the
//! tangent is `v` padded with zeros over the context columns.

use rand_chacha::ChaCha8Rng;
use serde::Deserialize;

use crate::autodiff::{Graph, Jet};
use crate::device::{Dev, Mat};
use crate::error::{require_at_least, ConfigError};
use crate::model::{ModelFamily, ScoreModel, Terms};
use crate::nn::{Activation, Mlp, Param};
use crate::registry::ModelConfig;

fn default_hidden() -> Vec<usize> {
    vec![128, 128]
}

/// Settings of `mlp_score`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MlpScoreConfig {
    /// Hidden layer widths (default `[128, 128]`).
    #[serde(default = "default_hidden")]
    pub hidden: Vec<usize>,
    /// Nonlinearity between layers (default `Softplus`).
    #[serde(default)]
    pub activation: Activation,
}

/// A score network, optionally conditional.
pub struct MlpScore {
    net: Mlp,
    dim: usize,
    context: usize,
}

impl MlpScore {
    /// A network with the given settings for data of dimension `dim`.
    pub fn new(dev: &Dev, dim: usize, cfg: &MlpScoreConfig, rng: &mut ChaCha8Rng) -> Self {
        Self::conditional(dev, dim, 0, cfg, rng)
    }

    /// A network `h(z | c)` for `z ∈ ℝ^dim` given `context` columns `c`.
    pub fn conditional(
        dev: &Dev,
        dim: usize,
        context: usize,
        cfg: &MlpScoreConfig,
        rng: &mut ChaCha8Rng,
    ) -> Self {
        let mut widths = vec![dim + context];
        widths.extend(&cfg.hidden);
        widths.push(dim);
        Self {
            net: Mlp::new(dev, "score_net", &widths, cfg.activation, rng),
            dim,
            context,
        }
    }

    /// The tangent of the input rows: `v`, zero over the context columns.
    fn input_tangent(&self, g: &Graph, v: &Mat) -> Mat {
        if self.context == 0 {
            return v.clone();
        }
        let (n, d) = crate::device::shape(v);
        let host = crate::device::to_host(v);
        let width = d + self.context;
        let mut padded = vec![0.0; n * width];
        for (out, row) in padded.chunks_mut(width).zip(host.chunks(d)) {
            out[..d].copy_from_slice(row);
        }
        g.constant(padded, n, width)
    }
}

impl ScoreModel for MlpScore {
    fn dim(&self) -> usize {
        self.dim
    }
    fn context_dim(&self) -> usize {
        self.context
    }
    fn family(&self) -> ModelFamily {
        ModelFamily::ScoreNetwork
    }
    fn params(&self) -> Vec<&Param> {
        self.net.params()
    }
    fn params_mut(&mut self) -> Vec<&mut Param> {
        self.net.params_mut()
    }
    fn score(&self, g: &mut Graph, x: &Mat) -> Mat {
        self.net.forward(g, x)
    }
    fn terms(&self, g: &mut Graph, x: &Mat, v: &Mat, want_score: bool) -> Terms {
        let tangent = self.input_tangent(g, v);
        let out = self.net.jet(g, Jet::seed(x.clone(), Some(tangent), 1));
        let hv = g.mul(&out.value, v);
        let vs = g.sum_cols(&hv);
        let jv = out.d1_or_zero(g);
        let vjv = g.mul(&jv, v);
        let vhv = g.sum_cols(&vjv);
        Terms {
            vs,
            vhv,
            score: want_score.then_some(out.value),
        }
    }
}

impl ModelConfig for MlpScoreConfig {
    fn build(
        &self,
        dev: &Dev,
        dim: usize,
        rng: &mut ChaCha8Rng,
    ) -> Result<Box<dyn ScoreModel>, ConfigError> {
        for (i, &w) in self.hidden.iter().enumerate() {
            require_at_least(&format!("hidden[{i}]"), w, 1)?;
        }
        Ok(Box::new(MlpScore::new(dev, dim, self, rng)))
    }

    fn build_conditional(
        &self,
        dev: &Dev,
        dim: usize,
        context: usize,
        rng: &mut ChaCha8Rng,
    ) -> Result<Box<dyn ScoreModel>, ConfigError> {
        for (i, &w) in self.hidden.iter().enumerate() {
            require_at_least(&format!("hidden[{i}]"), w, 1)?;
        }
        Ok(Box::new(MlpScore::conditional(
            dev, dim, context, self, rng,
        )))
    }
}

crate::register_plugin!(
    ModelConfig,
    "mlp_score",
    "score network h: R^D -> R^D (an MLP used directly as the score)",
    "(hidden: [128, 128], activation: Softplus)",
    MlpScoreConfig
);
