//! `dsm`: denoising score matching (Vincent 2011) with Gaussian noise σ:
//! `x̃ = x + σε`, loss `½E‖s(x̃) + ε/σ‖²` (textbook scaling).
//!
//! The original SSM code reports `½E‖σ²s(x̃) + σε‖²`, which is σ⁴ times the
//! textbook loss (same optimum, different values); choose it with
//! `scaling: Original`. With `noise_samples: M`, each point gets M noise draws.

use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use crate::autodiff::Graph;
use crate::closed_form::CoefficientCriterion;
use crate::device::Mat;
use crate::error::{require_at_least, require_positive, ConfigError};
use crate::model::ScoreModel;
use crate::objective::{pad_to_width, LossContext, LossError, Objective};
use crate::registry::ObjectiveConfig;

fn one() -> usize {
    1
}

/// How the DSM loss value is scaled.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub enum DsmScaling {
    /// `½E‖s(x̃) + ε/σ‖²`.
    #[default]
    Textbook,
    /// `½E‖σ²s(x̃) + σε‖²` = σ⁴ × textbook, as in the original SSM code.
    Original,
}

/// Settings of `dsm`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DsmConfig {
    /// Noise standard deviation σ > 0.
    pub sigma: f64,
    /// Noise draws per data point (default 1).
    #[serde(default = "one")]
    pub noise_samples: usize,
    /// Reported scaling of the loss (default `Textbook`).
    #[serde(default)]
    pub scaling: DsmScaling,
}

/// Denoising score matching.
pub struct Dsm {
    sigma: f64,
    noise_samples: usize,
    scaling: DsmScaling,
}

impl Objective for Dsm {
    fn loss(
        &self,
        g: &mut Graph,
        model: &dyn ScoreModel,
        x: &Mat,
        ctx: &mut LossContext<'_>,
    ) -> Result<Mat, LossError> {
        // Noise perturbs the model's `d` coordinates; the conditioning
        // columns of a conditional model (after them) stay as they are.
        let (n, width) = x.shape();
        let d = model.dim();
        let rows = n * self.noise_samples;
        let xr = if self.noise_samples == 1 {
            x.clone()
        } else {
            g.tile_blocks(x, self.noise_samples)
        };
        let eps: Vec<f64> = (0..rows * d)
            .map(|_| StandardNormal.sample(&mut *ctx.rng))
            .collect();
        let eps = g.constant(eps, rows, d);
        let shift = g.scale(&eps, self.sigma);
        let shift = pad_to_width(g, &shift, width);
        let xt = g.add(&xr, &shift);
        let target = g.scale(&eps, 1.0 / self.sigma);
        let s = model.score(g, &xt);
        let r = g.add(&s, &target);
        let r2 = g.square(&r);
        let per = g.sum_cols(&r2);
        let mean = g.mean_all(&per);
        Ok(g.scale(&mean, self.factor()))
    }

    fn rows_per_point(&self) -> usize {
        self.noise_samples
    }

    fn coefficient_criterion(&self) -> Option<CoefficientCriterion> {
        Some(CoefficientCriterion::Denoising {
            sigma: self.sigma,
            weight: self.factor(),
            noise_samples: self.noise_samples,
        })
    }
}

impl Dsm {
    /// The factor in front of the mean squared residual.
    fn factor(&self) -> f64 {
        match self.scaling {
            DsmScaling::Textbook => 0.5,
            DsmScaling::Original => 0.5 * self.sigma.powi(4),
        }
    }
}

impl ObjectiveConfig for DsmConfig {
    fn build(&self) -> Result<Box<dyn Objective>, ConfigError> {
        require_positive("sigma", self.sigma)?;
        require_at_least("noise_samples", self.noise_samples, 1)?;
        Ok(Box::new(Dsm {
            sigma: self.sigma,
            noise_samples: self.noise_samples,
            scaling: self.scaling,
        }))
    }
}

crate::register_plugin!(
    ObjectiveConfig,
    "dsm",
    "denoising score matching with Gaussian noise sigma: 1/2 |s(x+sigma e) + e/sigma|^2",
    "(sigma: 0.1, noise_samples: 1, scaling: Textbook)",
    DsmConfig
);
