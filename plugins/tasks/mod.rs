//! Task plugins: data, batches and evaluation.

pub mod synthetic;
pub mod tabular;
