//! Named trainable parameters.

use rand::Rng;

use crate::device::{Dev, Mat};

/// A trainable matrix with a stable name that follows the module tree
/// (e.g. `score_net.layers.0.weight`), used for checkpoints and optimizer state.
#[derive(Clone)]
pub struct Param {
    /// Dotted path of the parameter inside its model.
    pub name: String,
    /// Current value.
    pub value: Mat,
}

impl Param {
    /// A parameter of shape `rows × cols` drawn uniformly from `[−bound, bound]`.
    pub fn uniform(
        dev: &Dev,
        name: impl Into<String>,
        rows: usize,
        cols: usize,
        bound: f64,
        rng: &mut impl Rng,
    ) -> Self {
        let data: Vec<f64> = (0..rows * cols)
            .map(|_| rng.gen_range(-bound..=bound))
            .collect();
        Self {
            name: name.into(),
            value: crate::device::to_mat(dev, data, rows, cols),
        }
    }

    /// A parameter of shape `rows × cols` filled with `value`.
    pub fn filled(
        dev: &Dev,
        name: impl Into<String>,
        rows: usize,
        cols: usize,
        value: f64,
    ) -> Self {
        Self {
            name: name.into(),
            value: crate::device::to_mat(dev, vec![value; rows * cols], rows, cols),
        }
    }

    /// `(rows, cols)`.
    pub fn shape(&self) -> (usize, usize) {
        crate::device::shape(&self.value)
    }

    /// Number of scalars.
    pub fn numel(&self) -> usize {
        let (r, c) = self.shape();
        r * c
    }
}
