//! The eigendecomposition of a symmetric matrix (Householder
//! tridiagonalisation and implicit QL, EISPACK's `tred2`/`tql2`), for the
//! spectral score estimator.

use super::LinalgError;

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
pub fn sym_eigen(a: &[f64], n: usize) -> Result<SymEigen, LinalgError> {
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
    pub fn compute(&mut self, a: &[f64], n: usize) -> Result<(), LinalgError> {
        super::check_len("eigendecomposition: a", a, n, n)?;
        if let Some(p) = a.iter().position(|v| !v.is_finite()) {
            return Err(LinalgError::NotFinite {
                row: p / n,
                col: p % n,
            });
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
fn tql2(zt: &mut [f64], d: &mut [f64], e: &mut [f64], n: usize) -> Result<(), LinalgError> {
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
                    return Err(LinalgError::NoConvergence { index: l });
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
