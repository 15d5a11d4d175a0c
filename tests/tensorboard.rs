//! What a run writes for TensorBoard besides curves, read back with the
//! project's own event reader: the experiment file on the text dashboard,
//! and the HParams dashboard's records (session start with the run's
//! settings, session end with its status, the experiment summary whose
//! metric columns are scalar tags of the run), for a finished and a failed
//! run.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use common::{run_options, ExpSpec};
use slicedscore::logging::{
    find_event_files, read_events, Event, HParamValue, HParamsRecord, SessionStatus, ValueKind,
};
use slicedscore::train::hparams::{columns, experiment_markdown, EXPERIMENT_TEXT_TAG};
use slicedscore::train::run_file;

fn events_of(dir: &Path) -> Vec<Event> {
    let files = find_event_files(dir);
    assert_eq!(files.len(), 1, "{files:?}");
    read_events(&files[0]).unwrap_or_else(|e| panic!("{e}"))
}

/// Every hparams record in the file, with its tag and step.
fn hparams_records(events: &[Event]) -> Vec<(String, i64, HParamsRecord)> {
    events
        .iter()
        .flat_map(|e| e.values.iter().map(move |v| (e.step, v)))
        .filter_map(|(step, v)| match &v.kind {
            ValueKind::HParams(r) => Some((v.tag.clone(), step, r.clone())),
            _ => None,
        })
        .collect()
}

fn scalar_tags(events: &[Event]) -> BTreeMap<String, Vec<(i64, f32)>> {
    let mut out: BTreeMap<String, Vec<(i64, f32)>> = BTreeMap::new();
    for e in events {
        for v in &e.values {
            if let ValueKind::Scalar(x) = v.kind {
                out.entry(v.tag.clone()).or_default().push((e.step, x));
            }
        }
    }
    out
}

fn run(spec: &ExpSpec, root: &Path) -> (std::path::PathBuf, bool) {
    let file = spec.write(root, "e.ron");
    let dir = root.join("run");
    let ok = run_file(&file, &run_options(&dir)).is_ok();
    (dir, ok)
}

#[test]
fn a_finished_run_writes_its_file_as_text_and_its_hparams() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = ExpSpec {
        iterations: 40,
        eval_every: 20,
        ..ExpSpec::default()
    };
    let (dir, ok) = run(&spec, tmp.path());
    assert!(ok);
    let events = events_of(&dir);

    // The experiment file, verbatim, as a Markdown code block at step 0.
    let texts: Vec<(i64, &str, &str)> = events
        .iter()
        .flat_map(|e| e.values.iter().map(move |v| (e.step, v)))
        .filter_map(|(step, v)| match &v.kind {
            ValueKind::Text(t) => Some((step, v.tag.as_str(), t.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(texts.len(), 1, "{texts:?}");
    let (step, tag, markdown) = texts[0];
    assert_eq!((step, tag), (0, EXPERIMENT_TEXT_TAG));
    assert_eq!(markdown, experiment_markdown(&spec.ron()));
    let unindented: Vec<&str> = markdown.lines().map(|l| &l[4..]).collect();
    assert_eq!(unindented, spec.ron().lines().collect::<Vec<_>>());

    // Session start, session end, experiment: each once, under its tag.
    let records = hparams_records(&events);
    let tags: Vec<&str> = records.iter().map(|(t, _, _)| t.as_str()).collect();
    assert_eq!(
        tags,
        [
            "_hparams_/session_start_info",
            "_hparams_/session_end_info",
            "_hparams_/experiment"
        ]
    );
    let HParamsRecord::SessionStart { hparams, .. } = &records[0].2 else {
        panic!("{:?}", records[0]);
    };
    let text = |s: &str| HParamValue::Text(s.to_string());
    for (k, v) in [
        ("experiment", text("itest")),
        ("task", text("synthetic")),
        ("model", text("mlp_score")),
        ("model.settings", text("(hidden:[32],activation:Softplus)")),
        ("objective", text("ssm_vr")),
        ("objective.settings", text("(projections:1)")),
        ("projection", text("rademacher")),
        ("projection.settings", text("()")),
        ("lr", HParamValue::Number(0.003)),
        ("batch_size", HParamValue::Number(64.0)),
        ("iterations", HParamValue::Number(40.0)),
        ("seed", HParamValue::Number(0.0)),
        ("data_seed", HParamValue::Number(0.0)),
        ("precision", text("f32")),
        ("device", text("Cpu")),
    ] {
        assert_eq!(hparams.get(k), Some(&v), "{k}: {hparams:?}");
    }
    // Unset options are left out (an empty cell), not written as 0.
    assert!(!hparams.contains_key("grad_clip") && !hparams.contains_key("patience"));
    assert!(
        matches!(&hparams["task.settings"], HParamValue::Text(t) if t.contains("Mixture2d")),
        "{hparams:?}"
    );
    assert!(matches!(
        records[1].2,
        HParamsRecord::SessionEnd {
            status: SessionStatus::Success,
            ..
        }
    ));

    // The experiment summary: the fixed columns (naming every value the
    // session has) and metric columns that are scalar tags of this run.
    let HParamsRecord::Experiment {
        hparams: cols,
        metrics,
    } = &records[2].2
    else {
        panic!("{:?}", records[2]);
    };
    assert_eq!(cols, &columns());
    let names: BTreeSet<&str> = cols.iter().map(|c| c.name.as_str()).collect();
    for k in hparams.keys() {
        assert!(names.contains(k.as_str()), "{k} has no column");
    }
    let scalars = scalar_tags(&events);
    let metric_tags: BTreeSet<&str> = metrics.iter().map(|m| m.tag.as_str()).collect();
    for m in &metric_tags {
        assert!(
            scalars.contains_key(*m),
            "metric {m} is not a scalar tag of the run"
        );
    }
    for want in [
        "test/relative_fisher_divergence",
        "best/val/sm_loss",
        "val/sm_loss",
        "train/loss",
    ] {
        assert!(
            metric_tags.contains(want),
            "{want} missing: {metric_tags:?}"
        );
    }
    // The test and best-validation columns are single values at the best step.
    let record = common::read_json(&dir.join("metrics.json"));
    let best_step = record["best"]["step"].as_i64().unwrap();
    for m in metric_tags
        .iter()
        .filter(|m| m.starts_with("test/") || m.starts_with("best/"))
    {
        let points = &scalars[*m];
        assert_eq!(points.len(), 1, "{m}: {points:?}");
        assert_eq!(points[0].0, best_step, "{m}");
    }
}

#[test]
fn a_failed_run_ends_its_session_as_a_failure() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = ExpSpec::diverging(2);
    let (dir, ok) = run(&spec, tmp.path());
    assert!(!ok, "lr 1e12 should diverge");
    let records = hparams_records(&events_of(&dir));
    let ends: Vec<&HParamsRecord> = records
        .iter()
        .filter(|(t, _, _)| t == "_hparams_/session_end_info")
        .map(|(_, _, r)| r)
        .collect();
    assert!(
        matches!(
            ends.as_slice(),
            [HParamsRecord::SessionEnd {
                status: SessionStatus::Failure,
                ..
            }]
        ),
        "{ends:?}"
    );
    // Its columns are still described (no test metrics: it never tested).
    let experiment = records
        .iter()
        .find_map(|(_, _, r)| match r {
            HParamsRecord::Experiment { metrics, .. } => Some(metrics),
            _ => None,
        })
        .expect("experiment summary");
    assert!(experiment.iter().all(|m| !m.tag.starts_with("test/")));
}
