//! `fd_ssm`: finite-difference sliced score matching (Pang, Xu, Li, Song,
//! Ermon & Zhu 2020, "Efficient learning of generative models via
//! finite-difference score matching"), an estimator that is not in the SSM
//! paper, written as a plugin crate outside `slicedscore`.
//!
//! Data flow: the training loop hands [`FdSsm::loss`] a batch `x` (`n` rows);
//! it draws `M` directions `v` per row from the experiment's projection
//! (exactly as `ssm` does, so the same random stream gives the same
//! directions), shifts each row to `x ± εv`, evaluates the model there
//! (and, for an energy model, at `x`) in one batched call, and combines the
//! values into SSM's two terms by central differences. No second-order jets
//! and no input gradients are built: only plain function evaluations, whose
//! parameter gradients one backward pass gives.
//!
//! SSM's loss per point and direction is `vᵀ(∇ₓs)v + ½(vᵀs)²`. With step
//! `ε > 0` along `v`:
//!
//! * energy model (`log p̃ = f`, `s = ∇f`), three evaluations:
//!   `vᵀ∇²f v ≈ (f(x+εv) − 2f(x) + f(x−εv)) / ε²` and
//!   `vᵀ∇f ≈ (f(x+εv) − f(x−εv)) / (2ε)`;
//! * score network `s`, two evaluations:
//!   `vᵀ(∇ₓs)v ≈ vᵀ(s(x+εv) − s(x−εv)) / (2ε)` and
//!   `vᵀs ≈ vᵀ(s(x+εv) + s(x−εv)) / 2`.
//!
//! Both are second-order accurate: the loss differs from `ssm`'s on the same
//! directions by `O(ε²)`. Checked against the authors' public code: its
//! energy FD-SSM is `(D/ε_p²)·mean[f(x+u) + f(x−u) − 2f(x) + ⅛(f(x+u) −
//! f(x−u))²]` with `u` uniform on the sphere of radius `ε_p`; with
//! `v = u·√D/ε_p` (a `sphere` direction, `E[vvᵀ] = I`) and `ε = ε_p/√D` that
//! is exactly the energy formula above, so their `ε_p` is this plugin's
//! `eps` times `‖v‖` (`√D` for `sphere` and `rademacher` directions). Their
//! score-network loss, `⅛((s₊ + s₋)·u)² + ½(s₊ − s₋)·u` with `s± = s(x ± u)`
//! and `‖u‖ = ε_p`, is `ε_p²` times the score formula above for the unit
//! direction `v = u/ε_p` and `ε = ε_p` (they average the two scores for
//! `vᵀs` as done here).
//!
//! `eps` must be finite and positive, and at least `1e-3` when the model
//! computes in `f32`: the second difference loses about `4·2⁻²⁴·|f|/ε²` to
//! rounding, which swamps `vᵀ∇²f v` below that (use `precision: F64` for
//! smaller steps).

use serde::{Deserialize, Serialize};
use slicedscore::autodiff::Graph;
use slicedscore::device::Mat;
use slicedscore::device::Precision;
use slicedscore::error::{require_at_least, require_positive, ConfigError};
use slicedscore::model::ScoreModel;
use slicedscore::objective::{draw_directions, pad_to_width, LossContext, LossError, Objective};
use slicedscore::registry::ObjectiveConfig;

/// The smallest step accepted for a model that computes in `f32`.
pub const F32_MIN_EPS: f64 = 1e-3;

fn one() -> usize {
    1
}

/// Settings of `fd_ssm`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FdSsmConfig {
    /// Finite-difference step `ε > 0` along each direction `v` (the
    /// evaluations are at `x ± εv`).
    pub eps: f64,
    /// Projections per data point, `M ≥ 1` (default 1).
    #[serde(default = "one")]
    pub projections: usize,
}

/// Finite-difference sliced score matching.
#[derive(Debug, Clone)]
pub struct FdSsm {
    eps: f64,
    projections: usize,
}

impl FdSsm {
    /// The objective with step `eps` and `projections` directions per point,
    /// validated as the settings are.
    pub fn new(eps: f64, projections: usize) -> Result<Self, ConfigError> {
        FdSsmConfig { eps, projections }.validated()
    }
}

impl FdSsmConfig {
    fn validated(&self) -> Result<FdSsm, ConfigError> {
        require_positive("eps", self.eps)?;
        require_at_least("projections", self.projections, 1)?;
        Ok(FdSsm {
            eps: self.eps,
            projections: self.projections,
        })
    }
}

impl Objective for FdSsm {
    fn loss(
        &self,
        g: &mut Graph,
        model: &dyn ScoreModel,
        x: &Mat,
        ctx: &mut LossContext<'_>,
    ) -> Result<Mat, LossError> {
        if x.precision() == Precision::F32 && self.eps < F32_MIN_EPS {
            return Err(LossError(format!(
                "fd_ssm.eps = {} is below {F32_MIN_EPS} for a model in f32: the second \
                 difference would be mostly rounding error; use a larger eps or precision: F64",
                self.eps
            )));
        }
        let (n, width) = x.shape();
        let d = model.dim();
        let m = self.projections;
        // Directions first, as `ssm` draws them: the same stream, the same v.
        let v = draw_directions(g, ctx, n * m, d);
        let xr = if m == 1 {
            x.clone()
        } else {
            g.tile_blocks(x, m)
        };
        // The step moves the model's `d` coordinates; context columns of a
        // conditional model (after them) stay as they are.
        let step = g.scale(&v, self.eps);
        let step = pad_to_width(g, &step, width);
        let plus = g.add(&xr, &step);
        let minus = g.sub(&xr, &step);
        let rows = n * m;
        let (vhv, vs) = match model.as_energy() {
            Some(energy) => {
                // One batched evaluation of log p̃ at [x; x+εv; x−εv].
                let all = g.vstack(&[x, &plus, &minus]);
                let f = energy.log_density(g, &all);
                let f0 = g.row_block(&f, 0, n);
                let f0 = if m == 1 { f0 } else { g.tile_blocks(&f0, m) };
                let fp = g.row_block(&f, n, rows);
                let fm = g.row_block(&f, n + rows, rows);
                let sum = g.add(&fp, &fm);
                let twice = g.scale(&f0, 2.0);
                let second = g.sub(&sum, &twice);
                let vhv = g.scale(&second, 1.0 / (self.eps * self.eps));
                let diff = g.sub(&fp, &fm);
                let vs = g.scale(&diff, 0.5 / self.eps);
                (vhv, vs)
            }
            None => {
                // One batched evaluation of s at [x+εv; x−εv].
                let all = g.vstack(&[&plus, &minus]);
                let s = model.score(g, &all);
                let sp = g.row_block(&s, 0, rows);
                let sm = g.row_block(&s, rows, rows);
                let diff = g.sub(&sp, &sm);
                let vdiff = g.mul(&diff, &v);
                let vdiff = g.sum_cols(&vdiff);
                let vhv = g.scale(&vdiff, 0.5 / self.eps);
                let sum = g.add(&sp, &sm);
                let vsum = g.mul(&sum, &v);
                let vsum = g.sum_cols(&vsum);
                let vs = g.scale(&vsum, 0.5);
                (vhv, vs)
            }
        };
        let sq = g.square(&vs);
        let half = g.scale(&sq, 0.5);
        let per = g.add(&vhv, &half);
        Ok(g.mean_all(&per))
    }
}

impl ObjectiveConfig for FdSsmConfig {
    fn build(&self) -> Result<Box<dyn Objective>, ConfigError> {
        Ok(Box::new(self.validated()?))
    }
}

slicedscore::register_plugin!(
    ObjectiveConfig,
    "fd_ssm",
    "finite-difference SSM (Pang et al. 2020): SSM's terms from evaluations at x and x +/- eps v, no second derivatives",
    "(eps: 0.05, projections: 1)",
    FdSsmConfig
);
