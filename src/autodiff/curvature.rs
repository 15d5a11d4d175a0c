//! Backward propagation of curvature: estimates of the Hessian diagonal
//! `diag(∇ₓ²f)` of a scalar `f`, for the `approx_bp` and `cp` objectives.
//!
//! A [`Curvature`] is the backward signal at some layer's output: the exact
//! gradient `∂f/∂y` plus either
//! * approximate backprop (Becker & LeCun 1988; Kingma & LeCun 2010): `h₂`,
//!   the diagonal of `∂²f/∂y²`, propagated ignoring off-diagonal terms, or
//! * curvature propagation (Martens, Sutskever & Swersky 2012): two random
//!   matrices `Sᵣ, Sᵢ` with `E[SᵣSᵣᵀ − SᵢSᵢᵀ] = ∂²f/∂y²`, whose squares give
//!   an unbiased diagonal estimate.
//!
//! Models walk their layers from the output back to the input calling
//! [`Curvature::linear`], [`Curvature::elementwise`] and, for terms with a
//! known Hessian, [`Curvature::add_diagonal`] / [`Curvature::add_rank_one_centred`].
//! Everything is written with [`Graph`] ops, so the estimate is
//! differentiable in θ by the same single backward pass.

use rand::{Rng, RngCore};

use crate::autodiff::Graph;
use crate::device::{self, Mat, Precision};

/// Which estimator to propagate.
pub enum CurvatureMethod<'a> {
    /// Approximate backprop of the Hessian diagonal (deterministic, biased
    /// beyond one hidden layer).
    ApproxBp,
    /// Curvature propagation with fresh Rademacher vectors from `rng`
    /// (unbiased, stochastic).
    Cp {
        /// The run's random stream.
        rng: &'a mut dyn RngCore,
    },
}

#[derive(Clone)]
enum Signal {
    Diag(Mat),
    Cp { re: Mat, im: Mat },
}

/// The backward curvature signal at one layer's output.
#[derive(Clone)]
pub struct Curvature {
    /// `∂f/∂y` (`n × k`).
    pub grad: Mat,
    signal: Signal,
}

/// Guards √· against a zero argument so its derivative stays finite; masked
/// entries then contribute exactly zero to value and gradient. The floor is
/// the smallest value that keeps `1/(2√floor)` finite in the precision
/// (1e-200 in `f64` would round to 0 in `f32`).
fn sqrt_floor(precision: Precision) -> f64 {
    match precision {
        Precision::F64 => 1e-200,
        Precision::F32 => f32::MIN_POSITIVE as f64,
    }
}

fn rademacher(g: &Graph, rng: &mut dyn RngCore, rows: usize, cols: usize) -> Mat {
    let data = (0..rows * cols)
        .map(|_| if rng.gen::<bool>() { 1.0 } else { -1.0 })
        .collect();
    g.constant(data, rows, cols)
}

/// `(√max(m, 0), √max(−m, 0))` elementwise, with finite derivatives.
fn split_sqrt(g: &mut Graph, m: &Mat) -> (Mat, Mat) {
    let pos = g.positive_mask(m);
    let neg_m = g.neg(m);
    let neg = g.positive_mask(&neg_m);
    let a = g.abs(m);
    let a = g.add_scalar(&a, sqrt_floor(m.precision()));
    let r = g.sqrt(&a);
    (g.mul(&r, &pos), g.mul(&r, &neg))
}

impl Curvature {
    /// The signal at a scalar output `f` (`n × 1`), scaled by `seed`
    /// (e.g. −1 to differentiate `−E`): gradient `seed`, zero curvature.
    pub fn at_output(g: &Graph, n: usize, seed: f64, method: &CurvatureMethod<'_>) -> Self {
        let zero = g.filled(n, 1, 0.0);
        let signal = match method {
            CurvatureMethod::ApproxBp => Signal::Diag(zero),
            CurvatureMethod::Cp { .. } => Signal::Cp {
                re: zero.clone(),
                im: zero,
            },
        };
        Self {
            grad: g.filled(n, 1, seed),
            signal,
        }
    }

    /// A signal with gradient `grad` (`n × k`) and zero curvature.
    pub fn with_gradient(g: &Graph, grad: Mat, method: &CurvatureMethod<'_>) -> Self {
        let (n, k) = device::shape(&grad);
        let zero = g.filled(n, k, 0.0);
        let signal = match method {
            CurvatureMethod::ApproxBp => Signal::Diag(zero),
            CurvatureMethod::Cp { .. } => Signal::Cp {
                re: zero.clone(),
                im: zero,
            },
        };
        Self { grad, signal }
    }

    /// Back through `y = xW (+ b)` with `w` of shape `in × out`.
    pub fn linear(self, g: &mut Graph, w: &Mat) -> Self {
        let grad = g.matmul_t(&self.grad, w);
        let signal = match self.signal {
            Signal::Diag(h) => {
                let w2 = g.square(w);
                Signal::Diag(g.matmul_t(&h, &w2))
            }
            Signal::Cp { re, im } => Signal::Cp {
                re: g.matmul_t(&re, w),
                im: g.matmul_t(&im, w),
            },
        };
        Self { grad, signal }
    }

    /// Back through `y = x[:, idx]` seen from `y`'s side: the signal at the
    /// columns `idx` of a wider input (a 0/1 selection is its own square, so
    /// every signal is selected alike). Used for `y = xS` with `S` placing
    /// columns, whose transpose selects them.
    pub fn select_cols(self, g: &mut Graph, idx: &std::sync::Arc<[usize]>) -> Self {
        let grad = g.select_cols(&self.grad, idx);
        let signal = match self.signal {
            Signal::Diag(h) => Signal::Diag(g.select_cols(&h, idx)),
            Signal::Cp { re, im } => Signal::Cp {
                re: g.select_cols(&re, idx),
                im: g.select_cols(&im, idx),
            },
        };
        Self { grad, signal }
    }

    /// Back through `y = x[:, idx]`: the signal at `y` placed at columns
    /// `idx` of an input `width` wide (zero elsewhere).
    pub fn scatter_cols(self, g: &mut Graph, idx: &std::sync::Arc<[usize]>, width: usize) -> Self {
        let grad = g.scatter_cols(&self.grad, idx, width);
        let signal = match self.signal {
            Signal::Diag(h) => Signal::Diag(g.scatter_cols(&h, idx, width)),
            Signal::Cp { re, im } => Signal::Cp {
                re: g.scatter_cols(&re, idx, width),
                im: g.scatter_cols(&im, idx, width),
            },
        };
        Self { grad, signal }
    }

    /// Back through an elementwise `y = σ(a)` with `f1 = σ'(a)`, `f2 = σ''(a)`.
    pub fn elementwise(
        self,
        g: &mut Graph,
        f1: &Mat,
        f2: &Mat,
        method: &mut CurvatureMethod<'_>,
    ) -> Self {
        let m = g.mul(f2, &self.grad);
        let grad = g.mul(f1, &self.grad);
        let signal = match self.signal {
            Signal::Diag(h) => {
                let s2 = g.square(f1);
                let carried = g.mul(&s2, &h);
                Signal::Diag(g.add(&m, &carried))
            }
            Signal::Cp { re, im } => {
                let (n, k) = device::shape(&m);
                let v = match method {
                    CurvatureMethod::Cp { rng } => rademacher(g, *rng, n, k),
                    CurvatureMethod::ApproxBp => unreachable!("CP signal with approx-BP method"),
                };
                let (p, q) = split_sqrt(g, &m);
                let pv = g.mul(&p, &v);
                let qv = g.mul(&q, &v);
                let re = g.mul(f1, &re);
                let im = g.mul(f1, &im);
                Signal::Cp {
                    re: g.add(&re, &pv),
                    im: g.add(&im, &qv),
                }
            }
        };
        Self { grad, signal }
    }

    /// Adds another path's signal at the same tensor (a skip connection).
    /// Exact for the gradient and for CP; approximate backprop adds the
    /// diagonals (ignoring cross terms, as the method does everywhere).
    pub fn merge(self, g: &mut Graph, other: Self) -> Self {
        let grad = g.add(&self.grad, &other.grad);
        let signal = match (self.signal, other.signal) {
            (Signal::Diag(a), Signal::Diag(b)) => Signal::Diag(g.add(&a, &b)),
            (Signal::Cp { re: a, im: b }, Signal::Cp { re: c, im: d }) => Signal::Cp {
                re: g.add(&a, &c),
                im: g.add(&b, &d),
            },
            _ => panic!("merging signals of different methods"),
        };
        Self { grad, signal }
    }

    /// Adds a term of `f` with gradient `grad` (`None`: already counted) and
    /// diagonal Hessian `d` (both `n × k`) with respect to this layer's output.
    pub fn add_diagonal(
        self,
        g: &mut Graph,
        grad: Option<&Mat>,
        d: &Mat,
        method: &mut CurvatureMethod<'_>,
    ) -> Self {
        let new_grad = match grad {
            Some(gr) => g.add(&self.grad, gr),
            None => self.grad,
        };
        let signal = match self.signal {
            Signal::Diag(h) => Signal::Diag(g.add(&h, d)),
            Signal::Cp { re, im } => {
                let (n, k) = device::shape(d);
                let v = match method {
                    CurvatureMethod::Cp { rng } => rademacher(g, *rng, n, k),
                    CurvatureMethod::ApproxBp => unreachable!("CP signal with approx-BP method"),
                };
                let (p, q) = split_sqrt(g, d);
                let pv = g.mul(&p, &v);
                let qv = g.mul(&q, &v);
                Signal::Cp {
                    re: g.add(&re, &pv),
                    im: g.add(&im, &qv),
                }
            }
        };
        Self {
            grad: new_grad,
            signal,
        }
    }

    /// Adds Hessian terms `Σ_l c_l · u_l u_lᵀ` (per row), given through
    /// `coef` (`n × L`, the `c_l`) and the vectors `u_l = y − z_l` implied by
    /// the current output `y` (`n × k`) and centres `z` (`L × k`). For
    /// approximate backprop only the diagonal `Σ_l c_l (y − z_l)²` is added;
    /// CP draws one Rademacher sign per term.
    pub fn add_rank_one_centred(
        self,
        g: &mut Graph,
        coef: &Mat,
        y: &Mat,
        z: &Mat,
        method: &mut CurvatureMethod<'_>,
    ) -> Self {
        let signal = match self.signal {
            Signal::Diag(h) => {
                // Σ_l c_l (y − z_l)² = rowsum(c)·y² − 2 y∘(c z) + c (z²).
                let csum = g.sum_cols(coef);
                let y2 = g.square(y);
                let a = g.mul_col(&y2, &csum);
                let cz = g.matmul(coef, z);
                let ycz = g.mul(y, &cz);
                let b = g.scale(&ycz, -2.0);
                let z2 = g.square(z);
                let c = g.matmul(coef, &z2);
                let ab = g.add(&a, &b);
                let add = g.add(&ab, &c);
                Signal::Diag(g.add(&h, &add))
            }
            Signal::Cp { re, im } => {
                let (n, l) = device::shape(coef);
                let r = match method {
                    CurvatureMethod::Cp { rng } => rademacher(g, *rng, n, l),
                    CurvatureMethod::ApproxBp => unreachable!("CP signal with approx-BP method"),
                };
                let (p, q) = split_sqrt(g, coef);
                let mut out = Vec::with_capacity(2);
                for (s, acc) in [(p, re), (q, im)] {
                    // Σ_l s_l r_l (y − z_l) = rowsum(s∘r)·y − (s∘r) z.
                    let sr = g.mul(&s, &r);
                    let srsum = g.sum_cols(&sr);
                    let a = g.mul_col(y, &srsum);
                    let b = g.matmul(&sr, z);
                    let t = g.sub(&a, &b);
                    out.push(g.add(&acc, &t));
                }
                let im = out.pop().expect("two entries");
                let re = out.pop().expect("two entries");
                Signal::Cp { re, im }
            }
        };
        Self {
            grad: self.grad,
            signal,
        }
    }

    /// The diagonal estimate at this layer's output (`n × k`).
    pub fn diagonal(&self, g: &mut Graph) -> Mat {
        match &self.signal {
            Signal::Diag(h) => h.clone(),
            Signal::Cp { re, im } => {
                let a = g.square(re);
                let b = g.square(im);
                g.sub(&a, &b)
            }
        }
    }
}
