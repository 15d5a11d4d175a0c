//! A fitted kernel estimator as a score model: the estimator computes on
//! the host ([`PointScore`]) and [`graph_score`] / [`graph_terms`] hand the
//! results to a graph as constants (nothing to differentiate).
//!
//! Data flow: a query batch (`n × (D + context)`) is stripped of its context
//! columns, scored by [`PointScore::scores_into`] (and, for terms, its
//! directional curvature by [`PointScore::vhv_into`]) on the host, and the
//! results come back to the graph as constants.

use super::RbfFit;

/// A fitted kernel score estimator evaluated on the host, a batch of query
/// points at a time; [`graph_score`] and [`graph_terms`] turn it into the
/// [`ScoreModel`](crate::model::ScoreModel) methods.
pub trait PointScore {
    /// The state of the fit: samples, dimensions, bandwidth, estimates at
    /// the samples.
    fn fitted(&self) -> &RbfFit;
    /// Dimension `D` of the score.
    fn score_dim(&self) -> usize {
        self.fitted().dim
    }
    /// Conditioning columns after the first `D` of every input row (ignored).
    fn context_cols(&self) -> usize {
        self.fitted().context
    }
    /// Writes the scores at the rows of `q` (`n × D`) into `out` (`n × D`).
    /// Row `i` of `q` is looked up as fitted sample `i` first (see
    /// [`super::find_sample`]), so scoring the fitted samples in order is cheap.
    fn scores_into(&self, q: &[f64], out: &mut [f64]);
    /// Writes `vᵀ (∇s(q)) v` for each row of `q` and `v` (`n × D`) into `out`
    /// (length `n`), given `s`, the scores at `q` from
    /// [`PointScore::scores_into`].
    fn vhv_into(&self, q: &[f64], v: &[f64], s: &[f64], out: &mut [f64]);
    /// Scores at rows of width `D + context` (row-major), on the host (see
    /// [`host_scores`]).
    ///
    /// # Panics
    /// When the rows have the wrong width.
    fn scores(&self, x: &[f64]) -> Vec<f64> {
        host_scores(self, x)
    }
}

/// Implements [`ScoreModel`](crate::model::ScoreModel) for a fitted kernel
/// estimator through its [`PointScore`]: scores and terms computed on the
/// host and handed to the graph as constants. `point_score_model!(T, field)`
/// also implements [`Module`](crate::nn::Module) for `T` as that of its
/// [`RbfFit`] `field`, whose one buffer holds the fitted samples under
/// [`FITTED_SAMPLES`](crate::model::FITTED_SAMPLES).
#[macro_export]
macro_rules! point_score_model {
    ($t:ty, $fit:ident) => {
        impl $crate::nn::Module for $t {
            fn visit(
                &self,
                path: &mut $crate::nn::ParamPath,
                f: &mut dyn FnMut(&str, &$crate::nn::Param),
            ) {
                $crate::nn::Module::visit(&self.$fit, path, f)
            }
            fn visit_mut(
                &mut self,
                path: &mut $crate::nn::ParamPath,
                f: &mut dyn FnMut(&str, &mut $crate::nn::Param),
            ) {
                $crate::nn::Module::visit_mut(&mut self.$fit, path, f)
            }
        }
        impl $crate::model::ScoreModel for $t {
            fn dim(&self) -> usize {
                $crate::kernels::PointScore::score_dim(self)
            }
            fn context_dim(&self) -> usize {
                $crate::kernels::PointScore::context_cols(self)
            }
            fn score(
                &self,
                g: &mut $crate::autodiff::Graph,
                x: &$crate::device::Mat,
            ) -> $crate::device::Mat {
                $crate::kernels::graph_score(self, g, x)
            }
            fn terms(
                &self,
                g: &mut $crate::autodiff::Graph,
                x: &$crate::device::Mat,
                v: &$crate::device::Mat,
                want_score: bool,
            ) -> $crate::model::Terms {
                $crate::kernels::graph_terms(self, g, x, v, want_score)
            }
        }
    };
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
