//! Objective plugins: training losses for score models.

pub mod curvature_sm;
pub mod dsm;
pub mod mle;
pub mod sm;
pub mod ssm;
pub mod ssm_cv;
pub mod ssm_vr;
