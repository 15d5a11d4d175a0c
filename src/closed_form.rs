//! Closed-form coefficients for models whose log-density is linear in them,
//! as the deep kernel exponential family is trained in the original code
//! (Wenliang et al. 2019; the SSM paper's Figure 1).
//!
//! A model implementing [`LinearCoefficients`] has
//! `log p̃(x) = k(x)·α + f₀(x)` with `L` basis functions `k(x)` and an
//! offset `f₀`. Every score-matching objective whose loss is built from
//! `∇ₓ log p̃` and its second derivatives is then a quadratic in `α`,
//! `½αᵀGα + bᵀα + const`, and the objective says which quadratic by its
//! [`CoefficientCriterion`].
//!
//! Data flow in a training step ([`crate::train::step`]): the batch is split
//! in two halves; [`solve_in_graph`] builds `G` and `b` on the first half
//! from the basis jets ([`quadratic_form`]), solves `(G + 10^{logλ} I)α = −b`
//! on the graph ([`Graph::solve_spd`], so the loss's gradient flows through
//! the solve into the features, the inducing points, the kernels and `λ`),
//! and the objective's loss is taken on the second half with the model
//! viewed at that `α` ([`LinearCoefficients::with_coefficients`]). Before
//! every evaluation the loop refits `α` on training points ([`refit`],
//! `G` and `b` accumulated in `f64` over chunks of rows) and stores it as
//! the model's own, so validation, test, log Z and checkpoints all use it.

use rand::RngCore;
use rand_distr::{Distribution, StandardNormal};

use crate::autodiff::jet::{Jet, JetKind};
use crate::autodiff::Graph;
use crate::device::{Device, Mat};
use crate::model::ScoreModel;
use crate::objective::{draw_directions, LossContext, LossError, Objective};
use crate::projection::Projection;

/// Which quadratic in the coefficients an objective minimises (the
/// objective's own loss, restricted to a model linear in `α`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CoefficientCriterion {
    /// Exact score matching: `tr ∇²f + ½‖∇f‖²` (all basis directions).
    Exact,
    /// Sliced score matching: `vᵀ∇²f v + ½(vᵀ∇f)²`, `projections`
    /// directions per point from the run's projection.
    Sliced {
        /// Directions per point.
        projections: usize,
    },
    /// Sliced score matching with variance reduction: `vᵀ∇²f v + ½‖∇f‖²`.
    SlicedVr {
        /// Directions per point.
        projections: usize,
    },
    /// Denoising score matching: `weight·‖∇f(x̃) + ε/σ‖²` at
    /// `x̃ = x + σε`, `noise_samples` draws per point.
    Denoising {
        /// The noise scale `σ`.
        sigma: f64,
        /// The loss's factor in front of the squared norm.
        weight: f64,
        /// Noise draws per point.
        noise_samples: usize,
    },
}

/// A model whose log-density is linear in `L` coefficients:
/// `log p̃(x) = k(x)·α + f₀(x)` (see the module documentation).
pub trait LinearCoefficients {
    /// The number of coefficients `L`.
    fn coefficient_count(&self) -> usize;
    /// Jets of the basis functions `k(x)` (`n × L`) and of the offset
    /// `f₀(x)` (`n × 1`) along the directions of the input jet `x`.
    fn basis_jets(&self, g: &mut Graph, x: Jet) -> (Jet, Jet);
    /// `log₁₀ λ` of the ridge (a `1 × 1` trainable parameter's value).
    fn log10_ridge(&self) -> &Mat;
    /// The model with `alpha` (`L × 1`, possibly on the graph) in place of
    /// its stored coefficients.
    fn with_coefficients(&self, alpha: Mat) -> Box<dyn ScoreModel + '_>;
    /// Stores `alpha` (host values, `L`) as the model's coefficients.
    fn set_coefficients(&mut self, dev: &Device, alpha: &[f64]);
    /// The basis' gradient Gram and its cross term with a residual field,
    /// `(G, c)` (`L × L`, `L × 1`), means over the rows of `x`:
    /// `G = mean_i Σ_d ∂_d k(x_i) ∂_d k(x_i)ᵀ` and
    /// `c = mean_i Σ_d ∂_d k(x_i) (∂_d f₀(x_i) + extra_{i,d})`
    /// (`extra`: `n × D`, or none), when the model forms them more cheaply
    /// than [`gradient_gram_by_jets`]'s `D` basis directions. `None` (the
    /// default): the criterion takes the basis jets.
    fn gradient_gram(&self, _g: &mut Graph, _x: &Mat, _extra: Option<&Mat>) -> Option<(Mat, Mat)> {
        None
    }
}

/// Rows of the basis' derivative matrices one chunk of [`refit`] may hold.
const REFIT_BUDGET: usize = 1 << 22;

/// `(G, b)` (`L × L`, `L × 1`) of the criterion's quadratic, the mean over
/// the rows of `x` (`n × D`), on the graph.
pub fn quadratic_form(
    g: &mut Graph,
    model: &dyn LinearCoefficients,
    x: &Mat,
    dim: usize,
    criterion: CoefficientCriterion,
    projection: &dyn Projection,
    rng: &mut dyn RngCore,
) -> (Mat, Mat) {
    let n = x.rows();
    match criterion {
        CoefficientCriterion::Exact => {
            let (k, f0) = model.basis_jets(g, Jet::basis(x.clone(), 0, dim, JetKind::Trace));
            let (d1, o1) = (k.d1_or_zero(g), f0.d1_or_zero(g));
            let gram = gram(g, &d1, n);
            let trace = column_means(g, &k.d2_or_zero(g), n);
            let cross = cross(g, &d1, &o1, n);
            (gram, g.add(&trace, &cross))
        }
        CoefficientCriterion::Sliced { projections } => {
            let rows = n * projections;
            let mut ctx = LossContext { projection, rng };
            let v = draw_directions(g, &mut ctx, rows, dim);
            let (k, f0) = model.basis_jets(g, Jet::along(x.clone(), v, JetKind::Second));
            let (d1, o1) = (k.d1_or_zero(g), f0.d1_or_zero(g));
            let gram = gram(g, &d1, rows);
            let curv = column_means(g, &k.d2_or_zero(g), rows);
            let cross = cross(g, &d1, &o1, rows);
            (gram, g.add(&curv, &cross))
        }
        CoefficientCriterion::SlicedVr { projections } => {
            let rows = n * projections;
            let mut ctx = LossContext { projection, rng };
            let v = draw_directions(g, &mut ctx, rows, dim);
            let (k, _) = model.basis_jets(g, Jet::along(x.clone(), v, JetKind::Second));
            let curv = column_means(g, &k.d2_or_zero(g), rows);
            let (gram, cross) = model
                .gradient_gram(g, x, None)
                .unwrap_or_else(|| gradient_gram_by_jets(g, model, x, dim, None));
            (gram, g.add(&curv, &cross))
        }
        CoefficientCriterion::Denoising {
            sigma,
            weight,
            noise_samples,
        } => {
            let rows = n * noise_samples.max(1);
            let xr = if rows == n {
                x.clone()
            } else {
                g.tile_blocks(x, noise_samples)
            };
            let eps: Vec<f64> = (0..rows * dim)
                .map(|_| StandardNormal.sample(&mut *rng))
                .collect();
            // ε/σ divided on the host (`rows × D`).
            let target: Vec<f64> = eps.iter().map(|e| e / sigma).collect();
            let target = g.constant(target, rows, dim);
            let eps = g.constant(eps, rows, dim);
            let shift = g.scale(&eps, sigma);
            let xt = g.add(&xr, &shift);
            // weight·‖∇k(x̃)ᵀα + ∇f₀(x̃) + ε/σ‖²: G = 2w·Gram, b = 2w·cross.
            let (gram, cross) = model
                .gradient_gram(g, &xt, Some(&target))
                .unwrap_or_else(|| gradient_gram_by_jets(g, model, &xt, dim, Some(&target)));
            let gram = g.scale(&gram, 2.0 * weight);
            (gram, g.scale(&cross, 2.0 * weight))
        }
    }
}

/// [`LinearCoefficients::gradient_gram`] from the basis jets along the `D`
/// basis directions (`D·n` rows of `L` first derivatives): any model, cost
/// and memory linear in `D`.
pub fn gradient_gram_by_jets(
    g: &mut Graph,
    model: &dyn LinearCoefficients,
    x: &Mat,
    dim: usize,
    extra: Option<&Mat>,
) -> (Mat, Mat) {
    let n = x.rows();
    let (k, f0) = model.basis_jets(g, Jet::basis(x.clone(), 0, dim, JetKind::First));
    let (d1, mut o1) = (k.d1_or_zero(g), f0.d1_or_zero(g));
    if let Some(extra) = extra {
        // `extra` direction-major (`D·n × 1`), as the basis jet's rows.
        let t = g.transpose(extra);
        let t = g.reshape(&t, dim * n, 1);
        o1 = g.add(&o1, &t);
    }
    (gram(g, &d1, n), cross(g, &d1, &o1, n))
}

/// `d1ᵀd1 / count`.
fn gram(g: &mut Graph, d1: &Mat, count: usize) -> Mat {
    let m = g.t_matmul(d1, d1);
    g.scale(&m, 1.0 / count as f64)
}

/// `d1ᵀo1 / count` (`L × 1`).
fn cross(g: &mut Graph, d1: &Mat, o1: &Mat, count: usize) -> Mat {
    let m = g.t_matmul(d1, o1);
    g.scale(&m, 1.0 / count as f64)
}

/// Column sums of `m` over `count`, as `L × 1`.
fn column_means(g: &mut Graph, m: &Mat, count: usize) -> Mat {
    let s = g.sum_rows(m);
    let s = g.transpose(&s);
    g.scale(&s, 1.0 / count as f64)
}

/// `α = −(G + 10^{logλ} I)⁻¹ b` from the rows of `x`, on the graph
/// (differentiable in everything `G`, `b` and `λ` depend on).
pub fn solve_in_graph(
    g: &mut Graph,
    model: &dyn LinearCoefficients,
    x: &Mat,
    dim: usize,
    criterion: CoefficientCriterion,
    ctx: &mut LossContext<'_>,
) -> Mat {
    let (gram, b) = quadratic_form(g, model, x, dim, criterion, ctx.projection, &mut *ctx.rng);
    let l = model.coefficient_count();
    let mut eye = vec![0.0; l * l];
    for i in 0..l {
        eye[i * l + i] = 1.0;
    }
    let eye = g.constant(eye, l, l);
    let lam = g.scale(model.log10_ridge(), std::f64::consts::LN_10);
    let lam = g.exp(&lam);
    let ridge = g.mul_scalar(&eye, &lam);
    let a = g.add(&gram, &ridge);
    let nb = g.neg(&b);
    g.solve_spd(&a, &nb)
}

/// The training loss of a model that solves its coefficients: `α` solved
/// on the first half of the batch (`batch`, row-major, `dim` columns), the
/// objective's loss on the second half with the model at that `α`.
///
/// # Errors
/// An objective without a [`CoefficientCriterion`], a batch of one row, or
/// the objective's own error.
pub fn solved_loss(
    g: &mut Graph,
    model: &dyn LinearCoefficients,
    objective: &dyn Objective,
    batch: &[f64],
    dim: usize,
    ctx: &mut LossContext<'_>,
) -> Result<Mat, LossError> {
    let criterion = objective.coefficient_criterion().ok_or_else(|| {
        LossError("the objective cannot solve the model's coefficients in closed form".into())
    })?;
    let rows = batch.len() / dim.max(1);
    let fit_rows = rows / 2;
    if fit_rows == 0 {
        return Err(LossError(
            "a batch of one row cannot be split to solve the coefficients".into(),
        ));
    }
    let fit = g.constant(batch[..fit_rows * dim].to_vec(), fit_rows, dim);
    let rest = g.constant(batch[fit_rows * dim..].to_vec(), rows - fit_rows, dim);
    let alpha = solve_in_graph(g, model, &fit, dim, criterion, ctx);
    let view = model.with_coefficients(alpha);
    objective.loss(g, &*view, &rest, ctx)
}

/// Why a refit failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RefitError {
    /// No training points.
    #[error("no training points to refit the coefficients on")]
    NoPoints,
    /// The ridge system is not positive definite (non-finite features).
    #[error("the coefficients' ridge system is not solvable: {0}")]
    Solve(#[from] crate::linalg::LinalgError),
}

/// The coefficients that minimise the criterion's quadratic over `points`
/// (row-major `n × dim`) plus the model's ridge, accumulated in `f64` over
/// chunks of rows on inference graphs.
///
/// # Errors
/// No points, or a system that is not positive definite.
pub fn refit(
    dev: &Device,
    model: &dyn LinearCoefficients,
    points: &[f64],
    dim: usize,
    criterion: CoefficientCriterion,
    projection: &dyn Projection,
    rng: &mut dyn RngCore,
) -> Result<Vec<f64>, RefitError> {
    let n = points.len() / dim.max(1);
    if n == 0 {
        return Err(RefitError::NoPoints);
    }
    let l = model.coefficient_count();
    let per_row = l * (dim + 2);
    let chunk = (REFIT_BUDGET / per_row.max(1)).clamp(1, n);
    let mut gram = vec![0.0; l * l];
    let mut b = vec![0.0; l];
    let mut first = 0;
    while first < n {
        let end = (first + chunk).min(n);
        let rows = end - first;
        let mut g = Graph::inference(dev);
        let x = g.constant(points[first * dim..end * dim].to_vec(), rows, dim);
        let (gc, bc) = quadratic_form(&mut g, model, &x, dim, criterion, projection, rng);
        let w = rows as f64 / n as f64;
        for (acc, v) in gram.iter_mut().zip(gc.to_host()) {
            *acc += w * v;
        }
        for (acc, v) in b.iter_mut().zip(bc.to_host()) {
            *acc += w * v;
        }
        first = end;
    }
    let lam = 10f64.powf(model.log10_ridge().scalar());
    for i in 0..l {
        gram[i * l + i] += lam;
    }
    let chol = crate::linalg::Cholesky::new(&gram, l)?;
    let mut alpha: Vec<f64> = b.iter().map(|v| -v).collect();
    chol.solve_in_place(&mut alpha);
    Ok(alpha)
}
