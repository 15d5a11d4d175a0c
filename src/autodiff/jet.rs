//! Second-order forward-mode (Taylor) jets along one direction per row.
//!
//! A [`Jet`] carries, for a batch of rows, the value `a(x)`, the first
//! directional derivative `ȧ = (∇ₓa)·v` and the second `ä = vᵀ(∇ₓ²a)v`, each
//! as a matrix with the same shape as the value. Rows are independent: row `i`
//! is differentiated along its own direction `vᵢ`. Every rule is written with
//! [`Graph`] ops, so the derivatives stay on the tape and one reverse pass of a
//! loss built from them gives ∇θ.
//!
//! A component that is `None` is known to be identically zero (e.g. `ä` at the
//! input), which saves work; [`Jet::order`] says how many derivative orders
//! are carried at all.
//!
//! Rules:
//! * affine `y = aW + b`: `(aW + b, ȧW, äW)`;
//! * elementwise `y = f(a)`: `(f, f'·ȧ, f''·ȧ² + f'·ä)`;
//! * product `y = a∘b`: `(ab, ȧb + aḃ, äb + 2ȧḃ + ab̈)`;
//! * sums are linear.

use crate::autodiff::Graph;
use crate::device::Mat;

/// Value and directional derivatives (up to order 2) of a batch of rows.
#[derive(Clone)]
pub struct Jet {
    /// Number of derivative orders carried: 0, 1 or 2.
    pub order: usize,
    /// The value.
    pub value: Mat,
    /// First directional derivative (`None` = identically zero or not carried).
    pub d1: Option<Mat>,
    /// Second directional derivative (`None` = identically zero or not carried).
    pub d2: Option<Mat>,
}

/// Value and derivatives `f, f', f''` of an elementwise function at a point,
/// as needed by [`Jet::unary`]. Orders not needed may be `None`.
pub struct Derivs {
    /// `f(a)`.
    pub f0: Mat,
    /// `f'(a)` (needed for order ≥ 1 and for input gradients).
    pub f1: Option<Mat>,
    /// `f''(a)` (needed for order 2).
    pub f2: Option<Mat>,
}

fn add_opt(g: &mut Graph, a: Option<Mat>, b: Option<Mat>) -> Option<Mat> {
    match (a, b) {
        (Some(a), Some(b)) => Some(g.add(&a, &b)),
        (a, None) => a,
        (None, b) => b,
    }
}

fn mul_opt(g: &mut Graph, a: Option<&Mat>, b: Option<&Mat>) -> Option<Mat> {
    match (a, b) {
        (Some(a), Some(b)) => Some(g.mul(a, b)),
        _ => None,
    }
}

impl Jet {
    /// A jet of the input `x` moving along directions `v` (same shape):
    /// `(x, v, 0)` of the given `order` (1 or 2; 0 ignores `v`).
    pub fn seed(x: Mat, v: Option<Mat>, order: usize) -> Self {
        assert!(order <= 2, "jets carry at most second derivatives");
        let d1 = if order >= 1 {
            Some(v.expect("a jet of order ≥ 1 needs a direction"))
        } else {
            None
        };
        Self {
            order,
            value: x,
            d1,
            d2: None,
        }
    }

    /// A jet of a constant (zero derivatives).
    pub fn constant(value: Mat, order: usize) -> Self {
        Self {
            order,
            value,
            d1: None,
            d2: None,
        }
    }

    /// The first derivative, materialising zeros if it is known to vanish.
    pub fn d1_or_zero(&self, g: &Graph) -> Mat {
        match &self.d1 {
            Some(d) => d.clone(),
            None => {
                let (r, c) = crate::device::shape(&self.value);
                g.filled(r, c, 0.0)
            }
        }
    }

    /// The second derivative, materialising zeros if it is known to vanish.
    pub fn d2_or_zero(&self, g: &Graph) -> Mat {
        match &self.d2 {
            Some(d) => d.clone(),
            None => {
                let (r, c) = crate::device::shape(&self.value);
                g.filled(r, c, 0.0)
            }
        }
    }

    /// `y = a·W` (a linear map acting on rows; `w` is `in × out`).
    pub fn matmul(&self, g: &mut Graph, w: &Mat) -> Self {
        Self {
            order: self.order,
            value: g.matmul(&self.value, w),
            d1: self.d1.as_ref().map(|d| g.matmul(d, w)),
            d2: self.d2.as_ref().map(|d| g.matmul(d, w)),
        }
    }

    /// `y = a·W + b` with `b` a `1 × out` row.
    pub fn affine(&self, g: &mut Graph, w: &Mat, b: &Mat) -> Self {
        let mut y = self.matmul(g, w);
        y.value = g.add_row(&y.value, b);
        y
    }

    /// Elementwise `y = f(a)` from `f, f', f''` evaluated at `self.value`.
    pub fn unary(&self, g: &mut Graph, d: Derivs) -> Self {
        let d1 = if self.order >= 1 {
            mul_opt(g, d.f1.as_ref(), self.d1.as_ref())
        } else {
            None
        };
        let d2 = if self.order >= 2 {
            let curv = match (&d.f2, &self.d1) {
                (Some(f2), Some(a1)) => {
                    let sq = g.square(a1);
                    Some(g.mul(f2, &sq))
                }
                _ => None,
            };
            let lin = mul_opt(g, d.f1.as_ref(), self.d2.as_ref());
            add_opt(g, curv, lin)
        } else {
            None
        };
        Self {
            order: self.order,
            value: d.f0,
            d1,
            d2,
        }
    }

    /// Elementwise sum of two jets of the same order and shape.
    pub fn add(&self, g: &mut Graph, other: &Self) -> Self {
        Self {
            order: self.order.min(other.order),
            value: g.add(&self.value, &other.value),
            d1: add_opt(g, self.d1.clone(), other.d1.clone()),
            d2: add_opt(g, self.d2.clone(), other.d2.clone()),
        }
    }

    /// Elementwise product of two jets of the same shape.
    pub fn mul(&self, g: &mut Graph, other: &Self) -> Self {
        let order = self.order.min(other.order);
        let value = g.mul(&self.value, &other.value);
        let d1 = if order >= 1 {
            let x = mul_opt(g, self.d1.as_ref(), Some(&other.value));
            let y = mul_opt(g, Some(&self.value), other.d1.as_ref());
            add_opt(g, x, y)
        } else {
            None
        };
        let d2 = if order >= 2 {
            let a = mul_opt(g, self.d2.as_ref(), Some(&other.value));
            let b = mul_opt(g, Some(&self.value), other.d2.as_ref());
            let c = mul_opt(g, self.d1.as_ref(), other.d1.as_ref()).map(|c| g.scale(&c, 2.0));
            let ab = add_opt(g, a, b);
            add_opt(g, ab, c)
        } else {
            None
        };
        Self {
            order,
            value,
            d1,
            d2,
        }
    }

    /// Multiplies every component by the constant `c`.
    pub fn scale(&self, g: &mut Graph, c: f64) -> Self {
        Self {
            order: self.order,
            value: g.scale(&self.value, c),
            d1: self.d1.as_ref().map(|d| g.scale(d, c)),
            d2: self.d2.as_ref().map(|d| g.scale(d, c)),
        }
    }

    /// Adds the constant `c` to the value.
    pub fn add_scalar(&self, g: &mut Graph, c: f64) -> Self {
        Self {
            order: self.order,
            value: g.add_scalar(&self.value, c),
            d1: self.d1.clone(),
            d2: self.d2.clone(),
        }
    }

    /// Sums over columns of every component (`n × k → n × 1`).
    pub fn sum_cols(&self, g: &mut Graph) -> Self {
        Self {
            order: self.order,
            value: g.sum_cols(&self.value),
            d1: self.d1.as_ref().map(|d| g.sum_cols(d)),
            d2: self.d2.as_ref().map(|d| g.sum_cols(d)),
        }
    }

    /// Elementwise `exp`.
    pub fn exp(&self, g: &mut Graph) -> Self {
        let e = g.exp(&self.value);
        let d = Derivs {
            f0: e.clone(),
            f1: Some(e.clone()),
            f2: Some(e),
        };
        self.unary(g, d)
    }

    /// Elementwise natural logarithm.
    pub fn ln(&self, g: &mut Graph) -> Self {
        let f0 = g.ln(&self.value);
        let (f1, f2) = if self.order >= 1 {
            let one = {
                let (r, c) = crate::device::shape(&self.value);
                g.filled(r, c, 1.0)
            };
            let inv = g.div(&one, &self.value);
            let f2 = if self.order >= 2 {
                let sq = g.square(&inv);
                Some(g.neg(&sq))
            } else {
                None
            };
            (Some(inv), f2)
        } else {
            (None, None)
        };
        self.unary(g, Derivs { f0, f1, f2 })
    }

    /// Elementwise square.
    pub fn square(&self, g: &mut Graph) -> Self {
        let f0 = g.square(&self.value);
        let f1 = Some(g.scale(&self.value, 2.0));
        let f2 = if self.order >= 2 {
            let (r, c) = crate::device::shape(&self.value);
            Some(g.filled(r, c, 2.0))
        } else {
            None
        };
        self.unary(g, Derivs { f0, f1, f2 })
    }
}
