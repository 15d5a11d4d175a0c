//! Smooth activations and their derivatives up to third order, as scalar
//! functions generic over the element type.
//!
//! Score matching differentiates a model twice in its input and the loss
//! once more in θ, so an activation `f` must give `f, f', f''` for the jets
//! and `f'''` for the backward pass of the second-order jet. ReLU is absent
//! on purpose: its second derivative vanishes almost everywhere.

use serde::{Deserialize, Serialize};

use super::float::Float;

/// An elementwise nonlinearity usable in score-matching models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum Activation {
    /// `ln(1 + eˣ)`.
    #[default]
    Softplus,
    /// `tanh x`.
    Tanh,
    /// `x` for `x > 0`, `eˣ − 1` otherwise (second derivative jumps at 0).
    Elu,
    /// `x·σ(x)` (a.k.a. SiLU).
    Swish,
    /// Logistic `σ(x)`.
    Sigmoid,
}

impl Activation {
    /// Every activation, for tests and help texts.
    pub const ALL: [Activation; 5] = [
        Activation::Softplus,
        Activation::Tanh,
        Activation::Elu,
        Activation::Swish,
        Activation::Sigmoid,
    ];

    /// The highest derivative order [`Activation::derivs`] gives.
    pub const MAX_ORDER: usize = 3;

    /// `[f(a), f'(a), f''(a), f'''(a)]`.
    #[inline(always)]
    pub fn derivs<T: Float>(self, a: T) -> [T; 4] {
        with_act!(self, A => A::derivs(a))
    }

    /// `f⁽ᵏ⁾(a)` for `k ≤ 3`.
    #[inline(always)]
    pub fn derivative<T: Float>(self, a: T, k: usize) -> T {
        self.derivs(a)[k]
    }
}

/// One activation as a type, so kernels can be compiled for it alone
/// (a `match` inside a loop would keep the loop from vectorizing).
pub trait ActFn {
    /// `[f(a), f'(a), f''(a), f'''(a)]`.
    fn derivs<T: Float>(a: T) -> [T; 4];
}

/// Runs `$body` with `$A` bound to the [`ActFn`] type of the activation:
/// one `match` arm per variant, each compiling `$body` for that type.
macro_rules! with_act {
    ($act:expr, $A:ident => $body:expr) => {
        $crate::compute::activation::with_act!(@arms $act, $A, $body;
            Softplus => SoftplusFn,
            Tanh => TanhFn,
            Elu => EluFn,
            Swish => SwishFn,
            Sigmoid => SigmoidFn
        )
    };
    (@arms $act:expr, $A:ident, $body:expr; $($variant:ident => $ty:ident),*) => {
        match $act {
            $(
                $crate::compute::activation::Activation::$variant => {
                    type $A = $crate::compute::activation::$ty;
                    $body
                }
            )*
        }
    };
}
pub(crate) use with_act;

/// One zero-sized [`ActFn`] type per activation, its derivatives those of
/// the matching [`Activation`] variant.
macro_rules! act_fns {
    ($($name:ident => $variant:ident),*) => {
        $(
            #[doc = concat!("[`Activation::", stringify!($variant), "`] as an [`ActFn`].")]
            #[derive(Debug, Clone, Copy)]
            pub struct $name;

            impl ActFn for $name {
                #[inline(always)]
                fn derivs<T: Float>(a: T) -> [T; 4] {
                    derivs_of(Activation::$variant, a)
                }
            }
        )*
    };
}
act_fns!(
    SoftplusFn => Softplus,
    TanhFn => Tanh,
    EluFn => Elu,
    SwishFn => Swish,
    SigmoidFn => Sigmoid
);

/// The logistic function's pieces at `a`, `(e, s, q, u)`: `e = e^{−|a|}`
/// in `(0, 1]`, `s = σ(a)`, `q = s(1 − s)`, `u = 1 − 2s`, each formed
/// without cancellation for either sign of `a`.
#[inline(always)]
fn logistic<T: Float>(a: T) -> (T, T, T, T) {
    let one = T::ONE;
    let e = (-a.abs()).exp();
    let inv = one / (one + e);
    let pos = a >= T::ZERO;
    let s = if pos { inv } else { e * inv };
    let q = e * inv * inv;
    let u = if pos {
        (e - one) * inv
    } else {
        (one - e) * inv
    };
    (e, s, q, u)
}

/// The formulas, by activation (called with a constant `act`, so the
/// `match` folds away).
#[inline(always)]
fn derivs_of<T: Float>(act: Activation, a: T) -> [T; 4] {
    let one = T::ONE;
    let two = T::from_f64(2.0);
    {
        match act {
            Activation::Softplus => {
                let (e, s, q, u) = logistic(a);
                let relu = if a >= T::ZERO { a } else { T::ZERO };
                [relu + e.ln_1p(), s, q, q * u]
            }
            Activation::Tanh => {
                let t = a.tanh();
                let f1 = one - t * t;
                let f2 = -two * t * f1;
                let f3 = -two * f1 * (one - T::from_f64(3.0) * t * t);
                [t, f1, f2, f3]
            }
            Activation::Sigmoid => {
                let (_, s, q, u) = logistic(a);
                [s, q, q * u, q * (one - T::from_f64(6.0) * q)]
            }
            Activation::Swish => {
                let (_, s, q, u) = logistic(a);
                let f1 = s + a * q;
                let f2 = q * (two + a * u);
                let f3 = q * (T::from_f64(3.0) * u + a * u * u - two * a * q);
                [a * s, f1, f2, f3]
            }
            Activation::Elu => {
                if a > T::ZERO {
                    [a, one, T::ZERO, T::ZERO]
                } else {
                    let e = a.exp();
                    [e - one, e, e, e]
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derivatives_match_finite_differences_of_the_order_below() {
        for act in Activation::ALL {
            for &a in &[-7.3, -2.0, -0.4, 0.3, 1.1, 4.5, 9.0] {
                let d = act.derivs::<f64>(a);
                let h = 1e-6;
                let p = act.derivs::<f64>(a + h);
                let m = act.derivs::<f64>(a - h);
                for k in 0..3 {
                    let fd = (p[k] - m[k]) / (2.0 * h);
                    assert!(
                        (fd - d[k + 1]).abs() <= 1e-6 * (1.0 + fd.abs()),
                        "{act:?} f^({}) at {a}: {} vs finite difference {fd}",
                        k + 1,
                        d[k + 1]
                    );
                }
            }
        }
    }

    #[test]
    fn f32_and_f64_agree() {
        for act in Activation::ALL {
            for &a in &[-20.0, -3.0, -0.5, 0.0, 0.7, 2.5, 15.0] {
                let d64 = act.derivs::<f64>(a);
                let d32 = act.derivs::<f32>(a as f32);
                for k in 0..4 {
                    let tol = 2e-6 * (1.0 + d64[k].abs());
                    assert!(
                        (d32[k] as f64 - d64[k]).abs() <= tol,
                        "{act:?} f^({k})({a}): f32 {} vs f64 {}",
                        d32[k],
                        d64[k]
                    );
                }
            }
        }
    }
}
