//! Hamiltonian Monte Carlo on the annealed densities
//! π_β(z) ∝ N(z; 0, I)^{1−β} f(z)^β, for a batch of chains at once.
//!
//! [`HmcChains`] keeps every chain's position together with log f and ∇ log f
//! there, so one transition costs exactly `leapfrog_steps` batched calls of
//! [`LogTarget::log_prob_and_grad`]: draw momenta, integrate with the
//! leapfrog scheme (one target call per step, all chains together), then
//! accept or reject each chain's endpoint by Metropolis. A proposal whose
//! log-density or gradient is not finite anywhere along its trajectory is
//! rejected (and counted); the chain's current state is always finite.

use rand::{Rng, RngCore};
use rand_distr::StandardNormal;

use super::{log_std_normal, AisError, LogTarget};

/// log π_β(z) up to its normalizer, from log f(z) already computed.
fn log_annealed(beta: f64, z: &[f64], log_f: f64) -> f64 {
    if beta == 1.0 {
        log_f
    } else {
        (1.0 - beta) * log_std_normal(z) + beta * log_f
    }
}

/// Kinetic energy ½‖p‖².
fn kinetic(p: &[f64]) -> f64 {
    0.5 * p.iter().map(|v| v * v).sum::<f64>()
}

/// Calls the target and checks the lengths of what it returns.
pub(crate) fn evaluate<T: LogTarget + ?Sized>(
    target: &T,
    z: &[f64],
    n: usize,
) -> Result<(Vec<f64>, Vec<f64>), AisError> {
    let dim = target.dim();
    let (log_f, grad) = target.log_prob_and_grad(z, n);
    if log_f.len() != n {
        return Err(AisError::TargetShape {
            what: "log-probabilities",
            expected: n,
            got: log_f.len(),
        });
    }
    if grad.len() != n * dim {
        return Err(AisError::TargetShape {
            what: "gradient",
            expected: n * dim,
            got: grad.len(),
        });
    }
    Ok((log_f, grad))
}

/// Leapfrog integration of the Hamiltonian −log π_β(z) + ½‖p‖², in place.
///
/// On entry `z` is the start, `log_f`/`grad` hold log f and ∇ log f there, and
/// `start` is a copy of `z`. On exit they hold the endpoint. A chain whose
/// log f or gradient turns non-finite is flagged in `diverged`, its position
/// is put back to `start` (so the target only ever sees finite inputs from
/// it) and it is no longer moved; its endpoint must be rejected.
#[allow(clippy::too_many_arguments)]
fn integrate<T: LogTarget + ?Sized>(
    target: &T,
    beta: f64,
    start: &[f64],
    z: &mut [f64],
    p: &mut [f64],
    log_f: &mut Vec<f64>,
    grad: &mut Vec<f64>,
    step_sizes: &[f64],
    steps: usize,
    diverged: &mut [bool],
) -> Result<(), AisError> {
    let dim = target.dim();
    let n = step_sizes.len();
    // Half step of momentum: p += ε/2 ∇ log π_β(z), with ∇ log π_β = β∇log f − (1−β) z.
    let kick = |p: &mut [f64], z: &[f64], grad: &[f64], scale: f64, diverged: &[bool]| {
        for i in 0..n {
            if diverged[i] {
                continue;
            }
            let h = scale * step_sizes[i];
            let row = i * dim..(i + 1) * dim;
            for ((pj, &zj), &gj) in p[row.clone()]
                .iter_mut()
                .zip(&z[row.clone()])
                .zip(&grad[row])
            {
                *pj += h * (beta * gj - (1.0 - beta) * zj);
            }
        }
    };
    kick(p, z, grad, 0.5, diverged);
    for step in 0..steps {
        for i in 0..n {
            if diverged[i] {
                continue;
            }
            let e = step_sizes[i];
            let row = i * dim..(i + 1) * dim;
            for (zj, &pj) in z[row.clone()].iter_mut().zip(&p[row]) {
                *zj += e * pj;
            }
        }
        let (new_log_f, new_grad) = evaluate(target, z, n)?;
        *log_f = new_log_f;
        *grad = new_grad;
        for i in 0..n {
            let row = i * dim..(i + 1) * dim;
            if !diverged[i]
                && (!log_f[i].is_finite()
                    || grad[row.clone()].iter().any(|g| !g.is_finite())
                    || z[row.clone()].iter().any(|v| !v.is_finite()))
            {
                diverged[i] = true;
                z[row.clone()].copy_from_slice(&start[row]);
            }
        }
        let scale = if step + 1 == steps { 0.5 } else { 1.0 };
        kick(p, z, grad, scale, diverged);
    }
    Ok(())
}

/// Runs `steps` leapfrog steps of size `step_sizes[i]` for chain `i` on the
/// Hamiltonian −log π_β(z) + ½‖p‖², updating the positions `z` (row-major
/// n × dim, n = `step_sizes.len()`) and momenta `p` in place.
///
/// Returns, per chain, whether the trajectory met a non-finite log-density or
/// gradient (such a chain's `z` is put back to its start, its `p` is left
/// where it stopped). The integrator is volume-preserving and reversible:
/// integrating again from the endpoint with negated momenta returns to the
/// start, up to rounding. Errors if the target returns slices of the wrong
/// length.
pub fn leapfrog<T: LogTarget + ?Sized>(
    target: &T,
    beta: f64,
    z: &mut [f64],
    p: &mut [f64],
    step_sizes: &[f64],
    steps: usize,
) -> Result<Vec<bool>, AisError> {
    let n = step_sizes.len();
    let dim = target.dim();
    assert_eq!(
        z.len(),
        n * dim,
        "leapfrog: z must hold step_sizes.len() × dim entries"
    );
    assert_eq!(
        p.len(),
        n * dim,
        "leapfrog: p must hold step_sizes.len() × dim entries"
    );
    let (mut log_f, mut grad) = evaluate(target, z, n)?;
    let start = z.to_vec();
    let mut diverged: Vec<bool> = (0..n)
        .map(|i| {
            !log_f[i].is_finite() || grad[i * dim..(i + 1) * dim].iter().any(|g| !g.is_finite())
        })
        .collect();
    integrate(
        target,
        beta,
        &start,
        z,
        p,
        &mut log_f,
        &mut grad,
        step_sizes,
        steps,
        &mut diverged,
    )?;
    Ok(diverged)
}

/// A batch of HMC chains: positions (row-major n × dim) with log f and
/// ∇ log f cached at each, plus scratch buffers reused by every transition.
///
/// Rows are grouped by data point as [`LogTarget`] documents: with
/// `P = target.num_points()`, row `r` belongs to data point `r / (n / P)`.
#[derive(Debug, Clone)]
pub struct HmcChains {
    dim: usize,
    n: usize,
    z: Vec<f64>,
    log_f: Vec<f64>,
    grad: Vec<f64>,
    z_new: Vec<f64>,
    p: Vec<f64>,
    log_f_new: Vec<f64>,
    grad_new: Vec<f64>,
    h0: Vec<f64>,
    diverged: Vec<bool>,
}

impl HmcChains {
    /// Starts chains at the positions `z` (row-major, `z.len() / dim` chains,
    /// a multiple of `target.num_points()`) and evaluates the target there.
    ///
    /// Errors with [`AisError::NonFinite`] (temperature index 0) naming the
    /// first chain whose log f or gradient is not finite, and with
    /// [`AisError::TargetShape`] if the sizes do not fit.
    pub fn new<T: LogTarget + ?Sized>(target: &T, z: Vec<f64>) -> Result<Self, AisError> {
        let dim = target.dim();
        let points = target.num_points();
        if dim == 0 || !z.len().is_multiple_of(dim) {
            return Err(AisError::TargetShape {
                what: "positions (a multiple of dim)",
                expected: dim * z.len().div_ceil(dim.max(1)),
                got: z.len(),
            });
        }
        let n = z.len() / dim;
        if points == 0 || n == 0 || !n.is_multiple_of(points) {
            return Err(AisError::TargetShape {
                what: "chains (a positive multiple of num_points)",
                expected: points.max(1) * n.div_ceil(points.max(1)).max(1),
                got: n,
            });
        }
        let per_point = n / points;
        let (log_f, grad) = evaluate(target, &z, n)?;
        for i in 0..n {
            let bad = if !log_f[i].is_finite() {
                Some(("log-probability", log_f[i]))
            } else {
                grad[i * dim..(i + 1) * dim]
                    .iter()
                    .find(|g| !g.is_finite())
                    .map(|&g| ("gradient", g))
            };
            if let Some((quantity, value)) = bad {
                return Err(AisError::NonFinite {
                    temperature: 0,
                    point: i / per_point,
                    chain: i % per_point,
                    quantity,
                    value,
                });
            }
        }
        Ok(HmcChains {
            dim,
            n,
            z_new: z.clone(),
            p: vec![0.0; n * dim],
            log_f_new: log_f.clone(),
            grad_new: grad.clone(),
            h0: vec![0.0; n],
            diverged: vec![false; n],
            z,
            log_f,
            grad,
        })
    }

    /// Number of chains.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Whether there are no chains (never true for a built value).
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Dimension of each chain's state.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Current positions, row-major n × dim.
    pub fn positions(&self) -> &[f64] {
        &self.z
    }

    /// log f at the current positions (always finite).
    pub fn log_f(&self) -> &[f64] {
        &self.log_f
    }

    /// Consumes the chains, returning the positions (row-major n × dim).
    pub fn into_positions(self) -> Vec<f64> {
        self.z
    }

    /// One HMC transition leaving π_β invariant for every chain: fresh momenta
    /// p ~ N(0, I), `leapfrog_steps` leapfrog steps of size `step_sizes[i]`
    /// for chain `i`, and a Metropolis accept/reject of each endpoint.
    ///
    /// Writes each chain's acceptance probability min(1, e^{H₀−H₁}) to
    /// `acceptance` (0 for a rejected non-finite proposal) and returns how many
    /// proposals were rejected for being non-finite. Draws n·dim normals then
    /// n uniforms from `rng`, whatever happens, so runs are reproducible.
    ///
    /// # Panics
    /// If `step_sizes` or `acceptance` do not have one entry per chain.
    pub fn step<T: LogTarget + ?Sized>(
        &mut self,
        target: &T,
        beta: f64,
        step_sizes: &[f64],
        leapfrog_steps: usize,
        rng: &mut dyn RngCore,
        acceptance: &mut [f64],
    ) -> Result<usize, AisError> {
        let (n, dim) = (self.n, self.dim);
        assert_eq!(
            step_sizes.len(),
            n,
            "HmcChains::step: one step size per chain"
        );
        assert_eq!(
            acceptance.len(),
            n,
            "HmcChains::step: one acceptance slot per chain"
        );
        for v in self.p.iter_mut() {
            *v = rng.sample(StandardNormal);
        }
        self.z_new.copy_from_slice(&self.z);
        self.log_f_new.clone_from(&self.log_f);
        self.grad_new.clone_from(&self.grad);
        self.diverged.fill(false);
        // Initial Hamiltonian H₀ = −log π_β(z) + ½‖p‖², before anything moves.
        for i in 0..n {
            let row = i * dim..(i + 1) * dim;
            self.h0[i] =
                -log_annealed(beta, &self.z[row.clone()], self.log_f[i]) + kinetic(&self.p[row]);
        }
        integrate(
            target,
            beta,
            &self.z,
            &mut self.z_new,
            &mut self.p,
            &mut self.log_f_new,
            &mut self.grad_new,
            step_sizes,
            leapfrog_steps,
            &mut self.diverged,
        )?;
        let mut rejected = 0;
        for (i, acc) in acceptance.iter_mut().enumerate() {
            let u: f64 = rng.gen();
            let row = i * dim..(i + 1) * dim;
            let h1 = if self.diverged[i] {
                f64::NAN
            } else {
                -log_annealed(beta, &self.z_new[row.clone()], self.log_f_new[i])
                    + kinetic(&self.p[row.clone()])
            };
            if !h1.is_finite() {
                rejected += 1;
                *acc = 0.0;
                continue;
            }
            let a = (self.h0[i] - h1).exp().min(1.0);
            *acc = a;
            if u < a {
                self.z[row.clone()].copy_from_slice(&self.z_new[row.clone()]);
                self.grad[row.clone()].copy_from_slice(&self.grad_new[row]);
                self.log_f[i] = self.log_f_new[i];
            }
        }
        Ok(rejected)
    }
}
