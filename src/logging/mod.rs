//! Recording what training does.
//!
//! Data flows one way: the training loop calls a [`Logger`] (a
//! [`TensorBoardLogger`] in real runs, a [`MemoryLogger`] or [`NullLogger`] in
//! tests) with scalars such as the loss, sample images, text (the experiment
//! file) and [`HParamsRecord`]s (the run's settings and outcome for the
//! HParams dashboard). The TensorBoard logger appends them to an
//! `events.out.tfevents.*` file that stock TensorBoard displays. Summary
//! numbers for a whole run go separately to `metrics.json`
//! ([`crate::train::record`]).
//!
//! [`read_events`] is an independent reader of event files, so tests (and
//! tools) can check what was written without TensorBoard.

pub mod event_reader;
pub mod hparams;
pub mod summaries;
pub mod tensorboard;

use std::path::PathBuf;

pub use event_reader::{
    find_event_files, read_complete_events, read_events, read_scalars, Event, EventReadError,
    ScalarEvent, SummaryValue, ValueKind,
};
pub use hparams::{HParamInfo, HParamType, HParamValue, HParamsRecord, MetricInfo, SessionStatus};
pub use tensorboard::TensorBoardLogger;

/// A sink for training records. Object safe: use it as `&mut dyn Logger` or
/// `Box<dyn Logger>`.
pub trait Logger {
    /// Record one scalar under `tag` at training step `step`.
    fn scalar(&mut self, tag: &str, step: u64, value: f64) -> Result<(), LogError>;
    /// Record an RGB8 image (row-major, 3 bytes a pixel, `width*height*3` bytes).
    fn image(
        &mut self,
        tag: &str,
        step: u64,
        rgb: &[u8],
        width: usize,
        height: usize,
    ) -> Result<(), LogError>;
    /// Push buffered records to disk.
    fn flush(&mut self) -> Result<(), LogError>;
    /// Record Markdown text under `tag` at `step` (a sink without text
    /// ignores it).
    fn text(&mut self, _tag: &str, _step: u64, _markdown: &str) -> Result<(), LogError> {
        Ok(())
    }
    /// Record one hparams-plugin record (a sink without an HParams view
    /// ignores it).
    fn hparams(&mut self, _record: &HParamsRecord) -> Result<(), LogError> {
        Ok(())
    }
}

/// Implements [`Logger`] for a pointer type to a logger (`&mut L`,
/// `Box<L>`) by forwarding every method to the logger pointed to.
macro_rules! forward_logger {
    ($($ptr:ty),*) => {$(
        impl<L: Logger + ?Sized> Logger for $ptr {
            fn scalar(&mut self, tag: &str, step: u64, value: f64) -> Result<(), LogError> {
                (**self).scalar(tag, step, value)
            }
            fn image(
                &mut self,
                tag: &str,
                step: u64,
                rgb: &[u8],
                width: usize,
                height: usize,
            ) -> Result<(), LogError> {
                (**self).image(tag, step, rgb, width, height)
            }
            fn flush(&mut self) -> Result<(), LogError> {
                (**self).flush()
            }
            fn text(&mut self, tag: &str, step: u64, markdown: &str) -> Result<(), LogError> {
                (**self).text(tag, step, markdown)
            }
            fn hparams(&mut self, record: &HParamsRecord) -> Result<(), LogError> {
                (**self).hparams(record)
            }
        }
    )*};
}
forward_logger!(&mut L, Box<L>);

/// Why a record could not be logged.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// A file or directory operation failed.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The pixel buffer does not hold `width*height*3` bytes.
    #[error("image {tag:?} of {width}x{height} RGB8 pixels needs {expected} bytes, got {given}")]
    ImageSize {
        /// Tag of the image.
        tag: String,
        /// Width in pixels.
        width: usize,
        /// Height in pixels.
        height: usize,
        /// `width*height*3`.
        expected: usize,
        /// Length of the buffer passed in.
        given: usize,
    },
    /// A summary could not be encoded.
    #[error("summary {tag:?} could not be encoded: {message}")]
    Encode {
        /// Tag of the record.
        tag: String,
        /// What the encoder said.
        message: String,
    },
    /// Width or height is zero or too large to encode (over `i32::MAX`).
    #[error("image {tag:?}: {width}x{height} is not a valid image size")]
    ImageDimensions {
        /// Tag of the image.
        tag: String,
        /// Width in pixels.
        width: usize,
        /// Height in pixels.
        height: usize,
    },
    /// The step does not fit TensorBoard's signed 64-bit step field.
    #[error("step {step} of {tag:?} exceeds i64::MAX")]
    StepTooLarge {
        /// Tag of the record.
        tag: String,
        /// The step passed in.
        step: u64,
    },
    /// JSON (de)serialisation failed.
    #[error("JSON error for {}: {source}", path.display())]
    Json {
        /// The file being written or read.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: serde_json::Error,
    },
    /// The TensorBoard writer failed (it panicked internally, typically on an
    /// I/O error in its background thread); the logger is unusable afterwards.
    #[error("TensorBoard writer for {} failed: {message}", dir.display())]
    Writer {
        /// The log directory.
        dir: PathBuf,
        /// What went wrong, from the writer's panic message.
        message: String,
    },
}

/// Check that `rgb` holds a `width`x`height` RGB8 image, returning its byte
/// length. Every [`Logger`] applies this check, so code that passes with a
/// test logger also passes with the TensorBoard one.
pub fn check_rgb8(tag: &str, rgb: &[u8], width: usize, height: usize) -> Result<usize, LogError> {
    let limit = i32::MAX as usize;
    let expected = width
        .checked_mul(height)
        .and_then(|pixels| pixels.checked_mul(3))
        .filter(|_| width > 0 && height > 0 && width <= limit && height <= limit)
        .ok_or_else(|| LogError::ImageDimensions {
            tag: tag.to_string(),
            width,
            height,
        })?;
    if rgb.len() != expected {
        return Err(LogError::ImageSize {
            tag: tag.to_string(),
            width,
            height,
            expected,
            given: rgb.len(),
        });
    }
    Ok(expected)
}

/// A logger that validates and then discards everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NullLogger;

impl Logger for NullLogger {
    fn scalar(&mut self, _tag: &str, _step: u64, _value: f64) -> Result<(), LogError> {
        Ok(())
    }
    fn image(
        &mut self,
        tag: &str,
        _step: u64,
        rgb: &[u8],
        width: usize,
        height: usize,
    ) -> Result<(), LogError> {
        check_rgb8(tag, rgb, width, height).map(|_| ())
    }
    fn flush(&mut self) -> Result<(), LogError> {
        Ok(())
    }
}

/// A logger that keeps every record in memory, for tests of the training loop.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct MemoryLogger {
    /// Every scalar as `(tag, step, value)`, in call order.
    pub scalars: Vec<(String, u64, f64)>,
    /// Every image as `(tag, step, width, height)`, in call order (pixels are
    /// validated, then dropped).
    pub images: Vec<(String, u64, usize, usize)>,
    /// How many times [`Logger::flush`] was called.
    pub flushes: usize,
    /// Every text as `(tag, step, markdown)`, in call order.
    pub texts: Vec<(String, u64, String)>,
    /// Every hparams record, in call order.
    pub hparams: Vec<HParamsRecord>,
}

impl MemoryLogger {
    /// An empty logger.
    pub fn new() -> Self {
        Self::default()
    }

    /// The `(step, value)` pairs recorded under `tag`, in call order.
    pub fn series(&self, tag: &str) -> Vec<(u64, f64)> {
        self.scalars
            .iter()
            .filter(|(t, _, _)| t == tag)
            .map(|&(_, step, value)| (step, value))
            .collect()
    }
}

impl Logger for MemoryLogger {
    fn scalar(&mut self, tag: &str, step: u64, value: f64) -> Result<(), LogError> {
        self.scalars.push((tag.to_string(), step, value));
        Ok(())
    }
    fn image(
        &mut self,
        tag: &str,
        step: u64,
        rgb: &[u8],
        width: usize,
        height: usize,
    ) -> Result<(), LogError> {
        check_rgb8(tag, rgb, width, height)?;
        self.images.push((tag.to_string(), step, width, height));
        Ok(())
    }
    fn flush(&mut self) -> Result<(), LogError> {
        self.flushes += 1;
        Ok(())
    }
    fn text(&mut self, tag: &str, step: u64, markdown: &str) -> Result<(), LogError> {
        self.texts
            .push((tag.to_string(), step, markdown.to_string()));
        Ok(())
    }
    fn hparams(&mut self, record: &HParamsRecord) -> Result<(), LogError> {
        self.hparams.push(record.clone());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log_some(logger: &mut dyn Logger) -> Result<(), LogError> {
        logger.scalar("loss", 0, 1.5)?;
        logger.scalar("loss", 1, f64::NAN)?;
        logger.scalar("lr", 1, 0.1)?;
        logger.image("samples", 1, &[0; 2 * 3 * 3], 2, 3)?;
        logger.flush()
    }

    #[test]
    fn memory_logger_keeps_records() {
        let mut logger = MemoryLogger::new();
        log_some(&mut logger).unwrap();
        assert_eq!(logger.scalars.len(), 3);
        assert_eq!(logger.scalars[0], ("loss".to_string(), 0, 1.5));
        let loss = logger.series("loss");
        assert_eq!(loss.len(), 2);
        assert!(loss[1].1.is_nan());
        assert_eq!(logger.series("lr"), vec![(1, 0.1)]);
        assert_eq!(logger.images, vec![("samples".to_string(), 1, 2, 3)]);
        assert_eq!(logger.flushes, 1);
    }

    #[test]
    fn boxed_and_null_loggers_work() {
        let mut boxed: Box<dyn Logger> = Box::new(NullLogger);
        log_some(&mut boxed).unwrap();
    }

    #[test]
    fn image_size_errors_name_byte_counts() {
        let mut logger = MemoryLogger::new();
        let err = logger.image("img", 0, &[0; 10], 2, 2).unwrap_err();
        assert!(matches!(
            err,
            LogError::ImageSize {
                expected: 12,
                given: 10,
                ..
            }
        ));
        let text = err.to_string();
        assert!(text.contains("12") && text.contains("10"), "{text}");
        assert!(matches!(
            NullLogger.image("img", 0, &[], 0, 4),
            Err(LogError::ImageDimensions { .. })
        ));
        assert!(matches!(
            check_rgb8("img", &[], usize::MAX, 2),
            Err(LogError::ImageDimensions { .. })
        ));
        assert!(logger.images.is_empty());
    }

    #[test]
    fn io_error_names_path() {
        let err = LogError::Io {
            path: PathBuf::from("/some/where"),
            source: std::io::Error::other("boom"),
        };
        assert_eq!(err.to_string(), "I/O error on /some/where: boom");
    }
}
