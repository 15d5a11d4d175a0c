//! Smooth activations (re-exported from [`crate::compute::activation`],
//! where their derivatives are computed by the kernels).

pub use crate::compute::activation::Activation;
