//! `mlp_energy`: an energy model `log p̃(x) = −E(x)` with `E` an MLP `ℝᴰ → ℝ`.
//!
//! Terms along `v` come from a second-order jet of `log p̃`; the full score
//! `−∇ₓE` (for SSM-VR, DSM and evaluation) from the MLP's tape-tracked
//! vector–Jacobian product, sharing the same forward pass.

use rand_chacha::ChaCha8Rng;
use serde::Deserialize;

use crate::autodiff::curvature::{Curvature, CurvatureMethod};
use crate::autodiff::{Graph, Jet};
use crate::device::{self, Dev, Mat};
use crate::error::{require_at_least, ConfigError};
use crate::model::{ModelFamily, ScoreModel, Terms};
use crate::nn::{Activation, Mlp, Param};
use crate::registry::ModelConfig;

fn default_hidden() -> Vec<usize> {
    vec![128, 128]
}

/// Settings of `mlp_energy`.
#[derive(Debug, Clone, Deserialize)]
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

impl MlpEnergy {
    /// A model with the given settings for data of dimension `dim`.
    pub fn new(dev: &Dev, dim: usize, cfg: &MlpEnergyConfig, rng: &mut ChaCha8Rng) -> Self {
        let mut widths = vec![dim];
        widths.extend(&cfg.hidden);
        widths.push(1);
        Self {
            net: Mlp::new(dev, "energy_net", &widths, cfg.activation, rng),
        }
    }

    /// The jet of `log p̃ = −E` along `v` (order 0 if `v` is `None`), with the
    /// score `∇ₓ log p̃` when `want_score`.
    fn log_density_jet(
        &self,
        g: &mut Graph,
        x: &Mat,
        v: Option<&Mat>,
        order: usize,
        want_score: bool,
    ) -> (Jet, Option<Mat>) {
        let n = device::shape(x).0;
        // d(log p̃)/dE = −1: seeding the VJP with −1 gives ∇ₓ log p̃ directly.
        let seed = want_score.then(|| g.filled(n, 1, -1.0));
        let (e, score) =
            self.net
                .jet_vjp(g, Jet::seed(x.clone(), v.cloned(), order), seed.as_ref());
        (e.scale(g, -1.0), score)
    }
}

impl ScoreModel for MlpEnergy {
    fn dim(&self) -> usize {
        self.net.input_dim()
    }
    fn family(&self) -> ModelFamily {
        ModelFamily::Energy
    }
    fn params(&self) -> Vec<&Param> {
        self.net.params()
    }
    fn params_mut(&mut self) -> Vec<&mut Param> {
        self.net.params_mut()
    }
    fn score(&self, g: &mut Graph, x: &Mat) -> Mat {
        self.log_density_jet(g, x, None, 0, true)
            .1
            .expect("score requested")
    }
    fn terms(&self, g: &mut Graph, x: &Mat, v: &Mat, want_score: bool) -> Terms {
        let (f, score) = self.log_density_jet(g, x, Some(v), 2, want_score);
        Terms {
            vs: f.d1_or_zero(g),
            vhv: f.d2_or_zero(g),
            score,
        }
    }
    fn curvature(
        &self,
        g: &mut Graph,
        x: &Mat,
        method: &mut CurvatureMethod<'_>,
    ) -> Option<(Mat, Mat)> {
        let n = device::shape(x).0;
        let (_, cache) = self.net.jet_cached(g, Jet::constant(x.clone(), 0), 2);
        // Seed −1: the signal is for log p̃ = −E.
        let out = Curvature::at_output(g, n, -1.0, method);
        let c = self.net.curvature(g, &cache, out, method);
        let diag = c.diagonal(g);
        Some((c.grad, diag))
    }
    fn supports_curvature(&self) -> bool {
        true
    }
    fn log_density(&self, g: &mut Graph, x: &Mat) -> Option<Mat> {
        Some(self.log_density_jet(g, x, None, 0, false).0.value)
    }
}

impl ModelConfig for MlpEnergyConfig {
    fn build(
        &self,
        dev: &Dev,
        dim: usize,
        rng: &mut ChaCha8Rng,
    ) -> Result<Box<dyn ScoreModel>, ConfigError> {
        for (i, &w) in self.hidden.iter().enumerate() {
            require_at_least(&format!("hidden[{i}]"), w, 1)?;
        }
        Ok(Box::new(MlpEnergy::new(dev, dim, self, rng)))
    }
}

crate::register_plugin!(
    ModelConfig,
    "mlp_energy",
    "energy model log p(x) = -E(x) + const, E an MLP with smooth activations",
    "(hidden: [128, 128], activation: Softplus)",
    MlpEnergyConfig
);
