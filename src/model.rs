//! The [`ScoreModel`] trait: anything that yields a score `s(x) = ∇ₓ log p̃(x)`.
//!
//! Objectives never look inside a model. They ask it for [`Terms`] along
//! projection directions `v` (one per row): `vᵀs(x)`, `vᵀ(∇ₓs(x))v` and, when
//! asked, the full score. Energy models get these from second-order jets of
//! `log p̃`; score networks `h(x)` from first-order jets of `h`.

use crate::autodiff::curvature::CurvatureMethod;
use crate::autodiff::Graph;
use crate::device::Mat;
use crate::nn::Param;

/// What kind of object a model is, which decides what objectives apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelFamily {
    /// An unnormalized log-density `log p̃(x)`; its score is `∇ₓ log p̃`.
    Energy,
    /// A network `h: ℝᴰ → ℝᴰ` used directly as the score.
    ScoreNetwork,
}

/// Per-row score-matching terms along directions `v`, as `n × 1` columns.
pub struct Terms {
    /// `vᵀ s(x)`.
    pub vs: Mat,
    /// `vᵀ (∇ₓ s(x)) v`.
    pub vhv: Mat,
    /// The full score `s(x)` (`n × D`) when requested.
    pub score: Option<Mat>,
}

/// An isotropic Gaussian proposal `N(mean, std²I)`.
#[derive(Debug, Clone, PartialEq)]
pub struct GaussianProposal {
    /// Mean (length `D`).
    pub mean: Vec<f64>,
    /// Standard deviation of every coordinate.
    pub std: f64,
}

/// A trainable model that gives a score.
pub trait ScoreModel {
    /// Input dimension `D`.
    fn dim(&self) -> usize;

    /// Energy model or score network.
    fn family(&self) -> ModelFamily;

    /// Trainable parameters in a fixed order (names unique within the model).
    fn params(&self) -> Vec<&Param>;

    /// Mutable parameters in the same order as [`ScoreModel::params`].
    fn params_mut(&mut self) -> Vec<&mut Param>;

    /// The score `s(x)` (`n × D`) for `x` (`n × D`).
    fn score(&self, g: &mut Graph, x: &Mat) -> Mat;

    /// Directional terms along `v` (`n × D`, one direction per row of `x`),
    /// and the full score too when `want_score`.
    fn terms(&self, g: &mut Graph, x: &Mat, v: &Mat, want_score: bool) -> Terms;

    /// The unnormalized log-density `log p̃(x)` (`n × 1`), for energy models.
    fn log_density(&self, _g: &mut Graph, _x: &Mat) -> Option<Mat> {
        None
    }

    /// The score and an estimate of the Hessian diagonal `diag(∇ₓs)` (both
    /// `n × D`) by backward curvature propagation, for the `approx_bp` and
    /// `cp` objectives; `None` when the model does not implement it.
    fn curvature(
        &self,
        _g: &mut Graph,
        _x: &Mat,
        _method: &mut CurvatureMethod<'_>,
    ) -> Option<(Mat, Mat)> {
        None
    }

    /// Whether [`ScoreModel::curvature`] is implemented.
    fn supports_curvature(&self) -> bool {
        false
    }

    /// A normalized Gaussian `N(mean, std²I)` close to the model's density,
    /// used as an importance-sampling proposal to estimate `log Z` (e.g. an
    /// energy model's base measure). `None` when the model has none.
    fn importance_proposal(&self) -> Option<GaussianProposal> {
        None
    }

    /// Whether [`ScoreModel::log_density`] is normalized (a flow with a
    /// tractable Jacobian), so maximum likelihood and exact log-likelihoods apply.
    fn is_normalized(&self) -> bool {
        false
    }

    /// `n` exact samples from the model (row-major `n × D`), for models that
    /// can sample directly (flows); `None` otherwise.
    fn sample(
        &self,
        _dev: &crate::device::Dev,
        _rng: &mut dyn rand::RngCore,
        _n: usize,
    ) -> Option<Vec<f64>> {
        None
    }

    /// How many training points [`ScoreModel::init_from_data`] wants before
    /// the first step (0: none).
    fn data_init_points(&self) -> usize {
        0
    }

    /// Data-dependent initialisation (e.g. inducing points from data), called
    /// once by the training loop with `data_init_points()` rows (row-major).
    fn init_from_data(&mut self, _x: &[f64]) {}

    /// Whether the model is a nonparametric estimator that is fitted from
    /// samples by [`ScoreModel::fit_samples`] rather than trained (the
    /// kernel estimators). The training loop fits such a model once from
    /// [`ScoreModel::data_init_points`] training rows; a task that needs
    /// scores of its own samples (an implicit encoder's `z`) refits it on
    /// every batch.
    fn fits_from_samples(&self) -> bool {
        false
    }
    /// Fits the estimator to samples (row-major `n × dim`). An error says
    /// what went wrong (too few samples, a kernel matrix that stays singular
    /// after regularization); it never leaves NaN estimates behind.
    fn fit_samples(&mut self, _x: &[f64]) -> Result<(), String> {
        Err("this model is trained, not fitted from samples".to_string())
    }
    /// Number of conditioning columns appended to every input row (0: an
    /// unconditional model). A conditional model `h(z | c)` takes rows
    /// `[z, c]` of width `dim + context_dim`; its score, directions `v` and
    /// derivatives are over the first `dim` columns only.
    fn context_dim(&self) -> usize {
        0
    }
    /// Total number of trainable scalars.
    fn num_parameters(&self) -> usize {
        self.params().iter().map(|p| p.numel()).sum()
    }
}

/// The model of an experiment whose task uses none (see
/// [`crate::task::Task::uses_model`]): no parameters, and it is never asked
/// for a score.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoModel;

impl ScoreModel for NoModel {
    fn dim(&self) -> usize {
        0
    }
    fn family(&self) -> ModelFamily {
        ModelFamily::ScoreNetwork
    }
    fn params(&self) -> Vec<&Param> {
        Vec::new()
    }
    fn params_mut(&mut self) -> Vec<&mut Param> {
        Vec::new()
    }
    fn score(&self, _g: &mut Graph, _x: &Mat) -> Mat {
        unreachable!("NoModel belongs to a task that uses no model")
    }
    fn terms(&self, _g: &mut Graph, _x: &Mat, _v: &Mat, _want_score: bool) -> Terms {
        unreachable!("NoModel belongs to a task that uses no model")
    }
}
