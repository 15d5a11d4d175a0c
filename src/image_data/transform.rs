//! From stored integer pixels to the model's coordinates, and back.
//!
//! Per pixel, with `m` the largest stored value and `L = m + 1` the number of
//! levels (8-bit images: `m = 255`, `L = 256`; 8×8 digits: `m = 16`,
//! `L = 17`):
//!
//! 1. scale: `p / m ∈ [0, 1]`;
//! 2. dequantise: `x̃ = p/m + (U − ½)/L`, `U ~ U(0, 1)` (REFERENCE: NICE
//!    dequantises MNIST by `x + (U − 0.5)/256` after scaling to [0, 1]). The
//!    cells `p/m ± 1/(2L)` have width `1/L` and are disjoint (their centres
//!    are `1/m > 1/L` apart), which is what the discrete bits/dim bound needs;
//! 3. with `logit: true`, clamp `x = min(max(x̃, α), 1 − α)` (`α =
//!    logit_alpha`, default 10⁻³) and take `y = logit(x) = ln x − ln(1 − x)`.
//!    The clamp keeps every `y` finite: `|y| ≤ logit(1 − α)` (6.9 for α =
//!    10⁻³). With `logit: false` the model sees `x̃` itself (no clamp).
//!
//! The change of variables used for likelihoods in pixel space is that of
//! step 3 at the clamped value: `log |dy/dx| = −ln x − ln(1 − x)` per
//! coordinate ([`PixelTransform::log_jacobian`]), i.e. the clamped,
//! dequantised pixels are the data whose density is reported.

use rand::{Rng, RngCore};

/// How integer pixels map to [0, 1] and how finely they are quantised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quantization {
    /// The largest stored value `m` (255 for 8-bit images, 16 for digits).
    pub max_value: u8,
}

impl Quantization {
    /// 8-bit images: values 0 … 255, 256 levels.
    pub const EIGHT_BIT: Self = Self { max_value: 255 };
    /// scikit-learn's 8×8 digits: values 0 … 16, 17 levels.
    pub const DIGITS: Self = Self { max_value: 16 };

    /// Number of levels `L = m + 1`.
    pub fn levels(&self) -> u32 {
        self.max_value as u32 + 1
    }

    /// `p / m`.
    pub fn scale(&self, p: u8) -> f64 {
        p as f64 / self.max_value as f64
    }

    /// `p / m + (u − ½) / L` for `u ∈ [0, 1)`.
    pub fn dequantize(&self, p: u8, u: f64) -> f64 {
        self.scale(p) + (u - 0.5) / self.levels() as f64
    }
}

/// The map from dequantised [0, 1] values to model coordinates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PixelTransform {
    /// Whether the model works in logit space.
    pub logit: bool,
    /// The clamp `[α, 1 − α]` applied before the logit.
    pub alpha: f64,
}

/// `1 / (1 + e^{−y})`, without overflow for large `|y|`.
pub fn sigmoid(y: f64) -> f64 {
    if y >= 0.0 {
        1.0 / (1.0 + (-y).exp())
    } else {
        let e = y.exp();
        e / (1.0 + e)
    }
}

impl PixelTransform {
    /// The value the model's coordinate is a function of: `x` clamped to
    /// `[α, 1 − α]` in logit space, `x` itself otherwise.
    pub fn clamp(&self, x: f64) -> f64 {
        if self.logit {
            x.clamp(self.alpha, 1.0 - self.alpha)
        } else {
            x
        }
    }

    /// The model coordinate of a dequantised value: `logit(clamp(x))`, or `x`.
    pub fn forward(&self, x: f64) -> f64 {
        if self.logit {
            let c = self.clamp(x);
            c.ln() - (-c).ln_1p()
        } else {
            x
        }
    }

    /// `log |dy/dx|` at `clamp(x)`: `−ln c − ln(1 − c)` in logit space, 0 otherwise.
    pub fn log_jacobian(&self, x: f64) -> f64 {
        if self.logit {
            let c = self.clamp(x);
            -(c.ln() + (-c).ln_1p())
        } else {
            0.0
        }
    }

    /// Back from a model coordinate to pixel space: `sigmoid(y)`, or `y`.
    pub fn inverse(&self, y: f64) -> f64 {
        if self.logit {
            sigmoid(y)
        } else {
            y
        }
    }

    /// Dequantises one image with fresh uniforms from `rng`, appends its
    /// model coordinates to `out` and returns its log-Jacobian
    /// `Σ log |dy/dx|`.
    pub fn dequantize_into(
        &self,
        q: Quantization,
        pixels: &[u8],
        rng: &mut dyn RngCore,
        out: &mut Vec<f64>,
    ) -> f64 {
        let mut log_jac = 0.0;
        for &p in pixels {
            let x = q.dequantize(p, rng.gen::<f64>());
            out.push(self.forward(x));
            log_jac += self.log_jacobian(x);
        }
        log_jac
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logit_inverts_and_stays_finite() {
        let t = PixelTransform {
            logit: true,
            alpha: 1e-3,
        };
        for x in [1e-3, 0.2, 0.5, 0.9, 1.0 - 1e-3] {
            assert!((t.inverse(t.forward(x)) - x).abs() < 1e-12, "{x}");
        }
        let top = t.forward(1.0 - 1e-3);
        assert!((top - (999.0f64).ln()).abs() < 1e-9, "{top}");
        for x in [-1.0, 0.0, 1.0, 2.0] {
            assert!(t.forward(x).is_finite() && t.log_jacobian(x).is_finite());
            assert!(t.forward(x).abs() <= top + 1e-12);
        }
        assert_eq!(sigmoid(-800.0), 0.0);
        assert_eq!(sigmoid(800.0), 1.0);
        assert!((sigmoid(0.0) - 0.5).abs() < 1e-15);
    }

    #[test]
    fn quantization_cells() {
        let q = Quantization::EIGHT_BIT;
        assert_eq!(q.levels(), 256);
        assert_eq!(q.scale(255), 1.0);
        assert!((q.dequantize(0, 0.0) + 1.0 / 512.0).abs() < 1e-15);
        let d = Quantization::DIGITS;
        assert_eq!(d.levels(), 17);
        assert!((d.dequantize(16, 1.0) - (1.0 + 0.5 / 17.0)).abs() < 1e-15);
    }
}
