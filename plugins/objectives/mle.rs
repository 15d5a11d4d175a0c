//! `mle`: maximum likelihood, loss `−mean log p(x)`, for normalized models
//! (flows such as `nice`, whose `log_density` is exact). Refuses a model
//! whose log-density is unnormalized, where the loss would be meaningless.

use serde::{Deserialize, Serialize};

use crate::autodiff::Graph;
use crate::device::Mat;
use crate::error::ConfigError;
use crate::model::{Needs, ScoreModel};
use crate::objective::{LossContext, LossError, Objective};
use crate::registry::ObjectiveConfig;

/// Settings of `mle` (none).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MleConfig {}

/// Maximum likelihood: the mean negative log-density of the batch.
pub struct Mle;

impl Objective for Mle {
    fn loss(
        &self,
        g: &mut Graph,
        model: &dyn ScoreModel,
        x: &Mat,
        _: &mut LossContext<'_>,
    ) -> Result<Mat, LossError> {
        let flow = model
            .as_flow()
            .ok_or_else(|| LossError::unmet(&self.needs(), model))?;
        let lp = flow.log_density(g, x);
        let mean = g.mean_all(&lp);
        Ok(g.neg(&mean))
    }

    fn needs(&self) -> Needs {
        Needs {
            flow: true,
            ..Needs::default()
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
