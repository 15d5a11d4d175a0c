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

/// Adam or SGD with its per-parameter state.
pub struct Optimizer {
    config: OptimizerConfig,
    /// Steps taken.
    pub steps: u64,
    /// First moments (Adam) or velocities (SGD), by parameter name.
    pub m: BTreeMap<String, Mat>,
    /// Second moments (Adam), by parameter name.
    pub v: BTreeMap<String, Mat>,
}

impl Optimizer {
    /// A fresh optimizer.
    pub fn new(config: OptimizerConfig) -> Self {
        Self {
            config,
            steps: 0,
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
        let rule = match self.config {
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
                step: self.steps.min(i32::MAX as u64) as i32,
            },
            OptimizerConfig::Sgd { lr, momentum } => Update::Sgd { lr, momentum },
        };
        let uses_v = matches!(rule, Update::Adam { .. });
        let mut next = grads.iter();
        for_each_param_mut(module, |name, p| {
            if !p.is_trainable() {
                return;
            }
            let g = next.next().expect("one gradient per trainable parameter");
            let (r, c) = p.shape();
            let mut m = self
                .m
                .remove(name)
                .unwrap_or_else(|| compute::zeros_as(&p.value, r, c));
            let mut v = match uses_v {
                true => self
                    .v
                    .remove(name)
                    .unwrap_or_else(|| compute::zeros_as(&p.value, r, c)),
                false => compute::zeros_as(&p.value, 0, 0),
            };
            if uses_v {
                compute::update(rule, &mut p.value, g, &mut m, &mut v, grad_scale);
                self.v.insert(name.to_string(), v);
            } else {
                let mut dummy = compute::zeros_as(&p.value, r, c);
                compute::update(rule, &mut p.value, g, &mut m, &mut dummy, grad_scale);
            }
            self.m.insert(name.to_string(), m);
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
