//! Model plugins: things that give a score.

pub mod dkef;
pub mod mlp_energy;
pub mod mlp_score;
pub mod nice;
pub mod spectral;
pub mod stein;
