//! `implicit_vae`: a variational autoencoder whose encoder `q(z | x)` is
//! implicit (samples only), trained through a score estimate of
//! `∇_z log q(z | x)` (the sliced score matching paper, §5.2.1 and Table 2).
//!
//! Data flow, one step: a batch of `batch_size` binarised images gets
//! `codes_per_image` codes each from the encoder; the decoder scores them
//! (Bernoulli). The loss per code is the surrogate
//! `−log p(x | z) + ½‖z‖² + ŝ(z | x)·z` with `ŝ` a stop-gradient score
//! estimate, whose gradient is that of the negative ELBO (the entropy's
//! gradient is `−E[∇_z log q(z | x) ∂z/∂φ]`). `ŝ` comes from the
//! experiment's model ([`super::scores`]):
//! * a score network `h(z | x)` (`mlp_score`, built conditionally on the
//!   image) trained by the experiment's objective (e.g. `ssm_vr`) on the
//!   same codes: with `score_schedule: Alternating(…)` (the default, the
//!   paper's) one step of the score network with its own optimizer
//!   (RMSProp, lr 1e-3) before each autoencoder step, with `Joint` its
//!   loss added to the step's and both networks stepping together;
//! * or a kernel estimator (`stein`, `spectral`) refitted on the codes of
//!   each image (`codes_per_image ≥ 2`; the paper uses 100).
//!
//! With `encoder: Gaussian` the task is the plain VAE baseline: the KL is
//! closed-form and the experiment names no model.
//!
//! Evaluation: AIS negative log-likelihood (nats) on held-out images,
//! reconstruction error, `neg_elbo` for the Gaussian encoder; grids of
//! reconstructions and prior samples.

use rand::RngCore;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::autodiff::Graph;
use crate::device::{Device, Mat};
use crate::error::{require_at_least, ConfigError};
use crate::model::ModelSlot;
use crate::registry::TaskConfig;
use crate::task::{Metrics, ModelUse, OwnTraining, ScoreSchedule, ScoreSource, Task, TaskError};

use super::autoencoder::{gaussian_kl, surrogate_loss, Autoencoder};
use super::data::DataConfig;
use super::evaluation::EvalConfig;
use super::networks::{Decoder, EncoderKind, NetConfig};
use super::scores::estimate_scores;

fn default_latent() -> usize {
    8
}
fn default_encoder() -> EncoderKind {
    EncoderKind::Implicit { noise_dim: None }
}
fn one() -> usize {
    1
}
fn default_samples() -> usize {
    64
}

/// Settings of `implicit_vae`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImplicitVaeConfig {
    /// Images and splits.
    pub data: DataConfig,
    /// Latent dimension (default 8; the paper: 8 and 32).
    #[serde(default = "default_latent")]
    pub latent_dim: usize,
    /// `Implicit(noise_dim: …)` (default, noise dimension = latent) or
    /// `Gaussian` (the ELBO baseline, no model).
    #[serde(default = "default_encoder")]
    pub encoder: EncoderKind,
    /// Hidden layers of encoder and decoder (default 256-256 tanh).
    #[serde(default)]
    pub networks: NetConfig,
    /// Codes drawn per image per step (default 1; a kernel estimator needs
    /// ≥ 2 and is refitted on them).
    #[serde(default = "one")]
    pub codes_per_image: usize,
    /// Validation evaluation (default 64 images, AIS with 100 temperatures
    /// and 8 chains); the selection metric is its `nll`.
    #[serde(default = "EvalConfig::validation_default")]
    pub val: EvalConfig,
    /// Test evaluation (default 200 images, AIS with 1000 temperatures and
    /// 16 chains).
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
pub struct ImplicitVae {
    ae: Autoencoder,
    codes_per_image: usize,
    score_schedule: ScoreSchedule,
    description: String,
    last: Metrics,
}

crate::module!(ImplicitVae { ae as "implicit_vae" });

impl Task for ImplicitVae {
    crate::autoencoder_task_basics!();

    fn model_use(&self) -> ModelUse {
        if self.ae.encoder.is_gaussian() {
            ModelUse::None
        } else {
            ModelUse::Conditional(self.ae.data.dim())
        }
    }

    fn check_model(&self, model: &ModelSlot) -> Result<(), ConfigError> {
        if model.is_fitted_kind() && self.codes_per_image < 2 {
            return Err(ConfigError::new(
                "task.implicit_vae.codes_per_image",
                "a kernel estimator is refitted on the codes of each image: needs ≥ 2 \
                 (the paper uses 100)",
            ));
        }
        Ok(())
    }
}

impl OwnTraining for ImplicitVae {
    fn train_loss(
        &mut self,
        g: &mut Graph,
        scores: ScoreSource<'_>,
        rng: &mut dyn RngCore,
        n: usize,
    ) -> Result<Mat, TaskError> {
        let k = self.codes_per_image;
        let b = self.ae.codes(g, rng, n, k);
        let ll = Decoder::log_likelihood(g, &b.logits, &b.x_rows);
        let nll = g.neg(&ll);
        let recon = g.mean_all(&nll);
        self.last.clear();
        self.last.insert("recon".into(), recon.scalar());
        if let Some((mu, log_sigma)) = &b.codes.gaussian {
            let kl = gaussian_kl(g, mu, log_sigma);
            let kl = g.mean_all(&kl);
            self.last.insert("kl".into(), kl.scalar());
            return Ok(g.add(&recon, &kl));
        }
        let z = &b.codes.z;
        let z_host = z.to_host();
        let latent = self.ae.latent;
        let context = Some((&b.x[..], self.ae.data.dim(), k));
        let est = estimate_scores(g, scores, rng, &z_host, latent, context, n)?;
        Ok(surrogate_loss(g, &recon, z, est, 1.0, &mut self.last))
    }

    fn train_scalars(&self) -> Metrics {
        self.last.clone()
    }

    fn score_schedule(&self) -> ScoreSchedule {
        self.score_schedule.clone()
    }
}

impl TaskConfig for ImplicitVaeConfig {
    fn build(&self, dev: &Device, rng: &mut ChaCha8Rng) -> Result<Box<dyn Task>, ConfigError> {
        require_at_least("codes_per_image", self.codes_per_image, 1)?;
        let ae = crate::autoencoder_from_config!(self, dev, rng);
        let description = format!(
            "implicit_vae on {} | latent {} | encoder {:?} | {} code(s) per image",
            ae.data.describe(),
            self.latent_dim,
            self.encoder,
            self.codes_per_image
        );
        Ok(Box::new(ImplicitVae {
            ae,
            codes_per_image: self.codes_per_image,
            score_schedule: self.score_schedule.clone(),
            description,
            last: Metrics::new(),
        }))
    }
}

crate::register_plugin!(
    TaskConfig,
    "implicit_vae",
    "VAE with an implicit encoder, entropy gradient from the model's score estimate; AIS test NLL",
    "(data: (source: Digits), latent_dim: 2, networks: (hidden: [16]), val: (points: 4, ais: (num_temperatures: 5, chains: 2)), test: (points: 4, ais: (num_temperatures: 5, chains: 2)))",
    ImplicitVaeConfig
);
