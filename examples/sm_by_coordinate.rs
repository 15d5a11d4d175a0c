//! Where a model's exact score-matching loss comes from, coordinate by
//! coordinate: the clamp's point masses against every other coordinate.
//!
//! The exact SM loss of one point is a sum over coordinates,
//! `Σᵢ (∂sᵢ/∂xᵢ + ½ sᵢ²)`. Under the paper's preprocessing (clamp to
//! `[α, 1 − α]`, then logit) a quarter of an image's coordinates sit exactly
//! at `logit(α)`, a point mass around which a density can sharpen without
//! limit. This example splits each term by where its coordinate sits: at
//! the split's smallest value (the lower clamp), at its largest (the upper
//! clamp), or anywhere else, and prints the mean contribution per point of
//! each group, with its curvature and squared-score parts.
//!
//! Data flow: the experiment file's task and model are built; a checkpoint's
//! parameters are loaded; the first `points` held-out points of the split are
//! taken (the task's fixed preprocessing; the images task's `sm_loss`
//! metric averages over a seeded subset instead, so the totals differ by
//! sampling noise); for each coordinate `i` the model's
//! `trace_terms` along `eᵢ` give `sᵢ` and `∂sᵢ/∂xᵢ` at every point (one
//! forward jet per coordinate); the terms are summed per group on the host.
//!
//! ```text
//! cargo run --release --example sm_by_coordinate -- EXPERIMENT --checkpoint FILE [--split val|test] [--points N] [--below Y]
//! ```
//! `--below Y` groups the coordinates at or below `Y` against all others
//! instead (e.g. the cells of the zero pixels under the squeeze, whose
//! hard edge is at `logit(α)`).

use std::path::PathBuf;

use slicedscore::autodiff::Graph;
use slicedscore::experiment::Experiment;
use slicedscore::model::ModelSlot;
use slicedscore::objective::exact_sm_per_point;
use slicedscore::run_loader::load_checkpoint_into;
use slicedscore::task::Split;

/// Command-line settings.
struct Args {
    experiment: PathBuf,
    checkpoint: Option<PathBuf>,
    split: Split,
    points: usize,
    below: Option<f64>,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut experiment = None;
    let mut args = Args {
        experiment: PathBuf::new(),
        checkpoint: None,
        split: Split::Test,
        points: 200,
        below: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |flag: &str| {
            it.next()
                .ok_or_else(|| anyhow::anyhow!("{flag} needs a value"))
        };
        match a.as_str() {
            "--checkpoint" => args.checkpoint = Some(PathBuf::from(value("--checkpoint")?)),
            "--split" => {
                args.split = match value("--split")?.as_str() {
                    "val" | "validation" => Split::Validation,
                    "test" => Split::Test,
                    other => anyhow::bail!("--split must be val or test, not {other:?}"),
                }
            }
            "--points" => {
                args.points = value("--points")?.parse()?;
                anyhow::ensure!(args.points >= 1, "--points must be ≥ 1");
            }
            "--below" => args.below = Some(value("--below")?.parse()?),
            other if other.starts_with("--") => anyhow::bail!("unknown flag {other}"),
            other => experiment = Some(PathBuf::from(other)),
        }
    }
    args.experiment =
        experiment.ok_or_else(|| anyhow::anyhow!("name the experiment file (RON)"))?;
    Ok(args)
}

/// Sums of one group of coordinates over the points.
#[derive(Default)]
struct Group {
    coordinates: usize,
    curvature: f64,
    squared_score: f64,
}

fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let exp = Experiment::load(&args.experiment)?;
    let mut built = exp.build()?;
    if let Some(path) = &args.checkpoint {
        load_checkpoint_into(&mut built, path)?;
    }
    let ModelSlot::Trained(model) = &built.model else {
        anyhow::bail!("the experiment's model is not trained by an objective");
    };
    let dim = model.dim();
    anyhow::ensure!(
        model.context_dim() == 0,
        "the model is conditional; this example reads unconditional models"
    );
    let held_out = built.task.held_out_points(args.split).ok_or_else(|| {
        anyhow::anyhow!("the experiment's task has no held-out points to evaluate on")
    })?;
    let n = args.points.min(held_out.len() / dim);
    let x = held_out[..n * dim].to_vec();
    let lo = x.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = x.iter().copied().fold(f64::NEG_INFINITY, f64::max);

    let mut groups: [Group; 3] = Default::default();
    for i in 0..dim {
        let mut g = Graph::inference(&built.dev);
        let xm = g.constant(x.clone(), n, dim);
        let t = model.trace_terms(&mut g, &xm, i, 1);
        let s = t.vs.to_host();
        let ds = t.trace.to_host();
        for p in 0..n {
            let v = x[p * dim + i];
            let k = if let Some(y) = args.below {
                if v <= y {
                    0
                } else {
                    2
                }
            } else if v == lo {
                0
            } else if v == hi {
                1
            } else {
                2
            };
            groups[k].coordinates += 1;
            groups[k].curvature += ds[p];
            groups[k].squared_score += 0.5 * s[p] * s[p];
        }
    }

    let total: f64 = groups
        .iter()
        .map(|g| g.curvature + g.squared_score)
        .sum::<f64>()
        / n as f64;
    // The same loss computed the way the tasks compute it: the groups must
    // add up to it.
    let reference = exact_sm_per_point(&built.dev, &**model, &x, dim, 256)
        .iter()
        .sum::<f64>()
        / n as f64;
    anyhow::ensure!(
        (total - reference).abs() <= 1e-4 * reference.abs().max(1.0),
        "the coordinate terms sum to {total}, but the exact SM loss is {reference}"
    );
    println!(
        "{}{}: {n} {} points (D = {dim}); exact SM loss {total:.2} per point",
        args.experiment.display(),
        args.checkpoint
            .as_ref()
            .map(|c| format!(" with {}", c.display()))
            .unwrap_or_default(),
        match args.split {
            Split::Validation => "validation",
            Split::Test => "test",
        },
    );
    println!(
        "\n| coordinates | share of coordinates | SM loss per point | ∂sᵢ/∂xᵢ part | ½sᵢ² part |"
    );
    println!("|---|---|---|---|---|");
    let names = match args.below {
        Some(y) => [
            format!("at or below {y}"),
            String::new(),
            "all others".into(),
        ],
        None => [
            format!("at the smallest value {lo:.4}"),
            format!("at the largest value {hi:.4}"),
            "all others".into(),
        ],
    };
    for (name, g) in names.iter().zip(&groups) {
        if name.is_empty() {
            continue;
        }
        println!(
            "| {name} | {:.1} % | {:.2} | {:.2} | {:.2} |",
            100.0 * g.coordinates as f64 / (n * dim) as f64,
            (g.curvature + g.squared_score) / n as f64,
            g.curvature / n as f64,
            g.squared_score / n as f64,
        );
    }
    Ok(())
}
