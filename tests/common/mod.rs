//! Helpers shared by the integration tests: building plugins by name through
//! the registry, finite differences and tolerances, exact curvature, small
//! experiments ([`ExpSpec`]) trained in-process ([`train_file`]) or by the
//! binary ([`run_binary`], [`binary_with_timeout`]).
#![allow(dead_code)]

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use slicedscore::autodiff::Graph;
use slicedscore::device::{Device, Mat, Precision};
use slicedscore::model::ScoreModel;
use slicedscore::nn::module::{for_each_param_mut, named_params, trainable_values};
use slicedscore::objective::{LossContext, Objective};
use slicedscore::projection::Projection;
use slicedscore::registry::{
    BuiltModel, Component, ModelConfig, ObjectiveConfig, ProjectionConfig,
};

/// The device of the derivative checks: native CPU kernels in f64.
pub fn dev() -> Device {
    Device::cpu(Precision::F64)
}

/// What a model spec builds (trained model or estimator).
pub fn built_model(spec: &str, dim: usize, seed: u64) -> BuiltModel {
    let c: Component<dyn ModelConfig> = ron::from_str(spec).expect("model spec parses");
    c.config
        .build(&dev(), dim, &mut ChaCha8Rng::seed_from_u64(seed))
        .expect("model builds")
}

/// A trained model from a spec, in f64.
pub fn model(spec: &str, dim: usize, seed: u64) -> Box<dyn ScoreModel> {
    model_on(&dev(), spec, dim, seed)
}

/// A trained model from a spec, on `dev`.
pub fn model_on(dev: &Device, spec: &str, dim: usize, seed: u64) -> Box<dyn ScoreModel> {
    let c: Component<dyn ModelConfig> = ron::from_str(spec).expect("model spec parses");
    c.config
        .build(dev, dim, &mut ChaCha8Rng::seed_from_u64(seed))
        .expect("model builds")
        .trained()
        .expect("a trained model")
}

/// The values of the trainable parameters, flattened per parameter.
pub fn param_values(m: &dyn ScoreModel) -> Vec<Vec<f64>> {
    trainable_values(m).iter().map(|v| v.to_host()).collect()
}

/// Names of the trainable parameters, in order.
pub fn param_names(m: &dyn ScoreModel) -> Vec<String> {
    named_params(m)
        .into_iter()
        .filter(|(_, p)| p.is_trainable())
        .map(|(n, _)| n)
        .collect()
}

/// Sets trainable parameter `index` to host values (same shape), keeping
/// its precision.
pub fn set_param(m: &mut dyn ScoreModel, index: usize, values: &[f64]) {
    let mut i = 0;
    for_each_param_mut(m, |_, p| {
        if !p.is_trainable() {
            return;
        }
        if i == index {
            let (r, c) = p.shape();
            p.value = Device::cpu(p.value.precision()).mat(values, r, c);
        }
        i += 1;
    });
}

pub fn objective(spec: &str) -> Box<dyn Objective> {
    let c: Component<dyn ObjectiveConfig> = ron::from_str(spec).expect("objective spec parses");
    c.config.build().expect("objective builds")
}

pub fn projection(spec: &str) -> Box<dyn Projection> {
    let c: Component<dyn ProjectionConfig> = ron::from_str(spec).expect("projection spec parses");
    c.config.build().expect("projection builds")
}

pub fn randn(rng: &mut impl Rng, n: usize) -> Vec<f64> {
    use rand_distr::{Distribution, StandardNormal};
    (0..n).map(|_| StandardNormal.sample(&mut *rng)).collect()
}

pub fn mat(data: Vec<f64>, rows: usize, cols: usize) -> Mat {
    dev().mat(&data, rows, cols)
}

/// Relative error |a − b| / max(|b|, floor).
pub fn rel_err(a: f64, b: f64, floor: f64) -> f64 {
    (a - b).abs() / b.abs().max(floor)
}

pub fn assert_close(a: &[f64], b: &[f64], tol: f64, floor: f64, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths differ");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        let e = rel_err(*x, *y, floor);
        assert!(
            e <= tol,
            "{what}[{i}]: {x} vs {y} (relative error {e:.2e} > {tol:.0e})"
        );
    }
}

/// The loss of `obj` on `x` with the projection/noise stream seeded by `seed`.
pub fn loss_value(
    obj: &dyn Objective,
    model: &dyn ScoreModel,
    proj: &dyn Projection,
    x: &Mat,
    seed: u64,
) -> f64 {
    let mut g = Graph::inference(&dev());
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut ctx = LossContext {
        projection: proj,
        rng: &mut rng,
    };
    obj.loss(&mut g, model, x, &mut ctx).expect("loss").scalar()
}

/// ∇θ of the loss by one backward pass, flattened in parameter order.
pub fn loss_grad(
    obj: &dyn Objective,
    model: &dyn ScoreModel,
    proj: &dyn Projection,
    x: &Mat,
    seed: u64,
) -> Vec<Vec<f64>> {
    let params = trainable_values(model);
    let refs: Vec<&Mat> = params.iter().collect();
    let mut g = Graph::tracking(&dev(), &refs);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut ctx = LossContext {
        projection: proj,
        rng: &mut rng,
    };
    let loss = obj.loss(&mut g, model, x, &mut ctx).expect("loss");
    g.backward(&loss).iter().map(|m| m.to_host()).collect()
}

// ---------------------------------------------------------------------------
// Helpers for the end-to-end tests (`training.rs`, `cli.rs`): small
// experiment files and reading run folders.

/// The settings of a small experiment, written out as RON by [`ExpSpec::ron`].
/// Component fields hold the RON text after the name (e.g. `(hidden: [32])`).
#[derive(Debug, Clone)]
pub struct ExpSpec {
    pub name: String,
    pub seed: u64,
    pub target: String,
    pub train_size: usize,
    pub val_size: usize,
    pub test_size: usize,
    pub model: String,
    pub objective: String,
    pub projection: String,
    pub optimizer: String,
    pub batch_size: usize,
    pub iterations: usize,
    pub eval_every: usize,
}

impl Default for ExpSpec {
    fn default() -> Self {
        Self {
            name: "itest".into(),
            seed: 0,
            target: "Mixture2d(components: 8, radius: 2.0, std: 0.35)".into(),
            train_size: 2000,
            val_size: 500,
            test_size: 500,
            model: r#"{"mlp_score": (hidden: [32], activation: Softplus)}"#.into(),
            objective: r#"{"ssm_vr": (projections: 1)}"#.into(),
            projection: r#"{"rademacher": ()}"#.into(),
            optimizer: "Adam(lr: 0.003)".into(),
            batch_size: 64,
            iterations: 200,
            eval_every: 50,
        }
    }
}

impl ExpSpec {
    /// The experiment as the text of a RON file.
    pub fn ron(&self) -> String {
        format!(
            r#"// written by the integration tests
Experiment(
    name: "{}",
    seed: {},
    task: {{"synthetic": (
        target: {},
        train_size: {},
        val_size: {},
        test_size: {},
    )}},
    model: {},
    objective: {},
    projection: {},
    optimizer: {},
    batch_size: {},
    iterations: {},
    eval_every: {},
)
"#,
            self.name,
            self.seed,
            self.target,
            self.train_size,
            self.val_size,
            self.test_size,
            self.model,
            self.objective,
            self.projection,
            self.optimizer,
            self.batch_size,
            self.iterations,
            self.eval_every
        )
    }

    /// The default experiment with a learning rate (`Sgd`, `1e12`) that
    /// makes it diverge within its 100 steps, evaluated every `eval_every`.
    pub fn diverging(eval_every: usize) -> Self {
        Self {
            optimizer: "Sgd(lr: 1e12)".into(),
            iterations: 100,
            eval_every,
            ..Self::default()
        }
    }

    /// Writes the experiment to `dir/file` and returns the path.
    pub fn write(&self, dir: &std::path::Path, file: &str) -> std::path::PathBuf {
        write_file(dir, file, &self.ron())
    }
}

/// Writes `text` to `dir/file` and returns the path.
pub fn write_file(dir: &std::path::Path, file: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(file);
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    path
}

/// Reads and parses a JSON file (e.g. a run's `metrics.json`).
pub fn read_json(path: &std::path::Path) -> serde_json::Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
}

/// A JSON number as `f64`, with a message naming `what` otherwise.
pub fn num(v: &serde_json::Value, what: &str) -> f64 {
    v.as_f64()
        .unwrap_or_else(|| panic!("{what} is not a number: {v}"))
}

/// Checks ∇θ of `obj` at `x` (one backward pass, projections and noise from
/// `seed`) against central finite differences on up to `per_param` random
/// entries of every parameter, to relative error 1e-4; returns how many
/// entries were checked. `label` names the case in failure messages.
#[allow(clippy::too_many_arguments)]
pub fn check_param_gradients(
    m: &mut dyn ScoreModel,
    obj: &dyn Objective,
    proj: &dyn Projection,
    x: &Mat,
    seed: u64,
    rng: &mut impl Rng,
    per_param: usize,
    label: &str,
) -> usize {
    let grads = loss_grad(obj, m, proj, x, seed);
    check_gradients_against(m, &grads, rng, per_param, label, |m| {
        loss_value(obj, m, proj, x, seed)
    })
}

/// Checks `grads` (one per trainable parameter, in order) against central
/// finite differences of `loss` on up to `per_param` random entries of
/// every parameter, to relative error 1e-4; returns how many entries were
/// checked.
pub fn check_gradients_against(
    m: &mut dyn ScoreModel,
    grads: &[Vec<f64>],
    rng: &mut impl Rng,
    per_param: usize,
    label: &str,
    loss: impl Fn(&dyn ScoreModel) -> f64,
) -> usize {
    let names = param_names(m);
    let values = param_values(m);
    let h = 1e-5;
    let mut checked = 0;
    for (pi, grad) in grads.iter().enumerate() {
        let base = values[pi].clone();
        for _ in 0..per_param.min(base.len()) {
            let k = rng.gen_range(0..base.len());
            let mut at = |delta: f64| {
                let mut b = base.clone();
                b[k] += delta;
                set_param(m, pi, &b);
                loss(&*m)
            };
            let fd = (at(h) - at(-h)) / (2.0 * h);
            set_param(m, pi, &base);
            let e = rel_err(grad[k], fd, 1e-4);
            assert!(
                e <= 1e-4,
                "{label}: ∂loss/∂{}[{k}] = {} by backward, {fd} by finite differences (relative error {e:.2e})",
                names[pi],
                grad[k]
            );
            checked += 1;
        }
    }
    checked
}

/// Score-matching objectives with every option that changes their loss
/// (shared by the gradient checks).
pub const SCORE_OBJECTIVES: [&str; 5] = [
    r#"{"sm": ()}"#,
    r#"{"ssm": (projections: 2)}"#,
    r#"{"ssm_vr": (projections: 2)}"#,
    r#"{"dsm": (sigma: 0.5, noise_samples: 2)}"#,
    r#"{"dsm": (sigma: 0.3, scaling: Original)}"#,
];

/// Whether the model has a parameter of this name.
pub fn has_param(m: &dyn ScoreModel, name: &str) -> bool {
    named_params(m).iter().any(|(n, _)| n == name)
}

/// A parameter's values and shape, by name.
pub fn param_by_name(m: &dyn ScoreModel, name: &str) -> (Vec<f64>, usize, usize) {
    let (_, p) = named_params(m)
        .into_iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no parameter {name}"));
    let (r, c) = p.shape();
    (p.value.to_host(), r, c)
}

/// Sets the parameter `name` to host values (shape `rows × cols`), keeping
/// its precision.
pub fn set_param_named(
    m: &mut dyn ScoreModel,
    name: &str,
    values: &[f64],
    rows: usize,
    cols: usize,
) {
    let mut found = false;
    for_each_param_mut(m, |n, p| {
        if n == name {
            p.value = Device::cpu(p.value.precision()).mat(values, rows, cols);
            found = true;
        }
    });
    assert!(found, "no parameter {name}");
}

/// The basis directions `e_1 … e_dim` for `n` points each, direction-major
/// (`dim·n × dim`), as [`ScoreModel::terms`] takes them.
pub fn basis_v(n: usize, dim: usize) -> Mat {
    let mut v = vec![0.0; n * dim * dim];
    for i in 0..dim {
        for r in 0..n {
            v[(i * n + r) * dim + i] = 1.0;
        }
    }
    mat(v, n * dim, dim)
}

/// `diag(∇ₓs)` exactly (row-major `n × dim`), from `dim` second-order jets
/// along the basis vectors.
pub fn exact_diag(m: &dyn ScoreModel, x: &[f64], dim: usize) -> Vec<f64> {
    let n = x.len() / dim;
    let mut g = Graph::inference(&dev());
    let xm = mat(x.to_vec(), n, dim);
    let v = basis_v(n, dim);
    let t = (m.terms(&mut g, &xm, &v, false).vhv).to_host();
    let mut out = vec![0.0; n * dim];
    for i in 0..dim {
        for r in 0..n {
            out[r * dim + i] = t[i * n + r];
        }
    }
    out
}

/// The model's curvature pass on host points.
pub fn curvature_of(
    m: &dyn ScoreModel,
    x: &[f64],
    dim: usize,
    method: &mut slicedscore::autodiff::curvature::CurvatureMethod<'_>,
) -> (Vec<f64>, Vec<f64>) {
    let n = x.len() / dim;
    let mut g = Graph::inference(&dev());
    let (s, d) = m.as_curvature().expect("a curvature model").curvature(
        &mut g,
        &mat(x.to_vec(), n, dim),
        method,
    );
    (s.to_host(), d.to_host())
}

/// A CPU device in the precision of the model's parameters (f64 when it has none).
pub fn dev_of(m: &dyn ScoreModel) -> Device {
    trainable_values(m)
        .first()
        .map(|v| Device::cpu(v.precision()))
        .unwrap_or_else(dev)
}

/// The `slicedscore` binary as a command run in the package root, without
/// the caller's `RUST_LOG`.
pub fn binary() -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_slicedscore"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("RUST_LOG");
    c
}

/// Runs the binary with `args` and waits for it, its output captured.
pub fn run_binary(args: &[&str]) -> std::process::Output {
    binary()
        .args(args)
        .output()
        .expect("the slicedscore binary starts")
}

/// Runs the binary with `args` (no backtraces, stdout discarded, stderr
/// captured), killing it once it has run for `limit`: its exit status and
/// stderr, or `None` when it was killed at the limit.
pub fn binary_with_timeout(
    args: &[&str],
    limit: std::time::Duration,
) -> Option<(std::process::ExitStatus, String)> {
    use std::io::Read;
    use std::process::Stdio;
    let mut child = binary()
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the slicedscore binary starts");
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    let err = reader.join().unwrap();
    status.map(|s| (s, err))
}

/// Options of a quiet run (no progress bar) into `run_dir`.
pub fn run_options(run_dir: &std::path::Path) -> slicedscore::train::RunOptions {
    slicedscore::train::RunOptions {
        run_dir: Some(run_dir.to_path_buf()),
        progress: false,
        ..slicedscore::train::RunOptions::default()
    }
}

/// Trains the experiment file `file` into `run_dir` in-process, panicking
/// with the error when the run fails.
pub fn train_file(
    file: &std::path::Path,
    run_dir: &std::path::Path,
) -> slicedscore::train::RunSummary {
    slicedscore::train::run_file(file, &run_options(run_dir)).unwrap_or_else(|e| panic!("{e}"))
}

/// Output bytes as text.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A path as a command-line argument.
pub fn s(p: &std::path::Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// The stdout of a finished `slicedscore args`, failing the test with both
/// streams when it did not succeed.
pub fn success_stdout(args: &[&str], out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "slicedscore {args:?} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}
