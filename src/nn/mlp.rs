//! A dense MLP whose forward pass carries jets and, on request, a
//! tape-tracked vector–Jacobian product with respect to its input.
//!
//! Layout: `x → [affine → activation] × (L−1) → affine`. Weights are stored
//! `in × out` so rows are data points (`y = xW + b`). Initialisation follows
//! PyTorch's `nn.Linear` default, `U(−1/√in, 1/√in)` for weights and biases.

use rand::Rng;

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

/// A multilayer perceptron with one smooth activation between affine layers.
#[derive(Clone)]
pub struct Mlp {
    /// The affine layers, input first.
    pub layers: Vec<Dense>,
    /// The activation after every layer but the last.
    pub activation: Activation,
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
        Self { layers, activation }
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

    /// Plain forward pass.
    pub fn forward(&self, g: &mut Graph, x: &Mat) -> Mat {
        self.jet(g, Jet::constant(x.clone(), 0)).value
    }

    /// Pushes a jet through the network.
    pub fn jet(&self, g: &mut Graph, x: Jet) -> Jet {
        self.jet_vjp(g, x, None).0
    }

    /// Pushes a jet through the network and, when `out_grad` (`n × out`) is
    /// given, also returns the vector–Jacobian product `out_grad · ∂y/∂x`
    /// (`n × in`) as tape-tracked ops, so losses may use the full input
    /// gradient and still be differentiated in θ.
    pub fn jet_vjp(&self, g: &mut Graph, x: Jet, out_grad: Option<&Mat>) -> (Jet, Option<Mat>) {
        let need_f1 = out_grad.is_some();
        let mut slopes: Vec<Mat> = Vec::with_capacity(self.layers.len());
        let mut h = x;
        let last = self.layers.len() - 1;
        for (i, layer) in self.layers.iter().enumerate() {
            let a = h.affine(g, &layer.weight.value, &layer.bias.value);
            if i == last {
                h = a;
                break;
            }
            let order = if need_f1 { a.order.max(1) } else { a.order };
            let d = self.activation.derivs(g, &a.value, order);
            if need_f1 {
                slopes.push(d.f1.clone().expect("first derivative requested"));
            }
            h = a.unary(g, d);
        }
        let grad = out_grad.map(|gy| {
            let mut gcur = gy.clone();
            for (i, layer) in self.layers.iter().enumerate().rev() {
                let wt = g.transpose(&layer.weight.value);
                gcur = g.matmul(&gcur, &wt);
                if i > 0 {
                    gcur = g.mul(&gcur, &slopes[i - 1]);
                }
            }
            gcur
        });
        (h, grad)
    }
}
