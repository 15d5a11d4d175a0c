//! `gaussian`: standard normal directions, v ~ N(0, I).

use rand::RngCore;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use crate::error::ConfigError;
use crate::projection::Projection;
use crate::registry::ProjectionConfig;

/// Settings of the Gaussian projection (none).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GaussianConfig {}

/// Standard normal directions.
pub struct Gaussian;

impl Projection for Gaussian {
    fn sample(&self, mut rng: &mut dyn RngCore, n: usize, dim: usize) -> Vec<f64> {
        (0..n * dim)
            .map(|_| StandardNormal.sample(&mut rng))
            .collect()
    }
    fn isotropic(&self) -> bool {
        true
    }
}

impl ProjectionConfig for GaussianConfig {
    fn build(&self) -> Result<Box<dyn Projection>, ConfigError> {
        Ok(Box::new(Gaussian))
    }
}

crate::register_plugin!(
    ProjectionConfig,
    "gaussian",
    "standard normal directions v ~ N(0, I); E[vvᵀ] = I",
    "()",
    GaussianConfig
);
