//! Every registered component: projections, models, objectives and tasks.
//!
//! Each plugin is one file that defines its settings struct (parsed from the
//! experiment's RON), implements the matching core config trait and the
//! runtime trait, and registers itself with [`crate::register_plugin!`]. The
//! core (`src/`) never names a plugin; plugins never name each other.

pub mod models;
pub mod objectives;
pub mod projections;
pub mod tasks;
