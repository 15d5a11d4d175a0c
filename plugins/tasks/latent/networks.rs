//! The encoder and decoder networks of the latent-variable tasks.
//!
//! Data flow: binary images `x` (`n × D`, host) go into the [`Encoder`],
//! which draws `k` latent codes per image (rows `i·k … i·k + k − 1` belong
//! to image `i`), tape-tracked so the loss reaches the encoder's weights.
//! The [`Decoder`] maps codes to Bernoulli logits `a` (`m × D`); its
//! log-likelihood `Σ_d x_d a_d − softplus(a_d)` is on the graph for
//! training and on the host, with its gradient in `z`, for AIS.

use rand::RngCore;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use crate::autodiff::{Graph, Jet};
use std::sync::Arc;

use crate::device::{Device, Mat};
use crate::nn::mlp::repeat_each;
use crate::nn::{Activation, Mlp};

/// The encoder `q(z | x)`, as written in RON.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub enum EncoderKind {
    /// Implicit: `z = g_φ([x, ε])` with noise `ε ~ N(0, I_noise_dim)`
    /// concatenated to the input; `q(z | x)` has no density, so the entropy
    /// gradient needs a score estimate (default `noise_dim`: the latent
    /// dimension).
    Implicit {
        /// Dimension of the noise (default: the latent dimension).
        #[serde(default)]
        noise_dim: Option<usize>,
    },
    /// Gaussian: `z = μ_φ(x) + σ_φ(x) ⊙ ε` (the plain VAE baseline; its
    /// entropy and KL are closed-form).
    Gaussian,
}

fn tanh() -> Activation {
    Activation::Tanh
}

fn default_hidden() -> Vec<usize> {
    vec![256, 256]
}

/// Hidden layers of the encoder and the decoder, as written in RON.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NetConfig {
    /// Hidden widths of both networks (default `[256, 256]`, as the paper).
    #[serde(default = "default_hidden")]
    pub hidden: Vec<usize>,
    /// Nonlinearity (default `Tanh`, as the paper).
    #[serde(default = "tanh")]
    pub activation: Activation,
}

impl Default for NetConfig {
    fn default() -> Self {
        Self {
            hidden: default_hidden(),
            activation: tanh(),
        }
    }
}

impl NetConfig {
    /// Checks the widths, and that the hidden layers alone fit in memory
    /// (the data and latent widths only add to that).
    pub fn validate(&self, field: &str) -> Result<(), crate::error::ConfigError> {
        for (i, &w) in self.hidden.iter().enumerate() {
            crate::error::require_at_least(&format!("{field}.hidden[{i}]"), w, 1)?;
        }
        let mut widths = vec![1];
        widths.extend(&self.hidden);
        widths.push(1);
        crate::nn::Mlp::check_memory(&format!("{field}.hidden"), &widths)
    }
}

/// Latent codes drawn by the encoder.
pub struct Codes {
    /// `n·k × latent`, tape-tracked.
    pub z: Mat,
    /// For a Gaussian encoder: `(μ, log σ)`, each `n × latent`.
    pub gaussian: Option<(Mat, Mat)>,
}

/// `q(z | x)`: an MLP reading `[x, ε]` (implicit) or `x` (Gaussian).
pub struct Encoder {
    net: Mlp,
    /// Columns of μ and of log σ in the Gaussian encoder's output.
    halves: [Arc<[usize]>; 2],
    kind: EncoderKind,
    data_dim: usize,
    latent: usize,
    noise: usize,
}

crate::module!(Encoder { net as "" });

/// `rows × cols` standard normal draws.
pub fn normal(rng: &mut dyn RngCore, n: usize) -> Vec<f64> {
    (0..n).map(|_| StandardNormal.sample(&mut *rng)).collect()
}

impl Encoder {
    /// An encoder of `data_dim`-pixel images into `latent` dimensions.
    pub fn new(
        dev: &Device,
        data_dim: usize,
        latent: usize,
        kind: &EncoderKind,
        net: &NetConfig,
        rng: &mut ChaCha8Rng,
    ) -> Self {
        let noise = match kind {
            EncoderKind::Implicit { noise_dim } => noise_dim.unwrap_or(latent),
            EncoderKind::Gaussian => 0,
        };
        let out = match kind {
            EncoderKind::Implicit { .. } => latent,
            EncoderKind::Gaussian => 2 * latent,
        };
        let mut widths = vec![data_dim + noise];
        widths.extend(&net.hidden);
        widths.push(out);
        Self {
            net: Mlp::new(dev, &widths, net.activation, rng),
            halves: [(0..latent).collect(), (latent..2 * latent).collect()],
            kind: kind.clone(),
            data_dim,
            latent,
            noise,
        }
    }

    /// Whether the encoder is Gaussian (closed-form entropy).
    pub fn is_gaussian(&self) -> bool {
        self.kind == EncoderKind::Gaussian
    }

    /// `k` codes for each of the `n` images in `x` (row-major `n × D`).
    pub fn sample(
        &self,
        g: &mut Graph,
        x: &[f64],
        n: usize,
        k: usize,
        rng: &mut dyn RngCore,
    ) -> Codes {
        let d = self.data_dim;
        match self.kind {
            EncoderKind::Implicit { .. } if k > 1 && self.noise > 0 => {
                // k codes per image: the image's product with the first
                // layer once, not k times (same draws, same values).
                let images = g.constant(x[..n * d].to_vec(), n, d);
                let eps = g.constant(normal(rng, n * k * self.noise), n * k, self.noise);
                Codes {
                    z: self.net.forward_joined(g, &images, &eps, k),
                    gaussian: None,
                }
            }
            EncoderKind::Implicit { .. } => {
                let width = d + self.noise;
                let mut input = Vec::with_capacity(n * k * width);
                for i in 0..n {
                    for _ in 0..k {
                        input.extend_from_slice(&x[i * d..(i + 1) * d]);
                        input.extend(normal(rng, self.noise));
                    }
                }
                let input = g.constant(input, n * k, width);
                Codes {
                    z: self.net.forward(g, &input),
                    gaussian: None,
                }
            }
            EncoderKind::Gaussian => {
                let input = g.constant(x.to_vec(), n, d);
                let out = self.net.forward(g, &input);
                let l = self.latent;
                let mu = g.select_cols(&out, &self.halves[0]);
                let log_sigma = g.select_cols(&out, &self.halves[1]);
                // Repeat each image's μ and σ k times (row i·k + j).
                let rep = repeat_each(g, n, k);
                let mu_r = g.matmul(&rep, &mu);
                let ls_r = g.matmul(&rep, &log_sigma);
                let sigma = g.exp(&ls_r);
                let eps = g.constant(normal(rng, n * k * l), n * k, l);
                let noise = g.mul(&sigma, &eps);
                Codes {
                    z: g.add(&mu_r, &noise),
                    gaussian: Some((mu, log_sigma)),
                }
            }
        }
    }
}

/// `p(x | z)`: an MLP from codes to Bernoulli logits.
pub struct Decoder {
    net: Mlp,
}

crate::module!(Decoder { net as "" });

impl Decoder {
    /// A decoder of `latent`-dimensional codes into `data_dim` logits.
    pub fn new(
        dev: &Device,
        latent: usize,
        data_dim: usize,
        net: &NetConfig,
        rng: &mut ChaCha8Rng,
    ) -> Self {
        let mut widths = vec![latent];
        widths.extend(&net.hidden);
        widths.push(data_dim);
        Self {
            net: Mlp::new(dev, &widths, net.activation, rng),
        }
    }

    /// Logits `a` (`m × D`) of codes `z` (`m × latent`).
    pub fn logits(&self, g: &mut Graph, z: &Mat) -> Mat {
        self.net.forward(g, z)
    }

    /// `log p(x | z)` per row (`m × 1`) from logits `a` and binary `x`
    /// (`m × D`): `Σ_d x_d a_d − softplus(a_d)`.
    pub fn log_likelihood(g: &mut Graph, logits: &Mat, x: &Mat) -> Mat {
        let xa = g.mul(x, logits);
        let sp = g.softplus(logits);
        let diff = g.sub(&xa, &sp);
        g.sum_cols(&diff)
    }

    /// `log p(x_r | z_r)` per row and its gradient in `z` (`m × latent`),
    /// for the binary images `x` (`m × D`, on the device, rows matched to
    /// `z`'s), on an inference graph (no tape): `∇_z = J_aᵀ (x − σ(a))`.
    /// The Bernoulli terms and the residual stay on the device (vectorised in
    /// the device's precision); only the row sums and the gradient come back.
    pub fn log_likelihood_and_grad(
        &self,
        dev: &Device,
        z: &[f64],
        x: &Mat,
        m: usize,
    ) -> (Vec<f64>, Vec<f64>) {
        let latent = self.net.input_dim();
        let mut g = Graph::inference(dev);
        let zm = g.constant(z.to_vec(), m, latent);
        let (out, cache) = self.net.jet_cached(&mut g, Jet::value(zm), 1);
        let logits = &out.value;
        let ll = Self::log_likelihood(&mut g, logits, x).to_host();
        let p = g.sigmoid(logits);
        let resid = g.sub(x, &p);
        let grad = self.net.vjp(&mut g, &cache, &resid).to_host();
        (ll, grad)
    }
}

/// `ln(1 + eᵃ)`, stable for large `|a|`.
pub fn softplus(a: f64) -> f64 {
    if a > 0.0 {
        a + (-a).exp().ln_1p()
    } else {
        a.exp().ln_1p()
    }
}

/// The logistic function.
pub fn sigmoid(a: f64) -> f64 {
    if a >= 0.0 {
        1.0 / (1.0 + (-a).exp())
    } else {
        let e = a.exp();
        e / (1.0 + e)
    }
}
