//! A dense MLP whose forward pass carries jets and, on request, a
//! tape-tracked vector–Jacobian product with respect to its input and
//! backward curvature propagation.
//!
//! Layout: `x → [affine → activation] × (L−1) → affine` (optionally with the
//! activation after the last layer too). Weights are stored `in × out` so
//! rows are data points (`y = xW + b`). Initialisation follows PyTorch's
//! `nn.Linear` default, `U(−1/√in, 1/√in)` for weights and biases, drawn
//! weight then bias, layer by layer.

use rand::Rng;

use crate::autodiff::curvature::{Curvature, CurvatureMethod};
use crate::autodiff::jet::Slopes;
use crate::autodiff::{Graph, Jet};
use crate::device::{Device, Mat};
use crate::nn::{Activation, Param};

/// One affine layer `y = xW + b`.
#[derive(Clone)]
pub struct Dense {
    /// `in × out` weight.
    pub weight: Param,
    /// `1 × out` bias.
    pub bias: Param,
}

crate::module!(Dense { weight, bias });

impl Dense {
    /// A layer with PyTorch's default initialisation.
    pub fn new(dev: &Device, input: usize, output: usize, rng: &mut impl Rng) -> Self {
        let bound = 1.0 / (input as f64).sqrt();
        Self {
            weight: Param::uniform(dev, input, output, bound, rng),
            bias: Param::uniform(dev, 1, output, bound, rng),
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

crate::module!(Mlp { layers });

/// What a forward pass keeps for the backward passes (input gradient,
/// curvature): `σ'(a)` and `σ''(a)` of every activated layer.
#[derive(Default, Clone)]
pub struct MlpCache {
    slopes: Vec<Slopes>,
}

impl MlpCache {
    fn f1(&self, i: usize) -> &Mat {
        self.slopes[i]
            .f1
            .as_ref()
            .expect("the forward pass kept σ' (keep ≥ 1)")
    }
    fn f2(&self, i: usize) -> &Mat {
        self.slopes[i]
            .f2
            .as_ref()
            .expect("the forward pass kept σ'' (keep = 2)")
    }
}

/// Weights and biases of one dense layer, saturating.
fn layer_params(input: usize, output: usize) -> u128 {
    crate::budget::bytes(&[input, output]).saturating_add(output as u128)
}

/// Checks that `params` values (stored with gradients and Adam's two
/// moments, 8 bytes each) and `layers` layers fit in memory.
fn require_params_fit(
    field: &str,
    params: u128,
    layers: usize,
) -> Result<(), crate::error::ConfigError> {
    // Each layer also costs its bookkeeping (buffers, names, tape entries).
    const PER_LAYER: u128 = 1024;
    crate::budget::require_fits(
        field,
        "the network's parameters, gradients and optimizer state",
        params
            .saturating_mul(8 * 4)
            .saturating_add(PER_LAYER.saturating_mul(layers as u128)),
    )
}

impl Mlp {
    /// An MLP with layer widths `widths = [in, hidden…, out]` (at least two
    /// entries).
    pub fn new(dev: &Device, widths: &[usize], activation: Activation, rng: &mut impl Rng) -> Self {
        assert!(widths.len() >= 2, "an MLP needs input and output widths");
        let layers = widths
            .windows(2)
            .map(|w| Dense::new(dev, w[0], w[1], rng))
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

    /// The sum of the layer outputs: values one point keeps per forward pass.
    pub fn total_width(&self) -> usize {
        self.layers.iter().map(|l| l.weight.shape().1).sum()
    }

    /// Checks, before building, that an MLP of `widths` fits in memory
    /// (its parameters, their gradients and Adam's two moments).
    ///
    /// # Errors
    /// A [`crate::error::ConfigError`] on `field` with the estimate.
    pub fn check_memory(field: &str, widths: &[usize]) -> Result<(), crate::error::ConfigError> {
        let params = widths
            .windows(2)
            .map(|w| layer_params(w[0], w[1]))
            .fold(0u128, u128::saturating_add);
        require_params_fit(field, params, widths.len().saturating_sub(1))
    }

    /// [`Self::check_memory`] for `layers` hidden layers of one `width`
    /// between `input` and an optional `output` layer, without listing the
    /// widths (a setting of 10¹¹ layers must not build a list first). The
    /// error names `width_field` when one layer alone does not fit, else
    /// `layers_field`.
    ///
    /// # Errors
    /// A [`crate::error::ConfigError`] with the estimate.
    pub fn check_repeated_memory(
        (width_field, layers_field): (&str, &str),
        input: usize,
        width: usize,
        layers: usize,
        output: Option<usize>,
    ) -> Result<(), crate::error::ConfigError> {
        let out = output.map_or(0, |o| layer_params(width, o));
        let first = layer_params(input, width).saturating_add(out);
        require_params_fit(width_field, first, 2)?;
        let rest = layer_params(width, width).saturating_mul(layers.saturating_sub(1) as u128);
        require_params_fit(
            layers_field,
            first.saturating_add(rest),
            layers.saturating_add(1),
        )
    }

    /// The widest layer output.
    pub fn max_width(&self) -> usize {
        self.layers
            .iter()
            .map(|l| l.weight.shape().1)
            .max()
            .unwrap_or(0)
    }

    fn activated(&self, i: usize) -> bool {
        i + 1 < self.layers.len() || self.activate_last
    }

    /// Plain forward pass.
    pub fn forward(&self, g: &mut Graph, x: &Mat) -> Mat {
        self.jet(g, Jet::value(x.clone())).value
    }

    /// Pushes a jet through the network.
    pub fn jet(&self, g: &mut Graph, x: Jet) -> Jet {
        self.jet_cached(g, x, 0).0
    }

    /// Pushes a jet through the network, keeping what later backward passes
    /// need: `keep = 0` nothing beyond the jet's own order, `1` the slopes
    /// (for [`Mlp::vjp`]), `2` also the curvatures (for [`Mlp::curvature`]).
    pub fn jet_cached(&self, g: &mut Graph, x: Jet, keep: usize) -> (Jet, MlpCache) {
        let first = &self.layers[0];
        let a = x.affine(g, &first.weight.value, &first.bias.value);
        self.rest_after_first_affine(g, a, keep)
    }

    /// The rest of a forward pass from the first layer's pre-activation.
    fn rest_after_first_affine(&self, g: &mut Graph, a: Jet, keep: usize) -> (Jet, MlpCache) {
        let mut cache = MlpCache::default();
        let mut a = a;
        let mut h = a.clone();
        for (i, layer) in self.layers.iter().enumerate() {
            if i > 0 {
                a = h.affine(g, &layer.weight.value, &layer.bias.value);
            }
            if !self.activated(i) {
                h = a.clone();
                continue;
            }
            let (y, slopes) = a.activate(g, self.activation, keep);
            cache.slopes.push(slopes);
            h = y;
        }
        (h, cache)
    }

    /// Plain forward pass of the `n·k` joined rows `[s_i, o_r]`: row
    /// `r = i·k + j` joins row `i` of `shared` (`n × p`) to row `r` of `own`
    /// (`n·k × q`, `p + q` the input width). The joined rows are never
    /// formed: the first layer multiplies `shared` once per row (`n` rows,
    /// not `n·k`) and repeats the product, so `k` draws of noise per image
    /// cost one product with the image. Same values as [`Mlp::forward`] on
    /// the joined rows, up to rounding.
    ///
    /// # Panics
    /// When `p + q` is not the input width or `own` has not `n·k` rows.
    pub fn forward_joined(&self, g: &mut Graph, shared: &Mat, own: &Mat, k: usize) -> Mat {
        let first = &self.layers[0];
        let (p, q, n) = (shared.cols(), own.cols(), shared.rows());
        assert_eq!(p + q, self.input_dim(), "joined input width");
        assert_eq!(own.rows(), n * k, "own rows = shared rows × k");
        let w_shared = g.row_block(&first.weight.value, 0, p);
        let w_own = g.row_block(&first.weight.value, p, q);
        let per_shared = g.matmul(shared, &w_shared);
        let repeat = repeat_each(g, n, k);
        let repeated = g.matmul(&repeat, &per_shared);
        let own_part = g.affine(own, &w_own, &first.bias.value);
        let a = g.add(&repeated, &own_part);
        self.rest_after_first_affine(g, Jet::value(a), 0).0.value
    }

    /// The vector–Jacobian product `out_grad · ∂y/∂x` (`n × in`) for the
    /// forward pass that filled `cache` (with `keep ≥ 1`), as tape-tracked
    /// ops, so losses may use the full input gradient and still be
    /// differentiated in θ. `out_grad` may also stack `m` blocks of
    /// cotangents (`m·n × out`, block-major): `m` products at once
    /// (`m·n × in`), all at the cached points.
    pub fn vjp(&self, g: &mut Graph, cache: &MlpCache, out_grad: &Mat) -> Mat {
        let mut gcur = out_grad.clone();
        for (i, layer) in self.layers.iter().enumerate().rev() {
            if self.activated(i) {
                let slope = cache.f1(i);
                gcur = if gcur.rows() == slope.rows() {
                    g.mul(&gcur, slope)
                } else {
                    g.mul_blocks(&gcur, slope)
                };
            }
            gcur = g.matmul_t(&gcur, &layer.weight.value);
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
                c = c.elementwise(g, cache.f1(i), cache.f2(i), method);
            }
            c = c.linear(g, &layer.weight.value);
        }
        c
    }
}

/// The `n·k × n` 0/1 matrix whose product with an `n`-row matrix repeats
/// each row `k` times in place.
pub fn repeat_each(g: &Graph, n: usize, k: usize) -> Mat {
    let mut r = vec![0.0; n * k * n];
    for i in 0..n {
        for j in 0..k {
            r[(i * k + j) * n + i] = 1.0;
        }
    }
    g.constant(r, n * k, n)
}
