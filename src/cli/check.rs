//! `slicedscore check FILE…` and `slicedscore list`: what the files and the
//! registry hold, without training.

use std::path::PathBuf;

use clap::Args;

use crate::experiment::Experiment;
use crate::nn::module::num_trainable;
use crate::registry::{ComponentKind, ModelConfig, ObjectiveConfig, ProjectionConfig, TaskConfig};

/// Arguments of `check`.
#[derive(Args)]
pub struct CheckArgs {
    /// The experiment files.
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

/// Parses and builds every file, printing one line each; stops at the first error.
pub fn check(a: CheckArgs) -> anyhow::Result<()> {
    for f in a.files {
        let exp = Experiment::load(&f)?;
        let built = exp
            .build()
            .map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))?;
        println!(
            "{}: ok ({}; model {} with {} parameters; objective {}; projection {}; {})",
            f.display(),
            built.task.describe(),
            exp.model_name(),
            built.model.scorer().map_or(0, num_trainable) + num_trainable(&*built.task),
            exp.objective_name(),
            exp.projection_name(),
            built.dev.name()
        );
    }
    Ok(())
}

fn list_kind<C: ?Sized + ComponentKind>(out: &mut String) {
    out.push_str(&format!("{}s:\n", C::KIND));
    // Plugins from other crates say where they come from.
    let core = module_path!().split("::").next().unwrap_or_default();
    for p in C::plugins() {
        let from = p.registered_at.krate();
        let origin = if from == core {
            String::new()
        } else {
            format!(" [crate {from}]")
        };
        out.push_str(&format!("  {:<12} {}{origin}\n", p.name, p.summary));
        out.push_str(&format!(
            "  {:<12} e.g. {{\"{}\": {}}}\n",
            "", p.name, p.example
        ));
    }
}

/// Prints every registered component with its summary and example settings.
pub fn list() -> anyhow::Result<()> {
    let mut out = String::new();
    list_kind::<dyn TaskConfig>(&mut out);
    list_kind::<dyn ModelConfig>(&mut out);
    list_kind::<dyn ObjectiveConfig>(&mut out);
    list_kind::<dyn ProjectionConfig>(&mut out);
    print!("{out}");
    Ok(())
}
