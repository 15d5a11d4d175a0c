//! `images`: density estimation on images (MNIST, Fashion-MNIST, the 8×8
//! digits, any IDX files), as in the NICE experiments of the sliced score
//! matching paper (Table 1).
//!
//! Data flow: `build` validates the settings, loads an [`ImageSet`]
//! ([`crate::image_data`]), shuffles the data set's training images with the
//! experiment's task stream and splits off `val_fraction` of them for
//! validation (90/10 by default); a source without a test set of its own
//! (`Digits`, `Idx` without test files) first holds out `test_fraction`.
//! Pixels are stored as integers. Following [`crate::image_data::transform`], every pixel `p`
//! is scaled to `p/m ∈ [0, 1]`, dequantised by `(U − ½)/L` (`L` = 256 levels
//! for 8-bit images, 17 for digits), clamped to `[α, 1 − α]` and mapped to
//! logit space (`logit: true`, the default; `logit_map: Clamp`, the paper's).
//! `logit_map: Squeeze` instead dequantises by `(p + U)/L` and squeezes
//! `α + (1 − 2α)x` before the logit, which leaves no point masses at
//! `±logit(α)`; `noise_sigma` adds Gaussian noise in model space. Training batches are shuffled
//! epochs whose images are dequantised afresh every time they are drawn
//! (the model never sees the same dequantised image twice); validation and
//! test images are dequantised once, from seeds fixed at build time.
//!
//! Evaluation on a held-out split, in nats per image:
//! * `sm_loss`, `sm_loss_stderr`: the exact score-matching loss
//!   `tr ∇ₓs + ½‖s‖²` in model (logit) space, mean and standard error over a
//!   fixed, seeded subset of `sm_eval_points` images of the split (exact SM
//!   costs `D` second derivatives per point: 784 for MNIST), the same subset
//!   at every evaluation;
//! * for a normalized model (a [`crate::model::FlowModel`]), means over the
//!   whole split ([`likelihood_metrics`]):
//!   - `log_likelihood_logit` = mean `log p_Y(y)`, the model's log-density in
//!     logit space (what the NICE paper reports; only with `logit: true`);
//!   - `log_likelihood` = mean `log p_X(x)` in [0, 1]-pixel space, where
//!     `log p_X(x) = log p_Y(y) + Σ_d log |dy_d/dx_d|` and
//!     `log |dy/dx| = −ln x − ln(1 − x)` at the clamped pixel `x ∈ [α, 1 − α]`
//!     (the density of the clamped, dequantised pixels; without the logit
//!     `log p_X = log p_Y`), or `ln(1 − 2α) − ln u − ln(1 − u)` at the
//!     squeezed `u = α + (1 − 2α)x` (with noise: at `u = sigmoid(y)` of the
//!     noisy coordinate), with `log_likelihood_stderr` over images;
//!   - `bits_per_dim` = `−log_likelihood / (D ln 2)`: the continuous density
//!     on [0, 1]ᴰ;
//!   - `bits_per_dim_discrete` = `−(log_likelihood − D ln L) / (D ln 2)` =
//!     `bits_per_dim + log₂ L`: the usual dequantisation bound on the
//!     discrete images' negative log₂-probability per pixel (each
//!     dequantisation cell has volume `L⁻ᴰ`; one draw per image). Pixels that
//!     the clamp moves (those of value 0 or `m` that dequantise beyond `α`)
//!     make it approximate; with the squeeze (and no noise) it is exact.
//!
//! [`sample_grid`] tiles model samples into an image; the task returns it as
//! the `samples` artifact (logged to TensorBoard as `images/samples` and
//! saved as `samples.png` for the best model) when the model can sample.
//!
//! The task offers its held-out images and a picture of points (the same
//! grid) to the evaluation-time sampling ([`crate::sampling::evaluation`]),
//! which logs Langevin samples beside a flow's own (`langevin_samples`). Its
//! [`DataMap`] is not affine (dequantisation and logit): `score` and `sample`
//! work in logit space only.
//!
//! The best checkpoint is chosen by validation `sm_loss`, or for a flow by
//! validation `log_likelihood` with the experiment's `selection:
//! LogLikelihood` ([`crate::train::selection`]).

use rand::seq::SliceRandom;
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::data_map::DataMap;
use crate::device::Device;
use crate::error::{require_at_least, ConfigError};
use crate::model::ScoreModel;
use crate::objective::exact_sm_per_point;
use crate::registry::TaskConfig;
use crate::task::{Artifact, EpochSampler, Metrics, Split, Task};

pub use crate::image_data::grid::{grid_shape, tile_grid, BORDER};
use crate::image_data::grid::{legible_factor, upscale};
use crate::image_data::source::{ImageSet, ImageSource, Images};
use crate::image_data::transform::{LogitMap, PixelTransform, Quantization};

/// Rows expanded at once when computing exact SM (`points × D`).
const EVAL_ROWS: usize = 8192;
/// Images per log-density call.
const LL_ROWS: usize = 1000;
/// Largest accepted `samples`.
pub const MAX_SAMPLES: usize = 1024;
/// Default clamp of the logit transform.
pub const DEFAULT_ALPHA: f64 = 1e-3;

fn default_fraction() -> f64 {
    0.1
}
fn default_true() -> bool {
    true
}
fn default_alpha() -> f64 {
    DEFAULT_ALPHA
}
fn is_clamp(m: &LogitMap) -> bool {
    *m == LogitMap::Clamp
}
fn is_zero(v: &f64) -> bool {
    *v == 0.0
}
fn default_sm_eval_points() -> usize {
    200
}
fn default_samples() -> usize {
    64
}

/// Settings of `images`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImagesConfig {
    /// Where the images come from.
    pub source: ImageSource,
    /// Fraction of the (remaining) training images held out for validation
    /// (default 0.1: the 90/10 split).
    #[serde(default = "default_fraction")]
    pub val_fraction: f64,
    /// Fraction held out for testing, only for sources without a test set of
    /// their own (default 0.1).
    #[serde(default = "default_fraction")]
    pub test_fraction: f64,
    /// Model in logit space (default true).
    #[serde(default = "default_true")]
    pub logit: bool,
    /// Clamp `[α, 1 − α]` (or squeeze into it) before the logit (default 0.001).
    #[serde(default = "default_alpha")]
    pub logit_alpha: f64,
    /// How pixels are kept inside (0, 1) before the logit: `Clamp` (the
    /// paper's, the default; point masses at `±logit(α)`) or `Squeeze`
    /// (dequantise `(p + U)/L`, then `α + (1 − 2α)x`; no point masses).
    /// Only with `logit: true`.
    #[serde(default, skip_serializing_if = "is_clamp")]
    pub logit_map: LogitMap,
    /// Standard deviation of Gaussian noise added to every model coordinate
    /// (logit space with `logit: true`) of every split, after dequantising
    /// (default 0: none).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub noise_sigma: f64,
    /// Images of each held-out split on which the exact SM loss is computed
    /// (default 200; a fixed seeded subset).
    #[serde(default = "default_sm_eval_points")]
    pub sm_eval_points: usize,
    /// Model samples in the `samples` grid (default 64; 0 = none).
    #[serde(default = "default_samples")]
    pub samples: usize,
}

/// How many images each split holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SplitSizes {
    /// Training images.
    pub train: usize,
    /// Validation images.
    pub val: usize,
    /// Test images.
    pub test: usize,
}

/// A held-out split, dequantised once.
#[derive(Debug, Clone)]
pub struct EvalSplit {
    /// Model coordinates, `n × D` row-major.
    pub x: Vec<f64>,
    /// `Σ_d log |dy_d/dx_d|` of each image (0 without the logit).
    pub log_jacobian: Vec<f64>,
    /// The label of each image.
    pub labels: Vec<u8>,
    /// The images (indices) on which the exact SM loss is computed.
    pub sm_rows: Vec<usize>,
}

impl EvalSplit {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the split is empty.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The rows of the exact-SM subset, `sm_rows.len() × dim` row-major.
    pub fn sm_points(&self, dim: usize) -> Vec<f64> {
        let mut out = Vec::with_capacity(self.sm_rows.len() * dim);
        for &r in &self.sm_rows {
            out.extend_from_slice(&self.x[r * dim..(r + 1) * dim]);
        }
        out
    }
}

/// An `images` task.
pub struct ImagesTask {
    description: String,
    height: usize,
    width: usize,
    quantization: Quantization,
    transform: PixelTransform,
    train: Images,
    epochs: EpochSampler,
    val: EvalSplit,
    test: EvalSplit,
    samples: usize,
}

impl ImagesConfig {
    /// Checks the settings that need no data.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (f, v) in [
            ("val_fraction", self.val_fraction),
            ("test_fraction", self.test_fraction),
        ] {
            if !(v > 0.0 && v < 1.0) {
                return Err(ConfigError::new(f, format!("must lie in (0, 1), got {v}")));
            }
        }
        if !(self.logit_alpha > 0.0 && self.logit_alpha < 0.5) {
            return Err(ConfigError::new(
                "logit_alpha",
                format!("must lie in (0, 0.5), got {}", self.logit_alpha),
            ));
        }
        if !self.logit && self.logit_map == LogitMap::Squeeze {
            return Err(ConfigError::new(
                "logit_map",
                "Squeeze maps pixels before the logit: it needs `logit: true`",
            ));
        }
        if !(self.noise_sigma >= 0.0 && self.noise_sigma.is_finite()) {
            return Err(ConfigError::new(
                "noise_sigma",
                format!("must be finite and ≥ 0, got {}", self.noise_sigma),
            ));
        }
        require_at_least("sm_eval_points", self.sm_eval_points, 2)?;
        if self.samples > MAX_SAMPLES {
            return Err(ConfigError::new(
                "samples",
                format!("must be ≤ {MAX_SAMPLES}, got {}", self.samples),
            ));
        }
        self.source.validate()
    }

    /// The pixel transform these settings describe.
    pub fn transform(&self) -> PixelTransform {
        PixelTransform {
            logit: self.logit,
            alpha: self.logit_alpha,
            map: self.logit_map,
            noise_sigma: self.noise_sigma,
        }
    }

    /// Validates the settings, loads the images, splits them and
    /// dequantises the held-out splits, drawing everything random from `rng`.
    pub fn build_task(&self, rng: &mut dyn RngCore) -> Result<ImagesTask, ConfigError> {
        self.validate()?;
        let set = self.source.load()?;
        ImagesTask::new(self, set, rng)
    }
}

/// Mean and standard error of the mean (0 for one value).
fn mean_stderr(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|p| (p - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    (mean, (var / n).sqrt())
}

/// The likelihood metrics of one split from the model's log-density of each
/// image in model space (`log p_Y(y)`) and each image's log-Jacobian
/// `Σ log |dy/dx|`; `dim` = D, `levels` = L. See the module documentation
/// for the definitions; `log_likelihood_logit` only when `logit`.
pub fn likelihood_metrics(
    log_density: &[f64],
    log_jacobian: &[f64],
    dim: usize,
    levels: u32,
    logit: bool,
) -> Metrics {
    let mut m = Metrics::new();
    let pixel: Vec<f64> = log_density
        .iter()
        .zip(log_jacobian)
        .map(|(l, j)| l + j)
        .collect();
    let (ll, ll_se) = mean_stderr(&pixel);
    let d = dim as f64;
    let ln2 = std::f64::consts::LN_2;
    if logit {
        m.insert("log_likelihood_logit".into(), mean_stderr(log_density).0);
    }
    m.insert("log_likelihood".into(), ll);
    m.insert("log_likelihood_stderr".into(), ll_se);
    m.insert("bits_per_dim".into(), -ll / (d * ln2));
    m.insert(
        "bits_per_dim_discrete".into(),
        -(ll - d * (levels as f64).ln()) / (d * ln2),
    );
    m
}

/// The model's log-density of each row of `x` (`n × dim`), or `None` when it
/// has none.
pub fn log_densities(
    dev: &Device,
    model: &dyn ScoreModel,
    x: &[f64],
    dim: usize,
) -> Option<Vec<f64>> {
    crate::model::log_densities_in_chunks(dev, model, x, dim, LL_ROWS)
}

/// `n` samples of `model` (whose coordinates are `transform` of
/// `height × width` images) mapped back to [0, 1] and tiled by
/// [`tile_grid`]; `None` when the model cannot sample, `n` is 0 or the
/// model's dimension is not `height · width`.
pub fn sample_grid_with(
    model: &dyn ScoreModel,
    dev: &Device,
    rng: &mut dyn RngCore,
    n: usize,
    height: usize,
    width: usize,
    transform: PixelTransform,
) -> Option<(Vec<u8>, usize, usize)> {
    let d = height * width;
    if n == 0 || model.dim() != d {
        return None;
    }
    let s = model.as_flow()?.sample(dev, rng, n);
    if s.len() != n * d {
        tracing::warn!(
            "sample grid skipped: the model returned {} values for {n} samples of dimension {d}",
            s.len()
        );
        return None;
    }
    let px: Vec<f64> = s.iter().map(|&y| transform.inverse(y)).collect();
    Some(tile_grid(&px, n, height, width))
}

/// `n` samples of a model of `side × side` images in logit space (the
/// default `logit: true`), mapped back to [0, 1] by the sigmoid and tiled
/// by [`tile_grid`]: `(rgb, width, height)`, or `None` when the model cannot
/// sample.
pub fn sample_grid(
    model: &dyn ScoreModel,
    dev: &Device,
    rng: &mut dyn RngCore,
    n: usize,
    side: usize,
) -> Option<(Vec<u8>, usize, usize)> {
    let t = PixelTransform::clamped_logit(DEFAULT_ALPHA);
    sample_grid_with(model, dev, rng, n, side, side, t)
}

/// The transform in words, for the task's description.
fn describe_transform(t: &PixelTransform) -> String {
    let map = match (t.logit, t.map) {
        (false, _) => "dequantised pixels in [0, 1]".to_string(),
        (true, LogitMap::Clamp) => format!(
            "logit of the dequantised pixels clamped to [{0}, 1 − {0}]",
            t.alpha
        ),
        (true, LogitMap::Squeeze) => format!(
            "logit of the dequantised pixels (p + U)/L squeezed to {0} + (1 − 2·{0})x",
            t.alpha
        ),
    };
    if t.noise_sigma > 0.0 {
        format!("{map}, plus N(0, {}²) noise", t.noise_sigma)
    } else {
        map
    }
}

impl ImagesTask {
    /// Splits `set` and dequantises the held-out images, drawing from `rng`:
    /// the shuffle, then the seeds of validation, test and the SM subsets.
    pub fn new(
        cfg: &ImagesConfig,
        set: ImageSet,
        rng: &mut dyn RngCore,
    ) -> Result<Self, ConfigError> {
        let ImageSet {
            height,
            width,
            quantization,
            train,
            test,
        } = set;
        let n = train.count;
        let src = cfg.source.describe();
        let too_few = |what: String| {
            ConfigError::new(
                "source",
                format!("{src}: {n} training images are too few: {what}"),
            )
        };
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(rng);
        let (test, rest) = match test {
            Some(t) => (t, &order[..]),
            None => {
                let k = (n as f64 * cfg.test_fraction).floor() as usize;
                if k == 0 || k >= n {
                    return Err(too_few(format!(
                        "test_fraction {} holds out {k}",
                        cfg.test_fraction
                    )));
                }
                (train.select(&order[..k]), &order[k..])
            }
        };
        let n_val = (rest.len() as f64 * cfg.val_fraction).floor() as usize;
        if n_val == 0 || n_val >= rest.len() {
            return Err(too_few(format!(
                "val_fraction {} of {} leaves {n_val} for validation",
                cfg.val_fraction,
                rest.len()
            )));
        }
        let val = train.select(&rest[..n_val]);
        let train = train.select(&rest[n_val..]);
        let transform = cfg.transform();
        let d = height * width;
        let mut held_out = |imgs: &Images| {
            let mut r = ChaCha8Rng::seed_from_u64(rng.next_u64());
            let mut x = Vec::with_capacity(imgs.count * d);
            let log_jacobian = imgs
                .pixels
                .chunks_exact(d)
                .map(|p| transform.dequantize_into(quantization, p, &mut r, &mut x))
                .collect();
            let mut rows: Vec<usize> = (0..imgs.count).collect();
            rows.shuffle(&mut r);
            rows.truncate(cfg.sm_eval_points);
            rows.sort_unstable();
            EvalSplit {
                x,
                log_jacobian,
                labels: imgs.labels.clone(),
                sm_rows: rows,
            }
        };
        let val = held_out(&val);
        let test = held_out(&test);
        let description = format!(
            "images {src}: {} train / {} val / {} test images of {height}×{width} pixels, \
             {} levels, {}; exact sm_loss on {} fixed images per split",
            train.count,
            val.len(),
            test.len(),
            quantization.levels(),
            describe_transform(&transform),
            cfg.sm_eval_points.min(val.len()),
        );
        Ok(Self {
            description,
            height,
            width,
            quantization,
            transform,
            epochs: EpochSampler::new(train.count),
            train,
            val,
            test,
            samples: cfg.samples,
        })
    }

    /// `(height, width)` of every image.
    pub fn image_shape(&self) -> (usize, usize) {
        (self.height, self.width)
    }

    /// Pixel range and levels.
    pub fn quantization(&self) -> Quantization {
        self.quantization
    }

    /// The map from [0, 1] pixels to model coordinates.
    pub fn transform(&self) -> PixelTransform {
        self.transform
    }

    /// The training images (integer pixels).
    pub fn train_images(&self) -> &Images {
        &self.train
    }

    /// A held-out split as the model sees it.
    pub fn split_data(&self, split: Split) -> &EvalSplit {
        match split {
            Split::Validation => &self.val,
            Split::Test => &self.test,
        }
    }

    /// Images in each split.
    pub fn sizes(&self) -> SplitSizes {
        SplitSizes {
            train: self.train.count,
            val: self.val.len(),
            test: self.test.len(),
        }
    }
}

crate::module!(ImagesTask {});

impl Task for ImagesTask {
    fn dim(&self) -> usize {
        self.height * self.width
    }

    fn describe(&self) -> String {
        self.description.clone()
    }

    fn train_batch(&mut self, rng: &mut dyn RngCore, batch_size: usize) -> Vec<f64> {
        let d = self.dim();
        let mut out = Vec::with_capacity(batch_size * d);
        for _ in 0..batch_size {
            let i = self.epochs.next_index(rng);
            let px = &self.train.pixels[i * d..(i + 1) * d];
            self.transform
                .dequantize_into(self.quantization, px, rng, &mut out);
        }
        out
    }

    fn evaluate(&self, dev: &Device, model: Option<&dyn ScoreModel>, split: Split) -> Metrics {
        let Some(model) = model else {
            return Metrics::new();
        };
        let s = self.split_data(split);
        let d = self.dim();
        let mut m = Metrics::new();
        let per = exact_sm_per_point(dev, model, &s.sm_points(d), d, EVAL_ROWS);
        let (mean, se) = mean_stderr(&per);
        m.insert("sm_loss".into(), mean);
        m.insert("sm_loss_stderr".into(), se);
        if model.as_flow().is_none() {
            return m;
        }
        let Some(ll) = log_densities(dev, model, &s.x, d) else {
            return m;
        };
        let levels = self.quantization.levels();
        for (k, v) in likelihood_metrics(&ll, &s.log_jacobian, d, levels, self.transform.logit) {
            if v.is_finite() {
                m.insert(k, v);
            } else {
                tracing::warn!("{} {k} is {v}; not reported", split.prefix());
            }
        }
        m
    }

    fn selection_metric(&self) -> &'static str {
        "sm_loss"
    }

    fn log_likelihood_metric(&self, model: &dyn ScoreModel) -> Option<&'static str> {
        model.as_flow().map(|_| "log_likelihood")
    }

    fn state(&self) -> serde_json::Value {
        self.epochs.state()
    }

    fn set_state(&mut self, state: &serde_json::Value) -> Result<(), crate::task::TaskError> {
        self.epochs.set_state(state)
    }

    fn artifacts(
        &self,
        dev: &Device,
        model: Option<&dyn ScoreModel>,
        rng: &mut dyn RngCore,
    ) -> Vec<Artifact> {
        let Some(model) = model else {
            return Vec::new();
        };
        let grid = sample_grid_with(
            model,
            dev,
            rng,
            self.samples,
            self.height,
            self.width,
            self.transform,
        );
        grid.map(|(rgb, width, height)| Artifact::Image {
            name: "samples".into(),
            rgb,
            width,
            height,
        })
        .into_iter()
        .collect()
    }

    fn data_map(&self) -> DataMap {
        DataMap::Opaque {
            description: if self.transform.logit {
                "the images task dequantises the pixels, scales them to [0, 1] and takes a logit"
                    .into()
            } else {
                "the images task dequantises the pixels and scales them to [0, 1]".into()
            },
        }
    }

    fn held_out_points(&self, split: Split) -> Option<&[f64]> {
        Some(&self.split_data(split).x)
    }

    fn picture_points(&self, points: &[f64]) -> Option<(Vec<u8>, usize, usize)> {
        let d = self.dim();
        if points.is_empty() || !points.len().is_multiple_of(d) {
            return None;
        }
        let px: Vec<f64> = points.iter().map(|&y| self.transform.inverse(y)).collect();
        let (rgb, w, h) = tile_grid(&px, points.len() / d, self.height, self.width);
        Some(upscale(&rgb, w, h, legible_factor(self.height)))
    }
}

impl TaskConfig for ImagesConfig {
    fn build(&self, _dev: &Device, rng: &mut ChaCha8Rng) -> Result<Box<dyn Task>, ConfigError> {
        Ok(Box::new(self.build_task(rng)?))
    }
}

crate::register_plugin!(
    TaskConfig,
    "images",
    "density estimation on images (MNIST, Fashion-MNIST, 8×8 digits, IDX files): dequantised, logit space, exact SM on a fixed subset, exact log-likelihood and bits/dim for flows, sample grids",
    "(source: Digits, val_fraction: 0.1, test_fraction: 0.1, logit: true, logit_alpha: 0.001, logit_map: Clamp, noise_sigma: 0.0, sm_eval_points: 200, samples: 64)",
    ImagesConfig
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_shapes() {
        assert_eq!(grid_shape(64), (8, 8));
        assert_eq!(grid_shape(10), (4, 3));
        assert_eq!(grid_shape(1), (1, 1));
        let (rgb, w, h) = tile_grid(&[0.0, 1.0, f64::NAN, 2.0], 1, 2, 2);
        assert_eq!((w, h), (4, 4));
        assert_eq!(rgb.len(), 4 * 4 * 3);
        let at = |y: usize, x: usize| &rgb[(y * w + x) * 3..(y * w + x) * 3 + 3];
        assert_eq!(at(0, 0), [BORDER; 3]);
        assert_eq!(at(1, 1), [0, 0, 0]);
        assert_eq!(at(1, 2), [255, 255, 255]);
        assert_eq!(at(2, 1), [255, 0, 0]);
        assert_eq!(at(2, 2), [255, 255, 255]);
    }

    #[test]
    fn likelihood_metrics_follow_the_formulas() {
        let m = likelihood_metrics(&[-10.0, -20.0], &[3.0, 5.0], 4, 256, true);
        assert_eq!(m["log_likelihood_logit"], -15.0);
        assert_eq!(m["log_likelihood"], -11.0);
        let bpd = 11.0 / (4.0 * std::f64::consts::LN_2);
        assert!((m["bits_per_dim"] - bpd).abs() < 1e-12);
        assert!((m["bits_per_dim_discrete"] - (bpd + 8.0)).abs() < 1e-12);
        assert!((m["log_likelihood_stderr"] - 4.0).abs() < 1e-12);
        let m = likelihood_metrics(&[-1.0], &[0.0], 1, 17, false);
        assert!(!m.contains_key("log_likelihood_logit"));
        assert_eq!(m["log_likelihood_stderr"], 0.0);
    }
}
