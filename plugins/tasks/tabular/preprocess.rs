//! Cleaning, splitting and whitening a [`Table`].
//!
//! Data flow (driven by `mod.rs`, every random draw from the task's seeded
//! stream, in this order):
//! 1. source-specific cleaning: [`dequantize`] (wine: uniform noise of ± half
//!    the median gap between a column's sorted unique values, column by
//!    column) or [`drop_correlated`] (Parkinsons: a feature whose `|corr|`
//!    with an earlier kept one exceeds the threshold is dropped);
//! 2. [`shuffle_rows`];
//! 3. [`split_sizes`] and [`split`]: test = the first `min(max_test,
//!    ⌊N·test_fraction⌋)` rows, validation = the next `min(max_val,
//!    ⌊(N − test)·val_fraction⌋)`, training = the rest;
//! 4. [`Whitening::fit`] on the training split only (PCA-whitening,
//!    per-column standardisation, or none) and [`Whitening::apply`] to every
//!    split; the fitted map is the task's [`crate::data_map::DataMap`], saved
//!    with the run so that scores and samples convert back to the data's units;
//! 5. [`add_noise`]: `N(0, σ²)` added once to every split (train, val, test).
//!
//! Covariances use the unbiased `1/(n − 1)` normaliser.

use rand::seq::SliceRandom;
use rand::{Rng, RngCore};
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

use super::source::Table;

/// How the splits are whitened, with statistics of the training split.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub enum Preprocessing {
    /// PCA-whitening, `y = Λ^{-1/2} Vᵀ (x − μ)` with `Σ = V Λ Vᵀ` the training
    /// covariance (as the original DKEF code); components in decreasing
    /// order of variance.
    #[default]
    Pca,
    /// Per-column standardisation, `yⱼ = (xⱼ − μⱼ)/σⱼ`.
    Standardize,
    /// None: the model sees the columns in their own units, `y = x`.
    None,
}

/// Row counts of the three splits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SplitSizes {
    /// Training rows.
    pub train: usize,
    /// Validation rows.
    pub val: usize,
    /// Test rows.
    pub test: usize,
}

/// Split sizes for `rows` rows of dimension `dim`:
/// `test = min(max_test, ⌊rows·test_fraction⌋)`,
/// `val = min(max_val, ⌊(rows − test)·val_fraction⌋)`, `train` = the rest.
///
/// # Errors
/// A message when test or validation would get fewer than 2 rows or
/// training fewer than `max(2, dim + 1)` (needed for a full-rank covariance).
pub fn split_sizes(
    rows: usize,
    dim: usize,
    test_fraction: f64,
    val_fraction: f64,
    max_test: usize,
    max_val: usize,
) -> Result<SplitSizes, String> {
    let test = ((rows as f64 * test_fraction).floor() as usize).min(max_test);
    let val = (((rows - test) as f64 * val_fraction).floor() as usize).min(max_val);
    let train = rows - test - val;
    let min_train = (dim + 1).max(2);
    if test < 2 || val < 2 || train < min_train {
        return Err(format!(
            "{rows} rows give test {test}, validation {val} and training {train} rows; \
             need at least 2 test, 2 validation and {min_train} training rows (dimension {dim} + 1)"
        ));
    }
    Ok(SplitSizes { train, val, test })
}

/// The median gap between consecutive sorted unique values of `column`
/// (the mean of the two middle gaps for an even count, as numpy's median);
/// `None` with fewer than two unique values.
pub fn median_gap(column: &[f64]) -> Option<f64> {
    let mut u = column.to_vec();
    u.sort_by(f64::total_cmp);
    u.dedup();
    if u.len() < 2 {
        return None;
    }
    let mut gaps: Vec<f64> = u.windows(2).map(|w| w[1] - w[0]).collect();
    gaps.sort_by(f64::total_cmp);
    let m = gaps.len();
    Some(if m % 2 == 1 {
        gaps[m / 2]
    } else {
        0.5 * (gaps[m / 2 - 1] + gaps[m / 2])
    })
}

/// Dequantises every column in place: adds `(u − ½)·gap` with `u ~ U[0, 1)`
/// and `gap` = [`median_gap`] of the column, column by column (rows in
/// order within a column). A column with one unique value is left alone.
/// Returns the gaps (0 for such a column).
pub fn dequantize(table: &mut Table, rng: &mut dyn RngCore) -> Vec<f64> {
    let cols = table.cols;
    let mut gaps = Vec::with_capacity(cols);
    for j in 0..cols {
        let gap = median_gap(&table.column(j)).unwrap_or(0.0);
        gaps.push(gap);
        if gap > 0.0 {
            for row in table.data.chunks_exact_mut(cols) {
                row[j] += (rng.gen::<f64>() - 0.5) * gap;
            }
        }
    }
    gaps
}

/// Pearson correlation of two equally long columns (NaN if either is constant).
pub fn correlation(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let ma = a.iter().sum::<f64>() / n;
    let mb = b.iter().sum::<f64>() / n;
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        sab += (x - ma) * (y - mb);
        saa += (x - ma).powi(2);
        sbb += (y - mb).powi(2);
    }
    if saa == 0.0 || sbb == 0.0 {
        return f64::NAN;
    }
    sab / (saa * sbb).sqrt()
}

/// Drops every column whose `|corr|` with an earlier *kept* column exceeds
/// `threshold` (computed on all rows). Returns the kept table and the labels
/// of the dropped columns. A constant column correlates with nothing and is
/// kept (the constant-column check refuses it later).
pub fn drop_correlated(table: &Table, threshold: f64) -> (Table, Vec<String>) {
    let columns: Vec<Vec<f64>> = (0..table.cols).map(|j| table.column(j)).collect();
    let mut keep: Vec<usize> = Vec::new();
    let mut dropped = Vec::new();
    for j in 0..table.cols {
        let redundant = keep
            .iter()
            .any(|&k| correlation(&columns[k], &columns[j]).abs() > threshold);
        if redundant {
            dropped.push(table.labels[j].clone());
        } else {
            keep.push(j);
        }
    }
    (table.select_columns(&keep), dropped)
}

/// Shuffles the rows of a row-major `n × dim` buffer in place.
pub fn shuffle_rows(data: &mut [f64], dim: usize, rng: &mut dyn RngCore) {
    let n = data.len() / dim;
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(rng);
    let old = data.to_vec();
    for (dst, &src) in data.chunks_exact_mut(dim).zip(&order) {
        dst.copy_from_slice(&old[src * dim..(src + 1) * dim]);
    }
}

/// Three row-major splits of the same dimension.
#[derive(Debug, Clone, PartialEq)]
pub struct Splits {
    /// Training rows.
    pub train: Vec<f64>,
    /// Validation rows.
    pub val: Vec<f64>,
    /// Test rows.
    pub test: Vec<f64>,
}

impl Splits {
    /// The same transformation applied to each split.
    pub fn map(&self, mut f: impl FnMut(&[f64]) -> Vec<f64>) -> Splits {
        Splits {
            train: f(&self.train),
            val: f(&self.val),
            test: f(&self.test),
        }
    }
}

/// Test = the first `sizes.test` rows, validation = the next `sizes.val`,
/// training = the rest.
pub fn split(data: &[f64], dim: usize, sizes: SplitSizes) -> Splits {
    let a = sizes.test * dim;
    let b = a + sizes.val * dim;
    Splits {
        test: data[..a].to_vec(),
        val: data[a..b].to_vec(),
        train: data[b..].to_vec(),
    }
}

/// Per-column means and the unbiased covariance (`dim × dim`, row-major) of
/// row-major `x`.
pub fn mean_and_covariance(x: &[f64], dim: usize) -> (Vec<f64>, Vec<f64>) {
    let n = x.len() / dim;
    let mut mean = vec![0.0; dim];
    for row in x.chunks_exact(dim) {
        for (m, v) in mean.iter_mut().zip(row) {
            *m += v;
        }
    }
    mean.iter_mut().for_each(|m| *m /= n as f64);
    let mut cov = vec![0.0; dim * dim];
    let mut c = vec![0.0; dim];
    for row in x.chunks_exact(dim) {
        for ((ci, v), m) in c.iter_mut().zip(row).zip(&mean) {
            *ci = v - m;
        }
        for i in 0..dim {
            for j in 0..=i {
                cov[i * dim + j] += c[i] * c[j];
            }
        }
    }
    let denom = (n as f64 - 1.0).max(1.0);
    for i in 0..dim {
        for j in 0..=i {
            let v = cov[i * dim + j] / denom;
            cov[i * dim + j] = v;
            cov[j * dim + i] = v;
        }
    }
    (mean, cov)
}

/// Eigen-decomposition of a symmetric `n × n` matrix by cyclic Jacobi
/// rotations: eigenvalues in decreasing order and the matching unit
/// eigenvectors as the *columns* of a row-major `n × n` matrix, each signed
/// so that its largest-magnitude entry is positive.
///
/// An off-diagonal entry is rotated away unless it is negligible relative to
/// its two diagonal entries (`|a_pq| ≤ 1e-15·√|a_pp·a_qq|`), which keeps
/// small eigenvalues of positive definite matrices with wildly different
/// column scales (e.g. Parkinsons: variances from 1e-10 to 1e3) accurate.
pub fn symmetric_eigen(a: &[f64], n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut m = a.to_vec();
    let mut v = vec![0.0; n * n];
    for i in 0..n {
        v[i * n + i] = 1.0;
    }
    for _sweep in 0..100 {
        let mut rotated = false;
        for p in 0..n {
            for q in p + 1..n {
                let apq = m[p * n + q];
                if apq == 0.0 || apq.abs() <= 1e-15 * (m[p * n + p] * m[q * n + q]).abs().sqrt() {
                    continue;
                }
                rotated = true;
                let theta = (m[q * n + q] - m[p * n + p]) / (2.0 * apq);
                let t = if theta.abs() < 1e150 {
                    theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt())
                } else {
                    0.5 / theta
                };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                // m ← Jᵀ m J with the rotation J in the (p, q) plane.
                for k in 0..n {
                    let mkp = m[k * n + p];
                    let mkq = m[k * n + q];
                    m[k * n + p] = c * mkp - s * mkq;
                    m[k * n + q] = s * mkp + c * mkq;
                }
                for k in 0..n {
                    let mpk = m[p * n + k];
                    let mqk = m[q * n + k];
                    m[p * n + k] = c * mpk - s * mqk;
                    m[q * n + k] = s * mpk + c * mqk;
                }
                m[p * n + q] = 0.0;
                m[q * n + p] = 0.0;
                for k in 0..n {
                    let vkp = v[k * n + p];
                    let vkq = v[k * n + q];
                    v[k * n + p] = c * vkp - s * vkq;
                    v[k * n + q] = s * vkp + c * vkq;
                }
            }
        }
        if !rotated {
            break;
        }
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&i, &j| m[j * n + j].total_cmp(&m[i * n + i]));
    let values: Vec<f64> = order.iter().map(|&i| m[i * n + i]).collect();
    let mut vectors = vec![0.0; n * n];
    for (col, &src) in order.iter().enumerate() {
        let big = (0..n)
            .max_by(|&a, &b| v[a * n + src].abs().total_cmp(&v[b * n + src].abs()))
            .unwrap_or(0);
        let sign = if v[big * n + src] < 0.0 { -1.0 } else { 1.0 };
        for r in 0..n {
            vectors[r * n + col] = sign * v[r * n + src];
        }
    }
    (values, vectors)
}

/// Smallest eigenvalue of the training correlation matrix that
/// [`Preprocessing::Pca`] accepts; below it the columns are treated as
/// linearly dependent.
pub const MIN_CORRELATION_EIGENVALUE: f64 = 1e-10;

/// An affine map `y = M (x − μ)` fitted on the training split.
#[derive(Debug, Clone, PartialEq)]
pub struct Whitening {
    /// Which kind of map.
    pub mode: Preprocessing,
    /// `μ`, the training means.
    pub mean: Vec<f64>,
    /// `M`, row-major `dim × dim`.
    pub matrix: Vec<f64>,
}

impl Whitening {
    /// Fits the map on row-major `train` (`labels` name the columns in errors).
    ///
    /// # Errors
    /// A message naming the column when a column is constant in `train`, or
    /// saying that the covariance is singular (PCA only) when a column is a
    /// linear combination of others.
    pub fn fit(
        train: &[f64],
        dim: usize,
        mode: Preprocessing,
        labels: &[String],
    ) -> Result<Whitening, String> {
        for j in 0..dim {
            let mut col = train.iter().skip(j).step_by(dim);
            if let Some(&first) = col.next() {
                if col.all(|&v| v == first) {
                    return Err(format!(
                        "{} is constant in the training split (every value is {first}): \
                         it has zero variance and cannot be whitened; remove it \
                         (Csv: skip_columns)",
                        labels.get(j).map_or("a column", |s| s.as_str())
                    ));
                }
            }
        }
        let (mean, cov) = mean_and_covariance(train, dim);
        let mut matrix = vec![0.0; dim * dim];
        match mode {
            Preprocessing::None => {
                return Ok(Whitening {
                    mode,
                    mean: vec![0.0; dim],
                    matrix: crate::linalg::identity(dim),
                })
            }
            Preprocessing::Standardize => {
                for j in 0..dim {
                    matrix[j * dim + j] = 1.0 / cov[j * dim + j].sqrt();
                }
            }
            Preprocessing::Pca => {
                // Singularity is judged on the correlation matrix, so that
                // columns of very different scales are not mistaken for it.
                let sd: Vec<f64> = (0..dim).map(|j| cov[j * dim + j].sqrt()).collect();
                let corr: Vec<f64> = (0..dim * dim)
                    .map(|k| cov[k] / (sd[k / dim] * sd[k % dim]))
                    .collect();
                let smallest = symmetric_eigen(&corr, dim).0[dim - 1];
                if smallest.is_nan() || smallest <= MIN_CORRELATION_EIGENVALUE {
                    return Err(format!(
                        "the covariance of the training split is singular (smallest eigenvalue \
                         of the correlation matrix {smallest:e}): some columns are (almost) \
                         linear combinations of others; remove one"
                    ));
                }
                let (values, vectors) = symmetric_eigen(&cov, dim);
                for (k, lambda) in values.iter().enumerate() {
                    let s = 1.0 / lambda.sqrt();
                    for j in 0..dim {
                        matrix[k * dim + j] = vectors[j * dim + k] * s;
                    }
                }
            }
        }
        Ok(Whitening { mode, mean, matrix })
    }

    /// The dimension of the map.
    pub fn dim(&self) -> usize {
        self.mean.len()
    }

    /// The map as the task reports it: the identity for
    /// [`Preprocessing::None`], else the affine `y = M (x − μ)`.
    pub fn data_map(&self) -> crate::data_map::DataMap {
        use crate::data_map::{Affine, DataMap};
        if self.mode == Preprocessing::None {
            return DataMap::Identity;
        }
        match Affine::new(self.mean.clone(), self.matrix.clone()) {
            Ok(a) => DataMap::Affine(a),
            // `fit` refuses singular covariances, so this is not reached;
            // say so rather than claim the identity.
            Err(e) => DataMap::Opaque {
                description: format!("a whitening that cannot be inverted ({e})"),
            },
        }
    }

    /// `M (x − μ)` for every row of row-major `x`.
    pub fn apply(&self, x: &[f64]) -> Vec<f64> {
        if self.mode == Preprocessing::None {
            return x.to_vec();
        }
        let d = self.dim();
        let mut out = Vec::with_capacity(x.len());
        let mut c = vec![0.0; d];
        for row in x.chunks_exact(d) {
            for ((ci, v), m) in c.iter_mut().zip(row).zip(&self.mean) {
                *ci = v - m;
            }
            for mrow in self.matrix.chunks_exact(d) {
                out.push(mrow.iter().zip(&c).map(|(a, b)| a * b).sum());
            }
        }
        out
    }
}

/// Adds `N(0, std²)` noise to every value in place (nothing for `std = 0`).
pub fn add_noise(x: &mut [f64], std: f64, rng: &mut dyn RngCore) {
    if std == 0.0 {
        return;
    }
    for v in x {
        let z: f64 = rng.sample(StandardNormal);
        *v += std * z;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn median_gap_of_toy_columns() {
        // Unique sorted: 1, 2, 4, 7 → gaps 1, 2, 3 → median 2.
        assert_eq!(median_gap(&[4.0, 1.0, 7.0, 2.0, 4.0, 1.0]), Some(2.0));
        // Unique: 0, 0.5, 1.5, 1.75, 3.75 → gaps 0.5, 1, 0.25, 2 → median 0.75.
        assert_eq!(median_gap(&[1.5, 0.0, 3.75, 0.5, 1.75, 0.0]), Some(0.75));
        assert_eq!(median_gap(&[3.0, 3.0]), None);
        assert_eq!(median_gap(&[]), None);
    }

    #[test]
    fn dequantize_stays_within_half_a_gap() {
        let mut t = Table {
            rows: 6,
            cols: 2,
            data: vec![1.0, 5.0, 2.0, 5.0, 4.0, 5.0, 7.0, 5.0, 4.0, 5.0, 1.0, 5.0],
            labels: vec!["a".into(), "b".into()],
        };
        let before = t.clone();
        let gaps = dequantize(&mut t, &mut ChaCha8Rng::seed_from_u64(1));
        assert_eq!(gaps, vec![2.0, 0.0]);
        for (a, b) in t.column(0).iter().zip(before.column(0)) {
            assert!(*a != b && (a - b).abs() <= 1.0, "{a} vs {b}");
        }
        assert_eq!(t.column(1), before.column(1));
    }

    #[test]
    fn split_sizes_follow_the_formulas() {
        // Red wine: 1599 → test 159, val ⌊1440/10⌋ = 144, train 1296.
        assert_eq!(
            split_sizes(1599, 11, 0.1, 0.1, 1000, 1000),
            Ok(SplitSizes {
                train: 1296,
                val: 144,
                test: 159
            })
        );
        // White wine: 4898 → 489, ⌊4409/10⌋ = 440, 3969.
        assert_eq!(
            split_sizes(4898, 11, 0.1, 0.1, 1000, 1000).unwrap(),
            SplitSizes {
                train: 3969,
                val: 440,
                test: 489
            }
        );
        // Caps: 20000 → test 1000, val 1000.
        assert_eq!(
            split_sizes(20000, 5, 0.1, 0.1, 1000, 1000).unwrap(),
            SplitSizes {
                train: 18000,
                val: 1000,
                test: 1000
            }
        );
        let e = split_sizes(15, 2, 0.1, 0.1, 1000, 1000).unwrap_err();
        assert!(e.contains("15 rows give test 1"), "{e}");
        assert!(split_sizes(40, 35, 0.1, 0.1, 1000, 1000).is_err());
    }

    #[test]
    fn jacobi_reconstructs_the_matrix() {
        let a = vec![4.0, 1.0, 0.5, 1.0, 3.0, -0.2, 0.5, -0.2, 1.0];
        let (l, v) = symmetric_eigen(&a, 3);
        assert!(l[0] >= l[1] && l[1] >= l[2]);
        for i in 0..3 {
            for j in 0..3 {
                let r: f64 = (0..3).map(|k| v[i * 3 + k] * l[k] * v[j * 3 + k]).sum();
                assert!((r - a[i * 3 + j]).abs() < 1e-12, "({i},{j}): {r}");
                let o: f64 = (0..3).map(|k| v[k * 3 + i] * v[k * 3 + j]).sum();
                assert!((o - f64::from(u8::from(i == j))).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn jacobi_whitens_badly_scaled_covariances() {
        // Σ = D R D with scales from 30 down to 1e-5 (variances 900 … 1e-10).
        let r = [1.0, 0.6, -0.3, 0.6, 1.0, 0.5, -0.3, 0.5, 1.0];
        let d = [30.0, 1e-5, 2e-3];
        let sigma: Vec<f64> = (0..9).map(|k| r[k] * d[k / 3] * d[k % 3]).collect();
        let (l, v) = symmetric_eigen(&sigma, 3);
        assert!(l[2] > 0.0, "{l:?}");
        // W Σ Wᵀ = I with W = Λ^{-1/2} Vᵀ.
        for i in 0..3 {
            for j in 0..3 {
                let mut s = 0.0;
                for a in 0..3 {
                    for b in 0..3 {
                        s += v[a * 3 + i] * sigma[a * 3 + b] * v[b * 3 + j];
                    }
                }
                let s = s / (l[i] * l[j]).sqrt();
                let want = f64::from(u8::from(i == j));
                assert!((s - want).abs() < 1e-9, "({i},{j}): {s}");
            }
        }
    }

    #[test]
    fn correlation_filter_keeps_the_earlier_column() {
        let t = Table {
            rows: 5,
            cols: 3,
            data: vec![
                1.0, 2.0, 5.0, //
                2.0, 4.1, 1.0, //
                3.0, 5.9, 4.0, //
                4.0, 8.0, 2.0, //
                5.0, 10.0, 3.0,
            ],
            labels: vec!["a".into(), "b".into(), "c".into()],
        };
        let (kept, dropped) = drop_correlated(&t, 0.98);
        assert_eq!(dropped, vec!["b".to_string()]);
        assert_eq!(kept.labels, vec!["a".to_string(), "c".to_string()]);
        assert_eq!(kept.column(1), t.column(2));
    }
}
