//! The native CPU kernels: loops over row-major slices, generic over the
//! element type, compiled for AVX-512 and AVX2 as well as the baseline and
//! picked at run time (`multiversion`), with matrix products from `gemm`.
//!
//! Every function writes into an output slice the caller allocated; shapes
//! are checked by the callers in [`super`].

use multiversion::multiversion;

use super::activation::{with_act, ActFn, Activation};
use super::float::Float;
use super::{Bcast, Binary, Unary};

/// Multiply-adds above which a matrix product uses both cores: below it
/// handing work to another thread costs more than it saves.
pub const PARALLEL_WORK: usize = 1 << 24;

/// `out (m × n) = op(a) · op(b)` (or `out += …` with `accumulate`), where
/// `op(a)` is `m × k` (`a` stored `k × m` when `ta`) and `op(b)` is `k × n`
/// (`b` stored `n × k` when `tb`).
#[allow(clippy::too_many_arguments)]
pub fn matmul<T: Float>(
    m: usize,
    k: usize,
    n: usize,
    a: &[T],
    ta: bool,
    b: &[T],
    tb: bool,
    out: &mut [T],
    accumulate: bool,
) {
    assert_eq!(
        a.len(),
        m * k,
        "matmul: lhs has {} values, not {m}×{k}",
        a.len()
    );
    assert_eq!(
        b.len(),
        k * n,
        "matmul: rhs has {} values, not {k}×{n}",
        b.len()
    );
    assert_eq!(
        out.len(),
        m * n,
        "matmul: output has {} values, not {m}×{n}",
        out.len()
    );
    // SAFETY: the shapes are checked above, and `out` is a slice of its own
    // (empty and zero-depth products are handled there).
    unsafe { matmul_into(m, k, n, a, ta, b, tb, out.as_mut_ptr(), accumulate) }
}

/// `matmul` into `m × n` values at `out`, which need not be initialized
/// unless `accumulate`.
///
/// # Safety
/// `out` must be valid for `m·n` writes (and reads, with `accumulate`) and
/// not overlap `a` or `b`; `a` and `b` must hold `m·k` and `k·n` values.
#[allow(clippy::too_many_arguments)]
pub unsafe fn matmul_into<T: Float>(
    m: usize,
    k: usize,
    n: usize,
    a: &[T],
    ta: bool,
    b: &[T],
    tb: bool,
    out: *mut T,
    accumulate: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            std::ptr::write_bytes(out, 0, m * n);
        }
        return;
    }
    let (a_rs, a_cs) = if ta { (1, m as isize) } else { (k as isize, 1) };
    let (b_rs, b_cs) = if tb { (1, k as isize) } else { (n as isize, 1) };
    let parallelism = if m * n * k >= PARALLEL_WORK {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the slices hold exactly the m×k, k×n and m×n elements the
    // strides address (the caller's contract), `out` does not alias the
    // inputs, gemm writes every output without reading it unless
    // `accumulate`, and `T` is f32 or f64, which gemm supports.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out,
            1,
            n as isize,
            accumulate,
            a.as_ptr(),
            a_cs,
            a_rs,
            b.as_ptr(),
            b_cs,
            b_rs,
            T::ONE,
            T::ONE,
            false,
            false,
            false,
            parallelism,
        );
    }
}

#[inline(always)]
fn map_with<T: Float>(a: &[T], out: &mut [T], f: impl Fn(T) -> T) {
    for (o, &x) in out.iter_mut().zip(a) {
        *o = f(x);
    }
}

/// `out = op(a)` elementwise.
#[multiversion(targets("x86_64+avx512f+avx512vl+avx512dq+avx2+fma", "x86_64+avx2+fma"))]
pub fn map<T: Float>(op: Unary, a: &[T], out: &mut [T]) {
    let zero = T::ZERO;
    let one = T::ONE;
    match op {
        Unary::Neg => map_with(a, out, |x| -x),
        Unary::Scale(c) => {
            let c = T::from_f64(c.get());
            map_with(a, out, |x| x * c)
        }
        Unary::AddScalar(c) => {
            let c = T::from_f64(c.get());
            map_with(a, out, |x| x + c)
        }
        Unary::Exp => map_with(a, out, |x| x.exp()),
        Unary::Ln => map_with(a, out, |x| x.ln()),
        Unary::Tanh => map_with(a, out, |x| x.tanh()),
        Unary::Sigmoid => map_with(a, out, |x| super::activation::SigmoidFn::derivs(x)[0]),
        Unary::Softplus => map_with(a, out, |x| {
            let r = if x > zero { x } else { zero };
            r + (-x.abs()).exp().ln_1p()
        }),
        Unary::Square => map_with(a, out, |x| x * x),
        Unary::Abs => map_with(a, out, |x| x.abs()),
        Unary::Relu => map_with(a, out, |x| if x > zero { x } else { zero }),
        Unary::Sqrt => map_with(a, out, |x| x.sqrt()),
        Unary::Recip => map_with(a, out, |x| one / x),
        Unary::PositiveMask => map_with(a, out, |x| if x > zero { one } else { zero }),
        Unary::Sign => map_with(a, out, |x| {
            if x > zero {
                one
            } else if x < zero {
                -one
            } else {
                zero
            }
        }),
        Unary::Act(act, k) => with_act!(act, A => match k {
            0 => map_with(a, out, |x| A::derivs(x)[0]),
            1 => map_with(a, out, |x| A::derivs(x)[1]),
            2 => map_with(a, out, |x| A::derivs(x)[2]),
            _ => map_with(a, out, |x| A::derivs(x)[3]),
        }),
    }
}

#[inline(always)]
fn apply<T: Float>(op: Binary, x: T, y: T) -> T {
    match op {
        Binary::Add => x + y,
        Binary::Sub => x - y,
        Binary::Mul => x * y,
        Binary::Div => x / y,
    }
}

#[inline(always)]
fn zip_same<T: Float>(op: Binary, a: &[T], b: &[T], out: &mut [T]) {
    match op {
        Binary::Add => {
            for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
                *o = x + y;
            }
        }
        Binary::Sub => {
            for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
                *o = x - y;
            }
        }
        Binary::Mul => {
            for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
                *o = x * y;
            }
        }
        Binary::Div => {
            for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
                *o = x / y;
            }
        }
    }
}

/// `out = a op b` with `b` broadcast as `bc` says; `a` is `rows × cols`.
#[multiversion(targets("x86_64+avx512f+avx512vl+avx512dq+avx2+fma", "x86_64+avx2+fma"))]
pub fn zip<T: Float>(
    op: Binary,
    bc: Bcast,
    rows: usize,
    cols: usize,
    a: &[T],
    b: &[T],
    out: &mut [T],
) {
    match bc {
        Bcast::Same => zip_same(op, a, b, out),
        Bcast::Row => {
            for (orow, arow) in out.chunks_exact_mut(cols).zip(a.chunks_exact(cols)) {
                zip_same(op, arow, b, orow);
            }
        }
        Bcast::Col => {
            for ((orow, arow), &y) in out.chunks_exact_mut(cols).zip(a.chunks_exact(cols)).zip(b) {
                for (o, &x) in orow.iter_mut().zip(arow) {
                    *o = apply(op, x, y);
                }
            }
        }
        Bcast::Scalar => {
            let y = b[0];
            for (o, &x) in out.iter_mut().zip(a) {
                *o = apply(op, x, y);
            }
        }
        Bcast::Blocks => {
            let block = b.len();
            let _ = rows;
            for (oblk, ablk) in out.chunks_exact_mut(block).zip(a.chunks_exact(block)) {
                zip_same(op, ablk, b, oblk);
            }
        }
    }
}

/// `out (rows × 1)` = the sum of each row of `a`.
pub fn sum_cols<T: Float>(cols: usize, a: &[T], out: &mut [T]) {
    if cols == 0 {
        out.fill(T::ZERO);
        return;
    }
    for (o, row) in out.iter_mut().zip(a.chunks_exact(cols)) {
        let mut s = T::ZERO;
        for &x in row {
            s += x;
        }
        *o = s;
    }
}

/// `out (1 × cols)` = the sum of each column of `a`.
#[multiversion(targets("x86_64+avx512f+avx512vl+avx512dq+avx2+fma", "x86_64+avx2+fma"))]
pub fn sum_rows<T: Float>(cols: usize, a: &[T], out: &mut [T]) {
    out.fill(T::ZERO);
    if cols == 0 {
        return;
    }
    for row in a.chunks_exact(cols) {
        for (o, &x) in out.iter_mut().zip(row) {
            *o += x;
        }
    }
}

/// `out (block)` = the sum of the consecutive blocks of `a`, each `out.len()` long.
#[multiversion(targets("x86_64+avx512f+avx512vl+avx512dq+avx2+fma", "x86_64+avx2+fma"))]
pub fn sum_blocks<T: Float>(a: &[T], out: &mut [T]) {
    out.fill(T::ZERO);
    if out.is_empty() {
        return;
    }
    for blk in a.chunks_exact(out.len()) {
        for (o, &x) in out.iter_mut().zip(blk) {
            *o += x;
        }
    }
}

/// The sum of all entries, accumulated in `f64`.
pub fn sum_all<T: Float>(a: &[T]) -> f64 {
    let mut s = 0.0f64;
    for chunk in a.chunks(64) {
        let mut c = T::ZERO;
        for &x in chunk {
            c += x;
        }
        s += c.to_f64();
    }
    s
}

/// The sum of squares of all entries, accumulated in `f64`.
pub fn sum_squares<T: Float>(a: &[T]) -> f64 {
    let mut s = 0.0f64;
    for chunk in a.chunks(64) {
        let mut c = T::ZERO;
        for &x in chunk {
            c += x * x;
        }
        s += c.to_f64();
    }
    s
}

/// `out (upto + 1 slices)`: `f⁽ʲ⁾(a)` for `j = 0..=upto` in one pass.
pub fn act_derivs<T: Float>(act: Activation, a: &[T], outs: &mut [&mut [T]]) {
    with_act!(act, A => act_derivs_for::<T, A>(a, outs))
}

#[multiversion(targets("x86_64+avx512f+avx512vl+avx512dq+avx2+fma", "x86_64+avx2+fma"))]
fn act_derivs_for<T: Float, A: ActFn>(a: &[T], outs: &mut [&mut [T]]) {
    match outs {
        [o0] => map_with(a, o0, |x| A::derivs(x)[0]),
        [o0, o1] => {
            for ((p0, p1), &x) in o0.iter_mut().zip(o1.iter_mut()).zip(a) {
                let d = A::derivs(x);
                *p0 = d[0];
                *p1 = d[1];
            }
        }
        [o0, o1, o2] => {
            for (((p0, p1), p2), &x) in o0.iter_mut().zip(o1.iter_mut()).zip(o2.iter_mut()).zip(a) {
                let d = A::derivs(x);
                *p0 = d[0];
                *p1 = d[1];
                *p2 = d[2];
            }
        }
        _ => panic!("act_derivs: 1 to 3 outputs"),
    }
}

/// `Σⱼ gⱼ ∘ f⁽ʲ⁺¹⁾(a)` over the given output gradients (`None`: zero), the
/// gradient of [`act_derivs`] with respect to `a`.
pub fn act_derivs_backward<T: Float>(
    act: Activation,
    a: &[T],
    grads: &[Option<&[T]>],
    out: &mut [T],
) {
    let g = |j: usize| grads.get(j).copied().flatten();
    with_act!(act, A => match (g(0), g(1), g(2)) {
        (None, None, None) => out.fill(T::ZERO),
        (Some(x), None, None) => act_bwd::<T, A, true, false, false>(a, x, a, a, out),
        (None, Some(y), None) => act_bwd::<T, A, false, true, false>(a, a, y, a, out),
        (None, None, Some(z)) => act_bwd::<T, A, false, false, true>(a, a, a, z, out),
        (Some(x), Some(y), None) => act_bwd::<T, A, true, true, false>(a, x, y, a, out),
        (Some(x), None, Some(z)) => act_bwd::<T, A, true, false, true>(a, x, a, z, out),
        (None, Some(y), Some(z)) => act_bwd::<T, A, false, true, true>(a, a, y, z, out),
        (Some(x), Some(y), Some(z)) => act_bwd::<T, A, true, true, true>(a, x, y, z, out),
    })
}

/// The backward loop for one set of present gradients (`G0…G2`; absent
/// ones are passed as any slice and not read).
#[multiversion(targets("x86_64+avx512f+avx512vl+avx512dq+avx2+fma", "x86_64+avx2+fma"))]
fn act_bwd<T: Float, A: ActFn, const G0: bool, const G1: bool, const G2: bool>(
    a: &[T],
    g0: &[T],
    g1: &[T],
    g2: &[T],
    out: &mut [T],
) {
    let n = out.len();
    let (a, g0, g1, g2) = (&a[..n], &g0[..n], &g1[..n], &g2[..n]);
    for i in 0..n {
        let d = A::derivs(a[i]);
        let mut s = T::ZERO;
        if G0 {
            s += g0[i] * d[1];
        }
        if G1 {
            s += g1[i] * d[2];
        }
        if G2 {
            s += g2[i] * d[3];
        }
        out[i] = s;
    }
}

/// How the second-order part of a jet is carried through an activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecondMode {
    /// First order only.
    None,
    /// One second derivative per direction (`m·n × k`).
    PerDirection,
    /// The sum over directions (`n × k`): the trace of the Hessian.
    Trace,
}

/// Forward rule of a jet through `y = f(a)` given `f1 = f'(a)`, `f2 = f''(a)`
/// (`n × k`, one block): tangents `t` (`m` blocks) become `f1 ∘ t`, the
/// second-order part `s` becomes `f2 ∘ t² + f1 ∘ s` per direction, or
/// `f2 ∘ Σⱼ tⱼ² + f1 ∘ s` in trace mode (`s` absent: zero).
#[multiversion(targets("x86_64+avx512f+avx512vl+avx512dq+avx2+fma", "x86_64+avx2+fma"))]
#[allow(clippy::too_many_arguments)]
pub fn jet_tangent<T: Float>(
    mode: SecondMode,
    f1: &[T],
    f2: &[T],
    t: &[T],
    s: Option<&[T]>,
    t_out: &mut [T],
    s_out: &mut [T],
) {
    let block = f1.len();
    for (to, ti) in t_out.chunks_exact_mut(block).zip(t.chunks_exact(block)) {
        for ((o, &x), &d) in to.iter_mut().zip(ti).zip(f1) {
            *o = d * x;
        }
    }
    match mode {
        SecondMode::None => {}
        SecondMode::PerDirection => {
            for (j, (so, ti)) in s_out
                .chunks_exact_mut(block)
                .zip(t.chunks_exact(block))
                .enumerate()
            {
                match s {
                    Some(s) => {
                        let si = &s[j * block..(j + 1) * block];
                        for ((((o, &x), &a2), &d1), &d2) in
                            so.iter_mut().zip(ti).zip(si).zip(f1).zip(f2)
                        {
                            *o = d2 * x * x + d1 * a2;
                        }
                    }
                    None => {
                        for ((o, &x), &d2) in so.iter_mut().zip(ti).zip(f2) {
                            *o = d2 * x * x;
                        }
                    }
                }
            }
        }
        SecondMode::Trace => {
            s_out.fill(T::ZERO);
            for ti in t.chunks_exact(block) {
                for (o, &x) in s_out.iter_mut().zip(ti) {
                    *o += x * x;
                }
            }
            match s {
                Some(s) => {
                    for ((((o, &a2), &d1), &d2), _) in
                        s_out.iter_mut().zip(s).zip(f1).zip(f2).zip(0..)
                    {
                        *o = d2 * *o + d1 * a2;
                    }
                }
                None => {
                    for (o, &d2) in s_out.iter_mut().zip(f2) {
                        *o = d2 * *o;
                    }
                }
            }
        }
    }
}

/// Gradients of [`jet_tangent`]: from the output gradients `gt` (tangents)
/// and `gs` (second order), writes `dt`, `ds` (when `s` was given), `df1`,
/// `df2`; a `None` output gradient counts as zero.
#[multiversion(targets("x86_64+avx512f+avx512vl+avx512dq+avx2+fma", "x86_64+avx2+fma"))]
#[allow(clippy::too_many_arguments)]
pub fn jet_tangent_backward<T: Float>(
    mode: SecondMode,
    f1: &[T],
    f2: &[T],
    t: &[T],
    s: Option<&[T]>,
    gt: Option<&[T]>,
    gs: Option<&[T]>,
    dt: &mut [T],
    ds: &mut [T],
    df1: &mut [T],
    df2: &mut [T],
) {
    let block = f1.len();
    let two = T::from_f64(2.0);
    df1.fill(T::ZERO);
    df2.fill(T::ZERO);
    // Tangent path: t' = f1 ∘ t.
    match gt {
        Some(gt) => {
            for ((dtb, tb), gtb) in dt
                .chunks_exact_mut(block)
                .zip(t.chunks_exact(block))
                .zip(gt.chunks_exact(block))
            {
                for ((((o, &x), &g), &d1), acc) in
                    dtb.iter_mut().zip(tb).zip(gtb).zip(f1).zip(df1.iter_mut())
                {
                    *o = d1 * g;
                    *acc += x * g;
                }
            }
        }
        None => dt.fill(T::ZERO),
    }
    let Some(gs) = gs else {
        ds.fill(T::ZERO);
        return;
    };
    match mode {
        SecondMode::None => {}
        SecondMode::PerDirection => {
            for (j, ((dtb, tb), gsb)) in dt
                .chunks_exact_mut(block)
                .zip(t.chunks_exact(block))
                .zip(gs.chunks_exact(block))
                .enumerate()
            {
                for i in 0..block {
                    let g = gsb[i];
                    let x = tb[i];
                    dtb[i] += two * f2[i] * x * g;
                    df2[i] += x * x * g;
                }
                if let Some(s) = s {
                    let sb = &s[j * block..(j + 1) * block];
                    let dsb = &mut ds[j * block..(j + 1) * block];
                    for i in 0..block {
                        dsb[i] = f1[i] * gsb[i];
                        df1[i] += sb[i] * gsb[i];
                    }
                }
            }
        }
        SecondMode::Trace => {
            for (dtb, tb) in dt.chunks_exact_mut(block).zip(t.chunks_exact(block)) {
                for i in 0..block {
                    let x = tb[i];
                    dtb[i] += two * f2[i] * x * gs[i];
                    df2[i] += x * x * gs[i];
                }
            }
            if let Some(s) = s {
                for i in 0..block {
                    ds[i] = f1[i] * gs[i];
                    df1[i] += s[i] * gs[i];
                }
            }
        }
    }
}

/// Adam's update of one parameter in place, with bias-corrected moments:
/// `m ← β₁m + (1−β₁)g`, `v ← β₂v + (1−β₂)g²`, `p ← p − lr·m̂/(√v̂ + ε)`.
#[multiversion(targets("x86_64+avx512f+avx512vl+avx512dq+avx2+fma", "x86_64+avx2+fma"))]
#[allow(clippy::too_many_arguments)]
pub fn adam<T: Float>(
    p: &mut [T],
    g: &[T],
    m: &mut [T],
    v: &mut [T],
    lr: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
    step: i32,
    grad_scale: f64,
) {
    let b1 = T::from_f64(beta1);
    let b2 = T::from_f64(beta2);
    let c1 = T::from_f64(1.0 - beta1);
    let c2 = T::from_f64(1.0 - beta2);
    let mc = T::from_f64(1.0 / (1.0 - beta1.powi(step)));
    let vc = T::from_f64(1.0 / (1.0 - beta2.powi(step)));
    let lr = T::from_f64(lr);
    let eps = T::from_f64(eps);
    let gs = T::from_f64(grad_scale);
    for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
        let g = g * gs;
        *m = b1 * *m + c1 * g;
        *v = b2 * *v + c2 * g * g;
        let mhat = *m * mc;
        let vhat = *v * vc;
        *p -= lr * mhat / (vhat.sqrt() + eps);
    }
}
