//! Optimizers with state we own, so the state can be checkpointed and
//! restored exactly.
//!
//! Data flow: the loop passes the trainable parameters (walked by
//! [`crate::nn::Module`], in the same order as the graph's leaves) and their
//! gradients to [`Optimizer::step`]; each update runs as one fused kernel
//! per parameter ([`crate::compute::update`]) on the parameters' device, in
//! place, with gradient clipping folded in as a scale.

use std::collections::BTreeMap;

use crate::compute::{self, Update};
use crate::device::Mat;
use crate::experiment::OptimizerConfig;
use crate::nn::module::for_each_param_mut;
use crate::nn::Module;

/// Adam, RMSProp or SGD with its per-parameter state; a second rule may
/// update the experiment's score model on its own (a task's alternating
/// schedule), its state kept under the same parameter names.
pub struct Optimizer {
    config: OptimizerConfig,
    /// Steps taken.
    pub steps: u64,
    /// Steps the score model took with its own rule ([`Optimizer::step_score`]).
    pub score_steps: u64,
    /// First moments (Adam) or velocities (SGD), by parameter name.
    pub m: BTreeMap<String, Mat>,
    /// Second moments (Adam) or squared-gradient averages (RMSProp), by
    /// parameter name.
    pub v: BTreeMap<String, Mat>,
}

impl Optimizer {
    /// A fresh optimizer.
    pub fn new(config: OptimizerConfig) -> Self {
        Self {
            config,
            steps: 0,
            score_steps: 0,
            m: BTreeMap::new(),
            v: BTreeMap::new(),
        }
    }

    /// The learning rate.
    pub fn lr(&self) -> f64 {
        self.config.lr()
    }

    /// One update of the trainable parameters of `module` with `grads` (in
    /// visiting order), each gradient multiplied by `grad_scale` first.
    ///
    /// # Panics
    /// If the number of gradients differs from the number of trainable parameters.
    pub fn step(&mut self, module: &mut (impl Module + ?Sized), grads: &[Mat], grad_scale: f64) {
        self.steps += 1;
        let config = self.config.clone();
        self.apply(&config, self.steps, module, grads, grad_scale);
    }

    /// One update of the score model's trainable parameters with its own
    /// rule `config` (counted apart for Adam's bias correction).
    ///
    /// # Panics
    /// As [`Optimizer::step`].
    pub fn step_score(
        &mut self,
        config: &OptimizerConfig,
        module: &mut (impl Module + ?Sized),
        grads: &[Mat],
        grad_scale: f64,
    ) {
        self.score_steps += 1;
        self.apply(config, self.score_steps, module, grads, grad_scale);
    }

    fn apply(
        &mut self,
        config: &OptimizerConfig,
        steps: u64,
        module: &mut (impl Module + ?Sized),
        grads: &[Mat],
        grad_scale: f64,
    ) {
        let rule = match *config {
            OptimizerConfig::Adam {
                lr,
                beta1,
                beta2,
                eps,
            } => Update::Adam {
                lr,
                beta1,
                beta2,
                eps,
                step: steps.min(i32::MAX as u64) as i32,
            },
            OptimizerConfig::RmsProp { lr, rho, eps } => Update::RmsProp { lr, rho, eps },
            OptimizerConfig::Sgd { lr, momentum } => Update::Sgd { lr, momentum },
        };
        let (uses_m, uses_v) = match rule {
            Update::Adam { .. } => (true, true),
            Update::RmsProp { .. } => (false, true),
            Update::Sgd { .. } => (true, false),
        };
        let mut next = grads.iter();
        for_each_param_mut(module, |name, p| {
            if !p.is_trainable() {
                return;
            }
            let g = next.next().expect("one gradient per trainable parameter");
            let (r, c) = p.shape();
            let state = |map: &mut BTreeMap<String, Mat>, used: bool| match used {
                true => map
                    .remove(name)
                    .unwrap_or_else(|| compute::zeros_as(&p.value, r, c)),
                false => compute::zeros_as(&p.value, r, c),
            };
            let mut m = state(&mut self.m, uses_m);
            let mut v = state(&mut self.v, uses_v);
            compute::update(rule, &mut p.value, g, &mut m, &mut v, grad_scale);
            if uses_m {
                self.m.insert(name.to_string(), m);
            }
            if uses_v {
                self.v.insert(name.to_string(), v);
            }
        });
        assert!(
            next.next().is_none(),
            "more gradients than trainable parameters"
        );
    }
}

/// The global L2 norm of a set of gradients, accumulated in `f64`.
pub fn global_norm(grads: &[Mat]) -> f64 {
    grads
        .iter()
        .map(compute::host_sum_squares)
        .sum::<f64>()
        .sqrt()
}

/// The scale that clips gradients of global norm `norm` to at most
/// `max_norm` (1 when they are within it, or when the norm is not finite).
pub fn clip_scale(norm: f64, max_norm: Option<f64>) -> f64 {
    match max_norm {
        Some(c) if norm > c && norm.is_finite() => c / norm,
        _ => 1.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::{Backend, Device, Precision};
    use crate::nn::Param;

    struct One(Param);
    crate::module!(One { 0 as "w" });

    /// Three steps of `config` on w = [1, −2, 0.5] with gradients g·(step),
    /// on `dev`.
    fn run(dev: &Device, config: OptimizerConfig) -> Vec<f64> {
        let mut m = One(Param::new(dev.mat(&[1.0, -2.0, 0.5], 1, 3)));
        let mut opt = Optimizer::new(config);
        for k in 1..=3 {
            let g = dev.mat(&[0.3 * k as f64, -0.1, 2.0], 1, 3);
            opt.step(&mut m, &[g], 0.5);
        }
        m.0.value.to_host()
    }

    #[test]
    fn rmsprop_follows_its_formula_on_every_backend() {
        let (lr, rho, eps) = (0.01, 0.9, 1e-8);
        let config = OptimizerConfig::RmsProp { lr, rho, eps };
        // By hand, with the gradient scale 0.5 applied first.
        let mut w = [1.0f64, -2.0, 0.5];
        let mut v = [0.0f64; 3];
        for k in 1..=3 {
            let g = [0.3 * k as f64, -0.1, 2.0];
            for i in 0..3 {
                let gi = 0.5 * g[i];
                v[i] = rho * v[i] + (1.0 - rho) * gi * gi;
                w[i] -= lr * gi / (v[i].sqrt() + eps);
            }
        }
        for (dev, tol) in [
            (Device::cpu(Precision::F64), 1e-12),
            (Device::cpu(Precision::F32), 1e-6),
            (
                Device::new(Backend::Reference, Precision::F64).expect("reference backend"),
                1e-12,
            ),
        ] {
            let got = run(&dev, config.clone());
            for (a, b) in got.iter().zip(&w) {
                assert!((a - b).abs() < tol, "{}: {got:?} vs {w:?}", dev.name());
            }
        }
    }
}
