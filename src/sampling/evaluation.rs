//! Langevin sampling at every evaluation of a training run: a samples-vs-data
//! metric for tasks of any dimension, and pictures.
//!
//! Data flow: the training loop calls [`metrics`] after the task's own
//! evaluation of a split, and [`artifacts`] with the task's own artifacts.
//! Both start `chains` Langevin chains ([`SamplingEval::init`]: by default a
//! Gaussian matched to each coordinate of the training points) and run the
//! sampler of [`super::langevin`] on the model, in the model's coordinates.
//!
//! * [`metrics`] compares the chains' final points with (up to 1000 of) the
//!   split's held-out points: `langevin_sliced_wasserstein` (SW₂ over 128
//!   random directions) and `langevin_mmd2` (unbiased squared MMD, RBF
//!   kernel with the median distance of those held-out points as bandwidth),
//!   see [`super::distance`]; and `langevin_acceptance` with MALA. Lower is
//!   better; both carry a finite-sample floor (the value two independent data
//!   sets of the same sizes would give), so compare runs at equal settings.
//!   The chains and directions come from a generator seeded by the
//!   experiment's seed and the split only: the same model gives the same
//!   numbers at every evaluation, and in every run with that seed.
//! * [`artifacts`]: for a 2-D task, the [`super::picture::field_picture`]
//!   (`field_and_samples`): learned log-density or score field beside the
//!   true one, Langevin samples over the training data; for a task with a
//!   picture of its points (image grids), up to 64 Langevin samples beside
//!   64 samples of the model itself when it is a flow (`langevin_samples`).
//!
//! Tasks without held-out data points (autoencoders' latent codes), or with
//! a conditional model, get neither. A sampler that diverges is reported as
//! a warning, not a metric. MALA is used when asked for and the model has a
//! log-density; other models run plain Langevin.

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::distance::{median_bandwidth, mmd2, sliced_wasserstein};
use super::init::Init;
use super::langevin::{self, Annealing, Chains, Langevin};
use super::picture::{field_picture, side_by_side, Field2d};
use super::{ModelDensity, SampleError, TargetDensity};
use crate::device::Device;
use crate::error::{require_positive, ConfigError};
use crate::experiment::{derive_seed, streams};
use crate::model::ScoreModel;
use crate::task::{Artifact, Metrics, Split, Task};

/// Random directions of the sliced Wasserstein distance.
pub const DIRECTIONS: usize = 128;
/// Most held-out points the samples are compared with.
pub const MAX_REFERENCE: usize = 1000;
/// Most samples in an image grid.
pub const MAX_GRID: usize = 64;
/// Largest accepted `chains`.
pub const MAX_CHAINS: usize = 100_000;

fn default_chains() -> usize {
    128
}
fn default_init() -> Init {
    Init::Gaussian
}

/// Settings of the evaluation-time sampling (`sampling: (…)` in an experiment).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamplingEval {
    /// Chains per evaluation (default 128; 0 switches the metrics and
    /// pictures off). The cost is `chains × steps` score evaluations per
    /// split and per picture.
    #[serde(default = "default_chains")]
    pub chains: usize,
    /// Langevin steps (per annealing level; default 100).
    #[serde(default = "langevin::default_steps")]
    pub steps: usize,
    /// Step size `ε` in the model's coordinates (default 0.01).
    #[serde(default = "langevin::default_step_size")]
    pub step_size: f64,
    /// Annealing levels (default none).
    #[serde(default)]
    pub annealed: Option<Annealing>,
    /// Metropolis correction for models with a log-density (default false).
    #[serde(default)]
    pub mala: bool,
    /// Where chains start (default `Gaussian`: matched to each coordinate of
    /// the training points, or the validation points when the task keeps no
    /// training points).
    #[serde(default = "default_init")]
    pub init: Init,
}

impl Default for SamplingEval {
    fn default() -> Self {
        Self {
            chains: default_chains(),
            steps: langevin::default_steps(),
            step_size: langevin::default_step_size(),
            annealed: None,
            mala: false,
            init: default_init(),
        }
    }
}

impl SamplingEval {
    /// Checks the settings; errors name the field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.chains > MAX_CHAINS {
            return Err(ConfigError::new(
                "chains",
                format!("must be ≤ {MAX_CHAINS}, got {}", self.chains),
            ));
        }
        if self.chains == 1 {
            return Err(ConfigError::new(
                "chains",
                "must be 0 (off) or ≥ 2 (the distances need two samples)",
            ));
        }
        if let Init::Noise { std } = self.init {
            require_positive("init.Noise.std", std)?;
        }
        self.langevin().validate().map_err(|e| match e {
            SampleError::Setting { field, message } => ConfigError::new(field, message),
            other => ConfigError::new("", other.to_string()),
        })
    }

    /// Whether sampling runs at all.
    pub fn enabled(&self) -> bool {
        self.chains > 0
    }

    /// The sampler these settings describe.
    pub fn langevin(&self) -> Langevin {
        Langevin {
            steps: self.steps,
            step_size: self.step_size,
            annealed: self.annealed,
            mala: self.mala,
        }
    }
}

/// `n` chains on `density` with the settings, started from the task's data.
fn run_chains(
    s: &SamplingEval,
    density: &ModelDensity<'_>,
    task: &dyn Task,
    n: usize,
    rng: &mut dyn RngCore,
) -> Result<Chains, SampleError> {
    let d = task.dim();
    let data = task
        .train_points()
        .or_else(|| task.held_out_points(Split::Validation));
    let x0 = s.init.points(n, d, data, rng)?;
    let mut l = s.langevin();
    l.mala = l.mala && density.has_log_density();
    langevin::sample(density, x0, &l, rng)
}

/// The model as a density, when sampling applies to it and the task.
fn density_for<'a>(
    s: &SamplingEval,
    dev: &'a Device,
    task: &dyn Task,
    model: Option<&'a dyn ScoreModel>,
) -> Option<ModelDensity<'a>> {
    let model = model?;
    if !s.enabled() || model.dim() != task.dim() {
        return None;
    }
    ModelDensity::new(dev, model).ok()
}

/// The samples-vs-data metrics of `model` on `split` (see the module
/// documentation); empty when sampling is off or does not apply.
pub fn metrics(
    s: &SamplingEval,
    dev: &Device,
    task: &dyn Task,
    model: Option<&dyn ScoreModel>,
    split: Split,
    seed: u64,
) -> Metrics {
    let mut m = Metrics::new();
    let Some(density) = density_for(s, dev, task, model) else {
        return m;
    };
    let Some(held_out) = task.held_out_points(split) else {
        return m;
    };
    let d = task.dim();
    let reference = &held_out[..held_out.len().min(MAX_REFERENCE * d)];
    if reference.len() < 2 * d {
        return m;
    }
    let split_stream = match split {
        Split::Validation => 1,
        Split::Test => 2,
    };
    let base = derive_seed(derive_seed(seed, streams::SAMPLING), split_stream);
    let mut chain_rng = ChaCha8Rng::seed_from_u64(derive_seed(base, 1));
    let chains = match run_chains(s, &density, task, s.chains, &mut chain_rng) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(
                "{} Langevin sampling failed, no langevin_* metrics: {e}",
                split.prefix()
            );
            return m;
        }
    };
    let mut direction_rng = ChaCha8Rng::seed_from_u64(derive_seed(base, 2));
    m.insert(
        "langevin_sliced_wasserstein".into(),
        sliced_wasserstein(&chains.points, reference, d, DIRECTIONS, &mut direction_rng),
    );
    if let Ok(h) = median_bandwidth(reference, d) {
        m.insert(
            "langevin_mmd2".into(),
            mmd2(&chains.points, reference, d, h),
        );
    }
    if let Some(a) = chains.acceptance {
        m.insert("langevin_acceptance".into(), a);
    }
    m
}

/// The sampling pictures of `model` (see the module documentation), drawn
/// with `rng`; empty when sampling is off or the task has no picture.
pub fn artifacts(
    s: &SamplingEval,
    dev: &Device,
    task: &dyn Task,
    model: Option<&dyn ScoreModel>,
    rng: &mut dyn RngCore,
) -> Vec<Artifact> {
    let Some(density) = density_for(s, dev, task, model) else {
        return Vec::new();
    };
    let d = task.dim();
    let image = |name: &str, (rgb, width, height): (Vec<u8>, usize, usize)| Artifact::Image {
        name: name.into(),
        rgb,
        width,
        height,
    };
    let warn = |e: &dyn std::fmt::Display| {
        tracing::warn!("sampling picture skipped: {e}");
        Vec::new()
    };
    if d == 2 {
        // Drawn over the data: a task without data points (latent codes) gets none.
        let Some(data) = task
            .train_points()
            .or_else(|| task.held_out_points(Split::Validation))
        else {
            return Vec::new();
        };
        let chains = match run_chains(s, &density, task, s.chains, rng) {
            Ok(c) => c,
            Err(e) => return warn(&e),
        };
        let truth = task.truth().map(TargetDensity);
        let field = Field2d {
            model: &density,
            log_density: density.has_log_density(),
            truth: truth.as_ref().map(|t| t as &dyn super::Density),
            data,
            samples: &chains.points,
        };
        return match field_picture(&field) {
            Ok(p) => vec![image("field_and_samples", p)],
            Err(e) => warn(&e),
        };
    }
    if task.picture_points(&vec![0.0; d]).is_none() {
        return Vec::new();
    }
    let n = s.chains.min(MAX_GRID);
    let chains = match run_chains(s, &density, task, n, rng) {
        Ok(c) => c,
        Err(e) => return warn(&e),
    };
    let Some(langevin) = task.picture_points(&chains.points) else {
        return Vec::new();
    };
    let flow = model
        .and_then(|m| m.as_flow())
        .map(|f| f.sample(dev, rng, n))
        .and_then(|x| task.picture_points(&x));
    let mut parts = vec![("Langevin", &langevin.0[..], langevin.1, langevin.2)];
    if let Some(f) = &flow {
        parts.push(("flow", &f.0[..], f.1, f.2));
    }
    match side_by_side(&parts) {
        Ok(p) => vec![image("langevin_samples", p)],
        Err(e) => warn(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_checked_by_field() {
        assert!(SamplingEval::default().validate().is_ok());
        let bad = |f: fn(&mut SamplingEval)| {
            let mut s = SamplingEval::default();
            f(&mut s);
            s.validate().unwrap_err().field
        };
        assert_eq!(bad(|s| s.chains = 1), "chains");
        assert_eq!(bad(|s| s.steps = 0), "steps");
        assert_eq!(bad(|s| s.step_size = -1.0), "step_size");
        assert_eq!(bad(|s| s.init = Init::Noise { std: 0.0 }), "init.Noise.std");
        assert_eq!(
            bad(|s| {
                s.annealed = Some(Annealing {
                    sigma_max: 0.1,
                    sigma_min: 1.0,
                    levels: 3,
                })
            }),
            "annealed"
        );
        let off = SamplingEval {
            chains: 0,
            ..SamplingEval::default()
        };
        assert!(off.validate().is_ok() && !off.enabled());
    }
}
