//! `slicedscore evaluate`: a run's checkpoint evaluated on a split gives
//! the numbers the run itself recorded, and a folder without a run is an
//! error naming it.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{run_binary, s, success_stdout, text, train_file, write_file, ExpSpec};

/// `prefix/name = value` lines of the command's output.
fn printed(stdout: &str) -> BTreeMap<String, f64> {
    stdout
        .lines()
        .filter_map(|l| l.split_once(" = "))
        .map(|(k, v)| (k.to_string(), v.parse().expect("a number")))
        .collect()
}

/// Every recorded metric (bare names) printed as `prefix/name`, equal.
fn assert_same(
    printed: &BTreeMap<String, f64>,
    recorded: &BTreeMap<String, f64>,
    prefix: &str,
    what: &str,
) {
    let mut compared = 0;
    for (name, value) in recorded {
        if name.contains("langevin") {
            continue; // the sampling metrics are the loop's, not the task's
        }
        let got = printed
            .get(&format!("{prefix}/{name}"))
            .unwrap_or_else(|| panic!("{what}: {name} not printed: {printed:?}"));
        assert!(
            (got - value).abs() <= 1e-6 * value.abs().max(1.0),
            "{what}: {name} = {got}, the run recorded {value}"
        );
        compared += 1;
    }
    assert!(compared >= 2, "{what}: only {compared} metrics compared");
}

#[test]
fn a_checkpoint_evaluates_to_what_the_run_recorded() {
    let tmp = tempfile::tempdir().unwrap();
    let file = write_file(
        tmp.path(),
        "exp.ron",
        &ExpSpec {
            name: "evaluate_cli".into(),
            iterations: 60,
            eval_every: 20,
            ..ExpSpec::default()
        }
        .ron(),
    );
    let run_dir = tmp.path().join("run");
    let summary = train_file(&file, &run_dir);

    let args = ["evaluate", "--run", s(&run_dir)];
    let out = success_stdout(&args, &run_binary(&args));
    assert!(
        out.contains(&format!("(step {})", summary.best_step)),
        "{out}"
    );
    assert_same(&printed(&out), &summary.test, "test", "best on test");

    let args = ["evaluate", "--run", s(&run_dir), "--split", "val"];
    let out = success_stdout(&args, &run_binary(&args));
    assert_same(&printed(&out), &summary.best, "val", "best on validation");
}

#[test]
fn a_folder_without_a_run_is_an_error_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("no_run_here");
    std::fs::create_dir(&missing).unwrap();
    let out = run_binary(&["evaluate", "--run", s(&missing)]);
    let e = text(&out.stderr);
    assert!(!out.status.success(), "{e}");
    assert!(!e.contains("panicked"), "{e}");
    assert!(e.contains(s(Path::new("no_run_here"))), "{e}");
}
