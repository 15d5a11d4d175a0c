//! The latent-variable tasks `implicit_vae` and `wae`: the decoder's
//! log-joint and its gradient, AIS against exact marginal likelihoods,
//! the encoders, end-to-end training, and bad settings.

mod common;

use std::path::{Path, PathBuf};

use common::{assert_close, dev, randn, read_json, write_file};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use slicedscore::ais::{AisConfig, LogTarget};
use slicedscore::autodiff::Graph;
use slicedscore::experiment::Experiment;
use slicedscore::nn::Activation;
use slicedscore::plugins::tasks::latent::autoencoder::{gaussian_kl, gaussian_kl_host};
use slicedscore::plugins::tasks::latent::evaluation::{ais_metrics, DecoderTarget};
use slicedscore::plugins::tasks::latent::networks::{
    softplus, Decoder, Encoder, EncoderKind, NetConfig,
};
use slicedscore::train::{run_file, RunOptions};

fn net(hidden: &[usize]) -> NetConfig {
    NetConfig {
        hidden: hidden.to_vec(),
        activation: Activation::Tanh,
    }
}

fn binary(rng: &mut ChaCha8Rng, n: usize) -> Vec<f64> {
    randn(rng, n)
        .into_iter()
        .map(|v| if v > 0.0 { 1.0 } else { 0.0 })
        .collect()
}

#[test]
fn decoder_log_joint_gradient_matches_finite_differences() {
    let (latent, d, n) = (3, 7, 4);
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let dec = Decoder::new(&dev(), latent, d, &net(&[6]), &mut rng);
    let x = binary(&mut rng, 2 * d);
    let device = dev();
    let target = DecoderTarget::new(&dec, &device, &x, d, latent);
    assert_eq!((target.dim(), target.num_points()), (latent, 2));
    let z = randn(&mut rng, n * latent);
    let (lp, grad) = target.log_prob_and_grad(&z, n);
    // log f by hand: Bernoulli log-likelihood of each chain's image plus log N(z; 0, I).
    let mut g = Graph::inference(&dev());
    let zm = g.constant(z.clone(), n, latent);
    let a = dec.logits(&mut g, &zm).to_host();
    let by_hand: Vec<f64> = (0..n)
        .map(|r| {
            let img = r / (n / 2);
            let ll: f64 = (0..d)
                .map(|j| x[img * d + j] * a[r * d + j] - softplus(a[r * d + j]))
                .sum();
            ll + slicedscore::ais::log_std_normal(&z[r * latent..(r + 1) * latent])
        })
        .collect();
    assert_close(&lp, &by_hand, 1e-10, 1e-8, "log f");
    let eps = 1e-6;
    let mut fd = vec![0.0; n * latent];
    for i in 0..n * latent {
        let (mut zp, mut zm) = (z.clone(), z.clone());
        zp[i] += eps;
        zm[i] -= eps;
        let (p, _) = target.log_prob_and_grad(&zp, n);
        let (m, _) = target.log_prob_and_grad(&zm, n);
        fd[i] = (p[i / latent] - m[i / latent]) / (2.0 * eps);
    }
    assert_close(&grad, &fd, 1e-6, 1e-6, "∇z log f");
}

/// `log p(x) = log ∫ p(x | z) N(z; 0, 1) dz` by the trapezoid rule, for a
/// one-dimensional latent.
fn quadrature_log_marginal(dec: &Decoder, x: &[f64]) -> f64 {
    let (lo, hi, m) = (-12.0, 12.0, 24_001);
    let h = (hi - lo) / (m - 1) as f64;
    let z: Vec<f64> = (0..m).map(|i| lo + i as f64 * h).collect();
    let rows: Vec<f64> = (0..m).flat_map(|_| x.iter().copied()).collect();
    let (ll, _) = dec.log_likelihood_and_grad(&dev(), &z, &dev().mat(&rows, m, x.len()), m);
    let terms: Vec<f64> = ll
        .iter()
        .zip(&z)
        .enumerate()
        .map(|(i, (l, z))| {
            let w = if i == 0 || i == m - 1 { 0.5 } else { 1.0 };
            l - 0.5 * z * z - 0.5 * (2.0 * std::f64::consts::PI).ln() + (w * h).ln()
        })
        .collect();
    let max = terms.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    max + terms.iter().map(|t| (t - max).exp()).sum::<f64>().ln()
}

#[test]
fn ais_nll_matches_the_exact_marginal_of_a_one_dimensional_latent() {
    let d = 12;
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut dec = Decoder::new(&dev(), 1, d, &net(&[8]), &mut rng);
    // Sharpen the decoder so the posterior is narrow (a real test of the annealing).
    slicedscore::nn::module::for_each_param_mut(&mut dec, |_, p| {
        let v: Vec<f64> = p.value.to_host().iter().map(|w| 3.0 * w).collect();
        let (r, c) = p.shape();
        p.value = dev().mat(&v, r, c);
    });
    let x = binary(&mut rng, 3 * d);
    let exact: Vec<f64> = x
        .chunks(d)
        .map(|img| quadrature_log_marginal(&dec, img))
        .collect();
    let exact_nll = -exact.iter().sum::<f64>() / 3.0;
    let cfg = AisConfig {
        num_temperatures: 400,
        chains: 16,
        ..AisConfig::default()
    };
    let m = ais_metrics(&dec, &dev(), &x, d, 1, &cfg, 7).unwrap();
    let nll = m["nll"];
    assert!(
        (nll - exact_nll).abs() < 0.05,
        "AIS nll {nll} vs exact {exact_nll}"
    );
    // Two temperatures is plain importance sampling from the prior: a
    // stochastic upper bound on the NLL that is visibly worse here.
    let crude = AisConfig {
        num_temperatures: 2,
        chains: 2,
        ..AisConfig::default()
    };
    let rough = ais_metrics(&dec, &dev(), &x, d, 1, &crude, 7).unwrap()["nll"];
    assert!(rough > exact_nll, "{rough} vs {exact_nll}");
    assert!(m["ais_ess_mean"] > 1.0 && m["ais_ess_mean"] <= 16.0);
}

#[test]
fn encoders_draw_codes_per_image() {
    let (d, latent, n, k) = (5, 2, 3, 4);
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let x = binary(&mut rng, n * d);
    let codes = |kind: EncoderKind, rng: &mut ChaCha8Rng| {
        let enc = Encoder::new(&dev(), d, latent, &kind, &net(&[8]), rng);
        let mut g = Graph::inference(&dev());
        let c = enc.sample(&mut g, &x, n, k, rng);
        (c.z.to_host(), c.gaussian.is_some())
    };
    let (z, gaussian) = codes(EncoderKind::Implicit { noise_dim: Some(0) }, &mut rng);
    assert!(!gaussian && z.len() == n * k * latent);
    // Without noise the k codes of an image coincide; images differ.
    for i in 0..n {
        for j in 1..k {
            let r = i * k + j;
            assert_eq!(
                z[r * latent..(r + 1) * latent],
                z[i * k * latent..(i * k + 1) * latent]
            );
        }
    }
    assert_ne!(z[..latent], z[k * latent..(k + 1) * latent]);
    // With noise (implicit) or ε (Gaussian) they differ.
    for kind in [
        EncoderKind::Implicit { noise_dim: None },
        EncoderKind::Gaussian,
    ] {
        let (z, _) = codes(kind.clone(), &mut rng);
        assert_ne!(z[..latent], z[latent..2 * latent], "{kind:?}");
    }
}

#[test]
fn gaussian_kl_on_the_graph_matches_the_formula() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let (mu, ls) = (randn(&mut rng, 6), randn(&mut rng, 6));
    let mut g = Graph::inference(&dev());
    let (m, l) = (g.constant(mu.clone(), 2, 3), g.constant(ls.clone(), 2, 3));
    let kl = gaussian_kl(&mut g, &m, &l).to_host();
    let expect = gaussian_kl_host(&mu, &ls);
    assert!((kl.iter().sum::<f64>() - expect).abs() < 1e-12);
    assert!(gaussian_kl_host(&[0.0; 3], &[0.0; 3]).abs() < 1e-15);
}

const SMALL_EVAL: &str = "val: (points: 16, ais: (num_temperatures: 10, chains: 2)), \
     test: (points: 32, ais: (num_temperatures: 50, chains: 4))";

fn experiment(name: &str, task: &str, settings: &str, rest: &str, iterations: usize) -> String {
    format!(
        r#"Experiment(
    name: "{name}",
    task: {{"{task}": (data: (source: Digits), latent_dim: 3, networks: (hidden: [32]), {SMALL_EVAL}{settings})}},
    {rest}
    optimizer: Adam(lr: 0.003),
    batch_size: 32,
    iterations: {iterations},
    eval_every: {eval},
)"#,
        eval = iterations.max(1)
    )
}

const SSM: &str = r#"model: {"mlp_score": (hidden: [16])},
    objective: {"ssm_vr": (projections: 1)},
    projection: {"rademacher": ()},"#;

fn train(dir: &Path, name: &str, text: &str) -> PathBuf {
    let file = write_file(dir, &format!("{name}.ron"), text);
    let run_dir = dir.join(name);
    run_file(
        &file,
        &RunOptions {
            run_dir: Some(run_dir.clone()),
            progress: false,
            ..RunOptions::default()
        },
    )
    .unwrap_or_else(|e| panic!("{name}: {e}"));
    run_dir
}

fn test_nll(run: &Path) -> f64 {
    let j = read_json(&run.join("metrics.json"));
    j["test"]["metrics"]["test/nll"].as_f64().unwrap()
}

#[test]
fn implicit_vae_with_a_conditional_score_network_trains_and_reports() {
    let dir = tempfile::tempdir().unwrap();
    let short = train(
        dir.path(),
        "vae1",
        &experiment("vae1", "implicit_vae", "", SSM, 1),
    );
    let long = train(
        dir.path(),
        "vae400",
        &experiment("vae400", "implicit_vae", "", SSM, 400),
    );
    let (a, b) = (test_nll(&short), test_nll(&long));
    assert!(b < a - 3.0, "400 steps: nll {b}; 1 step: {a}");
    let j = read_json(&long.join("metrics.json"));
    assert_eq!(j["dim"], 3);
    for m in ["test/recon", "test/ais_ess_mean", "test/ais_acceptance"] {
        assert!(j["test"]["metrics"][m].as_f64().unwrap().is_finite(), "{m}");
    }
    for png in ["reconstructions.png", "samples.png"] {
        assert!(long.join(png).is_file(), "{png}");
    }
    // The checkpoint holds the encoder, the decoder and the conditional score network.
    let bytes = std::fs::read(long.join("best.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let names: Vec<String> = st.names().into_iter().cloned().collect();
    for prefix in [
        "implicit_vae.encoder.",
        "implicit_vae.decoder.",
        "score_net.",
    ] {
        assert!(
            names.iter().any(|n| n.starts_with(prefix)),
            "{prefix} in {names:?}"
        );
    }
    let w = st.tensor("score_net.layers.0.weight").unwrap();
    assert_eq!(w.shape()[0], 3 + 64, "h(z | x) reads [z, x]");
}

#[test]
fn gaussian_vae_and_wae_train() {
    let dir = tempfile::tempdir().unwrap();
    let vae = train(
        dir.path(),
        "elbo",
        &experiment("elbo", "implicit_vae", ", encoder: Gaussian", "", 200),
    );
    let j = read_json(&vae.join("metrics.json"));
    let (nll, elbo) = (
        j["test"]["metrics"]["test/nll"].as_f64().unwrap(),
        j["test"]["metrics"]["test/neg_elbo"].as_f64().unwrap(),
    );
    // −ELBO bounds the NLL from above (AIS is close to the NLL or above it).
    assert!(nll < elbo + 0.5, "nll {nll}, −elbo {elbo}");
    let wae = train(
        dir.path(),
        "wae",
        &experiment("wae", "wae", ", lambda: 1.0", SSM, 200),
    );
    assert!(test_nll(&wae).is_finite());
}

#[test]
fn kernel_estimators_drive_the_vae_and_the_wae() {
    let dir = tempfile::tempdir().unwrap();
    for (task, settings, model) in [
        ("implicit_vae", ", codes_per_image: 5", "stein"),
        ("implicit_vae", ", codes_per_image: 5", "spectral"),
        ("wae", "", "stein"),
        ("wae", "", "spectral"),
    ] {
        let name = format!("{task}_{model}");
        let rest = format!(r#"model: {{"{model}": ()}},"#);
        let run = train(
            dir.path(),
            &name,
            &experiment(&name, task, settings, &rest, 30),
        );
        let nll = test_nll(&run);
        assert!(nll.is_finite(), "{name}: nll {nll}");
        let j = read_json(&run.join("metrics.json"));
        assert_eq!(j["model"], model);
        assert_eq!(j["objective"], "-");
    }
}

fn build_error(text: &str) -> String {
    let exp = Experiment::parse(text, Path::new("x.ron")).unwrap();
    match exp.build() {
        Ok(_) => panic!("built: {text}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn settings_that_do_not_fit_are_errors() {
    let e = build_error(&experiment(
        "a",
        "implicit_vae",
        ", encoder: Gaussian",
        SSM,
        5,
    ));
    assert!(e.contains("model") && e.contains("uses no model"), "{e}");
    let e = build_error(&experiment("b", "implicit_vae", "", "", 5));
    assert!(e.contains("needs a model"), "{e}");
    let e = build_error(&experiment(
        "c",
        "implicit_vae",
        "",
        r#"model: {"mlp_score": ()},"#,
        5,
    ));
    assert!(
        e.contains("objective") && e.contains("name an objective"),
        "{e}"
    );
    let e = build_error(&experiment("d", "implicit_vae", "", SSM, 0));
    assert!(e.contains("iterations"), "{e}");
    let e = build_error(&experiment("e", "wae", ", lambda: 0.0", SSM, 5));
    assert!(e.contains("lambda"), "{e}");
    let e = build_error(&experiment(
        "f",
        "implicit_vae",
        "",
        r#"model: {"mlp_energy": ()},
    objective: {"ssm_vr": (projections: 1)},
    projection: {"rademacher": ()},"#,
        5,
    ));
    assert!(e.contains("cannot condition"), "{e}");
    let e = build_error(&experiment(
        "h",
        "implicit_vae",
        "",
        r#"model: {"stein": ()},"#,
        5,
    ));
    assert!(e.contains("codes_per_image"), "{e}");
    let e = build_error(&experiment(
        "i",
        "wae",
        "",
        r#"model: {"stein": ()},
    objective: {"ssm_vr": (projections: 1)},
    projection: {"rademacher": ()},"#,
        5,
    ));
    assert!(e.contains("fitted from samples"), "{e}");
    let e = build_error(
        &experiment("g", "implicit_vae", "", SSM, 5).replace("points: 16", "points: 0"),
    );
    assert!(e.contains("val.points"), "{e}");
}

/// Parameter values, one vector per parameter.
type Values = Vec<Vec<f64>>;

/// One training step of a small VAE experiment with `schedule`; returns the
/// score network's and the autoencoder's parameters before and after.
fn one_step(schedule: &str) -> (Values, Values, Values, Values) {
    use slicedscore::model::ModelSlot;
    use slicedscore::nn::module::trainable_values;
    use slicedscore::train::optim::Optimizer;
    use slicedscore::train::step::{train_step, StepParts};
    let text = experiment(
        "alt",
        "implicit_vae",
        &format!(", score_schedule: {schedule}"),
        SSM,
        1,
    );
    let exp = Experiment::parse(&text, Path::new("alt.ron")).unwrap();
    let mut built = exp.build().unwrap();
    let host =
        |v: Vec<slicedscore::device::Mat>| -> Values { v.iter().map(|m| m.to_host()).collect() };
    let model_params = |b: &slicedscore::experiment::Built| match &b.model {
        ModelSlot::Trained(m) => host(trainable_values(&**m)),
        _ => panic!("a trained score network"),
    };
    let (m0, t0) = (model_params(&built), host(trainable_values(&*built.task)));
    let mut opt = Optimizer::new(exp.optimizer.clone());
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let objective = built.objective.as_deref().unwrap();
    let projection = built.projection.as_deref().unwrap();
    let parts = StepParts {
        dev: &built.dev,
        model: &mut built.model,
        task: &mut *built.task,
        objective: Some((objective, projection)),
    };
    train_step(parts, &mut opt, &mut rng, 8, None).unwrap();
    let (m1, t1) = (model_params(&built), host(trainable_values(&*built.task)));
    (m0, m1, t0, t1)
}

#[test]
fn the_alternating_schedule_steps_the_score_network_first_with_its_own_rmsprop() {
    let rms = |lr: f64| format!("Alternating(optimizer: RmsProp(lr: {lr}))");
    let (m0, m1, t0, t1) = one_step(&rms(0.001));
    // RMSProp's first step moves each parameter by lr·g/(√((1−ρ)g²) + ε)
    // = ±lr/√(1−ρ) = ±0.01 wherever its gradient is not tiny.
    let moves: Vec<f64> = m0
        .iter()
        .flatten()
        .zip(m1.iter().flatten())
        .map(|(a, b)| (a - b).abs())
        .collect();
    // (Weights reading pixels that are 0 in the whole batch get no gradient.)
    let big = moves.iter().filter(|d| (*d - 0.01).abs() < 2e-4).count();
    let still = moves.iter().filter(|d| **d < 1e-6).count();
    assert!(
        big > moves.len() / 2 && big + still > moves.len() * 99 / 100,
        "of {} score-network parameters {big} moved by 0.01 and {still} stayed",
        moves.len()
    );
    // With the score network frozen (lr 1e-30 moves no f32 parameter), the autoencoder's update is the
    // joint schedule's to the bit: the second pass repeats the first's
    // images, codes and directions, and the first moved nothing.
    let (f0, f1, ft0, ft1) = one_step(&rms(1e-30));
    assert_eq!(f0, f1, "lr 1e-30 moved the score network");
    let (_, _, jt0, jt1) = one_step("Joint");
    assert_eq!(
        (&ft0, &ft1),
        (&jt0, &jt1),
        "alternating (frozen score network) vs joint autoencoder update"
    );
    // With a moving score network the autoencoder sees other scores.
    assert_eq!(t0, jt0);
    assert_ne!(t1, jt1, "the autoencoder ignored the updated score network");
}
