//! Untracked kernels on [`Mat`]: every primitive the autodiff graph builds
//! its ops (and their backward rules) from, dispatched to a backend by the
//! matrices' storage.
//!
//! Data flow: [`crate::autodiff::Graph`] calls these functions for the
//! forward value of an op and again, in its backward pass, for the gradient
//! of each input. A [`Buf`] is the storage of one matrix: a native `f32` or
//! `f64` vector (kernels in [`cpu`], multiversioned loops and `gemm`) or a
//! dfdx tensor (kernels in [`reference`](mod@reference), composed from dfdx's ops; on CUDA
//! in a `cuda` build). Inputs of one kernel share a backend and precision;
//! outputs are new matrices with fresh ids.

pub mod activation;
pub mod cpu;
pub mod float;
pub mod reference;

use std::sync::Arc;

pub use activation::Activation;
pub use cpu::SecondMode;
use float::{Float, Precision};

use crate::device::{Backend, Device, Mat};

/// The storage of one matrix.
pub enum Buf {
    /// Native CPU `f32` values, row-major.
    F32(Vec<f32>),
    /// Native CPU `f64` values, row-major.
    F64(Vec<f64>),
    /// A dfdx tensor (reference CPU or CUDA).
    Dfdx(reference::DBuf),
}

/// An `f64` kept as its bits, so ops with constant parameters can be
/// compared and hashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Bits(u64);

impl Bits {
    /// Wraps a value.
    pub fn new(x: f64) -> Self {
        Self(x.to_bits())
    }
    /// The value.
    pub fn get(self) -> f64 {
        f64::from_bits(self.0)
    }
}

/// Elementwise functions of one matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Unary {
    /// `−x`.
    Neg,
    /// `c·x`.
    Scale(Bits),
    /// `x + c`.
    AddScalar(Bits),
    /// `eˣ`.
    Exp,
    /// `ln x`.
    Ln,
    /// `tanh x`.
    Tanh,
    /// `1/(1 + e⁻ˣ)`.
    Sigmoid,
    /// `ln(1 + eˣ)`.
    Softplus,
    /// `x²`.
    Square,
    /// `|x|`.
    Abs,
    /// `max(x, 0)`.
    Relu,
    /// `√x`.
    Sqrt,
    /// `1/x`.
    Recip,
    /// `[x > 0]` as 0/1.
    PositiveMask,
    /// `sign(x)` in {−1, 0, 1}.
    Sign,
    /// The `k`-th derivative of an activation, `k ≤ 3`.
    Act(Activation, u8),
}

/// Elementwise functions of two matrices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Binary {
    /// `a + b`.
    Add,
    /// `a − b`.
    Sub,
    /// `a ∘ b`.
    Mul,
    /// `a / b`.
    Div,
}

/// How the second operand of a [`Binary`] op is broadcast over the first
/// (`a` is `rows × cols`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Bcast {
    /// `b` has `a`'s shape.
    Same,
    /// `b` is `1 × cols`, added to every row.
    Row,
    /// `b` is `rows × 1`, applied across each row.
    Col,
    /// `b` is `1 × 1`.
    Scalar,
    /// `b` is `n × cols` and `a` is `m` such blocks stacked (`m·n × cols`).
    Blocks,
}

impl Bcast {
    /// The shape `b` must have for an `a` of `(rows, cols)`, given `b`'s rows
    /// for [`Bcast::Blocks`].
    pub fn check(self, a: (usize, usize), b: (usize, usize)) -> Result<(), String> {
        let ok = match self {
            Bcast::Same => a == b,
            Bcast::Row => b == (1, a.1),
            Bcast::Col => b == (a.0, 1),
            Bcast::Scalar => b == (1, 1),
            Bcast::Blocks => b.1 == a.1 && b.0 > 0 && a.0.is_multiple_of(b.0),
        };
        if ok {
            Ok(())
        } else {
            Err(format!(
                "{self:?} broadcast of a {}×{} operand over a {}×{} matrix",
                b.0, b.1, a.0, a.1
            ))
        }
    }
}

/// A native element type: `f32` or `f64`, which a [`Buf`] can hold directly.
pub trait Native: Float {
    /// Wraps a vector as storage.
    fn wrap(v: Vec<Self>) -> Buf;
    /// The vector of a native buffer of this type.
    fn unwrap(b: &Buf) -> &[Self];
    /// The mutable vector of a native buffer of this type.
    fn unwrap_mut(b: &mut Buf) -> &mut Vec<Self>;
}

impl Native for f32 {
    fn wrap(v: Vec<Self>) -> Buf {
        Buf::F32(v)
    }
    fn unwrap(b: &Buf) -> &[Self] {
        match b {
            Buf::F32(v) => v,
            _ => mixed(),
        }
    }
    fn unwrap_mut(b: &mut Buf) -> &mut Vec<Self> {
        match b {
            Buf::F32(v) => v,
            _ => mixed(),
        }
    }
}

impl Native for f64 {
    fn wrap(v: Vec<Self>) -> Buf {
        Buf::F64(v)
    }
    fn unwrap(b: &Buf) -> &[Self] {
        match b {
            Buf::F64(v) => v,
            _ => mixed(),
        }
    }
    fn unwrap_mut(b: &mut Buf) -> &mut Vec<Self> {
        match b {
            Buf::F64(v) => v,
            _ => mixed(),
        }
    }
}

#[cold]
#[track_caller]
fn mixed() -> ! {
    panic!("operands on different backends or precisions (every matrix of a run comes from its one device)")
}

/// Runs `$body` with `$v…` bound to the native slices of the buffers (the
/// element type as `$t`), or `$dbody` with `$d…` bound to the dfdx buffers,
/// wrapping the result as a [`Buf`].
macro_rules! dispatch {
    ($($b:expr),+ ; <$t:ident> |$($v:ident),+| $body:expr ; |$($d:ident),+| $dbody:expr) => {
        match ($(&*$b.buf,)+) {
            ($(Buf::F32($v),)+) => {
                #[allow(dead_code)]
                type $t = f32;
                Buf::F32($body)
            }
            ($(Buf::F64($v),)+) => {
                #[allow(dead_code)]
                type $t = f64;
                Buf::F64($body)
            }
            ($(Buf::Dfdx($d),)+) => Buf::Dfdx($dbody),
            #[allow(unreachable_patterns)]
            _ => mixed(),
        }
    };
}

/// A zeroed vector of `n` values.
fn zeros<T: Float>(n: usize) -> Vec<T> {
    vec![T::ZERO; n]
}

impl Buf {
    /// Storage for host `f64` values on `dev`.
    pub fn from_host(dev: &Device, data: &[f64], rows: usize, cols: usize) -> Buf {
        match (dev.backend(), dev.precision()) {
            (Backend::Cpu, Precision::F32) => Buf::F32(data.iter().map(|&x| x as f32).collect()),
            (Backend::Cpu, Precision::F64) => Buf::F64(data.to_vec()),
            _ => Buf::Dfdx(reference::DBuf::from_host(dev, data, rows, cols)),
        }
    }

    /// Storage for host `f32` values on `dev`.
    pub fn from_host_f32(dev: &Device, data: &[f32], rows: usize, cols: usize) -> Buf {
        match (dev.backend(), dev.precision()) {
            (Backend::Cpu, Precision::F32) => Buf::F32(data.to_vec()),
            _ => {
                let d: Vec<f64> = data.iter().map(|&x| x as f64).collect();
                Buf::from_host(dev, &d, rows, cols)
            }
        }
    }

    /// `rows × cols` copies of `value` on `dev`.
    pub fn filled(dev: &Device, rows: usize, cols: usize, value: f64) -> Buf {
        let n = rows * cols;
        match (dev.backend(), dev.precision()) {
            (Backend::Cpu, Precision::F32) => Buf::F32(vec![value as f32; n]),
            (Backend::Cpu, Precision::F64) => Buf::F64(vec![value; n]),
            _ => Buf::Dfdx(reference::DBuf::from_host(dev, &vec![value; n], rows, cols)),
        }
    }

    /// The same values viewed as `rows × cols` (as many entries).
    pub fn reshaped(&self, rows: usize, cols: usize) -> Buf {
        match self {
            Buf::F32(v) => Buf::F32(v.clone()),
            Buf::F64(v) => Buf::F64(v.clone()),
            Buf::Dfdx(d) => Buf::Dfdx(d.reshaped(rows, cols)),
        }
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        match self {
            Buf::F32(v) => v.len(),
            Buf::F64(v) => v.len(),
            Buf::Dfdx(d) => d.len(),
        }
    }

    /// Whether there are no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The element precision.
    pub fn precision(&self) -> Precision {
        match self {
            Buf::F32(_) => Precision::F32,
            Buf::F64(_) => Precision::F64,
            Buf::Dfdx(d) => d.precision(),
        }
    }

    /// The backend the storage lives on.
    pub fn backend(&self) -> Backend {
        match self {
            Buf::F32(_) | Buf::F64(_) => Backend::Cpu,
            Buf::Dfdx(d) => d.backend(),
        }
    }

    /// Whether this storage belongs to `dev` (same backend and precision).
    pub fn matches(&self, dev: &Device) -> bool {
        match self {
            Buf::F32(_) => dev.backend() == Backend::Cpu && dev.precision() == Precision::F32,
            Buf::F64(_) => dev.backend() == Backend::Cpu && dev.precision() == Precision::F64,
            Buf::Dfdx(d) => d.backend() == dev.backend() && d.precision() == dev.precision(),
        }
    }

    /// The values as `f64`.
    pub fn to_host(&self) -> Vec<f64> {
        match self {
            Buf::F32(v) => v.iter().map(|&x| x as f64).collect(),
            Buf::F64(v) => v.clone(),
            Buf::Dfdx(d) => d.to_host(),
        }
    }

    /// The values as `f32`.
    pub fn to_host_f32(&self) -> Vec<f32> {
        match self {
            Buf::F32(v) => v.clone(),
            Buf::F64(v) => v.iter().map(|&x| x as f32).collect(),
            Buf::Dfdx(d) => d.to_host().iter().map(|&x| x as f32).collect(),
        }
    }

    /// The first value (0 for an empty buffer).
    pub fn first(&self) -> f64 {
        match self {
            Buf::F32(v) => v.first().map_or(0.0, |&x| x as f64),
            Buf::F64(v) => v.first().copied().unwrap_or(0.0),
            Buf::Dfdx(d) => d.to_host().first().copied().unwrap_or(0.0),
        }
    }
}

fn out(rows: usize, cols: usize, buf: Buf) -> Mat {
    Mat::from_buf(rows, cols, buf)
}

/// `op(a) · op(b)`, where `op` transposes when the flag is set.
///
/// # Panics
/// If the inner dimensions differ.
pub fn matmul(a: &Mat, ta: bool, b: &Mat, tb: bool) -> Mat {
    let (m, k) = if ta { (a.cols(), a.rows()) } else { a.shape() };
    let (k2, n) = if tb { (b.cols(), b.rows()) } else { b.shape() };
    assert_eq!(k, k2, "matmul: {m}×{k} times {k2}×{n}");
    let buf = dispatch!(a, b; <T> |x, y| {
        assert_eq!((x.len(), y.len()), (m * k, k * n), "matmul: buffer sizes");
        let mut o: Vec<T> = Vec::with_capacity(m * n);
        // SAFETY: `o` has room for m·n values, which the product writes
        // without reading; the inputs hold m·k and k·n values.
        unsafe {
            cpu::matmul_into(m, k, n, x, ta, y, tb, o.as_mut_ptr(), false);
            o.set_len(m * n);
        }
        o
    }; |x, y| reference::matmul(x, ta, y, tb));
    out(m, n, buf)
}

/// `x·W + b` with `b` a `1 × out` row.
pub fn affine(x: &Mat, w: &Mat, b: &Mat) -> Mat {
    let (m, k) = x.shape();
    let (k2, n) = w.shape();
    assert_eq!(k, k2, "affine: {m}×{k} input, {k2}×{n} weight");
    assert_eq!(b.shape(), (1, n), "affine: bias must be 1×{n}");
    let buf = dispatch!(x, w, b; <T> |xv, wv, bv| {
        let mut o: Vec<T> = Vec::with_capacity(m * n);
        for _ in 0..m {
            o.extend_from_slice(bv);
        }
        cpu::matmul(m, k, n, xv, false, wv, false, &mut o, true);
        o
    }; |xv, wv, bv| reference::affine(xv, wv, bv));
    out(m, n, buf)
}

/// `op(a)` elementwise.
pub fn map(a: &Mat, op: Unary) -> Mat {
    let buf = dispatch!(a; <T> |x| {
        let mut o = zeros::<T>(x.len());
        cpu::map(op, x, &mut o);
        o
    }; |x| reference::map(x, op));
    out(a.rows(), a.cols(), buf)
}

/// `a op b` with `b` broadcast as `bc` says.
///
/// # Panics
/// If `b`'s shape does not fit the broadcast.
pub fn zip(a: &Mat, b: &Mat, op: Binary, bc: Bcast) -> Mat {
    if let Err(e) = bc.check(a.shape(), b.shape()) {
        panic!("{op:?}: {e}");
    }
    let (r, c) = a.shape();
    let buf = dispatch!(a, b; <T> |x, y| {
        let mut o = zeros::<T>(x.len());
        cpu::zip(op, bc, r, c, x, y, &mut o);
        o
    }; |x, y| reference::zip(x, y, op, bc, (r, c), b.shape()));
    out(r, c, buf)
}

/// Row sums: `n × k → n × 1`.
pub fn sum_cols(a: &Mat) -> Mat {
    let (r, c) = a.shape();
    let buf = dispatch!(a; <T> |x| {
        let mut o = zeros::<T>(r);
        cpu::sum_cols(c, x, &mut o);
        o
    }; |x| reference::sum_cols(x));
    out(r, 1, buf)
}

/// Column sums: `n × k → 1 × k`.
pub fn sum_rows(a: &Mat) -> Mat {
    let (_, c) = a.shape();
    let buf = dispatch!(a; <T> |x| {
        let mut o = zeros::<T>(c);
        cpu::sum_rows(c, x, &mut o);
        o
    }; |x| reference::sum_rows(x));
    out(1, c, buf)
}

/// The sum of all entries as `1 × 1`.
pub fn sum_all(a: &Mat) -> Mat {
    let buf = dispatch!(a; <T> |x| vec![T::from_f64(cpu::sum_all(x))]; |x| reference::sum_all(x));
    out(1, 1, buf)
}

/// The sum of `blocks` stacked blocks: `blocks·n × k → n × k`.
///
/// # Panics
/// If the rows are not a multiple of `blocks`.
pub fn sum_blocks(a: &Mat, blocks: usize) -> Mat {
    let (r, c) = a.shape();
    assert!(
        blocks > 0 && r % blocks == 0,
        "sum_blocks: {r} rows in {blocks} blocks"
    );
    let n = r / blocks;
    let buf = dispatch!(a; <T> |x| {
        let mut o = zeros::<T>(n * c);
        cpu::sum_blocks(x, &mut o);
        o
    }; |x| reference::sum_blocks(x, blocks));
    out(n, c, buf)
}

/// The sum of all entries, on the host in `f64`.
pub fn host_sum(a: &Mat) -> f64 {
    match &*a.buf {
        Buf::F32(v) => cpu::sum_all(v),
        Buf::F64(v) => cpu::sum_all(v),
        Buf::Dfdx(d) => d.to_host().iter().sum(),
    }
}

/// The sum of squares of all entries, on the host in `f64`.
pub fn host_sum_squares(a: &Mat) -> f64 {
    match &*a.buf {
        Buf::F32(v) => cpu::sum_squares(v),
        Buf::F64(v) => cpu::sum_squares(v),
        Buf::Dfdx(d) => reference::sum_squares(d),
    }
}

/// Repeats `a` (`r × c`) into `times_r · r × times_c · c` when one of `r`,
/// `c` is 1 along the repeated axis: rows (`1 × k → n × k`), columns
/// (`n × 1 → n × k`) or a scalar (`1 × 1 → n × k`).
pub fn broadcast(a: &Mat, rows: usize, cols: usize) -> Mat {
    let (r, c) = a.shape();
    assert!(
        (r == rows || r == 1) && (c == cols || c == 1),
        "broadcast: {r}×{c} to {rows}×{cols}"
    );
    let buf = dispatch!(a; <T> |x| {
        let mut o = zeros::<T>(rows * cols);
        for (i, row) in o.chunks_exact_mut(cols.max(1)).enumerate() {
            let src = if r == 1 { 0 } else { i };
            if c == 1 {
                row.fill(x[src]);
            } else {
                row.copy_from_slice(&x[src * c..(src + 1) * c]);
            }
        }
        o
    }; |x| reference::broadcast(x, (r, c), (rows, cols)));
    out(rows, cols, buf)
}

/// `m` copies of `a` stacked: `n × k → m·n × k`.
pub fn tile_blocks(a: &Mat, m: usize) -> Mat {
    let (r, c) = a.shape();
    let buf = dispatch!(a; <T> |x| {
        let mut o: Vec<T> = Vec::with_capacity(x.len() * m);
        for _ in 0..m {
            o.extend_from_slice(x);
        }
        o
    }; |x| reference::tile_blocks(x, m));
    out(r * m, c, buf)
}

/// `aᵀ`.
pub fn transpose(a: &Mat) -> Mat {
    let (r, c) = a.shape();
    let buf = dispatch!(a; <T> |x| {
        let mut o = zeros::<T>(r * c);
        for i in 0..r {
            for j in 0..c {
                o[j * r + i] = x[i * c + j];
            }
        }
        o
    }; |x| reference::transpose(x));
    out(c, r, buf)
}

/// The columns `idx` of `a`, in that order.
pub fn select_cols(a: &Mat, idx: &[usize]) -> Mat {
    let (r, c) = a.shape();
    assert!(
        idx.iter().all(|&j| j < c),
        "select_cols: index beyond {c} columns"
    );
    let k = idx.len();
    let buf = dispatch!(a; <T> |x| {
        let mut o = zeros::<T>(r * k);
        for (orow, arow) in o.chunks_exact_mut(k.max(1)).zip(x.chunks_exact(c.max(1))) {
            for (o, &j) in orow.iter_mut().zip(idx) {
                *o = arow[j];
            }
        }
        o
    }; |x| reference::select_cols(x, idx));
    out(r, k, buf)
}

/// An `r × width` matrix of zeros with column `idx[j]` set to column `j` of
/// `a` (`r × idx.len()`); repeated indices add up.
pub fn scatter_cols(a: &Mat, idx: &[usize], width: usize) -> Mat {
    let (r, k) = a.shape();
    assert_eq!(idx.len(), k, "scatter_cols: one index per column");
    assert!(
        idx.iter().all(|&j| j < width),
        "scatter_cols: index beyond {width}"
    );
    let buf = dispatch!(a; <T> |x| {
        let mut o = zeros::<T>(r * width);
        for (orow, arow) in o.chunks_exact_mut(width.max(1)).zip(x.chunks_exact(k.max(1))) {
            for (&v, &j) in arow.iter().zip(idx) {
                orow[j] += v;
            }
        }
        o
    }; |x| reference::scatter_cols(x, idx, width));
    out(r, width, buf)
}

/// Rows `start..start + rows` of `a`.
pub fn row_block(a: &Mat, start: usize, rows: usize) -> Mat {
    let (r, c) = a.shape();
    assert!(
        start + rows <= r,
        "row_block: rows {start}..{} of {r}",
        start + rows
    );
    let buf = dispatch!(a; <T> |x| x[start * c..(start + rows) * c].to_vec(); |x| reference::row_block(x, start, rows));
    out(rows, c, buf)
}

/// The matrices stacked vertically (all with the same number of columns).
pub fn vstack(parts: &[&Mat]) -> Mat {
    assert!(!parts.is_empty(), "vstack of nothing");
    let c = parts[0].cols();
    assert!(
        parts.iter().all(|p| p.cols() == c),
        "vstack: column counts differ"
    );
    let rows: usize = parts.iter().map(|p| p.rows()).sum();
    let buf = match &*parts[0].buf {
        Buf::F32(_) => {
            let mut o: Vec<f32> = Vec::with_capacity(rows * c);
            for p in parts {
                o.extend_from_slice(f32::unwrap(&p.buf));
            }
            Buf::F32(o)
        }
        Buf::F64(_) => {
            let mut o: Vec<f64> = Vec::with_capacity(rows * c);
            for p in parts {
                o.extend_from_slice(f64::unwrap(&p.buf));
            }
            Buf::F64(o)
        }
        Buf::Dfdx(_) => {
            let ds: Vec<&reference::DBuf> = parts
                .iter()
                .map(|p| match &*p.buf {
                    Buf::Dfdx(d) => d,
                    _ => mixed(),
                })
                .collect();
            Buf::Dfdx(reference::vstack(&ds))
        }
    };
    out(rows, c, buf)
}

/// `f⁽ʲ⁾(a)` of an activation for `j = 0..=upto` (`upto ≤ 2`), in one pass.
pub fn act_derivs(a: &Mat, act: Activation, upto: usize) -> Vec<Mat> {
    assert!(upto <= 2, "act_derivs: up to the second derivative");
    let (r, c) = a.shape();
    let bufs: Vec<Buf> = match &*a.buf {
        Buf::F32(x) => act_derivs_native(x, act, upto),
        Buf::F64(x) => act_derivs_native(x, act, upto),
        Buf::Dfdx(x) => (0..=upto)
            .map(|k| Buf::Dfdx(reference::map(x, Unary::Act(act, k as u8))))
            .collect(),
    };
    bufs.into_iter().map(|b| out(r, c, b)).collect()
}

fn act_derivs_native<T: Native>(x: &[T], act: Activation, upto: usize) -> Vec<Buf> {
    let mut outs: Vec<Vec<T>> = (0..=upto).map(|_| zeros(x.len())).collect();
    {
        let mut slices: Vec<&mut [T]> = outs.iter_mut().map(|v| v.as_mut_slice()).collect();
        cpu::act_derivs(act, x, &mut slices);
    }
    outs.into_iter().map(T::wrap).collect()
}

/// `Σⱼ gⱼ ∘ f⁽ʲ⁺¹⁾(a)`: the gradient of [`act_derivs`] in `a`.
pub fn act_derivs_backward(a: &Mat, act: Activation, grads: &[Option<Mat>]) -> Mat {
    let (r, c) = a.shape();
    let buf = match &*a.buf {
        Buf::F32(x) => Buf::F32(act_derivs_backward_native(x, act, grads)),
        Buf::F64(x) => Buf::F64(act_derivs_backward_native(x, act, grads)),
        Buf::Dfdx(x) => Buf::Dfdx(reference::act_derivs_backward(x, act, grads)),
    };
    out(r, c, buf)
}

fn act_derivs_backward_native<T: Native>(
    x: &[T],
    act: Activation,
    grads: &[Option<Mat>],
) -> Vec<T> {
    let gs: Vec<Option<&[T]>> = grads
        .iter()
        .map(|g| g.as_ref().map(|g| T::unwrap(&g.buf)))
        .collect();
    let mut o = zeros::<T>(x.len());
    cpu::act_derivs_backward(act, x, &gs, &mut o);
    o
}

/// The jet rule through an activation (see [`cpu::jet_tangent`]): returns
/// the new tangents and, unless `mode` is first order, the new
/// second-order part.
pub fn jet_tangent(
    mode: SecondMode,
    f1: &Mat,
    f2: Option<&Mat>,
    t: &Mat,
    s: Option<&Mat>,
) -> (Mat, Option<Mat>) {
    let (n, k) = f1.shape();
    assert!(
        t.cols() == k && t.rows().is_multiple_of(n.max(1)),
        "jet_tangent: tangents {:?} for a {n}×{k} value",
        t.shape()
    );
    let s_rows = match mode {
        SecondMode::None => 0,
        SecondMode::PerDirection => t.rows(),
        SecondMode::Trace => n,
    };
    if let Some(s) = s {
        assert_eq!(
            s.shape(),
            (s_rows, k),
            "jet_tangent: second-order part shape"
        );
    }
    let f2 = match mode {
        SecondMode::None => f1,
        _ => f2.expect("jet_tangent: f'' needed for second order"),
    };
    let (tb, sb) = match (&*f1.buf, &*f2.buf, &*t.buf) {
        (Buf::F32(a), Buf::F32(b), Buf::F32(c)) => jet_tangent_native(mode, a, b, c, s, s_rows * k),
        (Buf::F64(a), Buf::F64(b), Buf::F64(c)) => jet_tangent_native(mode, a, b, c, s, s_rows * k),
        (Buf::Dfdx(a), Buf::Dfdx(b), Buf::Dfdx(c)) => {
            let sd = s.map(|s| match &*s.buf {
                Buf::Dfdx(d) => d,
                _ => mixed(),
            });
            let (x, y) = reference::jet_tangent(mode, a, b, c, sd);
            (Buf::Dfdx(x), y.map(Buf::Dfdx))
        }
        _ => mixed(),
    };
    (out(t.rows(), k, tb), sb.map(|b| out(s_rows, k, b)))
}

fn jet_tangent_native<T: Native>(
    mode: SecondMode,
    f1: &[T],
    f2: &[T],
    t: &[T],
    s: Option<&Mat>,
    s_len: usize,
) -> (Buf, Option<Buf>) {
    let mut to = zeros::<T>(t.len());
    let mut so = zeros::<T>(s_len);
    let sv = s.map(|s| T::unwrap(&s.buf));
    cpu::jet_tangent(mode, f1, f2, t, sv, &mut to, &mut so);
    let so = (mode != SecondMode::None).then(|| T::wrap(so));
    (T::wrap(to), so)
}

/// Gradients of [`jet_tangent`]: `(dt, ds, df1, df2)` from the gradients of
/// its outputs (`ds` only when `s` was given, `df2` only with second order).
#[allow(clippy::type_complexity)]
pub fn jet_tangent_backward(
    mode: SecondMode,
    f1: &Mat,
    f2: Option<&Mat>,
    t: &Mat,
    s: Option<&Mat>,
    gt: Option<&Mat>,
    gs: Option<&Mat>,
) -> (Mat, Option<Mat>, Mat, Option<Mat>) {
    let (n, k) = f1.shape();
    let f2m = f2.unwrap_or(f1);
    let bufs: [Option<Buf>; 4] = match (&*f1.buf, &*f2m.buf, &*t.buf) {
        (Buf::F32(a), Buf::F32(b), Buf::F32(c)) => {
            jet_tangent_backward_native(mode, a, b, c, s, gt, gs)
        }
        (Buf::F64(a), Buf::F64(b), Buf::F64(c)) => {
            jet_tangent_backward_native(mode, a, b, c, s, gt, gs)
        }
        (Buf::Dfdx(a), Buf::Dfdx(b), Buf::Dfdx(c)) => {
            fn d(m: Option<&Mat>) -> Option<&reference::DBuf> {
                m.map(|m| match &*m.buf {
                    Buf::Dfdx(d) => d,
                    _ => mixed(),
                })
            }
            let r = reference::jet_tangent_backward(mode, a, b, c, d(s), d(gt), d(gs));
            r.map(|b| b.map(Buf::Dfdx))
        }
        _ => mixed(),
    };
    let [dt, ds, df1, df2] = bufs;
    let s_shape = s.map(|s| s.shape());
    (
        out(t.rows(), k, dt.expect("dt")),
        ds.map(|b| {
            let (r, c) = s_shape.expect("ds only with s");
            out(r, c, b)
        }),
        out(n, k, df1.expect("df1")),
        (mode != SecondMode::None).then(|| out(n, k, df2.expect("df2"))),
    )
}

fn jet_tangent_backward_native<T: Native>(
    mode: SecondMode,
    f1: &[T],
    f2: &[T],
    t: &[T],
    s: Option<&Mat>,
    gt: Option<&Mat>,
    gs: Option<&Mat>,
) -> [Option<Buf>; 4] {
    let sv = s.map(|s| T::unwrap(&s.buf));
    let gtv = gt.map(|g| T::unwrap(&g.buf));
    let gsv = gs.map(|g| T::unwrap(&g.buf));
    let mut dt = zeros::<T>(t.len());
    let mut ds = zeros::<T>(sv.map_or(0, |s| s.len()));
    let mut df1 = zeros::<T>(f1.len());
    let mut df2 = zeros::<T>(f1.len());
    cpu::jet_tangent_backward(
        mode, f1, f2, t, sv, gtv, gsv, &mut dt, &mut ds, &mut df1, &mut df2,
    );
    [
        Some(T::wrap(dt)),
        sv.map(|_| T::wrap(ds)),
        Some(T::wrap(df1)),
        Some(T::wrap(df2)),
    ]
}

/// The tangents of `x·W` along the basis directions `e_start … e_{start+count−1}`
/// for `n` rows each: block `j` is row `start + j` of `w` repeated `n` times
/// (`count·n × out`).
pub fn basis_rows(w: &Mat, start: usize, count: usize, n: usize) -> Mat {
    let (r, c) = w.shape();
    assert!(
        start + count <= r,
        "basis_rows: directions {start}..{} of {r}",
        start + count
    );
    let buf = dispatch!(w; <T> |x| {
        let mut o: Vec<T> = Vec::with_capacity(count * n * c);
        for j in 0..count {
            let row = &x[(start + j) * c..(start + j + 1) * c];
            for _ in 0..n {
                o.extend_from_slice(row);
            }
        }
        o
    }; |x| reference::basis_rows(x, start, count, n));
    out(count * n, c, buf)
}

/// The gradient of [`basis_rows`] in `w` (`w_rows × out`): row `start + j`
/// is the column sum of block `j` of `g`; other rows are zero.
pub fn basis_rows_backward(g: &Mat, start: usize, count: usize, w_rows: usize) -> Mat {
    let (gr, c) = g.shape();
    assert!(
        count > 0 && gr % count == 0,
        "basis_rows_backward: {gr} rows in {count} blocks"
    );
    let n = gr / count;
    let buf = dispatch!(g; <T> |x| {
        let mut o = zeros::<T>(w_rows * c);
        for j in 0..count {
            let dst = &mut o[(start + j) * c..(start + j + 1) * c];
            cpu::sum_rows(c, &x[j * n * c..(j + 1) * n * c], dst);
        }
        o
    }; |x| reference::basis_rows_backward(x, start, count, w_rows));
    out(w_rows, c, buf)
}

/// For `a` stacked in `count` blocks of `n` rows, `Σⱼ a[j·n + r, start + j]`
/// per row `r` (`n × 1`): the diagonal entries along the basis directions
/// `start…` (the trace contribution of a score network's Jacobian).
pub fn block_diagonal_sum(a: &Mat, start: usize, count: usize) -> Mat {
    let (r, c) = a.shape();
    assert!(
        count > 0 && r % count == 0 && start + count <= c,
        "block_diagonal_sum: shape"
    );
    let n = r / count;
    let buf = dispatch!(a; <T> |x| {
        let mut o = zeros::<T>(n);
        for j in 0..count {
            for (i, o) in o.iter_mut().enumerate() {
                *o += x[(j * n + i) * c + start + j];
            }
        }
        o
    }; |x| reference::block_diagonal_sum(x, start, count));
    out(n, 1, buf)
}

/// The gradient of [`block_diagonal_sum`]: `g` (`n × 1`) placed at the
/// diagonal entries of an `count·n × cols` matrix of zeros.
pub fn block_diagonal_sum_backward(g: &Mat, start: usize, count: usize, cols: usize) -> Mat {
    let n = g.rows();
    let buf = dispatch!(g; <T> |x| {
        let mut o = zeros::<T>(count * n * cols);
        for j in 0..count {
            for i in 0..n {
                o[(j * n + i) * cols + start + j] = x[i];
            }
        }
        o
    }; |x| reference::block_diagonal_sum_backward(x, start, count, cols));
    out(count * n, cols, buf)
}

/// Adds `g` into `acc` (same shape), in place when `acc`'s storage is not
/// shared.
pub fn add_into(acc: &mut Mat, g: &Mat) {
    assert_eq!(acc.shape(), g.shape(), "add_into: shapes differ");
    if let Some(buf) = Arc::get_mut(&mut acc.buf) {
        match (buf, &*g.buf) {
            (Buf::F32(a), Buf::F32(b)) => {
                for (x, &y) in a.iter_mut().zip(b) {
                    *x += y;
                }
                return;
            }
            (Buf::F64(a), Buf::F64(b)) => {
                for (x, &y) in a.iter_mut().zip(b) {
                    *x += y;
                }
                return;
            }
            _ => {}
        }
    }
    *acc = zip(acc, g, Binary::Add, Bcast::Same);
}

/// The optimizer's update rules, applied in place to a parameter's value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Update {
    /// Adam with bias correction at step `step` (1-based).
    Adam {
        /// Learning rate.
        lr: f64,
        /// First-moment decay.
        beta1: f64,
        /// Second-moment decay.
        beta2: f64,
        /// Denominator offset.
        eps: f64,
        /// Step number, from 1.
        step: i32,
    },
    /// RMSProp: `v ← ρv + (1−ρ)g²`, `p ← p − lr·g/(√v + eps)` (`v` the state).
    RmsProp {
        /// Learning rate.
        lr: f64,
        /// Decay of the squared-gradient average.
        rho: f64,
        /// Denominator offset.
        eps: f64,
    },
    /// SGD with momentum (`momentum = 0`: plain SGD).
    Sgd {
        /// Learning rate.
        lr: f64,
        /// Momentum.
        momentum: f64,
    },
}

/// Applies `rule` to `param` with gradient `grad` scaled by `grad_scale`
/// (gradient clipping), updating the state matrices (`m`, `v` for Adam; `m`
/// the velocity for SGD) in place. Storage that is shared is copied first.
pub fn update(
    rule: Update,
    param: &mut Mat,
    grad: &Mat,
    m: &mut Mat,
    v: &mut Mat,
    grad_scale: f64,
) {
    for s in [&mut *m, &mut *v] {
        if Arc::get_mut(&mut s.buf).is_none() {
            *s = map(s, Unary::Scale(Bits::new(1.0)));
        }
    }
    if Arc::get_mut(&mut param.buf).is_none() {
        *param = map(param, Unary::Scale(Bits::new(1.0)));
    }
    let p = Arc::get_mut(&mut param.buf).expect("unique");
    let mb = Arc::get_mut(&mut m.buf).expect("unique");
    let vb = Arc::get_mut(&mut v.buf).expect("unique");
    match (p, &*grad.buf, mb, vb) {
        (Buf::F32(p), Buf::F32(g), Buf::F32(m), Buf::F32(v)) => {
            update_native(rule, p, g, m, v, grad_scale)
        }
        (Buf::F64(p), Buf::F64(g), Buf::F64(m), Buf::F64(v)) => {
            update_native(rule, p, g, m, v, grad_scale)
        }
        (Buf::Dfdx(p), Buf::Dfdx(g), Buf::Dfdx(m), Buf::Dfdx(v)) => {
            reference::update(rule, p, g, m, v, grad_scale)
        }
        _ => mixed(),
    }
}

fn update_native<T: Float>(
    rule: Update,
    p: &mut [T],
    g: &[T],
    m: &mut [T],
    v: &mut [T],
    grad_scale: f64,
) {
    match rule {
        Update::Adam {
            lr,
            beta1,
            beta2,
            eps,
            step,
        } => cpu::adam(p, g, m, v, lr, beta1, beta2, eps, step, grad_scale),
        Update::RmsProp { lr, rho, eps } => {
            let (lr, rho, eps) = (T::from_f64(lr), T::from_f64(rho), T::from_f64(eps));
            let one = T::from_f64(1.0);
            let gs = T::from_f64(grad_scale);
            for ((p, &g), v) in p.iter_mut().zip(g).zip(v.iter_mut()) {
                let g = g * gs;
                *v = rho * *v + (one - rho) * g * g;
                *p -= lr * g / (v.sqrt() + eps);
            }
        }
        Update::Sgd { lr, momentum } => {
            let lr = T::from_f64(lr);
            let mo = T::from_f64(momentum);
            let gs = T::from_f64(grad_scale);
            for ((p, &g), m) in p.iter_mut().zip(g).zip(m.iter_mut()) {
                let g = g * gs;
                *m = mo * *m + g;
                *p -= lr * *m;
            }
        }
    }
}

/// A `rows × cols` matrix of zeros on the backend and in the precision of `like`.
pub fn zeros_as(like: &Mat, rows: usize, cols: usize) -> Mat {
    let buf = match &*like.buf {
        Buf::F32(_) => Buf::F32(vec![0.0; rows * cols]),
        Buf::F64(_) => Buf::F64(vec![0.0; rows * cols]),
        Buf::Dfdx(d) => Buf::Dfdx(reference::zeros_as(d, rows, cols)),
    };
    out(rows, cols, buf)
}

/// Row-major host values (`rows × cols`) as a matrix on the backend and in
/// the precision of `like`.
pub fn from_host_as(like: &Mat, data: &[f64], rows: usize, cols: usize) -> Mat {
    let buf = match &*like.buf {
        Buf::F32(_) => Buf::F32(data.iter().map(|&x| x as f32).collect()),
        Buf::F64(_) => Buf::F64(data.to_vec()),
        Buf::Dfdx(d) => Buf::Dfdx(reference::from_host_as(d, data, rows, cols)),
    };
    out(rows, cols, buf)
}

/// `S⁻¹B` for the symmetric part `S = (A + Aᵀ)/2` of a square `a`
/// (`n × n`) and `b` (`n × k`), by a Cholesky factorisation in `f64` on the
/// host (the small ridge systems of closed-form coefficients). A matrix
/// that is not positive definite gives NaN everywhere, which the training
/// step reports as a non-finite loss.
pub fn solve_spd(a: &Mat, b: &Mat) -> Mat {
    let n = a.rows();
    let k = b.cols();
    debug_assert_eq!(a.cols(), n, "solve_spd: a square matrix");
    debug_assert_eq!(b.rows(), n, "solve_spd: right-hand sides of its size");
    let host = a.to_host();
    let mut s = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            s[i * n + j] = 0.5 * (host[i * n + j] + host[j * n + i]);
        }
    }
    let mut x = b.to_host();
    match crate::linalg::cholesky_in_place(&mut s, n) {
        Ok(()) => crate::linalg::cholesky_solve_rows(&s, n, &mut x, k),
        Err(_) => x.iter_mut().for_each(|v| *v = f64::NAN),
    }
    from_host_as(b, &x, n, k)
}

/// Whether every entry is finite.
pub fn all_finite(a: &Mat) -> bool {
    match &*a.buf {
        Buf::F32(v) => v.iter().all(|x| x.is_finite()),
        Buf::F64(v) => v.iter().all(|x| x.is_finite()),
        Buf::Dfdx(d) => d.to_host().iter().all(|x| x.is_finite()),
    }
}
