//! The dfdx backend: every kernel of [`super`] written with dfdx's own
//! tensor ops, on dfdx's CPU device (the `Reference` backend, which tests
//! compare the native kernels with) or on CUDA (`--features cuda`), where
//! it keeps every matrix on the GPU.
//!
//! Nothing here is tuned; each kernel is the plainest composition of dfdx
//! ops that gives the same values as the native kernel in [`super::cpu`].

use dfdx::prelude::*;
use dfdx::tensor::Cpu;

use super::activation::Activation;
use super::cpu::SecondMode;
use super::float::Precision;
use super::{Bcast, Binary, Unary, Update};
use crate::device::{Backend, Device, DeviceError};

type M<E, D> = Tensor<(usize, usize), E, D>;

/// The dfdx devices a [`Device`] may use, opened once.
#[derive(Clone, Default)]
pub struct DfdxDevices {
    cpu: Option<Cpu>,
    #[cfg(feature = "cuda")]
    cuda: Option<dfdx::tensor::Cuda>,
}

impl DfdxDevices {
    /// Opens what `backend` needs.
    #[allow(clippy::needless_update)] // the CUDA field exists in `cuda` builds
    pub fn open(backend: Backend) -> Result<Self, DeviceError> {
        match backend {
            Backend::Cpu => Ok(Self::default()),
            Backend::Reference => Ok(Self {
                cpu: Some(Cpu::seed_from_u64(0)),
                ..Self::default()
            }),
            #[cfg(feature = "cuda")]
            Backend::Cuda => {
                let cuda = dfdx::tensor::Cuda::try_build(0, 0)
                    .map_err(|e| DeviceError::Cuda(format!("{e:?}")))?;
                Ok(Self {
                    cuda: Some(cuda),
                    ..Self::default()
                })
            }
            #[cfg(not(feature = "cuda"))]
            Backend::Cuda => Err(DeviceError::NoCuda),
        }
    }
}

/// A matrix stored as a dfdx tensor.
#[derive(Clone)]
pub enum DBuf {
    /// `f32` on dfdx's CPU device.
    Cpu32(M<f32, Cpu>),
    /// `f64` on dfdx's CPU device.
    Cpu64(M<f64, Cpu>),
    /// `f32` on CUDA.
    #[cfg(feature = "cuda")]
    Cuda32(M<f32, dfdx::tensor::Cuda>),
    /// `f64` on CUDA.
    #[cfg(feature = "cuda")]
    Cuda64(M<f64, dfdx::tensor::Cuda>),
}

/// Runs a generic body on the tensors of one or more `DBuf`s of the same
/// variant, wrapping the resulting tensor back.
macro_rules! each {
    ($($b:expr),+ ; |$($v:ident),+| $body:expr) => {
        match ($($b,)+) {
            ($(DBuf::Cpu32($v),)+) => DBuf::Cpu32($body),
            ($(DBuf::Cpu64($v),)+) => DBuf::Cpu64($body),
            #[cfg(feature = "cuda")]
            ($(DBuf::Cuda32($v),)+) => DBuf::Cuda32($body),
            #[cfg(feature = "cuda")]
            ($(DBuf::Cuda64($v),)+) => DBuf::Cuda64($body),
            #[allow(unreachable_patterns)]
            _ => panic!("operands on different dfdx devices or precisions"),
        }
    };
}

/// Like [`each!`] for a body returning something other than a tensor.
macro_rules! each_value {
    ($b:expr ; |$v:ident| $body:expr) => {
        match $b {
            DBuf::Cpu32($v) => $body,
            DBuf::Cpu64($v) => $body,
            #[cfg(feature = "cuda")]
            DBuf::Cuda32($v) => $body,
            #[cfg(feature = "cuda")]
            DBuf::Cuda64($v) => $body,
        }
    };
}

fn from_vec<E: Dtype, D: dfdx::tensor_ops::Device<E>>(
    dev: &D,
    data: &[f64],
    r: usize,
    c: usize,
) -> M<E, D> {
    let v: Vec<E> = data
        .iter()
        .map(|&x| E::from_f64(x).expect("representable"))
        .collect();
    dev.tensor_from_vec(v, (r, c))
}

fn e<E: Dtype>(x: f64) -> E {
    E::from_f64(x).expect("representable")
}

impl DBuf {
    /// A `rows × cols` tensor on `dev` from row-major host values.
    pub fn from_host(dev: &Device, data: &[f64], rows: usize, cols: usize) -> Self {
        let (n, c) = (rows, cols);
        match (dev.backend(), dev.precision()) {
            (Backend::Reference, Precision::F32) => DBuf::Cpu32(from_vec(
                dev.dfdx.cpu.as_ref().expect("reference device"),
                data,
                n,
                c,
            )),
            (Backend::Reference, Precision::F64) => DBuf::Cpu64(from_vec(
                dev.dfdx.cpu.as_ref().expect("reference device"),
                data,
                n,
                c,
            )),
            #[cfg(feature = "cuda")]
            (Backend::Cuda, Precision::F32) => DBuf::Cuda32(from_vec(
                dev.dfdx.cuda.as_ref().expect("cuda device"),
                data,
                n,
                c,
            )),
            #[cfg(feature = "cuda")]
            (Backend::Cuda, Precision::F64) => DBuf::Cuda64(from_vec(
                dev.dfdx.cuda.as_ref().expect("cuda device"),
                data,
                n,
                c,
            )),
            (b, _) => panic!("no dfdx storage for backend {b:?}"),
        }
    }

    /// The same values viewed as `rows × cols`.
    pub fn reshaped(&self, rows: usize, cols: usize) -> Self {
        self.clone().shaped(rows, cols)
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        each_value!(self; |t| { let (r, c) = *t.shape(); r * c })
    }

    /// Whether there are no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The element precision.
    pub fn precision(&self) -> Precision {
        match self {
            DBuf::Cpu32(_) => Precision::F32,
            DBuf::Cpu64(_) => Precision::F64,
            #[cfg(feature = "cuda")]
            DBuf::Cuda32(_) => Precision::F32,
            #[cfg(feature = "cuda")]
            DBuf::Cuda64(_) => Precision::F64,
        }
    }

    /// The backend the tensor lives on.
    pub fn backend(&self) -> Backend {
        match self {
            DBuf::Cpu32(_) | DBuf::Cpu64(_) => Backend::Reference,
            #[cfg(feature = "cuda")]
            DBuf::Cuda32(_) | DBuf::Cuda64(_) => Backend::Cuda,
        }
    }

    /// The values as `f64`, row-major.
    pub fn to_host(&self) -> Vec<f64> {
        each_value!(self; |t| t.as_vec().into_iter().map(|x| num_traits::ToPrimitive::to_f64(&x).expect("float")).collect())
    }

    fn shaped(self, r: usize, c: usize) -> Self {
        each!(self; |t| t.reshape_like(&(r, c)))
    }
}

/// Gives the dfdx tensor of `b` the shape `(r, c)` (storage is kept flat
/// until an op needs its shape).
fn sh(b: &DBuf, r: usize, c: usize) -> DBuf {
    b.clone().shaped(r, c)
}

fn dims(b: &DBuf) -> (usize, usize) {
    each_value!(b; |t| *t.shape())
}

/// Op helpers: `matmul` with transposes.
pub fn matmul(a: &DBuf, ta: bool, b: &DBuf, tb: bool) -> DBuf {
    each!(a, b; |x, y| {
        let x = if ta { x.clone().permute::<(usize, usize), Axes2<1, 0>>() } else { x.clone() };
        let y = if tb { y.clone().permute::<(usize, usize), Axes2<1, 0>>() } else { y.clone() };
        x.matmul(y)
    })
}

/// `x·W + b`.
pub fn affine(x: &DBuf, w: &DBuf, b: &DBuf) -> DBuf {
    let xw = matmul(x, false, w, false);
    let (n, k) = dims(&xw);
    let b = sh(b, 1, k);
    zip(&xw, &b, Binary::Add, Bcast::Row, (n, k), (1, k))
}

fn act_f<E: Dtype, D: dfdx::tensor_ops::Device<E>>(x: &M<E, D>, act: Activation, k: u8) -> M<E, D> {
    let one = |t: &M<E, D>| t.device().ones_like(t);
    match act {
        Activation::Softplus => {
            let s = x.clone().sigmoid();
            match k {
                0 => {
                    let l = (x.clone().abs().negate().exp() + e::<E>(1.0)).ln();
                    x.clone().relu() + l
                }
                1 => s,
                2 => s.clone() - s.square(),
                _ => {
                    let q = s.clone() - s.clone().square();
                    q * (one(&s) - s * e::<E>(2.0))
                }
            }
        }
        Activation::Tanh => {
            let t = x.clone().tanh();
            let f1 = one(&t) - t.clone().square();
            match k {
                0 => t,
                1 => f1,
                2 => f1 * t * e::<E>(-2.0),
                _ => f1 * (one(&t) - t.square() * e::<E>(3.0)) * e::<E>(-2.0),
            }
        }
        Activation::Sigmoid => {
            let s = x.clone().sigmoid();
            let q = s.clone() - s.clone().square();
            match k {
                0 => s,
                1 => q,
                2 => q * (one(&s) - s * e::<E>(2.0)),
                _ => q.clone() * (one(&q) - q * e::<E>(6.0)),
            }
        }
        Activation::Swish => {
            let s = x.clone().sigmoid();
            let q = s.clone() - s.clone().square();
            let u = one(&s) - s.clone() * e::<E>(2.0);
            match k {
                0 => x.clone() * s,
                1 => s + x.clone() * q,
                2 => q * (x.clone() * u + e::<E>(2.0)),
                _ => {
                    q.clone()
                        * (u.clone() * e::<E>(3.0) + x.clone() * u.square()
                            - x.clone() * q * e::<E>(2.0))
                }
            }
        }
        Activation::Elu => {
            let ex = x.clone().negate().relu().negate().exp();
            match k {
                0 => x.clone().relu() + ex - e::<E>(1.0),
                1 => ex,
                _ => {
                    let zeros = x.device().zeros_like(x);
                    let mask = x.clone().gt(&zeros).choose(one(x), zeros);
                    ex - mask
                }
            }
        }
    }
}

/// Elementwise `op(a)`.
pub fn map(a: &DBuf, op: Unary) -> DBuf {
    each!(a; |x| map_t(x.clone(), op))
}

fn map_t<E: Dtype, D: dfdx::tensor_ops::Device<E>>(x: M<E, D>, op: Unary) -> M<E, D> {
    match op {
        Unary::Neg => x.negate(),
        Unary::Scale(c) => x * e::<E>(c.get()),
        Unary::AddScalar(c) => x + e::<E>(c.get()),
        Unary::Exp => x.exp(),
        Unary::Ln => x.ln(),
        Unary::Tanh => x.tanh(),
        Unary::Sigmoid => x.sigmoid(),
        Unary::Softplus => act_f(&x, Activation::Softplus, 0),
        Unary::Square => x.square(),
        Unary::Abs => x.abs(),
        Unary::Relu => x.relu(),
        Unary::Sqrt => x.sqrt(),
        Unary::Recip => x.recip(),
        Unary::PositiveMask => {
            let z = x.device().zeros_like(&x);
            let o = x.device().ones_like(&x);
            x.gt(&z).choose(o, z)
        }
        Unary::Sign => {
            let z = x.device().zeros_like(&x);
            let o = x.device().ones_like(&x);
            let pos = x.gt(&z).choose(o.clone(), z.clone());
            let neg = x.lt(&z).choose(o, z);
            pos - neg
        }
        Unary::Act(act, k) => act_f(&x, act, k),
    }
}

fn bin<E: Dtype, D: dfdx::tensor_ops::Device<E>>(op: Binary, x: M<E, D>, y: M<E, D>) -> M<E, D> {
    match op {
        Binary::Add => x + y,
        Binary::Sub => x - y,
        Binary::Mul => x * y,
        Binary::Div => x / y,
    }
}

/// `a op b` with broadcasting.
pub fn zip(
    a: &DBuf,
    b: &DBuf,
    op: Binary,
    bc: Bcast,
    ashape: (usize, usize),
    bshape: (usize, usize),
) -> DBuf {
    let (r, c) = ashape;
    let a = sh(a, r, c);
    let b = sh(b, bshape.0, bshape.1);
    let b = match bc {
        Bcast::Same => b,
        Bcast::Row | Bcast::Col | Bcast::Scalar => broadcast(&b, bshape, (r, c)),
        Bcast::Blocks => tile_blocks(&b, r / bshape.0.max(1)),
    };
    each!(&a, &b; |x, y| bin(op, x.clone(), y.clone()))
}

/// Row sums.
pub fn sum_cols(a: &DBuf) -> DBuf {
    let (r, _) = dims(a);
    each!(a; |x| x.clone().sum::<(usize,), Axis<1>>().reshape_like(&(r, 1)))
}

/// Column sums.
pub fn sum_rows(a: &DBuf) -> DBuf {
    let (_, c) = dims(a);
    each!(a; |x| x.clone().sum::<(usize,), Axis<0>>().reshape_like(&(1, c)))
}

/// The sum of all entries.
pub fn sum_all(a: &DBuf) -> DBuf {
    each!(a; |x| x.clone().sum::<(), _>().reshape_like(&(1, 1)))
}

/// The sum of stacked blocks.
pub fn sum_blocks(a: &DBuf, blocks: usize) -> DBuf {
    let (r, c) = dims(a);
    let n = r / blocks;
    each!(a; |x| x.clone().reshape_like(&(blocks, n, c)).sum::<(usize, usize), Axis<0>>().reshape_like(&(n, c)))
}

/// The sum of squares of all entries.
pub fn sum_squares(a: &DBuf) -> f64 {
    let s = each!(a; |x| x.clone().square().sum::<(), _>().reshape_like(&(1, 1)));
    s.to_host()[0]
}

/// Broadcasts a row, column or scalar.
pub fn broadcast(a: &DBuf, from: (usize, usize), to: (usize, usize)) -> DBuf {
    let (r, c) = from;
    let (rows, cols) = to;
    each!(a; |x| {
        let x = x.clone().reshape_like(&(r, c));
        if r == 1 && c == 1 {
            x.reshape_like(&()).broadcast_like::<_, Axes2<0, 1>>(&(rows, cols)).contiguous()
        } else if r == 1 {
            x.reshape_like(&(c,)).broadcast_like::<_, Axis<0>>(&(rows, cols)).contiguous()
        } else if c == 1 {
            x.reshape_like(&(r,)).broadcast_like::<_, Axis<1>>(&(rows, cols)).contiguous()
        } else {
            x
        }
    })
}

/// `m` stacked copies.
pub fn tile_blocks(a: &DBuf, m: usize) -> DBuf {
    let (r, c) = dims(a);
    each!(a; |x| x.clone().broadcast_like::<_, Axis<0>>(&(m, r, c)).reshape_like(&(m * r, c)))
}

/// Transpose.
pub fn transpose(a: &DBuf) -> DBuf {
    each!(a; |x| x.clone().permute::<(usize, usize), Axes2<1, 0>>().contiguous())
}

fn idx_tensor<E: Dtype, D: dfdx::tensor_ops::Device<E>>(
    like: &M<E, D>,
    idx: &[usize],
) -> Tensor<(usize,), usize, D> {
    like.device().tensor_from_vec(idx.to_vec(), (idx.len(),))
}

/// Columns `idx`.
pub fn select_cols(a: &DBuf, idx: &[usize]) -> DBuf {
    each!(a; |x| {
        let i = idx_tensor(x, idx);
        let t = x.clone().permute::<(usize, usize), Axes2<1, 0>>();
        let s: M<_, _> = t.contiguous().gather(i);
        s.permute::<(usize, usize), Axes2<1, 0>>().contiguous()
    })
}

/// Columns placed at `idx` of a zero matrix of `width` columns (indices unique).
pub fn scatter_cols(a: &DBuf, idx: &[usize], width: usize) -> DBuf {
    let (r, k) = dims(a);
    let mut src = vec![k; width];
    for (j, &t) in idx.iter().enumerate() {
        assert_eq!(src[t], k, "reference scatter_cols: repeated index {t}");
        src[t] = j;
    }
    each!(a; |x| {
        let z = x.device().zeros_like(&(r, 1usize));
        let padded = (x.clone(), z).concat_along(Axis::<1>);
        let padded: M<_, _> = padded.reshape_like(&(r, k + 1));
        let i = idx_tensor(x, &src);
        let t = padded.permute::<(usize, usize), Axes2<1, 0>>();
        let s: M<_, _> = t.contiguous().gather(i);
        s.permute::<(usize, usize), Axes2<1, 0>>().contiguous()
    })
}

/// Rows `start..start + rows`.
pub fn row_block(a: &DBuf, start: usize, rows: usize) -> DBuf {
    each!(a; |x| x.clone().slice((start..start + rows, ..)).reshape_like(&(rows, dims_of(x).1)))
}

fn dims_of<E: Dtype, D: dfdx::tensor_ops::Device<E>>(x: &M<E, D>) -> (usize, usize) {
    *x.shape()
}

/// Stacks matrices vertically.
pub fn vstack(parts: &[&DBuf]) -> DBuf {
    let mut acc = parts[0].clone();
    for p in &parts[1..] {
        let (r1, c) = dims(&acc);
        let (r2, _) = dims(p);
        acc = each!(&acc, *p; |x, y| (x.clone(), y.clone()).concat_along(Axis::<0>).reshape_like(&(r1 + r2, c)));
    }
    acc
}

/// Gradient of the activation derivatives.
pub fn act_derivs_backward(
    a: &DBuf,
    act: Activation,
    grads: &[Option<crate::device::Mat>],
) -> DBuf {
    let (r, c) = dims(a);
    let mut acc: Option<DBuf> = None;
    for (j, g) in grads.iter().enumerate() {
        let Some(g) = g else { continue };
        let g = match &*g.buf {
            super::Buf::Dfdx(d) => sh(d, r, c),
            _ => panic!("mixed backends"),
        };
        let d = map(a, Unary::Act(act, (j + 1) as u8));
        let t = zip(&g, &d, Binary::Mul, Bcast::Same, (r, c), (r, c));
        acc = Some(match acc {
            Some(x) => zip(&x, &t, Binary::Add, Bcast::Same, (r, c), (r, c)),
            None => t,
        });
    }
    acc.unwrap_or_else(|| each!(a; |x| x.device().zeros_like(x)))
}

/// The jet rule through an activation.
pub fn jet_tangent(
    mode: SecondMode,
    f1: &DBuf,
    f2: &DBuf,
    t: &DBuf,
    s: Option<&DBuf>,
) -> (DBuf, Option<DBuf>) {
    let (n, k) = dims(f1);
    let (tr, _) = dims(t);
    let m = tr / n.max(1);
    let tf = zip(t, f1, Binary::Mul, Bcast::Blocks, (tr, k), (n, k));
    let so = match mode {
        SecondMode::None => None,
        SecondMode::PerDirection => {
            let t2 = map(t, Unary::Square);
            let a = zip(&t2, f2, Binary::Mul, Bcast::Blocks, (tr, k), (n, k));
            Some(match s {
                Some(s) => {
                    let b = zip(s, f1, Binary::Mul, Bcast::Blocks, (tr, k), (n, k));
                    zip(&a, &b, Binary::Add, Bcast::Same, (tr, k), (tr, k))
                }
                None => a,
            })
        }
        SecondMode::Trace => {
            let t2 = sum_blocks(&map(t, Unary::Square), m.max(1));
            let a = zip(&t2, f2, Binary::Mul, Bcast::Same, (n, k), (n, k));
            Some(match s {
                Some(s) => {
                    let b = zip(s, f1, Binary::Mul, Bcast::Same, (n, k), (n, k));
                    zip(&a, &b, Binary::Add, Bcast::Same, (n, k), (n, k))
                }
                None => a,
            })
        }
    };
    (tf, so)
}

/// Gradients of the jet rule: `[dt, ds, df1, df2]`.
pub fn jet_tangent_backward(
    mode: SecondMode,
    f1: &DBuf,
    f2: &DBuf,
    t: &DBuf,
    s: Option<&DBuf>,
    gt: Option<&DBuf>,
    gs: Option<&DBuf>,
) -> [Option<DBuf>; 4] {
    let (n, k) = dims(f1);
    let (tr, _) = dims(t);
    let m = (tr / n.max(1)).max(1);
    let zeros = |b: &DBuf| each!(b; |x| x.device().zeros_like(x));
    let add = |a: DBuf, b: DBuf, shape| zip(&a, &b, Binary::Add, Bcast::Same, shape, shape);
    let mut dt = zeros(t);
    let mut df1 = zeros(f1);
    let mut df2 = zeros(f1);
    let mut ds = s.map(zeros);
    if let Some(gt) = gt {
        dt = zip(gt, f1, Binary::Mul, Bcast::Blocks, (tr, k), (n, k));
        let tg = zip(t, gt, Binary::Mul, Bcast::Same, (tr, k), (tr, k));
        df1 = sum_blocks(&tg, m);
    }
    if let Some(gs) = gs {
        let gsb = match mode {
            SecondMode::PerDirection => gs.clone(),
            _ => tile_blocks(gs, m),
        };
        if mode != SecondMode::None {
            // dt += 2 f2 t gs; df2 += Σ t² gs.
            let tgs = zip(t, &gsb, Binary::Mul, Bcast::Same, (tr, k), (tr, k));
            let a = zip(&tgs, f2, Binary::Mul, Bcast::Blocks, (tr, k), (n, k));
            dt = add(dt, map(&a, Unary::Scale(super::Bits::new(2.0))), (tr, k));
            let t2g = zip(&tgs, t, Binary::Mul, Bcast::Same, (tr, k), (tr, k));
            df2 = add(df2, sum_blocks(&t2g, m), (n, k));
            if let Some(s) = s {
                let (sr, _) = dims(s);
                ds = Some(match mode {
                    SecondMode::PerDirection => {
                        zip(gs, f1, Binary::Mul, Bcast::Blocks, (sr, k), (n, k))
                    }
                    _ => zip(gs, f1, Binary::Mul, Bcast::Same, (n, k), (n, k)),
                });
                let sg = zip(s, gs, Binary::Mul, Bcast::Same, (sr, k), (sr, k));
                let sg = if sr == n { sg } else { sum_blocks(&sg, sr / n) };
                df1 = add(df1, sg, (n, k));
            }
        }
    }
    [Some(dt), ds, Some(df1), Some(df2)]
}

/// Basis-direction tangents of a linear layer.
pub fn basis_rows(w: &DBuf, start: usize, count: usize, n: usize) -> DBuf {
    let rows = row_block(w, start, count);
    let (_, c) = dims(&rows);
    // (count, c) → (count, n, c) → (count·n, c)
    each!(&rows; |x| x.clone().broadcast_like::<_, Axis<1>>(&(count, n, c)).reshape_like(&(count * n, c)))
}

/// Gradient of [`basis_rows`].
pub fn basis_rows_backward(g: &DBuf, start: usize, count: usize, w_rows: usize) -> DBuf {
    let (gr, c) = dims(g);
    let n = gr / count;
    let sums = each!(g; |x| x.clone().reshape_like(&(count, n, c)).sum::<(usize, usize), Axis<1>>().reshape_like(&(count, c)));
    let before = each!(&sums; |x| x.device().zeros_like(&(start, c)));
    let after = each!(&sums; |x| x.device().zeros_like(&(w_rows - start - count, c)));
    vstack(&[&before, &sums, &after])
}

/// `Σⱼ a[j·n + r, start + j]`.
pub fn block_diagonal_sum(a: &DBuf, start: usize, count: usize) -> DBuf {
    let (r, c) = dims(a);
    let n = r / count;
    // Mask of the diagonal entries, built on the host.
    let mut mask = vec![0.0; r * c];
    for j in 0..count {
        for i in 0..n {
            mask[(j * n + i) * c + start + j] = 1.0;
        }
    }
    let m = each!(a; |x| from_vec(x.device(), &mask, r, c));
    let am = zip(a, &m, Binary::Mul, Bcast::Same, (r, c), (r, c));
    sum_blocks(&sum_cols(&am), count)
}

/// Gradient of [`block_diagonal_sum`].
pub fn block_diagonal_sum_backward(g: &DBuf, start: usize, count: usize, cols: usize) -> DBuf {
    let (n, _) = dims(g);
    let r = count * n;
    let mut mask = vec![0.0; r * cols];
    for j in 0..count {
        for i in 0..n {
            mask[(j * n + i) * cols + start + j] = 1.0;
        }
    }
    let m = each!(g; |x| from_vec(x.device(), &mask, r, cols));
    let gt = tile_blocks(g, count);
    zip(&m, &gt, Binary::Mul, Bcast::Col, (r, cols), (r, 1))
}

/// One optimizer update in place.
pub fn update(rule: Update, p: &mut DBuf, g: &DBuf, m: &mut DBuf, v: &mut DBuf, grad_scale: f64) {
    let shape = dims(p);
    let g = map(g, Unary::Scale(super::Bits::new(grad_scale)));
    let same = |a: &DBuf, b: &DBuf, op| zip(a, b, op, Bcast::Same, shape, shape);
    let sc = |a: &DBuf, c: f64| map(a, Unary::Scale(super::Bits::new(c)));
    match rule {
        Update::Adam {
            lr,
            beta1,
            beta2,
            eps,
            step,
        } => {
            *m = same(&sc(m, beta1), &sc(&g, 1.0 - beta1), Binary::Add);
            let g2 = map(&g, Unary::Square);
            *v = same(&sc(v, beta2), &sc(&g2, 1.0 - beta2), Binary::Add);
            let mhat = sc(m, 1.0 / (1.0 - beta1.powi(step)));
            let vhat = sc(v, 1.0 / (1.0 - beta2.powi(step)));
            let den = map(
                &map(&vhat, Unary::Sqrt),
                Unary::AddScalar(super::Bits::new(eps)),
            );
            let upd = sc(&same(&mhat, &den, Binary::Div), lr);
            *p = same(p, &upd, Binary::Sub);
        }
        Update::RmsProp { lr, rho, eps } => {
            let g2 = map(&g, Unary::Square);
            *v = same(&sc(v, rho), &sc(&g2, 1.0 - rho), Binary::Add);
            let den = map(
                &map(v, Unary::Sqrt),
                Unary::AddScalar(super::Bits::new(eps)),
            );
            let upd = sc(&same(&g, &den, Binary::Div), lr);
            *p = same(p, &upd, Binary::Sub);
        }
        Update::Sgd { lr, momentum } => {
            *m = same(&sc(m, momentum), &g, Binary::Add);
            *p = same(p, &sc(m, lr), Binary::Sub);
        }
    }
}

/// Row-major host values as a tensor on the device and in the precision of `like`.
pub fn from_host_as(like: &DBuf, data: &[f64], rows: usize, cols: usize) -> DBuf {
    each!(like; |x| from_vec(x.device(), data, rows, cols))
}

/// Zeros of the given shape on the device and in the precision of `like`.
pub fn zeros_as(like: &DBuf, rows: usize, cols: usize) -> DBuf {
    each!(like; |x| x.device().zeros_like(&(rows, cols)))
}
