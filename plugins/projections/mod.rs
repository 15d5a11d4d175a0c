//! Projection plugins: distributions of the directions `v`.

pub mod gaussian;
pub mod rademacher;
pub mod sphere;
