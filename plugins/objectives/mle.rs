//! `mle`: maximum likelihood, loss `−mean log p(x)`, for normalized models
//! (flows such as `nice`, whose `log_density` is exact). Refuses a model
//! whose log-density is unnormalized, where the loss would be meaningless.

use serde::Deserialize;

use crate::autodiff::Graph;
use crate::device::Mat;
use crate::error::ConfigError;
use crate::model::ScoreModel;
use crate::objective::{LossContext, Objective};
use crate::registry::ObjectiveConfig;

/// Settings of `mle` (none).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MleConfig {}

/// Maximum likelihood: the mean negative log-density of the batch.
pub struct Mle;

impl Objective for Mle {
    fn loss(&self, g: &mut Graph, model: &dyn ScoreModel, x: &Mat, _: &mut LossContext<'_>) -> Mat {
        let lp = model
            .log_density(g, x)
            .expect("check_model verified a normalized log-density");
        let mean = g.mean_all(&lp);
        g.neg(&mean)
    }

    fn check_model(&self, model: &dyn ScoreModel) -> Result<(), String> {
        if model.is_normalized() {
            Ok(())
        } else {
            Err("maximum likelihood needs a normalized model (a flow with a tractable Jacobian, such as nice); this model's log-density is unnormalized or unavailable".into())
        }
    }
}

impl ObjectiveConfig for MleConfig {
    fn build(&self) -> Result<Box<dyn Objective>, ConfigError> {
        Ok(Box::new(Mle))
    }
}

crate::register_plugin!(
    ObjectiveConfig,
    "mle",
    "maximum likelihood: -mean log p(x), for normalized models (flows)",
    "()",
    MleConfig
);
