//! Forward-mode (Taylor) jets up to second order, along many directions per
//! row, sharing one value stream.
//!
//! A [`Jet`] of a batch of `n` rows holds the value `a(x)` (`n × k`) once and
//! the derivatives along `m` directions per row, stacked direction-major
//! (block `j` is rows `j·n … j·n + n − 1`):
//!
//! * first order: the tangents `ȧⱼ = (∇ₓa)·vⱼ` (`m·n × k`);
//! * second order, per direction ([`JetKind::Second`]): `äⱼ = vⱼᵀ(∇ₓ²a)vⱼ`
//!   (`m·n × k`), as sliced score matching needs;
//! * second order summed over the directions ([`JetKind::Trace`]):
//!   `Σⱼ äⱼ` (`n × k`). Along the basis directions this is the trace of the
//!   Hessian, which exact score matching needs; the sum is carried instead
//!   of the `D` terms because every rule is linear in `ä`.
//!
//! The input's tangent along basis directions is not stored at all
//! ([`Tangent::Basis`]): the first linear layer's tangent along `eᵢ` is row
//! `i` of its weight ([`Graph::basis_rows`]).
//!
//! Every rule is a graph op, so the derivatives stay on the tape and one
//! reverse pass of a loss built from them gives ∇θ. Value-stream ops only
//! read value-stream inputs, so a memoizing graph ([`Graph::start_memo`])
//! computes the value once for all chunks of directions.
//!
//! Rules, with `⊙` the product of a direction block and an `n × k` value:
//! * affine `y = aW + b`: `(aW + b, ȧW, äW)`;
//! * elementwise `y = f(a)`: `(f, f'⊙ȧ, f''⊙ȧ² + f'⊙ä)` (trace:
//!   `f''∘Σⱼȧⱼ² + f'∘ä`);
//! * product `y = a∘b`: `(ab, ȧ⊙b + a⊙ḃ, ä⊙b + 2ȧḃ + a⊙b̈)`.

use std::sync::Arc;

use crate::autodiff::Graph;
use crate::compute::{Activation, SecondMode};
use crate::device::Mat;

/// How many derivatives a jet carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JetKind {
    /// The value only.
    Value,
    /// Value and first derivatives along each direction.
    First,
    /// Value, first and second derivatives along each direction.
    Second,
    /// Value, first derivatives along each direction and the sum of the
    /// second derivatives over the directions.
    Trace,
}

impl JetKind {
    fn second_mode(self) -> SecondMode {
        match self {
            JetKind::Value | JetKind::First => SecondMode::None,
            JetKind::Second => SecondMode::PerDirection,
            JetKind::Trace => SecondMode::Trace,
        }
    }

    /// The highest derivative order carried (0, 1 or 2).
    pub fn order(self) -> usize {
        match self {
            JetKind::Value => 0,
            JetKind::First => 1,
            JetKind::Second | JetKind::Trace => 2,
        }
    }
}

/// The first-order part of a jet.
#[derive(Clone)]
pub enum Tangent {
    /// Tangents stored as a matrix (`m·n × k`).
    Mat(Mat),
    /// The input's tangents along the basis directions
    /// `e_start … e_{start+count−1}` (not stored).
    Basis {
        /// First direction.
        start: usize,
        /// Number of directions.
        count: usize,
    },
}

/// Value and directional derivatives of a batch of rows.
#[derive(Clone)]
pub struct Jet {
    /// What the jet carries.
    pub kind: JetKind,
    /// Number of directions `m` per row.
    pub directions: usize,
    /// The value (`n × k`).
    pub value: Mat,
    /// First derivatives (`None`: identically zero).
    pub tangent: Option<Tangent>,
    /// Second derivatives (`None`: identically zero): `m·n × k` per
    /// direction, `n × k` for a trace.
    pub second: Option<Mat>,
}

/// `f'` and `f''` of an elementwise function at a jet's value, kept by
/// models for input gradients and curvature propagation.
#[derive(Clone)]
pub struct Slopes {
    /// `f'(a)`.
    pub f1: Option<Mat>,
    /// `f''(a)`.
    pub f2: Option<Mat>,
}

fn add_opt(g: &mut Graph, a: Option<Mat>, b: Option<Mat>) -> Option<Mat> {
    match (a, b) {
        (Some(a), Some(b)) => Some(g.add(&a, &b)),
        (a, None) => a,
        (None, b) => b,
    }
}

impl Jet {
    /// A jet of `x` with no derivatives.
    pub fn value(x: Mat) -> Self {
        Self {
            kind: JetKind::Value,
            directions: 0,
            value: x,
            tangent: None,
            second: None,
        }
    }

    /// A jet of the input `x` (`n × D`) moving along `v` (`m·n × D`,
    /// direction-major) with `kind` [`JetKind::First`] or
    /// [`JetKind::Second`].
    pub fn along(x: Mat, v: Mat, kind: JetKind) -> Self {
        let n = x.rows();
        assert!(
            n > 0 && v.rows().is_multiple_of(n) && v.cols() == x.cols(),
            "Jet::along: directions {:?} for input {:?}",
            v.shape(),
            x.shape()
        );
        assert!(
            matches!(kind, JetKind::First | JetKind::Second),
            "Jet::along is first or second order"
        );
        Self {
            kind,
            directions: v.rows() / n,
            value: x,
            tangent: Some(Tangent::Mat(v)),
            second: None,
        }
    }

    /// A jet of the input `x` along the basis directions
    /// `e_start … e_{start+count−1}`: [`JetKind::Trace`] for the Hessian's
    /// trace (energy models), [`JetKind::First`] for the Jacobian's diagonal
    /// (score networks).
    pub fn basis(x: Mat, start: usize, count: usize, kind: JetKind) -> Self {
        assert!(
            start + count <= x.cols(),
            "Jet::basis: directions beyond the input width"
        );
        assert!(
            matches!(kind, JetKind::First | JetKind::Trace),
            "Jet::basis is first order or a trace"
        );
        Self {
            kind,
            directions: count,
            value: x,
            // No directions: only the value stream is computed (see `Graph::start_memo`).
            tangent: (count > 0).then_some(Tangent::Basis { start, count }),
            second: None,
        }
    }

    /// A jet like `self` (kind, directions) of a constant `value`.
    pub fn constant_like(&self, value: Mat) -> Self {
        Self {
            kind: self.kind,
            directions: self.directions,
            value,
            tangent: None,
            second: None,
        }
    }

    /// Rows `n` of the value.
    pub fn rows(&self) -> usize {
        self.value.rows()
    }

    /// The derivative order carried.
    pub fn order(&self) -> usize {
        self.kind.order()
    }

    fn one_hot(&self, g: &Graph, start: usize, count: usize) -> Mat {
        let (n, d) = self.value.shape();
        let mut v = vec![0.0; count * n * d];
        for j in 0..count {
            for r in 0..n {
                v[(j * n + r) * d + start + j] = 1.0;
            }
        }
        g.constant(v, count * n, d)
    }

    /// The tangents as a matrix (materializing basis directions), `None`
    /// when identically zero.
    pub fn tangent_mat(&self, g: &Graph) -> Option<Mat> {
        match &self.tangent {
            None => None,
            Some(Tangent::Mat(m)) => Some(m.clone()),
            Some(Tangent::Basis { start, count }) => Some(self.one_hot(g, *start, *count)),
        }
    }

    /// The first derivatives (`m·n × k`), zeros when known to vanish.
    pub fn d1_or_zero(&self, g: &Graph) -> Mat {
        self.tangent_mat(g)
            .unwrap_or_else(|| g.filled(self.directions * self.rows(), self.value.cols(), 0.0))
    }

    /// The second derivatives (per direction or summed), zeros when known
    /// to vanish.
    pub fn d2_or_zero(&self, g: &Graph) -> Mat {
        match &self.second {
            Some(s) => s.clone(),
            None => {
                let rows = if self.kind == JetKind::Trace {
                    self.rows()
                } else {
                    self.directions * self.rows()
                };
                g.filled(rows, self.value.cols(), 0.0)
            }
        }
    }

    /// A jet of the same kind and directions with the given parts.
    fn with_parts(&self, value: Mat, tangent: Option<Tangent>, second: Option<Mat>) -> Self {
        Self {
            kind: self.kind,
            directions: self.directions,
            value,
            tangent,
            second,
        }
    }

    fn map_parts(
        &self,
        g: &mut Graph,
        value: Mat,
        mut f: impl FnMut(&mut Graph, &Mat) -> Mat,
    ) -> Self {
        let tangent = self.tangent_mat(g).map(|t| Tangent::Mat(f(g, &t)));
        let second = self.second.as_ref().map(|s| f(g, s));
        self.with_parts(value, tangent, second)
    }

    /// `y = a·W` (a linear map acting on rows; `w` is `in × out`).
    pub fn matmul(&self, g: &mut Graph, w: &Mat) -> Self {
        let value = g.matmul(&self.value, w);
        self.linear_rest(g, value, w)
    }

    /// `y = a·Wᵀ` (`w` is `out × in`).
    pub fn matmul_t(&self, g: &mut Graph, w: &Mat) -> Self {
        let value = g.matmul_t(&self.value, w);
        let tangent = self.tangent_mat(g).map(|t| Tangent::Mat(g.matmul_t(&t, w)));
        let second = self.second.as_ref().map(|s| g.matmul_t(s, w));
        self.with_parts(value, tangent, second)
    }

    /// Repeats the `n × 1` column of every component into `k` columns.
    pub fn repeat_col(&self, g: &mut Graph, k: usize) -> Self {
        let value = g.repeat_col(&self.value, k);
        self.map_parts(g, value, |g, m| g.repeat_col(m, k))
    }

    /// `y = a·W + b` with `b` a `1 × out` row.
    pub fn affine(&self, g: &mut Graph, w: &Mat, b: &Mat) -> Self {
        let value = g.affine(&self.value, w, b);
        self.linear_rest(g, value, w)
    }

    fn linear_rest(&self, g: &mut Graph, value: Mat, w: &Mat) -> Self {
        let n = self.rows();
        let tangent = match &self.tangent {
            None => None,
            Some(Tangent::Mat(t)) => Some(Tangent::Mat(g.matmul(t, w))),
            Some(Tangent::Basis { start, count }) => {
                Some(Tangent::Mat(g.basis_rows(w, *start, *count, n)))
            }
        };
        let second = self.second.as_ref().map(|s| g.matmul(s, w));
        self.with_parts(value, tangent, second)
    }

    /// `y = f(a)` for an activation; also returns `f'(a)` and (for second
    /// order, or when `keep ≥ 1`/`2`) `f''(a)` for later backward passes.
    pub fn activate(&self, g: &mut Graph, act: Activation, keep: usize) -> (Self, Slopes) {
        let upto = self.order().max(keep).min(2);
        let mut d = g.activation_derivs(act, &self.value, upto).into_iter();
        let f0 = d.next().expect("f");
        let f1 = d.next();
        let f2 = d.next();
        let slopes = Slopes { f1, f2 };
        (self.through(g, f0, &slopes), slopes)
    }

    /// `y = f(a)` elementwise given `f(a)` and the slopes at `a`.
    pub fn through(&self, g: &mut Graph, f0: Mat, slopes: &Slopes) -> Self {
        if self.kind == JetKind::Value {
            return Self::value(f0);
        }
        let f1 = slopes.f1.as_ref().expect("f' for a jet of order ≥ 1");
        let mode = self.kind.second_mode();
        let Some(t) = self.tangent_mat(g) else {
            // No first-order part: only f'·ä survives.
            let second = self.second.as_ref().map(|s| match mode {
                SecondMode::PerDirection => g.mul_blocks(s, f1),
                _ => g.mul(s, f1),
            });
            return Self {
                value: f0,
                tangent: None,
                second,
                ..self.clone()
            };
        };
        let (t2, s2) = g.jet_tangent(mode, f1, slopes.f2.as_ref(), &t, self.second.as_ref());
        Self {
            kind: self.kind,
            directions: self.directions,
            value: f0,
            tangent: Some(Tangent::Mat(t2)),
            second: s2,
        }
    }

    /// Elementwise sum of two jets of the same kind and shape.
    pub fn add(&self, g: &mut Graph, other: &Self) -> Self {
        let value = g.add(&self.value, &other.value);
        let tangent = match (&self.tangent, &other.tangent) {
            (None, None) => None,
            _ => {
                let a = self.tangent_mat(g);
                let b = other.tangent_mat(g);
                add_opt(g, a, b).map(Tangent::Mat)
            }
        };
        let second = add_opt(g, self.second.clone(), other.second.clone());
        Self {
            kind: self.kind,
            directions: self.directions.max(other.directions),
            value,
            tangent,
            second,
        }
    }

    /// Elementwise product of two jets of the same kind and shape.
    pub fn mul(&self, g: &mut Graph, other: &Self) -> Self {
        let value = g.mul(&self.value, &other.value);
        if self.kind == JetKind::Value {
            return Self::value(value);
        }
        let ta = self.tangent_mat(g);
        let tb = other.tangent_mat(g);
        let (a, b) = (&self.value, &other.value);
        let x = ta.as_ref().map(|t| g.mul_blocks(t, b));
        let y = tb.as_ref().map(|t| g.mul_blocks(t, a));
        let tangent = add_opt(g, x, y).map(Tangent::Mat);
        let second = match self.kind {
            JetKind::Value | JetKind::First => None,
            kind => {
                let per_dir = kind == JetKind::Second;
                let mut s = None;
                // a''·b + b''·a: per direction, or summed over them for a trace.
                for (part, by) in [(&self.second, b), (&other.second, a)] {
                    if let Some(p) = part {
                        let t = if per_dir {
                            g.mul_blocks(p, by)
                        } else {
                            g.mul(p, by)
                        };
                        s = add_opt(g, s, Some(t));
                    }
                }
                if let (Some(ta), Some(tb)) = (&ta, &tb) {
                    let c = g.mul(ta, tb);
                    let c = if per_dir {
                        c
                    } else {
                        g.sum_blocks(&c, self.directions.max(1))
                    };
                    let c = g.scale(&c, 2.0);
                    s = add_opt(g, s, Some(c));
                }
                s
            }
        };
        self.with_parts(value, tangent, second)
    }

    /// Multiplies by a matrix `c` (`n × k`) that does not depend on the input.
    pub fn mul_const(&self, g: &mut Graph, c: &Mat) -> Self {
        let value = g.mul(&self.value, c);
        let kind = self.kind;
        let tangent = self
            .tangent_mat(g)
            .map(|t| Tangent::Mat(g.mul_blocks(&t, c)));
        let second = self.second.as_ref().map(|s| {
            if kind == JetKind::Trace {
                g.mul(s, c)
            } else {
                g.mul_blocks(s, c)
            }
        });
        self.with_parts(value, tangent, second)
    }

    /// Multiplies every row by the `1 × k` row `r` (input-independent).
    pub fn mul_row(&self, g: &mut Graph, r: &Mat) -> Self {
        let value = g.mul_row(&self.value, r);
        self.map_parts(g, value, |g, m| g.mul_row(m, r))
    }

    /// Multiplies every entry by the `1 × 1` matrix `s` (input-independent).
    pub fn mul_scalar(&self, g: &mut Graph, s: &Mat) -> Self {
        let value = g.mul_scalar(&self.value, s);
        self.map_parts(g, value, |g, m| g.mul_scalar(m, s))
    }

    /// Adds a matrix `c` (`n × k`) that does not depend on the input.
    pub fn add_const(&self, g: &mut Graph, c: &Mat) -> Self {
        let value = g.add(&self.value, c);
        Self {
            value,
            ..self.clone()
        }
    }

    /// Adds the `1 × k` row `r` to every row of the value.
    pub fn add_row(&self, g: &mut Graph, r: &Mat) -> Self {
        let value = g.add_row(&self.value, r);
        Self {
            value,
            ..self.clone()
        }
    }

    /// Multiplies every component by the constant `c`.
    pub fn scale(&self, g: &mut Graph, c: f64) -> Self {
        let value = g.scale(&self.value, c);
        self.map_parts(g, value, |g, m| g.scale(m, c))
    }

    /// Adds the constant `c` to the value.
    pub fn add_scalar(&self, g: &mut Graph, c: f64) -> Self {
        let value = g.add_scalar(&self.value, c);
        Self {
            value,
            ..self.clone()
        }
    }

    /// Sums over columns of every component (`n × k → n × 1`).
    pub fn sum_cols(&self, g: &mut Graph) -> Self {
        let value = g.sum_cols(&self.value);
        self.map_parts(g, value, |g, m| g.sum_cols(m))
    }

    /// The columns `idx` of every component.
    pub fn select_cols(&self, g: &mut Graph, idx: &Arc<[usize]>) -> Self {
        let value = g.select_cols(&self.value, idx);
        self.map_parts(g, value, |g, m| g.select_cols(m, idx))
    }

    /// Every component's columns placed at `idx` of zeros `width` wide.
    pub fn scatter_cols(&self, g: &mut Graph, idx: &Arc<[usize]>, width: usize) -> Self {
        let value = g.scatter_cols(&self.value, idx, width);
        self.map_parts(g, value, |g, m| g.scatter_cols(m, idx, width))
    }

    /// Elementwise `exp`.
    pub fn exp(&self, g: &mut Graph) -> Self {
        let e = g.exp(&self.value);
        let slopes = Slopes {
            f1: Some(e.clone()),
            f2: (self.order() >= 2).then(|| e.clone()),
        };
        self.through(g, e, &slopes)
    }

    /// Elementwise natural logarithm.
    pub fn ln(&self, g: &mut Graph) -> Self {
        let f0 = g.ln(&self.value);
        if self.kind == JetKind::Value {
            return Self::value(f0);
        }
        let inv = g.recip(&self.value);
        let f2 = (self.order() >= 2).then(|| {
            let sq = g.square(&inv);
            g.neg(&sq)
        });
        self.through(g, f0, &Slopes { f1: Some(inv), f2 })
    }

    /// Elementwise square.
    pub fn square(&self, g: &mut Graph) -> Self {
        let f0 = g.square(&self.value);
        if self.kind == JetKind::Value {
            return Self::value(f0);
        }
        let f1 = g.scale(&self.value, 2.0);
        let f2 = (self.order() >= 2).then(|| {
            let (r, c) = self.value.shape();
            g.filled(r, c, 2.0)
        });
        self.through(g, f0, &Slopes { f1: Some(f1), f2 })
    }
}
