//! End-to-end training through the library API: run folders, TensorBoard
//! scalars, `metrics.json`, determinism, learning, divergence handling and
//! checkpoints.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use common::{num, read_json, run_options, write_file, ExpSpec};
use serde_json::Value;
use slicedscore::autodiff::Graph;
use slicedscore::device::{Device, Precision};
use slicedscore::experiment::Experiment;
use slicedscore::logging::event_reader::{find_event_files, read_scalars, ScalarEvent};
use slicedscore::nn::module::named_params;
use slicedscore::run_loader::{load_model, LoadError, Which};
use slicedscore::task::Split;
use slicedscore::train::checkpoint::{self, Checkpoint};
use slicedscore::train::{
    run_file, train, RunOptions, RunSummary, TrainError, BEST_CHECKPOINT, EXPERIMENT_COPY,
    LAST_CHECKPOINT, METRICS_FILE,
};

const METRIC_NAMES: [&str; 7] = [
    "fisher_divergence",
    "langevin_mmd2",
    "langevin_sliced_wasserstein",
    "relative_fisher_divergence",
    "sm_loss",
    "sm_loss_optimum",
    "sm_loss_stderr",
];

/// `json` (a number read from `metrics.json`) is `exact` up to the reader:
/// the file holds the shortest decimal that reads back to `exact`, but
/// serde_json (without its `float_roundtrip` feature) may parse it 1 ulp off.
fn assert_json_f64(json: &Value, exact: f64, what: &str) {
    let j = num(json, what);
    assert!(
        (j - exact).abs() <= 2.0 * f64::EPSILON * exact.abs(),
        "{what}: metrics.json has {j}, expected {exact}"
    );
}

/// Writes `spec` into `root` and trains it into `root/<run>`.
fn run_spec(spec: &ExpSpec, root: &Path, run: &str) -> (PathBuf, Result<RunSummary, TrainError>) {
    let file = spec.write(root, &format!("{run}.ron"));
    let dir = root.join(run);
    let result = run_file(&file, &run_options(&dir));
    (dir, result)
}

fn finished(spec: &ExpSpec, root: &Path, run: &str) -> (PathBuf, RunSummary) {
    let (dir, result) = run_spec(spec, root, run);
    let summary = result.unwrap_or_else(|e| panic!("run {run} failed: {e}"));
    (dir, summary)
}

/// The scalars of the run folder's single event file, by tag.
fn scalars_by_tag(dir: &Path) -> BTreeMap<String, Vec<ScalarEvent>> {
    let files = find_event_files(dir);
    assert_eq!(
        files.len(),
        1,
        "expected one event file in {dir:?}: {files:?}"
    );
    let mut by_tag: BTreeMap<String, Vec<ScalarEvent>> = BTreeMap::new();
    for e in read_scalars(&files[0]).expect("event file reads back") {
        by_tag.entry(e.tag.clone()).or_default().push(e);
    }
    by_tag
}

fn steps_of(events: &[ScalarEvent]) -> Vec<i64> {
    events.iter().map(|e| e.step).collect()
}

/// Parses and builds `text` (as if read from `path`).
fn parse_exp(text: &str, path: &Path) -> Experiment {
    Experiment::parse(text, path).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn short_run_writes_a_complete_run_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = ExpSpec::default();
    let (dir, summary) = finished(&spec, tmp.path(), "run");
    assert_eq!(summary.run_dir, dir);
    assert_eq!(summary.steps, 200);
    assert!(summary.final_loss.is_finite());
    assert!(summary.seconds_per_iteration > 0.0);

    // The experiment is copied verbatim (comments included).
    let copy = std::fs::read_to_string(dir.join(EXPERIMENT_COPY)).unwrap();
    assert_eq!(copy, spec.ron());

    // metrics.json
    let m = read_json(&dir.join(METRICS_FILE));
    assert_eq!(m["status"], "finished", "{m:#}");
    assert!(m["error"].is_null(), "{m:#}");
    assert_eq!(m["step"], 200);
    assert_eq!(m["experiment"], "itest");
    assert_eq!(m["selection_metric"], "val/sm_loss");
    let best_step = m["best"]["step"].as_u64().expect("best.step");
    assert_eq!(best_step, summary.best_step);
    assert!([50, 100, 150, 200].contains(&best_step), "{best_step}");
    assert_eq!(m["test"]["step"].as_u64(), Some(best_step));
    let test = &m["test"]["metrics"];
    for k in METRIC_NAMES {
        assert!(
            summary.test[k].is_finite(),
            "test/{k} = {}",
            summary.test[k]
        );
        assert_json_f64(
            &test[format!("test/{k}")],
            summary.test[k],
            &format!("test/{k}"),
        );
        assert_json_f64(
            &m["best"]["metrics"][format!("val/{k}")],
            summary.best[k],
            &format!("best val/{k}"),
        );
    }
    let rfd = summary.test["relative_fisher_divergence"];
    assert!(
        rfd > 0.0 && rfd < 1.0,
        "test relative Fisher divergence {rfd}"
    );
    let history = m["history"].as_array().expect("history");
    let steps: Vec<u64> = history
        .iter()
        .map(|h| h["step"].as_u64().unwrap())
        .collect();
    assert_eq!(steps, [50, 100, 150, 200]);
    for h in history {
        for k in METRIC_NAMES {
            assert!(num(&h[format!("val/{k}")], k).is_finite(), "{h}");
        }
        assert!(num(&h["train/loss"], "train/loss").is_finite());
    }
    // The best step is the one with the lowest validation sm_loss.
    let lowest = history
        .iter()
        .min_by(|a, b| num(&a["val/sm_loss"], "").total_cmp(&num(&b["val/sm_loss"], "")))
        .unwrap();
    assert_eq!(lowest["step"].as_u64(), Some(best_step));

    // Checkpoints: last is from the final step, best from the best step.
    for (file, step) in [(LAST_CHECKPOINT, 200), (BEST_CHECKPOINT, best_step)] {
        let c = Checkpoint::read(&dir.join(file)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.metadata_usize("step").unwrap() as u64, step, "{file}");
        assert_eq!(c.metadata_usize("dim").unwrap(), 2, "{file}");
    }

    // TensorBoard scalars.
    let tags = scalars_by_tag(&dir);
    let train_steps: Vec<i64> = std::iter::once(1).chain((10..=200).step_by(10)).collect();
    for tag in [
        "train/loss",
        "train/grad_norm",
        "train/learning_rate",
        "train/seconds_per_iteration",
    ] {
        let ev = tags
            .get(tag)
            .unwrap_or_else(|| panic!("no {tag}; have {:?}", tags.keys()));
        assert_eq!(steps_of(ev), train_steps, "{tag}");
        assert!(ev.iter().all(|e| e.value.is_finite()), "{tag}");
    }
    assert!(tags["train/learning_rate"]
        .iter()
        .all(|e| e.value == 0.003f32));
    assert!(tags["train/seconds_per_iteration"]
        .iter()
        .all(|e| e.value > 0.0));
    for k in METRIC_NAMES {
        let val = tags
            .get(&format!("val/{k}"))
            .unwrap_or_else(|| panic!("no val/{k}; have {:?}", tags.keys()));
        assert_eq!(steps_of(val), [50, 100, 150, 200], "val/{k}");
        for (e, h) in val.iter().zip(history) {
            assert_eq!(
                e.value,
                num(&h[format!("val/{k}")], k) as f32,
                "val/{k} at step {}",
                e.step
            );
        }
        let t = tags
            .get(&format!("test/{k}"))
            .unwrap_or_else(|| panic!("no test/{k}; have {:?}", tags.keys()));
        // Test metrics come from the best checkpoint: logged at its step.
        assert_eq!(steps_of(t), [best_step as i64], "test/{k}");
        assert_eq!(t[0].value, summary.test[k] as f32, "test/{k}");
        let b = &tags[&format!("best/val/{k}")];
        assert_eq!(steps_of(b), [best_step as i64], "best/val/{k}");
        assert_eq!(b[0].value, summary.best[k] as f32, "best/val/{k}");
    }
    // The training loss at the evaluation steps is the one in the history.
    for h in history {
        let step = h["step"].as_i64().unwrap();
        let e = tags["train/loss"].iter().find(|e| e.step == step).unwrap();
        assert_eq!(
            e.value,
            num(&h["train/loss"], "train/loss") as f32,
            "{step}"
        );
    }
    let expected_tags: BTreeSet<String> = ["train/loss", "train/grad_norm"]
        .iter()
        .map(|s| s.to_string())
        .chain(["train/learning_rate", "train/seconds_per_iteration"].map(String::from))
        .chain(METRIC_NAMES.iter().map(|k| format!("val/{k}")))
        .chain(METRIC_NAMES.iter().map(|k| format!("test/{k}")))
        .chain(METRIC_NAMES.iter().map(|k| format!("best/val/{k}")))
        .collect();
    assert_eq!(tags.keys().cloned().collect::<BTreeSet<_>>(), expected_tags);
}

/// The text of `metrics.json` without the lines that depend on timing or
/// on the run folder. The file holds the shortest decimal that reads back to
/// each f64, so equal text means bit-identical numbers.
fn reproducible_part(dir: &Path) -> String {
    let text = std::fs::read_to_string(dir.join(METRICS_FILE)).unwrap();
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| !l.contains("\"seconds_per_iteration\"") && !l.contains("\"run_dir\""))
        .collect();
    assert!(kept.iter().any(|l| l.contains("\"history\"")), "{text}");
    kept.join("\n")
}

#[test]
fn same_seed_same_numbers_other_seed_other_numbers() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = ExpSpec {
        iterations: 120,
        eval_every: 40,
        ..ExpSpec::default()
    };
    let (a, sa) = finished(&spec, tmp.path(), "a");
    let (b, sb) = finished(&spec, tmp.path(), "b");
    let other = ExpSpec { seed: 1, ..spec };
    let (c, sc) = finished(&other, tmp.path(), "c");

    let (ra, rb, rc) = (
        reproducible_part(&a),
        reproducible_part(&b),
        reproducible_part(&c),
    );
    assert_eq!(ra, rb, "two runs of one experiment differ");
    assert_eq!(sa.final_loss.to_bits(), sb.final_loss.to_bits());
    for (k, v) in &sa.test {
        assert_eq!(v.to_bits(), sb.test[k].to_bits(), "test/{k}");
    }
    // Same parameters, bit for bit.
    for file in [BEST_CHECKPOINT, LAST_CHECKPOINT] {
        let (ca, cb) = (
            Checkpoint::read(&a.join(file)).unwrap(),
            Checkpoint::read(&b.join(file)).unwrap(),
        );
        let (da, db) = (Device::cpu(Precision::F64), Device::cpu(Precision::F64));
        let ea = parse_exp(
            &std::fs::read_to_string(a.join(EXPERIMENT_COPY)).unwrap(),
            &a,
        );
        let mut ma = ea.build_model(&da, 2).unwrap();
        let mut mb = ea.build_model(&db, 2).unwrap();
        ca.load_params(&da, &mut ma).unwrap();
        cb.load_params(&db, &mut mb).unwrap();
        for ((name, pa), (_, pb)) in named_params(&ma).iter().zip(named_params(&mb)) {
            let (ha, hb) = (pa.value.to_host(), pb.value.to_host());
            assert!(
                ha.iter().zip(&hb).all(|(x, y)| x.to_bits() == y.to_bits()),
                "{file}: parameter {name} differs between identical runs",
            );
        }
    }

    // Another seed: other data, initialisation and batches.
    assert_ne!(ra, rc, "seed 1 gave the same numbers as seed 0");
    for k in ["sm_loss", "fisher_divergence", "relative_fisher_divergence"] {
        assert_ne!(
            sa.test[k], sc.test[k],
            "test/{k} is equal for seeds 0 and 1"
        );
    }
    let ha = read_json(&a.join(METRICS_FILE))["history"].clone();
    let hc = read_json(&c.join(METRICS_FILE))["history"].clone();
    for (x, y) in ha.as_array().unwrap().iter().zip(hc.as_array().unwrap()) {
        assert_ne!(x["val/sm_loss"], y["val/sm_loss"], "step {}", x["step"]);
        assert_ne!(x["train/loss"], y["train/loss"], "step {}", x["step"]);
    }
}

#[test]
fn quickstart_learns_the_mixture_score() {
    let tmp = tempfile::tempdir().unwrap();
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/quickstart.ron");
    let dir = tmp.path().join("quickstart");
    let summary = run_file(&file, &run_options(&dir)).unwrap_or_else(|e| panic!("{e}"));

    let rfd = summary.test["relative_fisher_divergence"];
    assert!(
        rfd < 0.1,
        "quickstart: test relative Fisher divergence {rfd} ≥ 0.1 (best step {})",
        summary.best_step
    );
    assert_eq!(
        std::fs::read_to_string(dir.join(EXPERIMENT_COPY)).unwrap(),
        std::fs::read_to_string(&file).unwrap()
    );
    // The quickstart trains in f32 (the default), and its checkpoint says so
    // and loads into an f64 model with the same scores to f32 accuracy.
    let ckpt = Checkpoint::read(&dir.join(BEST_CHECKPOINT)).unwrap();
    assert_eq!(ckpt.precision().unwrap(), Precision::F32);
    let loaded = load_model(&dir, Which::Best).unwrap();
    assert_eq!(loaded.dev.precision(), Precision::F32);
    let exp = Experiment::load(&dir.join(EXPERIMENT_COPY)).unwrap();
    let d64 = Device::cpu(Precision::F64);
    let mut m64 = exp.build_model(&d64, 2).unwrap();
    ckpt.load_params(&d64, &mut m64).unwrap();
    let x: Vec<f64> = (0..40).map(|i| (i as f64 * 0.37).sin() * 2.0).collect();
    let s32 = {
        let mut g = Graph::inference(&loaded.dev);
        loaded
            .model
            .score(&mut g, &loaded.dev.mat(&x, 20, 2))
            .to_host()
    };
    let s64 = {
        let mut g = Graph::inference(&d64);
        m64.scorer()
            .unwrap()
            .score(&mut g, &d64.mat(&x, 20, 2))
            .to_host()
    };
    common::assert_close(
        &s32,
        &s64,
        1e-4,
        1e-2,
        "f32 and f64 scores of one checkpoint",
    );

    // sm_loss − sm_loss_optimum estimates the Fisher divergence without
    // ground truth: equal in expectation over the split. The per-point
    // difference is heavy-tailed, so allow four standard errors plus slack.
    let m = read_json(&dir.join(METRICS_FILE));
    assert_eq!(m["status"], "finished");
    let check = |block: &Value, prefix: &str| {
        let get = |k: &str| num(&block[format!("{prefix}/{k}")], k);
        let gap = get("sm_loss") - get("sm_loss_optimum");
        let fisher = get("fisher_divergence");
        let se = get("sm_loss_stderr");
        assert!(
            (gap - fisher).abs() <= 4.0 * se + 0.1,
            "{prefix}: sm_loss − optimum = {gap}, Fisher divergence {fisher}, stderr {se}"
        );
        assert!(fisher >= 0.0 && se > 0.0);
    };
    check(&m["last_eval"]["metrics"], "val");
    check(&m["test"]["metrics"], "test");
    // Training improved the selection metric along the way.
    let history = m["history"].as_array().unwrap();
    let first = num(&history[0]["val/relative_fisher_divergence"], "first");
    let last = num(
        &history.last().unwrap()["val/relative_fisher_divergence"],
        "last",
    );
    assert!(
        last < 0.5 * first,
        "val relative Fisher divergence {first} → {last}"
    );
}

#[test]
fn every_objective_and_model_learns() {
    let tmp = tempfile::tempdir().unwrap();
    let objectives = [
        r#"{"sm": ()}"#,
        r#"{"ssm": (projections: 1)}"#,
        r#"{"ssm_vr": (projections: 1)}"#,
        r#"{"dsm": (sigma: 0.1)}"#,
    ];
    let models = [
        r#"{"mlp_score": (hidden: [32])}"#,
        r#"{"mlp_energy": (hidden: [32])}"#,
    ];
    let mut report = Vec::new();
    for objective in objectives {
        for model in models {
            let spec = ExpSpec {
                target: "Gaussian(dim: 2, condition: 10.0)".into(),
                model: model.into(),
                objective: objective.into(),
                optimizer: "Adam(lr: 0.01)".into(),
                batch_size: 64,
                iterations: 300,
                eval_every: 100,
                val_size: 500,
                test_size: 100,
                ..ExpSpec::default()
            };
            let text = spec.ron();
            let path = tmp.path().join(format!("e{}.ron", report.len()));
            let exp = parse_exp(&text, &path);
            let built = exp
                .build()
                .unwrap_or_else(|e| panic!("{model} {objective}: {e}"));
            // The untrained model (the run starts from exactly this one).
            let before = built
                .task
                .evaluate(&built.dev, built.model.scorer(), Split::Validation)
                ["relative_fisher_divergence"];
            let dir = tmp.path().join(format!("run{}", report.len()));
            let summary = train(&exp, &text, built, &run_options(&dir))
                .unwrap_or_else(|e| panic!("{model} {objective}: {e}"));
            let history = read_json(&dir.join(METRICS_FILE))["history"].clone();
            let last = num(
                &history.as_array().unwrap().last().unwrap()["val/relative_fisher_divergence"],
                "last",
            );
            let best = summary.best["relative_fisher_divergence"];
            report.push(format!(
                "{model} {objective}: {before:.4} → best {best:.4}, last {last:.4}"
            ));
            assert!(
                before.is_finite() && best < 0.25 * before && last < 0.25 * before,
                "{}",
                report.last().unwrap()
            );
        }
    }
    println!("{}", report.join("\n"));
}

#[test]
fn divergence_stops_with_the_step_and_keeps_a_good_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = ExpSpec::diverging(2);
    let (dir, result) = run_spec(&spec, tmp.path(), "diverged");
    let err = match result {
        Ok(s) => panic!("lr 1e12 trained without error; best step {}", s.best_step),
        Err(e) => e,
    };
    let msg = err.to_string();
    let step = match &err {
        TrainError::Diverged {
            step, value, kept, ..
        } => {
            // SGD at lr 1e12 explodes: a huge or non-finite loss.
            assert!(!value.is_finite() || value.abs() > 1e6, "{msg}");
            assert!(kept.contains(&dir.display().to_string()), "{msg}");
            *step
        }
        other => panic!("expected Diverged, got {other:?}"),
    };
    assert!((1..100).contains(&step), "{msg}");
    assert!(msg.contains(&format!("at step {step}")), "{msg}");

    let m = read_json(&dir.join(METRICS_FILE));
    assert_eq!(m["status"], "diverged", "{m:#}");
    let error = m["error"].as_str().expect("error string");
    assert!(error.contains(&format!("step {step}")), "{error}");
    assert!(m["test"].is_null(), "{m:#}");

    // The last checkpoint is from an evaluation before the failure and loads.
    let ckpt = Checkpoint::read(&dir.join(LAST_CHECKPOINT)).unwrap_or_else(|e| panic!("{e}"));
    let saved_at = ckpt.metadata_usize("step").unwrap() as u64;
    assert!(
        saved_at < step,
        "checkpoint from step {saved_at}, failure at {step}"
    );
    let exp = parse_exp(&spec.ron(), &dir);
    let dev = Device::cpu(Precision::F64);
    let mut model = exp.build_model(&dev, 2).unwrap();
    ckpt.load_params(&dev, &mut model)
        .unwrap_or_else(|e| panic!("{e}"));
    for (name, p) in named_params(&model) {
        let v = p.value.to_host();
        assert!(v.iter().all(|x| x.is_finite()), "{name} is not finite");
    }
    let loaded = load_model(&dir, Which::Last).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(loaded.step as u64, saved_at);
    // The event file is complete (closed after the failure).
    let tags = scalars_by_tag(&dir);
    assert!(tags.contains_key("train/loss"), "{:?}", tags.keys());
}

/// Scores of a loaded model at `x` (row-major, `dim` columns).
fn scores(m: &slicedscore::run_loader::LoadedModel, x: &[f64]) -> Vec<f64> {
    slicedscore::plugins::tasks::synthetic::model_scores(&m.dev, &*m.model, x, m.dim)
}

#[test]
fn checkpoints_reload_the_trained_model() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = ExpSpec {
        model: r#"{"mlp_score": (hidden: [16])}"#.into(),
        iterations: 90,
        eval_every: 30,
        ..ExpSpec::default()
    };
    let (dir, summary) = finished(&spec, tmp.path(), "run");
    let m = read_json(&dir.join(METRICS_FILE));

    let best = load_model(&dir, Which::Best).unwrap_or_else(|e| panic!("{e}"));
    let last = load_model(&dir, Which::Last).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((best.dim, last.dim), (2, 2));
    assert_eq!(best.model.dim(), 2);
    assert_eq!(best.step as u64, summary.best_step);
    assert_eq!(last.step, 90);

    // The reloaded best model reproduces, bit for bit, the validation metrics
    // recorded at the best step and the test metrics of the run.
    let exp = parse_exp(&spec.ron(), &dir);
    let built = exp.build().unwrap();
    let val = built
        .task
        .evaluate(&best.dev, Some(&*best.model), Split::Validation);
    let test = built
        .task
        .evaluate(&best.dev, Some(&*best.model), Split::Test);
    for (k, v) in &val {
        assert_eq!(v.to_bits(), summary.best[k].to_bits(), "val/{k}: {v}");
        assert_json_f64(&m["best"]["metrics"][format!("val/{k}")], *v, k);
    }
    for (k, v) in &test {
        assert_eq!(v.to_bits(), summary.test[k].to_bits(), "test/{k}");
    }
    // Likewise the last model and the last evaluation.
    let val_last = built
        .task
        .evaluate(&last.dev, Some(&*last.model), Split::Validation);
    for (k, v) in &val_last {
        assert_json_f64(&m["last_eval"]["metrics"][format!("val/{k}")], *v, k);
    }

    // Two loads give the same finite scores.
    let x = [0.3, -1.2, 2.0, 0.5, -0.7, 0.0, 10.0, -10.0];
    let s1 = scores(&best, &x);
    let s2 = scores(&load_model(&dir, Which::Best).unwrap(), &x);
    assert_eq!(s1.len(), x.len());
    assert!(s1.iter().all(|v| v.is_finite()), "{s1:?}");
    assert!(s1.iter().zip(&s2).all(|(a, b)| a.to_bits() == b.to_bits()));
    if summary.best_step == 90 {
        assert_eq!(s1, scores(&last, &x));
    } else {
        assert_ne!(
            s1,
            scores(&last, &x),
            "best and last differ in step but not scores"
        );
    }

    // A checkpoint of a model with another hidden width is refused, naming
    // the parameter.
    let other = common::model(r#"{"mlp_score": (hidden: [8])}"#, 2, 0);
    let meta: std::collections::HashMap<String, String> = [("step", "0"), ("dim", "2")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    checkpoint::save(&dir.join(BEST_CHECKPOINT), &*other, None, meta.clone()).unwrap();
    let err = match load_model(&dir, Which::Best) {
        Ok(_) => panic!("a checkpoint with hidden width 8 loaded into a width-16 model"),
        Err(e) => e,
    };
    assert!(matches!(err, LoadError::Checkpoint(_)), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("score_net.layers.0.weight") && msg.contains("shape"),
        "{msg}"
    );
    assert!(msg.contains(BEST_CHECKPOINT), "{msg}");

    // One of another model (parameters named `energy_net.…`) names the
    // missing parameter.
    let energy = common::model(r#"{"mlp_energy": (hidden: [16])}"#, 2, 0);
    checkpoint::save(&dir.join(BEST_CHECKPOINT), &*energy, None, meta).unwrap();
    let msg = match load_model(&dir, Which::Best) {
        Ok(_) => panic!("an mlp_energy checkpoint loaded into mlp_score"),
        Err(e) => e.to_string(),
    };
    assert!(
        msg.contains("score_net.layers.0.weight") && msg.contains("missing"),
        "{msg}"
    );
    // The last checkpoint is untouched and still loads.
    load_model(&dir, Which::Last).unwrap();
}

#[test]
fn patience_stops_training_early_and_still_tests_the_best_model() {
    let tmp = tempfile::tempdir().unwrap();
    // A learning rate so small that the validation loss never improves after
    // the first evaluation: patience 50 must stop the run at step 100.
    let spec = ExpSpec {
        optimizer: "Sgd(lr: 1e-300)".into(),
        ..ExpSpec::default()
    };
    let text = spec.ron().replace(
        "    eval_every: 50,\n",
        "    eval_every: 50,\n    patience: Some(50),\n",
    );
    assert!(text.contains("patience"));
    let path = write_file(tmp.path(), "p.ron", &text);
    let opts = RunOptions {
        logs_root: tmp.path().to_path_buf(),
        run_dir: Some(tmp.path().join("run")),
        progress: false,
        stop_after: None,
    };
    let summary = slicedscore::train::run_file(&path, &opts).expect("run finishes");
    assert_eq!(
        summary.steps, 100,
        "stopped at the first evaluation past patience"
    );
    assert_eq!(summary.best_step, 50);
    let m = read_json(&tmp.path().join("run").join(METRICS_FILE));
    assert_eq!(m["status"], "finished", "{m:#}");
    assert_eq!(m["stopped_early_at"], 100, "{m:#}");
    assert_eq!(m["history"].as_array().unwrap().len(), 2);
    assert!(m["test"]["metrics"]["test/sm_loss"].is_number());
}

#[test]
fn report_summarises_finished_runs_without_training() {
    let tmp = tempfile::tempdir().unwrap();
    let exp_dir = tmp.path().join("itest");
    std::fs::create_dir_all(&exp_dir).unwrap();
    let mut values = Vec::new();
    for seed in [0, 1] {
        let spec = ExpSpec {
            seed,
            iterations: 50,
            eval_every: 25,
            ..ExpSpec::default()
        };
        let (_, s) = finished(&spec, &exp_dir, &format!("run{seed}"));
        values.push(s.test["sm_loss"]);
    }
    let report = slicedscore::sweep::report_runs(
        std::slice::from_ref(&exp_dir),
        &Some(vec!["sm_loss".into()]),
    )
    .unwrap();
    assert_eq!(report.rows.len(), 1);
    let row = &report.rows[0];
    assert_eq!(row.finished(), 2);
    assert_eq!(report.seeds, vec![0, 1]);
    let cell = row.cells["test/sm_loss"];
    assert_eq!(cell.n, 2);
    assert!((cell.mean - (values[0] + values[1]) / 2.0).abs() < 1e-12);
    assert!(report.table().contains("ssm_vr"));
    // A folder without runs is an error, not an empty table.
    assert!(slicedscore::sweep::report_runs(&[tmp.path().join("none")], &None).is_err());

    // A misspelt metric is refused with the names that exist.
    let err = slicedscore::sweep::report_runs(
        std::slice::from_ref(&exp_dir),
        &Some(vec!["sm_los".into()]),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("test/sm_los") && err.contains("test/sm_loss,"),
        "{err}"
    );

    // A damaged metrics.json marks that run failed; the other still counts.
    std::fs::write(exp_dir.join("run1").join(METRICS_FILE), "{ damaged").unwrap();
    let report =
        slicedscore::sweep::report_runs(&[exp_dir], &Some(vec!["sm_loss".into()])).unwrap();
    let row = &report.rows[0];
    assert_eq!((row.finished(), row.runs.len()), (1, 2));
    let bad = row.runs.iter().find(|r| !r.ok()).unwrap();
    assert_eq!(bad.seed, 1);
    assert!(
        bad.error.as_ref().unwrap().contains("unreadable"),
        "{bad:?}"
    );
    assert_eq!(row.cells["test/sm_loss"].n, 1);
}
