//! Annealing schedules: the inverse temperatures β₀ = 0 < β₁ < … < β_{K−1} = 1
//! of the intermediate distributions π_t(z) ∝ N(z; 0, I)^{1−β_t} f(z)^{β_t}.

use serde::{Deserialize, Serialize};

/// How the inverse temperatures are spaced between 0 and 1.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Schedule {
    /// Sigmoid spacing (Wu et al., 2017): σ(t) for t evenly spaced in
    /// [−radius, radius], rescaled to [0, 1]. Dense near both ends, where the
    /// distributions change fastest. Wu et al. use radius 4.
    Sigmoid {
        /// Half-width of the evenly spaced grid fed to the sigmoid (> 0).
        radius: f64,
    },
    /// Evenly spaced inverse temperatures.
    Linear,
}

impl Default for Schedule {
    /// The sigmoid schedule with radius 4.
    fn default() -> Self {
        Schedule::Sigmoid { radius: 4.0 }
    }
}

impl Schedule {
    /// The `num` inverse temperatures (`num` ≥ 2), starting at exactly 0 and
    /// ending at exactly 1.
    ///
    /// # Panics
    /// If `num < 2`, or for a sigmoid radius that is not finite and positive
    /// ([`super::AisConfig::validate`] checks both).
    pub fn betas(&self, num: usize) -> Vec<f64> {
        match *self {
            Schedule::Sigmoid { radius } => sigmoid_schedule(num, radius),
            Schedule::Linear => linear_schedule(num),
        }
    }
}

/// `num` (≥ 2) evenly spaced values from exactly 0 to exactly 1.
///
/// # Panics
/// If `num < 2`.
pub fn linear_schedule(num: usize) -> Vec<f64> {
    assert!(
        num >= 2,
        "a schedule needs at least 2 temperatures, got {num}"
    );
    let last = (num - 1) as f64;
    let mut betas: Vec<f64> = (0..num).map(|i| i as f64 / last).collect();
    betas[num - 1] = 1.0;
    betas
}

/// The sigmoid schedule of Wu et al. (2017): σ(t_i) for `num` (≥ 2) points
/// t_i evenly spaced in [−radius, radius], shifted and scaled so that the first
/// value is exactly 0 and the last exactly 1. Monotone non-decreasing.
///
/// # Panics
/// If `num < 2` or `radius` is not finite and positive.
pub fn sigmoid_schedule(num: usize, radius: f64) -> Vec<f64> {
    assert!(
        num >= 2,
        "a schedule needs at least 2 temperatures, got {num}"
    );
    assert!(
        radius.is_finite() && radius > 0.0,
        "sigmoid radius must be finite and > 0, got {radius}"
    );
    let sigmoid = |t: f64| 1.0 / (1.0 + (-t).exp());
    let last = (num - 1) as f64;
    let s: Vec<f64> = (0..num)
        .map(|i| sigmoid(-radius + 2.0 * radius * i as f64 / last))
        .collect();
    let (lo, hi) = (s[0], s[num - 1]);
    let mut betas: Vec<f64> = s
        .iter()
        .map(|&v| ((v - lo) / (hi - lo)).clamp(0.0, 1.0))
        .collect();
    betas[0] = 0.0;
    betas[num - 1] = 1.0;
    betas
}
