//! What the data-set task plugins (`synthetic`, `tabular`) share: drawing a
//! training batch in epoch order and the exact score-matching metrics of an
//! evaluation.
//!
//! Data flow: a task's `train_batch` hands its training rows and its
//! [`EpochSampler`] to [`epoch_batch`], which gathers the rows the sampler
//! names; its `evaluate` hands the model and a held-out split to
//! [`insert_exact_sm`], which adds `sm_loss` and `sm_loss_stderr` to the
//! metrics.

use rand::RngCore;

use crate::device::Device;
use crate::model::ScoreModel;
use crate::objective::exact_sm_per_point;
use crate::task::{EpochSampler, Metrics};

/// Rows expanded at once when computing exact SM for evaluation.
pub const EVAL_ROWS: usize = 16_384;

/// `batch_size` rows of `rows` (row-major, `dim` columns) in the order
/// `epochs` draws them.
pub fn epoch_batch(
    epochs: &mut EpochSampler,
    rng: &mut dyn RngCore,
    rows: &[f64],
    dim: usize,
    batch_size: usize,
) -> Vec<f64> {
    let mut out = Vec::with_capacity(batch_size * dim);
    for _ in 0..batch_size {
        let i = epochs.next_index(rng);
        out.extend_from_slice(&rows[i * dim..(i + 1) * dim]);
    }
    out
}

/// Inserts into `m` the exact score-matching loss of `model` on the rows
/// of `x` (`dim` columns), averaged over the rows (`sm_loss`), and the
/// standard error of that mean (`sm_loss_stderr`).
pub fn insert_exact_sm(
    m: &mut Metrics,
    dev: &Device,
    model: &dyn ScoreModel,
    x: &[f64],
    dim: usize,
) {
    let per = exact_sm_per_point(dev, model, x, dim, EVAL_ROWS);
    let n = per.len() as f64;
    let mean = per.iter().sum::<f64>() / n;
    let var = per.iter().map(|p| (p - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    m.insert("sm_loss".into(), mean);
    m.insert("sm_loss_stderr".into(), (var / n).sqrt());
}
