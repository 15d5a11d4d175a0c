//! Data paths in experiment files resolve against the experiment file's
//! folder, not the working directory.
//!
//! Data flow: [`Experiment::parse`](crate::experiment::Experiment::parse)
//! runs the RON parser inside [`with_base_dir`], which makes the folder of
//! the file being read the base for this thread until the parse returns.
//! Every data path a plugin's settings hold is deserialized through
//! [`deserialize`] (or [`deserialize_opt`]), and every default data path goes
//! through [`resolve`]: a relative path is joined onto the base, so the
//! settings hold absolute paths from then on. Tasks open those paths, error
//! messages show them, and [`Experiment::to_ron`](crate::experiment::Experiment::to_ron)
//! writes them back, so a typed copy of an experiment (the one a sweep puts
//! in its run folders) finds the data from any working directory.
//!
//! A normal run's folder keeps the experiment file *as given* (relative
//! paths included); the run records the experiment's folder in its
//! `data.json` ([`crate::run_data`]), and reloading a run parses the copy
//! with that folder as the base ([`crate::run_loader::load_experiment`]).
//!
//! Outside [`with_base_dir`] (settings parsed on their own, as unit tests
//! do) there is no base and a relative path stays relative to the working
//! directory.

use std::cell::RefCell;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Deserializer};

thread_local! {
    static BASE: RefCell<Option<PathBuf>> = const { RefCell::new(None) };
}

/// Restores the previous base when a [`with_base_dir`] scope ends (also on
/// a panic inside it).
struct Restore(Option<PathBuf>);

impl Drop for Restore {
    fn drop(&mut self) {
        let previous = self.0.take();
        BASE.with(|b| *b.borrow_mut() = previous);
    }
}

/// Runs `f` with `base` as the folder that relative data paths resolve
/// against on this thread (`None`: the working directory). Scopes nest.
pub fn with_base_dir<T>(base: Option<&Path>, f: impl FnOnce() -> T) -> T {
    let previous = BASE.with(|b| b.replace(base.map(Path::to_path_buf)));
    let _restore = Restore(previous);
    f()
}

/// The current base folder, if a [`with_base_dir`] scope set one.
pub fn base_dir() -> Option<PathBuf> {
    BASE.with(|b| b.borrow().clone())
}

/// `path` resolved against the current base folder: an absolute path is
/// kept, a relative one is joined onto the base (and stays as it is without
/// a base). `.` components are dropped; `..` are kept (they mean what the
/// file system says through symbolic links).
pub fn resolve(path: PathBuf) -> PathBuf {
    if path.is_absolute() {
        return tidy(&path);
    }
    match base_dir() {
        Some(base) => tidy(&base.join(path)),
        None => path,
    }
}

/// `path` without `.` components.
fn tidy(path: &Path) -> PathBuf {
    path.components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect()
}

/// The absolute form of `folder` (the working directory for an empty path),
/// as used for an experiment file's base folder; `None` if the working
/// directory cannot be read.
pub fn absolute_folder(folder: &Path) -> Option<PathBuf> {
    let folder = if folder.as_os_str().is_empty() {
        Path::new(".")
    } else {
        folder
    };
    std::path::absolute(folder).ok().map(|p| tidy(&p))
}

/// Deserializes a data path and [`resolve`]s it (for
/// `#[serde(deserialize_with = "crate::data_path::deserialize")]`).
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<PathBuf, D::Error> {
    PathBuf::deserialize(d).map(resolve)
}

/// Deserializes an optional data path and [`resolve`]s it.
pub fn deserialize_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PathBuf>, D::Error> {
    Option::<PathBuf>::deserialize(d).map(|p| p.map(resolve))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_join_the_base_and_scopes_nest() {
        assert_eq!(resolve("a/b.csv".into()), PathBuf::from("a/b.csv"));
        with_base_dir(Some(Path::new("/x/exps")), || {
            assert_eq!(
                resolve("./data/b.csv".into()),
                PathBuf::from("/x/exps/data/b.csv")
            );
            assert_eq!(resolve("../data".into()), PathBuf::from("/x/exps/../data"));
            assert_eq!(resolve("/abs/c".into()), PathBuf::from("/abs/c"));
            with_base_dir(None, || {
                assert_eq!(resolve("d".into()), PathBuf::from("d"));
            });
            assert_eq!(resolve("d".into()), PathBuf::from("/x/exps/d"));
        });
        assert_eq!(base_dir(), None);
        let r = std::panic::catch_unwind(|| with_base_dir(Some(Path::new("/y")), || panic!()));
        assert!(r.is_err());
        assert_eq!(
            base_dir(),
            None,
            "a panic inside the scope restores the base"
        );
    }

    #[test]
    fn absolute_folder_of_an_empty_parent_is_the_working_directory() {
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(absolute_folder(Path::new("")), Some(cwd.clone()));
        assert_eq!(absolute_folder(Path::new("sub")), Some(cwd.join("sub")));
    }
}
