//! The [`Projection`] trait: random directions `v` for sliced score matching.
//!
//! An objective asks for one direction per (repeated) data row; the
//! projection fills a host buffer from the run's seeded random stream, and
//! the objective moves it to the device.

use rand::RngCore;

/// A distribution of projection vectors `v ∈ ℝᴰ`.
pub trait Projection {
    /// `n` vectors of dimension `dim`, row-major `n × dim`.
    fn sample(&self, rng: &mut dyn RngCore, n: usize, dim: usize) -> Vec<f64>;

    /// Whether `E[vvᵀ] = I`, which the variance-reduced objective (SSM-VR)
    /// requires. A test checks every registered projection's claim.
    fn isotropic(&self) -> bool;
}
