//! The basis' gradient Gram of `dkef` in feature space, for the closed-form
//! `α` of the sliced (variance-reduced) and denoising criteria at large `D`.
//!
//! Every basis function is a kernel of the features, so its input gradient
//! factors through the feature Jacobian `J_i = ∂φ/∂x (x_i)` (`F × D`):
//! `∇ₓk_m(x_i) = J_iᵀ u_im` with `u_im = B_im (φ_i − φ(z_m))` and
//! `B = Σ_k w_k (−2c_k) K_k` (`n × L`). Hence
//!
//! `Σ_d ∂_d k_m ∂_d k_m' = u_imᵀ A_i u_im'`, `A_i = J_i J_iᵀ` (`F × F`), and
//! `Σ_d ∂_d k_m r_d = u_imᵀ (J_i r_i)`,
//!
//! so the Gram needs `F` products with the Jacobian per point instead of
//! `D` basis directions: memory `F·n × max(D, L)` instead of `D·n × L`.
//!
//! Data flow (all graph ops, differentiable in θ; `F·n`-row matrices are
//! block-major, row `f·n + i` for feature `f` of point `i`): one forward
//! pass keeps the MLP's slopes; `F` stacked vector–Jacobian products of the
//! unit cotangents give `Q` (`J_iᵀ e_f`, `F·n × D`); the features' jet along
//! `Q` gives `A_i e_f` (`F·n × F`); with it `W = A_i U_i` and the stacked
//! `U` (`F·n × L`) give `G = Σ_i U_iᵀ A_i U_i = UᵀW`, and one more jet along
//! the residual field `r` gives the cross term `Uᵀ vec(J_i r_i)`.

use crate::autodiff::jet::{Jet, JetKind};
use crate::autodiff::Graph;
use crate::device::Mat;

use super::Dkef;

impl Dkef {
    /// Whether [`Dkef::feature_space_gram`] is cheaper than `D` basis
    /// directions: wider inputs than features.
    pub(super) fn prefers_feature_space_gram(&self, dim: usize) -> bool {
        dim > self.feature_count()
    }

    /// `(G, c)` of [`crate::closed_form::LinearCoefficients::gradient_gram`]
    /// through the feature Jacobian (module documentation).
    pub(super) fn feature_space_gram(
        &self,
        g: &mut Graph,
        x: &Mat,
        extra: Option<&Mat>,
    ) -> (Mat, Mat) {
        let n = x.rows();
        let f = self.feature_count();
        let m = self.mixture(g, Jet::value(x.clone()), 1);
        // B = Σ_k w_k (−2c_k) K_k: ∂k_m/∂φ at x_i is B_im (φ_i − φ(z_m)).
        let mut b: Option<Mat> = None;
        for (kern, ck, wk) in &m.kernels {
            let cw = g.mul(ck, wk);
            let cw = g.scale(&cw, -2.0);
            let t = g.mul_scalar(kern, &cw);
            b = Some(match b {
                Some(acc) => g.add(&acc, &t),
                None => t,
            });
        }
        let b = b.expect("at least one kernel");
        // Unit cotangents e_f, block-major (F·n × F): R[f·n + i, f] = 1.
        let mut unit = vec![0.0; f * n * f];
        for k in 0..f {
            for i in 0..n {
                unit[(k * n + i) * f + k] = 1.0;
            }
        }
        let r = g.constant(unit, f * n, f);
        // Q = J_iᵀ e_f (F·n × D), the skip's part included.
        let mut q = self.phi.vjp(g, &m.cache, &r);
        if let Some(w) = &self.skip {
            let t = g.matmul_t(&r, &w.value);
            q = g.add(&q, &t);
        }
        // A_i e_f = J_i J_iᵀ e_f (F·n × F).
        let (ja, _) = self.features(g, Jet::along(x.clone(), q, JetKind::First), 0);
        let a = ja.d1_or_zero(g);
        // W = A_i U_i: B_im ((A_i φ_i)_f − (A_i φ(z_m))_f).
        let phi_t = g.tile_blocks(&m.phi, f);
        let aphi = g.mul(&a, &phi_t);
        let aphi = g.sum_cols(&aphi);
        let az = g.matmul_t(&a, &m.phiz);
        let bt = g.tile_blocks(&b, f);
        let w1 = g.mul_col(&bt, &aphi);
        let w2 = g.mul(&bt, &az);
        let w = g.sub(&w1, &w2);
        // U: B_im (φ_if − φ(z_m)_f).
        let phi_col = g.transpose(&m.phi);
        let phi_col = g.reshape(&phi_col, f * n, 1);
        let zt = g.transpose(&m.phiz);
        let z_rows = g.matmul(&r, &zt);
        let u1 = g.mul_col(&bt, &phi_col);
        let u2 = g.mul(&bt, &z_rows);
        let u = g.sub(&u1, &u2);
        // G = UᵀW, symmetrised (A_i is symmetric; rounding is not).
        let gram = g.t_matmul(&u, &w);
        let gram_t = g.transpose(&gram);
        let gram = g.add(&gram, &gram_t);
        let gram = g.scale(&gram, 0.5 / n as f64);
        // c = Uᵀ vec(J_i r_i), r = ∇f₀ + extra.
        let mut resid = Dkef::base_score(g, x, &m.inv_var);
        if let Some(extra) = extra {
            resid = g.add(&resid, extra);
        }
        let (jr, _) = self.features(g, Jet::along(x.clone(), resid, JetKind::First), 0);
        let h = jr.d1_or_zero(g);
        let h = g.transpose(&h);
        let h = g.reshape(&h, f * n, 1);
        let cross = g.t_matmul(&u, &h);
        (gram, g.scale(&cross, 1.0 / n as f64))
    }
}
