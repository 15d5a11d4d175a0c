//! RBF kernels, distances, the median-heuristic bandwidth and the Stein
//! right-hand side, on host `f64` slices (see [`super`] for the data flow
//! and conventions).

use serde::{Deserialize, Serialize};

use crate::error::{require_positive, ConfigError};

/// How the RBF bandwidth `σ` is chosen at each fit.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub enum Bandwidth {
    /// The median of the pairwise distances of the fitted samples (see the
    /// module documentation for the exact convention and the fallback).
    #[default]
    Median,
    /// A fixed `σ > 0`.
    Fixed(f64),
}

impl Bandwidth {
    /// Checks a fixed bandwidth is finite and positive, naming `field`.
    pub fn validate(&self, field: &str) -> Result<(), ConfigError> {
        match *self {
            Bandwidth::Median => Ok(()),
            Bandwidth::Fixed(s) => require_positive(&format!("{field}.Fixed"), s),
        }
    }
}

/// Why samples cannot be used for a kernel estimate.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum KernelError {
    /// The samples have no coordinates.
    #[error("samples have dimension 0")]
    ZeroDimension,
    /// The values do not form whole rows.
    #[error("{values} sample values are not a whole number of rows of dimension {dim}")]
    RaggedRows {
        /// How many values were given.
        values: usize,
        /// The row width.
        dim: usize,
    },
    /// Fewer than two samples.
    #[error("a kernel score estimate needs at least 2 samples, got {n}")]
    TooFewSamples {
        /// How many were given.
        n: usize,
    },
    /// A sample holds NaN or an infinity.
    #[error("sample {sample} has a non-finite value {value} in column {column}")]
    NonFiniteSample {
        /// Row of the sample.
        sample: usize,
        /// Column of the value.
        column: usize,
        /// The value.
        value: f64,
    },
    /// A pairwise distance overflowed.
    #[error("a pairwise distance of the samples is not finite")]
    NonFiniteDistance,
    /// Every sample is the same point.
    #[error("all {n} samples are the same point: the median-heuristic bandwidth is 0 and they carry no information about the score")]
    AllSamplesEqual {
        /// How many samples there are.
        n: usize,
    },
}

/// Checks samples for a fit: `x.len()` a multiple of `dim`, at least two
/// rows, every entry finite. Returns the number of rows `n`.
///
/// # Errors
/// A message naming the problem (wrong length, too few samples, the first
/// non-finite entry).
pub fn check_samples(x: &[f64], dim: usize) -> Result<usize, KernelError> {
    if dim == 0 {
        return Err(KernelError::ZeroDimension);
    }
    if !x.len().is_multiple_of(dim) {
        return Err(KernelError::RaggedRows {
            values: x.len(),
            dim,
        });
    }
    let n = x.len() / dim;
    if n < 2 {
        return Err(KernelError::TooFewSamples { n });
    }
    if let Some(p) = x.iter().position(|v| !v.is_finite()) {
        return Err(KernelError::NonFiniteSample {
            sample: p / dim,
            column: p % dim,
            value: x[p],
        });
    }
    Ok(n)
}

/// Squared Euclidean distance between two equal-length rows.
#[inline]
pub fn sq_dist(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(u, v)| (u - v) * (u - v)).sum()
}

/// The RBF kernel `exp(−‖a − b‖² / (2σ²))`.
#[inline]
pub fn rbf(a: &[f64], b: &[f64], sigma: f64) -> f64 {
    (-sq_dist(a, b) / (2.0 * sigma * sigma)).exp()
}

/// Writes the `n × n` matrix of squared distances `‖x_i − x_j‖²` of the rows
/// of `x` (`n × d`) into `out` (resized), exactly symmetric with a zero diagonal.
pub fn pairwise_sq_dists_into(x: &[f64], n: usize, d: usize, out: &mut Vec<f64>) {
    out.clear();
    out.resize(n * n, 0.0);
    for i in 0..n {
        let xi = &x[i * d..(i + 1) * d];
        for j in (i + 1)..n {
            let s = sq_dist(xi, &x[j * d..(j + 1) * d]);
            out[i * n + j] = s;
            out[j * n + i] = s;
        }
    }
}

/// The median heuristic from the squared-distance matrix `sq` (`n × n`):
/// the median of the distances `‖x_i − x_j‖`, `i < j`, falling back to the
/// median of the positive distances when that is 0. `scratch` is reused.
///
/// # Errors
/// When every distance is 0 (all samples are the same point), or a distance
/// is not finite.
pub fn median_heuristic(sq: &[f64], n: usize, scratch: &mut Vec<f64>) -> Result<f64, KernelError> {
    scratch.clear();
    for i in 0..n {
        scratch.extend_from_slice(&sq[i * n + i + 1..(i + 1) * n]);
    }
    if scratch.iter().any(|v| !v.is_finite()) {
        return Err(KernelError::NonFiniteDistance);
    }
    for v in scratch.iter_mut() {
        *v = v.sqrt();
    }
    let mut m = median_in_place(scratch);
    if m <= 0.0 {
        scratch.retain(|&v| v > 0.0);
        if scratch.is_empty() {
            return Err(KernelError::AllSamplesEqual { n });
        }
        m = median_in_place(scratch);
    }
    Ok(m)
}

/// Median of a non-empty slice (mean of the two middle values for an even
/// length); reorders the slice.
fn median_in_place(v: &mut [f64]) -> f64 {
    let len = v.len();
    let mid = len / 2;
    let (_, &mut upper, _) = v.select_nth_unstable_by(mid, f64::total_cmp);
    if len % 2 == 1 {
        upper
    } else {
        let lower = v[..mid].iter().copied().fold(f64::NEG_INFINITY, f64::max);
        0.5 * (lower + upper)
    }
}

/// The bandwidth `σ` for samples with squared distances `sq` (`n × n`).
///
/// # Errors
/// See [`median_heuristic`]; a fixed bandwidth is returned as is (validated
/// when the model was built).
pub fn choose_bandwidth(
    bandwidth: Bandwidth,
    sq: &[f64],
    n: usize,
    scratch: &mut Vec<f64>,
) -> Result<f64, KernelError> {
    match bandwidth {
        Bandwidth::Fixed(s) => Ok(s),
        Bandwidth::Median => median_heuristic(sq, n, scratch),
    }
}

/// Turns squared distances into RBF kernel values in place:
/// `a ← exp(−a / (2σ²))`.
pub fn rbf_from_sq_in_place(a: &mut [f64], sigma: f64) {
    let c = -1.0 / (2.0 * sigma * sigma);
    for v in a {
        *v = (*v * c).exp();
    }
}

/// Writes `R_i = Σ_j k(x_i, x_j) (x_i − x_j) / σ²` (`n × d`) into `out`
/// (resized), from the samples `x` (`n × d`) and their Gram matrix `k`
/// (`n × n`). Row `i` is `Σ_j ∇_{x_j} k(x_i, x_j)`.
pub fn stein_rhs_into(x: &[f64], k: &[f64], n: usize, d: usize, sigma: f64, out: &mut Vec<f64>) {
    out.clear();
    out.resize(n * d, 0.0);
    let inv = 1.0 / (sigma * sigma);
    for i in 0..n {
        let xi = &x[i * d..(i + 1) * d];
        let ki = &k[i * n..(i + 1) * n];
        let row = &mut out[i * d..(i + 1) * d];
        let mut sum_k = 0.0;
        for (j, &kij) in ki.iter().enumerate() {
            sum_k += kij;
            for (r, xj) in row.iter_mut().zip(&x[j * d..(j + 1) * d]) {
                *r -= kij * xj;
            }
        }
        for (r, xi) in row.iter_mut().zip(xi) {
            *r = (*r + sum_k * xi) * inv;
        }
    }
}

/// The index of the first of the `n` rows of `samples` (`n × d`) equal to
/// `query` bit for bit (as `f64` values; `0.0 == −0.0`), trying `hint` first
/// (a caller scoring the fitted samples in order passes the row index, which
/// makes the lookup `O(d)`); `None` when no row matches.
pub fn find_sample(samples: &[f64], d: usize, query: &[f64], hint: usize) -> Option<usize> {
    let n = samples.len() / d;
    if hint < n && samples[hint * d..(hint + 1) * d] == *query {
        return Some(hint);
    }
    (0..n).find(|&i| samples[i * d..(i + 1) * d] == *query)
}
