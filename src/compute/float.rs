//! The element types a run computes in (`f32`, `f64`) and the math the
//! kernels need on them.
//!
//! [`Float`] gives every kernel one generic body for both precisions. The
//! transcendental functions differ by precision on purpose: `f64` uses the
//! standard library (correctly rounded to within an ulp, for gradient checks
//! and evaluations), `f32` uses branch-free polynomial approximations (Cephes
//! coefficients, within 2 ulp on the ranges tested in this module) that the
//! compiler vectorizes, which is where the speed of an `f32` run comes from.

use std::fmt::Debug;
use std::ops::{Add, AddAssign, Div, Mul, MulAssign, Neg, Sub, SubAssign};

use serde::{Deserialize, Serialize};

/// The floating-point precision of a run's tensors.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Precision {
    /// 32-bit floats: the fast default for training.
    #[default]
    F32,
    /// 64-bit floats: for gradient checks and exact evaluations.
    F64,
}

impl Precision {
    /// `"f32"` or `"f64"`.
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::F64 => "f64",
        }
    }

    /// Parses `"f32"`/`"F32"` or `"f64"`/`"F64"`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "f32" | "F32" => Some(Precision::F32),
            "f64" | "F64" => Some(Precision::F64),
            _ => None,
        }
    }

    /// Bytes per element.
    pub fn bytes(self) -> usize {
        match self {
            Precision::F32 => 4,
            Precision::F64 => 8,
        }
    }
}

/// A floating-point element type of the compute kernels.
pub trait Float:
    Copy
    + Send
    + Sync
    + Debug
    + Default
    + PartialOrd
    + 'static
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
    + SubAssign
    + MulAssign
{
    /// The precision this type stands for.
    const PRECISION: Precision;
    /// 0.
    const ZERO: Self;
    /// 1.
    const ONE: Self;
    /// Converts from `f64` (rounding to nearest for `f32`).
    fn from_f64(x: f64) -> Self;
    /// Converts to `f64` exactly.
    fn to_f64(self) -> f64;
    /// `eˣ`.
    fn exp(self) -> Self;
    /// Natural logarithm.
    fn ln(self) -> Self;
    /// `ln(1 + x)`, accurate for small `x`.
    fn ln_1p(self) -> Self;
    /// Hyperbolic tangent.
    fn tanh(self) -> Self;
    /// Square root.
    fn sqrt(self) -> Self;
    /// Absolute value.
    fn abs(self) -> Self;
    /// The larger of two values (the other one when either is NaN).
    fn max(self, other: Self) -> Self;
    /// Whether the value is neither infinite nor NaN.
    fn is_finite(self) -> bool;
    /// Whether the value is NaN.
    fn is_nan(self) -> bool;
}

impl Float for f64 {
    const PRECISION: Precision = Precision::F64;
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    #[inline(always)]
    fn from_f64(x: f64) -> Self {
        x
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self
    }
    #[inline(always)]
    fn exp(self) -> Self {
        f64::exp(self)
    }
    #[inline(always)]
    fn ln(self) -> Self {
        f64::ln(self)
    }
    #[inline(always)]
    fn ln_1p(self) -> Self {
        f64::ln_1p(self)
    }
    #[inline(always)]
    fn tanh(self) -> Self {
        f64::tanh(self)
    }
    #[inline(always)]
    fn sqrt(self) -> Self {
        f64::sqrt(self)
    }
    #[inline(always)]
    fn abs(self) -> Self {
        f64::abs(self)
    }
    #[inline(always)]
    fn max(self, other: Self) -> Self {
        f64::max(self, other)
    }
    #[inline(always)]
    fn is_finite(self) -> bool {
        f64::is_finite(self)
    }
    #[inline(always)]
    fn is_nan(self) -> bool {
        f64::is_nan(self)
    }
}

impl Float for f32 {
    const PRECISION: Precision = Precision::F32;
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    #[inline(always)]
    fn from_f64(x: f64) -> Self {
        x as f32
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self as f64
    }
    #[inline(always)]
    fn exp(self) -> Self {
        exp_f32(self)
    }
    #[inline(always)]
    fn ln(self) -> Self {
        ln_f32(self)
    }
    #[inline(always)]
    fn ln_1p(self) -> Self {
        ln_1p_f32(self)
    }
    #[inline(always)]
    fn tanh(self) -> Self {
        tanh_f32(self)
    }
    #[inline(always)]
    fn sqrt(self) -> Self {
        f32::sqrt(self)
    }
    #[inline(always)]
    fn abs(self) -> Self {
        f32::abs(self)
    }
    #[inline(always)]
    fn max(self, other: Self) -> Self {
        f32::max(self, other)
    }
    #[inline(always)]
    fn is_finite(self) -> bool {
        f32::is_finite(self)
    }
    #[inline(always)]
    fn is_nan(self) -> bool {
        f32::is_nan(self)
    }
}

/// `eˣ` for `f32`: `x = n·ln 2 + r`, `|r| ≤ ln 2 / 2`, a degree-6 polynomial
/// for `eʳ` and `2ⁿ` built from its exponent bits. Overflows to `+∞` above
/// `ln(f32::MAX)`, underflows to 0 below about −87.3 (no subnormals), and
/// passes NaN through.
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    const HI: f32 = 88.722_84;
    const LO: f32 = -87.336_55;
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let xc = x.clamp(LO, HI);
    let n = (xc * LOG2E + 0.5).floor();
    let r = xc - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4_f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 5e-1;
    let y = p * r * r + r + 1.0;
    // n ∈ [−126, 128]: 2ⁿ from its exponent field, with n = 128 as 2¹²⁷·2.
    let ni = n as i32;
    let scale = f32::from_bits((((ni.min(127)) + 127).max(0) as u32) << 23);
    let out = y * scale * if ni > 127 { 2.0 } else { 1.0 };
    let out = if x > HI { f32::INFINITY } else { out };
    let out = if x < LO { 0.0 } else { out };
    if x.is_nan() {
        x
    } else {
        out
    }
}

/// Natural logarithm for `f32`: `x = m·2ᵉ` with `m ∈ [√½, √2)`, a degree-9
/// polynomial in `m − 1`. `ln 0 = −∞`, `ln x = NaN` for `x < 0`, `ln ∞ = ∞`;
/// subnormal inputs are treated as 0.
#[inline(always)]
pub fn ln_f32(x: f32) -> f32 {
    const SQRT_HALF: f32 = std::f32::consts::FRAC_1_SQRT_2;
    let bits = x.to_bits();
    let mut e = ((bits >> 23) & 0xff) as i32 - 126;
    let m = f32::from_bits((bits & 0x007f_ffff) | 0x3f00_0000);
    let small = m < SQRT_HALF;
    e -= i32::from(small);
    let t = if small { m + m - 1.0 } else { m - 1.0 };
    let ef = e as f32;
    let z = t * t;
    let mut y = 7.037_683_6e-2_f32;
    y = y * t - 1.151_461e-1;
    y = y * t + 1.167_699_9e-1;
    y = y * t - 1.242_014_1e-1;
    y = y * t + 1.424_932_3e-1;
    y = y * t - 1.666_805_8e-1;
    y = y * t + 2.000_071_4e-1;
    y = y * t - 2.499_999_4e-1;
    y = y * t + 3.333_333e-1;
    y *= t * z;
    y += -2.121_944_4e-4 * ef;
    y += -0.5 * z;
    let out = t + y + 0.693_359_4 * ef;
    let out = if x < f32::MIN_POSITIVE {
        f32::NEG_INFINITY
    } else {
        out
    };
    let out = if x < 0.0 { f32::NAN } else { out };
    let out = if x == f32::INFINITY { x } else { out };
    if x.is_nan() {
        x
    } else {
        out
    }
}

/// `ln(1 + x)` for `f32`, within 3 ulp, accurate for small `x` (the classic
/// `ln(u)·x/(u − 1)` correction with `u = 1 + x`).
#[inline(always)]
pub fn ln_1p_f32(x: f32) -> f32 {
    let u = 1.0 + x;
    let d = u - 1.0;
    let l = ln_f32(u);
    let corrected = l * (x / if d == 0.0 { 1.0 } else { d });
    if d == 0.0 {
        x
    } else if u == f32::INFINITY {
        u
    } else {
        corrected
    }
}

/// Hyperbolic tangent for `f32`: an odd polynomial below `|x| = 0.625`,
/// `1 − 2/(e^{2|x|} + 1)` with the sign of `x` above.
#[inline(always)]
pub fn tanh_f32(x: f32) -> f32 {
    let a = x.abs();
    let z = x * x;
    let mut p = -5.704_988_7e-3_f32;
    p = p * z + 2.063_909e-2;
    p = p * z - 5.373_971_6e-2;
    p = p * z + 1.333_144_2e-1;
    p = p * z - 3.333_328e-1;
    let small = p * z * x + x;
    let big = 1.0 - 2.0 / (exp_f32(a + a) + 1.0);
    let big = if x < 0.0 { -big } else { big };
    if a < 0.625 {
        small
    } else {
        big
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ulps(a: f32, b: f64) -> f64 {
        let b32 = b as f32;
        if a == b32 {
            return 0.0;
        }
        let spacing = (f32::from_bits(b32.abs().to_bits() + 1) - b32.abs()) as f64;
        ((a as f64) - b).abs() / spacing
    }

    fn sweep(lo: f64, hi: f64, steps: usize) -> impl Iterator<Item = f64> {
        (0..=steps).map(move |i| lo + (hi - lo) * i as f64 / steps as f64)
    }

    #[test]
    fn exp_is_within_two_ulp_and_handles_edges() {
        let mut worst = 0.0f64;
        for x in sweep(-87.0, 88.5, 200_001) {
            let x32 = x as f32;
            worst = worst.max(ulps(exp_f32(x32), (x32 as f64).exp()));
        }
        assert!(worst <= 2.0, "exp: {worst} ulp");
        assert_eq!(exp_f32(0.0), 1.0);
        assert_eq!(exp_f32(100.0), f32::INFINITY);
        assert_eq!(exp_f32(f32::INFINITY), f32::INFINITY);
        assert_eq!(exp_f32(-100.0), 0.0);
        assert_eq!(exp_f32(f32::NEG_INFINITY), 0.0);
        assert!(exp_f32(f32::NAN).is_nan());
    }

    #[test]
    fn ln_and_ln_1p_are_within_two_ulp_and_handle_edges() {
        let mut worst = 0.0f64;
        for e in sweep(-80.0, 80.0, 200_001) {
            let x32 = (e.exp()) as f32;
            worst = worst.max(ulps(ln_f32(x32), (x32 as f64).ln()));
        }
        assert!(worst <= 2.0, "ln: {worst} ulp");
        let mut worst1 = 0.0f64;
        for e in sweep(-30.0, 10.0, 200_001) {
            let x32 = (e.exp()) as f32;
            worst1 = worst1.max(ulps(ln_1p_f32(x32), (x32 as f64).ln_1p()));
            worst1 = worst1.max(ulps(ln_1p_f32(-x32 * 0.5), (-(x32 as f64) * 0.5).ln_1p()));
        }
        assert!(worst1 <= 3.0, "ln_1p: {worst1} ulp");
        assert_eq!(ln_f32(1.0), 0.0);
        assert_eq!(ln_f32(0.0), f32::NEG_INFINITY);
        assert!(ln_f32(-1.0).is_nan());
        assert_eq!(ln_f32(f32::INFINITY), f32::INFINITY);
        assert!(ln_f32(f32::NAN).is_nan());
        assert_eq!(ln_1p_f32(0.0), 0.0);
        assert_eq!(ln_1p_f32(1e-30), 1e-30);
    }

    #[test]
    fn tanh_is_within_three_ulp() {
        let mut worst = 0.0f64;
        for x in sweep(-12.0, 12.0, 200_001) {
            let x32 = x as f32;
            worst = worst.max(ulps(tanh_f32(x32), (x32 as f64).tanh()));
        }
        assert!(worst <= 3.0, "tanh: {worst} ulp");
        assert_eq!(tanh_f32(0.0), 0.0);
        assert_eq!(tanh_f32(50.0), 1.0);
        assert_eq!(tanh_f32(-50.0), -1.0);
    }
}
