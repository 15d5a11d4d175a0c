//! `ssm_vr`: sliced score matching with variance reduction (Song et al. 2019,
//! Eq. 8), `E_x E_v[vᵀ(∇ₓs)v + ½‖s‖²]`. The ½(vᵀs)² term is integrated out
//! in closed form, which is valid only when `E[vvᵀ] = I`; building the
//! experiment fails for a projection that is not isotropic.

use serde::Deserialize;

use crate::autodiff::Graph;
use crate::device::Mat;
use crate::error::{require_at_least, ConfigError};
use crate::model::ScoreModel;
use crate::objective::{sliced_terms, LossContext, Objective};
use crate::registry::ObjectiveConfig;

fn one() -> usize {
    1
}

/// Settings of `ssm_vr`.
#[derive(Debug, Clone, Deserialize)]
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
    ) -> Mat {
        let t = sliced_terms(g, model, x, ctx, self.projections, true);
        let s = t.score.expect("terms were asked for the score");
        let s2 = g.square(&s);
        let norm2 = g.sum_cols(&s2);
        let half = g.scale(&norm2, 0.5);
        let per = g.add(&t.vhv, &half);
        g.mean_all(&per)
    }

    fn requires_isotropic_projection(&self) -> bool {
        true
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
