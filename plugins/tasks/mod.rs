//! Task plugins: data, batches and evaluation.

pub mod images;
pub mod synthetic;
pub mod tabular;
