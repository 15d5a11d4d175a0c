//! `rademacher`: every coordinate ±1 with equal probability (E\[vvᵀ\] = I).

use rand::{Rng, RngCore};
use serde::{Deserialize, Serialize};

use crate::error::ConfigError;
use crate::projection::Projection;
use crate::registry::ProjectionConfig;

/// Settings of the Rademacher projection (none).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RademacherConfig {}

/// Rademacher directions.
pub struct Rademacher;

impl Projection for Rademacher {
    fn sample(&self, rng: &mut dyn RngCore, n: usize, dim: usize) -> Vec<f64> {
        (0..n * dim)
            .map(|_| if rng.gen::<bool>() { 1.0 } else { -1.0 })
            .collect()
    }
    fn isotropic(&self) -> bool {
        true
    }
}

impl ProjectionConfig for RademacherConfig {
    fn build(&self) -> Result<Box<dyn Projection>, ConfigError> {
        Ok(Box::new(Rademacher))
    }
}

crate::register_plugin!(
    ProjectionConfig,
    "rademacher",
    "coordinates ±1 with equal probability; E[vvᵀ] = I, lowest variance",
    "()",
    RademacherConfig
);
