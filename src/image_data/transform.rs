//! From stored integer pixels to the model's coordinates, and back.
//!
//! Per pixel, with `m` the largest stored value and `L = m + 1` the number of
//! levels (8-bit images: `m = 255`, `L = 256`; 8×8 digits: `m = 16`,
//! `L = 17`), `U ~ U(0, 1)` fresh per pixel, `α = logit_alpha` (default
//! 10⁻³). Two maps into logit space ([`LogitMap`]):
//!
//! * `Clamp` (the paper's, the default): scale `p / m ∈ [0, 1]`, dequantise
//!   `x = p/m + (U − ½)/L` (REFERENCE: NICE dequantises MNIST by
//!   `x + (U − 0.5)/256` after scaling to [0, 1]; the cells `p/m ± 1/(2L)`
//!   have width `1/L` and are disjoint, their centres `1/m > 1/L` apart),
//!   clamp `c = min(max(x, α), 1 − α)` and take `y = logit(c) = ln c −
//!   ln(1 − c)`. The clamp keeps every `y` finite (`|y| ≤ logit(1 − α)`, 6.9
//!   for α = 10⁻³) but puts every pixel of value 0 whose noise went below
//!   `α` (and of value `m` above `1 − α`) exactly at `±logit(α)`: point
//!   masses (a quarter of all coordinates of the digits), around which exact
//!   SM is unbounded below. `log |dy/dx| = −ln c − ln(1 − c)`, the density
//!   reported being that of the clamped pixels.
//! * `Squeeze` (RealNVP's): dequantise `x = (p + U)/L ∈ [0, 1)` (cells
//!   `[p/L, (p + 1)/L)` tiling [0, 1]), squeeze `u = α + (1 − 2α)x ∈ [α,
//!   1 − α)` and take `y = logit(u)`: a bijection, no point masses, and
//!   `log |dy/dx| = ln(1 − 2α) − ln u − ln(1 − u)`.
//!
//! With `noise_sigma = σ > 0` each coordinate then gets `y ← y + σε`,
//! `ε ~ N(0, 1)` (the original code's `noise_sigma`): the model's data are
//! the noisy `y`, and the pixel-space change of variables is taken at the
//! noisy point (`u = sigmoid(y)`, [`PixelTransform::log_jacobian_at`]), i.e.
//! the reported density is that of the noisy pixels `g⁻¹(y)`.
//!
//! With `logit: false` the model sees the dequantised `x = p/m + (U − ½)/L`
//! itself (no clamp, Jacobian 1; noise, if any, added to `x`).

use rand::{Rng, RngCore};
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

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

/// How dequantised pixels are kept inside (0, 1) before the logit (see the
/// module documentation).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum LogitMap {
    /// Dequantise `p/m + (U − ½)/L` and clamp to `[α, 1 − α]` (the paper's;
    /// point masses at `±logit(α)`).
    #[default]
    Clamp,
    /// Dequantise `(p + U)/L` and squeeze `α + (1 − 2α)x` (no point masses).
    Squeeze,
}

impl LogitMap {
    /// `"clamp"` or `"squeeze"`.
    pub fn name(self) -> &'static str {
        match self {
            LogitMap::Clamp => "clamp",
            LogitMap::Squeeze => "squeeze",
        }
    }
}

/// The map from dequantised [0, 1] values to model coordinates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PixelTransform {
    /// Whether the model works in logit space.
    pub logit: bool,
    /// The clamp `[α, 1 − α]` or the squeeze `α + (1 − 2α)x` applied before the logit.
    pub alpha: f64,
    /// Clamp or squeeze (only with `logit`).
    pub map: LogitMap,
    /// Standard deviation of the Gaussian noise added to every model
    /// coordinate after the map (0: none).
    pub noise_sigma: f64,
}

/// `ln(1 + e^{−|y|})`-based `−ln s − ln(1 − s)` at `s = sigmoid(y)`:
/// `|y| + 2 ln(1 + e^{−|y|})`, exact for large `|y|`.
fn neg_log_sigmoid_pair(y: f64) -> f64 {
    y.abs() + 2.0 * (-y.abs()).exp().ln_1p()
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
    /// The paper's transform: logit of the clamped pixels, no noise.
    pub fn clamped_logit(alpha: f64) -> Self {
        Self {
            logit: true,
            alpha,
            map: LogitMap::Clamp,
            noise_sigma: 0.0,
        }
    }

    fn squeezes(&self) -> bool {
        self.logit && self.map == LogitMap::Squeeze
    }

    /// The dequantised value in [0, 1] of pixel `p` for the uniform `u ∈
    /// [0, 1)`: `(p + u)/L` when squeezing, `p/m + (u − ½)/L` otherwise.
    pub fn dequantize(&self, q: Quantization, p: u8, u: f64) -> f64 {
        if self.squeezes() {
            (p as f64 + u) / q.levels() as f64
        } else {
            q.dequantize(p, u)
        }
    }

    /// The value inside (0, 1) whose logit is the model's coordinate:
    /// `x` clamped to `[α, 1 − α]`, or squeezed to `α + (1 − 2α)x`, in
    /// logit space; `x` itself otherwise.
    pub fn clamp(&self, x: f64) -> f64 {
        match (self.logit, self.map) {
            (false, _) => x,
            (true, LogitMap::Clamp) => x.clamp(self.alpha, 1.0 - self.alpha),
            (true, LogitMap::Squeeze) => self.alpha + (1.0 - 2.0 * self.alpha) * x,
        }
    }

    /// The model coordinate of a dequantised value (before noise):
    /// `logit(clamp(x))`, or `x`.
    pub fn forward(&self, x: f64) -> f64 {
        if self.logit {
            let c = self.clamp(x);
            c.ln() - (-c).ln_1p()
        } else {
            x
        }
    }

    /// `log |dy/dx|` of [`PixelTransform::forward`] at `x`: `−ln c − ln(1 −
    /// c)` at the clamped `c`, `ln(1 − 2α) − ln u − ln(1 − u)` at the
    /// squeezed `u`, 0 without the logit.
    pub fn log_jacobian(&self, x: f64) -> f64 {
        if !self.logit {
            return 0.0;
        }
        let c = self.clamp(x);
        let lj = -(c.ln() + (-c).ln_1p());
        if self.squeezes() {
            lj + (-2.0 * self.alpha).ln_1p()
        } else {
            lj
        }
    }

    /// `log |dy/dx|` at the pixel whose model coordinate is `y` (`x =
    /// inverse(y)`): the same as [`PixelTransform::log_jacobian`] but from
    /// the coordinate, as used for noisy coordinates.
    pub fn log_jacobian_at(&self, y: f64) -> f64 {
        if !self.logit {
            return 0.0;
        }
        let lj = neg_log_sigmoid_pair(y);
        if self.squeezes() {
            lj + (-2.0 * self.alpha).ln_1p()
        } else {
            lj
        }
    }

    /// Back from a model coordinate to pixel space: `sigmoid(y)` (clamp),
    /// `(sigmoid(y) − α)/(1 − 2α)` (squeeze), or `y`.
    pub fn inverse(&self, y: f64) -> f64 {
        match (self.logit, self.map) {
            (false, _) => y,
            (true, LogitMap::Clamp) => sigmoid(y),
            (true, LogitMap::Squeeze) => (sigmoid(y) - self.alpha) / (1.0 - 2.0 * self.alpha),
        }
    }

    /// Dequantises one image with fresh uniforms (and, with noise, fresh
    /// normals) from `rng`, appends its model coordinates to `out` and
    /// returns its log-Jacobian `Σ log |dy/dx|`. Without noise and with the
    /// clamp it draws exactly one uniform per pixel, as it always has.
    pub fn dequantize_into(
        &self,
        q: Quantization,
        pixels: &[u8],
        rng: &mut dyn RngCore,
        out: &mut Vec<f64>,
    ) -> f64 {
        let mut log_jac = 0.0;
        for &p in pixels {
            let x = self.dequantize(q, p, rng.gen::<f64>());
            if self.noise_sigma > 0.0 {
                let e: f64 = rng.sample(StandardNormal);
                let y = self.forward(x) + self.noise_sigma * e;
                out.push(y);
                log_jac += self.log_jacobian_at(y);
            } else {
                out.push(self.forward(x));
                log_jac += self.log_jacobian(x);
            }
        }
        log_jac
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn logit_inverts_and_stays_finite() {
        let t = PixelTransform::clamped_logit(1e-3);
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

    fn squeeze(alpha: f64) -> PixelTransform {
        PixelTransform {
            map: LogitMap::Squeeze,
            ..PixelTransform::clamped_logit(alpha)
        }
    }

    #[test]
    fn squeeze_jacobian_matches_finite_differences() {
        for alpha in [1e-3, 0.05] {
            let t = squeeze(alpha);
            for x in [0.0, 1e-4, 0.03, 0.5, 0.97, 1.0 - 1e-9] {
                let h = 1e-6;
                let fd = (t.forward(x + h) - t.forward(x - h)) / (2.0 * h);
                let lj = t.log_jacobian(x);
                assert!(
                    (lj - fd.ln()).abs() < 1e-6,
                    "α {alpha} x {x}: {lj} vs {}",
                    fd.ln()
                );
                // The same from the model coordinate, and the inverse.
                let y = t.forward(x);
                assert!((t.log_jacobian_at(y) - lj).abs() < 1e-9, "{x}");
                assert!((t.inverse(y) - x).abs() < 1e-12, "{x}");
            }
        }
        // The clamp's Jacobian from the coordinate agrees with the pixel's.
        let c = PixelTransform::clamped_logit(1e-3);
        for x in [-0.1, 1e-3, 0.2, 0.9, 1.2] {
            assert!((c.log_jacobian_at(c.forward(x)) - c.log_jacobian(x)).abs() < 1e-9);
        }
    }

    #[test]
    fn squeeze_dequantises_by_cells_of_width_one_over_l() {
        let t = squeeze(1e-3);
        let q = Quantization::DIGITS;
        assert_eq!(t.dequantize(q, 0, 0.0), 0.0);
        assert!((t.dequantize(q, 16, 1.0) - 1.0).abs() < 1e-15);
        assert!((t.dequantize(q, 3, 0.5) - 3.5 / 17.0).abs() < 1e-15);
        let top = t.forward(1.0);
        assert!((top - (999.0f64).ln()).abs() < 1e-9 && (t.forward(0.0) + top).abs() < 1e-9);
    }

    #[test]
    fn noise_is_added_in_logit_space_and_the_jacobian_taken_there() {
        let t = PixelTransform {
            noise_sigma: 0.5,
            ..squeeze(1e-3)
        };
        let q = Quantization::DIGITS;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let mut out = Vec::new();
        let px = vec![8u8; 4000];
        let lj = t.dequantize_into(q, &px, &mut rng, &mut out);
        let want: f64 = out.iter().map(|&y| t.log_jacobian_at(y)).sum();
        assert!((lj - want).abs() < 1e-6 * want.abs());
        // Pixel 8 dequantises to (8 + U)/17 ∈ [0.47, 0.53): logit within
        // ±0.12 of 0.03; the noise spreads it by σ = 0.5.
        let mean = out.iter().sum::<f64>() / out.len() as f64;
        let var = out.iter().map(|y| (y - mean).powi(2)).sum::<f64>() / out.len() as f64;
        assert!(
            mean.abs() < 0.05 && (var.sqrt() - 0.5).abs() < 0.03,
            "{mean} {var}"
        );
    }
}
