//! RBF kernels and small dense linear algebra for the kernel score
//! estimators (the Stein and spectral model plugins).
//!
//! Data flow: a plugin's `fit_samples` hands its samples (row-major `n × d`,
//! checked by [`check_samples`]) to [`pairwise_sq_dists_into`], picks the
//! bandwidth with [`choose_bandwidth`] (median heuristic or fixed), turns the
//! squared distances into the Gram matrix with [`rbf_from_sq_in_place`], and
//! builds the Stein right-hand side `R` with [`stein_rhs_into`]. From there
//! the Stein estimator solves `(K + ηI) G = −R` with [`cholesky_in_place`] /
//! [`cholesky_solve_rows`], and the spectral estimator eigendecomposes `K`
//! with [`SymEigen`]. Queries that repeat a fitted sample are found with
//! [`find_sample`].
//!
//! Conventions, shared by both estimators:
//!
//! * kernel `k(x, y) = exp(−‖x − y‖² / (2σ²))`;
//! * median heuristic: `σ` = the median of the `n(n−1)/2` pairwise Euclidean
//!   distances `‖x_i − x_j‖`, `i < j` (the mean of the two middle values when
//!   their number is even), as in Shi et al. (2018)'s code and the paper's
//!   VAE setup. When that median is 0 (more than half the pairs coincide) the
//!   median of the positive distances is used; when every sample is the same
//!   point there is no scale at all and the fit is refused with an error;
//! * `R_i = Σ_j ∇_{x_j} k(x_i, x_j) = Σ_j k(x_i, x_j) (x_i − x_j) / σ²`
//!   (the `⟨∇, K⟩` of Li & Turner, 2018).
//!
//! Matrices are row-major `f64` slices with sizes passed explicitly, and the
//! `*_into` / `*_in_place` forms write into caller-owned buffers so that a
//! model refitted on every training step reuses its allocations.

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

/// Checks samples for a fit: `x.len()` a multiple of `dim`, at least two
/// rows, every entry finite. Returns the number of rows `n`.
///
/// # Errors
/// A message naming the problem (wrong length, too few samples, the first
/// non-finite entry).
pub fn check_samples(x: &[f64], dim: usize) -> Result<usize, String> {
    if dim == 0 {
        return Err("samples have dimension 0".to_string());
    }
    if !x.len().is_multiple_of(dim) {
        return Err(format!(
            "{} sample values are not a whole number of rows of dimension {dim}",
            x.len()
        ));
    }
    let n = x.len() / dim;
    if n < 2 {
        return Err(format!(
            "a kernel score estimate needs at least 2 samples, got {n}"
        ));
    }
    if let Some(p) = x.iter().position(|v| !v.is_finite()) {
        return Err(format!(
            "sample {} has a non-finite value {} in column {}",
            p / dim,
            x[p],
            p % dim
        ));
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
pub fn median_heuristic(sq: &[f64], n: usize, scratch: &mut Vec<f64>) -> Result<f64, String> {
    scratch.clear();
    for i in 0..n {
        scratch.extend_from_slice(&sq[i * n + i + 1..(i + 1) * n]);
    }
    if scratch.iter().any(|v| !v.is_finite()) {
        return Err("a pairwise distance of the samples is not finite".to_string());
    }
    for v in scratch.iter_mut() {
        *v = v.sqrt();
    }
    let mut m = median_in_place(scratch);
    if m <= 0.0 {
        scratch.retain(|&v| v > 0.0);
        if scratch.is_empty() {
            return Err(format!(
                "all {n} samples are the same point: the median-heuristic bandwidth is 0 \
                 and they carry no information about the score"
            ));
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
) -> Result<f64, String> {
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

/// Cholesky factorisation `A = L Lᵀ` in place: on success the lower triangle
/// of `a` (`n × n`, row-major) holds `L` and the strict upper triangle is zeroed.
///
/// # Errors
/// When a pivot is not strictly positive and finite (the matrix is not
/// numerically positive definite), naming the pivot.
pub fn cholesky_in_place(a: &mut [f64], n: usize) -> Result<(), String> {
    for j in 0..n {
        let (done, rest) = a.split_at_mut(j * n);
        let row_j = &mut rest[..n];
        // Row j left of the diagonal: L_jk = (A_jk − Σ_{m<k} L_jm L_km) / L_kk.
        for k in 0..j {
            let row_k = &done[k * n..k * n + k + 1];
            let s: f64 = row_j[..k].iter().zip(&row_k[..k]).map(|(u, v)| u * v).sum();
            row_j[k] = (row_j[k] - s) / row_k[k];
        }
        let s: f64 = row_j[..j].iter().map(|u| u * u).sum();
        let pivot = row_j[j] - s;
        if !(pivot > 0.0 && pivot.is_finite()) {
            return Err(format!(
                "the {n} × {n} matrix is not positive definite: Cholesky pivot {j} is {pivot:e}"
            ));
        }
        row_j[j] = pivot.sqrt();
        for v in &mut row_j[j + 1..] {
            *v = 0.0;
        }
    }
    Ok(())
}

/// Solves `L Lᵀ X = B` in place for `m` right-hand sides: `b` is `n × m`
/// row-major (one right-hand side per column), `l` the factor from
/// [`cholesky_in_place`].
pub fn cholesky_solve_rows(l: &[f64], n: usize, b: &mut [f64], m: usize) {
    // Forward: L Y = B, row by row (all columns at once).
    for i in 0..n {
        let (prev, rest) = b.split_at_mut(i * m);
        let bi = &mut rest[..m];
        for (k, &lik) in l[i * n..i * n + i].iter().enumerate() {
            if lik != 0.0 {
                for (u, v) in bi.iter_mut().zip(&prev[k * m..(k + 1) * m]) {
                    *u -= lik * v;
                }
            }
        }
        let inv = 1.0 / l[i * n + i];
        for u in bi.iter_mut() {
            *u *= inv;
        }
    }
    // Backward: Lᵀ X = Y.
    for i in (0..n).rev() {
        let (head, tail) = b.split_at_mut((i + 1) * m);
        let bi = &mut head[i * m..];
        for k in (i + 1)..n {
            let lki = l[k * n + i];
            if lki != 0.0 {
                for (u, v) in bi.iter_mut().zip(&tail[(k - i - 1) * m..(k - i) * m]) {
                    *u -= lki * v;
                }
            }
        }
        let inv = 1.0 / l[i * n + i];
        for u in bi.iter_mut() {
            *u *= inv;
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

/// The eigendecomposition `A = Σ_j λ_j u_j u_jᵀ` of a symmetric matrix, by
/// Householder tridiagonalisation and the implicit QL algorithm (the EISPACK
/// `tred2`/`tql2` pair, as in JAMA), in `f64` on the host.
///
/// Eigenvalues are sorted in decreasing order; `vectors` is `n × n`
/// row-major with **row** `j` the unit eigenvector `u_j` of `values[j]`.
#[derive(Debug, Clone, Default)]
pub struct SymEigen {
    /// Eigenvalues, largest first.
    pub values: Vec<f64>,
    /// Row `j` is the eigenvector of `values[j]` (orthonormal rows).
    pub vectors: Vec<f64>,
    /// Matrix size.
    pub n: usize,
    e: Vec<f64>,
    order: Vec<usize>,
    tmp: Vec<f64>,
}

/// Eigendecomposition of the symmetric `n × n` matrix `a` (only symmetric
/// input is meaningful; the lower triangle is what is read).
///
/// # Errors
/// See [`SymEigen::compute`].
pub fn sym_eigen(a: &[f64], n: usize) -> Result<SymEigen, String> {
    let mut e = SymEigen::default();
    e.compute(a, n)?;
    Ok(e)
}

impl SymEigen {
    /// Row `j` of [`SymEigen::vectors`]: the eigenvector of `values[j]`.
    pub fn vector(&self, j: usize) -> &[f64] {
        &self.vectors[j * self.n..(j + 1) * self.n]
    }

    /// Recomputes the decomposition for the symmetric `n × n` matrix `a`,
    /// reusing this value's buffers.
    ///
    /// # Errors
    /// When `a` has the wrong length or a non-finite entry, or the QL
    /// iteration does not converge (not seen for finite symmetric input).
    pub fn compute(&mut self, a: &[f64], n: usize) -> Result<(), String> {
        if a.len() != n * n {
            return Err(format!(
                "eigendecomposition: {} entries for a {n} × {n} matrix",
                a.len()
            ));
        }
        if let Some(p) = a.iter().position(|v| !v.is_finite()) {
            return Err(format!(
                "eigendecomposition: entry ({}, {}) is not finite",
                p / n,
                p % n
            ));
        }
        self.n = n;
        self.values.clear();
        self.values.resize(n, 0.0);
        self.e.clear();
        self.e.resize(n, 0.0);
        // `tmp` holds V (columns are eigenvectors) during tred2.
        self.tmp.clear();
        self.tmp.extend_from_slice(a);
        if n == 0 {
            self.vectors.clear();
            return Ok(());
        }
        tred2(&mut self.tmp, &mut self.values, &mut self.e, n);
        // tql2 rotates pairs of eigenvector columns; work on the transpose so
        // those are contiguous rows.
        self.vectors.clear();
        self.vectors.resize(n * n, 0.0);
        for i in 0..n {
            for j in 0..n {
                self.vectors[j * n + i] = self.tmp[i * n + j];
            }
        }
        tql2(&mut self.vectors, &mut self.values, &mut self.e, n)?;
        // Sort decreasing.
        self.order.clear();
        self.order.extend(0..n);
        let vals = &self.values;
        self.order
            .sort_by(|&i, &j| vals[j].total_cmp(&vals[i]).then(i.cmp(&j)));
        if self.order.iter().enumerate().any(|(k, &o)| k != o) {
            self.tmp.clear();
            self.tmp.extend_from_slice(&self.vectors);
            self.e.clear();
            self.e.extend_from_slice(&self.values);
            for (k, &o) in self.order.iter().enumerate() {
                self.values[k] = self.e[o];
                self.vectors[k * n..(k + 1) * n].copy_from_slice(&self.tmp[o * n..(o + 1) * n]);
            }
        }
        Ok(())
    }
}

/// Householder reduction of the symmetric matrix in `v` (`n × n`) to
/// tridiagonal form: on return `d` holds the diagonal, `e[1..]` the
/// subdiagonal, and `v` the orthogonal transformation (JAMA's `tred2`).
#[allow(clippy::needless_range_loop)]
fn tred2(v: &mut [f64], d: &mut [f64], e: &mut [f64], n: usize) {
    let at = |i: usize, j: usize| i * n + j;
    for j in 0..n {
        d[j] = v[at(n - 1, j)];
    }
    for i in (1..n).rev() {
        let mut scale = 0.0;
        let mut h = 0.0;
        for k in 0..i {
            scale += d[k].abs();
        }
        if scale == 0.0 {
            e[i] = d[i - 1];
            for j in 0..i {
                d[j] = v[at(i - 1, j)];
                v[at(i, j)] = 0.0;
                v[at(j, i)] = 0.0;
            }
        } else {
            for k in 0..i {
                d[k] /= scale;
                h += d[k] * d[k];
            }
            let mut f = d[i - 1];
            let mut g = h.sqrt();
            if f > 0.0 {
                g = -g;
            }
            e[i] = scale * g;
            h -= f * g;
            d[i - 1] = f - g;
            for j in 0..i {
                e[j] = 0.0;
            }
            for j in 0..i {
                f = d[j];
                v[at(j, i)] = f;
                g = e[j] + v[at(j, j)] * f;
                for k in (j + 1)..i {
                    g += v[at(k, j)] * d[k];
                    e[k] += v[at(k, j)] * f;
                }
                e[j] = g;
            }
            f = 0.0;
            for j in 0..i {
                e[j] /= h;
                f += e[j] * d[j];
            }
            let hh = f / (h + h);
            for j in 0..i {
                e[j] -= hh * d[j];
            }
            for j in 0..i {
                f = d[j];
                g = e[j];
                for k in j..i {
                    v[at(k, j)] -= f * e[k] + g * d[k];
                }
                d[j] = v[at(i - 1, j)];
                v[at(i, j)] = 0.0;
            }
        }
        d[i] = h;
    }
    for i in 0..n - 1 {
        v[at(n - 1, i)] = v[at(i, i)];
        v[at(i, i)] = 1.0;
        let h = d[i + 1];
        if h != 0.0 {
            for k in 0..=i {
                d[k] = v[at(k, i + 1)] / h;
            }
            for j in 0..=i {
                let mut g = 0.0;
                for k in 0..=i {
                    g += v[at(k, i + 1)] * v[at(k, j)];
                }
                for k in 0..=i {
                    v[at(k, j)] -= g * d[k];
                }
            }
        }
        for k in 0..=i {
            v[at(k, i + 1)] = 0.0;
        }
    }
    for j in 0..n {
        d[j] = v[at(n - 1, j)];
        v[at(n - 1, j)] = 0.0;
    }
    v[at(n - 1, n - 1)] = 1.0;
    e[0] = 0.0;
}

/// Implicit QL iterations on the tridiagonal `(d, e)` from [`tred2`],
/// accumulating into `zt` (the transpose of JAMA's `V`: row `k` is
/// eigenvector `k`). Eigenvalues are left unsorted in `d`.
fn tql2(zt: &mut [f64], d: &mut [f64], e: &mut [f64], n: usize) -> Result<(), String> {
    const MAX_ITER: usize = 60;
    for i in 1..n {
        e[i - 1] = e[i];
    }
    e[n - 1] = 0.0;
    let mut f = 0.0;
    let mut tst1: f64 = 0.0;
    let eps = f64::EPSILON;
    for l in 0..n {
        tst1 = tst1.max(d[l].abs() + e[l].abs());
        let mut m = l;
        while m < n - 1 {
            if e[m].abs() <= eps * tst1 {
                break;
            }
            m += 1;
        }
        if m > l {
            let mut iter = 0;
            loop {
                iter += 1;
                if iter > MAX_ITER {
                    return Err(format!(
                        "eigendecomposition: QL iteration did not converge for eigenvalue {l}"
                    ));
                }
                let mut g = d[l];
                let mut p = (d[l + 1] - g) / (2.0 * e[l]);
                let mut r = p.hypot(1.0);
                if p < 0.0 {
                    r = -r;
                }
                d[l] = e[l] / (p + r);
                d[l + 1] = e[l] * (p + r);
                let dl1 = d[l + 1];
                let mut h = g - d[l];
                for di in &mut d[l + 2..n] {
                    *di -= h;
                }
                f += h;
                p = d[m];
                let mut c = 1.0;
                let mut c2 = c;
                let mut c3 = c;
                let el1 = e[l + 1];
                let mut s = 0.0;
                let mut s2 = 0.0;
                for i in (l..m).rev() {
                    c3 = c2;
                    c2 = c;
                    s2 = s;
                    g = c * e[i];
                    h = c * p;
                    r = p.hypot(e[i]);
                    e[i + 1] = s * r;
                    s = e[i] / r;
                    c = p / r;
                    p = c * d[i] - s * g;
                    d[i + 1] = h + s * (c * g + s * d[i]);
                    // Rotate eigenvectors i and i + 1 (rows of zt).
                    let (lo, hi) = zt.split_at_mut((i + 1) * n);
                    let zi = &mut lo[i * n..];
                    let zi1 = &mut hi[..n];
                    for (a, b) in zi.iter_mut().zip(zi1.iter_mut()) {
                        let hb = *b;
                        *b = s * *a + c * hb;
                        *a = c * *a - s * hb;
                    }
                }
                p = -s * s2 * c3 * el1 * e[l] / dl1;
                e[l] = s * p;
                d[l] = c * p;
                if e[l].abs() <= eps * tst1 {
                    break;
                }
            }
        }
        d[l] += f;
        e[l] = 0.0;
    }
    Ok(())
}

/// A fitted kernel score estimator evaluated on the host, a batch of query
/// points at a time; [`graph_score`] and [`graph_terms`] turn it into the
/// [`ScoreModel`](crate::model::ScoreModel) methods.
pub trait PointScore {
    /// Dimension `D` of the score.
    fn score_dim(&self) -> usize;
    /// Conditioning columns after the first `D` of every input row (ignored).
    fn context_cols(&self) -> usize;
    /// Writes the scores at the rows of `q` (`n × D`) into `out` (`n × D`).
    /// Row `i` of `q` is looked up as fitted sample `i` first (see
    /// [`find_sample`]), so scoring the fitted samples in order is cheap.
    fn scores_into(&self, q: &[f64], out: &mut [f64]);
    /// Writes `vᵀ (∇s(q)) v` for each row of `q` and `v` (`n × D`) into `out`
    /// (length `n`), given `s`, the scores at `q` from
    /// [`PointScore::scores_into`].
    fn vhv_into(&self, q: &[f64], v: &[f64], s: &[f64], out: &mut [f64]);
}

/// The first `d` columns of the rows of `x` (width `width`), borrowed when
/// there is nothing to strip.
fn strip_context(x: &[f64], d: usize, width: usize) -> std::borrow::Cow<'_, [f64]> {
    assert!(
        x.len().is_multiple_of(width),
        "{} values are not rows of width {width}",
        x.len()
    );
    if width == d {
        std::borrow::Cow::Borrowed(x)
    } else {
        std::borrow::Cow::Owned(
            x.chunks_exact(width)
                .flat_map(|r| &r[..d])
                .copied()
                .collect(),
        )
    }
}

/// The score `s(x)` (`n × D`) of a fitted estimator at the rows of `x`
/// (`n × (D + context)`, the context columns ignored), row-major on the host.
///
/// # Panics
/// If `x` has the wrong number of values for rows of that width.
pub fn host_scores<E: PointScore + ?Sized>(e: &E, x: &[f64]) -> Vec<f64> {
    let d = e.score_dim();
    let q = strip_context(x, d, d + e.context_cols());
    let mut out = vec![0.0; q.len()];
    e.scores_into(&q, &mut out);
    out
}

/// `(vᵀs, vᵀ(∇s)v, s)` of a fitted estimator at the rows of `x`
/// (`n × (D + context)`) along the rows of `v` (`n × D`), on the host.
///
/// # Panics
/// If the shapes do not match.
pub fn host_terms<E: PointScore + ?Sized>(
    e: &E,
    x: &[f64],
    v: &[f64],
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let d = e.score_dim();
    let q = strip_context(x, d, d + e.context_cols());
    let n = q.len() / d;
    assert_eq!(v.len(), n * d, "directions: expected {n} rows of width {d}");
    let mut s = vec![0.0; n * d];
    e.scores_into(&q, &mut s);
    let vs = s
        .chunks_exact(d)
        .zip(v.chunks_exact(d))
        .map(|(a, b)| a.iter().zip(b).map(|(x, y)| x * y).sum())
        .collect();
    let mut vhv = vec![0.0; n];
    e.vhv_into(&q, v, &s, &mut vhv);
    (vs, vhv, s)
}

/// [`ScoreModel::score`](crate::model::ScoreModel::score) for a fitted
/// estimator: the host scores as a constant on `g`.
pub fn graph_score<E: PointScore + ?Sized>(
    e: &E,
    g: &mut crate::autodiff::Graph,
    x: &crate::device::Mat,
) -> crate::device::Mat {
    let (n, _) = crate::device::shape(x);
    let out = host_scores(e, &crate::device::to_host(x));
    g.constant(out, n, e.score_dim())
}

/// [`ScoreModel::terms`](crate::model::ScoreModel::terms) for a fitted
/// estimator: constants on `g` (there are no parameters to differentiate).
/// `v` holds `m` directions per row of `x`, direction-major; the host
/// computation sees `x` repeated `m` times.
pub fn graph_terms<E: PointScore + ?Sized>(
    e: &E,
    g: &mut crate::autodiff::Graph,
    x: &crate::device::Mat,
    v: &crate::device::Mat,
    want_score: bool,
) -> crate::model::Terms {
    let n = x.rows();
    let m = v.rows() / n.max(1);
    let xh = x.to_host();
    let mut xr = Vec::with_capacity(xh.len() * m);
    for _ in 0..m {
        xr.extend_from_slice(&xh);
    }
    let (vs, vhv, s) = host_terms(e, &xr, &v.to_host());
    let d = e.score_dim();
    crate::model::Terms {
        vs: g.constant(vs, n * m, 1),
        vhv: g.constant(vhv, n * m, 1),
        score: want_score.then(|| g.constant(s[..n * d].to_vec(), n, d)),
    }
}
