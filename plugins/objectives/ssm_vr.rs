//! `ssm_vr`: sliced score matching with variance reduction (Song et al. 2019,
//! Eq. 8), `E_x E_v[vᵀ(∇ₓs)v + ½‖s‖²]`. The ½(vᵀs)² term is integrated out
//! in closed form, which is valid only when `E[vvᵀ] = I`; building the
//! experiment fails for a projection that is not isotropic.

use serde::{Deserialize, Serialize};

use crate::autodiff::Graph;
use crate::closed_form::CoefficientCriterion;
use crate::device::Mat;
use crate::error::{require_at_least, ConfigError};
use crate::model::{Needs, ScoreModel};
use crate::objective::{sliced_terms, LossContext, LossError, Objective};
use crate::registry::ObjectiveConfig;

fn one() -> usize {
    1
}

/// Settings of `ssm_vr`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SsmVrConfig {
    /// Projections per data point, `M ≥ 1` (default 1).
    #[serde(default = "one")]
    pub projections: usize,
}

/// Variance-reduced sliced score matching.
pub struct SsmVr {
    projections: usize,
}

impl Objective for SsmVr {
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
        // E over points and directions of vᵀ(∇s)v, plus E over points of ½‖s‖².
        let curv = g.mean_all(&t.vhv);
        let s2 = g.square(&s);
        let norm2 = g.sum_cols(&s2);
        let half = g.mean_all(&norm2);
        let half = g.scale(&half, 0.5);
        Ok(g.add(&curv, &half))
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

    fn coefficient_criterion(&self) -> Option<CoefficientCriterion> {
        Some(CoefficientCriterion::SlicedVr {
            projections: self.projections,
        })
    }
}

impl ObjectiveConfig for SsmVrConfig {
    fn build(&self) -> Result<Box<dyn Objective>, ConfigError> {
        require_at_least("projections", self.projections, 1)?;
        Ok(Box::new(SsmVr {
            projections: self.projections,
        }))
    }
}

crate::register_plugin!(
    ObjectiveConfig,
    "ssm_vr",
    "sliced score matching, variance reduced: v^T (grad s) v + 1/2 |s|^2 (needs E[vv^T] = I)",
    "(projections: 1)",
    SsmVrConfig
);
