//! The registry: expected plugins are registered once each, every plugin's
//! example settings parse and build, every experiment file in
//! `experiments/` parses and builds, and unknown names list the known ones.

use std::path::Path;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use slicedscore::device::{Device, Precision};
use slicedscore::experiment::Experiment;
use slicedscore::nn::module::num_trainable;
use slicedscore::registry::BuiltModel;
use slicedscore::registry::{
    names, Component, ComponentKind, ModelConfig, ObjectiveConfig, ProjectionConfig, TaskConfig,
};
use slicedscore::task::Split;

fn no_duplicates<C: ?Sized + ComponentKind>() {
    let n = names::<C>();
    let mut d = n.clone();
    d.dedup();
    assert_eq!(n, d, "duplicate {} names", C::KIND);
}

#[test]
fn expected_plugins_are_registered_once() {
    let has = |all: Vec<&str>, want: &[&str]| {
        for w in want {
            assert!(all.contains(w), "{w} not registered; have {all:?}");
        }
    };
    has(names::<dyn TaskConfig>(), &["synthetic"]);
    has(
        names::<dyn ModelConfig>(),
        &["dkef", "mlp_energy", "mlp_score", "nice"],
    );
    has(
        names::<dyn ObjectiveConfig>(),
        &["dsm", "mle", "sm", "ssm", "ssm_vr"],
    );
    has(
        names::<dyn ProjectionConfig>(),
        &["gaussian", "rademacher", "sphere"],
    );
    no_duplicates::<dyn TaskConfig>();
    no_duplicates::<dyn ModelConfig>();
    no_duplicates::<dyn ObjectiveConfig>();
    no_duplicates::<dyn ProjectionConfig>();
}

fn parse<C: ?Sized + ComponentKind>(name: &str, example: &str) -> Component<C> {
    ron::from_str(&format!("{{\"{name}\": {example}}}"))
        .unwrap_or_else(|e| panic!("{} {name}: example {example} does not parse: {e}", C::KIND))
}

#[test]
fn every_plugin_example_parses_and_builds() {
    let dev = Device::cpu(Precision::F64);
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    for p in <dyn TaskConfig>::plugins() {
        let c = parse::<dyn TaskConfig>(p.name, p.example);
        c.config.build(&dev, &mut rng).unwrap();
    }
    for p in <dyn ModelConfig>::plugins() {
        let c = parse::<dyn ModelConfig>(p.name, p.example);
        match c.config.build(&dev, 3, &mut rng).unwrap() {
            BuiltModel::Trained(m) => {
                assert_eq!(m.dim(), 3);
                assert!(num_trainable(&*m) > 0, "{}", p.name);
            }
            BuiltModel::Fitted(e) => assert_eq!(e.dim(), 3, "{}", p.name),
        }
    }
    for p in <dyn ObjectiveConfig>::plugins() {
        parse::<dyn ObjectiveConfig>(p.name, p.example)
            .config
            .build()
            .unwrap();
    }
    for p in <dyn ProjectionConfig>::plugins() {
        parse::<dyn ProjectionConfig>(p.name, p.example)
            .config
            .build()
            .unwrap();
    }
}

#[test]
fn every_experiment_file_parses_and_builds() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments");
    let mut count = 0;
    let entries = std::fs::read_dir(&dir)
        .unwrap()
        .chain(std::fs::read_dir(dir.join("alpha-trained")).unwrap());
    for entry in entries {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("ron") {
            continue;
        }
        let exp = Experiment::load(&path).unwrap_or_else(|e| panic!("{e}"));
        exp.build()
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        count += 1;
    }
    assert!(
        count >= 9,
        "expected the quickstart and one file per objective, found {count}"
    );
}

#[test]
fn unknown_names_list_the_registered_ones() {
    let err = ron::from_str::<Component<dyn ObjectiveConfig>>(r#"{"ssmvr": ()}"#)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("unknown objective `ssmvr`"), "{err}");
    for n in ["dsm", "sm", "ssm", "ssm_vr"] {
        assert!(err.contains(n), "{err} should list {n}");
    }
    let err = ron::from_str::<Component<dyn ModelConfig>>(r#"{"mlp": ()}"#)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("registered models: dkef, mlp_energy, mlp_score"),
        "{err}"
    );
}

#[test]
fn plugin_settings_errors_keep_their_position() {
    let text = "(\n  name: \"x\",\n  task: {\"synthetic\": (target: Mixture2d(components: 2, radius: 1.0, std: 0.5))},\n  model: {\"mlp_score\": (hiden: [3])},\n)";
    let err = Experiment::parse(text, Path::new("e.ron"))
        .err()
        .unwrap()
        .to_string();
    assert!(err.starts_with("e.ron:4:"), "{err}");
    assert!(err.contains("hiden"), "{err}");
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().and_then(|e| e.to_str()) == Some("rs") {
            out.push(p);
        }
    }
}

/// The design rule "the core knows no plugin": nothing in `src/` refers to
/// the plugins module or names a registered plugin (lib.rs only declares it).
#[test]
fn core_names_no_plugin() {
    let mut files = Vec::new();
    rust_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    let mut plugin_names: Vec<&str> = names::<dyn TaskConfig>();
    plugin_names.extend(names::<dyn ModelConfig>());
    plugin_names.extend(names::<dyn ObjectiveConfig>());
    plugin_names.extend(names::<dyn ProjectionConfig>());
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let is_lib = f.ends_with("src/lib.rs");
        for (i, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            if !is_lib {
                assert!(
                    !code.contains("plugins::"),
                    "{}:{}: core refers to plugins",
                    f.display(),
                    i + 1
                );
            }
            for n in &plugin_names {
                assert!(
                    !code.contains(&format!("\"{n}\"")),
                    "{}:{}: core names plugin {n}",
                    f.display(),
                    i + 1
                );
            }
        }
    }
}

// `data_seed` fixes the task's data while `seed` varies.

const TEXT: &str = r#"(name: "t", seed: SEED, DATA task: {"synthetic": (target: Gaussian(dim: 3), train_size: 50, val_size: 40, test_size: 40)},
    model: {"mlp_score": (hidden: [4])}, objective: {"ssm": ()}, projection: {"rademacher": ()},
    optimizer: Adam(lr: 0.001), batch_size: 8, iterations: 1, eval_every: 1)"#;

fn val_metrics(seed: u64, data_seed: Option<u64>) -> slicedscore::task::Metrics {
    let data = data_seed
        .map(|d| format!("data_seed: Some({d}),"))
        .unwrap_or_default();
    let text = TEXT
        .replace("SEED", &seed.to_string())
        .replace("DATA", &data);
    let exp = Experiment::parse(&text, Path::new("t.ron")).unwrap();
    let built = exp.build().unwrap();
    // The same model (seed 0) judged on each experiment's data.
    let reference = Experiment::parse(
        &TEXT.replace("SEED", "0").replace("DATA", ""),
        Path::new("r.ron"),
    )
    .unwrap();
    let model = reference.build_model(&built.dev, built.task.dim()).unwrap();
    built
        .task
        .evaluate(&built.dev, model.scorer(), Split::Validation)
}

#[test]
fn data_seed_keeps_the_data_while_seed_varies() {
    assert_eq!(val_metrics(1, Some(7)), val_metrics(2, Some(7)));
    assert_ne!(val_metrics(1, None), val_metrics(2, None));
    assert_ne!(val_metrics(1, Some(7)), val_metrics(1, Some(8)));
}

/// Files that cannot be built in CI (CUDA device, data to fetch) still
/// parse, name registered plugins, and fail validation only for the device.
#[test]
fn cuda_and_needs_data_experiment_files_parse() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments");
    let mut count = 0;
    for sub in ["cuda", "needs-data"] {
        // The files of the folder and of its subfolders (one level).
        let mut paths = Vec::new();
        for entry in std::fs::read_dir(root.join(sub)).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                paths.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            } else {
                paths.push(path);
            }
        }
        for path in paths {
            let text = std::fs::read_to_string(&path).unwrap();
            let exp: Experiment =
                ron::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            match exp.validate() {
                Ok(()) => assert_eq!(sub, "needs-data", "{}", path.display()),
                Err(e) => assert!(
                    sub == "cuda" && e.field == "device",
                    "{}: {e}",
                    path.display()
                ),
            }
            count += 1;
        }
    }
    assert!(count >= 16, "found {count} files");
}

#[test]
fn every_experiment_file_serializes_back_to_an_equal_experiment() {
    // A typed experiment writes itself as RON that parses back to the same
    // value (written out again identically), and builds the same way.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments");
    let mut files = Vec::new();
    // (The CUDA files are refused by a CPU build at validation.)
    for dir in [
        root.clone(),
        root.join("needs-data"),
        root.join("needs-data/nice_mnist_squeeze"),
        root.join("alpha-trained"),
    ] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            if e.path().extension().is_some_and(|x| x == "ron") {
                files.push(e.path());
            }
        }
    }
    assert!(files.len() > 20, "experiment files: {}", files.len());
    for path in files {
        let exp = Experiment::load(&path).unwrap_or_else(|e| panic!("{e}"));
        let text = exp.to_ron();
        let again = Experiment::parse(&text, &path)
            .unwrap_or_else(|e| panic!("{}: {e}\n{text}", path.display()));
        assert_eq!(again.to_ron(), text, "{}", path.display());
        assert_eq!(
            format!("{again:?}"),
            format!("{exp:?}"),
            "{}",
            path.display()
        );
    }
}
