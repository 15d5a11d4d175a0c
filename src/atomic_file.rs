//! Crash-safe file replacement.
//!
//! [`write_atomic`] writes the new contents to a temporary file next to the
//! target, fsyncs it and renames it over the target. Readers therefore see
//! either the complete old file or the complete new one, never a mix, even if
//! the process dies half-way through the write. A temporary file left by a
//! process that was killed mid-write is removed by the next write of the
//! same file.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// Distinguishes temporary files made by concurrent calls within one process.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Atomically replace the file at `path` with `bytes`.
///
/// The data goes to a uniquely named temporary file
/// (`.{name}.tmp.{pid}.{counter}`) in the same directory, which is fsynced
/// and then renamed over `path`; finally the directory is fsynced (best
/// effort, errors there are ignored) so the rename itself survives a crash.
///
/// On error the previous contents of `path` are untouched and the temporary
/// file is removed. The parent directory must already exist. The new file
/// gets default permissions; those of a replaced file are not carried over.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} does not name a file", path.display()),
        )
    })?;
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    remove_stale_temps(dir, name);
    let counter = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(name);
    temp_name.push(format!(".tmp.{}.{}", std::process::id(), counter));
    let temp = dir.join(temp_name);

    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&temp)?;
    let result = write_and_rename(&mut file, &temp, path, bytes);
    drop(file);
    match result {
        Ok(()) => {
            sync_dir(dir);
            Ok(())
        }
        Err(err) => {
            // Best effort: the temporary file may already be gone.
            let _ = fs::remove_file(&temp);
            Err(err)
        }
    }
}

/// Removes `.{name}.tmp.{pid}.{k}` files in `dir` whose process is gone
/// (on Linux, where `/proc/{pid}` tells; elsewhere those of other
/// processes are left alone).
fn remove_stale_temps(dir: &Path, name: &std::ffi::OsStr) {
    let prefix = format!(".{}.tmp.", name.to_string_lossy());
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let file = e.file_name();
        let file = file.to_string_lossy();
        let Some(rest) = file.strip_prefix(&prefix) else {
            continue;
        };
        let Some(pid) = rest.split('.').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        let gone = pid != std::process::id()
            && Path::new("/proc/self").exists()
            && !Path::new(&format!("/proc/{pid}")).exists();
        if gone {
            let _ = fs::remove_file(e.path());
        }
    }
}

/// Write, fsync and move the temporary file into place.
fn write_and_rename(file: &mut File, temp: &Path, path: &Path, bytes: &[u8]) -> io::Result<()> {
    file.write_all(bytes)?;
    file.sync_all()?;
    fs::rename(temp, path)
}

/// Fsync a directory so a rename inside it is durable; errors are ignored
/// because not every platform or file system supports it.
fn sync_dir(dir: &Path) {
    if let Ok(handle) = File::open(dir) {
        let _ = handle.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_and_replaces_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.json");
        write_atomic(&path, b"old contents, longer than the new ones").unwrap();
        assert_eq!(
            fs::read(&path).unwrap(),
            b"old contents, longer than the new ones"
        );
        write_atomic(&path, b"new").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("data.json")]);
    }

    #[test]
    fn missing_directory_fails_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing").join("data.json");
        assert!(write_atomic(&path, b"x").is_err());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn failed_rename_keeps_old_target_and_removes_temp() {
        // Renaming a file over a non-empty directory fails on every platform.
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        fs::create_dir(&target).unwrap();
        fs::write(target.join("keep"), b"old").unwrap();
        assert!(write_atomic(&target, b"new").is_err());
        assert_eq!(fs::read(target.join("keep")).unwrap(), b"old");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("target")]);
    }

    #[test]
    fn a_dead_writers_temporary_file_is_removed_by_the_next_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.json");
        // A pid above the kernel's maximum (2²²) belongs to no process.
        let stale = dir.path().join(".metrics.json.tmp.4194305.0");
        fs::write(&stale, b"half").unwrap();
        let other = dir.path().join(".other.json.tmp.4194305.0");
        fs::write(&other, b"not ours").unwrap();
        write_atomic(&path, b"{}").unwrap();
        if Path::new("/proc/self").exists() {
            assert!(!stale.exists());
        }
        assert!(
            other.exists(),
            "only temporaries of the written file are touched"
        );
    }

    #[test]
    fn rejects_path_without_file_name() {
        let err = write_atomic(Path::new("/"), b"x").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }
}
