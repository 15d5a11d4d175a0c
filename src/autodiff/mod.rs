//! Differentiation for score matching on top of dfdx.
//!
//! dfdx records reverse-mode tapes but cannot differentiate a gradient. Score
//! matching needs second input-derivatives *inside* a loss that is then
//! differentiated with respect to the parameters θ. We get them by forward-mode
//! Taylor propagation ([`jet`]): every op maps (value, first, second directional
//! derivative) to the same triple using ordinary tape-tracked dfdx ops, so a
//! single reverse pass over the loss yields ∇θ.
//!
//! Data flow: a model creates a [`Graph`] (tracking or inference), lifts data
//! and parameters into it as plain [`crate::device::Mat`]s, combines them with
//! the graph's ops (which push their backward closures into the graph's one
//! tape), and finally calls [`Graph::backward`] on a `1 × 1` loss to obtain a
//! gradient for each parameter.

pub mod curvature;
pub mod graph;
pub mod jet;

pub use graph::Graph;
pub use jet::Jet;
