//! `selection: LogLikelihood`: a flow's best checkpoint is the evaluation
//! of highest validation log-likelihood (not lowest SM loss), the run
//! records and `report` prints which metric chose it, a resumed run keeps
//! the rule, a model without a log-likelihood is refused by field, and the
//! clamp-study experiment files build with it.

mod common;

use std::path::Path;

use common::read_json;
use slicedscore::experiment::Experiment;
use slicedscore::train::{resume, train, RunOptions};

fn experiment(selection: &str, model: &str, iterations: usize) -> String {
    format!(
        r#"Experiment(
    name: "sel",
    seed: 0,
    task: {{"images": (source: Digits, sm_eval_points: 20, samples: 0, logit_map: Squeeze)}},
    model: {model},
    objective: {{"ssm_vr": ()}},
    projection: {{"rademacher": ()}},
    optimizer: Adam(lr: 0.003),
    batch_size: 32,
    iterations: {iterations},
    eval_every: 10,
    sampling: (chains: 0),
    {selection}
)"#
    )
}

const NICE: &str = r#"{"nice": (couplings: 2, hidden_layers: 1, hidden_units: 16)}"#;

fn run(text: &str, dir: &Path, opts: RunOptions) -> serde_json::Value {
    let path = dir.join("e.ron");
    std::fs::write(&path, text).unwrap();
    let exp = Experiment::parse(text, &path).unwrap();
    let built = exp.build().unwrap_or_else(|e| panic!("{e}"));
    let run_dir = opts.run_dir.clone().unwrap();
    match train(&exp, text, built, &opts) {
        Ok(_) => {}
        Err(slicedscore::train::TrainError::Interrupted { .. }) => {
            resume(
                &run_dir,
                &RunOptions {
                    progress: false,
                    ..RunOptions::default()
                },
            )
            .unwrap_or_else(|e| panic!("resume: {e}"));
        }
        Err(e) => panic!("{e}"),
    }
    read_json(&run_dir.join("metrics.json"))
}

/// The step of the best value of `metric` in the record's history.
fn best_in_history(m: &serde_json::Value, metric: &str, higher: bool) -> u64 {
    let hist = m["history"].as_array().unwrap();
    let key = |h: &serde_json::Value| h[metric].as_f64().unwrap();
    let mut best = &hist[0];
    for h in hist {
        if (higher && key(h) > key(best)) || (!higher && key(h) < key(best)) {
            best = h;
        }
    }
    best["step"].as_u64().unwrap()
}

#[test]
fn log_likelihood_selects_the_highest_validation_likelihood_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let text = experiment("selection: LogLikelihood,", NICE, 60);
    let opts = |name: &str, stop: Option<u64>| RunOptions {
        run_dir: Some(dir.path().join(name)),
        progress: false,
        stop_after: stop,
        ..RunOptions::default()
    };
    let m = run(&text, dir.path(), opts("ll", None));
    assert_eq!(m["selection_metric"], "val/log_likelihood");
    let best = m["best"]["step"].as_u64().unwrap();
    assert_eq!(best, best_in_history(&m, "val/log_likelihood", true));
    // Stopped at step 30 and resumed: the same record, the same choice.
    let r = run(&text, dir.path(), opts("resumed", Some(30)));
    assert_eq!(r["selection_metric"], "val/log_likelihood");
    assert_eq!(r["best"]["step"], m["best"]["step"]);
    assert_eq!(r["test"], m["test"]);
    // The default selects by the task's SM loss, lowest first.
    let d = run(&experiment("", NICE, 60), dir.path(), opts("sm", None));
    assert_eq!(d["selection_metric"], "val/sm_loss");
    assert_eq!(
        d["best"]["step"].as_u64().unwrap(),
        best_in_history(&d, "val/sm_loss", false)
    );
    // `report` says which metric chose each row's checkpoint.
    let report = slicedscore::sweep::collect::report_runs(
        &[dir.path().join("ll"), dir.path().join("sm")],
        &None,
    )
    .unwrap();
    let table = report.table();
    assert!(
        table.contains("best checkpoints selected by:")
            && table.contains("val/log_likelihood")
            && table.contains("val/sm_loss"),
        "{table}"
    );
    let one = slicedscore::sweep::collect::report_runs(&[dir.path().join("ll")], &None).unwrap();
    assert!(
        one.table()
            .contains("best checkpoints selected by val/log_likelihood\n"),
        "{}",
        one.table()
    );
}

#[test]
fn a_model_without_a_log_likelihood_is_refused_by_the_selection_field() {
    for model in [
        r#"{"mlp_score": (hidden: [8])}"#,
        r#"{"mlp_energy": (hidden: [8], activation: Softplus)}"#,
    ] {
        let text = experiment("selection: LogLikelihood,", model, 10);
        let exp = Experiment::parse(&text, Path::new("x.ron")).unwrap();
        let e = exp.build().err().expect("refused");
        assert_eq!(e.field, "selection", "{e}");
        assert!(e.to_string().contains("LogLikelihood"), "{e}");
    }
    // A typo is refused when parsing.
    let text = experiment("selection: Likelihood,", NICE, 10);
    let e = Experiment::parse(&text, Path::new("x.ron")).unwrap_err();
    assert!(e.to_string().contains("Likelihood"), "{e}");
    // The default is written back without the setting.
    let exp = Experiment::parse(&experiment("", NICE, 10), Path::new("x.ron")).unwrap();
    assert!(!exp.to_ron().contains("selection"));
    let exp = Experiment::parse(
        &text.replace("Likelihood,", "LogLikelihood,"),
        Path::new("x.ron"),
    )
    .unwrap();
    assert!(exp.to_ron().contains("selection: LogLikelihood"));
}

#[test]
fn the_clamp_study_files_build_and_select_by_likelihood() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/clamp_study");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let exp = Experiment::load(&path).unwrap_or_else(|e| panic!("{e}"));
        let built = exp
            .build()
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(
            built.selection.metric,
            "log_likelihood",
            "{}",
            path.display()
        );
        assert!(built.selection.higher_is_better);
        count += 1;
    }
    assert!(count >= 12, "{count} files");
}
