//! Which validation metric chooses the best checkpoint, and in which
//! direction.
//!
//! Data flow: the experiment's `selection` setting ([`Selection`], default
//! `Task`) is resolved once at build time against the task and the built
//! model ([`Selection::resolve`]) into a [`SelectionRule`]; the training
//! loop compares each validation evaluation with the best so far through
//! [`SelectionRule::improves`], checks the metric for divergence, stops
//! early by it, and records its name (`val/<metric>`) in `metrics.json`,
//! which `report` and `sweep` print under their tables.

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;
use crate::model::ModelSlot;
use crate::task::Task;

/// The experiment's `selection` setting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Selection {
    /// The task's own metric ([`Task::selection_metric`], lower is better;
    /// e.g. the exact SM loss of the `images` task).
    #[default]
    Task,
    /// The validation log-likelihood (higher is better); only for a task
    /// and model that report one (e.g. a flow on the `images` task).
    LogLikelihood,
}

impl Selection {
    /// Whether this is the default (so experiment files without the
    /// setting are written back without it).
    pub fn is_task(&self) -> bool {
        *self == Selection::Task
    }

    /// The rule for `task` and `model`; an error on the `selection` field
    /// when the model reports no log-likelihood on this task.
    pub fn resolve(
        &self,
        task: &dyn Task,
        model: &ModelSlot,
    ) -> Result<SelectionRule, ConfigError> {
        match self {
            Selection::Task => Ok(SelectionRule {
                metric: task.selection_metric().to_string(),
                higher_is_better: false,
            }),
            Selection::LogLikelihood => {
                let metric = model
                    .scorer()
                    .and_then(|m| task.log_likelihood_metric(m))
                    .ok_or_else(|| {
                        ConfigError::new(
                            "selection",
                            "LogLikelihood needs a validation log-likelihood, which this task \
                             and model do not report (the `images` task reports one for a \
                             normalized flow such as `nice`, not for a score network or an \
                             unnormalized energy); use `Task`",
                        )
                    })?;
                Ok(SelectionRule {
                    metric: metric.to_string(),
                    higher_is_better: true,
                })
            }
        }
    }
}

/// The validation metric that picks the best checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectionRule {
    /// Its name, without the `val/` prefix.
    pub metric: String,
    /// Whether larger values are better (log-likelihoods) rather than
    /// smaller (losses).
    pub higher_is_better: bool,
}

impl SelectionRule {
    /// Whether `value` beats the best so far (`None`: the first evaluation
    /// always does; NaN never beats a number).
    pub fn improves(&self, value: f64, best: Option<f64>) -> bool {
        match best {
            None => true,
            Some(b) if self.higher_is_better => value > b,
            Some(b) => value < b,
        }
    }

    /// `val/<metric>`, with `(higher is better)` for a log-likelihood.
    pub fn describe(&self) -> String {
        if self.higher_is_better {
            format!("val/{} (higher is better)", self.metric)
        } else {
            format!("val/{}", self.metric)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direction_follows_the_metric() {
        let loss = SelectionRule {
            metric: "sm_loss".into(),
            higher_is_better: false,
        };
        let ll = SelectionRule {
            metric: "log_likelihood".into(),
            higher_is_better: true,
        };
        assert!(loss.improves(5.0, None) && ll.improves(5.0, None));
        assert!(loss.improves(-3.0, Some(-2.0)) && !loss.improves(-1.0, Some(-2.0)));
        assert!(ll.improves(-1.0, Some(-2.0)) && !ll.improves(-3.0, Some(-2.0)));
        assert!(!ll.improves(f64::NAN, Some(-2.0)) && !loss.improves(f64::NAN, Some(-2.0)));
        assert_eq!(loss.describe(), "val/sm_loss");
        assert_eq!(ll.describe(), "val/log_likelihood (higher is better)");
    }
}
