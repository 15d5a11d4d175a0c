//! How close a trained autoencoder's aggregated posterior `q(z)` is to the
//! prior `N(0, I)`, in its first two moments.
//!
//! The WAE's regulariser is `λ·KL(q(z) ‖ p(z))`, minimised through a score
//! estimate of `q(z)`; the implicit VAE's entropy term pulls `q(z | x)`
//! toward the prior per image. The test NLL (AIS from the prior) suffers
//! when `q(z)` leaves the prior, so how well an estimator's gradient matched
//! `q(z)` to `N(0, I)` shows in these statistics.
//!
//! Data flow: each run folder's experiment is rebuilt, its best (or last)
//! checkpoint loaded into the task's networks; the task's `train_batch`
//! gives the codes of fresh training images (one each, binarised afresh),
//! `--codes` of them in chunks; their mean `μ` and covariance `Σ` are formed
//! on the host, and one row per run is printed: `‖μ‖`, the smallest and
//! largest eigenvalue of `Σ`, `tr Σ / d`, and the KL divergence of the
//! Gaussian fit, `KL(N(μ, Σ) ‖ N(0, I)) = ½(tr Σ + ‖μ‖² − d − ln det Σ)`
//! (zero only when the two moments match the prior's).
//!
//! ```text
//! cargo run --release --example latent_codes -- RUN_DIR… [--codes N] [--checkpoint best|last] [--seed S]
//! ```

use std::path::PathBuf;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use slicedscore::linalg::eigen::sym_eigen;
use slicedscore::run_loader::{load_checkpoint_into, load_experiment};
use slicedscore::train::{BEST_CHECKPOINT, LAST_CHECKPOINT};

/// Command-line settings.
struct Args {
    runs: Vec<PathBuf>,
    codes: usize,
    checkpoint: &'static str,
    seed: u64,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        runs: Vec::new(),
        codes: 5000,
        checkpoint: BEST_CHECKPOINT,
        seed: 0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |flag: &str| {
            it.next()
                .ok_or_else(|| anyhow::anyhow!("{flag} needs a value"))
        };
        match a.as_str() {
            "--codes" => {
                args.codes = value("--codes")?.parse()?;
                anyhow::ensure!(args.codes >= 2, "--codes must be ≥ 2");
            }
            "--seed" => args.seed = value("--seed")?.parse()?,
            "--checkpoint" => {
                args.checkpoint = match value("--checkpoint")?.as_str() {
                    "best" => BEST_CHECKPOINT,
                    "last" => LAST_CHECKPOINT,
                    other => anyhow::bail!("--checkpoint must be best or last, not {other:?}"),
                }
            }
            other if other.starts_with("--") => anyhow::bail!("unknown flag {other}"),
            other => args.runs.push(PathBuf::from(other)),
        }
    }
    anyhow::ensure!(!args.runs.is_empty(), "name one or more run folders");
    Ok(args)
}

/// The moments of one run's codes.
struct Moments {
    dim: usize,
    mean_norm: f64,
    eig_min: f64,
    eig_max: f64,
    trace_per_dim: f64,
    gaussian_kl: f64,
}

/// Mean and covariance of `n` codes of dimension `d` (row-major), and the
/// statistics printed.
fn moments(z: &[f64], d: usize) -> anyhow::Result<Moments> {
    let n = z.len() / d;
    let mut mean = vec![0.0; d];
    for row in z.chunks(d) {
        for (m, v) in mean.iter_mut().zip(row) {
            *m += v / n as f64;
        }
    }
    let mut cov = vec![0.0; d * d];
    for row in z.chunks(d) {
        for i in 0..d {
            let a = row[i] - mean[i];
            for j in 0..d {
                cov[i * d + j] += a * (row[j] - mean[j]) / (n - 1) as f64;
            }
        }
    }
    let eig = sym_eigen(&cov, d)?;
    let trace: f64 = eig.values.iter().sum();
    let log_det: f64 = eig
        .values
        .iter()
        .map(|l| l.max(f64::MIN_POSITIVE).ln())
        .sum();
    let mean_sq: f64 = mean.iter().map(|m| m * m).sum();
    Ok(Moments {
        dim: d,
        mean_norm: mean_sq.sqrt(),
        eig_min: eig.values[d - 1],
        eig_max: eig.values[0],
        trace_per_dim: trace / d as f64,
        gaussian_kl: 0.5 * (trace + mean_sq - d as f64 - log_det),
    })
}

fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    println!("run\tdim\tcodes\t|mean|\teig_min\teig_max\ttrace/dim\tKL(N(mean,cov)||N(0,I))");
    for run in &args.runs {
        let (exp, _) = load_experiment(run)?;
        let mut built = exp.build()?;
        let step = load_checkpoint_into(&mut built, &run.join(args.checkpoint))?;
        let d = built.task.dim();
        let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
        let mut z = Vec::with_capacity(args.codes * d);
        while z.len() < args.codes * d {
            let take = (args.codes - z.len() / d).min(500);
            z.extend(built.task.train_batch(&mut rng, take));
        }
        let m = moments(&z, d)?;
        println!(
            "{} (step {step})\t{}\t{}\t{:.3}\t{:.3}\t{:.3}\t{:.3}\t{:.2}",
            run.display(),
            m.dim,
            args.codes,
            m.mean_norm,
            m.eig_min,
            m.eig_max,
            m.trace_per_dim,
            m.gaussian_kl
        );
    }
    Ok(())
}
