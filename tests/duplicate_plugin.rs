//! A plugin name registered twice: this test crate registers a second
//! objective called `ssm` (the core's plugins already have one). The
//! registry check, parsing a component and the command line must all refuse
//! to go on, naming both registrations (crate, file and line), instead of
//! picking one of them silently.

use serde::{Deserialize, Serialize};
use slicedscore::error::ConfigError;
use slicedscore::objective::Objective;
use slicedscore::registry::{check_unique, Component, ObjectiveConfig};

/// Settings of the impostor (never built: the duplicate stops everything first).
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ImpostorConfig {}

impl ObjectiveConfig for ImpostorConfig {
    fn build(&self) -> Result<Box<dyn Objective>, ConfigError> {
        Err(ConfigError::new("", "the impostor is never built"))
    }
}

/// The line of the registration below.
const IMPOSTOR_LINE: u32 = line!() + 1;
slicedscore::register_plugin!(
    ObjectiveConfig,
    "ssm",
    "a second `ssm`, registered by a test",
    "()",
    ImpostorConfig
);

fn assert_names_both(text: &str) {
    assert!(
        text.contains("objective `ssm` is registered twice"),
        "{text}"
    );
    // The core's registration …
    assert!(
        text.contains("crate `slicedscore` at plugins/objectives/ssm.rs:"),
        "{text}"
    );
    // … and this one, with its line.
    assert!(
        text.contains(&format!(
            "crate `duplicate_plugin` at tests/duplicate_plugin.rs:{IMPOSTOR_LINE}"
        )),
        "{text}"
    );
}

#[test]
fn the_registry_check_names_both_registrations() {
    let err = check_unique().unwrap_err();
    assert_eq!(err.0.len(), 1, "only `ssm` is duplicated: {err}");
    assert_names_both(&err.to_string());
}

#[test]
fn parsing_any_component_reports_the_duplicate() {
    // Not only the duplicated name: the registry is unusable until fixed.
    let err = ron::from_str::<Component<dyn ObjectiveConfig>>(r#"{"ssm_vr": ()}"#)
        .expect_err("a duplicate name must stop parsing");
    assert_names_both(&err.to_string());
    let text = r#"(name: "t", task: {"synthetic": (target: Gaussian(dim: 2))},
        model: {"mlp_score": (hidden: [4])}, objective: {"ssm": ()}, projection: {"rademacher": ()},
        optimizer: Adam(lr: 0.001), batch_size: 8, iterations: 1, eval_every: 1)"#;
    let err = slicedscore::experiment::Experiment::parse(text, std::path::Path::new("t.ron"))
        .expect_err("a duplicate name must stop an experiment");
    let err = err.to_string();
    assert!(err.starts_with("t.ron"), "{err}");
    assert_names_both(&err);
}

#[test]
fn the_command_line_refuses_to_start() {
    let err = slicedscore::cli::run_command(slicedscore::cli::Command::List)
        .expect_err("`list` must fail with a duplicate name");
    assert_names_both(&err.to_string());
}
