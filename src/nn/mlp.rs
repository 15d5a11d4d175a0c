//! A dense MLP whose forward pass carries jets and, on request, a
//! tape-tracked vector–Jacobian product with respect to its input.
//!
//! Layout: `x → [affine → activation] × (L−1) → affine`. Weights are stored
//! `in × out` so rows are data points (`y = xW + b`). Initialisation follows
//! PyTorch's `nn.Linear` default, `U(−1/√in, 1/√in)` for weights and biases.

use rand::Rng;

use crate::autodiff::curvature::{Curvature, CurvatureMethod};
use crate::autodiff::{Graph, Jet};
use crate::device::{Dev, Mat};
use crate::nn::{Activation, Param};

/// One affine layer `y = xW + b`.
#[derive(Clone)]
pub struct Dense {
    /// `in × out` weight.
    pub weight: Param,
    /// `1 × out` bias.
    pub bias: Param,
}

impl Dense {
    /// A layer with PyTorch's default initialisation.
    pub fn new(dev: &Dev, prefix: &str, input: usize, output: usize, rng: &mut impl Rng) -> Self {
        let bound = 1.0 / (input as f64).sqrt();
        Self {
            weight: Param::uniform(dev, format!("{prefix}.weight"), input, output, bound, rng),
            bias: Param::uniform(dev, format!("{prefix}.bias"), 1, output, bound, rng),
        }
    }
}

/// A multilayer perceptron with one smooth activation between affine layers
/// (and optionally after the last one).
#[derive(Clone)]
pub struct Mlp {
    /// The affine layers, input first.
    pub layers: Vec<Dense>,
    /// The activation after every layer but the last.
    pub activation: Activation,
    /// Whether the activation is also applied after the last layer.
    pub activate_last: bool,
}

/// What a forward pass keeps for the backward passes (input gradient,
/// curvature): `σ'(a)` and `σ''(a)` of every activated layer.
#[derive(Default)]
pub struct MlpCache {
    slopes: Vec<Mat>,
    curvatures: Vec<Mat>,
}

impl Mlp {
    /// An MLP with layer widths `widths = [in, hidden…, out]` (at least two
    /// entries) whose parameters are named `{prefix}.layers.{i}.{weight,bias}`.
    pub fn new(
        dev: &Dev,
        prefix: &str,
        widths: &[usize],
        activation: Activation,
        rng: &mut impl Rng,
    ) -> Self {
        assert!(widths.len() >= 2, "an MLP needs input and output widths");
        let layers = widths
            .windows(2)
            .enumerate()
            .map(|(i, w)| Dense::new(dev, &format!("{prefix}.layers.{i}"), w[0], w[1], rng))
            .collect();
        Self {
            layers,
            activation,
            activate_last: false,
        }
    }

    /// The same network with the activation applied after the last layer too.
    pub fn with_activated_output(mut self) -> Self {
        self.activate_last = true;
        self
    }

    /// Input width.
    pub fn input_dim(&self) -> usize {
        self.layers[0].weight.shape().0
    }

    /// Output width.
    pub fn output_dim(&self) -> usize {
        self.layers[self.layers.len() - 1].weight.shape().1
    }

    /// Parameters in a fixed order.
    pub fn params(&self) -> Vec<&Param> {
        self.layers
            .iter()
            .flat_map(|l| [&l.weight, &l.bias])
            .collect()
    }

    /// Mutable parameters in the same order as [`Mlp::params`].
    pub fn params_mut(&mut self) -> Vec<&mut Param> {
        self.layers
            .iter_mut()
            .flat_map(|l| [&mut l.weight, &mut l.bias])
            .collect()
    }

    fn activated(&self, i: usize) -> bool {
        i + 1 < self.layers.len() || self.activate_last
    }

    /// Plain forward pass.
    pub fn forward(&self, g: &mut Graph, x: &Mat) -> Mat {
        self.jet(g, Jet::constant(x.clone(), 0)).value
    }

    /// Pushes a jet through the network.
    pub fn jet(&self, g: &mut Graph, x: Jet) -> Jet {
        self.jet_cached(g, x, 0).0
    }

    /// Pushes a jet through the network, keeping what later backward passes
    /// need: `keep = 0` nothing, `1` the slopes (for [`Mlp::vjp`]), `2` also
    /// the curvatures (for [`Mlp::curvature`]).
    pub fn jet_cached(&self, g: &mut Graph, x: Jet, keep: usize) -> (Jet, MlpCache) {
        let mut cache = MlpCache::default();
        let mut h = x;
        for (i, layer) in self.layers.iter().enumerate() {
            let a = h.affine(g, &layer.weight.value, &layer.bias.value);
            if !self.activated(i) {
                h = a;
                continue;
            }
            let order = a.order.max(keep);
            let d = self.activation.derivs(g, &a.value, order);
            if keep >= 1 {
                cache
                    .slopes
                    .push(d.f1.clone().expect("first derivative requested"));
            }
            if keep >= 2 {
                cache
                    .curvatures
                    .push(d.f2.clone().expect("second derivative requested"));
            }
            h = a.unary(g, d);
        }
        (h, cache)
    }

    /// The vector–Jacobian product `out_grad · ∂y/∂x` (`n × in`) for the
    /// forward pass that filled `cache` (with `keep ≥ 1`), as tape-tracked
    /// ops, so losses may use the full input gradient and still be
    /// differentiated in θ.
    pub fn vjp(&self, g: &mut Graph, cache: &MlpCache, out_grad: &Mat) -> Mat {
        let mut gcur = out_grad.clone();
        for (i, layer) in self.layers.iter().enumerate().rev() {
            if self.activated(i) {
                gcur = g.mul(&gcur, &cache.slopes[i]);
            }
            let wt = g.transpose(&layer.weight.value);
            gcur = g.matmul(&gcur, &wt);
        }
        gcur
    }

    /// Pushes a jet through the network and, when `out_grad` (`n × out`) is
    /// given, also returns the vector–Jacobian product (see [`Mlp::vjp`]).
    pub fn jet_vjp(&self, g: &mut Graph, x: Jet, out_grad: Option<&Mat>) -> (Jet, Option<Mat>) {
        let (h, cache) = self.jet_cached(g, x, usize::from(out_grad.is_some()));
        let grad = out_grad.map(|gy| self.vjp(g, &cache, gy));
        (h, grad)
    }

    /// Propagates a curvature signal at the output back to the input, for the
    /// forward pass that filled `cache` (with `keep = 2`).
    pub fn curvature(
        &self,
        g: &mut Graph,
        cache: &MlpCache,
        mut c: Curvature,
        method: &mut CurvatureMethod<'_>,
    ) -> Curvature {
        for (i, layer) in self.layers.iter().enumerate().rev() {
            if self.activated(i) {
                c = c.elementwise(g, &cache.slopes[i], &cache.curvatures[i], method);
            }
            c = c.linear(g, &layer.weight.value);
        }
        c
    }
}
