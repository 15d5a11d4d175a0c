//! `ssm_cv`: sliced score matching with a control variate (Song et al.
//! 2019, Appendix D). Per row (point `i`, direction `v`), the SSM term
//! `ℓ = vᵀ(∇ₓs)v + ½(vᵀs)²` less `c` times the control variate
//! `κ = ½((vᵀs)² − ‖s‖²)`, whose mean over `v` is 0 when `E[vvᵀ] = I`
//! (building fails for a projection that is not isotropic):
//!
//! `loss = mean_rows(ℓ − cκ) = mean(vᵀ(∇s)v) + ½(1 − c)·mean((vᵀs)²) + ½c·mean(‖s‖²)`.
//!
//! `c = 0` is `ssm`, `c = 1` is `ssm_vr`. By default `c` is the
//! variance-optimal coefficient estimated on the batch, `c* =
//! Cov(ℓ, κ)/Var(κ)` over its rows (sample covariance and variance; 0 when
//! `Var(κ) = 0`), computed from the values and used as a constant: no
//! gradient flows through it. At a fixed `c` (setting `coefficient`) the
//! loss and its gradient are unbiased for exact SM; the batch estimate of
//! `c*` adds an `O(1/rows)` bias, as any control variate with an estimated
//! coefficient does.
//!
//! Data flow: directions from the projection → the model's terms (`vᵀs`,
//! `vᵀ(∇s)v`, `s`) → `c` on the host from their values → the loss on the graph.

use serde::{Deserialize, Serialize};

use crate::autodiff::Graph;
use crate::device::Mat;
use crate::error::{require_at_least, ConfigError};
use crate::model::{Needs, ScoreModel};
use crate::objective::{sliced_terms, LossContext, LossError, Objective};
use crate::registry::ObjectiveConfig;

fn one() -> usize {
    1
}

/// Settings of `ssm_cv`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SsmCvConfig {
    /// Projections per data point, `M ≥ 1` (default 1).
    #[serde(default = "one")]
    pub projections: usize,
    /// A fixed control-variate coefficient `c` instead of the batch's
    /// variance-optimal one (default: none, the optimal one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coefficient: Option<f64>,
}

/// Sliced score matching with the control variate `½((vᵀs)² − ‖s‖²)`.
pub struct SsmCv {
    projections: usize,
    coefficient: Option<f64>,
}

/// The variance-optimal coefficient `Cov(ℓ, κ)/Var(κ)` of a control variate
/// `κ` for the values `ℓ` (sample moments over the rows; 0 when `κ` does not
/// vary or there are fewer than two rows).
pub fn optimal_coefficient(values: &[f64], cv: &[f64]) -> f64 {
    let n = values.len().min(cv.len());
    if n < 2 {
        return 0.0;
    }
    let mean = |v: &[f64]| v[..n].iter().sum::<f64>() / n as f64;
    let (ml, mk) = (mean(values), mean(cv));
    let (mut cov, mut var) = (0.0, 0.0);
    for (l, k) in values[..n].iter().zip(&cv[..n]) {
        cov += (l - ml) * (k - mk);
        var += (k - mk) * (k - mk);
    }
    if var > 0.0 && var.is_finite() {
        cov / var
    } else {
        0.0
    }
}

/// Per-row SSM values `ℓ` and control variates `κ` from the terms' values:
/// `vs`, `vhv` (`m·n` rows, direction-major) and `‖s‖²` of each of the `n`
/// points.
pub fn ssm_and_control_variate(vs: &[f64], vhv: &[f64], norm2: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let n = norm2.len().max(1);
    let ssm = vs.iter().zip(vhv).map(|(a, h)| h + 0.5 * a * a).collect();
    let cv = vs
        .iter()
        .enumerate()
        .map(|(r, a)| 0.5 * (a * a - norm2[r % n]))
        .collect();
    (ssm, cv)
}

impl SsmCv {
    /// The coefficient this batch uses: the fixed one, or `c*` from the values.
    fn coefficient(&self, vs: &Mat, vhv: &Mat, norm2: &Mat) -> f64 {
        if let Some(c) = self.coefficient {
            return c;
        }
        let (ssm, cv) = ssm_and_control_variate(&vs.to_host(), &vhv.to_host(), &norm2.to_host());
        optimal_coefficient(&ssm, &cv)
    }
}

impl Objective for SsmCv {
    fn loss(
        &self,
        g: &mut Graph,
        model: &dyn ScoreModel,
        x: &Mat,
        ctx: &mut LossContext<'_>,
    ) -> Result<Mat, LossError> {
        let t = sliced_terms(g, model, x, ctx, self.projections, true);
        let s = t
            .score
            .ok_or_else(|| LossError("the model gave no score".into()))?;
        let s2 = g.square(&s);
        let norm2 = g.sum_cols(&s2);
        let c = self.coefficient(&t.vs, &t.vhv, &norm2);
        // mean(vᵀ(∇s)v) + ½(1 − c)·mean((vᵀs)²) + ½c·mean(‖s‖²): every point
        // has M rows, so the mean of ‖sᵢ‖² over rows is its mean over points.
        let curv = g.mean_all(&t.vhv);
        let vs2 = g.square(&t.vs);
        let proj = g.mean_all(&vs2);
        let proj = g.scale(&proj, 0.5 * (1.0 - c));
        let full = g.mean_all(&norm2);
        let full = g.scale(&full, 0.5 * c);
        let sum = g.add(&curv, &proj);
        Ok(g.add(&sum, &full))
    }

    fn needs(&self) -> Needs {
        Needs {
            isotropic_projection: true,
            ..Needs::default()
        }
    }

    fn rows_per_point(&self) -> usize {
        self.projections
    }
}

impl ObjectiveConfig for SsmCvConfig {
    fn build(&self) -> Result<Box<dyn Objective>, ConfigError> {
        require_at_least("projections", self.projections, 1)?;
        if let Some(c) = self.coefficient {
            if !c.is_finite() {
                return Err(ConfigError::new(
                    "coefficient",
                    format!("must be finite, got {c}"),
                ));
            }
        }
        Ok(Box::new(SsmCv {
            projections: self.projections,
            coefficient: self.coefficient,
        }))
    }
}

crate::register_plugin!(
    ObjectiveConfig,
    "ssm_cv",
    "sliced score matching with the control variate 1/2((v^T s)^2 - |s|^2) at the batch's variance-optimal coefficient (needs E[vv^T] = I)",
    "(projections: 1)",
    SsmCvConfig
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn optimal_coefficient_is_the_regression_slope() {
        // ℓ = 2κ + 1 exactly: c* = 2, and ℓ − 2κ has no variance.
        let cv = [0.5, -1.0, 2.0, -1.5, 0.0];
        let l: Vec<f64> = cv.iter().map(|k| 2.0 * k + 1.0).collect();
        assert!((optimal_coefficient(&l, &cv) - 2.0).abs() < 1e-12);
        assert_eq!(optimal_coefficient(&l, &[1.0; 5]), 0.0);
        assert_eq!(optimal_coefficient(&[1.0], &[1.0]), 0.0);
    }

    #[test]
    fn rows_pair_with_their_points_direction_major() {
        // Two points, two directions: rows 0, 1 (direction 0), 2, 3 (direction 1).
        let (l, k) = ssm_and_control_variate(&[1.0, 2.0, 3.0, 4.0], &[0.0; 4], &[10.0, 20.0]);
        assert_eq!(l, [0.5, 2.0, 4.5, 8.0]);
        assert_eq!(
            k,
            [
                0.5 * (1.0 - 10.0),
                0.5 * (4.0 - 20.0),
                0.5 * (9.0 - 10.0),
                0.5 * (16.0 - 20.0)
            ]
        );
    }
}
