//! Reusable building blocks for models: parameters and the one visitor that
//! walks them, smooth activations, and a dense MLP that propagates jets,
//! input gradients and curvature.
//!
//! Data flow: a model plugin owns [`Mlp`]s (or its own layers) made of
//! [`Param`]s and lists them once with [`crate::module!`]; the training loop,
//! checkpoints and precision conversion reach every parameter through
//! [`Module`]. In a forward pass a model lifts its input into an
//! [`crate::autodiff::Jet`], pushes it through the layers, and reads the
//! value and directional derivatives off the output jet.

pub mod activation;
pub mod mlp;
pub mod module;
pub mod param;

pub use activation::Activation;
pub use mlp::{Dense, Mlp, MlpCache};
pub use module::{Module, ParamPath};
pub use param::{Param, ParamKind};
