//! `tabular`: density estimation on a table of real vectors (UCI wine,
//! Parkinsons, any numeric CSV, or draws from a synthetic target), as in the
//! DKEF experiments of the sliced score matching paper.
//!
//! Data flow: `build` validates the settings and calls
//! [`TabularConfig::prepare`], which loads a [`Table`] (`source.rs`), cleans
//! it (wine: dequantise; Parkinsons: drop correlated features), shuffles,
//! splits, whitens every split with statistics of the training split only
//! and adds `N(0, noise_std²)` noise once (`preprocess.rs`), every random
//! draw from the experiment's task stream. Training batches are shuffled
//! epochs over the training split. Evaluation reports on a held-out split:
//! * `sm_loss`, `sm_loss_stderr`: the exact score-matching loss
//!   `tr ∇s + ½‖s‖²`, mean over points and its standard error;
//! * when the model has a log-density *and* an importance proposal
//!   (`likelihood.rs`): `log_likelihood` = mean `log p̃(x)` − `log Ẑ`, its
//!   `log_likelihood_stderr` over points (ignoring the error of `log Ẑ`),
//!   `log_normalizer` (`log Ẑ`) with its delta-method
//!   `log_normalizer_stderr`, and `importance_ess`. The proposal draws come
//!   from a stream fixed per split, so evaluations are comparable. All of
//!   these are in whitened (and noised) coordinates.
//!
//! The whitening is the task's [`crate::data_map::DataMap`] (`y = M (x − μ)`;
//! the identity with `preprocessing: None`): the run saves it, and `score`
//! and `sample` convert through it to the CSV's own units. The noise is added
//! after whitening, so the model's density is that of the whitened data
//! smoothed by `N(0, noise_std²·I)`; in the data's units that is the data
//! smoothed by `N(0, noise_std²·M⁻¹M⁻ᵀ)`.
//!
//! The best checkpoint is chosen by validation `sm_loss`.

pub mod likelihood;
pub mod preprocess;
pub mod source;

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::device::Device;
use crate::error::{require_at_least, ConfigError};
use crate::experiment::derive_seed;
use crate::model::ScoreModel;
use crate::plugins::tasks::shared::{epoch_batch, insert_exact_sm};
use crate::registry::TaskConfig;
use crate::task::{EpochSampler, Metrics, Split, Task};

use preprocess::{Preprocessing, SplitSizes, Splits, Whitening};
use source::{SourceSpec, Table};

fn default_noise_std() -> f64 {
    0.05
}
fn default_fraction() -> f64 {
    0.1
}
fn default_max_split() -> usize {
    1000
}
fn default_importance_samples() -> usize {
    10_000
}

/// Largest accepted `importance_samples`.
pub const MAX_IMPORTANCE_SAMPLES: usize = 10_000_000;

/// An importance-sampling effective sample size below this fraction of the
/// samples triggers a warning.
pub const MIN_ESS_FRACTION: f64 = 0.01;

/// Settings of `tabular`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TabularConfig {
    /// Where the rows come from.
    pub source: SourceSpec,
    /// Whitening fitted on the training split (default `Pca`; `None` trains
    /// on the columns as they are).
    #[serde(default)]
    pub preprocessing: Preprocessing,
    /// Standard deviation of the Gaussian noise added once to every split
    /// after whitening (default 0.05; 0 = none).
    #[serde(default = "default_noise_std")]
    pub noise_std: f64,
    /// Test rows = `min(max_test, ⌊N·test_fraction⌋)` (default 0.1).
    #[serde(default = "default_fraction")]
    pub test_fraction: f64,
    /// Validation rows = `min(max_val, ⌊(N − test)·val_fraction⌋)` (default 0.1).
    #[serde(default = "default_fraction")]
    pub val_fraction: f64,
    /// Cap on the test rows (default 1000).
    #[serde(default = "default_max_split")]
    pub max_test: usize,
    /// Cap on the validation rows (default 1000).
    #[serde(default = "default_max_split")]
    pub max_val: usize,
    /// Proposal samples for `log Z` (default 10 000; 0 = no log-likelihood).
    /// Only used when the model offers an importance proposal.
    #[serde(default = "default_importance_samples")]
    pub importance_samples: usize,
}

/// The prepared data of a `tabular` task, as [`TabularConfig::prepare`] makes it.
#[derive(Debug, Clone)]
pub struct TabularData {
    /// One line naming the source and the preprocessing.
    pub source: String,
    /// Rows of the cleaned table (all splits together).
    pub rows: usize,
    /// Columns after cleaning (the data dimension).
    pub dim: usize,
    /// A label per kept column.
    pub columns: Vec<String>,
    /// Labels of the columns the correlation filter dropped.
    pub dropped: Vec<String>,
    /// Dequantisation gap of each kept column (empty when not dequantised).
    pub gaps: Vec<f64>,
    /// Split sizes.
    pub sizes: SplitSizes,
    /// The shuffled splits before whitening and noise.
    pub raw: Splits,
    /// The whitening fitted on `raw.train`.
    pub whitening: Whitening,
    /// The splits the task uses: whitened, plus noise.
    pub data: Splits,
}

impl TabularConfig {
    /// Checks the settings that need no data.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(self.noise_std.is_finite() && self.noise_std >= 0.0) {
            return Err(ConfigError::new(
                "noise_std",
                format!("must be finite and ≥ 0, got {}", self.noise_std),
            ));
        }
        for (f, v) in [
            ("test_fraction", self.test_fraction),
            ("val_fraction", self.val_fraction),
        ] {
            if !(v > 0.0 && v < 1.0) {
                return Err(ConfigError::new(f, format!("must lie in (0, 1), got {v}")));
            }
        }
        require_at_least("max_test", self.max_test, 2)?;
        require_at_least("max_val", self.max_val, 2)?;
        if self.importance_samples > MAX_IMPORTANCE_SAMPLES {
            return Err(ConfigError::new(
                "importance_samples",
                format!(
                    "must be ≤ {MAX_IMPORTANCE_SAMPLES}, got {}",
                    self.importance_samples
                ),
            ));
        }
        self.source.validate()
    }

    /// Validates the settings, loads, cleans, shuffles, splits, whitens and
    /// noises the data, drawing everything random from `rng` (in that order).
    pub fn prepare(&self, rng: &mut dyn RngCore) -> Result<TabularData, ConfigError> {
        self.validate()?;
        let mut table: Table = self.source.load(rng)?;
        let gaps = if self.source.dequantizes() {
            preprocess::dequantize(&mut table, rng)
        } else {
            Vec::new()
        };
        let mut dropped = Vec::new();
        if let Some(threshold) = self.source.correlation_filter() {
            let (kept, d) = preprocess::drop_correlated(&table, threshold);
            table = kept;
            dropped = d;
        }
        let dim = table.cols;
        let sizes = preprocess::split_sizes(
            table.rows,
            dim,
            self.test_fraction,
            self.val_fraction,
            self.max_test,
            self.max_val,
        )
        .map_err(|m| ConfigError::new("source", format!("{}: {m}", self.source.describe())))?;
        preprocess::shuffle_rows(&mut table.data, dim, rng);
        let raw = preprocess::split(&table.data, dim, sizes);
        let whitening = Whitening::fit(&raw.train, dim, self.preprocessing, &table.labels)
            .map_err(|m| ConfigError::new("source", format!("{}: {m}", self.source.describe())))?;
        let mut data = raw.map(|x| whitening.apply(x));
        for x in [&mut data.train, &mut data.val, &mut data.test] {
            preprocess::add_noise(x, self.noise_std, rng);
        }
        let source = format!(
            "{} ({} rows × {dim} columns{}; {:?}{})",
            self.source.describe(),
            table.rows,
            if dropped.is_empty() {
                String::new()
            } else {
                format!(", {} correlated dropped", dropped.len())
            },
            self.preprocessing,
            if self.noise_std > 0.0 {
                format!(", noise {}", self.noise_std)
            } else {
                String::new()
            }
        );
        Ok(TabularData {
            source,
            rows: table.rows,
            dim,
            columns: table.labels,
            dropped,
            gaps,
            sizes,
            raw,
            whitening,
            data,
        })
    }
}

/// A `tabular` task.
pub struct Tabular {
    description: String,
    dim: usize,
    data: Splits,
    whitening: Whitening,
    epochs: EpochSampler,
    importance_samples: usize,
    importance_seed: u64,
}

impl Tabular {
    /// A task over prepared data; `importance_seed` fixes the proposal draws
    /// of each split.
    pub fn new(prepared: TabularData, importance_samples: usize, importance_seed: u64) -> Self {
        let s = prepared.sizes;
        let description = format!(
            "tabular {}: {} train / {} val / {} test rows",
            prepared.source, s.train, s.val, s.test
        );
        Self {
            description,
            dim: prepared.dim,
            epochs: EpochSampler::new(s.train),
            data: prepared.data,
            whitening: prepared.whitening,
            importance_samples,
            importance_seed,
        }
    }

    fn split(&self, split: Split) -> &[f64] {
        match split {
            Split::Validation => &self.data.val,
            Split::Test => &self.data.test,
        }
    }

    /// The seed of the proposal draws used when evaluating `split`.
    pub fn importance_seed(&self, split: Split) -> u64 {
        let stream = match split {
            Split::Validation => 1,
            Split::Test => 2,
        };
        derive_seed(self.importance_seed, stream)
    }
}

crate::module!(Tabular {});

impl Task for Tabular {
    fn dim(&self) -> usize {
        self.dim
    }

    fn describe(&self) -> String {
        self.description.clone()
    }

    fn train_batch(&mut self, rng: &mut dyn RngCore, batch_size: usize) -> Vec<f64> {
        epoch_batch(
            &mut self.epochs,
            rng,
            &self.data.train,
            self.dim,
            batch_size,
        )
    }

    fn evaluate(&self, dev: &Device, model: Option<&dyn ScoreModel>, split: Split) -> Metrics {
        let Some(model) = model else {
            return Metrics::new();
        };
        let x = self.split(split);
        let d = self.dim;
        let mut m = Metrics::new();
        insert_exact_sm(&mut m, dev, model, x, d);
        if self.importance_samples == 0 {
            return m;
        }
        let mut rng = ChaCha8Rng::seed_from_u64(self.importance_seed(split));
        let Some(est) = likelihood::estimate(dev, model, x, d, self.importance_samples, &mut rng)
        else {
            return m;
        };
        let k = est.samples as f64;
        if est.ess < MIN_ESS_FRACTION * k {
            tracing::warn!(
                "{} log-likelihood is unreliable: importance-sampling effective sample size \
                 {:.1} of {} samples (< {}%); the proposal does not cover the model's density",
                split.prefix(),
                est.ess,
                est.samples,
                MIN_ESS_FRACTION * 100.0
            );
        }
        if !est.log_likelihood.is_finite() {
            tracing::warn!(
                "{} log-likelihood is not finite (mean log p̃ {}, log Ẑ {}); not reported",
                split.prefix(),
                est.mean_log_density,
                est.log_normalizer
            );
        }
        for (name, v) in [
            ("log_likelihood", est.log_likelihood),
            ("log_likelihood_stderr", est.log_likelihood_stderr),
            ("log_normalizer", est.log_normalizer),
            ("log_normalizer_stderr", est.log_normalizer_stderr),
            ("importance_ess", est.ess),
        ] {
            if v.is_finite() && est.log_likelihood.is_finite() {
                m.insert(name.into(), v);
            }
        }
        m
    }

    fn selection_metric(&self) -> &'static str {
        "sm_loss"
    }

    fn data_map(&self) -> crate::data_map::DataMap {
        self.whitening.data_map()
    }

    fn train_points(&self) -> Option<&[f64]> {
        Some(&self.data.train)
    }

    fn held_out_points(&self, split: Split) -> Option<&[f64]> {
        Some(self.split(split))
    }

    fn state(&self) -> serde_json::Value {
        self.epochs.state()
    }

    fn set_state(&mut self, state: &serde_json::Value) -> Result<(), crate::task::TaskError> {
        self.epochs.set_state(state)
    }
}

impl TaskConfig for TabularConfig {
    fn build(&self, _dev: &Device, rng: &mut ChaCha8Rng) -> Result<Box<dyn Task>, ConfigError> {
        let prepared = self.prepare(rng)?;
        let seed = rng.next_u64();
        Ok(Box::new(Tabular::new(
            prepared,
            self.importance_samples,
            seed,
        )))
    }
}

crate::register_plugin!(
    TaskConfig,
    "tabular",
    "density estimation on a table (UCI wine, Parkinsons, CSV, synthetic draws): whitened splits, exact SM loss, IS log-likelihood",
    "(source: RedWine, preprocessing: Pca, noise_std: 0.05, max_test: 1000, max_val: 1000, importance_samples: 10000)",
    TabularConfig
);
