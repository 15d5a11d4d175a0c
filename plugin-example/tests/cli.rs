//! This crate's binary (`fd-ssm`, three lines over `slicedscore::cli::main`)
//! has every command of `slicedscore` and knows the plugin: `list` shows
//! `fd_ssm` (and where it comes from) next to the core's plugins, `check`
//! accepts the shipped experiments, `run` trains `fd_ssm` from a RON file,
//! and `sweep` compares it with `ssm_vr` in one table. The shipped files are
//! run at a smaller size (fewer, larger steps, a smaller network and data
//! set).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The package root (where `experiments/` is).
fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs the binary with `args`; expects success and returns stdout.
fn ok(args: &[&str]) -> String {
    let out: Output = Command::new(env!("CARGO_BIN_EXE_fd-ssm"))
        .args(args)
        .current_dir(root())
        .env_remove("RUST_LOG")
        .output()
        .expect("the fd-ssm binary starts");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(
        out.status.success(),
        "fd-ssm {args:?} failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    stdout
}

fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// A shipped experiment shrunk to test size, written into `dir`.
fn small(dir: &Path, file: &str) -> PathBuf {
    let text = std::fs::read_to_string(root().join("experiments").join(file)).unwrap();
    let mut small = text.clone();
    for (from, to) in [
        ("train_size: 20000", "train_size: 1000"),
        ("val_size: 1000", "val_size: 200"),
        ("test_size: 5000", "test_size: 200"),
        ("hidden: [128, 128]", "hidden: [16, 16]"),
        ("lr: 0.001", "lr: 0.01"),
        ("iterations: 6000", "iterations: 150"),
        ("eval_every: 500", "eval_every: 75"),
    ] {
        assert!(small.contains(from), "{file} no longer says `{from}`");
        small = small.replace(from, to);
    }
    let path = dir.join(file);
    std::fs::write(&path, small).unwrap();
    path
}

#[test]
fn list_shows_the_plugin_beside_the_core_ones() {
    let out = ok(&["list"]);
    let line = out
        .lines()
        .find(|l| l.trim_start().starts_with("fd_ssm "))
        .unwrap_or_else(|| panic!("fd_ssm not listed:\n{out}"));
    assert!(line.contains("finite-difference SSM"), "{line}");
    assert!(line.contains("[crate slicedscore_fd_ssm]"), "{line}");
    assert!(
        out.contains(r#"e.g. {"fd_ssm": (eps: 0.05, projections: 1)}"#),
        "{out}"
    );
    // The core's plugins are all still there, without a crate note.
    let ssm_vr = out
        .lines()
        .find(|l| l.trim_start().starts_with("ssm_vr "))
        .unwrap_or_else(|| panic!("ssm_vr not listed:\n{out}"));
    assert!(!ssm_vr.contains("[crate"), "{ssm_vr}");
}

#[test]
fn check_accepts_the_shipped_experiments() {
    for file in ["mog2d_fd_ssm_energy.ron", "mog2d_ssm_vr_energy.ron"] {
        let path = root().join("experiments").join(file);
        let out = ok(&["check", s(&path)]);
        assert!(out.contains(": ok ("), "{out}");
    }
}

#[test]
fn run_trains_fd_ssm_from_a_ron_file() {
    let tmp = tempfile::tempdir().unwrap();
    let file = small(tmp.path(), "mog2d_fd_ssm_energy.ron");
    let run = tmp.path().join("run");
    let out = ok(&["run", s(&file), "--run-dir", s(&run), "--no-progress"]);
    assert!(out.contains("test/relative_fisher_divergence = "), "{out}");
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(record["status"], "finished", "{record}");
    assert_eq!(record["objective"], "fd_ssm", "{record}");
    let history = record["history"].as_array().unwrap();
    assert_eq!(history.len(), 2, "{record}");
    let fisher = record["test"]["metrics"]["test/relative_fisher_divergence"]
        .as_f64()
        .unwrap();
    assert!(fisher.is_finite() && fisher > 0.0, "{record}");
}

#[test]
fn sweep_compares_fd_ssm_with_ssm_vr() {
    let tmp = tempfile::tempdir().unwrap();
    let fd = small(tmp.path(), "mog2d_fd_ssm_energy.ron");
    let vr = small(tmp.path(), "mog2d_ssm_vr_energy.ron");
    let logs = tmp.path().join("logs");
    let out = ok(&[
        "sweep",
        s(&fd),
        s(&vr),
        "--seeds",
        "0,1",
        "--logs",
        s(&logs),
        "--no-progress",
        "--metrics",
        "relative_fisher_divergence,train/seconds_per_iteration",
    ]);
    let row = |objective: &str| {
        out.lines()
            .find(|l| l.starts_with(objective))
            .unwrap_or_else(|| panic!("no {objective} row:\n{out}"))
            .to_string()
    };
    let (fd_row, vr_row) = (row("fd_ssm"), row("ssm_vr"));
    assert_ne!(fd_row, vr_row);
    assert!(out.contains("relative_fisher_divergence"), "{out}");
    // Two seeds each, so every cell is a mean ± standard error.
    assert!(fd_row.contains('±') && vr_row.contains('±'), "{out}");
    let summary = out
        .lines()
        .find_map(|l| l.strip_prefix("summary: "))
        .unwrap_or_else(|| panic!("no summary line:\n{out}"));
    assert!(Path::new(summary).join("summary.json").is_file(), "{out}");
}

/// With this crate's binary in the workspace, a bare `cargo run` (the
/// README's first command) would not know which binary to run unless the
/// root package names its own.
#[test]
fn the_root_package_keeps_cargo_run_unambiguous() {
    let manifest = std::fs::read_to_string(root().join("../Cargo.toml")).unwrap();
    let package = manifest
        .split("\n[")
        .find(|section| section.starts_with("[package]"))
        .expect("[package] section");
    assert!(
        package
            .lines()
            .any(|l| l.trim() == r#"default-run = "slicedscore""#),
        "the root [package] must say default-run = \"slicedscore\":\n{package}"
    );
}
