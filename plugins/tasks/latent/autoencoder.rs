//! What the latent-variable tasks share: data, encoder, decoder,
//! evaluation settings, and the pieces of their losses.
//!
//! Data flow: [`Autoencoder::codes`] draws a binarised batch and its codes
//! (tape-tracked); the task adds its own terms; [`Autoencoder::evaluate`]
//! computes AIS negative log-likelihoods and reconstruction errors on a
//! held-out split; [`Autoencoder::artifacts`] draws the image grids.

use rand::RngCore;
use rand_chacha::ChaCha8Rng;

use crate::autodiff::Graph;
use crate::device::{Device, Mat};
use crate::error::{require_at_least, ConfigError};
use crate::task::{Artifact, Metrics, Split};

use super::data::{BinaryImages, DataConfig};
use super::evaluation::{ais_metrics, image_artifacts, EvalConfig};
use super::networks::{Codes, Decoder, Encoder, EncoderKind, NetConfig};
use super::scores::ScoreEstimate;

/// The [`crate::task::Task`] methods both latent-variable tasks delegate to
/// their [`Autoencoder`] (a field `ae`, with `description` beside it):
/// dimension, description, batches of codes, AIS evaluation, image grids,
/// and their own training step.
#[macro_export]
#[doc(hidden)]
macro_rules! autoencoder_task_basics {
    () => {
        fn dim(&self) -> usize {
            self.ae.latent
        }

        fn describe(&self) -> String {
            self.description.clone()
        }

        /// Codes of fresh training images, one each (the points the model scores).
        fn train_batch(&mut self, rng: &mut dyn rand::RngCore, batch_size: usize) -> Vec<f64> {
            self.ae.code_sample(rng, batch_size)
        }

        fn evaluate(
            &self,
            _dev: &$crate::device::Device,
            _model: Option<&dyn $crate::model::ScoreModel>,
            split: $crate::task::Split,
        ) -> $crate::task::Metrics {
            self.ae.evaluate(split)
        }

        fn selection_metric(&self) -> &'static str {
            "nll"
        }

        fn artifacts(
            &self,
            _dev: &$crate::device::Device,
            _model: Option<&dyn $crate::model::ScoreModel>,
            rng: &mut dyn rand::RngCore,
        ) -> Vec<$crate::task::Artifact> {
            self.ae.artifacts(rng)
        }

        fn as_trainer(&mut self) -> Option<&mut dyn $crate::task::OwnTraining> {
            Some(self)
        }

        fn state(&self) -> serde_json::Value {
            self.ae.data.epochs.state()
        }

        fn set_state(&mut self, state: &serde_json::Value) -> Result<(), $crate::task::TaskError> {
            self.ae.data.epochs.set_state(state)
        }
    };
}

/// Builds the [`Autoencoder`] of a latent-variable task's settings (a
/// config with the fields of [`AutoencoderSpec`] and a `score_schedule`,
/// which is validated first): `autoencoder_from_config!(self, dev, rng)`.
#[macro_export]
#[doc(hidden)]
macro_rules! autoencoder_from_config {
    ($cfg:expr, $dev:expr, $rng:expr) => {{
        $cfg.score_schedule.validate()?;
        $crate::plugins::tasks::latent::autoencoder::Autoencoder::build(
            $crate::plugins::tasks::latent::autoencoder::AutoencoderSpec {
                data: &$cfg.data,
                latent_dim: $cfg.latent_dim,
                encoder: &$cfg.encoder,
                networks: &$cfg.networks,
                val: &$cfg.val,
                test: &$cfg.test,
                samples: $cfg.samples,
            },
            $dev,
            $rng,
        )?
    }};
}

/// Settings shared by the latent-variable tasks.
pub struct AutoencoderSpec<'a> {
    /// Images.
    pub data: &'a DataConfig,
    /// Latent dimension.
    pub latent_dim: usize,
    /// The encoder.
    pub encoder: &'a EncoderKind,
    /// Hidden layers of both networks.
    pub networks: &'a NetConfig,
    /// Validation evaluation.
    pub val: &'a EvalConfig,
    /// Test evaluation.
    pub test: &'a EvalConfig,
    /// Prior samples in the `samples` grid.
    pub samples: usize,
}

crate::module!(Autoencoder { encoder, decoder });

/// Data, encoder and decoder of one task.
pub struct Autoencoder {
    /// The binarised images.
    pub data: BinaryImages,
    /// `q(z | x)`.
    pub encoder: Encoder,
    /// `p(x | z)`.
    pub decoder: Decoder,
    /// Latent dimension.
    pub latent: usize,
    dev: Device,
    val: EvalConfig,
    test: EvalConfig,
    samples: usize,
    eval_seed: u64,
}

/// A batch of images and their codes.
pub struct Batch {
    /// Binary images, `n × D` (host).
    pub x: Vec<f64>,
    /// The images repeated `k` times each (`n·k × D`, constant), matching
    /// the rows of the codes.
    pub x_rows: Mat,
    /// The codes.
    pub codes: Codes,
    /// Bernoulli logits of the decoder at the codes (`n·k × D`).
    pub logits: Mat,
}

/// Checks that the encoder and decoder fit in memory for data of `d`
/// pixels (a huge `latent_dim` or `noise_dim` is refused by name).
fn check_network_memory(spec: &AutoencoderSpec<'_>, d: usize) -> Result<(), ConfigError> {
    let (noise, out) = match spec.encoder {
        EncoderKind::Implicit { noise_dim } => {
            (noise_dim.unwrap_or(spec.latent_dim), spec.latent_dim)
        }
        EncoderKind::Gaussian => (0, spec.latent_dim.saturating_mul(2)),
    };
    let field = match spec.encoder {
        EncoderKind::Implicit { noise_dim: Some(n) } if *n > spec.latent_dim => {
            "encoder.Implicit.noise_dim"
        }
        _ => "latent_dim",
    };
    let with = |input: usize, output: usize| -> Vec<usize> {
        std::iter::once(input)
            .chain(spec.networks.hidden.iter().copied())
            .chain([output])
            .collect()
    };
    crate::nn::Mlp::check_memory(field, &with(d.saturating_add(noise), out))?;
    crate::nn::Mlp::check_memory("latent_dim", &with(spec.latent_dim, d))
}

impl Autoencoder {
    /// Loads the data and initialises both networks.
    pub fn build(
        spec: AutoencoderSpec<'_>,
        dev: &Device,
        rng: &mut ChaCha8Rng,
    ) -> Result<Self, ConfigError> {
        require_at_least("latent_dim", spec.latent_dim, 1)?;
        spec.networks.validate("networks")?;
        spec.val.validate("val")?;
        spec.test.validate("test")?;
        let data = BinaryImages::load(spec.data, rng)?;
        let d = data.dim();
        check_network_memory(&spec, d)?;
        let encoder = Encoder::new(dev, d, spec.latent_dim, spec.encoder, spec.networks, rng);
        let decoder = Decoder::new(dev, spec.latent_dim, d, spec.networks, rng);
        Ok(Self {
            data,
            encoder,
            decoder,
            latent: spec.latent_dim,
            dev: dev.clone(),
            val: spec.val.clone(),
            test: spec.test.clone(),
            samples: spec.samples,
            eval_seed: rand::Rng::gen(rng),
        })
    }

    /// `n` fresh training images with `k` codes each and the decoder's logits.
    pub fn codes(&mut self, g: &mut Graph, rng: &mut dyn RngCore, n: usize, k: usize) -> Batch {
        let x = self.data.train_batch(rng, n);
        let d = self.data.dim();
        let codes = self.encoder.sample(g, &x, n, k, rng);
        let logits = self.decoder.logits(g, &codes.z);
        let mut rows = Vec::with_capacity(n * k * d);
        for img in x.chunks(d) {
            for _ in 0..k {
                rows.extend_from_slice(img);
            }
        }
        let x_rows = g.constant(rows, n * k, d);
        Batch {
            x,
            x_rows,
            codes,
            logits,
        }
    }

    /// Codes of `n` fresh training images (host, `n × latent`, one each).
    pub fn code_sample(&mut self, rng: &mut dyn RngCore, n: usize) -> Vec<f64> {
        let mut g = Graph::inference(&self.dev);
        let x = self.data.train_batch(rng, n);
        self.encoder.sample(&mut g, &x, n, 1, rng).z.to_host()
    }

    fn eval_config(&self, split: Split) -> &EvalConfig {
        match split {
            Split::Validation => &self.val,
            Split::Test => &self.test,
        }
    }

    /// The images of `split` that are evaluated.
    pub fn eval_images(&self, split: Split) -> &[f64] {
        let x = self.data.split(split);
        let d = self.data.dim();
        let n = (x.len() / d).min(self.eval_config(split).points);
        &x[..n * d]
    }

    /// Held-out metrics: AIS `nll` (and its standard error, ESS, collapsed
    /// count, acceptance), `recon` (mean `−log p(x | z)` at one code per
    /// image), `recon_sq` (mean `‖x − σ(a)‖²`) and, for a Gaussian encoder,
    /// `neg_elbo` (recon plus the closed-form KL). An AIS failure is logged
    /// and reported as `nll = NaN`, which stops training with its step.
    pub fn evaluate(&self, split: Split) -> Metrics {
        let x = self.eval_images(split);
        let d = self.data.dim();
        let n = x.len() / d;
        let seed = self.eval_seed ^ (split == Split::Test) as u64;
        let mut m = match ais_metrics(
            &self.decoder,
            &self.dev,
            x,
            d,
            self.latent,
            &self.eval_config(split).ais,
            seed,
        ) {
            Ok(m) => m,
            Err(e) => {
                tracing::error!("{} evaluation: {e}", split.prefix());
                Metrics::from([("nll".to_string(), f64::NAN)])
            }
        };
        let mut rng = <ChaCha8Rng as rand::SeedableRng>::seed_from_u64(seed.wrapping_add(7));
        let mut g = Graph::inference(&self.dev);
        let codes = self.encoder.sample(&mut g, x, n, 1, &mut rng);
        let logits = self.decoder.logits(&mut g, &codes.z);
        let xm = g.constant(x.to_vec(), n, d);
        let ll = Decoder::log_likelihood(&mut g, &logits, &xm).to_host();
        let recon = -ll.iter().sum::<f64>() / n as f64;
        m.insert("recon".into(), recon);
        let a = logits.to_host();
        let sq: f64 = a
            .iter()
            .zip(x)
            .map(|(&a, &x)| (x - super::networks::sigmoid(a)).powi(2))
            .sum();
        m.insert("recon_sq".into(), sq / n as f64);
        if let Some((mu, log_sigma)) = &codes.gaussian {
            let kl = gaussian_kl_host(&mu.to_host(), &log_sigma.to_host());
            m.insert("neg_elbo".into(), recon + kl / n as f64);
        }
        m
    }

    /// Reconstructions of validation images and prior samples.
    pub fn artifacts(&self, rng: &mut dyn RngCore) -> Vec<Artifact> {
        image_artifacts(
            &self.encoder,
            &self.decoder,
            &self.dev,
            self.data.split(Split::Validation),
            self.data.dim(),
            self.latent,
            (self.data.height, self.data.width),
            self.samples,
            rng,
        )
    }
}

/// `Σ KL(N(μ, σ²) ‖ N(0, 1))` over all entries (host).
pub fn gaussian_kl_host(mu: &[f64], log_sigma: &[f64]) -> f64 {
    mu.iter()
        .zip(log_sigma)
        .map(|(&m, &ls)| 0.5 * (m * m + (2.0 * ls).exp() - 1.0 - 2.0 * ls))
        .sum()
}

/// `KL(N(μ, σ²) ‖ N(0, I))` per row (`n × 1`, on the graph).
pub fn gaussian_kl(g: &mut Graph, mu: &Mat, log_sigma: &Mat) -> Mat {
    let mu2 = g.square(mu);
    let two_ls = g.scale(log_sigma, 2.0);
    let var = g.exp(&two_ls);
    let a = g.add(&mu2, &var);
    let b = g.sub(&a, &two_ls);
    let c = g.add_scalar(&b, -1.0);
    let s = g.sum_cols(&c);
    g.scale(&s, 0.5)
}

/// `½‖z‖²` per row (`n × 1`): minus the prior's log-density up to a constant.
pub fn half_square_norm(g: &mut Graph, z: &Mat) -> Mat {
    let sq = g.square(z);
    let s = g.sum_cols(&sq);
    g.scale(&s, 0.5)
}

/// The step's loss `recon + weight · mean(½‖z‖² + ŝ(z)·z)` (the
/// entropy or KL term's surrogate, `ŝ` a stop-gradient score estimate),
/// plus a trained score model's own loss when there is one (logged as
/// `score_model_loss` in `last`).
pub fn surrogate_loss(
    g: &mut Graph,
    recon: &Mat,
    z: &Mat,
    estimate: ScoreEstimate,
    weight: f64,
    last: &mut Metrics,
) -> Mat {
    let prior = half_square_norm(g, z);
    let dot = score_dot(g, estimate.scores, z);
    let per = g.add(&prior, &dot);
    let term = g.mean_all(&per);
    let term = if weight == 1.0 {
        term
    } else {
        g.scale(&term, weight)
    };
    let mut loss = g.add(recon, &term);
    if let Some(l) = estimate.model_loss {
        last.insert("score_model_loss".into(), l.scalar());
        loss = g.add(&loss, &l);
    }
    loss
}

/// `ŝ · z` per row (`n × 1`) for constant scores `ŝ` (host, same layout as
/// `z`): its gradient through `z` is the entropy (or KL) gradient's term.
pub fn score_dot(g: &mut Graph, scores: Vec<f64>, z: &Mat) -> Mat {
    let (n, l) = z.shape();
    let s = g.constant(scores, n, l);
    let p = g.mul(&s, z);
    g.sum_cols(&p)
}
