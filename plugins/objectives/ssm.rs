//! `ssm`: sliced score matching (Song et al. 2019, Eq. 7),
//! `E_x E_v[vᵀ(∇ₓs)v + ½(vᵀs)²]`, with `M` projections per point (one value
//! stream per point, `M` directions through it).

use serde::{Deserialize, Serialize};

use crate::autodiff::Graph;
use crate::closed_form::CoefficientCriterion;
use crate::device::Mat;
use crate::error::{require_at_least, ConfigError};
use crate::model::ScoreModel;
use crate::objective::{sliced_terms, LossContext, LossError, Objective};
use crate::registry::ObjectiveConfig;

fn one() -> usize {
    1
}

/// Settings of `ssm`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SsmConfig {
    /// Projections per data point, `M ≥ 1` (default 1).
    #[serde(default = "one")]
    pub projections: usize,
}

/// Sliced score matching.
pub struct Ssm {
    projections: usize,
}

impl Objective for Ssm {
    fn loss(
        &self,
        g: &mut Graph,
        model: &dyn ScoreModel,
        x: &Mat,
        ctx: &mut LossContext<'_>,
    ) -> Result<Mat, LossError> {
        let t = sliced_terms(g, model, x, ctx, self.projections, false);
        let sq = g.square(&t.vs);
        let half = g.scale(&sq, 0.5);
        let per = g.add(&t.vhv, &half);
        Ok(g.mean_all(&per))
    }

    fn rows_per_point(&self) -> usize {
        self.projections
    }

    fn coefficient_criterion(&self) -> Option<CoefficientCriterion> {
        Some(CoefficientCriterion::Sliced {
            projections: self.projections,
        })
    }
}

impl ObjectiveConfig for SsmConfig {
    fn build(&self) -> Result<Box<dyn Objective>, ConfigError> {
        require_at_least("projections", self.projections, 1)?;
        Ok(Box::new(Ssm {
            projections: self.projections,
        }))
    }
}

crate::register_plugin!(
    ObjectiveConfig,
    "ssm",
    "sliced score matching: v^T (grad s) v + 1/2 (v^T s)^2 over M projections",
    "(projections: 1)",
    SsmConfig
);
