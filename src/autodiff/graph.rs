//! [`Graph`]: our own reverse-mode tape over [`Mat`]s.
//!
//! Every op of a graph goes through one place ([`Graph::apply`]): it computes
//! the op's value with the untracked kernels of [`crate::compute`] and, in a
//! tracking graph, records the op, its inputs and its outputs on the tape
//! when one of the inputs depends on a tracked leaf (a parameter). A
//! backward pass walks the tape in reverse, asks each op (`Op::backward`)
//! for the gradients of its inputs from those of its outputs, and returns
//! the gradient of every leaf.
//!
//! Second derivatives never need a gradient of a gradient: jets
//! ([`super::jet`]) compute them forward with ordinary ops, which the tape
//! differentiates once more in θ.
//!
//! Exact score matching sums over the `D` basis directions in chunks
//! ([`crate::objective::exact_sm_loss`]); a graph can *memoize* the ops of
//! one pass (the value stream, which does not depend on the directions) and
//! *child* graphs of it reuse those values instead of recomputing them,
//! treating them as leaves whose gradients are handed back to the parent
//! with [`Graph::detached_sum`].

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::rc::Rc;
use std::sync::Arc;

use crate::compute::{self, Activation, Bcast, Binary, Bits, SecondMode, Unary};
use crate::device::{Device, Mat};

/// A hasher for the unique `u64` ids of matrices (already well spread).
#[derive(Default)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    fn write_u64(&mut self, x: u64) {
        self.0 = x.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type IdMap<V> = HashMap<u64, V, BuildHasherDefault<IdHasher>>;
type IdSet = HashSet<u64, BuildHasherDefault<IdHasher>>;

/// A primitive op of the graph: what [`Graph::apply`] computes and
/// differentiates.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Op {
    /// `op(a)·op(b)`.
    MatMul {
        /// Transpose `a`.
        ta: bool,
        /// Transpose `b`.
        tb: bool,
    },
    /// `x·W + b`.
    Affine,
    /// Elementwise binary op with broadcasting.
    Zip(Binary, Bcast),
    /// Elementwise unary op.
    Map(Unary),
    /// Row sums.
    SumCols,
    /// Column sums.
    SumRows,
    /// Sum of all entries.
    SumAll,
    /// Sum of stacked blocks.
    SumBlocks(usize),
    /// Broadcast of a row, column or scalar to `rows × cols`.
    Broadcast(usize, usize),
    /// `m` stacked copies.
    TileBlocks(usize),
    /// Transpose.
    Transpose,
    /// The given columns.
    SelectCols(Arc<[usize]>),
    /// Columns placed into a zero matrix of the given width.
    ScatterCols(Arc<[usize]>, usize),
    /// Rows `start..start + rows`.
    RowBlock(usize, usize),
    /// Vertical concatenation.
    VStack,
    /// Same values, new shape.
    Reshape(usize, usize),
    /// `f, f', …, f⁽ᵘᵖᵗᵒ⁾` of an activation (one output each).
    ActDerivs(Activation, usize),
    /// The jet rule through an elementwise function: inputs `f1, [f2], t, [s]`.
    JetTangent {
        /// How the second order is carried.
        mode: SecondMode,
        /// Whether the input has a second-order part.
        has_s: bool,
    },
    /// Basis-direction tangents of a linear layer: `(start, count, rows)`.
    BasisRows(usize, usize, usize),
    /// Diagonal entries along basis directions: `(start, count)`.
    BlockDiagonalSum(usize, usize),
    /// `S⁻¹B` for `S` the symmetric part of the first input (a ridge
    /// system; see [`compute::solve_spd`]).
    SolveSpd,
    /// A sum computed elsewhere (in child graphs) whose gradients with
    /// respect to the inputs were computed there.
    Detached(u64),
}

impl Op {
    fn memoizable(&self) -> bool {
        !matches!(self, Op::Detached(_))
    }

    /// Computes the op's outputs.
    fn forward(&self, inputs: &[&Mat]) -> Vec<Mat> {
        let a = inputs[0];
        let one = |m: Mat| vec![m];
        match self {
            Op::MatMul { ta, tb } => one(compute::matmul(a, *ta, inputs[1], *tb)),
            Op::Affine => one(compute::affine(a, inputs[1], inputs[2])),
            Op::Zip(op, bc) => one(compute::zip(a, inputs[1], *op, *bc)),
            Op::Map(u) => one(compute::map(a, *u)),
            Op::SumCols => one(compute::sum_cols(a)),
            Op::SumRows => one(compute::sum_rows(a)),
            Op::SumAll => one(compute::sum_all(a)),
            Op::SumBlocks(m) => one(compute::sum_blocks(a, *m)),
            Op::Broadcast(r, c) => one(compute::broadcast(a, *r, *c)),
            Op::TileBlocks(m) => one(compute::tile_blocks(a, *m)),
            Op::Transpose => one(compute::transpose(a)),
            Op::SelectCols(idx) => one(compute::select_cols(a, idx)),
            Op::ScatterCols(idx, w) => one(compute::scatter_cols(a, idx, *w)),
            Op::RowBlock(s, r) => one(compute::row_block(a, *s, *r)),
            Op::VStack => one(compute::vstack(inputs)),
            Op::Reshape(r, c) => one(a.reshaped(*r, *c)),
            Op::ActDerivs(act, upto) => compute::act_derivs(a, *act, *upto),
            Op::JetTangent { mode, has_s } => {
                let (f1, f2, t, s) = jet_inputs(*mode, *has_s, inputs);
                let (t2, s2) = compute::jet_tangent(*mode, f1, f2, t, s);
                let mut o = vec![t2];
                o.extend(s2);
                o
            }
            Op::BasisRows(s, c, n) => one(compute::basis_rows(a, *s, *c, *n)),
            Op::BlockDiagonalSum(s, c) => one(compute::block_diagonal_sum(a, *s, *c)),
            Op::SolveSpd => one(compute::solve_spd(a, inputs[1])),
            Op::Detached(_) => unreachable!("detached sums are recorded, not computed"),
        }
    }

    /// Gradients of the inputs (`None`: no contribution or not needed) from
    /// the gradients of the outputs.
    fn backward(
        &self,
        inputs: &[Mat],
        outputs: &[Mat],
        grads: &[Option<Mat>],
        needs: &[bool],
        pending: &[Mat],
    ) -> Vec<Option<Mat>> {
        let g = || grads[0].as_ref().expect("an output gradient");
        let a = &inputs[0];
        let scale = |m: &Mat, c: f64| compute::map(m, Unary::Scale(Bits::new(c)));
        let mul = |x: &Mat, y: &Mat| compute::zip(x, y, Binary::Mul, Bcast::Same);
        match self {
            Op::MatMul { ta, tb } => {
                let b = &inputs[1];
                let da = needs[0].then(|| {
                    if *ta {
                        compute::matmul(b, *tb, g(), true)
                    } else {
                        compute::matmul(g(), false, b, !tb)
                    }
                });
                let db = needs[1].then(|| {
                    if *tb {
                        compute::matmul(g(), true, a, *ta)
                    } else {
                        compute::matmul(a, !ta, g(), false)
                    }
                });
                vec![da, db]
            }
            Op::Affine => {
                let (w, _) = (&inputs[1], &inputs[2]);
                vec![
                    needs[0].then(|| compute::matmul(g(), false, w, true)),
                    needs[1].then(|| compute::matmul(a, true, g(), false)),
                    needs[2].then(|| compute::sum_rows(g())),
                ]
            }
            Op::Zip(op, bc) => {
                let b = &inputs[1];
                let reduce = |m: Mat| -> Mat {
                    match bc {
                        Bcast::Same => m,
                        Bcast::Row => compute::sum_rows(&m),
                        Bcast::Col => compute::sum_cols(&m),
                        Bcast::Scalar => compute::sum_all(&m),
                        Bcast::Blocks => compute::sum_blocks(&m, m.rows() / b.rows()),
                    }
                };
                match op {
                    Binary::Add => vec![
                        needs[0].then(|| g().clone()),
                        needs[1].then(|| reduce(g().clone())),
                    ],
                    Binary::Sub => vec![
                        needs[0].then(|| g().clone()),
                        needs[1].then(|| compute::map(&reduce(g().clone()), Unary::Neg)),
                    ],
                    Binary::Mul => vec![
                        needs[0].then(|| compute::zip(g(), b, Binary::Mul, *bc)),
                        needs[1].then(|| reduce(mul(g(), a))),
                    ],
                    Binary::Div => vec![
                        needs[0].then(|| compute::zip(g(), b, Binary::Div, *bc)),
                        needs[1].then(|| {
                            // d(a/b)/db = −(a/b)/b: reduce(−g∘out) / b.
                            let go = compute::map(&mul(g(), &outputs[0]), Unary::Neg);
                            compute::zip(&reduce(go), b, Binary::Div, Bcast::Same)
                        }),
                    ],
                }
            }
            Op::Map(u) => {
                let o = &outputs[0];
                let d = match u {
                    Unary::Neg => compute::map(g(), Unary::Neg),
                    Unary::Scale(c) => scale(g(), c.get()),
                    Unary::AddScalar(_) => g().clone(),
                    Unary::Exp => mul(g(), o),
                    Unary::Ln => compute::zip(g(), a, Binary::Div, Bcast::Same),
                    Unary::Tanh => mul(g(), &compute::map(a, Unary::Act(Activation::Tanh, 1))),
                    Unary::Sigmoid => {
                        mul(g(), &compute::map(a, Unary::Act(Activation::Sigmoid, 1)))
                    }
                    Unary::Softplus => {
                        mul(g(), &compute::map(a, Unary::Act(Activation::Softplus, 1)))
                    }
                    Unary::Square => mul(g(), &scale(a, 2.0)),
                    Unary::Abs => mul(g(), &compute::map(a, Unary::Sign)),
                    Unary::Relu => mul(g(), &compute::map(a, Unary::PositiveMask)),
                    Unary::Sqrt => compute::zip(g(), &scale(o, 2.0), Binary::Div, Bcast::Same),
                    Unary::Recip => {
                        compute::map(&mul(g(), &compute::map(o, Unary::Square)), Unary::Neg)
                    }
                    Unary::PositiveMask | Unary::Sign => return vec![None],
                    Unary::Act(act, k) => {
                        assert!(
                            *k < 3,
                            "the derivative of f''' of an activation is not available"
                        );
                        mul(g(), &compute::map(a, Unary::Act(*act, k + 1)))
                    }
                };
                vec![Some(d)]
            }
            Op::SumCols | Op::SumRows | Op::SumAll => {
                let (r, c) = a.shape();
                vec![Some(compute::broadcast(g(), r, c))]
            }
            Op::SumBlocks(m) => vec![Some(compute::tile_blocks(g(), *m))],
            Op::Broadcast(_, _) => {
                let (r, c) = a.shape();
                let d = match (r, c) {
                    (1, 1) => compute::sum_all(g()),
                    (1, _) => compute::sum_rows(g()),
                    (_, 1) => compute::sum_cols(g()),
                    _ => g().clone(),
                };
                vec![Some(d)]
            }
            Op::TileBlocks(m) => vec![Some(compute::sum_blocks(g(), *m))],
            Op::Transpose => vec![Some(compute::transpose(g()))],
            Op::SelectCols(idx) => vec![Some(compute::scatter_cols(g(), idx, a.cols()))],
            Op::ScatterCols(idx, _) => vec![Some(compute::select_cols(g(), idx))],
            Op::RowBlock(start, rows) => {
                let (r, c) = a.shape();
                let dev_zero = |n: usize| compute::zeros_as(g(), n, c);
                let mut parts = Vec::new();
                if *start > 0 {
                    parts.push(dev_zero(*start));
                }
                parts.push(g().clone());
                if start + rows < r {
                    parts.push(dev_zero(r - start - rows));
                }
                let refs: Vec<&Mat> = parts.iter().collect();
                vec![Some(compute::vstack(&refs))]
            }
            Op::VStack => {
                let mut off = 0;
                inputs
                    .iter()
                    .zip(needs)
                    .map(|(m, &need)| {
                        let r = m.rows();
                        let d = need.then(|| compute::row_block(g(), off, r));
                        off += r;
                        d
                    })
                    .collect()
            }
            Op::Reshape(_, _) => {
                let (r, c) = a.shape();
                vec![Some(g().reshaped(r, c))]
            }
            Op::ActDerivs(act, _) => vec![Some(compute::act_derivs_backward(a, *act, grads))],
            Op::JetTangent { mode, has_s } => {
                let refs: Vec<&Mat> = inputs.iter().collect();
                let (f1, f2, t, s) = jet_inputs(*mode, *has_s, &refs);
                let gs = if *mode == SecondMode::None {
                    None
                } else {
                    grads.get(1).and_then(|g| g.as_ref())
                };
                let (dt, ds, df1, df2) =
                    compute::jet_tangent_backward(*mode, f1, f2, t, s, grads[0].as_ref(), gs);
                let mut out = vec![Some(df1)];
                if *mode != SecondMode::None {
                    out.push(df2);
                }
                out.push(Some(dt));
                if *has_s {
                    out.push(ds);
                }
                out
            }
            Op::BasisRows(s, c, _) => {
                vec![Some(compute::basis_rows_backward(g(), *s, *c, a.rows()))]
            }
            Op::BlockDiagonalSum(s, c) => vec![Some(compute::block_diagonal_sum_backward(
                g(),
                *s,
                *c,
                a.cols(),
            ))],
            Op::SolveSpd => {
                // X = S⁻¹B: dB = S⁻¹ dX, dS = −dB Xᵀ, dA = (dS + dSᵀ)/2.
                let db = compute::solve_spd(a, g());
                let da = needs[0].then(|| {
                    let ds = compute::matmul(&db, false, &outputs[0], true);
                    let sym = compute::zip(&ds, &compute::transpose(&ds), Binary::Add, Bcast::Same);
                    scale(&sym, -0.5)
                });
                vec![da, needs[1].then_some(db)]
            }
            Op::Detached(_) => pending
                .iter()
                .zip(needs)
                .map(|(p, &need)| need.then(|| compute::zip(p, g(), Binary::Mul, Bcast::Scalar)))
                .collect(),
        }
    }
}

fn jet_inputs<'a>(
    mode: SecondMode,
    has_s: bool,
    inputs: &[&'a Mat],
) -> (&'a Mat, Option<&'a Mat>, &'a Mat, Option<&'a Mat>) {
    if mode == SecondMode::None {
        (inputs[0], None, inputs[1], None)
    } else {
        (
            inputs[0],
            Some(inputs[1]),
            inputs[2],
            has_s.then(|| inputs[3]),
        )
    }
}

struct Entry {
    op: Op,
    inputs: Vec<Mat>,
    needs: Vec<bool>,
    outputs: Vec<Mat>,
    pending: Vec<Mat>,
}

#[derive(Default)]
struct Tape {
    entries: Vec<Entry>,
    tracked: IdSet,
    leaves: Vec<Mat>,
}

type MemoKey = (Op, Vec<u64>);

/// Values shared between a parent graph and its children (see the module
/// documentation).
#[derive(Default)]
pub struct Memo {
    values: HashMap<MemoKey, Vec<Mat>>,
    filled: HashMap<(usize, usize, u64), Mat>,
}

enum MemoMode {
    Off,
    Record(Rc<std::cell::RefCell<Memo>>),
    Lookup(Rc<std::cell::RefCell<Memo>>),
}

/// Gradients of a child graph's loss with respect to its leaves.
pub type LeafGrads = Vec<(Mat, Mat)>;

/// A computation graph: either records ops for one backward pass
/// (tracking) or only computes values (inference).
pub struct Graph {
    dev: Device,
    tape: Option<Tape>,
    memo: MemoMode,
    next_detached: u64,
}

impl Graph {
    /// A graph that records ops depending on `params` so that
    /// [`Graph::backward`] can differentiate them.
    pub fn tracking(dev: &Device, params: &[&Mat]) -> Self {
        let mut tape = Tape::default();
        for p in params {
            if tape.tracked.insert(p.id()) {
                tape.leaves.push((*p).clone());
            }
        }
        Self {
            dev: dev.clone(),
            tape: Some(tape),
            memo: MemoMode::Off,
            next_detached: 0,
        }
    }

    /// A graph that only computes values (no tape, less memory).
    pub fn inference(dev: &Device) -> Self {
        Self {
            dev: dev.clone(),
            tape: None,
            memo: MemoMode::Off,
            next_detached: 0,
        }
    }

    /// Whether this graph records ops for a backward pass.
    pub fn is_tracking(&self) -> bool {
        self.tape.is_some()
    }

    /// The device the graph computes on.
    pub fn dev(&self) -> &Device {
        &self.dev
    }

    /// Starts memoizing every op (see the module documentation); returns the
    /// memo for [`Graph::child`].
    pub fn start_memo(&mut self) -> Rc<std::cell::RefCell<Memo>> {
        let memo = Rc::new(std::cell::RefCell::new(Memo::default()));
        self.memo = MemoMode::Record(memo.clone());
        memo
    }

    /// Stops memoizing.
    pub fn stop_memo(&mut self) {
        self.memo = MemoMode::Off;
    }

    /// The matrices of the memo that this graph tracks (the leaves a child
    /// graph hands gradients back for), plus this graph's own leaves.
    pub fn child_leaves(&self, memo: &Rc<std::cell::RefCell<Memo>>) -> Vec<Mat> {
        let Some(tape) = &self.tape else {
            return Vec::new();
        };
        let mut out: Vec<Mat> = tape.leaves.clone();
        let mut seen: IdSet = out.iter().map(|m| m.id()).collect();
        for outs in memo.borrow().values.values() {
            for m in outs {
                if tape.tracked.contains(&m.id()) && seen.insert(m.id()) {
                    out.push(m.clone());
                }
            }
        }
        out
    }

    /// A graph that reuses the memoized values of a parent (see
    /// [`Graph::start_memo`]); it tracks `leaves` (from
    /// [`Graph::child_leaves`]) when the parent tracks.
    pub fn child(parent: &Graph, memo: &Rc<std::cell::RefCell<Memo>>, leaves: &[Mat]) -> Self {
        let mut g = if parent.is_tracking() {
            let refs: Vec<&Mat> = leaves.iter().collect();
            Graph::tracking(&parent.dev, &refs)
        } else {
            Graph::inference(&parent.dev)
        };
        g.memo = MemoMode::Lookup(memo.clone());
        g
    }

    /// Applies `op` to `inputs`, recording it when tracking; returns its outputs.
    pub fn apply(&mut self, op: Op, inputs: &[&Mat]) -> Vec<Mat> {
        let key = match &self.memo {
            MemoMode::Off => None,
            _ if !op.memoizable() => None,
            MemoMode::Record(_) | MemoMode::Lookup(_) => Some((
                op.clone(),
                inputs.iter().map(|m| m.id()).collect::<Vec<_>>(),
            )),
        };
        if let (MemoMode::Lookup(memo), Some(k)) = (&self.memo, &key) {
            if let Some(v) = memo.borrow().values.get(k) {
                return v.clone();
            }
        }
        let outputs = op.forward(inputs);
        if let Some(tape) = &mut self.tape {
            let needs: Vec<bool> = inputs
                .iter()
                .map(|m| tape.tracked.contains(&m.id()))
                .collect();
            if needs.iter().any(|&n| n) {
                for o in &outputs {
                    tape.tracked.insert(o.id());
                }
                tape.entries.push(Entry {
                    op: op.clone(),
                    inputs: inputs.iter().map(|m| (*m).clone()).collect(),
                    needs,
                    outputs: outputs.clone(),
                    pending: Vec::new(),
                });
            }
        }
        if let (MemoMode::Record(memo), Some(k)) = (&self.memo, key) {
            memo.borrow_mut().values.insert(k, outputs.clone());
        }
        outputs
    }

    fn apply1(&mut self, op: Op, inputs: &[&Mat]) -> Mat {
        self.apply(op, inputs).pop().expect("one output")
    }

    /// Records a value computed elsewhere: `value` (`1 × 1`) whose gradient
    /// with respect to each `leaves[i].0` is `leaves[i].1` (per unit of the
    /// returned value's gradient).
    pub fn detached_sum(&mut self, value: f64, leaves: LeafGrads) -> Mat {
        let out = self.dev.filled(1, 1, value);
        if let Some(tape) = &mut self.tape {
            let needs: Vec<bool> = leaves
                .iter()
                .map(|(m, _)| tape.tracked.contains(&m.id()))
                .collect();
            if needs.iter().any(|&n| n) {
                tape.tracked.insert(out.id());
                self.next_detached += 1;
                let (inputs, pending): (Vec<Mat>, Vec<Mat>) = leaves.into_iter().unzip();
                tape.entries.push(Entry {
                    op: Op::Detached(self.next_detached),
                    inputs,
                    needs,
                    outputs: vec![out.clone()],
                    pending,
                });
            }
        }
        out
    }

    /// A constant (no gradient flows into it) from row-major host data.
    pub fn constant(&self, data: Vec<f64>, rows: usize, cols: usize) -> Mat {
        self.dev.mat(&data, rows, cols)
    }

    /// A constant matrix filled with `value` (shared with a memo's children).
    pub fn filled(&self, rows: usize, cols: usize, value: f64) -> Mat {
        let key = (rows, cols, value.to_bits());
        match &self.memo {
            MemoMode::Off => self.dev.filled(rows, cols, value),
            MemoMode::Record(m) | MemoMode::Lookup(m) => {
                if let Some(v) = m.borrow().filled.get(&key) {
                    return v.clone();
                }
                let v = self.dev.filled(rows, cols, value);
                if let MemoMode::Record(m) = &self.memo {
                    m.borrow_mut().filled.insert(key, v.clone());
                }
                v
            }
        }
    }

    /// `S⁻¹b` for `S = (a + aᵀ)/2` positive definite (`a` is `n × n`, `b`
    /// is `n × k`), differentiable in both; NaN when `S` is not positive
    /// definite.
    pub fn solve_spd(&mut self, a: &Mat, b: &Mat) -> Mat {
        self.apply1(Op::SolveSpd, &[a, b])
    }

    /// Matrix product `a · b`.
    pub fn matmul(&mut self, a: &Mat, b: &Mat) -> Mat {
        self.apply1(
            Op::MatMul {
                ta: false,
                tb: false,
            },
            &[a, b],
        )
    }

    /// `a · bᵀ`.
    pub fn matmul_t(&mut self, a: &Mat, b: &Mat) -> Mat {
        self.apply1(
            Op::MatMul {
                ta: false,
                tb: true,
            },
            &[a, b],
        )
    }

    /// `aᵀ · b`.
    pub fn t_matmul(&mut self, a: &Mat, b: &Mat) -> Mat {
        self.apply1(
            Op::MatMul {
                ta: true,
                tb: false,
            },
            &[a, b],
        )
    }

    /// `x·W + b` with `b` a `1 × out` row.
    pub fn affine(&mut self, x: &Mat, w: &Mat, b: &Mat) -> Mat {
        self.apply1(Op::Affine, &[x, w, b])
    }

    fn zip(&mut self, a: &Mat, b: &Mat, op: Binary, bc: Bcast) -> Mat {
        self.apply1(Op::Zip(op, bc), &[a, b])
    }

    fn map(&mut self, a: &Mat, u: Unary) -> Mat {
        self.apply1(Op::Map(u), &[a])
    }

    /// Elementwise `a + b` (same shapes).
    pub fn add(&mut self, a: &Mat, b: &Mat) -> Mat {
        self.zip(a, b, Binary::Add, Bcast::Same)
    }

    /// Elementwise `a − b` (same shapes).
    pub fn sub(&mut self, a: &Mat, b: &Mat) -> Mat {
        self.zip(a, b, Binary::Sub, Bcast::Same)
    }

    /// Elementwise `a ∘ b` (same shapes).
    pub fn mul(&mut self, a: &Mat, b: &Mat) -> Mat {
        self.zip(a, b, Binary::Mul, Bcast::Same)
    }

    /// Elementwise `a / b` (same shapes).
    pub fn div(&mut self, a: &Mat, b: &Mat) -> Mat {
        self.zip(a, b, Binary::Div, Bcast::Same)
    }

    /// `a` with `b` broadcast as `bc` says, combined by `op`.
    pub fn broadcast_op(&mut self, a: &Mat, b: &Mat, op: Binary, bc: Bcast) -> Mat {
        self.zip(a, b, op, bc)
    }

    /// `a · c` for a scalar constant `c`.
    pub fn scale(&mut self, a: &Mat, c: f64) -> Mat {
        self.map(a, Unary::Scale(Bits::new(c)))
    }

    /// `a + c` for a scalar constant `c`.
    pub fn add_scalar(&mut self, a: &Mat, c: f64) -> Mat {
        self.map(a, Unary::AddScalar(Bits::new(c)))
    }

    /// Adds the `1 × k` row `row` to every row of the `n × k` matrix `a`.
    pub fn add_row(&mut self, a: &Mat, row: &Mat) -> Mat {
        self.zip(a, row, Binary::Add, Bcast::Row)
    }

    /// Multiplies every row of `a` elementwise by the `1 × k` row `row`.
    pub fn mul_row(&mut self, a: &Mat, row: &Mat) -> Mat {
        self.zip(a, row, Binary::Mul, Bcast::Row)
    }

    /// Multiplies every row `i` of the `n × k` matrix `a` by `col[i]` (`col` is `n × 1`).
    pub fn mul_col(&mut self, a: &Mat, col: &Mat) -> Mat {
        self.zip(a, col, Binary::Mul, Bcast::Col)
    }

    /// Multiplies every entry of `a` by the value of the `1 × 1` matrix `s`.
    pub fn mul_scalar(&mut self, a: &Mat, s: &Mat) -> Mat {
        self.zip(a, s, Binary::Mul, Bcast::Scalar)
    }

    /// Adds the value of the `1 × 1` matrix `s` to every entry of `a`.
    pub fn add_scalar_mat(&mut self, a: &Mat, s: &Mat) -> Mat {
        self.zip(a, s, Binary::Add, Bcast::Scalar)
    }

    /// `a ∘ b` where `a` is `m` stacked blocks of `b`'s shape (`m·n × k`
    /// against `n × k`): each block times `b`.
    pub fn mul_blocks(&mut self, a: &Mat, b: &Mat) -> Mat {
        self.zip(a, b, Binary::Mul, Bcast::Blocks)
    }

    /// `a + b` where `a` is `m` stacked blocks of `b`'s shape.
    pub fn add_blocks(&mut self, a: &Mat, b: &Mat) -> Mat {
        self.zip(a, b, Binary::Add, Bcast::Blocks)
    }

    /// Repeats the `1 × k` row `row` into an `n × k` matrix.
    pub fn repeat_row(&mut self, row: &Mat, n: usize) -> Mat {
        let k = row.cols();
        self.apply1(Op::Broadcast(n, k), &[row])
    }

    /// Repeats the `n × 1` column `col` into an `n × k` matrix.
    pub fn repeat_col(&mut self, col: &Mat, k: usize) -> Mat {
        let n = col.rows();
        self.apply1(Op::Broadcast(n, k), &[col])
    }

    /// Fills an `n × k` matrix with the value of the `1 × 1` matrix `s`.
    pub fn repeat_scalar(&mut self, s: &Mat, n: usize, k: usize) -> Mat {
        self.apply1(Op::Broadcast(n, k), &[s])
    }

    /// `m` copies of `a` stacked vertically (copy-major: copy `j` is rows
    /// `j·n … j·n + n − 1`).
    pub fn tile_blocks(&mut self, a: &Mat, m: usize) -> Mat {
        self.apply1(Op::TileBlocks(m), &[a])
    }

    /// `−a`.
    pub fn neg(&mut self, a: &Mat) -> Mat {
        self.map(a, Unary::Neg)
    }

    /// Elementwise `tanh`.
    pub fn tanh(&mut self, a: &Mat) -> Mat {
        self.map(a, Unary::Tanh)
    }

    /// Elementwise logistic sigmoid.
    pub fn sigmoid(&mut self, a: &Mat) -> Mat {
        self.map(a, Unary::Sigmoid)
    }

    /// Elementwise `exp`.
    pub fn exp(&mut self, a: &Mat) -> Mat {
        self.map(a, Unary::Exp)
    }

    /// Elementwise natural logarithm.
    pub fn ln(&mut self, a: &Mat) -> Mat {
        self.map(a, Unary::Ln)
    }

    /// Elementwise square.
    pub fn square(&mut self, a: &Mat) -> Mat {
        self.map(a, Unary::Square)
    }

    /// Elementwise absolute value.
    pub fn abs(&mut self, a: &Mat) -> Mat {
        self.map(a, Unary::Abs)
    }

    /// Elementwise `max(a, 0)`.
    pub fn relu(&mut self, a: &Mat) -> Mat {
        self.map(a, Unary::Relu)
    }

    /// Elementwise square root.
    pub fn sqrt(&mut self, a: &Mat) -> Mat {
        self.map(a, Unary::Sqrt)
    }

    /// Elementwise `1/a`.
    pub fn recip(&mut self, a: &Mat) -> Mat {
        self.map(a, Unary::Recip)
    }

    /// Numerically stable softplus `ln(1 + eᵃ)`.
    pub fn softplus(&mut self, a: &Mat) -> Mat {
        self.map(a, Unary::Softplus)
    }

    /// The constant 0/1 mask `[a > 0]` (no gradient flows through it).
    pub fn positive_mask(&self, a: &Mat) -> Mat {
        compute::map(a, Unary::PositiveMask)
    }

    /// The `k`-th derivative (`k ≤ 2`, differentiable) of an activation.
    pub fn activation(&mut self, act: Activation, a: &Mat, k: usize) -> Mat {
        assert!(
            k <= 2,
            "activation derivatives are differentiable up to order 2"
        );
        self.map(a, Unary::Act(act, k as u8))
    }

    /// `f, f', …, f⁽ᵘᵖᵗᵒ⁾` of an activation at `a` in one pass (`upto ≤ 2`).
    pub fn activation_derivs(&mut self, act: Activation, a: &Mat, upto: usize) -> Vec<Mat> {
        self.apply(Op::ActDerivs(act, upto), &[a])
    }

    /// The jet rule through an elementwise function with derivatives `f1`,
    /// `f2` at the value: tangents `t` and second-order part `s` (see
    /// [`compute::jet_tangent`]).
    pub fn jet_tangent(
        &mut self,
        mode: SecondMode,
        f1: &Mat,
        f2: Option<&Mat>,
        t: &Mat,
        s: Option<&Mat>,
    ) -> (Mat, Option<Mat>) {
        let mut inputs: Vec<&Mat> = vec![f1];
        if mode != SecondMode::None {
            inputs.push(f2.expect("f'' for a second-order jet"));
        }
        inputs.push(t);
        if let Some(s) = s {
            inputs.push(s);
        }
        let mut out = self.apply(
            Op::JetTangent {
                mode,
                has_s: s.is_some(),
            },
            &inputs,
        );
        let s2 = (mode != SecondMode::None).then(|| out.pop().expect("second-order output"));
        (out.pop().expect("tangent output"), s2)
    }

    /// Tangents of `x·W` along basis directions `e_start … e_{start+count−1}`,
    /// `n` rows each: rows of `w` (no product).
    pub fn basis_rows(&mut self, w: &Mat, start: usize, count: usize, n: usize) -> Mat {
        self.apply1(Op::BasisRows(start, count, n), &[w])
    }

    /// `Σⱼ a[j·n + r, start + j]` for `a` stacked in `count` blocks.
    pub fn block_diagonal_sum(&mut self, a: &Mat, start: usize, count: usize) -> Mat {
        self.apply1(Op::BlockDiagonalSum(start, count), &[a])
    }

    /// Transpose.
    pub fn transpose(&mut self, a: &Mat) -> Mat {
        self.apply1(Op::Transpose, &[a])
    }

    /// The same values in another shape with as many entries.
    pub fn reshape(&mut self, a: &Mat, rows: usize, cols: usize) -> Mat {
        self.apply1(Op::Reshape(rows, cols), &[a])
    }

    /// The columns `idx` of `a`, in that order.
    pub fn select_cols(&mut self, a: &Mat, idx: &Arc<[usize]>) -> Mat {
        self.apply1(Op::SelectCols(idx.clone()), &[a])
    }

    /// `a`'s columns placed at `idx` of a zero matrix `width` wide.
    pub fn scatter_cols(&mut self, a: &Mat, idx: &Arc<[usize]>, width: usize) -> Mat {
        self.apply1(Op::ScatterCols(idx.clone(), width), &[a])
    }

    /// Rows `start..start + rows` of `a`.
    pub fn row_block(&mut self, a: &Mat, start: usize, rows: usize) -> Mat {
        self.apply1(Op::RowBlock(start, rows), &[a])
    }

    /// The matrices stacked vertically.
    pub fn vstack(&mut self, parts: &[&Mat]) -> Mat {
        self.apply1(Op::VStack, parts)
    }

    /// Sums over columns: `n × k → n × 1`.
    pub fn sum_cols(&mut self, a: &Mat) -> Mat {
        self.apply1(Op::SumCols, &[a])
    }

    /// Sums over rows: `n × k → 1 × k`.
    pub fn sum_rows(&mut self, a: &Mat) -> Mat {
        self.apply1(Op::SumRows, &[a])
    }

    /// Sums `m` stacked blocks: `m·n × k → n × k`.
    pub fn sum_blocks(&mut self, a: &Mat, m: usize) -> Mat {
        self.apply1(Op::SumBlocks(m), &[a])
    }

    /// Sum of all entries as a `1 × 1` matrix.
    pub fn sum_all(&mut self, a: &Mat) -> Mat {
        self.apply1(Op::SumAll, &[a])
    }

    /// Mean of all entries as a `1 × 1` matrix.
    pub fn mean_all(&mut self, a: &Mat) -> Mat {
        let (r, c) = a.shape();
        let s = self.sum_all(a);
        self.scale(&s, 1.0 / (r * c).max(1) as f64)
    }

    /// Reverse pass from the `1 × 1` matrix `loss`: the gradient of each leaf
    /// given to [`Graph::tracking`], in order (zeros for a leaf the loss does
    /// not use).
    ///
    /// # Panics
    /// If the graph is an inference graph or `loss` is not `1 × 1`.
    pub fn backward(self, loss: &Mat) -> Vec<Mat> {
        let dev = self.dev.clone();
        let (leaves, mut grads) = self.backward_inner(loss);
        leaves
            .iter()
            .map(|l| {
                grads
                    .remove(&l.id())
                    .unwrap_or_else(|| dev.zeros(l.rows(), l.cols()))
            })
            .collect()
    }

    /// Like [`Graph::backward`], but returns `(leaf, gradient)` for the leaves
    /// that received a gradient (for a child graph, see [`Graph::child`]).
    pub fn backward_leaves(self, loss: &Mat) -> LeafGrads {
        let (leaves, mut grads) = self.backward_inner(loss);
        leaves
            .into_iter()
            .filter_map(|l| grads.remove(&l.id()).map(|g| (l, g)))
            .collect()
    }

    fn backward_inner(self, loss: &Mat) -> (Vec<Mat>, IdMap<Mat>) {
        assert_eq!(loss.shape(), (1, 1), "backward: the loss must be 1 × 1");
        let tape = self.tape.expect("backward called on an inference graph");
        let mut grads: IdMap<Mat> = IdMap::default();
        if tape.tracked.contains(&loss.id()) {
            grads.insert(loss.id(), self.dev.filled(1, 1, 1.0));
        }
        for entry in tape.entries.into_iter().rev() {
            let out_grads: Vec<Option<Mat>> = entry
                .outputs
                .iter()
                .map(|o| grads.remove(&o.id()))
                .collect();
            if out_grads.iter().all(Option::is_none) {
                continue;
            }
            let in_grads = entry.op.backward(
                &entry.inputs,
                &entry.outputs,
                &out_grads,
                &entry.needs,
                &entry.pending,
            );
            for ((input, need), g) in entry.inputs.iter().zip(&entry.needs).zip(in_grads) {
                let (true, Some(g)) = (*need, g) else {
                    continue;
                };
                debug_assert_eq!(g.shape(), input.shape(), "gradient shape of {:?}", entry.op);
                match grads.get_mut(&input.id()) {
                    Some(acc) => compute::add_into(acc, &g),
                    None => {
                        grads.insert(input.id(), g);
                    }
                }
            }
        }
        (tape.leaves, grads)
    }
}
