//! Smooth activations with their first and second derivatives as graph ops.
//!
//! Score matching differentiates the model twice in its input, so every
//! activation provides `f, f', f''` ([`Derivs`]); ReLU is deliberately absent
//! (its second derivative vanishes almost everywhere).

use serde::{Deserialize, Serialize};

use crate::autodiff::jet::Derivs;
use crate::autodiff::Graph;
use crate::device::Mat;

/// An elementwise nonlinearity usable in score-matching models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
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

    /// `f(a)` only.
    pub fn apply(&self, g: &mut Graph, a: &Mat) -> Mat {
        self.derivs(g, a, 0).f0
    }

    /// `f(a)` and, up to `order`, `f'(a)` and `f''(a)`.
    pub fn derivs(&self, g: &mut Graph, a: &Mat, order: usize) -> Derivs {
        let (f0, f1, f2) = match self {
            Activation::Softplus => {
                let f0 = g.softplus(a);
                if order == 0 {
                    (f0, None, None)
                } else {
                    let s = g.sigmoid(a);
                    let f2 = (order >= 2).then(|| {
                        let s2 = g.square(&s);
                        g.sub(&s, &s2)
                    });
                    (f0, Some(s), f2)
                }
            }
            Activation::Tanh => {
                let t = g.tanh(a);
                if order == 0 {
                    (t, None, None)
                } else {
                    let t2 = g.square(&t);
                    let one_minus = g.neg(&t2);
                    let f1 = g.add_scalar(&one_minus, 1.0);
                    let f2 = (order >= 2).then(|| {
                        let tf = g.mul(&t, &f1);
                        g.scale(&tf, -2.0)
                    });
                    (t, Some(f1), f2)
                }
            }
            Activation::Elu => {
                // e = exp(min(a, 0)) = f'(a); f(a) = relu(a) + e − 1.
                let r = g.relu(a);
                let na = g.neg(a);
                let rn = g.relu(&na);
                let mn = g.neg(&rn);
                let e = g.exp(&mn);
                let re = g.add(&r, &e);
                let f0 = g.add_scalar(&re, -1.0);
                let f2 = (order >= 2).then(|| {
                    let mask = g.positive_mask(a);
                    g.sub(&e, &mask)
                });
                ((f0), (order >= 1).then_some(e), f2)
            }
            Activation::Swish => {
                let s = g.sigmoid(a);
                let f0 = g.mul(a, &s);
                if order == 0 {
                    (f0, None, None)
                } else {
                    // s' = s(1 − s); f' = s + a s'; f'' = s'(2 + a(1 − 2s)).
                    let s2 = g.square(&s);
                    let ds = g.sub(&s, &s2);
                    let ads = g.mul(a, &ds);
                    let f1 = g.add(&s, &ads);
                    let f2 = (order >= 2).then(|| {
                        let two_s = g.scale(&s, -2.0);
                        let one_m = g.add_scalar(&two_s, 1.0);
                        let a1 = g.mul(a, &one_m);
                        let inner = g.add_scalar(&a1, 2.0);
                        g.mul(&ds, &inner)
                    });
                    (f0, Some(f1), f2)
                }
            }
            Activation::Sigmoid => {
                let s = g.sigmoid(a);
                if order == 0 {
                    (s, None, None)
                } else {
                    let s2 = g.square(&s);
                    let f1 = g.sub(&s, &s2);
                    let f2 = (order >= 2).then(|| {
                        let two_s = g.scale(&s, -2.0);
                        let one_m = g.add_scalar(&two_s, 1.0);
                        g.mul(&f1, &one_m)
                    });
                    (s, Some(f1), f2)
                }
            }
        };
        Derivs { f0, f1, f2 }
    }
}
