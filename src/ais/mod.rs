//! Annealed importance sampling (AIS) with Hamiltonian Monte Carlo, to
//! estimate normalizers such as the marginal likelihood
//! log p(x) = log ∫ p(x|z) p(z) dz of a latent-variable model.
//!
//! How data flows: the caller implements [`LogTarget`] for a batch of data
//! points (f(z) = p(x|z) p(z) for a VAE decoder, in plain `f64` on the host)
//! and calls [`run`] with an [`AisConfig`]. [`run`] draws `chains` states per
//! data point from N(0, I), then walks the [`Schedule`]'s inverse
//! temperatures 0 = β₀ < … < β_{K−1} = 1 of
//! π_t(z) ∝ N(z; 0, I)^{1−β_t} f(z)^{β_t}: at each t it adds
//! (β_t − β_{t−1})(log f(z) − log N(z; 0, I)) to every chain's log weight,
//! then moves every chain by one [`hmc`] transition that leaves π_t
//! invariant (all chains of all points in one batched target call per
//! leapfrog step). Each data point has its own step size, adapted toward a
//! target acceptance rate ([`StepSizeAdaptation`]) and jittered per chain and
//! transition. At the end each data point's estimate is the log-mean-exp
//! of its chains' log weights ([`AisOutput`]), an unbiased estimate of the
//! normalizer Z = ∫ f and so a stochastic lower bound of log Z in expectation.
//!
//! A non-finite log f or gradient at a starting state is an error
//! ([`AisError::NonFinite`]); a non-finite proposal is rejected and counted.

pub mod hmc;
pub mod schedule;

use indicatif::ProgressBar;
use rand::{Rng, RngCore};
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

pub use hmc::{leapfrog, HmcChains};
pub use schedule::{linear_schedule, sigmoid_schedule, Schedule};

/// A batch of unnormalized log-densities f over latent vectors of dimension
/// [`dim`](LogTarget::dim), one per data point.
///
/// The chains are grouped by data point: when called with `n` chains, chain
/// (row) `r` belongs to data point `r / (n / num_points())`, i.e. the first
/// `n / num_points()` rows are the chains of point 0, and so on.
pub trait LogTarget {
    /// Dimension of the latent vector z.
    fn dim(&self) -> usize;

    /// Number of data points (distinct targets) in the batch; 1 by default.
    fn num_points(&self) -> usize {
        1
    }

    /// For `n` chains' states `z` (row-major n × dim): log f(z) per chain
    /// (length n) and its gradient ∇z log f (row-major n × dim).
    ///
    /// Non-finite values are allowed: at a proposal they make AIS reject it;
    /// at a starting state they make [`run`] fail with [`AisError::NonFinite`].
    fn log_prob_and_grad(&self, z: &[f64], n: usize) -> (Vec<f64>, Vec<f64>);
}

/// log N(z; 0, I): the exact log-density of the initial distribution.
pub fn log_std_normal(z: &[f64]) -> f64 {
    let sq: f64 = z.iter().map(|v| v * v).sum();
    -0.5 * sq - 0.5 * z.len() as f64 * (2.0 * std::f64::consts::PI).ln()
}

/// Why an AIS run could not produce estimates.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AisError {
    /// A setting is out of range.
    #[error("ais.{field}: {reason}")]
    InvalidConfig {
        /// The offending field of [`AisConfig`].
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The target returned (or was given) a slice of the wrong length.
    #[error("AIS target: {what}: expected {expected} entries, got {got}")]
    TargetShape {
        /// Which quantity.
        what: &'static str,
        /// The length required.
        expected: usize,
        /// The length seen.
        got: usize,
    },
    /// The target's log-density or gradient was not finite at a chain's
    /// current (not proposed) state: the initial state, at temperature index 0.
    #[error(
        "AIS target returned a non-finite {quantity} ({value}) at temperature index {temperature}, \
         data point {point}, chain {chain}: the chains' starting states need a finite log-density \
         and gradient"
    )]
    NonFinite {
        /// Index of the temperature in the schedule (0: the initial states).
        temperature: usize,
        /// Data point the chain belongs to.
        point: usize,
        /// Chain index within that data point.
        chain: usize,
        /// `"log-probability"` or `"gradient"`.
        quantity: &'static str,
        /// The offending value.
        value: f64,
    },
}

/// How the HMC step size adapts during the run.
///
/// Each data point has its own step size ε. After the transition at each
/// temperature, the mean Metropolis acceptance probability `a` of that point's
/// chains updates a running average `ā ← s·ā + (1 − s)·a` (starting at the
/// target), and ε is multiplied by `factor` if ā > `target_acceptance`,
/// divided by it otherwise, then clamped to [`min_step_size`, `max_step_size`]
/// (Wu et al., 2017). The step size used at temperature t depends only on
/// transitions at earlier temperatures, so each transition still leaves its
/// π_t invariant given the past, and the weights (computed before each
/// transition) stay valid for AIS.
///
/// [`min_step_size`]: StepSizeAdaptation::min_step_size
/// [`max_step_size`]: StepSizeAdaptation::max_step_size
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StepSizeAdaptation {
    /// Target acceptance rate, in (0, 1); default 0.65.
    pub target_acceptance: f64,
    /// Multiplicative change per temperature, > 1; default 1.02.
    pub factor: f64,
    /// Weight `s` of the past in the running acceptance average, in [0, 1);
    /// default 0.9.
    pub smoothing: f64,
    /// Smallest step size, > 0; default 1e-4.
    pub min_step_size: f64,
    /// Largest step size, ≥ `min_step_size`; default 0.5.
    pub max_step_size: f64,
}

impl Default for StepSizeAdaptation {
    fn default() -> Self {
        StepSizeAdaptation {
            target_acceptance: 0.65,
            factor: 1.02,
            smoothing: 0.9,
            min_step_size: 1e-4,
            max_step_size: 0.5,
        }
    }
}

/// Settings of an AIS run. Defaults follow Wu et al. (2017): 1000 sigmoid
/// temperatures, 16 chains per data point, 10 leapfrog steps, initial step
/// size 0.01 adapted toward 0.65 acceptance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AisConfig {
    /// Number K ≥ 2 of inverse temperatures, including β = 0 and β = 1 (K − 1
    /// weight updates and HMC transitions); default 1000.
    pub num_temperatures: usize,
    /// Spacing of the temperatures; default sigmoid with radius 4.
    pub schedule: Schedule,
    /// Chains per data point, ≥ 1; default 16.
    pub chains: usize,
    /// Leapfrog steps per HMC transition, ≥ 1; default 10.
    pub leapfrog_steps: usize,
    /// Initial step size, > 0 (within the adaptation's bounds); default 0.01.
    pub step_size: f64,
    /// Step-size adaptation; `None` keeps `step_size` fixed. Default on.
    pub adaptation: Option<StepSizeAdaptation>,
    /// Random jitter of the step size: at every transition each chain uses
    /// ε·u with u uniform in [1 − jitter, 1 + jitter], so that no fixed
    /// trajectory length ε·L resonates with the target's periods (Neal,
    /// 2011). In [0, 1); default 0.2; 0 turns it off.
    pub step_size_jitter: f64,
    /// A data point whose effective sample size is below this fraction of
    /// `chains` counts as collapsed ([`AisOutput::collapsed`]); default 0.1.
    pub ess_collapse_fraction: f64,
}

impl Default for AisConfig {
    fn default() -> Self {
        AisConfig {
            num_temperatures: 1000,
            schedule: Schedule::default(),
            chains: 16,
            leapfrog_steps: 10,
            step_size: 0.01,
            adaptation: Some(StepSizeAdaptation::default()),
            step_size_jitter: 0.2,
            ess_collapse_fraction: 0.1,
        }
    }
}

impl AisConfig {
    /// Checks every setting; the error names the field.
    pub fn validate(&self) -> Result<(), AisError> {
        let bad =
            |field: &'static str, reason: String| Err(AisError::InvalidConfig { field, reason });
        if self.num_temperatures < 2 {
            return bad(
                "num_temperatures",
                format!("must be ≥ 2, got {}", self.num_temperatures),
            );
        }
        if let Schedule::Sigmoid { radius } = self.schedule {
            if !(radius.is_finite() && radius > 0.0) {
                return bad(
                    "schedule",
                    format!("sigmoid radius must be finite and > 0, got {radius}"),
                );
            }
        }
        if self.chains == 0 {
            return bad("chains", "must be ≥ 1, got 0".into());
        }
        if self.leapfrog_steps == 0 {
            return bad("leapfrog_steps", "must be ≥ 1, got 0".into());
        }
        if !(self.step_size.is_finite() && self.step_size > 0.0) {
            return bad(
                "step_size",
                format!("must be finite and > 0, got {}", self.step_size),
            );
        }
        if !(0.0..1.0).contains(&self.step_size_jitter) {
            return bad(
                "step_size_jitter",
                format!("must be in [0, 1), got {}", self.step_size_jitter),
            );
        }
        if !(0.0..=1.0).contains(&self.ess_collapse_fraction) {
            return bad(
                "ess_collapse_fraction",
                format!("must be in [0, 1], got {}", self.ess_collapse_fraction),
            );
        }
        if let Some(a) = &self.adaptation {
            if !(a.target_acceptance > 0.0 && a.target_acceptance < 1.0) {
                return bad(
                    "adaptation.target_acceptance",
                    format!("must be in (0, 1), got {}", a.target_acceptance),
                );
            }
            if !(a.factor.is_finite() && a.factor > 1.0) {
                return bad(
                    "adaptation.factor",
                    format!("must be finite and > 1, got {}", a.factor),
                );
            }
            if !(0.0..1.0).contains(&a.smoothing) {
                return bad(
                    "adaptation.smoothing",
                    format!("must be in [0, 1), got {}", a.smoothing),
                );
            }
            if !(a.min_step_size.is_finite() && a.min_step_size > 0.0) {
                return bad(
                    "adaptation.min_step_size",
                    format!("must be finite and > 0, got {}", a.min_step_size),
                );
            }
            if !(a.max_step_size.is_finite() && a.max_step_size >= a.min_step_size) {
                return bad(
                    "adaptation.max_step_size",
                    format!(
                        "must be finite and ≥ min_step_size ({}), got {}",
                        a.min_step_size, a.max_step_size
                    ),
                );
            }
            if !(a.min_step_size..=a.max_step_size).contains(&self.step_size) {
                return bad(
                    "step_size",
                    format!(
                        "must lie within the adaptation bounds [{}, {}], got {}",
                        a.min_step_size, a.max_step_size, self.step_size
                    ),
                );
            }
        }
        Ok(())
    }

    /// Number of temperature steps (K − 1) one [`run`] makes: how far it
    /// advances a progress bar.
    pub fn steps(&self) -> u64 {
        self.num_temperatures.saturating_sub(1) as u64
    }
}

/// What an AIS run estimated. Per-point vectors have one entry per data point;
/// per-chain ones are point-major (`num_points × chains`).
#[derive(Debug, Clone, PartialEq)]
pub struct AisOutput {
    /// Per data point: log-mean-exp of its chains' log weights, the estimate
    /// of log Z = log ∫ f (log p(x) for f = p(x|z) p(z)). Its exponential is
    /// unbiased for Z, so in expectation it is a lower bound of log Z.
    pub log_marginal: Vec<f64>,
    /// Per data point: effective sample size (Σw)²/Σw² of the chains'
    /// weights, between 1 and `chains`.
    pub ess: Vec<f64>,
    /// Per chain: the accumulated log weight.
    pub log_weights: Vec<f64>,
    /// Per data point: mean Metropolis acceptance probability over all its
    /// chains and transitions.
    pub acceptance: Vec<f64>,
    /// Mean of [`acceptance`](AisOutput::acceptance) over data points.
    pub mean_acceptance: f64,
    /// Per data point: the running-average acceptance at the end (what the
    /// adaptation steers toward its target; smoothing 0.9 when adaptation is
    /// off).
    pub final_acceptance: Vec<f64>,
    /// Per data point: the step size at the end of the run.
    pub step_size: Vec<f64>,
    /// How many data points have an ESS below `ess_collapse_fraction × chains`
    /// (their estimates are unreliable).
    pub collapsed: usize,
    /// How many proposals were rejected because the target was not finite
    /// somewhere along their trajectory.
    pub non_finite_rejections: usize,
    /// Final chain states (row-major, point-major `num_points·chains × dim`),
    /// approximately from the normalized f after the last transition.
    pub states: Vec<f64>,
}

/// log (1/n) Σ exp(v_i), computed stably; −∞ when every v_i is −∞.
pub fn log_mean_exp(v: &[f64]) -> f64 {
    let m = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if m == f64::NEG_INFINITY {
        return m;
    }
    let s: f64 = v.iter().map(|&x| (x - m).exp()).sum();
    m + s.ln() - (v.len() as f64).ln()
}

/// Effective sample size (Σw)²/Σw² of the weights w_i = exp(v_i), computed
/// from the log weights `v` without overflow; 0 when every weight is 0.
pub fn effective_sample_size(v: &[f64]) -> f64 {
    let m = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if m == f64::NEG_INFINITY {
        return 0.0;
    }
    let (s, s2) = v.iter().fold((0.0, 0.0), |(s, s2), &x| {
        let w = (x - m).exp();
        (s + w, s2 + w * w)
    });
    s * s / s2
}

/// Runs AIS from N(0, I) to the normalized `target` for every data point of
/// the target, with `config.chains` chains each, and returns the estimates.
///
/// Randomness comes only from `rng` (same seed, same result). `progress`, if
/// given, advances by one per temperature ([`AisConfig::steps`] per call);
/// the caller sets its length and style. If some data points' ESS collapses
/// one `tracing::warn!` summarizes how many.
pub fn run<T: LogTarget + ?Sized>(
    target: &T,
    config: &AisConfig,
    rng: &mut dyn RngCore,
    progress: Option<&ProgressBar>,
) -> Result<AisOutput, AisError> {
    config.validate()?;
    let dim = target.dim();
    let points = target.num_points();
    if dim == 0 {
        return Err(AisError::InvalidConfig {
            field: "target",
            reason: "dim() must be ≥ 1".into(),
        });
    }
    if points == 0 {
        return Err(AisError::InvalidConfig {
            field: "target",
            reason: "num_points() must be ≥ 1".into(),
        });
    }
    let per_point = config.chains;
    let n = points * per_point;
    let betas = config.schedule.betas(config.num_temperatures);

    let z0: Vec<f64> = (0..n * dim).map(|_| rng.sample(StandardNormal)).collect();
    let mut chains = HmcChains::new(target, z0)?;

    let mut log_w = vec![0.0; n];
    let mut eps = vec![config.step_size; points];
    let mut eps_chain = vec![config.step_size; n];
    let target_accept = config
        .adaptation
        .as_ref()
        .map_or(0.65, |a| a.target_acceptance);
    let mut running = vec![target_accept; points];
    let mut accept_sum = vec![0.0; points];
    let mut accept = vec![0.0; n];
    let mut non_finite = 0;

    for t in 1..betas.len() {
        let dbeta = betas[t] - betas[t - 1];
        let z = chains.positions();
        for (i, (lw, &lf)) in log_w.iter_mut().zip(chains.log_f()).enumerate() {
            *lw += dbeta * (lf - log_std_normal(&z[i * dim..(i + 1) * dim]));
        }
        let jitter = config.step_size_jitter;
        for (i, e) in eps_chain.iter_mut().enumerate() {
            *e = eps[i / per_point];
            if jitter > 0.0 {
                *e *= 1.0 + jitter * (2.0 * rng.gen::<f64>() - 1.0);
            }
        }
        non_finite += chains.step(
            target,
            betas[t],
            &eps_chain,
            config.leapfrog_steps,
            rng,
            &mut accept,
        )?;
        for p in 0..points {
            let a = accept[p * per_point..(p + 1) * per_point]
                .iter()
                .sum::<f64>()
                / per_point as f64;
            accept_sum[p] += a;
            if let Some(ad) = &config.adaptation {
                running[p] = ad.smoothing * running[p] + (1.0 - ad.smoothing) * a;
                let e = if running[p] > ad.target_acceptance {
                    eps[p] * ad.factor
                } else {
                    eps[p] / ad.factor
                };
                eps[p] = e.clamp(ad.min_step_size, ad.max_step_size);
            } else {
                running[p] = 0.9 * running[p] + 0.1 * a;
            }
        }
        if let Some(pb) = progress {
            pb.inc(1);
        }
    }

    let transitions = (betas.len() - 1) as f64;
    let mut log_marginal = Vec::with_capacity(points);
    let mut ess = Vec::with_capacity(points);
    for p in 0..points {
        let lw = &log_w[p * per_point..(p + 1) * per_point];
        log_marginal.push(log_mean_exp(lw));
        ess.push(effective_sample_size(lw));
    }
    let threshold = config.ess_collapse_fraction * per_point as f64;
    let collapsed = ess.iter().filter(|&&e| e < threshold).count();
    if collapsed > 0 {
        tracing::warn!(
            "AIS: {collapsed} of {points} data points have an effective sample size below {threshold:.1} \
             ({} × {per_point} chains); their estimates are unreliable (use more temperatures or chains)",
            config.ess_collapse_fraction
        );
    }
    let acceptance: Vec<f64> = accept_sum.iter().map(|s| s / transitions).collect();
    let mean_acceptance = acceptance.iter().sum::<f64>() / points as f64;
    Ok(AisOutput {
        log_marginal,
        ess,
        log_weights: log_w,
        acceptance,
        mean_acceptance,
        final_acceptance: running,
        step_size: eps,
        collapsed,
        non_finite_rejections: non_finite,
        states: chains.into_positions(),
    })
}
