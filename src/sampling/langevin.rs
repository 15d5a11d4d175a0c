//! Langevin dynamics on any [`Density`]: plain (unadjusted), annealed, and
//! Metropolis-adjusted (MALA).
//!
//! Data flow: [`sample`] takes the starting points, scores them, and moves
//! every chain `steps` times per level,
//!
//! `x ← x + (ε/2)·s(x) + √(ε·T)·z`,   `z ~ N(0, I)`,
//!
//! with step size `ε` and temperature `T` (1 without annealing: the plain
//! Langevin update `x + (ε/2)s(x) + √ε z`). With `mala`, that move is a
//! proposal `y`, accepted with probability
//! `min(1, π(y) q(x | y) / (π(x) q(y | x)))`, `π = p̃^{1/T}`,
//! `q(y | x) = N(y; x + (ε/2)s(x), εT·I)`, which makes `π` the exact
//! stationary density whatever `ε` (the log-density comes from the model's
//! [`crate::model::EnergyModel`]).
//!
//! ## What σ means when annealing a plain score model
//!
//! Annealed Langevin (Song & Ermon, 2019) runs levels of decreasing noise
//! `σ₁ > … > σ_L` and asks a *noise-conditional* model for the score of the
//! smoothed density `p ∗ N(0, σ²I)` at each level. A plain score model knows
//! only `s = ∇ log p`, so here a level is a **temperature**: level `i` samples
//! the tempered density `p^{1/Tᵢ}` with `Tᵢ = 1 + σᵢ²`, whose score is
//! `s/Tᵢ`. For a standard normal `p` (the model's coordinates after
//! whitening) `p^{1/T}` *is* `p ∗ N(0, σ²I)`; for other densities it is a
//! flattened version of similar breadth, with lower barriers between modes.
//! Each level runs with step `εᵢ = ε·Tᵢ`, so the drift `(εᵢ/2)·s/Tᵢ = (ε/2)·s`
//! keeps the size that is stable for `p`, and only the injected noise grows
//! to `√(ε(1 + σᵢ²))`. The levels are geometric from `σ_max` to `σ_min`
//! (`L` of them, `steps` steps each); with a small `σ_min` the last level
//! samples `p` itself (`T = 1 + σ_min²`).
//!
//! Plain Langevin is biased by `O(ε)` (for `N(0, λ)` its stationary
//! variance is `λ / (1 − ε/(4λ))`); MALA is exact.

use rand::{Rng, RngCore};
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

use super::{Density, SampleError};

/// Default steps per level (also of the evaluation-time sampler).
pub(super) fn default_steps() -> usize {
    100
}
/// Default step size `ε` (also of the evaluation-time sampler).
pub(super) fn default_step_size() -> f64 {
    0.01
}

/// Langevin sampler settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Langevin {
    /// Steps per level (default 100).
    #[serde(default = "default_steps")]
    pub steps: usize,
    /// Step size `ε` in the model's coordinates (default 0.01).
    #[serde(default = "default_step_size")]
    pub step_size: f64,
    /// Temperature levels (default none: plain Langevin).
    #[serde(default)]
    pub annealed: Option<Annealing>,
    /// Metropolis correction (MALA), for models with a log-density (default false).
    #[serde(default)]
    pub mala: bool,
}

impl Default for Langevin {
    fn default() -> Self {
        Self {
            steps: default_steps(),
            step_size: default_step_size(),
            annealed: None,
            mala: false,
        }
    }
}

/// Annealing levels `σ_max … σ_min`, `levels` of them, geometric (see the
/// module documentation for what σ means). Written `σ_max..σ_min:L` on the
/// command line.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Annealing {
    /// The first (largest) σ.
    pub sigma_max: f64,
    /// The last (smallest) σ.
    pub sigma_min: f64,
    /// Number of levels `L ≥ 1`.
    pub levels: usize,
}

impl Annealing {
    /// Checks `σ_max ≥ σ_min > 0` (finite) and `L ≥ 1` (`L = 1` needs
    /// `σ_max = σ_min`).
    pub fn validate(&self) -> Result<(), SampleError> {
        let bad = |message: String| SampleError::Setting {
            field: "annealed".into(),
            message,
        };
        let (a, b) = (self.sigma_max, self.sigma_min);
        if !(a.is_finite() && b.is_finite() && b > 0.0 && a >= b) {
            return Err(bad(format!(
                "needs finite σ_max ≥ σ_min > 0, got σ_max = {a}, σ_min = {b}"
            )));
        }
        if self.levels == 0 || (self.levels == 1 && a != b) {
            return Err(bad(format!(
                "needs L ≥ 1 levels (L = 1 only with σ_max = σ_min), got L = {}",
                self.levels
            )));
        }
        Ok(())
    }

    /// The σ of every level, geometric from `σ_max` to `σ_min`.
    pub fn sigmas(&self) -> Vec<f64> {
        let l = self.levels;
        if l <= 1 {
            return vec![self.sigma_max];
        }
        let ratio = (self.sigma_min / self.sigma_max).ln();
        (0..l)
            .map(|i| {
                if i + 1 == l {
                    self.sigma_min
                } else {
                    self.sigma_max * (ratio * i as f64 / (l - 1) as f64).exp()
                }
            })
            .collect()
    }
}

impl std::str::FromStr for Annealing {
    type Err = String;

    /// Parses `σ_max..σ_min:L`, e.g. `1.0..0.01:10`.
    fn from_str(s: &str) -> Result<Self, String> {
        let form = || format!("expected σ_max..σ_min:L (e.g. 1.0..0.01:10), got {s:?}");
        let (range, levels) = s.split_once(':').ok_or_else(form)?;
        let (a, b) = range.split_once("..").ok_or_else(form)?;
        let num = |t: &str| t.trim().parse::<f64>().map_err(|_| form());
        let a = Annealing {
            sigma_max: num(a)?,
            sigma_min: num(b)?,
            levels: levels.trim().parse().map_err(|_| form())?,
        };
        a.validate().map_err(|e| e.to_string())?;
        Ok(a)
    }
}

impl Langevin {
    /// Checks the settings (`steps ≥ 1`, `ε` finite and `> 0`, the annealing).
    pub fn validate(&self) -> Result<(), SampleError> {
        if self.steps == 0 {
            return Err(SampleError::Setting {
                field: "steps".into(),
                message: "must be ≥ 1, got 0".into(),
            });
        }
        if !(self.step_size.is_finite() && self.step_size > 0.0) {
            return Err(SampleError::Setting {
                field: "step_size".into(),
                message: format!("must be finite and > 0, got {}", self.step_size),
            });
        }
        match &self.annealed {
            Some(a) => a.validate(),
            None => Ok(()),
        }
    }

    /// The temperature of every level: `[1]` without annealing, else
    /// `1 + σᵢ²`.
    pub fn temperatures(&self) -> Vec<f64> {
        match &self.annealed {
            None => vec![1.0],
            Some(a) => a.sigmas().iter().map(|s| 1.0 + s * s).collect(),
        }
    }

    /// Total steps over all levels.
    pub fn total_steps(&self) -> usize {
        self.steps * self.temperatures().len()
    }
}

/// The chains after sampling.
#[derive(Debug, Clone)]
pub struct Chains {
    /// The final points, row-major `n × dim`.
    pub points: Vec<f64>,
    /// Dimension.
    pub dim: usize,
    /// MALA: the fraction of proposals accepted (over all chains and steps).
    pub acceptance: Option<f64>,
}

/// First non-finite entry of row-major `v` (width `d`) as its row.
fn first_bad_row(v: &[f64], d: usize) -> Option<usize> {
    v.iter().position(|x| !x.is_finite()).map(|k| k / d)
}

/// Runs the chains from `init` (row-major `n × dim`), drawing noise from `rng`.
///
/// # Errors
/// Invalid settings, a starting point of the wrong width, MALA without a
/// log-density, or a chain whose score or position stops being finite
/// (plain Langevin; MALA rejects such proposals instead).
pub fn sample(
    density: &dyn Density,
    init: Vec<f64>,
    settings: &Langevin,
    rng: &mut dyn RngCore,
) -> Result<Chains, SampleError> {
    settings.validate()?;
    let d = density.dim();
    if d == 0 || !init.len().is_multiple_of(d) {
        return Err(SampleError::Init(format!(
            "{} values are not rows of dimension {d}",
            init.len()
        )));
    }
    if let Some(chain) = first_bad_row(&init, d) {
        return Err(SampleError::NonFinite {
            what: "sample",
            level: 0,
            step: 0,
            chain,
        });
    }
    let mut x = init;
    let mut s = density.scores(&x);
    if let Some(chain) = first_bad_row(&s, d) {
        return Err(SampleError::NonFinite {
            what: "score",
            level: 0,
            step: 0,
            chain,
        });
    }
    let eps = settings.step_size;
    if !settings.mala {
        for (level, &t) in settings.temperatures().iter().enumerate() {
            let noise = (eps * t).sqrt();
            for step in 1..=settings.steps {
                for (xi, si) in x.iter_mut().zip(&s) {
                    let z: f64 = rng.sample(StandardNormal);
                    *xi += 0.5 * eps * si + noise * z;
                }
                let bad = |what, chain| SampleError::NonFinite {
                    what,
                    level,
                    step,
                    chain,
                };
                if let Some(chain) = first_bad_row(&x, d) {
                    return Err(bad("sample", chain));
                }
                s = density.scores(&x);
                if let Some(chain) = first_bad_row(&s, d) {
                    return Err(bad("score", chain));
                }
            }
        }
        return Ok(Chains {
            points: x,
            dim: d,
            acceptance: None,
        });
    }
    mala(density, x, s, settings, rng)
}

/// The MALA chains (see the module documentation), from points `x` with
/// scores `s`.
fn mala(
    density: &dyn Density,
    mut x: Vec<f64>,
    mut s: Vec<f64>,
    settings: &Langevin,
    rng: &mut dyn RngCore,
) -> Result<Chains, SampleError> {
    let d = density.dim();
    let n = x.len() / d;
    let eps = settings.step_size;
    let mut logp = density.log_densities(&x).ok_or(SampleError::NoLogDensity)?;
    if let Some(chain) = logp.iter().position(|v| !v.is_finite()) {
        return Err(SampleError::NonFinite {
            what: "log-density",
            level: 0,
            step: 0,
            chain,
        });
    }
    let (mut accepted, mut proposed) = (0u64, 0u64);
    let mut y = vec![0.0; x.len()];
    for &t in &settings.temperatures() {
        let beta = 1.0 / t;
        let var = eps * t;
        let noise = var.sqrt();
        // log q(to | from) up to a constant shared by both directions.
        let log_q = |to: &[f64], from: &[f64], s_from: &[f64]| -> f64 {
            -to.iter()
                .zip(from)
                .zip(s_from)
                .map(|((a, b), sb)| (a - b - 0.5 * eps * sb).powi(2))
                .sum::<f64>()
                / (2.0 * var)
        };
        for _ in 0..settings.steps {
            for ((yi, xi), si) in y.iter_mut().zip(&x).zip(&s) {
                let z: f64 = rng.sample(StandardNormal);
                *yi = xi + 0.5 * eps * si + noise * z;
            }
            let sy = density.scores(&y);
            let logp_y = density.log_densities(&y).ok_or(SampleError::NoLogDensity)?;
            for c in 0..n {
                let r = c * d..(c + 1) * d;
                let u: f64 = rng.gen();
                proposed += 1;
                let finite = logp_y[c].is_finite()
                    && sy[r.clone()]
                        .iter()
                        .chain(&y[r.clone()])
                        .all(|v| v.is_finite());
                if !finite {
                    continue;
                }
                let log_alpha = beta * (logp_y[c] - logp[c])
                    + log_q(&x[r.clone()], &y[r.clone()], &sy[r.clone()])
                    - log_q(&y[r.clone()], &x[r.clone()], &s[r.clone()]);
                if u.ln() < log_alpha {
                    accepted += 1;
                    x[r.clone()].copy_from_slice(&y[r.clone()]);
                    s[r.clone()].copy_from_slice(&sy[r]);
                    logp[c] = logp_y[c];
                }
            }
        }
    }
    Ok(Chains {
        points: x,
        dim: d,
        acceptance: Some(accepted as f64 / proposed.max(1) as f64),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annealing_parses_and_levels_are_geometric() {
        let a: Annealing = "1..0.01:3".parse().unwrap();
        assert_eq!(a.levels, 3);
        let s = a.sigmas();
        assert!((s[0] - 1.0).abs() < 1e-15 && (s[1] - 0.1).abs() < 1e-12 && s[2] == 0.01);
        for bad in [
            "1..0.1", "0.1..1:3", "1..0.1:0", "a..b:2", "1..0:2", "1..0.5:1",
        ] {
            let e = bad.parse::<Annealing>().unwrap_err();
            assert!(e.contains("σ") || e.contains("L"), "{bad}: {e}");
        }
        assert_eq!(
            "0.5..0.5:1".parse::<Annealing>().unwrap().sigmas(),
            vec![0.5]
        );
        let l = Langevin {
            annealed: Some(a),
            ..Langevin::default()
        };
        assert_eq!(l.total_steps(), 300);
        assert!((l.temperatures()[0] - 2.0).abs() < 1e-15);
    }
}
