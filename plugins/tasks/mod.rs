//! Task plugins: data, batches and evaluation.

pub mod images;
pub mod latent;
pub mod shared;
pub mod synthetic;
pub mod tabular;
