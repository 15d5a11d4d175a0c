//! Task plugins: data, batches and evaluation.
