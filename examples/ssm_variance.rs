//! The variance of the sliced objectives over projection draws, on one model
//! and one batch: `ssm`, `ssm_vr` and `ssm_cv` (Appendix D's control
//! variate at the batch's optimal coefficient), against exact SM.
//!
//! Data flow: the experiment file's task and model are built (its seeds);
//! optionally a checkpoint's parameters are loaded; one training batch is
//! drawn; for each objective, `draws` independent projection draws give a
//! loss and a gradient (one backward pass each); the table reports the mean
//! and variance of the loss, the total variance of the gradient `tr Cov`
//! and the distance of the mean gradient from the exact-SM gradient.
//!
//! ```text
//! cargo run --release --example ssm_variance -- [EXPERIMENT] [--checkpoint FILE] [--draws K]
//! ```
//! (default `experiments/nice_digits_ssm_vr.ron`, 100 draws).

use std::path::PathBuf;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use slicedscore::autodiff::Graph;
use slicedscore::device::Mat;
use slicedscore::experiment::Experiment;
use slicedscore::model::ModelSlot;
use slicedscore::nn::module::trainable_values;
use slicedscore::objective::{exact_sm_loss, LossContext, Objective};
use slicedscore::projection::Projection;
use slicedscore::registry::{Component, ObjectiveConfig, ProjectionConfig};
use slicedscore::run_loader::load_checkpoint_into;

/// Command-line settings.
struct Args {
    experiment: PathBuf,
    checkpoint: Option<PathBuf>,
    draws: usize,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        experiment: PathBuf::from("experiments/nice_digits_ssm_vr.ron"),
        checkpoint: None,
        draws: 100,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--checkpoint" => {
                args.checkpoint =
                    Some(PathBuf::from(it.next().ok_or_else(|| {
                        anyhow::anyhow!("--checkpoint needs a file")
                    })?))
            }
            "--draws" => {
                args.draws = it
                    .next()
                    .ok_or_else(|| anyhow::anyhow!("--draws needs a number"))?
                    .parse()?;
                anyhow::ensure!(args.draws >= 2, "--draws must be ≥ 2");
            }
            other => args.experiment = PathBuf::from(other),
        }
    }
    Ok(args)
}

/// Loss and flattened gradient of `obj` on `x` with directions seeded by `seed`.
fn loss_and_grad(
    built: &slicedscore::experiment::Built,
    obj: &dyn Objective,
    proj: &dyn Projection,
    x: &[f64],
    rows: usize,
    seed: u64,
) -> anyhow::Result<(f64, Vec<f64>)> {
    let ModelSlot::Trained(model) = &built.model else {
        anyhow::bail!("the experiment's model is not trained by an objective");
    };
    let leaves = trainable_values(&**model);
    let refs: Vec<&Mat> = leaves.iter().collect();
    let mut g = Graph::tracking(&built.dev, &refs);
    let xm = g.constant(x.to_vec(), rows, model.dim());
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut ctx = LossContext {
        projection: proj,
        rng: &mut rng,
    };
    let loss = obj
        .loss(&mut g, &**model, &xm, &mut ctx)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let value = loss.scalar();
    let grad = g.backward(&loss).iter().flat_map(|m| m.to_host()).collect();
    Ok((value, grad))
}

fn component<C: ?Sized + slicedscore::registry::ComponentKind>(
    text: &str,
) -> anyhow::Result<Component<C>>
where
    Component<C>: serde::de::DeserializeOwned,
{
    ron::from_str(text).map_err(|e| anyhow::anyhow!("{text}: {e}"))
}

fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let exp = Experiment::load(&args.experiment)?;
    let mut built = exp.build()?;
    if let Some(path) = &args.checkpoint {
        load_checkpoint_into(&mut built, path)?;
    }
    let dim = built.task.dim();
    let rows = exp.batch_size;
    let mut data_rng = ChaCha8Rng::seed_from_u64(exp.seed);
    let x = built.task.train_batch(&mut data_rng, rows);
    let proj: Component<dyn ProjectionConfig> = component(r#"{"rademacher": ()}"#)?;
    let proj = proj.config.build()?;
    let exact = {
        let ModelSlot::Trained(model) = &built.model else {
            anyhow::bail!("the experiment's model is not trained by an objective");
        };
        let mut g = Graph::inference(&built.dev);
        let xm = g.constant(x.clone(), rows, dim);
        exact_sm_loss(&mut g, &**model, &xm).scalar()
    };
    let sm: Component<dyn ObjectiveConfig> = component(r#"{"sm": ()}"#)?;
    let (_, exact_grad) = loss_and_grad(&built, &*sm.config.build()?, &*proj, &x, rows, 0)?;
    let exact_norm = exact_grad.iter().map(|g| g * g).sum::<f64>().sqrt();
    println!(
        "{}{}: batch of {rows} (D = {dim}), {} Rademacher draws per objective, {} parameters",
        args.experiment.display(),
        args.checkpoint
            .as_ref()
            .map(|c| format!(" with {}", c.display()))
            .unwrap_or_default(),
        args.draws,
        exact_grad.len()
    );
    println!("exact SM loss {exact:.4}, ‖∇θ exact SM‖ = {exact_norm:.4}\n");
    println!("| objective | mean loss | loss variance | gradient tr Cov | ‖mean ∇ − ∇ exact‖ / ‖∇ exact‖ |");
    println!("|---|---|---|---|---|");
    // Every objective sees the same directions draw for draw (same seeds),
    // so the batch's coefficient is (ssm − ssm_cv)/(ssm − ssm_vr).
    let mut per_objective: Vec<Vec<f64>> = Vec::new();
    for name in ["ssm", "ssm_vr", "ssm_cv"] {
        let obj: Component<dyn ObjectiveConfig> =
            component(&format!(r#"{{"{name}": (projections: 1)}}"#))?;
        let obj = obj.config.build()?;
        let mut losses = Vec::with_capacity(args.draws);
        let mut sum = vec![0.0; exact_grad.len()];
        let mut sum2 = vec![0.0; exact_grad.len()];
        for k in 0..args.draws {
            let (l, gr) = loss_and_grad(&built, &*obj, &*proj, &x, rows, 10_000 + k as u64)?;
            losses.push(l);
            for (j, v) in gr.iter().enumerate() {
                sum[j] += v;
                sum2[j] += v * v;
            }
        }
        let n = args.draws as f64;
        let mean = losses.iter().sum::<f64>() / n;
        let var = losses.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / (n - 1.0);
        let trace_cov: f64 = sum
            .iter()
            .zip(&sum2)
            .map(|(s, s2)| (s2 - s * s / n) / (n - 1.0))
            .sum();
        let err = sum
            .iter()
            .zip(&exact_grad)
            .map(|(s, e)| (s / n - e).powi(2))
            .sum::<f64>()
            .sqrt();
        println!(
            "| {name} | {mean:.4} | {var:.4} | {trace_cov:.4} | {:.4} |",
            err / exact_norm
        );
        per_objective.push(losses);
    }
    let c: Vec<f64> = (0..args.draws)
        .map(|k| {
            let (l, vr, cv) = (
                per_objective[0][k],
                per_objective[1][k],
                per_objective[2][k],
            );
            (l - cv) / (l - vr)
        })
        .collect();
    let cm = c.iter().sum::<f64>() / c.len() as f64;
    let cs = (c.iter().map(|v| (v - cm).powi(2)).sum::<f64>() / (c.len() - 1) as f64).sqrt();
    println!("\nssm_cv's coefficient c* over the draws: mean {cm:.4}, sd {cs:.4} (c = 0 is ssm, 1 is ssm_vr)");
    Ok(())
}
