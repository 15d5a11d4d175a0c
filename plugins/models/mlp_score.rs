//! `mlp_score`: a score network `h: ℝᴰ → ℝᴰ`, an MLP used directly as the score.
//!
//! Terms along `v` come from a first-order jet: `vᵀh(x)` and `vᵀ(J_h v)`,
//! one value stream for all directions; along basis directions the jet's
//! tangents give the Jacobian's diagonal. Built conditionally (`h(z | c)`,
//! for a task that asks for context columns), the network reads rows
//! `[z, c]` and its jets move `z` only: the tangent is `v` padded with
//! zeros over the context columns.

use std::sync::Arc;

use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::autodiff::jet::JetKind;
use crate::autodiff::{Graph, Jet};
use crate::device::{Device, Mat};
use crate::error::{require_at_least, ConfigError};
use crate::model::{ScoreModel, Terms, TraceTerms};
use crate::nn::{Activation, Mlp};
use crate::registry::{BuiltModel, ModelConfig};

fn default_hidden() -> Vec<usize> {
    vec![128, 128]
}

/// Settings of `mlp_score`.
#[derive(Debug, Clone, Serialize, Deserialize)]
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
    /// Columns `0..dim` of an input row (where the tangent goes).
    own_cols: Arc<[usize]>,
}

crate::module!(MlpScore { net as "score_net" });

impl MlpScore {
    /// A network with the given settings for data of dimension `dim`.
    pub fn new(dev: &Device, dim: usize, cfg: &MlpScoreConfig, rng: &mut ChaCha8Rng) -> Self {
        Self::conditional(dev, dim, 0, cfg, rng)
    }

    /// A network `h(z | c)` for `z ∈ ℝ^dim` given `context` columns `c`.
    pub fn conditional(
        dev: &Device,
        dim: usize,
        context: usize,
        cfg: &MlpScoreConfig,
        rng: &mut ChaCha8Rng,
    ) -> Self {
        let mut widths = vec![dim + context];
        widths.extend(&cfg.hidden);
        widths.push(dim);
        Self {
            net: Mlp::new(dev, &widths, cfg.activation, rng),
            dim,
            context,
            own_cols: (0..dim).collect(),
        }
    }

    /// The tangent of the input rows: `v`, zero over the context columns.
    fn input_tangent(&self, g: &mut Graph, v: &Mat) -> Mat {
        if self.context == 0 {
            return v.clone();
        }
        g.scatter_cols(v, &self.own_cols, self.dim + self.context)
    }
}

impl ScoreModel for MlpScore {
    fn dim(&self) -> usize {
        self.dim
    }
    fn context_dim(&self) -> usize {
        self.context
    }
    fn score(&self, g: &mut Graph, x: &Mat) -> Mat {
        self.net.forward(g, x)
    }
    fn terms(&self, g: &mut Graph, x: &Mat, v: &Mat, want_score: bool) -> Terms {
        let tangent = self.input_tangent(g, v);
        let out = self
            .net
            .jet(g, Jet::along(x.clone(), tangent, JetKind::First));
        let hv = g.mul_blocks(v, &out.value);
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
    fn trace_terms(&self, g: &mut Graph, x: &Mat, start: usize, count: usize) -> TraceTerms {
        let n = x.rows();
        let out = self
            .net
            .jet(g, Jet::basis(x.clone(), start, count, JetKind::First));
        if count == 0 {
            let vs = g.filled(0, 1, 0.0);
            let trace = g.filled(n, 1, 0.0);
            return TraceTerms { vs, trace };
        }
        let cols: Arc<[usize]> = (start..start + count).collect();
        let s = g.select_cols(&out.value, &cols);
        let st = g.transpose(&s);
        let vs = g.reshape(&st, count * n, 1);
        let jv = out.d1_or_zero(g);
        let trace = g.block_diagonal_sum(&jv, start, count);
        TraceTerms { vs, trace }
    }
    fn trace_width(&self) -> usize {
        self.net.max_width()
    }
    fn width_per_point(&self) -> usize {
        self.net.total_width()
    }
}

impl MlpScoreConfig {
    fn check(&self, input: usize, output: usize) -> Result<(), ConfigError> {
        for (i, &w) in self.hidden.iter().enumerate() {
            require_at_least(&format!("hidden[{i}]"), w, 1)?;
        }
        let widths: Vec<usize> = std::iter::once(input)
            .chain(self.hidden.iter().copied())
            .chain([output])
            .collect();
        Mlp::check_memory("hidden", &widths)
    }
}

impl ModelConfig for MlpScoreConfig {
    fn build(
        &self,
        dev: &Device,
        dim: usize,
        rng: &mut ChaCha8Rng,
    ) -> Result<BuiltModel, ConfigError> {
        self.check(dim, dim)?;
        Ok(BuiltModel::Trained(Box::new(MlpScore::new(
            dev, dim, self, rng,
        ))))
    }

    fn build_conditional(
        &self,
        dev: &Device,
        dim: usize,
        context: usize,
        rng: &mut ChaCha8Rng,
    ) -> Result<BuiltModel, ConfigError> {
        self.check(dim.saturating_add(context), dim)?;
        Ok(BuiltModel::Trained(Box::new(MlpScore::conditional(
            dev, dim, context, self, rng,
        ))))
    }
}

crate::register_plugin!(
    ModelConfig,
    "mlp_score",
    "score network h: R^D -> R^D (an MLP used directly as the score)",
    "(hidden: [128, 128], activation: Softplus)",
    MlpScoreConfig
);
