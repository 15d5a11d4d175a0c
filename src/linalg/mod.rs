//! Small dense linear algebra in plain `f64` on the host: the one home of
//! the Cholesky factorisation ([`cholesky`]) and the symmetric
//! eigensolver ([`eigen`]), shared by the synthetic targets and the kernel
//! score estimators.
//!
//! Matrices are row-major `&[f64]` slices with their sizes passed explicitly
//! (entry `(i, j)` of an `r × c` matrix is `a[i * c + j]`). The routines are
//! written for the modest sizes of synthetic targets (tens to a few thousand
//! dimensions), not for speed.
//!
//! Failures that depend on the data — a matrix that is not positive definite,
//! a non-finite entry, a slice of the wrong length handed to a constructor —
//! come back as [`LinalgError`]. The methods of an already-built [`Cholesky`]
//! factor only check that vector lengths match its dimension and panic
//! otherwise, like slice indexing does; their arithmetic cannot fail.

pub mod cholesky;
pub mod eigen;

use rand::Rng;
use rand_distr::StandardNormal;

pub use cholesky::{cholesky_in_place, cholesky_solve_rows, Cholesky};
pub use eigen::{sym_eigen, SymEigen};

/// Why a linear-algebra routine refused its input.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LinalgError {
    /// A slice did not have the length its stated sizes imply.
    #[error("{what}: expected {expected} entries, got {got}")]
    DimensionMismatch {
        /// Which argument was wrong.
        what: &'static str,
        /// The length the sizes imply (saturated on overflow).
        expected: usize,
        /// The length that was passed.
        got: usize,
    },
    /// The matrix holds a NaN or infinite entry.
    #[error("entry ({row}, {col}) is not finite")]
    NotFinite {
        /// Row of the offending entry.
        row: usize,
        /// Column of the offending entry.
        col: usize,
    },
    /// Cholesky met a pivot that is not strictly positive.
    #[error("matrix is not positive definite: pivot {index} is {pivot}")]
    NotPositiveDefinite {
        /// Index of the failing pivot (0-based).
        index: usize,
        /// The value of the pivot (≤ 0, or not finite).
        pivot: f64,
    },
    /// Elimination met a column with no usable pivot: the matrix is singular
    /// (or numerically so).
    #[error("matrix is singular: no pivot in column {column}")]
    Singular {
        /// The column (0-based).
        column: usize,
    },
    /// The symmetric eigensolver's QL iteration did not converge.
    #[error("eigendecomposition: the QL iteration did not converge for eigenvalue {index}")]
    NoConvergence {
        /// The eigenvalue being refined.
        index: usize,
    },
    /// Random-rotation sampling kept drawing numerically singular matrices.
    #[error("random matrix was numerically singular in {attempts} attempts")]
    Degenerate {
        /// How many draws were tried.
        attempts: usize,
    },
}

/// Checks that `a` has exactly `rows · cols` entries.
pub(crate) fn check_len(
    what: &'static str,
    a: &[f64],
    rows: usize,
    cols: usize,
) -> Result<(), LinalgError> {
    let expected = rows.saturating_mul(cols);
    if rows.checked_mul(cols) != Some(a.len()) {
        return Err(LinalgError::DimensionMismatch {
            what,
            expected,
            got: a.len(),
        });
    }
    Ok(())
}

/// The `n × n` identity matrix.
pub fn identity(n: usize) -> Vec<f64> {
    let mut m = vec![0.0; n * n];
    for i in 0..n {
        m[i * n + i] = 1.0;
    }
    m
}

/// Transpose of the `rows × cols` matrix `a` (a `cols × rows` matrix).
///
/// # Errors
/// [`LinalgError::DimensionMismatch`] if `a.len() != rows · cols`.
pub fn transpose(a: &[f64], rows: usize, cols: usize) -> Result<Vec<f64>, LinalgError> {
    check_len("transpose: a", a, rows, cols)?;
    let mut t = vec![0.0; a.len()];
    for i in 0..rows {
        for j in 0..cols {
            t[j * rows + i] = a[i * cols + j];
        }
    }
    Ok(t)
}

/// Product `A B` of the `n × k` matrix `a` and the `k × m` matrix `b` (an `n × m` matrix).
///
/// # Errors
/// [`LinalgError::DimensionMismatch`] if a slice length does not match its sizes.
pub fn mat_mul(
    a: &[f64],
    b: &[f64],
    n: usize,
    k: usize,
    m: usize,
) -> Result<Vec<f64>, LinalgError> {
    check_len("mat_mul: a", a, n, k)?;
    check_len("mat_mul: b", b, k, m)?;
    let mut c = vec![0.0; n * m];
    for i in 0..n {
        let row = &mut c[i * m..(i + 1) * m];
        for l in 0..k {
            let ail = a[i * k + l];
            if ail == 0.0 {
                continue;
            }
            for (cij, blj) in row.iter_mut().zip(&b[l * m..(l + 1) * m]) {
                *cij += ail * blj;
            }
        }
    }
    Ok(c)
}

/// Product `A x` of the `rows × cols` matrix `a` and the vector `x` (length `cols`).
///
/// # Errors
/// [`LinalgError::DimensionMismatch`] if a slice length does not match its sizes.
pub fn mat_vec(a: &[f64], rows: usize, cols: usize, x: &[f64]) -> Result<Vec<f64>, LinalgError> {
    check_len("mat_vec: a", a, rows, cols)?;
    check_len("mat_vec: x", x, cols, 1)?;
    Ok((0..rows)
        .map(|i| {
            a[i * cols..(i + 1) * cols]
                .iter()
                .zip(x)
                .map(|(aij, xj)| aij * xj)
                .sum()
        })
        .collect())
}

/// Determinant of the `n × n` matrix `a`, by LU decomposition with partial pivoting.
///
/// Returns exactly `0.0` when elimination meets an exactly zero column.
///
/// # Errors
/// [`LinalgError::DimensionMismatch`] if `a.len() != n²`.
pub fn determinant(a: &[f64], n: usize) -> Result<f64, LinalgError> {
    check_len("determinant: a", a, n, n)?;
    let mut m = a.to_vec();
    let mut det = 1.0;
    for j in 0..n {
        let (p, pmax) = (j..n)
            .map(|i| (i, m[i * n + j].abs()))
            .fold(
                (j, -1.0),
                |best, cur| if cur.1 > best.1 { cur } else { best },
            );
        if pmax == 0.0 {
            return Ok(0.0);
        }
        if p != j {
            for c in 0..n {
                m.swap(j * n + c, p * n + c);
            }
            det = -det;
        }
        let pivot = m[j * n + j];
        det *= pivot;
        for i in j + 1..n {
            let f = m[i * n + j] / pivot;
            if f == 0.0 {
                continue;
            }
            for c in j..n {
                m[i * n + c] -= f * m[j * n + c];
            }
        }
    }
    Ok(det)
}

/// The inverse of the `n × n` matrix `a`, by Gauss–Jordan elimination with
/// partial pivoting.
///
/// # Errors
/// [`LinalgError::DimensionMismatch`] if `a.len() != n²`,
/// [`LinalgError::NotFinite`] for a NaN or infinite entry, and
/// [`LinalgError::Singular`] when a pivot is zero or below `1e-14` times the
/// largest entry of `a` in magnitude.
pub fn inverse(a: &[f64], n: usize) -> Result<Vec<f64>, LinalgError> {
    check_len("inverse: a", a, n, n)?;
    if let Some(k) = a.iter().position(|v| !v.is_finite()) {
        return Err(LinalgError::NotFinite {
            row: k / n,
            col: k % n,
        });
    }
    let scale = a.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let mut m = a.to_vec();
    let mut inv = identity(n);
    for j in 0..n {
        let p = (j..n)
            .max_by(|&x, &y| m[x * n + j].abs().total_cmp(&m[y * n + j].abs()))
            .unwrap_or(j);
        let pivot = m[p * n + j];
        if pivot == 0.0 || pivot.abs() <= 1e-14 * scale {
            return Err(LinalgError::Singular { column: j });
        }
        if p != j {
            for c in 0..n {
                m.swap(j * n + c, p * n + c);
                inv.swap(j * n + c, p * n + c);
            }
        }
        for c in 0..n {
            m[j * n + c] /= pivot;
            inv[j * n + c] /= pivot;
        }
        for i in 0..n {
            let f = m[i * n + j];
            if i == j || f == 0.0 {
                continue;
            }
            for c in 0..n {
                m[i * n + c] -= f * m[j * n + c];
                inv[i * n + c] -= f * inv[j * n + c];
            }
        }
    }
    Ok(inv)
}

/// A uniformly (Haar) distributed random rotation: an `n × n` orthogonal matrix
/// with determinant `+1`.
///
/// Draws an `n × n` matrix of iid standard normals from `rng`, orthonormalizes
/// its columns by modified Gram–Schmidt (run twice per column for accuracy),
/// which gives the `Q` of a QR factorization whose `R` has a positive diagonal
/// and is hence Haar on the orthogonal group, then negates the first column if
/// the determinant is `−1`. A numerically singular draw (probability zero in
/// exact arithmetic) is redrawn. For `n = 0` it returns an empty matrix and
/// draws nothing.
///
/// # Errors
/// [`LinalgError::Degenerate`] after 16 numerically singular draws in a row.
pub fn random_rotation<R: Rng + ?Sized>(rng: &mut R, n: usize) -> Result<Vec<f64>, LinalgError> {
    const ATTEMPTS: usize = 16;
    for _ in 0..ATTEMPTS {
        let g: Vec<f64> = (0..n * n).map(|_| rng.sample(StandardNormal)).collect();
        if let Some(mut q) = orthonormalize_columns(&g, n) {
            if determinant(&q, n)? < 0.0 {
                for i in 0..n {
                    q[i * n] = -q[i * n];
                }
            }
            return Ok(q);
        }
    }
    Err(LinalgError::Degenerate { attempts: ATTEMPTS })
}

/// Gram–Schmidt orthonormalization of the columns of the `n × n` matrix `g`;
/// `None` when a column is numerically dependent on the previous ones.
fn orthonormalize_columns(g: &[f64], n: usize) -> Option<Vec<f64>> {
    // Work on columns stored contiguously (the transpose), then transpose back.
    let mut cols = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            cols[j * n + i] = g[i * n + j];
        }
    }
    for j in 0..n {
        let (done, rest) = cols.split_at_mut(j * n);
        let v = &mut rest[..n];
        let norm0 = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        if norm0.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) || !norm0.is_finite() {
            return None;
        }
        for _pass in 0..2 {
            for k in 0..j {
                let qk = &done[k * n..(k + 1) * n];
                let r: f64 = qk.iter().zip(v.iter()).map(|(a, b)| a * b).sum();
                for (vi, qi) in v.iter_mut().zip(qk) {
                    *vi -= r * qi;
                }
            }
        }
        let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        if norm.partial_cmp(&(1e-10 * norm0)) != Some(std::cmp::Ordering::Greater) {
            return None;
        }
        for vi in v.iter_mut() {
            *vi /= norm;
        }
    }
    let mut q = vec![0.0; n * n];
    for j in 0..n {
        for i in 0..n {
            q[i * n + j] = cols[j * n + i];
        }
    }
    Some(q)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f64::max)
    }

    /// A random SPD matrix `G Gᵀ + n I`.
    fn random_spd(n: usize, seed: u64) -> Vec<f64> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let g: Vec<f64> = (0..n * n).map(|_| rng.sample(StandardNormal)).collect();
        let gt = transpose(&g, n, n).unwrap();
        let mut a = mat_mul(&g, &gt, n, n, n).unwrap();
        for i in 0..n {
            a[i * n + i] += n as f64;
        }
        a
    }

    #[test]
    fn cholesky_reconstructs_matrix() {
        for n in [1, 2, 5, 12] {
            let a = random_spd(n, n as u64);
            let c = Cholesky::new(&a, n).unwrap();
            let l = c.factor();
            for i in 0..n {
                for j in i + 1..n {
                    assert_eq!(l[i * n + j], 0.0, "L must be lower triangular");
                }
                assert!(l[i * n + i] > 0.0);
            }
            let lt = transpose(l, n, n).unwrap();
            let llt = mat_mul(l, &lt, n, n, n).unwrap();
            assert!(
                max_abs_diff(&llt, &a) < 1e-10 * n as f64,
                "L Lᵀ ≠ A for n = {n}"
            );
        }
    }

    #[test]
    fn cholesky_rejects_bad_input() {
        // Indefinite.
        let a = [1.0, 2.0, 2.0, 1.0];
        assert!(matches!(
            Cholesky::new(&a, 2),
            Err(LinalgError::NotPositiveDefinite { index: 1, .. })
        ));
        // Semidefinite (singular).
        let a = [1.0, 1.0, 1.0, 1.0];
        assert!(matches!(
            Cholesky::new(&a, 2),
            Err(LinalgError::NotPositiveDefinite { index: 1, .. })
        ));
        // Negative first pivot.
        assert!(matches!(
            Cholesky::new(&[-1.0], 1),
            Err(LinalgError::NotPositiveDefinite { index: 0, .. })
        ));
        // NaN entry.
        let a = [1.0, 0.0, f64::NAN, 1.0];
        assert_eq!(
            Cholesky::new(&a, 2),
            Err(LinalgError::NotFinite { row: 1, col: 0 })
        );
        // Wrong length.
        assert!(matches!(
            Cholesky::new(&[1.0, 0.0, 1.0], 2),
            Err(LinalgError::DimensionMismatch {
                expected: 4,
                got: 3,
                ..
            })
        ));
        // Overflowing sizes do not panic.
        assert!(matches!(
            Cholesky::new(&[1.0], usize::MAX),
            Err(LinalgError::DimensionMismatch { .. })
        ));
    }

    #[test]
    fn triangular_and_full_solves() {
        let n = 7;
        let a = random_spd(n, 3);
        let c = Cholesky::new(&a, n).unwrap();
        let b: Vec<f64> = (0..n).map(|i| (i as f64).sin() + 0.5).collect();

        let mut y = b.clone();
        c.solve_lower_in_place(&mut y);
        let ly = mat_vec(c.factor(), n, n, &y).unwrap();
        assert!(max_abs_diff(&ly, &b) < 1e-12);

        let mut x = b.clone();
        c.solve_upper_in_place(&mut x);
        let lt = transpose(c.factor(), n, n).unwrap();
        let ltx = mat_vec(&lt, n, n, &x).unwrap();
        assert!(max_abs_diff(&ltx, &b) < 1e-12);

        let mut x = b.clone();
        c.solve_in_place(&mut x);
        let ax = mat_vec(&a, n, n, &x).unwrap();
        assert!(max_abs_diff(&ax, &b) < 1e-12);

        let mut lz = vec![0.0; n];
        c.mul_lower(&y, &mut lz);
        assert!(max_abs_diff(&lz, &b) < 1e-12);

        let inv = c.inverse();
        let prod = mat_mul(&a, &inv, n, n, n).unwrap();
        assert!(max_abs_diff(&prod, &identity(n)) < 1e-12);
    }

    #[test]
    fn log_det_matches_determinant() {
        for n in [1, 3, 6] {
            let a = random_spd(n, 10 + n as u64);
            let c = Cholesky::new(&a, n).unwrap();
            let det = determinant(&a, n).unwrap();
            assert!((c.log_det() - det.ln()).abs() < 1e-10);
        }
        // Diagonal example by hand: det diag(2, 3, 5) = 30.
        let a = [2.0, 0.0, 0.0, 0.0, 3.0, 0.0, 0.0, 0.0, 5.0];
        let c = Cholesky::new(&a, 3).unwrap();
        assert!((c.log_det() - 30f64.ln()).abs() < 1e-14);
    }

    #[test]
    fn determinant_known_values() {
        assert_eq!(determinant(&[], 0).unwrap(), 1.0);
        assert_eq!(determinant(&[0.0, 1.0, 1.0, 0.0], 2).unwrap(), -1.0);
        let a = [2.0, 1.0, 0.0, 1.0, 3.0, 1.0, 0.0, 1.0, 4.0];
        assert!((determinant(&a, 3).unwrap() - 18.0).abs() < 1e-12);
        assert_eq!(determinant(&[1.0, 2.0, 2.0, 4.0], 2).unwrap().abs(), 0.0);
        assert!(determinant(&[1.0, 2.0], 2).is_err());
    }

    #[test]
    fn random_rotation_is_a_rotation_and_seeded() {
        for n in [1, 2, 5, 20] {
            let q = random_rotation(&mut ChaCha8Rng::seed_from_u64(5), n).unwrap();
            let qt = transpose(&q, n, n).unwrap();
            let qtq = mat_mul(&qt, &q, n, n, n).unwrap();
            assert!(max_abs_diff(&qtq, &identity(n)) < 1e-12, "QᵀQ ≠ I, n = {n}");
            assert!((determinant(&q, n).unwrap() - 1.0).abs() < 1e-10);
            let q2 = random_rotation(&mut ChaCha8Rng::seed_from_u64(5), n).unwrap();
            assert_eq!(q, q2, "same seed must give the same rotation");
            let q3 = random_rotation(&mut ChaCha8Rng::seed_from_u64(6), n).unwrap();
            if n == 1 {
                assert_eq!(q, vec![1.0], "SO(1) is {{1}}");
            } else {
                assert_ne!(q, q3, "different seeds must give different rotations");
            }
        }
        assert!(random_rotation(&mut ChaCha8Rng::seed_from_u64(0), 0)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn random_rotation_first_row_is_uniform_on_sphere() {
        // For a Haar rotation, Q e₁ is uniform on the sphere: E[q₁₁²] = 1/n.
        let n = 4;
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let reps = 4000;
        let vals: Vec<f64> = (0..reps)
            .map(|_| {
                let q = random_rotation(&mut rng, n).unwrap();
                q[0] * q[0]
            })
            .collect();
        let mean = vals.iter().sum::<f64>() / reps as f64;
        let var = vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (reps - 1) as f64;
        let se = (var / reps as f64).sqrt();
        assert!((mean - 0.25).abs() < 5.0 * se, "mean {mean}, se {se}");
    }

    #[test]
    fn shape_checks_return_errors() {
        assert!(transpose(&[1.0; 5], 2, 3).is_err());
        assert!(mat_mul(&[1.0; 6], &[1.0; 5], 2, 3, 2).is_err());
        assert!(mat_vec(&[1.0; 6], 2, 3, &[1.0; 2]).is_err());
        assert_eq!(
            transpose(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 2, 3).unwrap(),
            vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]
        );
    }

    #[test]
    fn inverse_of_a_general_matrix_and_singular_refusal() {
        let a = vec![0.0, 2.0, 1.0, 1.0, 0.0, -1.0, 3.0, 1.0, 0.5];
        let inv = inverse(&a, 3).unwrap();
        let prod = mat_mul(&a, &inv, 3, 3, 3).unwrap();
        assert!(max_abs_diff(&prod, &identity(3)) < 1e-12, "{prod:?}");
        let singular = vec![1.0, 2.0, 2.0, 4.0];
        assert_eq!(
            inverse(&singular, 2),
            Err(LinalgError::Singular { column: 1 })
        );
        assert!(matches!(
            inverse(&[1.0, f64::NAN, 0.0, 1.0], 2),
            Err(LinalgError::NotFinite { row: 0, col: 1 })
        ));
    }
}
