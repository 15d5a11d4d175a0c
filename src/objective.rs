//! The [`Objective`] trait (a training loss) and the exact score-matching
//! loss that objectives and tasks share.
//!
//! Data flow: the training loop hands an objective a batch `x` and a
//! [`LossContext`] (the projection and the run's random stream); the
//! objective draws directions or noise, asks the model for
//! [`crate::model::Terms`] (one value stream, `M` directions per point) and
//! returns a `1 × 1` loss on the graph.
//!
//! Exact score matching needs the trace of `∇ₓs` along all `D` basis
//! directions. [`exact_sm_loss`] computes the model's value stream once on a
//! memoizing graph and the directions in chunks on child graphs, each
//! differentiated at once, so memory is bounded by one chunk; the chunks'
//! gradients reach the value stream and the parameters through
//! [`Graph::detached_sum`].

use std::collections::HashMap;

use rand::RngCore;

use crate::autodiff::Graph;
use crate::closed_form::CoefficientCriterion;
use crate::device::{Device, Mat};
use crate::model::{Needs, ScoreModel, TraceTerms};
use crate::projection::Projection;

/// What an objective may use besides the model and the batch.
pub struct LossContext<'a> {
    /// Where projection directions come from.
    pub projection: &'a dyn Projection,
    /// The run's seeded random stream (fresh directions and noise every step).
    pub rng: &'a mut dyn RngCore,
}

/// Why an objective cannot build its loss for a model.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct LossError(pub String);

impl LossError {
    /// The error for a model that lacks what [`Objective::needs`] says.
    pub fn unmet(needs: &Needs, model: &dyn ScoreModel) -> Self {
        Self(
            needs
                .unmet_by(model)
                .unwrap_or("the model does not suit this objective")
                .to_string(),
        )
    }
}

/// A training loss for score models.
pub trait Objective {
    /// The mean loss over the batch `x` (`n × D`, or `n × (D + C)` for a
    /// conditional model whose last `C` columns are its context) as a
    /// `1 × 1` matrix on `g`. Directions and noise live in the model's `D`
    /// coordinates.
    ///
    /// # Errors
    /// A model without what [`Objective::needs`] asks for (checked when an
    /// experiment is built, so a run never meets it).
    fn loss(
        &self,
        g: &mut Graph,
        model: &dyn ScoreModel,
        x: &Mat,
        ctx: &mut LossContext<'_>,
    ) -> Result<Mat, LossError>;

    /// What the objective needs of the model and the projection; checked
    /// once, before anything runs.
    fn needs(&self) -> Needs {
        Needs::default()
    }

    /// Rows the model sees per batch point (projections or noise draws), for
    /// memory estimates; 1 by default.
    fn rows_per_point(&self) -> usize {
        1
    }

    /// The quadratic this loss is in the coefficients of a model linear in
    /// them ([`crate::closed_form`]), when the objective can have them
    /// solved in closed form (default: it cannot).
    fn coefficient_criterion(&self) -> Option<CoefficientCriterion> {
        None
    }
}

/// `shift` (`rows × D`, in the model's coordinates) widened with zero
/// columns to `width`: a conditional model's context columns come after its
/// own and a perturbation of the input leaves them alone.
pub fn pad_to_width(g: &mut Graph, shift: &Mat, width: usize) -> Mat {
    let d = shift.cols();
    if width == d {
        return shift.clone();
    }
    let own: std::sync::Arc<[usize]> = (0..d).collect();
    g.scatter_cols(shift, &own, width)
}

/// Directions `v` for `rows` rows of dimension `dim`, from the projection.
pub fn draw_directions(g: &Graph, ctx: &mut LossContext<'_>, rows: usize, dim: usize) -> Mat {
    let data = ctx.projection.sample(ctx.rng, rows, dim);
    g.constant(data, rows, dim)
}

/// The model's terms along `projections` fresh directions per row of `x`
/// (one value stream; directions direction-major), as the sliced objectives
/// use them.
pub fn sliced_terms(
    g: &mut Graph,
    model: &dyn ScoreModel,
    x: &Mat,
    ctx: &mut LossContext<'_>,
    projections: usize,
    want_score: bool,
) -> crate::model::Terms {
    let n = x.rows();
    let v = draw_directions(g, ctx, n * projections, model.dim());
    model.terms(g, x, &v, want_score)
}

/// Elements of one tangent buffer that a chunk of directions may fill.
const TRACE_BUDGET: usize = 1 << 21;

/// How many basis directions one chunk of exact score matching takes for
/// `n` points.
pub fn trace_chunk(model: &dyn ScoreModel, n: usize) -> usize {
    let per_direction = n.max(1) * model.trace_width().max(1);
    (TRACE_BUDGET / per_direction).clamp(1, model.dim().max(1))
}

/// `Σᵢ (trace + ½ vsᵢ²)` per point of one chunk (`n × 1`).
fn chunk_per_point(g: &mut Graph, t: &TraceTerms, n: usize, count: usize) -> Mat {
    let sq = g.square(&t.vs);
    let sq = g.reshape(&sq, count, n);
    let sq = g.sum_rows(&sq);
    let sq = g.reshape(&sq, n, 1);
    let half = g.scale(&sq, 0.5);
    g.add(&t.trace, &half)
}

/// The mean exact score-matching loss `E[tr(∇ₓs) + ½‖s‖²]` over the rows of
/// `x` (`1 × 1`, on the graph); see the module documentation.
pub fn exact_sm_loss(g: &mut Graph, model: &dyn ScoreModel, x: &Mat) -> Mat {
    exact_sm_loss_chunked(g, model, x, trace_chunk(model, x.rows()))
}

/// [`exact_sm_loss`] with `chunk` directions per child graph (one pass
/// when `chunk ≥ D`).
pub fn exact_sm_loss_chunked(g: &mut Graph, model: &dyn ScoreModel, x: &Mat, chunk: usize) -> Mat {
    let n = x.rows();
    let d = model.dim();
    let chunk = chunk.max(1);
    if chunk >= d {
        let t = model.trace_terms(g, x, 0, d);
        let per = chunk_per_point(g, &t, n, d);
        let s = g.sum_all(&per);
        return g.scale(&s, 1.0 / n as f64);
    }
    let memo = g.start_memo();
    let _ = model.trace_terms(g, x, 0, 0);
    g.stop_memo();
    let leaves = g.child_leaves(&memo);
    let mut total = 0.0;
    let mut grads: HashMap<u64, (Mat, Mat)> = HashMap::new();
    let mut order: Vec<u64> = Vec::new();
    let mut start = 0;
    while start < d {
        let count = chunk.min(d - start);
        let mut c = Graph::child(g, &memo, &leaves);
        let t = model.trace_terms(&mut c, x, start, count);
        let per = chunk_per_point(&mut c, &t, n, count);
        let s = c.sum_all(&per);
        let l = c.scale(&s, 1.0 / n as f64);
        total += l.scalar();
        if c.is_tracking() {
            for (leaf, grad) in c.backward_leaves(&l) {
                match grads.get_mut(&leaf.id()) {
                    Some((_, acc)) => crate::compute::add_into(acc, &grad),
                    None => {
                        order.push(leaf.id());
                        grads.insert(leaf.id(), (leaf, grad));
                    }
                }
            }
        }
        start += count;
    }
    let leaf_grads = order
        .into_iter()
        .map(|id| grads.remove(&id).expect("recorded"))
        .collect();
    g.detached_sum(total, leaf_grads)
}

/// The exact score-matching loss of each row of `x` (host values, `width`
/// columns a row: the model's dimension plus its context columns), computed
/// in chunks of at most `max_rows` rows (fewer for wide models) and of
/// directions, summed on the host in `f64`.
pub fn exact_sm_per_point(
    dev: &Device,
    model: &dyn ScoreModel,
    x: &[f64],
    width: usize,
    max_rows: usize,
) -> Vec<f64> {
    let d = model.dim();
    let n = x.len() / width.max(1);
    // The memoized value stream holds a few matrices per layer of
    // `rows × width`; keep it near the budget of one tangent chunk.
    let rows = (TRACE_BUDGET / (4 * model.trace_width().max(1)))
        .clamp(1, max_rows.max(1))
        .min(n.max(1));
    let mut out = Vec::with_capacity(n);
    let mut first = 0;
    while first < n {
        let end = (first + rows).min(n);
        let m = end - first;
        let mut g = Graph::inference(dev);
        let xm = g.constant(x[first * width..end * width].to_vec(), m, width);
        let chunk = trace_chunk(model, m);
        let memo = g.start_memo();
        let _ = model.trace_terms(&mut g, &xm, 0, 0);
        g.stop_memo();
        let mut acc = vec![0.0f64; m];
        let mut start = 0;
        while start < d {
            let count = chunk.min(d - start);
            let mut c = Graph::child(&g, &memo, &[]);
            let t = model.trace_terms(&mut c, &xm, start, count);
            let trace = t.trace.to_host();
            let vs = t.vs.to_host();
            for (i, a) in acc.iter_mut().enumerate() {
                let sq: f64 = (0..count).map(|j| vs[j * m + i] * vs[j * m + i]).sum();
                *a += trace[i] + 0.5 * sq;
            }
            start += count;
        }
        out.extend(acc);
        first = end;
    }
    out
}
