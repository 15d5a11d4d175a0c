//! Binarised images for the latent-variable tasks.
//!
//! Data flow: the settings name an [`ImageSource`]; its images are loaded
//! (integer pixels `0 … m`), the training images shuffled with the task's
//! stream and `val_fraction` of them held out; a source without a test set
//! of its own first holds out `test_fraction`. Training batches are drawn in
//! shuffled epochs and binarised *dynamically*: pixel `p` becomes 1 with
//! probability `p / m`, afresh every time an image is drawn. Validation and
//! test images are binarised once, from seeds fixed at build time, so every
//! evaluation sees the same binary images.

use rand::seq::SliceRandom;
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::ConfigError;
use crate::image_data::source::{ImageSource, Images};
use crate::image_data::transform::Quantization;
use crate::task::{EpochSampler, Split};

fn default_fraction() -> f64 {
    0.1
}

/// Which images and how they are split, as written in RON.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// Where the images come from (`Mnist(dir: "data/mnist")`, `Digits`, …).
    pub source: ImageSource,
    /// Fraction of the training images held out for validation (default 0.1).
    #[serde(default = "default_fraction")]
    pub val_fraction: f64,
    /// Fraction held out for testing, only for sources without a test set of
    /// their own (default 0.1).
    #[serde(default = "default_fraction")]
    pub test_fraction: f64,
}

impl DataConfig {
    /// Checks the fractions and the source's settings without reading files.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (field, f) in [
            ("data.val_fraction", self.val_fraction),
            ("data.test_fraction", self.test_fraction),
        ] {
            if !(f > 0.0 && f < 1.0) {
                return Err(ConfigError::new(
                    field,
                    format!("must be in (0, 1), got {f}"),
                ));
            }
        }
        self.source.validate().map_err(|e| e.within("data"))
    }
}

/// Binarised images split into train (dynamically binarised), validation
/// and test (binarised once).
#[derive(Debug, Clone)]
pub struct BinaryImages {
    /// Rows of every image.
    pub height: usize,
    /// Columns of every image.
    pub width: usize,
    quantization: Quantization,
    train: Images,
    /// The order of the training images (saved with checkpoints).
    pub epochs: EpochSampler,
    val: Vec<f64>,
    test: Vec<f64>,
    source: String,
}

impl BinaryImages {
    /// Loads and splits the images, drawing the split and the held-out
    /// binarisations from `rng`.
    pub fn load(cfg: &DataConfig, rng: &mut dyn RngCore) -> Result<Self, ConfigError> {
        cfg.validate()?;
        let set = cfg.source.load().map_err(|e| e.within("data"))?;
        let (height, width) = (set.height, set.width);
        let mut train = set.train;
        let too_few = |what: String| ConfigError::new("data", what);
        let test = match set.test {
            Some(t) => t,
            None => {
                let mut order: Vec<usize> = (0..train.count).collect();
                order.shuffle(rng);
                let n_test = (train.count as f64 * cfg.test_fraction).floor() as usize;
                if n_test == 0 || n_test >= train.count {
                    return Err(too_few(format!(
                        "test_fraction {} of {} images leaves {n_test} for testing",
                        cfg.test_fraction, train.count
                    )));
                }
                let t = train.select(&order[..n_test]);
                train = train.select(&order[n_test..]);
                t
            }
        };
        let mut rest: Vec<usize> = (0..train.count).collect();
        rest.shuffle(rng);
        let n_val = (rest.len() as f64 * cfg.val_fraction).floor() as usize;
        if n_val == 0 || n_val >= rest.len() {
            return Err(too_few(format!(
                "val_fraction {} of {} images leaves {n_val} for validation",
                cfg.val_fraction,
                rest.len()
            )));
        }
        let val = train.select(&rest[..n_val]);
        let train = train.select(&rest[n_val..]);
        let quantization = set.quantization;
        let mut fixed = |imgs: &Images| {
            let mut r = ChaCha8Rng::seed_from_u64(rng.next_u64());
            binarize(&imgs.pixels, quantization, &mut r)
        };
        let val = fixed(&val);
        let test = fixed(&test);
        Ok(Self {
            height,
            width,
            quantization,
            epochs: EpochSampler::new(train.count),
            train,
            val,
            test,
            source: cfg.source.describe(),
        })
    }

    /// Pixels per image.
    pub fn dim(&self) -> usize {
        self.height * self.width
    }

    /// One line: source, split sizes, image size.
    pub fn describe(&self) -> String {
        let d = self.dim();
        format!(
            "{}: {} train (binarised afresh each draw) / {} val / {} test images of {}×{}",
            self.source,
            self.train.count,
            self.val.len() / d,
            self.test.len() / d,
            self.height,
            self.width
        )
    }

    /// `n` training images (row-major `n × D`, values 0 or 1), the next of
    /// the shuffled epochs, each binarised afresh.
    pub fn train_batch(&mut self, rng: &mut dyn RngCore, n: usize) -> Vec<f64> {
        let d = self.dim();
        let mut out = Vec::with_capacity(n * d);
        for _ in 0..n {
            let i = self.epochs.next_index(rng);
            let px = &self.train.pixels[i * d..(i + 1) * d];
            out.extend(binarize(px, self.quantization, rng));
        }
        out
    }

    /// The held-out binary images of `split` (row-major, values 0 or 1).
    pub fn split(&self, split: Split) -> &[f64] {
        match split {
            Split::Validation => &self.val,
            Split::Test => &self.test,
        }
    }
}

/// Pixel `p` becomes 1 with probability `p / m`.
pub fn binarize(pixels: &[u8], q: Quantization, rng: &mut dyn RngCore) -> Vec<f64> {
    pixels
        .iter()
        .map(|&p| {
            let prob = q.scale(p);
            if rng.gen::<f64>() < prob {
                1.0
            } else {
                0.0
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binarisation_has_the_pixel_intensity_as_mean() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let q = Quantization::DIGITS;
        let px = vec![4u8; 20_000];
        let b = binarize(&px, q, &mut rng);
        let mean = b.iter().sum::<f64>() / b.len() as f64;
        assert!((mean - 0.25).abs() < 0.01, "mean {mean}");
        assert!(b.iter().all(|&v| v == 0.0 || v == 1.0));
        assert!(binarize(&[0, 16], q, &mut rng) == vec![0.0, 1.0]);
    }

    #[test]
    fn digits_split_into_disjoint_sizes() {
        let cfg = DataConfig {
            source: ImageSource::Digits,
            val_fraction: 0.1,
            test_fraction: 0.1,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut data = BinaryImages::load(&cfg, &mut rng).unwrap();
        let d = data.dim();
        assert_eq!(d, 64);
        let (nv, nt) = (data.val.len() / d, data.test.len() / d);
        assert_eq!(nt, 179);
        assert_eq!(data.train.count + nv + nt, 1797);
        let batch = data.train_batch(&mut rng, 5);
        assert_eq!(batch.len(), 5 * d);
        let bad = DataConfig {
            val_fraction: 1.5,
            ..cfg
        };
        let err = BinaryImages::load(&bad, &mut rng).unwrap_err();
        assert!(err.to_string().contains("data.val_fraction"), "{err}");
    }
}
