//! [`Logger`] that writes TensorBoard event files through `tensorboard-rs`.
//!
//! Data flow: every record becomes one `Summary` (scalars and images from
//! `tensorboard_rs::summary`, text and hparams records from
//! [`super::summaries`]), which `tensorboard_rs`'s `FileWriter` wraps in an
//! event with the step and the wall time and appends to the event file.
//!
//! `tensorboard-rs`'s `FileWriter` (what its `SummaryWriter` wraps) writes
//! from a background thread and reports every failure (directory creation, a non-UTF-8 host
//! name, a failed write in the thread) by panicking, either in the thread or
//! on the next call from ours. [`TensorBoardLogger`] guards against that: it
//! creates and probes the directory itself, runs every writer call under
//! `catch_unwind` and turns a panic into [`LogError::Writer`], after which the
//! logger refuses further records. The panic message is still printed to
//! stderr by the default panic hook.
//!
//! Limits of that guard: a write failure in the background thread is only
//! noticed on a later call, and records sent in between are lost. If the
//! event file cannot even be created and the thread dies within the few
//! microseconds `FileWriter::new` takes, tensorboard-rs panics inside a
//! destructor during unwinding and the process aborts; the writability probe
//! in [`TensorBoardLogger::create`] makes that failure unlikely.
//!
//! Flushing is asynchronous in `tensorboard-rs`: [`Logger::flush`] only asks
//! the background thread to flush. [`TensorBoardLogger::close`] (or dropping
//! the logger) waits for the thread, after which every record is in the file.

use std::any::Any;
use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tensorboard_proto::summary::Summary;
use tensorboard_rs::summary_writer::FileWriter;

use super::hparams::HParamsRecord;
use super::{check_rgb8, summaries, LogError, Logger};

/// Writes scalars, images, text and hparams records to
/// `events.out.tfevents.{secs}.{host}.{pid}.0` in a log directory, readable
/// by stock TensorBoard.
///
/// Scalars are stored as 32-bit `simple_value`s (the `f64` is rounded to
/// `f32`; NaN and infinities pass through). Images are stored as PNG. Text
/// goes to the text dashboard (Markdown), hparams records to the HParams
/// dashboard.
pub struct TensorBoardLogger {
    dir: PathBuf,
    /// `None` once closed or after the writer failed.
    writer: Option<FileWriter>,
    /// The first failure; reported again on every later call.
    failure: Option<String>,
}

impl TensorBoardLogger {
    /// Create `dir` (and its parents) if needed, check that it is writable,
    /// and start a new event file in it.
    ///
    /// `tensorboard-rs` names event files by the current second and the
    /// process id and truncates an existing file of that name, so two
    /// loggers opened on one directory within the same second would clobber
    /// each other; this function waits for the next second when needed
    /// (loggers on different directories never wait).
    pub fn create(dir: &Path) -> Result<Self, LogError> {
        let io_err = |source| LogError::Io {
            path: dir.to_path_buf(),
            source,
        };
        fs::create_dir_all(dir).map_err(io_err)?;
        let canonical = fs::canonicalize(dir).map_err(io_err)?;
        probe_writable(&canonical)?;

        // Serialise creations and remember, per directory, the last second a
        // writer was started in.
        static LAST_START: OnceLock<Mutex<HashMap<PathBuf, u64>>> = OnceLock::new();
        let mut last_start = LAST_START
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(&last) = last_start.get(&canonical) {
            while unix_time().as_secs() <= last {
                let now = unix_time();
                let to_next_second = Duration::from_secs(last + 1).saturating_sub(now);
                std::thread::sleep(to_next_second.max(Duration::from_millis(1)));
            }
        }
        let writer = panic::catch_unwind(|| FileWriter::new(&canonical)).map_err(|payload| {
            LogError::Writer {
                dir: canonical.clone(),
                message: panic_message(payload),
            }
        })?;
        // The writer read the clock between our check and now; recording
        // the later time is conservative.
        last_start.insert(canonical.clone(), unix_time().as_secs());
        drop(last_start);

        Ok(Self {
            dir: canonical,
            writer: Some(writer),
            failure: None,
        })
    }

    /// The (canonicalised) log directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Stop the background writer and wait until every record is in the
    /// file. Reports a failure of the writer, now or earlier.
    pub fn close(mut self) -> Result<(), LogError> {
        self.shutdown();
        match self.failure.take() {
            Some(message) => Err(self.writer_error(message)),
            None => Ok(()),
        }
    }

    /// Drop the writer (joining its thread), catching its panics.
    fn shutdown(&mut self) {
        if let Some(writer) = self.writer.take() {
            if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(move || drop(writer))) {
                self.failure.get_or_insert(panic_message(payload));
            }
        }
    }

    /// Run `f` on the writer, turning a panic into an error and disabling
    /// the logger.
    fn guarded(&mut self, f: impl FnOnce(&mut FileWriter)) -> Result<(), LogError> {
        if let Some(message) = &self.failure {
            return Err(self.writer_error(message.clone()));
        }
        let Some(writer) = self.writer.as_mut() else {
            return Err(self.writer_error("logger is closed".to_string()));
        };
        match panic::catch_unwind(AssertUnwindSafe(|| f(writer))) {
            Ok(()) => Ok(()),
            Err(payload) => {
                let message = panic_message(payload);
                self.failure = Some(message.clone());
                // The broken writer panics again when dropped; do it now,
                // guarded, rather than in `Drop`.
                self.shutdown();
                Err(self.writer_error(message))
            }
        }
    }

    fn writer_error(&self, message: String) -> LogError {
        LogError::Writer {
            dir: self.dir.clone(),
            message,
        }
    }

    /// Writes a summary built elsewhere (an encoding failure names the tag).
    fn summary(
        &mut self,
        tag: &str,
        step: u64,
        built: Result<Summary, String>,
    ) -> Result<(), LogError> {
        let step = tb_step(tag, step)?;
        let summary = built.map_err(|message| LogError::Encode {
            tag: tag.to_string(),
            message,
        })?;
        self.guarded(|w| w.add_summary(summary, step))
    }
}

impl Logger for TensorBoardLogger {
    fn scalar(&mut self, tag: &str, step: u64, value: f64) -> Result<(), LogError> {
        let step = tb_step(tag, step)?;
        let summary = tensorboard_rs::summary::scalar(tag, value as f32);
        self.guarded(|w| w.add_summary(summary, step))
    }

    fn image(
        &mut self,
        tag: &str,
        step: u64,
        rgb: &[u8],
        width: usize,
        height: usize,
    ) -> Result<(), LogError> {
        let step = tb_step(tag, step)?;
        check_rgb8(tag, rgb, width, height)?;
        // Despite its "CHW" comment, tensorboard-rs builds
        // `RgbImage::new(dim[1], dim[2])` from the interleaved bytes, i.e.
        // dim = [3, width, height] for row-major RGB8. (It panics on a size
        // mismatch, which `check_rgb8` has ruled out; the guard catches it.)
        self.guarded(|w| {
            let summary = tensorboard_rs::summary::image(tag, rgb, &[3, width, height]);
            w.add_summary(summary, step)
        })
    }

    fn text(&mut self, tag: &str, step: u64, markdown: &str) -> Result<(), LogError> {
        self.summary(tag, step, summaries::text_summary(tag, markdown))
    }

    /// Written at step 0, under the record's own tag.
    fn hparams(&mut self, record: &HParamsRecord) -> Result<(), LogError> {
        self.summary(record.tag(), 0, summaries::hparams_summary(record))
    }

    /// Asks the background thread to flush; returns without waiting for it
    /// (see [`TensorBoardLogger::close`] for a barrier).
    fn flush(&mut self) -> Result<(), LogError> {
        self.guarded(|w| w.flush())
    }
}

impl Drop for TensorBoardLogger {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl std::fmt::Debug for TensorBoardLogger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TensorBoardLogger")
            .field("dir", &self.dir)
            .field("open", &self.writer.is_some())
            .field("failure", &self.failure)
            .finish()
    }
}

/// Convert a step for tensorboard-rs, which takes `usize` and stores `i64`.
fn tb_step(tag: &str, step: u64) -> Result<usize, LogError> {
    i64::try_from(step)
        .ok()
        .and_then(|s| usize::try_from(s).ok())
        .ok_or_else(|| LogError::StepTooLarge {
            tag: tag.to_string(),
            step,
        })
}

/// Fail early, with a proper I/O error, if files cannot be created in `dir`.
fn probe_writable(dir: &Path) -> Result<(), LogError> {
    let probe = dir.join(format!(".slicedscore-probe.{}", std::process::id()));
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&probe)
        .and_then(|_| fs::remove_file(&probe))
        .map_err(|source| LogError::Io {
            path: dir.to_path_buf(),
            source,
        })
}

fn unix_time() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// Describe a panic caught from tensorboard-rs.
fn panic_message(payload: Box<dyn Any + Send>) -> String {
    let text = crate::error::panic_text(&*payload);
    if text.contains("SendError") {
        // Our thread only sees the closed channel; the cause is elsewhere.
        "its background thread died (probably an I/O error writing the event file; \
         its panic message is on stderr), records since then are lost"
            .to_string()
    } else {
        format!("tensorboard-rs panicked: {text:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logging::event_reader::{find_event_files, read_events, read_scalars, ValueKind};

    #[test]
    fn writes_one_event_file_readable_back() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("run/nested");
        let mut logger = TensorBoardLogger::create(&dir).unwrap();
        logger.scalar("loss", 0, 0.0).unwrap();
        logger.scalar("loss", 7, -1.25e-3).unwrap();
        logger.flush().unwrap();
        logger.close().unwrap();

        let files = find_event_files(&dir);
        assert_eq!(files.len(), 1, "{files:?}");
        let name = files[0].file_name().unwrap().to_str().unwrap().to_string();
        assert!(name.starts_with("events.out.tfevents."), "{name}");
        assert!(
            name.ends_with(&format!(".{}.0", std::process::id())),
            "{name}"
        );
        let scalars = read_scalars(&files[0]).unwrap();
        assert_eq!(scalars.len(), 2);
        assert_eq!((scalars[0].step, scalars[0].value), (0, 0.0));
        assert_eq!((scalars[1].step, scalars[1].value), (7, -1.25e-3_f32));
    }

    #[test]
    fn image_is_png_with_right_dimensions() {
        let tmp = tempfile::tempdir().unwrap();
        let (width, height) = (5usize, 2usize);
        let rgb: Vec<u8> = (0..width * height * 3).map(|i| i as u8).collect();
        let mut logger = TensorBoardLogger::create(tmp.path()).unwrap();
        logger.image("samples", 3, &rgb, width, height).unwrap();
        assert!(matches!(
            logger.image("samples", 4, &rgb[1..], width, height),
            Err(LogError::ImageSize { .. })
        ));
        logger.close().unwrap();

        let events = read_events(&find_event_files(tmp.path())[0]).unwrap();
        let images: Vec<_> = events
            .iter()
            .flat_map(|e| e.values.iter().map(move |v| (e.step, v)))
            .filter_map(|(step, v)| match &v.kind {
                ValueKind::Image {
                    png,
                    width: w,
                    height: h,
                } => {
                    // tensorboard-rs 0.5.9 swaps the header fields (the PNG
                    // itself is right); TensorBoard shows the PNG.
                    assert_eq!((*w, *h), (height as i32, width as i32));
                    Some((step, v.tag.clone(), png.clone()))
                }
                _ => None,
            })
            .collect();
        assert_eq!(images.len(), 1);
        let (step, tag, png) = &images[0];
        assert_eq!((*step, tag.as_str()), (3, "samples"));
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        // IHDR: width and height as big-endian u32 at bytes 16..24.
        let png_w = u32::from_be_bytes(png[16..20].try_into().unwrap());
        let png_h = u32::from_be_bytes(png[20..24].try_into().unwrap());
        assert_eq!((png_w, png_h), (width as u32, height as u32));
    }

    #[test]
    fn text_and_hparams_records_read_back_as_written() {
        use crate::logging::hparams::*;
        let tmp = tempfile::tempdir().unwrap();
        let markdown = "    Experiment(\n        name: \"é ✓\",\n    )";
        let records = [
            HParamsRecord::Experiment {
                hparams: vec![
                    HParamInfo {
                        name: "objective".into(),
                        kind: HParamType::Text,
                        description: "the objective".into(),
                    },
                    HParamInfo {
                        name: "lr".into(),
                        kind: HParamType::Number,
                        description: String::new(),
                    },
                    HParamInfo {
                        name: "flag".into(),
                        kind: HParamType::Bool,
                        description: String::new(),
                    },
                ],
                metrics: vec![MetricInfo {
                    tag: "test/sm_loss".into(),
                    description: "of the best checkpoint".into(),
                }],
            },
            HParamsRecord::SessionStart {
                hparams: [
                    ("objective", HParamValue::Text("some_objective".into())),
                    ("lr", HParamValue::Number(1e-3)),
                    ("zero", HParamValue::Number(0.0)),
                    ("flag", HParamValue::Bool(false)),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
                start_time_secs: 1.5e9,
            },
            HParamsRecord::SessionEnd {
                status: SessionStatus::Failure,
                end_time_secs: 1.6e9,
            },
            HParamsRecord::SessionEnd {
                status: SessionStatus::Unknown,
                end_time_secs: 0.0,
            },
        ];
        let mut logger = TensorBoardLogger::create(tmp.path()).unwrap();
        logger.text("experiment", 0, markdown).unwrap();
        for r in &records {
            logger.hparams(r).unwrap();
        }
        logger.scalar("test/sm_loss", 3, -1.0).unwrap();
        logger.close().unwrap();

        let events = read_events(&find_event_files(tmp.path())[0]).unwrap();
        let values: Vec<_> = events
            .iter()
            .flat_map(|e| e.values.iter().map(move |v| (e.step, v)))
            .collect();
        assert_eq!(values.len(), 2 + records.len());
        assert_eq!(values[0].1.tag, "experiment");
        assert_eq!(values[0].1.kind, ValueKind::Text(markdown.to_string()));
        for ((step, v), r) in values[1..].iter().zip(&records) {
            assert_eq!((*step, v.tag.as_str()), (0, r.tag()));
            assert_eq!(v.kind, ValueKind::HParams(r.clone()));
        }
        assert_eq!(values[5].1.kind, ValueKind::Scalar(-1.0));
    }

    #[test]
    fn two_loggers_on_one_directory_do_not_clobber() {
        let tmp = tempfile::tempdir().unwrap();
        let mut first = TensorBoardLogger::create(tmp.path()).unwrap();
        first.scalar("a", 1, 1.0).unwrap();
        first.close().unwrap();
        let mut second = TensorBoardLogger::create(tmp.path()).unwrap();
        second.scalar("b", 2, 2.0).unwrap();
        second.close().unwrap();
        let files = find_event_files(tmp.path());
        assert_eq!(files.len(), 2, "{files:?}");
        let tags: Vec<String> = files
            .iter()
            .flat_map(|f| read_scalars(f).unwrap())
            .map(|s| s.tag)
            .collect();
        assert_eq!(tags, ["a", "b"]);
    }

    #[test]
    fn unusable_directory_is_an_io_error() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("plain-file");
        fs::write(&file, b"").unwrap();
        let err = TensorBoardLogger::create(&file.join("sub")).unwrap_err();
        assert!(matches!(err, LogError::Io { .. }), "{err}");
    }

    #[test]
    fn step_beyond_i64_is_rejected() {
        let tmp = tempfile::tempdir().unwrap();
        let mut logger = TensorBoardLogger::create(tmp.path()).unwrap();
        assert!(matches!(
            logger.scalar("x", u64::MAX, 1.0),
            Err(LogError::StepTooLarge { .. })
        ));
        logger.scalar("x", i64::MAX as u64, 1.0).unwrap();
        logger.close().unwrap();
        let scalars = read_scalars(&find_event_files(tmp.path())[0]).unwrap();
        assert_eq!(scalars[0].step, i64::MAX);
    }
}
