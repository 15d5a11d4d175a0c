//! Reusable building blocks for models: named parameters, smooth activations
//! and a dense MLP that propagates jets and input gradients.
//!
//! Data flow: a model plugin owns [`Mlp`]s (or its own layers) made of
//! [`Param`]s; in a forward pass it lifts its input into an
//! [`crate::autodiff::Jet`], pushes it through the layers, and reads the
//! value and directional derivatives off the output jet.

pub mod activation;
pub mod mlp;
pub mod param;

pub use activation::Activation;
pub use mlp::{Dense, Mlp, MlpCache};
pub use param::Param;
