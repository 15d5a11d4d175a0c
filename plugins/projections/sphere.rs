//! `sphere`: uniform on the sphere of radius √D, so E\[vvᵀ\] = I.

use rand::RngCore;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use crate::error::ConfigError;
use crate::projection::Projection;
use crate::registry::ProjectionConfig;

/// Settings of the sphere projection (none).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SphereConfig {}

/// Directions uniform on the sphere of radius √D (a normalised Gaussian, rescaled).
pub struct Sphere;

impl Projection for Sphere {
    fn sample(&self, mut rng: &mut dyn RngCore, n: usize, dim: usize) -> Vec<f64> {
        let radius = (dim as f64).sqrt();
        let mut out = Vec::with_capacity(n * dim);
        for _ in 0..n {
            let row: Vec<f64> = loop {
                let r: Vec<f64> = (0..dim).map(|_| StandardNormal.sample(&mut rng)).collect();
                let norm = r.iter().map(|x| x * x).sum::<f64>().sqrt();
                if norm > 1e-12 {
                    break r.into_iter().map(|x| x * radius / norm).collect();
                }
            };
            out.extend(row);
        }
        out
    }
    fn isotropic(&self) -> bool {
        true
    }
}

impl ProjectionConfig for SphereConfig {
    fn build(&self) -> Result<Box<dyn Projection>, ConfigError> {
        Ok(Box::new(Sphere))
    }
}

crate::register_plugin!(
    ProjectionConfig,
    "sphere",
    "uniform on the sphere of radius √D (not the unit sphere), so E[vvᵀ] = I",
    "()",
    SphereConfig
);
