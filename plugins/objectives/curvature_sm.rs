//! `approx_bp` and `cp`: score matching with the Hessian trace replaced by a
//! backward-propagated estimate of the Hessian diagonal,
//! `E[Σᵢ ĥᵢ(x) + ½‖s(x)‖²]` with `ĥ` from approximate backprop (Kingma &
//! LeCun 2010) or curvature propagation (Martens et al. 2012). The model must
//! implement `CurvatureModel` (energy models built from the core's layers
//! do).

use serde::{Deserialize, Serialize};

use crate::autodiff::curvature::CurvatureMethod;
use crate::autodiff::Graph;
use crate::closed_form::CoefficientCriterion;
use crate::device::Mat;
use crate::error::ConfigError;
use crate::model::{Needs, ScoreModel};
use crate::objective::{LossContext, LossError, Objective};
use crate::registry::ObjectiveConfig;

/// Settings of `approx_bp` (none).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApproxBpConfig {}

/// Settings of `cp` (none).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CpConfig {}

/// Score matching with a propagated Hessian-diagonal estimate.
pub struct CurvatureSm {
    stochastic: bool,
}

impl Objective for CurvatureSm {
    fn loss(
        &self,
        g: &mut Graph,
        model: &dyn ScoreModel,
        x: &Mat,
        ctx: &mut LossContext<'_>,
    ) -> Result<Mat, LossError> {
        let model = model
            .as_curvature()
            .ok_or_else(|| LossError::unmet(&self.needs(), model))?;
        let mut method = if self.stochastic {
            CurvatureMethod::Cp { rng: &mut *ctx.rng }
        } else {
            CurvatureMethod::ApproxBp
        };
        let (s, diag) = model.curvature(g, x, &mut method);
        let s2 = g.square(&s);
        let half = g.scale(&s2, 0.5);
        let per = g.add(&diag, &half);
        let rows = g.sum_cols(&per);
        Ok(g.mean_all(&rows))
    }

    fn needs(&self) -> Needs {
        Needs {
            curvature: true,
            ..Needs::default()
        }
    }

    /// Closed-form coefficients are solved with the exact trace: the
    /// propagated diagonal of a model linear in `α` is not linear in `α`
    /// for curvature propagation (the original code sums per-basis
    /// estimates instead), and the exact trace is what both estimate.
    fn coefficient_criterion(&self) -> Option<CoefficientCriterion> {
        Some(CoefficientCriterion::Exact)
    }
}

impl ObjectiveConfig for ApproxBpConfig {
    fn build(&self) -> Result<Box<dyn Objective>, ConfigError> {
        Ok(Box::new(CurvatureSm { stochastic: false }))
    }
}

impl ObjectiveConfig for CpConfig {
    fn build(&self) -> Result<Box<dyn Objective>, ConfigError> {
        Ok(Box::new(CurvatureSm { stochastic: true }))
    }
}

crate::register_plugin!(
    ObjectiveConfig,
    "approx_bp",
    "score matching with the Hessian diagonal from approximate backprop (Kingma & LeCun 2010)",
    "()",
    ApproxBpConfig
);

crate::register_plugin!(
    ObjectiveConfig,
    "cp",
    "score matching with the Hessian diagonal from curvature propagation (Martens et al. 2012)",
    "()",
    CpConfig
);
