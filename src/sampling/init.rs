//! Where Langevin chains start.
//!
//! Data flow: [`Init::points`] draws `n` starting points in the model's
//! coordinates from the generator it is given: isotropic noise (no data
//! needed), a Gaussian matched to each coordinate's mean and standard
//! deviation in some data, or data rows themselves.

use rand::{Rng, RngCore};
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

use super::SampleError;

fn one() -> f64 {
    1.0
}

/// How chains start.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum Init {
    /// `N(0, std²·I)` in the model's coordinates (default `std` 1).
    Noise {
        /// Standard deviation of every coordinate.
        #[serde(default = "one")]
        std: f64,
    },
    /// Independent Gaussian noise with each coordinate's mean and standard
    /// deviation in the data.
    Gaussian,
    /// Data rows, drawn uniformly with replacement.
    Data,
}

impl Init {
    /// Whether [`Init::points`] needs data.
    pub fn needs_data(&self) -> bool {
        !matches!(self, Init::Noise { .. })
    }

    /// `n` starting points of dimension `dim` (row-major), from `data`
    /// (row-major `m × dim`) when the choice needs data.
    ///
    /// # Errors
    /// A choice that needs data without any, data of the wrong width, or a
    /// noise level that is not finite and `> 0`.
    pub fn points(
        &self,
        n: usize,
        dim: usize,
        data: Option<&[f64]>,
        rng: &mut dyn RngCore,
    ) -> Result<Vec<f64>, SampleError> {
        let data = match (self, data) {
            (Init::Noise { std }, _) => {
                if !(std.is_finite() && *std > 0.0) {
                    return Err(SampleError::Init(format!(
                        "the noise standard deviation must be finite and > 0, got {std}"
                    )));
                }
                return Ok((0..n * dim)
                    .map(|_| std * rng.sample::<f64, _>(StandardNormal))
                    .collect());
            }
            (_, None) => {
                return Err(SampleError::Init(format!(
                    "{self:?} starts from data, and none is available"
                )))
            }
            (_, Some(x)) => x,
        };
        if dim == 0 || data.is_empty() || !data.len().is_multiple_of(dim) {
            return Err(SampleError::Init(format!(
                "{} data values are not rows of dimension {dim}",
                data.len()
            )));
        }
        let m = data.len() / dim;
        Ok(match self {
            Init::Data => (0..n)
                .flat_map(|_| {
                    let i = rng.gen_range(0..m);
                    data[i * dim..(i + 1) * dim].to_vec()
                })
                .collect(),
            _ => {
                let mut mean = vec![0.0; dim];
                for r in data.chunks_exact(dim) {
                    mean.iter_mut().zip(r).for_each(|(a, v)| *a += v / m as f64);
                }
                let mut var = vec![0.0; dim];
                for r in data.chunks_exact(dim) {
                    for j in 0..dim {
                        var[j] += (r[j] - mean[j]).powi(2) / (m as f64 - 1.0).max(1.0);
                    }
                }
                (0..n)
                    .flat_map(|_| {
                        (0..dim)
                            .map(|j| {
                                let z: f64 = rng.sample(StandardNormal);
                                mean[j] + var[j].sqrt() * z
                            })
                            .collect::<Vec<_>>()
                    })
                    .collect()
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn each_choice_draws_what_it_says() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let data = vec![10.0, 0.0, 12.0, 1.0, 14.0, 2.0];
        let rows = Init::Data.points(50, 2, Some(&data), &mut rng).unwrap();
        assert!(rows.chunks(2).all(|r| data.chunks(2).any(|d| d == r)));
        let g = Init::Gaussian
            .points(4000, 2, Some(&data), &mut rng)
            .unwrap();
        let mean0 = g.iter().step_by(2).sum::<f64>() / 4000.0;
        assert!((mean0 - 12.0).abs() < 0.15, "{mean0}");
        let noise = Init::Noise { std: 3.0 }
            .points(4000, 1, None, &mut rng)
            .unwrap();
        let sd = (noise.iter().map(|v| v * v).sum::<f64>() / 4000.0).sqrt();
        assert!((sd - 3.0).abs() < 0.15, "{sd}");
        assert!(Init::Data.points(1, 2, None, &mut rng).is_err());
        assert!(Init::Gaussian
            .points(1, 4, Some(&data[..3]), &mut rng)
            .is_err());
        assert!(Init::Noise { std: 0.0 }
            .points(1, 1, None, &mut rng)
            .is_err());
    }
}
