//! The [`Objective`] trait (a training loss) and the exact score-matching
//! loss that objectives and tasks share.
//!
//! Data flow: the training loop hands an objective a batch `x` and a
//! [`LossContext`] (the projection and the run's random stream); the
//! objective repeats rows, draws directions or noise, asks the model for
//! [`crate::model::Terms`] and returns a `1 × 1` loss on the graph.

use rand::RngCore;

use crate::autodiff::Graph;
use crate::device::{self, Mat};
use crate::model::ScoreModel;
use crate::projection::Projection;

/// What an objective may use besides the model and the batch.
pub struct LossContext<'a> {
    /// Where projection directions come from.
    pub projection: &'a dyn Projection,
    /// The run's seeded random stream (fresh directions and noise every step).
    pub rng: &'a mut dyn RngCore,
}

/// A training loss for score models.
pub trait Objective {
    /// The mean loss over the batch `x` (`n × D`, or `n × (D + C)` for a
    /// conditional model whose last `C` columns are its context) as a
    /// `1 × 1` matrix on `g`. Directions and noise live in the model's `D`
    /// coordinates.
    fn loss(
        &self,
        g: &mut Graph,
        model: &dyn ScoreModel,
        x: &Mat,
        ctx: &mut LossContext<'_>,
    ) -> Mat;

    /// Whether the loss is only valid for projections with `E[vvᵀ] = I`.
    fn requires_isotropic_projection(&self) -> bool {
        false
    }

    /// Checks that the objective can train `model` (e.g. it needs an energy
    /// model or curvature propagation); the error says what is missing.
    fn check_model(&self, _model: &dyn ScoreModel) -> Result<(), String> {
        Ok(())
    }
}

/// Directions `v` for `rows` rows of dimension `dim`, from the projection.
pub fn draw_directions(g: &Graph, ctx: &mut LossContext<'_>, rows: usize, dim: usize) -> Mat {
    let data = ctx.projection.sample(ctx.rng, rows, dim);
    g.constant(data, rows, dim)
}

/// The model's terms along fresh projection directions, with every row of
/// `x` repeated `projections` times (one direction per copy), as used by the
/// sliced objectives.
pub fn sliced_terms(
    g: &mut Graph,
    model: &dyn ScoreModel,
    x: &Mat,
    ctx: &mut LossContext<'_>,
    projections: usize,
    want_score: bool,
) -> crate::model::Terms {
    let (n, _) = device::shape(x);
    let d = model.dim();
    let xr = repeat_rows(g, x, projections);
    let v = draw_directions(g, ctx, n * projections, d);
    model.terms(g, &xr, &v, want_score)
}

/// The rows of `x` stacked `times` times (copy-major: copy `k` is rows
/// `k·n … k·n + n − 1`).
pub fn repeat_rows(g: &Graph, x: &Mat, times: usize) -> Mat {
    let (n, d) = device::shape(x);
    let host = device::to_host(x);
    let mut out = Vec::with_capacity(host.len() * times);
    for _ in 0..times {
        out.extend_from_slice(&host);
    }
    g.constant(out, n * times, d)
}

/// The standard basis directions matching [`repeat_rows`]`(x, D)`: copy `i`
/// moves along `eᵢ`.
pub fn basis_directions(g: &Graph, n: usize, dim: usize) -> Mat {
    let mut v = vec![0.0; n * dim * dim];
    for i in 0..dim {
        for r in 0..n {
            v[(i * n + r) * dim + i] = 1.0;
        }
    }
    g.constant(v, n * dim, dim)
}

/// Exact score matching per data point,
/// `tr(∇ₓs(x)) + ½‖s(x)‖²`, from `D` directional second derivatives along the
/// basis vectors (the trace) whose first derivatives also give `‖s‖²`.
/// Returns an `(D·n) × 1` column whose copy-major blocks sum to the per-point
/// loss; [`exact_sm_loss`] and [`exact_sm_per_point`] reduce it.
fn exact_sm_terms(g: &mut Graph, model: &dyn ScoreModel, x: &Mat) -> Mat {
    let (n, _) = device::shape(x);
    let d = model.dim();
    let xr = repeat_rows(g, x, d);
    let v = basis_directions(g, n, d);
    let t = model.terms(g, &xr, &v, false);
    let sq = g.square(&t.vs);
    let half = g.scale(&sq, 0.5);
    g.add(&t.vhv, &half)
}

/// The mean exact score-matching loss over the rows of `x` (`1 × 1`, on the graph).
pub fn exact_sm_loss(g: &mut Graph, model: &dyn ScoreModel, x: &Mat) -> Mat {
    let n = device::shape(x).0;
    let t = exact_sm_terms(g, model, x);
    let s = g.sum_all(&t);
    g.scale(&s, 1.0 / n as f64)
}

/// The exact score-matching loss of each row of `x` (host values, `width`
/// columns a row: the model's dimension plus its context columns), computed
/// in chunks so that at most about `max_rows` rows are expanded at once.
pub fn exact_sm_per_point(
    dev: &crate::device::Dev,
    model: &dyn ScoreModel,
    x: &[f64],
    width: usize,
    max_rows: usize,
) -> Vec<f64> {
    let d = model.dim();
    let n = x.len() / width;
    let chunk = (max_rows / d.max(1)).max(1);
    let mut out = Vec::with_capacity(n);
    let mut start = 0;
    while start < n {
        let end = (start + chunk).min(n);
        let mut g = Graph::inference(dev);
        let xm = g.constant(x[start * width..end * width].to_vec(), end - start, width);
        let t = device::to_host(&exact_sm_terms(&mut g, model, &xm));
        let m = end - start;
        for r in 0..m {
            out.push((0..d).map(|i| t[i * m + r]).sum());
        }
        start = end;
    }
    out
}
