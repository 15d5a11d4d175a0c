//! Distances between two sets of points (samples and data), in any dimension.
//!
//! Data flow: both functions take row-major point sets `a` (`n × D`) and
//! `b` (`m × D`) of possibly different sizes.
//!
//! * [`sliced_wasserstein`]: `SW₂ = (mean over K directions θ of W₂²(θᵀa, θᵀb))^{1/2}`,
//!   directions uniform on the sphere (from the generator given), `W₂`
//!   between the two 1-D empirical distributions computed exactly from their
//!   quantile functions. In the data's units; 0 for identical sets.
//! * [`mmd2`]: the unbiased estimate of the squared maximum mean discrepancy
//!   with the RBF kernel `k(x, y) = exp(−‖x − y‖²/(2h²))` (can be slightly
//!   negative when the sets come from the same density); [`median_bandwidth`]
//!   gives `h` = the median pairwise distance of a reference set, as the
//!   kernel estimators do ([`crate::kernels`]).
//!
//! Both are biased upward by finite sample sizes in the same way for any
//! two sets of the same sizes: compare values at equal sizes.

use rand::{Rng, RngCore};
use rand_distr::StandardNormal;

use crate::kernels;

/// Exact squared 2-Wasserstein distance between the empirical distributions
/// of `a` and `b` (uniform weights), both sorted ascending.
fn w2_squared_sorted(a: &[f64], b: &[f64]) -> f64 {
    let (n, m) = (a.len(), b.len());
    let (mut i, mut j) = (0usize, 0usize);
    let (mut t, mut acc) = (0.0f64, 0.0f64);
    while i < n && j < m {
        // Next quantile breakpoint: (i + 1)/n or (j + 1)/m, compared exactly.
        let (ca, cb) = ((i + 1) * m, (j + 1) * n);
        let next = ca.min(cb) as f64 / (n * m) as f64;
        acc += (next - t) * (a[i] - b[j]).powi(2);
        t = next;
        if ca <= cb {
            i += 1;
        }
        if cb <= ca {
            j += 1;
        }
    }
    acc
}

/// Sliced 2-Wasserstein distance between `a` and `b` (rows of width `dim`)
/// over `directions` random unit directions drawn from `rng`.
///
/// # Panics
/// If a set is empty or not made of rows of width `dim`.
pub fn sliced_wasserstein(
    a: &[f64],
    b: &[f64],
    dim: usize,
    directions: usize,
    rng: &mut dyn RngCore,
) -> f64 {
    assert!(
        dim > 0
            && !a.is_empty()
            && !b.is_empty()
            && a.len().is_multiple_of(dim)
            && b.len().is_multiple_of(dim),
        "sliced_wasserstein: sets of {} and {} values are not rows of width {dim}",
        a.len(),
        b.len()
    );
    let mut total = 0.0;
    let mut theta = vec![0.0; dim];
    for _ in 0..directions.max(1) {
        loop {
            theta
                .iter_mut()
                .for_each(|t| *t = rng.sample(StandardNormal));
            let norm = theta.iter().map(|t| t * t).sum::<f64>().sqrt();
            if norm > 1e-12 {
                theta.iter_mut().for_each(|t| *t /= norm);
                break;
            }
        }
        let project = |x: &[f64]| {
            let mut p: Vec<f64> = x
                .chunks_exact(dim)
                .map(|r| r.iter().zip(&theta).map(|(u, v)| u * v).sum())
                .collect();
            p.sort_by(f64::total_cmp);
            p
        };
        total += w2_squared_sorted(&project(a), &project(b));
    }
    (total / directions.max(1) as f64).sqrt()
}

/// The median pairwise distance of the rows of `x` (width `dim`): the RBF
/// bandwidth of [`mmd2`] by the median heuristic.
///
/// # Errors
/// When there are fewer than two distinct rows or a value is not finite.
pub fn median_bandwidth(x: &[f64], dim: usize) -> Result<f64, kernels::KernelError> {
    let n = x.len() / dim.max(1);
    if n < 2 {
        return Err(kernels::KernelError::TooFewSamples { n });
    }
    let mut sq = Vec::new();
    kernels::pairwise_sq_dists_into(x, n, dim, &mut sq);
    kernels::median_heuristic(&sq, n, &mut Vec::new())
}

/// Unbiased squared MMD between `a` and `b` (rows of width `dim`, at least
/// two each) with the RBF kernel of bandwidth `h`.
///
/// # Panics
/// If a set has fewer than two rows or is not made of rows of width `dim`.
pub fn mmd2(a: &[f64], b: &[f64], dim: usize, h: f64) -> f64 {
    let (n, m) = (a.len() / dim, b.len() / dim);
    assert!(
        n >= 2 && m >= 2 && a.len() == n * dim && b.len() == m * dim,
        "mmd2: sets of {} and {} values are not two or more rows of width {dim}",
        a.len(),
        b.len()
    );
    let row = |x: &[f64], i: usize| -> Vec<f64> { x[i * dim..(i + 1) * dim].to_vec() };
    let within = |x: &[f64], k: usize| -> f64 {
        let mut s = 0.0;
        for i in 0..k {
            let xi = row(x, i);
            for j in i + 1..k {
                s += kernels::rbf(&xi, &x[j * dim..(j + 1) * dim], h);
            }
        }
        2.0 * s / (k * (k - 1)) as f64
    };
    let mut cross = 0.0;
    for i in 0..n {
        let ai = row(a, i);
        for j in 0..m {
            cross += kernels::rbf(&ai, &b[j * dim..(j + 1) * dim], h);
        }
    }
    within(a, n) + within(b, m) - 2.0 * cross / (n * m) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn one_dimensional_w2_is_exact() {
        // Shifted copies: W₂ = the shift, whatever the sizes.
        let a = vec![0.0, 1.0, 2.0, 3.0];
        let b: Vec<f64> = a.iter().map(|v| v + 0.5).collect();
        assert!((w2_squared_sorted(&a, &b) - 0.25).abs() < 1e-15);
        // {0, 1} against {0, 0.5, 1}: quantile pieces of width 1/3, 1/6, 1/6, 1/3
        // pair (0,0), (0,0.5), (1,0.5), (1,1): W₂² = (1/6)(0.25) + (1/6)(0.25).
        let w = w2_squared_sorted(&[0.0, 1.0], &[0.0, 0.5, 1.0]);
        assert!((w - 1.0 / 12.0).abs() < 1e-15, "{w}");
    }

    #[test]
    fn distances_grow_with_a_shift() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let draw = |rng: &mut ChaCha8Rng, n: usize, shift: f64| -> Vec<f64> {
            (0..n * 3)
                .map(|_| rng.sample::<f64, _>(StandardNormal) + shift)
                .collect()
        };
        let (x, y, z) = (
            draw(&mut rng, 400, 0.0),
            draw(&mut rng, 300, 0.0),
            draw(&mut rng, 300, 1.0),
        );
        let same = sliced_wasserstein(&x, &y, 3, 64, &mut ChaCha8Rng::seed_from_u64(1));
        let far = sliced_wasserstein(&x, &z, 3, 64, &mut ChaCha8Rng::seed_from_u64(1));
        // A shift by (1, 1, 1) moves every projection by θ·1: SW₂ ≈ 1 (E[(θ·1)²] = 1).
        assert!(same < 0.2 && (far - 1.0).abs() < 0.25, "{same} {far}");
        assert_eq!(sliced_wasserstein(&x, &x, 3, 8, &mut rng), 0.0);
        let h = median_bandwidth(&x, 3).unwrap();
        assert!(h > 1.0 && h < 3.0, "{h}");
        let (m_same, m_far) = (mmd2(&x, &y, 3, h), mmd2(&x, &z, 3, h));
        assert!(m_same.abs() < 0.02 && m_far > 0.1, "{m_same} {m_far}");
        assert!(median_bandwidth(&[1.0, 1.0], 2).is_err());
    }
}
