//! `sm`: exact score matching (Hyvärinen 2005),
//! `E[tr(∇ₓs(x)) + ½‖s(x)‖²]`, with the trace from `D` directional second
//! derivatives (cost grows linearly with `D`), in chunks of directions that
//! share one value stream (see [`crate::objective::exact_sm_loss`]).

use serde::{Deserialize, Serialize};

use crate::autodiff::Graph;
use crate::closed_form::CoefficientCriterion;
use crate::device::Mat;
use crate::error::ConfigError;
use crate::model::ScoreModel;
use crate::objective::{exact_sm_loss, LossContext, LossError, Objective};
use crate::registry::ObjectiveConfig;

/// Settings of `sm` (none).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmConfig {}

/// Exact score matching.
pub struct ExactSm;

impl Objective for ExactSm {
    fn loss(
        &self,
        g: &mut Graph,
        model: &dyn ScoreModel,
        x: &Mat,
        _: &mut LossContext<'_>,
    ) -> Result<Mat, LossError> {
        Ok(exact_sm_loss(g, model, x))
    }

    fn coefficient_criterion(&self) -> Option<CoefficientCriterion> {
        Some(CoefficientCriterion::Exact)
    }
}

impl ObjectiveConfig for SmConfig {
    fn build(&self) -> Result<Box<dyn Objective>, ConfigError> {
        Ok(Box::new(ExactSm))
    }
}

crate::register_plugin!(
    ObjectiveConfig,
    "sm",
    "exact score matching: tr(grad s) + 1/2 |s|^2, D second derivatives per point",
    "()",
    SmConfig
);
