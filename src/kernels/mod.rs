//! RBF kernels for the kernel score estimators (the Stein and spectral
//! model plugins): distances, the bandwidth, the Gram matrix, the Stein
//! right-hand side ([`rbf`](mod@rbf)), the state a fit keeps ([`fitted`]), and the
//! adapter that turns an estimator evaluated on the host into a score model
//! ([`point_score`]). Their linear algebra (Cholesky, eigenpairs) is in
//! [`crate::linalg`].
//!
//! Data flow: a plugin's fit hands its samples (row-major `n × d`) to
//! [`RbfFit::fit`], which checks them with [`check_samples`], computes
//! [`pairwise_sq_dists_into`], picks the bandwidth with [`choose_bandwidth`]
//! (median heuristic or fixed), turns the squared distances into the Gram
//! matrix with [`rbf_from_sq_in_place`], and builds the Stein right-hand
//! side `R` with [`stein_rhs_into`]. From there the Stein estimator solves
//! `(K + ηI) G = −R` with [`crate::linalg::cholesky_in_place`] /
//! [`crate::linalg::cholesky_solve_rows`], and the spectral estimator
//! eigendecomposes `K` with [`crate::linalg::SymEigen`]. Queries that repeat
//! a fitted sample are found with [`find_sample`] ([`RbfFit::fitted_row`]).
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

pub mod fitted;
pub mod point_score;
pub mod rbf;

pub use fitted::RbfFit;
pub use point_score::{graph_score, graph_terms, host_scores, host_terms, PointScore};
pub use rbf::*;
