//! Evaluation of the latent-variable tasks: test negative log-likelihood
//! by annealed importance sampling, reconstructions and sample grids.
//!
//! Data flow: the first `points` binary images of a split and the decoder
//! form a [`DecoderTarget`] `f(z) = p(x | z) N(z; 0, I)` per image, whose
//! normalizer is `p(x)`; [`crate::ais::run`] anneals from the prior `N(0, I)`
//! to the posterior with HMC, in chunks of images, and returns
//! `log p̂(x)` per image with its effective sample size. The metrics are
//! means over the images, in nats per image.

use std::cell::RefCell;

use indicatif::{ProgressBar, ProgressStyle};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::ais::{self, AisConfig, LogTarget};
use crate::autodiff::Graph;
use crate::device::{self, Device, Mat};
use crate::error::{require_at_least, ConfigError};
use crate::image_data::grid::{legible_factor, tile_grid, upscale};
use crate::task::{Artifact, Metrics};

use super::networks::{normal, sigmoid, Decoder, Encoder};

/// How a held-out split is evaluated, as written in RON.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EvalConfig {
    /// Images of the split evaluated (the first ones of a fixed shuffle;
    /// fewer when the split is smaller).
    pub points: usize,
    /// AIS settings (defaults: 1000 sigmoid temperatures, 16 chains,
    /// 10 leapfrog steps, step size adapted toward 0.65 acceptance).
    #[serde(default)]
    pub ais: AisConfig,
}

impl EvalConfig {
    /// A cheap validation default: 64 images, 100 temperatures, 8 chains,
    /// initial step size 0.1 adapted by factors of 1.05 (a short schedule
    /// needs a good start: from AIS's default 0.01 the step barely grows in
    /// 100 temperatures, acceptance stays near 1 and the chains hardly move).
    pub fn validation_default() -> Self {
        Self {
            points: 64,
            ais: AisConfig {
                num_temperatures: 100,
                chains: 8,
                step_size: 0.1,
                adaptation: Some(ais::StepSizeAdaptation {
                    factor: 1.05,
                    ..ais::StepSizeAdaptation::default()
                }),
                ..AisConfig::default()
            },
        }
    }

    /// The test default: 200 images, AIS with 1000 temperatures and 16
    /// chains (Wu et al.'s setting) from initial step size 0.1.
    pub fn test_default() -> Self {
        Self {
            points: 200,
            ais: AisConfig {
                step_size: 0.1,
                ..AisConfig::default()
            },
        }
    }

    /// Checks the settings; `field` prefixes errors.
    pub fn validate(&self, field: &str) -> Result<(), ConfigError> {
        require_at_least(&format!("{field}.points"), self.points, 1)?;
        self.ais
            .validate()
            .map_err(|e| ConfigError::new(format!("{field}.ais"), e.to_string()))
    }
}

/// `f(z) = p(x_i | z) N(z; 0, I)` for a batch of images `x_i`, the chains of
/// image `i` being consecutive rows.
pub struct DecoderTarget<'a> {
    decoder: &'a Decoder,
    dev: &'a Device,
    x: &'a [f64],
    data_dim: usize,
    latent: usize,
    /// The images repeated once per chain, on the device, with the row count
    /// they were built for (AIS calls with the same rows every step).
    tiled: RefCell<Option<(usize, Mat)>>,
}

impl<'a> DecoderTarget<'a> {
    /// The target of the images `x` (row-major, `data_dim` pixels each).
    pub fn new(
        decoder: &'a Decoder,
        dev: &'a Device,
        x: &'a [f64],
        data_dim: usize,
        latent: usize,
    ) -> Self {
        Self {
            decoder,
            dev,
            x,
            data_dim,
            latent,
            tiled: RefCell::new(None),
        }
    }

    /// The images matched to `n` chain rows (`n / points` consecutive rows
    /// per image), built on the device once per row count.
    fn tiled_images(&self, n: usize) -> Mat {
        let mut cached = self.tiled.borrow_mut();
        match cached.as_ref() {
            Some((rows, mat)) if *rows == n => mat.clone(),
            _ => {
                let d = self.data_dim;
                let per = n / self.num_points();
                let mut rows = Vec::with_capacity(n * d);
                for r in 0..n {
                    let i = r / per;
                    rows.extend_from_slice(&self.x[i * d..(i + 1) * d]);
                }
                let mat = self.dev.mat(&rows, n, d);
                *cached = Some((n, mat.clone()));
                mat
            }
        }
    }
}

impl LogTarget for DecoderTarget<'_> {
    fn dim(&self) -> usize {
        self.latent
    }

    fn num_points(&self) -> usize {
        self.x.len() / self.data_dim
    }

    fn log_prob_and_grad(&self, z: &[f64], n: usize) -> (Vec<f64>, Vec<f64>) {
        let images = self.tiled_images(n);
        let (mut lp, mut grad) = self
            .decoder
            .log_likelihood_and_grad(self.dev, z, &images, n);
        let l = self.latent;
        for r in 0..n {
            let zr = &z[r * l..(r + 1) * l];
            lp[r] += ais::log_std_normal(zr);
            for j in 0..l {
                grad[r * l + j] -= zr[j];
            }
        }
        (lp, grad)
    }
}

/// Images per AIS call (bounds memory: `chunk · chains` rows a pass).
const AIS_CHUNK: usize = 50;

/// AIS estimates of `log p(x)` for the images `x`, with metrics: `nll`,
/// `nll_stderr`, `ais_ess_mean`, `ais_collapsed`, `ais_acceptance`.
pub fn ais_metrics(
    decoder: &Decoder,
    dev: &Device,
    x: &[f64],
    data_dim: usize,
    latent: usize,
    cfg: &AisConfig,
    seed: u64,
) -> Result<Metrics, String> {
    let n = x.len() / data_dim;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut log_px = Vec::with_capacity(n);
    let chunks = n.div_ceil(AIS_CHUNK) as u64;
    let pb = progress_bar(chunks * cfg.steps(), n, cfg);
    let (mut ess, mut collapsed, mut accept) = (0.0, 0usize, 0.0);
    for chunk in x.chunks(AIS_CHUNK * data_dim) {
        let target = DecoderTarget::new(decoder, dev, chunk, data_dim, latent);
        let out = ais::run(&target, cfg, &mut rng, pb.as_ref()).map_err(|e| format!("AIS: {e}"))?;
        let m = chunk.len() / data_dim;
        log_px.extend(&out.log_marginal);
        ess += out.ess.iter().sum::<f64>();
        collapsed += out.collapsed;
        accept += out.mean_acceptance * m as f64;
    }
    if let Some(pb) = pb {
        pb.finish_and_clear();
    }
    let mean = log_px.iter().sum::<f64>() / n as f64;
    let var = log_px.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n.max(2) - 1) as f64;
    let mut m = Metrics::new();
    m.insert("nll".into(), -mean);
    m.insert("nll_stderr".into(), (var / n as f64).sqrt());
    m.insert("ais_ess_mean".into(), ess / n as f64);
    m.insert("ais_collapsed".into(), collapsed as f64);
    m.insert("ais_acceptance".into(), accept / n as f64);
    Ok(m)
}

/// Chain-steps (chains × temperatures × leapfrog steps) from which an AIS
/// evaluation gets a progress bar.
const PROGRESS_FROM: usize = 2_000_000;

/// A progress bar over `steps` temperatures for a long evaluation (on
/// stderr, hidden when it is not a terminal); `None` for a short one.
fn progress_bar(steps: u64, images: usize, cfg: &AisConfig) -> Option<ProgressBar> {
    let work = images * cfg.chains * cfg.num_temperatures * cfg.leapfrog_steps;
    if work < PROGRESS_FROM {
        return None;
    }
    tracing::info!(
        "AIS on {images} images: {} temperatures × {} chains × {} leapfrog steps",
        cfg.num_temperatures,
        cfg.chains,
        cfg.leapfrog_steps
    );
    let pb = ProgressBar::new(steps);
    pb.set_style(
        ProgressStyle::with_template("AIS {elapsed_precise} [{bar:30}] {pos}/{len} ETA {eta}")
            .expect("valid progress template")
            .progress_chars("=> "),
    );
    Some(pb)
}

/// A grid of up to 32 images (top half) above their reconstructions — the
/// decoder's Bernoulli means at one code each, in the same order — and a
/// grid of the decoder's means at prior draws `z ~ N(0, I)`; small images
/// are enlarged to at least 28 pixels a tile.
#[allow(clippy::too_many_arguments)]
pub fn image_artifacts(
    encoder: &Encoder,
    decoder: &Decoder,
    dev: &Device,
    x: &[f64],
    data_dim: usize,
    latent: usize,
    (height, width): (usize, usize),
    samples: usize,
    rng: &mut dyn RngCore,
) -> Vec<Artifact> {
    let mut out = Vec::new();
    let mut g = Graph::inference(dev);
    let n = (x.len() / data_dim).min(32);
    if n > 0 {
        let x = &x[..n * data_dim];
        let codes = encoder.sample(&mut g, x, n, 1, rng);
        let a = device::to_host(&decoder.logits(&mut g, &codes.z));
        let mut both = x.to_vec();
        both.extend(a.iter().map(|&v| sigmoid(v)));
        let (rgb, w, h) = tile_grid(&both, 2 * n, height, width);
        let (rgb, w, h) = upscale(&rgb, w, h, legible_factor(height));
        out.push(Artifact::Image {
            name: "reconstructions".into(),
            rgb,
            width: w,
            height: h,
        });
    }
    if samples > 0 {
        let z = g.constant(normal(rng, samples * latent), samples, latent);
        let a = device::to_host(&decoder.logits(&mut g, &z));
        let means: Vec<f64> = a.iter().map(|&v| sigmoid(v)).collect();
        let (rgb, w, h) = tile_grid(&means, samples, height, width);
        let (rgb, w, h) = upscale(&rgb, w, h, legible_factor(height));
        out.push(Artifact::Image {
            name: "samples".into(),
            rgb,
            width: w,
            height: h,
        });
    }
    out
}
