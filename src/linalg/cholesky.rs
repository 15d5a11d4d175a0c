//! The Cholesky factorisation `A = L Lᵀ` of a symmetric positive-definite
//! matrix: in place on a caller's buffer ([`cholesky_in_place`], with
//! [`cholesky_solve_rows`] for many right-hand sides at once — what the
//! Stein estimator refits every step) and as an owned factor ([`Cholesky`],
//! for the synthetic targets). One algorithm serves both.

use super::{check_len, LinalgError};

/// Cholesky factorisation `A = L Lᵀ` in place: on success the lower triangle
/// of `a` (`n × n`, row-major) holds `L` and the strict upper triangle is zeroed.
///
/// # Errors
/// [`LinalgError::NotPositiveDefinite`] when a pivot is not strictly
/// positive and finite, naming the pivot.
pub fn cholesky_in_place(a: &mut [f64], n: usize) -> Result<(), LinalgError> {
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
            return Err(LinalgError::NotPositiveDefinite { index: j, pivot });
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

/// Cholesky factor `L` (lower triangular, positive diagonal) of a symmetric
/// positive-definite matrix `A = L Lᵀ`.
#[derive(Debug, Clone, PartialEq)]
pub struct Cholesky {
    n: usize,
    /// Row-major `n × n`, zero above the diagonal.
    l: Vec<f64>,
}

impl Cholesky {
    /// Factorizes the `n × n` matrix `a`.
    ///
    /// Only the lower triangle (diagonal included) of `a` is read; the matrix is
    /// assumed symmetric.
    ///
    /// # Errors
    /// [`LinalgError::DimensionMismatch`] if `a.len() != n²`,
    /// [`LinalgError::NotFinite`] if a lower-triangle entry is NaN or infinite,
    /// and [`LinalgError::NotPositiveDefinite`] if a pivot is not strictly
    /// positive (including numerically semidefinite matrices).
    pub fn new(a: &[f64], n: usize) -> Result<Self, LinalgError> {
        check_len("cholesky: a", a, n, n)?;
        for i in 0..n {
            for j in 0..=i {
                if !a[i * n + j].is_finite() {
                    return Err(LinalgError::NotFinite { row: i, col: j });
                }
            }
        }
        // The lower triangle of `a`, mirrored into the upper one (which the
        // in-place factorisation reads row by row), then factored in place.
        let mut l = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..=i {
                l[i * n + j] = a[i * n + j];
                l[j * n + i] = a[i * n + j];
            }
        }
        cholesky_in_place(&mut l, n)?;
        Ok(Self { n, l })
    }

    /// Dimension `n` of the factored matrix.
    pub fn dim(&self) -> usize {
        self.n
    }

    /// The factor `L`, row-major `n × n`, zero above the diagonal.
    pub fn factor(&self) -> &[f64] {
        &self.l
    }

    /// `log det A = 2 Σᵢ log Lᵢᵢ`.
    pub fn log_det(&self) -> f64 {
        2.0 * (0..self.n)
            .map(|i| self.l[i * self.n + i].ln())
            .sum::<f64>()
    }

    fn check_vec(&self, what: &str, v: &[f64]) {
        assert_eq!(
            v.len(),
            self.n,
            "Cholesky::{what}: vector length {} does not match dimension {}",
            v.len(),
            self.n
        );
    }

    /// Solves `L y = b` in place (forward substitution): on return `b` holds `y = L⁻¹ b`.
    ///
    /// # Panics
    /// If `b.len()` differs from [`Cholesky::dim`].
    pub fn solve_lower_in_place(&self, b: &mut [f64]) {
        self.check_vec("solve_lower_in_place", b);
        let n = self.n;
        for i in 0..n {
            let row = &self.l[i * n..i * n + i];
            let dot: f64 = row.iter().zip(&b[..i]).map(|(a, c)| a * c).sum();
            b[i] = (b[i] - dot) / self.l[i * n + i];
        }
    }

    /// Solves `Lᵀ x = b` in place (back substitution): on return `b` holds `x = L⁻ᵀ b`.
    ///
    /// # Panics
    /// If `b.len()` differs from [`Cholesky::dim`].
    pub fn solve_upper_in_place(&self, b: &mut [f64]) {
        self.check_vec("solve_upper_in_place", b);
        let n = self.n;
        for i in (0..n).rev() {
            let dot: f64 = (i + 1..n).map(|k| self.l[k * n + i] * b[k]).sum();
            b[i] = (b[i] - dot) / self.l[i * n + i];
        }
    }

    /// Solves `A x = b` in place: on return `b` holds `x = A⁻¹ b`.
    ///
    /// # Panics
    /// If `b.len()` differs from [`Cholesky::dim`].
    pub fn solve_in_place(&self, b: &mut [f64]) {
        self.solve_lower_in_place(b);
        self.solve_upper_in_place(b);
    }

    /// Writes `L z` into `out`.
    ///
    /// # Panics
    /// If `z.len()` or `out.len()` differs from [`Cholesky::dim`].
    pub fn mul_lower(&self, z: &[f64], out: &mut [f64]) {
        self.check_vec("mul_lower (z)", z);
        self.check_vec("mul_lower (out)", out);
        let n = self.n;
        for (i, o) in out.iter_mut().enumerate() {
            *o = self.l[i * n..i * n + i + 1]
                .iter()
                .zip(&z[..=i])
                .map(|(a, b)| a * b)
                .sum();
        }
    }

    /// The inverse `A⁻¹`, row-major `n × n`.
    pub fn inverse(&self) -> Vec<f64> {
        let n = self.n;
        let mut inv = vec![0.0; n * n];
        let mut col = vec![0.0; n];
        for j in 0..n {
            col.iter_mut().for_each(|c| *c = 0.0);
            col[j] = 1.0;
            self.solve_in_place(&mut col);
            for i in 0..n {
                inv[i * n + j] = col[i];
            }
        }
        inv
    }
}
