//! Score estimates of the encoder's codes, from the experiment's model.
//!
//! Data flow: the encoder's codes `z` (host copy, no gradient) and, for a
//! conditional score network, the images they came from, go to
//! [`estimate_scores`]. A *trained* model (a score network `h(z)` or
//! `h(z | x)`) adds its objective's loss on these codes to the step's loss
//! and gives its score on an inference graph; the training step decides
//! whose parameters that loss updates (the score network's alone first,
//! then the autoencoder's, under the default alternating schedule:
//! [`crate::task::ScoreSchedule`]). A model *fitted from samples* (the kernel estimators) is
//! refitted on every group of codes (the `k` codes of one image for a VAE,
//! the whole minibatch for a WAE) and gives its estimates at them. Either
//! way the scores come back as host values: a stop-gradient constant.

use rand::RngCore;

use crate::autodiff::Graph;
use crate::device::Mat;
use crate::objective::LossContext;
use crate::task::{ScoreSource, TaskError};

/// Scores at the codes and the model's own training loss.
pub struct ScoreEstimate {
    /// `ŝ(z)`, row-major like the codes.
    pub scores: Vec<f64>,
    /// The trained model's objective on the codes (`1 × 1`, on the graph);
    /// `None` for a fitted model.
    pub model_loss: Option<Mat>,
}

/// Rows `[z_r, c_r]`: each code followed by its context row (the image it
/// came from), or the codes alone without context.
fn with_context(z: &[f64], latent: usize, context: Option<(&[f64], usize, usize)>) -> Vec<f64> {
    let Some((x, width, k)) = context else {
        return z.to_vec();
    };
    let m = z.len() / latent;
    let mut out = Vec::with_capacity(m * (latent + width));
    for r in 0..m {
        out.extend_from_slice(&z[r * latent..(r + 1) * latent]);
        let i = r / k;
        out.extend_from_slice(&x[i * width..(i + 1) * width]);
    }
    out
}

/// Estimates `∇_z log q` at the codes `z` (`m × latent`, host).
///
/// * `context`: for a conditional model, the images (`n × width`) with
///   `k` consecutive codes per image.
/// * `groups`: the number of consecutive, equal groups of codes a fitted
///   estimator is refitted on (one per image for `q(z | x)`, 1 for the
///   aggregate `q(z)`).
///
/// `context` is used only by a conditional score network (one whose
/// `context_dim` is positive).
pub fn estimate_scores(
    g: &mut Graph,
    source: ScoreSource<'_>,
    rng: &mut dyn RngCore,
    z: &[f64],
    latent: usize,
    context: Option<(&[f64], usize, usize)>,
    groups: usize,
) -> Result<ScoreEstimate, TaskError> {
    let m = z.len() / latent;
    let (model, objective, projection) = match source {
        ScoreSource::None => {
            return Err(TaskError::Invalid(
                "no score model to estimate the codes' scores with".into(),
            ))
        }
        ScoreSource::Fitted(estimator) => {
            let per = m / groups;
            let mut scores = Vec::with_capacity(z.len());
            for (i, block) in z.chunks(per * latent).enumerate() {
                let fitted = estimator.fit(g.dev(), block).map_err(|e| {
                    TaskError::Invalid(format!(
                        "fitting the estimator to the {i}-th group of {per} codes: {e}"
                    ))
                })?;
                let mut inf = Graph::inference(g.dev());
                let zm = inf.constant(block.to_vec(), per, latent);
                scores.extend(fitted.score(&mut inf, &zm).to_host());
            }
            check_finite(&scores, latent)?;
            return Ok(ScoreEstimate {
                scores,
                model_loss: None,
            });
        }
        ScoreSource::Trained {
            model,
            objective,
            projection,
        } => (model, objective, projection),
    };
    let context = if model.context_dim() > 0 {
        context
    } else {
        None
    };
    let width = latent + context.map_or(0, |c| c.1);
    let rows = with_context(z, latent, context);
    let scores = {
        let mut inf = Graph::inference(g.dev());
        let input = inf.constant(rows.clone(), m, width);
        model.score(&mut inf, &input).to_host()
    };
    check_finite(&scores, latent)?;
    let input = g.constant(rows, m, width);
    let mut ctx = LossContext { projection, rng };
    let loss = objective.loss(g, model, &input, &mut ctx)?;
    Ok(ScoreEstimate {
        scores,
        model_loss: Some(loss),
    })
}

fn check_finite(scores: &[f64], latent: usize) -> Result<(), TaskError> {
    match scores.iter().position(|v| !v.is_finite()) {
        Some(i) => Err(TaskError::Invalid(format!(
            "the score estimate is {} at code {} of the batch, coordinate {}",
            scores[i],
            i / latent,
            i % latent
        ))),
        None => Ok(()),
    }
}
