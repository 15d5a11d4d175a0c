//! The compute device and the plain tensor type every module shares.
//!
//! Data flows in as host `Vec<f64>` (row-major), becomes a [`Mat`] on [`Dev`]
//! through [`to_mat`], and comes back with [`to_host`]. Nothing outside this
//! module and [`crate::autodiff`] names dfdx types directly, so the tensor
//! library can be swapped or upgraded in one place.

use dfdx::prelude::*;

/// The dfdx device: CPU by default, CUDA with the `cuda` cargo feature.
#[cfg(not(feature = "cuda"))]
pub type Dev = dfdx::tensor::Cpu;
/// The dfdx device: CPU by default, CUDA with the `cuda` cargo feature.
#[cfg(feature = "cuda")]
pub type Dev = dfdx::tensor::Cuda;

/// A dense `rows × cols` matrix of `f64` on [`Dev`], without a gradient tape.
pub type Mat = Tensor<(usize, usize), f64, Dev>;

/// Human-readable name of the device this build computes on.
pub fn device_name() -> &'static str {
    if cfg!(feature = "cuda") {
        "cuda"
    } else {
        "cpu"
    }
}

/// Creates the device, seeded so dfdx's own samplers (if ever used) repeat.
pub fn new_device(seed: u64) -> Dev {
    Dev::seed_from_u64(seed)
}

/// Moves a row-major host buffer of `rows × cols` values onto the device.
///
/// # Panics
/// If `data.len() != rows * cols`; callers check shapes before this point.
pub fn to_mat(dev: &Dev, data: Vec<f64>, rows: usize, cols: usize) -> Mat {
    assert_eq!(
        data.len(),
        rows * cols,
        "to_mat: {} values for a {rows}×{cols} matrix",
        data.len()
    );
    dev.tensor_from_vec(data, (rows, cols))
}

/// Copies a matrix back to the host, row-major.
pub fn to_host(m: &Mat) -> Vec<f64> {
    m.as_vec()
}

/// The `(rows, cols)` of a matrix.
pub fn shape(m: &Mat) -> (usize, usize) {
    *m.shape()
}

/// The single value of a `1 × 1` matrix.
pub fn scalar(m: &Mat) -> f64 {
    m.as_vec()[0]
}
