//! # slicedscore
//!
//! Score matching in Rust: learn unnormalized densities and the score
//! `∇ₓ log p(x)` of data, built around sliced score matching (SSM).
//!
//! How a run flows through the crate:
//!
//! 1. [`experiment`] reads a RON file naming a task, model, objective and
//!    projection; [`registry`] finds each plugin by name and lets it parse its
//!    settings, and `build` turns settings into runtime objects.
//! 2. [`train`] loops: the [`task::Task`] gives a batch, the
//!    [`objective::Objective`] builds a loss on an [`autodiff::Graph`] from the
//!    [`model::ScoreModel`]'s directional terms (second derivatives by
//!    forward-mode [`autodiff::jet`]s), one backward pass gives ∇θ, and the
//!    optimizer steps.
//! 3. Every evaluation interval the task's metrics go to the [`logging`]
//!    sinks (TensorBoard events, `metrics.json`) and checkpoints are written
//!    atomically; [`sampling`] adds Langevin samples-vs-data metrics and
//!    pictures. The run folder's `data.json` ([`run_data`]) records how the
//!    data's own units map to the model's coordinates ([`data_map`]).
//!
//! 4. Around runs: [`sweep`] repeats experiments over seeds and tabulates
//!    them (here, or as a Slurm job array; or reads finished runs), [`mod@bench`] measures cost against the
//!    dimension, [`run_loader`] reloads a trained model, and [`targets`]
//!    provides densities with closed-form scores for tasks and tests.
//!
//! The core (everything in `src/`) names no plugin; the plugins
//! (`plugins/`, compiled as [`plugins`]) register themselves.

pub mod ais;
pub mod atomic_file;
pub mod autodiff;
pub mod bench;
pub mod budget;
pub mod cli;
pub mod closed_form;
pub mod compute;
pub mod data_map;
pub mod data_path;
pub mod device;
pub mod error;
pub mod experiment;
pub mod format;
pub mod image_data;
pub mod kernels;
pub mod linalg;
pub mod logging;
pub mod model;
pub mod nn;
pub mod objective;
pub mod plot;
pub mod points_csv;
pub mod projection;
pub mod registry;
pub mod run_data;
pub mod run_loader;
pub mod sampling;
pub mod sweep;
pub mod targets;
pub mod task;
pub mod train;

#[path = "../plugins/mod.rs"]
pub mod plugins;

/// What [`register_plugin!`] expands to needs, re-exported so a plugin crate
/// depends on `slicedscore` alone. Not public API.
#[doc(hidden)]
pub mod __private {
    pub use erased_serde;
    pub use inventory;
}
