//! [`Graph`]: tape-tracked matrix ops with one shared tape.
//!
//! dfdx keeps a tape *inside* each tensor, and a value used twice must be
//! re-taped; any tape that does not reach the loss silently drops gradient
//! contributions. `Graph` removes that trap by construction: every op takes
//! plain (tape-less) matrices, runs the dfdx op on fresh empty-tape copies,
//! and immediately moves the result's tape into one *sink* tape owned by the
//! graph. dfdx orders backward ops by creation time when tapes merge, so the
//! sink, merged into the loss, replays every op exactly once.
//!
//! An inference graph (`Graph::inference`) runs the same ops and discards the
//! tapes, so evaluation code and training code are the same code.

use dfdx::prelude::*;

use crate::device::{Dev, Mat};

type Tape = OwnedTape<f64, Dev>;
type Tracked<S> = Tensor<S, f64, Dev, Tape>;

/// A computation graph: either records every op for one backward pass
/// (tracking) or only computes values (inference).
pub struct Graph {
    dev: Dev,
    sink: Option<Tape>,
}

impl Graph {
    /// A graph that records ops so [`Graph::backward`] can differentiate them.
    pub fn tracking(dev: &Dev) -> Self {
        Self {
            dev: dev.clone(),
            sink: Some(Tape::default()),
        }
    }

    /// A graph that only computes values (no tape, less memory).
    pub fn inference(dev: &Dev) -> Self {
        Self {
            dev: dev.clone(),
            sink: None,
        }
    }

    /// Whether this graph records ops for a backward pass.
    pub fn is_tracking(&self) -> bool {
        self.sink.is_some()
    }

    /// The device the graph computes on.
    pub fn dev(&self) -> &Dev {
        &self.dev
    }

    fn lift<S: Shape>(a: &Tensor<S, f64, Dev>) -> Tracked<S> {
        a.retaped::<Tape>()
    }

    fn keep<S: Shape>(&mut self, t: Tracked<S>) -> Tensor<S, f64, Dev> {
        let (value, tape) = t.split_tape();
        if let Some(sink) = self.sink.take() {
            self.sink = Some(sink.merge(tape));
        }
        value
    }

    /// A constant (no gradient flows into it) from row-major host data.
    pub fn constant(&self, data: Vec<f64>, rows: usize, cols: usize) -> Mat {
        crate::device::to_mat(&self.dev, data, rows, cols)
    }

    /// A constant matrix filled with `value`.
    pub fn filled(&self, rows: usize, cols: usize, value: f64) -> Mat {
        self.dev.ones_like(&(rows, cols)) * value
    }

    /// Matrix product `a · b`.
    pub fn matmul(&mut self, a: &Mat, b: &Mat) -> Mat {
        let t = Self::lift(a).matmul(b.clone());
        self.keep(t)
    }

    /// Elementwise `a + b` (same shapes).
    pub fn add(&mut self, a: &Mat, b: &Mat) -> Mat {
        let t = Self::lift(a) + b.clone();
        self.keep(t)
    }

    /// Elementwise `a − b` (same shapes).
    pub fn sub(&mut self, a: &Mat, b: &Mat) -> Mat {
        let t = Self::lift(a) - b.clone();
        self.keep(t)
    }

    /// Elementwise `a ∘ b` (same shapes).
    pub fn mul(&mut self, a: &Mat, b: &Mat) -> Mat {
        let t = Self::lift(a) * b.clone();
        self.keep(t)
    }

    /// Elementwise `a / b` (same shapes).
    pub fn div(&mut self, a: &Mat, b: &Mat) -> Mat {
        let t = Self::lift(a) / b.clone();
        self.keep(t)
    }

    /// `a · c` for a scalar constant `c`.
    pub fn scale(&mut self, a: &Mat, c: f64) -> Mat {
        let t = Self::lift(a) * c;
        self.keep(t)
    }

    /// `a + c` for a scalar constant `c`.
    pub fn add_scalar(&mut self, a: &Mat, c: f64) -> Mat {
        let t = Self::lift(a) + c;
        self.keep(t)
    }

    /// Adds the `1 × k` row `row` to every row of the `n × k` matrix `a`.
    pub fn add_row(&mut self, a: &Mat, row: &Mat) -> Mat {
        let (n, k) = *a.shape();
        assert_eq!(*row.shape(), (1, k), "add_row: row must be 1 × {k}");
        let r = Self::lift(row)
            .reshape_like(&(k,))
            .broadcast_like::<_, Axis<0>>(&(n, k));
        let r = self.keep(r);
        self.add(a, &r)
    }

    /// Multiplies every row `i` of the `n × k` matrix `a` by `col[i]` (`col` is `n × 1`).
    pub fn mul_col(&mut self, a: &Mat, col: &Mat) -> Mat {
        let (n, k) = *a.shape();
        assert_eq!(*col.shape(), (n, 1), "mul_col: column must be {n} × 1");
        let c = Self::lift(col)
            .reshape_like(&(n,))
            .broadcast_like::<_, Axis<1>>(&(n, k));
        let c = self.keep(c);
        self.mul(a, &c)
    }

    /// Repeats the `1 × k` row `row` into an `n × k` matrix.
    pub fn repeat_row(&mut self, row: &Mat, n: usize) -> Mat {
        let k = row.shape().1;
        let r = Self::lift(row)
            .reshape_like(&(k,))
            .broadcast_like::<_, Axis<0>>(&(n, k));
        self.keep(r)
    }

    /// Repeats the `n × 1` column `col` into an `n × k` matrix.
    pub fn repeat_col(&mut self, col: &Mat, k: usize) -> Mat {
        let n = col.shape().0;
        assert_eq!(col.shape().1, 1, "repeat_col: needs an n × 1 column");
        let c = Self::lift(col)
            .reshape_like(&(n,))
            .broadcast_like::<_, Axis<1>>(&(n, k));
        self.keep(c)
    }

    /// Fills an `n × k` matrix with the value of the `1 × 1` matrix `s`.
    pub fn repeat_scalar(&mut self, s: &Mat, n: usize, k: usize) -> Mat {
        assert_eq!(*s.shape(), (1, 1), "repeat_scalar: needs a 1 × 1 matrix");
        let c = Self::lift(s)
            .reshape_like(&())
            .broadcast_like::<_, Axes2<0, 1>>(&(n, k));
        self.keep(c)
    }

    /// `−a`.
    pub fn neg(&mut self, a: &Mat) -> Mat {
        let t = -Self::lift(a);
        self.keep(t)
    }

    /// Elementwise `tanh`.
    pub fn tanh(&mut self, a: &Mat) -> Mat {
        let t = Self::lift(a).tanh();
        self.keep(t)
    }

    /// Elementwise logistic sigmoid.
    pub fn sigmoid(&mut self, a: &Mat) -> Mat {
        let t = Self::lift(a).sigmoid();
        self.keep(t)
    }

    /// Elementwise `exp`.
    pub fn exp(&mut self, a: &Mat) -> Mat {
        let t = Self::lift(a).exp();
        self.keep(t)
    }

    /// Elementwise natural logarithm.
    pub fn ln(&mut self, a: &Mat) -> Mat {
        let t = Self::lift(a).ln();
        self.keep(t)
    }

    /// Elementwise square.
    pub fn square(&mut self, a: &Mat) -> Mat {
        let t = Self::lift(a).square();
        self.keep(t)
    }

    /// Elementwise absolute value.
    pub fn abs(&mut self, a: &Mat) -> Mat {
        let t = Self::lift(a).abs();
        self.keep(t)
    }

    /// Elementwise `max(a, 0)`.
    pub fn relu(&mut self, a: &Mat) -> Mat {
        let t = Self::lift(a).relu();
        self.keep(t)
    }

    /// Elementwise square root.
    pub fn sqrt(&mut self, a: &Mat) -> Mat {
        let t = Self::lift(a).sqrt();
        self.keep(t)
    }

    /// Numerically stable softplus `ln(1 + eᵃ) = relu(a) + ln(1 + e^{−|a|})`
    /// (dfdx has no softplus op).
    pub fn softplus(&mut self, a: &Mat) -> Mat {
        let r = self.relu(a);
        let m = self.abs(a);
        let m = self.neg(&m);
        let e = self.exp(&m);
        let e = self.add_scalar(&e, 1.0);
        let l = self.ln(&e);
        self.add(&r, &l)
    }

    /// The constant 0/1 mask `[a > 0]` (no gradient flows through it).
    pub fn positive_mask(&self, a: &Mat) -> Mat {
        let ones: Mat = self.dev.ones_like(a);
        let zeros: Mat = self.dev.zeros_like(a);
        a.gt(0.0).choose(ones, zeros)
    }

    /// Transpose.
    pub fn transpose(&mut self, a: &Mat) -> Mat {
        let t = Self::lift(a).permute::<(usize, usize), Axes2<1, 0>>();
        let t = self.keep(t);
        // Make the result contiguous so later ops see ordinary strides.
        let (r, c) = *t.shape();
        let t2 = Self::lift(&t).reshape_like(&(r * c,)).reshape_like(&(r, c));
        self.keep(t2)
    }

    /// Sums over columns: `n × k → n × 1`.
    pub fn sum_cols(&mut self, a: &Mat) -> Mat {
        let n = a.shape().0;
        let t = Self::lift(a)
            .sum::<(usize,), Axis<1>>()
            .reshape_like(&(n, 1));
        self.keep(t)
    }

    /// Sums over rows: `n × k → 1 × k`.
    pub fn sum_rows(&mut self, a: &Mat) -> Mat {
        let k = a.shape().1;
        let t = Self::lift(a)
            .sum::<(usize,), Axis<0>>()
            .reshape_like(&(1, k));
        self.keep(t)
    }

    /// Sum of all entries as a `1 × 1` matrix.
    pub fn sum_all(&mut self, a: &Mat) -> Mat {
        let t = Self::lift(a).sum::<(), _>().reshape_like(&(1, 1));
        self.keep(t)
    }

    /// Mean of all entries as a `1 × 1` matrix.
    pub fn mean_all(&mut self, a: &Mat) -> Mat {
        let (r, c) = *a.shape();
        let s = self.sum_all(a);
        self.scale(&s, 1.0 / (r * c) as f64)
    }

    /// Reverse pass from the `1 × 1` matrix `loss`: returns ∂loss/∂p for each
    /// of `params`, in order (zeros for a parameter the loss does not use).
    ///
    /// # Panics
    /// If the graph is an inference graph or `loss` is not `1 × 1`.
    pub fn backward(mut self, loss: &Mat, params: &[&Mat]) -> Vec<Mat> {
        assert_eq!(*loss.shape(), (1, 1), "backward: the loss must be 1 × 1");
        let sink = self
            .sink
            .take()
            .expect("backward called on an inference graph");
        let mut grads = Gradients::leaky();
        for p in params {
            grads
                .try_alloc_for(*p)
                .expect("allocating a parameter gradient");
        }
        let zero: Mat = self.dev.zeros_like(&(1, 1));
        let (seed, pre) = zero.traced(grads).split_tape();
        drop(seed);
        let l = Self::lift(loss).sum::<(), _>();
        let (l, tape) = l.split_tape();
        let l = l.put_tape(tape.merge(sink).merge(pre));
        let grads = l.backward();
        params.iter().map(|p| grads.get(*p)).collect()
    }
}
