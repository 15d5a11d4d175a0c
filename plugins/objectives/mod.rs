//! Objective plugins: training losses for score models.

pub mod dsm;
pub mod sm;
pub mod ssm;
pub mod ssm_vr;
