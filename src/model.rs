//! Score models and what they can do.
//!
//! Every model is a [`ScoreModel`]: parameters (through [`Module`]), a
//! dimension, the score `s(x) = ∇ₓ log p̃(x)`, and the directional terms
//! objectives are built from. Everything else a model may offer is a
//! capability trait it implements and exposes through one accessor, which
//! [`crate::capabilities!`] writes (so an accessor cannot claim a trait the
//! type lacks):
//!
//! * [`EnergyModel`]: an unnormalized log-density `log p̃(x)` (and possibly a
//!   Gaussian close to it, for importance sampling);
//! * [`FlowModel`]: a normalized density that samples exactly (maximum
//!   likelihood and exact log-likelihoods apply);
//! * [`CurvatureModel`]: the Hessian diagonal by backward curvature
//!   propagation (for `approx_bp` and `cp`);
//! * [`DataInit`]: a data-dependent initialisation before training.
//!
//! Estimators fitted from samples (the kernel estimators) are not score
//! models until fitted: a [`SampleEstimator`] turns samples into a fitted
//! [`ScoreModel`], so a score can never be asked of an unfitted one.
//!
//! Objectives never look inside a model: they ask for [`Terms`] along
//! projection directions (one value stream, `m` directions per point) or
//! [`TraceTerms`] along basis directions (exact score matching).

use rand::RngCore;

use crate::autodiff::curvature::CurvatureMethod;
use crate::autodiff::Graph;
use crate::closed_form::LinearCoefficients;
use crate::device::{Device, Mat};
use crate::nn::Module;

/// Per-row score-matching terms along directions `v` (`m` per point,
/// direction-major: entry `j·n + i` belongs to point `i`, direction `j`).
pub struct Terms {
    /// `vᵀ s(x)` (`m·n × 1`).
    pub vs: Mat,
    /// `vᵀ (∇ₓ s(x)) v` (`m·n × 1`).
    pub vhv: Mat,
    /// The full score `s(x)` (`n × D`) when requested.
    pub score: Option<Mat>,
}

/// Terms along the basis directions `e_start … e_{start+count−1}`.
pub struct TraceTerms {
    /// `sᵢ(x)` for each direction `i` (`count·n × 1`, direction-major).
    pub vs: Mat,
    /// `Σᵢ ∂sᵢ/∂xᵢ` over the directions, per point (`n × 1`).
    pub trace: Mat,
}

/// An isotropic Gaussian proposal `N(mean, std²I)`.
#[derive(Debug, Clone, PartialEq)]
pub struct GaussianProposal {
    /// Mean (length `D`).
    pub mean: Vec<f64>,
    /// Standard deviation of every coordinate.
    pub std: f64,
}

/// A model that gives a score.
pub trait ScoreModel: Module {
    /// Dimension `D` of the points scored.
    fn dim(&self) -> usize;

    /// Number of conditioning columns appended to every input row (0: an
    /// unconditional model). A conditional model `h(z | c)` takes rows
    /// `[z, c]` of width `dim + context_dim`; its score, directions `v` and
    /// derivatives are over the first `dim` columns only.
    fn context_dim(&self) -> usize {
        0
    }

    /// The score `s(x)` (`n × D`) for `x` (`n × (D + C)`).
    fn score(&self, g: &mut Graph, x: &Mat) -> Mat;

    /// Directional terms along `v` (`m·n × D`, `m` directions per row of
    /// `x`, direction-major), and the full score too when `want_score`.
    fn terms(&self, g: &mut Graph, x: &Mat, v: &Mat, want_score: bool) -> Terms;

    /// Terms along the basis directions `e_start … e_{start+count−1}`. The
    /// default materializes the directions and calls [`ScoreModel::terms`];
    /// models with jets carry the trace instead and share the value stream
    /// between chunks of directions.
    fn trace_terms(&self, g: &mut Graph, x: &Mat, start: usize, count: usize) -> TraceTerms {
        let n = x.rows();
        let d = self.dim();
        let mut v = vec![0.0; count * n * d];
        for j in 0..count {
            for r in 0..n {
                v[(j * n + r) * d + start + j] = 1.0;
            }
        }
        let vm = g.constant(v, count * n, d);
        let t = self.terms(g, x, &vm, false);
        let trace = if count == 0 {
            g.filled(n, 1, 0.0)
        } else {
            g.sum_blocks(&t.vhv, count)
        };
        TraceTerms { vs: t.vs, trace }
    }

    /// The widest intermediate a trace pass holds per direction and point,
    /// used to size chunks of directions in exact score matching.
    fn trace_width(&self) -> usize {
        256
    }

    /// Values one point keeps in one forward pass, summed over the layers
    /// (for memory estimates of a training step; default: the trace width).
    fn width_per_point(&self) -> usize {
        self.trace_width()
    }

    /// The unnormalized log-density, if the model has one.
    fn as_energy(&self) -> Option<&dyn EnergyModel> {
        None
    }

    /// The normalized flow, if the model is one.
    fn as_flow(&self) -> Option<&dyn FlowModel> {
        None
    }

    /// Backward curvature propagation, if the model implements it.
    fn as_curvature(&self) -> Option<&dyn CurvatureModel> {
        None
    }

    /// Data-dependent initialisation, if the model wants one.
    fn as_data_init(&mut self) -> Option<&mut dyn DataInit> {
        None
    }

    /// Coefficients solved in closed form each training step, if the model
    /// solves them (see [`crate::closed_form`]).
    fn as_linear_coefficients(&self) -> Option<&dyn LinearCoefficients> {
        None
    }

    /// [`ScoreModel::as_linear_coefficients`], to store refitted
    /// coefficients.
    fn as_linear_coefficients_mut(&mut self) -> Option<&mut dyn LinearCoefficients> {
        None
    }
}

/// A model with an unnormalized log-density `log p̃(x)`, `s = ∇ₓ log p̃`.
pub trait EnergyModel {
    /// `log p̃(x)` per row (`n × 1`).
    fn log_density(&self, g: &mut Graph, x: &Mat) -> Mat;

    /// A normalized Gaussian `N(mean, std²I)` close to the model's density,
    /// used as an importance-sampling proposal to estimate `log Z`; `None`
    /// when the model has none.
    fn importance_proposal(&self) -> Option<GaussianProposal> {
        None
    }
}

/// A normalized density (a flow with a tractable Jacobian): its
/// [`EnergyModel::log_density`] is exact, and it samples exactly.
pub trait FlowModel: EnergyModel {
    /// `n` exact samples (row-major `n × D`).
    fn sample(&self, dev: &Device, rng: &mut dyn RngCore, n: usize) -> Vec<f64>;
}

/// A model that propagates curvature backwards.
pub trait CurvatureModel {
    /// The score and an estimate of the Hessian diagonal `diag(∇ₓs)` (both
    /// `n × D`) by backward curvature propagation.
    fn curvature(&self, g: &mut Graph, x: &Mat, method: &mut CurvatureMethod<'_>) -> (Mat, Mat);
}

/// A model initialised from training data before the first step.
pub trait DataInit {
    /// How many training rows it wants.
    fn data_init_points(&self) -> usize;
    /// Initialises from `data_init_points()` rows (row-major).
    fn init_from_data(&mut self, dev: &Device, x: &[f64]);
}

/// Why an estimator could not be fitted to samples.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FitError {
    /// The samples are unusable (too few, non-finite, all equal, …).
    #[error(transparent)]
    Samples(#[from] crate::kernels::KernelError),
    /// A matrix of the fit could not be factored or decomposed.
    #[error(transparent)]
    Linalg(#[from] crate::linalg::LinalgError),
    /// Anything else, said in words.
    #[error("{0}")]
    Other(String),
}

/// The name of the buffer in which a fitted model keeps its samples (see
/// [`SampleEstimator::fit`]).
pub const FITTED_SAMPLES: &str = "samples";

/// An estimator fitted from samples (no training loop): each fit gives a
/// score model.
pub trait SampleEstimator {
    /// Dimension of the samples.
    fn dim(&self) -> usize;
    /// How many training rows a standalone run fits it to.
    fn samples_wanted(&self) -> usize;
    /// Fits to samples (row-major `n × dim`). The fitted model keeps its
    /// samples as its one buffer, named [`FITTED_SAMPLES`] (in `f64`), so a
    /// checkpoint of it can be refitted exactly.
    ///
    /// # Errors
    /// What went wrong (too few samples, a kernel matrix that stays
    /// singular after regularization); never a model with NaN estimates.
    fn fit(&self, dev: &Device, x: &[f64]) -> Result<Box<dyn ScoreModel>, FitError>;
}

/// A score model fitted from samples by a closed-form estimator: its
/// settings, how many samples a standalone fit takes, and the fit itself.
/// [`Unfitted`] turns any such model into the [`SampleEstimator`] a
/// registry entry builds, so an estimator writes only its mathematics.
pub trait FitsFromSamples: ScoreModel + Sized + 'static {
    /// The estimator's settings.
    type Config: Clone + 'static;
    /// How many training rows a standalone run fits it to.
    fn samples_wanted(cfg: &Self::Config) -> usize;
    /// Fits to `x` (row-major `n × dim`), taking input rows with `context`
    /// extra columns (ignored) when scoring.
    ///
    /// # Errors
    /// As [`SampleEstimator::fit`].
    fn fit(dim: usize, context: usize, cfg: &Self::Config, x: &[f64]) -> Result<Self, FitError>;
}

/// The unfitted estimator of model `M`: its settings and the data
/// dimension, fitted on demand.
pub struct Unfitted<M: FitsFromSamples> {
    /// The settings.
    pub cfg: M::Config,
    /// Dimension of the samples.
    pub dim: usize,
}

impl<M: FitsFromSamples> SampleEstimator for Unfitted<M> {
    fn dim(&self) -> usize {
        self.dim
    }
    fn samples_wanted(&self) -> usize {
        M::samples_wanted(&self.cfg)
    }
    fn fit(&self, _dev: &Device, x: &[f64]) -> Result<Box<dyn ScoreModel>, FitError> {
        Ok(Box::new(M::fit(self.dim, 0, &self.cfg, x)?))
    }
}

/// Implements [`ModelConfig`](crate::registry::ModelConfig) for the
/// settings `$cfg` of a [`FitsFromSamples`] model `$m`: `build` checks them
/// with their `validate` method (a `Result<(), ConfigError>`) and returns
/// the unfitted estimator, [`Unfitted<$m>`](Unfitted), for data of that
/// dimension.
///
/// ```ignore
/// slicedscore::fitted_model_config!(SteinConfig => Stein);
/// ```
#[macro_export]
macro_rules! fitted_model_config {
    ($cfg:ty => $m:ty) => {
        impl $crate::registry::ModelConfig for $cfg {
            fn build(
                &self,
                _dev: &$crate::device::Device,
                dim: usize,
                _rng: &mut ::rand_chacha::ChaCha8Rng,
            ) -> Result<$crate::registry::BuiltModel, $crate::error::ConfigError> {
                self.validate()?;
                Ok($crate::registry::BuiltModel::Fitted(Box::new(
                    $crate::model::Unfitted::<$m> {
                        cfg: self.clone(),
                        dim,
                    },
                )))
            }
        }
    };
}

/// The experiment's model as built: none (a task without a model), a model
/// trained by an objective, or an estimator fitted from samples (with its
/// fit, once a standalone run has fitted it).
pub enum ModelSlot {
    /// No model.
    None,
    /// A trained model.
    Trained(Box<dyn ScoreModel>),
    /// An estimator and, when fitted, the fitted model.
    Fitted {
        /// The estimator.
        estimator: Box<dyn SampleEstimator>,
        /// Its fit on the training data (standalone runs).
        fitted: Option<Box<dyn ScoreModel>>,
    },
}

impl ModelSlot {
    /// The model that scores points: the trained model or the fitted one.
    pub fn scorer(&self) -> Option<&dyn ScoreModel> {
        match self {
            ModelSlot::None => None,
            ModelSlot::Trained(m) => Some(&**m),
            ModelSlot::Fitted { fitted, .. } => fitted.as_deref(),
        }
    }

    /// Whether this is an estimator fitted from samples.
    pub fn is_fitted_kind(&self) -> bool {
        matches!(self, ModelSlot::Fitted { .. })
    }

    /// The parameters (and buffers) of the model that scores, as a module.
    pub fn module_mut(&mut self) -> Option<&mut (dyn ScoreModel + 'static)> {
        match self {
            ModelSlot::None => None,
            ModelSlot::Trained(m) => Some(&mut **m),
            ModelSlot::Fitted { fitted, .. } => fitted.as_deref_mut(),
        }
    }
}

impl Module for ModelSlot {
    fn visit(&self, path: &mut crate::nn::ParamPath, f: &mut dyn FnMut(&str, &crate::nn::Param)) {
        if let Some(m) = self.scorer() {
            m.visit(path, f);
        }
    }
    fn visit_mut(
        &mut self,
        path: &mut crate::nn::ParamPath,
        f: &mut dyn FnMut(&str, &mut crate::nn::Param),
    ) {
        if let Some(m) = self.module_mut() {
            m.visit_mut(path, f);
        }
    }
}

/// Writes the capability accessors of a [`ScoreModel`] implementation
/// from the capability traits the type implements:
///
/// ```ignore
/// impl ScoreModel for Dkef {
///     // …
///     slicedscore::capabilities!(energy, curvature, data_init);
/// }
/// ```
#[macro_export]
macro_rules! capabilities {
    ($($cap:ident),* $(,)?) => {
        $( $crate::capabilities!(@one $cap); )*
    };
    (@one energy) => {
        fn as_energy(&self) -> Option<&dyn $crate::model::EnergyModel> { Some(self) }
    };
    (@one flow) => {
        fn as_flow(&self) -> Option<&dyn $crate::model::FlowModel> { Some(self) }
    };
    (@one curvature) => {
        fn as_curvature(&self) -> Option<&dyn $crate::model::CurvatureModel> { Some(self) }
    };
    (@one data_init) => {
        fn as_data_init(&mut self) -> Option<&mut dyn $crate::model::DataInit> { Some(self) }
    };
}

/// What an objective needs of a model, checked once when an experiment (or
/// a benchmark) is built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Needs {
    /// An [`EnergyModel`].
    pub energy: bool,
    /// A [`FlowModel`].
    pub flow: bool,
    /// A [`CurvatureModel`].
    pub curvature: bool,
    /// A projection with `E[vvᵀ] = I`.
    pub isotropic_projection: bool,
}

impl Needs {
    /// The first need `model` does not meet, as a sentence.
    pub fn unmet_by(&self, model: &dyn ScoreModel) -> Option<&'static str> {
        if self.energy && model.as_energy().is_none() {
            return Some("needs an energy model (a log-density, such as mlp_energy, dkef or nice)");
        }
        if self.flow && model.as_flow().is_none() {
            return Some("needs a normalized model (a flow with a tractable Jacobian, such as nice); this model's log-density is unnormalized or unavailable");
        }
        if self.curvature && model.as_curvature().is_none() {
            return Some("needs a model with backward curvature propagation (an energy model such as mlp_energy, dkef or nice)");
        }
        None
    }
}

/// `log p̃` of every row of row-major `x` (`n × dim`), `chunk_rows` rows
/// per inference graph; `None` when the model has no log-density.
pub fn log_densities_in_chunks(
    dev: &Device,
    model: &dyn ScoreModel,
    x: &[f64],
    dim: usize,
    chunk_rows: usize,
) -> Option<Vec<f64>> {
    let energy = model.as_energy()?;
    let mut out = Vec::with_capacity(x.len() / dim.max(1));
    for chunk in x.chunks(chunk_rows.max(1) * dim.max(1)) {
        let mut g = Graph::inference(dev);
        let m = g.constant(chunk.to_vec(), chunk.len() / dim, dim);
        out.extend(energy.log_density(&mut g, &m).to_host());
    }
    Some(out)
}
