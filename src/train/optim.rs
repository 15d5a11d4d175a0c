//! Optimizers with state we own (dfdx's Adam hides its moments), so the
//! state can be checkpointed and restored exactly.
//!
//! Data flow: the loop passes the model's parameters and their gradients (same
//! order) to [`Optimizer::step`]; updates run as device tensor ops.

use std::collections::BTreeMap;

use crate::device::{self, Mat};
use crate::experiment::OptimizerConfig;
use crate::nn::Param;

/// Adam or SGD with its per-parameter state.
pub struct Optimizer {
    config: OptimizerConfig,
    /// Steps taken.
    pub steps: u64,
    /// First moments (Adam) or velocities (SGD with momentum), by parameter name.
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

    /// One update of `params` with `grads` (same order).
    pub fn step(&mut self, params: Vec<&mut Param>, grads: &[Mat]) {
        assert_eq!(params.len(), grads.len(), "one gradient per parameter");
        self.steps += 1;
        let t = self.steps as i32;
        for (p, g) in params.into_iter().zip(grads) {
            match self.config {
                OptimizerConfig::Adam {
                    lr,
                    beta1,
                    beta2,
                    eps,
                } => {
                    let m = match self.m.remove(&p.name) {
                        Some(m) => m * beta1 + g.clone() * (1.0 - beta1),
                        None => g.clone() * (1.0 - beta1),
                    };
                    let v = match self.v.remove(&p.name) {
                        Some(v) => v * beta2 + g.clone().square() * (1.0 - beta2),
                        None => g.clone().square() * (1.0 - beta2),
                    };
                    let mhat = m.clone() * (1.0 / (1.0 - beta1.powi(t)));
                    let vhat = v.clone() * (1.0 / (1.0 - beta2.powi(t)));
                    let update = mhat / (vhat.sqrt() + eps) * lr;
                    p.value = p.value.clone() - update;
                    self.m.insert(p.name.clone(), m);
                    self.v.insert(p.name.clone(), v);
                }
                OptimizerConfig::Sgd { lr, momentum } => {
                    if momentum > 0.0 {
                        let vel = match self.m.remove(&p.name) {
                            Some(m) => m * momentum + g.clone(),
                            None => g.clone(),
                        };
                        p.value = p.value.clone() - vel.clone() * lr;
                        self.m.insert(p.name.clone(), vel);
                    } else {
                        p.value = p.value.clone() - g.clone() * lr;
                    }
                }
            }
        }
    }
}

/// The global L2 norm of a set of gradients.
pub fn global_norm(grads: &[Mat]) -> f64 {
    grads
        .iter()
        .map(|g| device::to_host(g).iter().map(|x| x * x).sum::<f64>())
        .sum::<f64>()
        .sqrt()
}

/// Scales `grads` so their global norm is at most `max_norm`; returns the norm before.
pub fn clip_global_norm(grads: &mut [Mat], max_norm: f64) -> f64 {
    let norm = global_norm(grads);
    if norm > max_norm && norm.is_finite() {
        let s = max_norm / norm;
        for g in grads.iter_mut() {
            *g = g.clone() * s;
        }
    }
    norm
}
