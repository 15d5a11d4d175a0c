//! `mlp_energy`: an energy model `log p̃(x) = −E(x)` with `E` an MLP `ℝᴰ → ℝ`.
//!
//! Terms along `v` come from a second-order jet of `log p̃` (one value
//! stream for all directions); the trace along basis directions from a trace
//! jet; the full score `−∇ₓE` (for SSM-VR, DSM and evaluation) from the
//! MLP's tape-tracked vector–Jacobian product, sharing the same forward pass.

use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::autodiff::curvature::{Curvature, CurvatureMethod};
use crate::autodiff::jet::JetKind;
use crate::autodiff::{Graph, Jet};
use crate::device::{Device, Mat};
use crate::error::{require_at_least, ConfigError};
use crate::model::{CurvatureModel, EnergyModel, ScoreModel, Terms, TraceTerms};
use crate::nn::{Activation, Mlp};
use crate::registry::{BuiltModel, ModelConfig};

fn default_hidden() -> Vec<usize> {
    vec![128, 128]
}

/// Settings of `mlp_energy`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MlpEnergyConfig {
    /// Hidden layer widths (default `[128, 128]`).
    #[serde(default = "default_hidden")]
    pub hidden: Vec<usize>,
    /// Smooth nonlinearity between layers (default `Softplus`).
    #[serde(default)]
    pub activation: Activation,
}

/// An MLP energy model.
pub struct MlpEnergy {
    net: Mlp,
}

crate::module!(MlpEnergy { net as "energy_net" });

impl MlpEnergy {
    /// A model with the given settings for data of dimension `dim`.
    pub fn new(dev: &Device, dim: usize, cfg: &MlpEnergyConfig, rng: &mut ChaCha8Rng) -> Self {
        let mut widths = vec![dim];
        widths.extend(&cfg.hidden);
        widths.push(1);
        Self {
            net: Mlp::new(dev, &widths, cfg.activation, rng),
        }
    }

    /// The jet of `log p̃ = −E` for the input jet `x`, with the score
    /// `∇ₓ log p̃` when `want_score`.
    fn log_density_jet(&self, g: &mut Graph, x: Jet, want_score: bool) -> (Jet, Option<Mat>) {
        let n = x.rows();
        // d(log p̃)/dE = −1: seeding the VJP with −1 gives ∇ₓ log p̃ directly.
        let seed = want_score.then(|| g.filled(n, 1, -1.0));
        let (e, score) = self.net.jet_vjp(g, x, seed.as_ref());
        (e.scale(g, -1.0), score)
    }
}

impl ScoreModel for MlpEnergy {
    fn dim(&self) -> usize {
        self.net.input_dim()
    }
    fn score(&self, g: &mut Graph, x: &Mat) -> Mat {
        self.log_density_jet(g, Jet::value(x.clone()), true)
            .1
            .expect("score requested")
    }
    fn terms(&self, g: &mut Graph, x: &Mat, v: &Mat, want_score: bool) -> Terms {
        let jet = Jet::along(x.clone(), v.clone(), JetKind::Second);
        let (f, score) = self.log_density_jet(g, jet, want_score);
        Terms {
            vs: f.d1_or_zero(g),
            vhv: f.d2_or_zero(g),
            score,
        }
    }
    fn trace_terms(&self, g: &mut Graph, x: &Mat, start: usize, count: usize) -> TraceTerms {
        let jet = Jet::basis(x.clone(), start, count, JetKind::Trace);
        let (f, _) = self.log_density_jet(g, jet, false);
        TraceTerms {
            vs: f.d1_or_zero(g),
            trace: f.d2_or_zero(g),
        }
    }
    fn trace_width(&self) -> usize {
        self.net.max_width()
    }
    fn width_per_point(&self) -> usize {
        self.net.total_width()
    }
    crate::capabilities!(energy, curvature);
}

impl EnergyModel for MlpEnergy {
    fn log_density(&self, g: &mut Graph, x: &Mat) -> Mat {
        self.log_density_jet(g, Jet::value(x.clone()), false)
            .0
            .value
    }
}

impl CurvatureModel for MlpEnergy {
    fn curvature(&self, g: &mut Graph, x: &Mat, method: &mut CurvatureMethod<'_>) -> (Mat, Mat) {
        let n = x.rows();
        let (_, cache) = self.net.jet_cached(g, Jet::value(x.clone()), 2);
        // Seed −1: the signal is for log p̃ = −E.
        let out = Curvature::at_output(g, n, -1.0, method);
        let c = self.net.curvature(g, &cache, out, method);
        let diag = c.diagonal(g);
        (c.grad, diag)
    }
}

impl ModelConfig for MlpEnergyConfig {
    fn build(
        &self,
        dev: &Device,
        dim: usize,
        rng: &mut ChaCha8Rng,
    ) -> Result<BuiltModel, ConfigError> {
        for (i, &w) in self.hidden.iter().enumerate() {
            require_at_least(&format!("hidden[{i}]"), w, 1)?;
        }
        let widths: Vec<usize> = std::iter::once(dim)
            .chain(self.hidden.iter().copied())
            .chain([1])
            .collect();
        Mlp::check_memory("hidden", &widths)?;
        Ok(BuiltModel::Trained(Box::new(MlpEnergy::new(
            dev, dim, self, rng,
        ))))
    }
}

crate::register_plugin!(
    ModelConfig,
    "mlp_energy",
    "energy model log p(x) = -E(x) + const, E an MLP with smooth activations",
    "(hidden: [128, 128], activation: Softplus)",
    MlpEnergyConfig
);
