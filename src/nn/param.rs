//! Parameters: matrices a model trains, or state it keeps (buffers).

use rand::Rng;

use crate::device::{Device, Mat};

/// Whether the optimizer updates a parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ParamKind {
    /// Trained by the optimizer.
    #[default]
    Trainable,
    /// State saved with the model but not trained (e.g. the samples a
    /// kernel estimator was fitted to); its shape may change when refitted.
    Buffer,
}

/// A matrix of a model. Its name is the path through the model's fields
/// (see [`super::Module`]).
#[derive(Clone, Debug)]
pub struct Param {
    /// Current value.
    pub value: Mat,
    /// Trained or kept.
    pub kind: ParamKind,
}

impl Param {
    /// A trainable parameter with the given value.
    pub fn new(value: Mat) -> Self {
        Self {
            value,
            kind: ParamKind::Trainable,
        }
    }

    /// A buffer (saved, not trained) with the given value.
    pub fn buffer(value: Mat) -> Self {
        Self {
            value,
            kind: ParamKind::Buffer,
        }
    }

    /// A parameter of shape `rows × cols` drawn uniformly from `[−bound, bound]`.
    pub fn uniform(dev: &Device, rows: usize, cols: usize, bound: f64, rng: &mut impl Rng) -> Self {
        let data: Vec<f64> = (0..rows * cols)
            .map(|_| rng.gen_range(-bound..=bound))
            .collect();
        Self::new(dev.mat(&data, rows, cols))
    }

    /// A parameter of shape `rows × cols` filled with `value`.
    pub fn filled(dev: &Device, rows: usize, cols: usize, value: f64) -> Self {
        Self::new(dev.filled(rows, cols, value))
    }

    /// A parameter from row-major host values.
    pub fn from_host(dev: &Device, data: &[f64], rows: usize, cols: usize) -> Self {
        Self::new(dev.mat(data, rows, cols))
    }

    /// `(rows, cols)`.
    pub fn shape(&self) -> (usize, usize) {
        self.value.shape()
    }

    /// Number of scalars.
    pub fn numel(&self) -> usize {
        self.value.len()
    }

    /// Whether the optimizer trains it.
    pub fn is_trainable(&self) -> bool {
        self.kind == ParamKind::Trainable
    }
}
