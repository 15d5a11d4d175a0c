//! `wae`: a Wasserstein autoencoder whose latent regulariser is
//! `KL(q(z) ‖ p(z))` between the aggregated posterior and the prior,
//! minimised through a score estimate of `q(z)` (the sliced score matching
//! paper, §5.2.2 and Table 2).
//!
//! Data flow, one step: a batch of binarised images gets one code each from
//! the encoder (deterministic with the default `noise_dim: 0`, or implicit
//! or Gaussian); the decoder gives Bernoulli means `σ(a)`. The loss is
//! `mean ‖x − σ(a)‖² + λ · mean(½‖z‖² + ŝ(z)·z)` with `ŝ` a stop-gradient
//! estimate of `∇_z log q(z)`: the second term's gradient is that of
//! `λ · KL(q(z) ‖ p(z))` (`∇KL = E[(∇log q − ∇log p)·∂z/∂φ]`, and
//! `−∇log p(z) = z`). `ŝ` comes from the experiment's model: a score network
//! `h(z)` trained by the experiment's objective on the same codes, or a
//! kernel estimator refitted on the minibatch of codes.
//!
//! Evaluation as for `implicit_vae`: the decoder read as a Bernoulli
//! likelihood `p(x | z) = Bern(σ(a))` with prior `N(0, I)` gives the AIS
//! negative log-likelihood, plus reconstruction errors and image grids.

use rand::RngCore;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::autodiff::Graph;
use crate::device::{Device, Mat};
use crate::error::{require_positive, ConfigError};
use crate::model::ModelSlot;
use crate::registry::TaskConfig;
use crate::task::{Metrics, OwnTraining, ScoreSchedule, ScoreSource, Task, TaskError};

use super::autoencoder::{surrogate_loss, Autoencoder};
use super::data::DataConfig;
use super::evaluation::EvalConfig;
use super::networks::{EncoderKind, NetConfig};
use super::scores::estimate_scores;

fn default_latent() -> usize {
    8
}
fn default_encoder() -> EncoderKind {
    EncoderKind::Implicit { noise_dim: Some(0) }
}
fn default_lambda() -> f64 {
    10.0
}
fn default_samples() -> usize {
    64
}

/// Settings of `wae`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaeConfig {
    /// Images and splits.
    pub data: DataConfig,
    /// Latent dimension (default 8; the paper: 8 and 32).
    #[serde(default = "default_latent")]
    pub latent_dim: usize,
    /// The encoder (default `Implicit(noise_dim: Some(0))`: deterministic).
    #[serde(default = "default_encoder")]
    pub encoder: EncoderKind,
    /// Hidden layers of encoder and decoder (default 256-256 tanh).
    #[serde(default)]
    pub networks: NetConfig,
    /// Weight λ of the KL term (default 10, as the paper).
    #[serde(default = "default_lambda")]
    pub lambda: f64,
    /// Validation evaluation; the selection metric is its `nll`.
    #[serde(default = "EvalConfig::validation_default")]
    pub val: EvalConfig,
    /// Test evaluation.
    #[serde(default = "EvalConfig::test_default")]
    pub test: EvalConfig,
    /// Prior samples in the `samples` grid (default 64; 0 = none).
    #[serde(default = "default_samples")]
    pub samples: usize,
    /// How a trained score network steps relative to the autoencoder
    /// (default `Alternating(optimizer: RmsProp(lr: 0.001))`, the paper's).
    #[serde(default)]
    pub score_schedule: ScoreSchedule,
}

/// The task.
pub struct Wae {
    ae: Autoencoder,
    lambda: f64,
    score_schedule: ScoreSchedule,
    description: String,
    last: Metrics,
}

crate::module!(Wae { ae as "wae" });

impl Task for Wae {
    crate::autoencoder_task_basics!();

    fn check_model(&self, model: &ModelSlot) -> Result<(), ConfigError> {
        if model.scorer().is_some_and(|m| m.context_dim() > 0) {
            return Err(ConfigError::new(
                "model",
                "wae scores the aggregated posterior q(z): the model takes no context",
            ));
        }
        Ok(())
    }
}

impl OwnTraining for Wae {
    fn train_loss(
        &mut self,
        g: &mut Graph,
        scores: ScoreSource<'_>,
        rng: &mut dyn RngCore,
        n: usize,
    ) -> Result<Mat, TaskError> {
        if n < 2 && matches!(scores, ScoreSource::Fitted(_)) {
            return Err(TaskError::Invalid(
                "a kernel estimator of q(z) needs batch_size ≥ 2".into(),
            ));
        }
        let b = self.ae.codes(g, rng, n, 1);
        let means = g.sigmoid(&b.logits);
        let diff = g.sub(&b.x_rows, &means);
        let sq = g.square(&diff);
        let per = g.sum_cols(&sq);
        let recon = g.mean_all(&per);
        self.last.clear();
        self.last.insert("recon_sq".into(), recon.scalar());
        let z = &b.codes.z;
        let z_host = z.to_host();
        let est = estimate_scores(g, scores, rng, &z_host, self.ae.latent, None, 1)?;
        Ok(surrogate_loss(
            g,
            &recon,
            z,
            est,
            self.lambda,
            &mut self.last,
        ))
    }

    fn train_scalars(&self) -> Metrics {
        self.last.clone()
    }

    fn score_schedule(&self) -> ScoreSchedule {
        self.score_schedule.clone()
    }
}

impl TaskConfig for WaeConfig {
    fn build(&self, dev: &Device, rng: &mut ChaCha8Rng) -> Result<Box<dyn Task>, ConfigError> {
        require_positive("lambda", self.lambda)?;
        let ae = crate::autoencoder_from_config!(self, dev, rng);
        let description = format!(
            "wae on {} | latent {} | encoder {:?} | λ = {}",
            ae.data.describe(),
            self.latent_dim,
            self.encoder,
            self.lambda
        );
        Ok(Box::new(Wae {
            ae,
            lambda: self.lambda,
            score_schedule: self.score_schedule.clone(),
            description,
            last: Metrics::new(),
        }))
    }
}

crate::register_plugin!(
    TaskConfig,
    "wae",
    "Wasserstein autoencoder with KL(q(z)||p(z)) through the model's score estimate of q(z); AIS test NLL",
    "(data: (source: Digits), latent_dim: 2, networks: (hidden: [16]), val: (points: 4, ais: (num_temperatures: 5, chains: 2)), test: (points: 4, ais: (num_temperatures: 5, chains: 2)))",
    WaeConfig
);
