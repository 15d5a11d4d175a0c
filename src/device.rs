//! Where tensors live and in which precision: the [`Device`] and the plain
//! matrix type [`Mat`] every module shares.
//!
//! Data flows in as host `f64` values (row-major) through [`Device::mat`],
//! becomes a [`Mat`] in the device's precision and backend, and comes back as
//! `f64` with [`Mat::to_host`]. Computation on matrices goes through
//! [`crate::autodiff::Graph`] (which records what it needs to differentiate)
//! or, untracked, through [`crate::compute`]. Nothing outside
//! [`crate::compute`] names a backend's own types.
//!
//! Backends: the native CPU kernels (the default), and dfdx's tensor ops
//! (`Backend::Dfdx`): on dfdx's CPU device as a slow independent reference
//! that tests compare the native kernels with, and on CUDA in a build with
//! `--features cuda`, where every op stays on the GPU.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use crate::compute::float::Precision;
use crate::compute::Buf;

/// Which implementation of the kernels a device uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum Backend {
    /// The native CPU kernels (fused jets, vectorized math, `gemm`).
    #[default]
    Cpu,
    /// dfdx's tensor ops on dfdx's CPU device: a slow reference
    /// implementation of every kernel, for tests and cross-checks.
    Reference,
    /// dfdx's tensor ops on CUDA (a build with `--features cuda`).
    Cuda,
}

impl Backend {
    /// Human-readable name.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Cpu => "cpu",
            Backend::Reference => "reference (dfdx cpu)",
            Backend::Cuda => "cuda",
        }
    }
}

/// A compute device: a backend and a precision. Cheap to clone.
#[derive(Clone)]
pub struct Device {
    backend: Backend,
    precision: Precision,
    pub(crate) dfdx: crate::compute::reference::DfdxDevices,
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Device({}, {})",
            self.backend.name(),
            self.precision.name()
        )
    }
}

/// Why a device cannot be created.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DeviceError {
    /// CUDA was asked for in a build without it.
    #[error("device Cuda needs a build with `--features cuda` (this build computes on the CPU)")]
    NoCuda,
    /// The CUDA device could not be opened.
    #[error("CUDA device could not be opened: {0}")]
    Cuda(String),
}

impl Device {
    /// The native CPU device in the given precision.
    pub fn cpu(precision: Precision) -> Self {
        Self {
            backend: Backend::Cpu,
            precision,
            dfdx: Default::default(),
        }
    }

    /// A device of the given backend and precision.
    pub fn new(backend: Backend, precision: Precision) -> Result<Self, DeviceError> {
        let dfdx = crate::compute::reference::DfdxDevices::open(backend)?;
        Ok(Self {
            backend,
            precision,
            dfdx,
        })
    }

    /// The backend.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The precision of every matrix made on this device.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// The same backend in another precision.
    pub fn with_precision(&self, precision: Precision) -> Self {
        Self {
            precision,
            ..self.clone()
        }
    }

    /// A matrix from row-major host values (rounded to the precision).
    ///
    /// # Panics
    /// If `data.len() != rows * cols`; callers check shapes before this point.
    pub fn mat(&self, data: &[f64], rows: usize, cols: usize) -> Mat {
        assert_eq!(
            data.len(),
            rows * cols,
            "Device::mat: {} values for a {rows}×{cols} matrix",
            data.len()
        );
        Mat::from_buf(rows, cols, Buf::from_host(self, data, rows, cols))
    }

    /// A matrix from row-major `f32` host values, converted to the precision.
    pub fn mat_f32(&self, data: &[f32], rows: usize, cols: usize) -> Mat {
        assert_eq!(data.len(), rows * cols, "Device::mat_f32: shape mismatch");
        Mat::from_buf(rows, cols, Buf::from_host_f32(self, data, rows, cols))
    }

    /// A `rows × cols` matrix filled with `value`.
    pub fn filled(&self, rows: usize, cols: usize, value: f64) -> Mat {
        Mat::from_buf(rows, cols, Buf::filled(self, rows, cols, value))
    }

    /// A `rows × cols` matrix of zeros.
    pub fn zeros(&self, rows: usize, cols: usize) -> Mat {
        self.filled(rows, cols, 0.0)
    }

    /// `"cpu f32"`, `"cuda f64"`, …
    pub fn name(&self) -> String {
        format!("{} {}", self.backend.name(), self.precision.name())
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A dense row-major `rows × cols` matrix on some device, immutable and
/// cheap to clone (the data is shared). Its id tells a graph which recorded
/// value it is.
#[derive(Clone)]
pub struct Mat {
    rows: usize,
    cols: usize,
    id: u64,
    pub(crate) buf: Arc<Buf>,
}

impl std::fmt::Debug for Mat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Mat({}×{}, {}",
            self.rows,
            self.cols,
            self.precision().name()
        )?;
        if self.rows * self.cols <= 8 {
            write!(f, ", {:?}", self.to_host())?;
        }
        write!(f, ")")
    }
}

impl Mat {
    pub(crate) fn from_buf(rows: usize, cols: usize, buf: Buf) -> Self {
        debug_assert_eq!(buf.len(), rows * cols, "buffer length matches the shape");
        Self {
            rows,
            cols,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            buf: Arc::new(buf),
        }
    }

    /// The identity of this value (shared by its clones).
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// `(rows, cols)`.
    pub fn shape(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.rows * self.cols
    }

    /// Whether the matrix has no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The element precision.
    pub fn precision(&self) -> Precision {
        self.buf.precision()
    }

    /// The backend the values live on.
    pub fn backend(&self) -> Backend {
        self.buf.backend()
    }

    /// The values, row-major, as `f64`.
    pub fn to_host(&self) -> Vec<f64> {
        self.buf.to_host()
    }

    /// The values, row-major, as `f32`.
    pub fn to_host_f32(&self) -> Vec<f32> {
        self.buf.to_host_f32()
    }

    /// The single value of a `1 × 1` matrix (the first entry otherwise).
    pub fn scalar(&self) -> f64 {
        self.buf.first()
    }

    /// The same values as a new, untracked matrix of another shape with as
    /// many entries (a graph reshapes with [`crate::autodiff::Graph::reshape`]).
    ///
    /// # Panics
    /// If the number of entries differs.
    pub fn reshaped(&self, rows: usize, cols: usize) -> Mat {
        assert_eq!(rows * cols, self.len(), "reshaped: entry counts differ");
        Mat::from_buf(rows, cols, self.buf.reshaped(rows, cols))
    }

    /// The same values on `dev` (its backend and precision).
    pub fn to_device(&self, dev: &Device) -> Mat {
        if self.buf.matches(dev) {
            return self.clone();
        }
        match self.precision() {
            Precision::F32 if dev.backend() == Backend::Cpu => {
                dev.mat_f32(&self.to_host_f32(), self.rows, self.cols)
            }
            _ => dev.mat(&self.to_host(), self.rows, self.cols),
        }
    }
}

/// Moves row-major host values onto `dev` (see [`Device::mat`]).
pub fn to_mat(dev: &Device, data: Vec<f64>, rows: usize, cols: usize) -> Mat {
    dev.mat(&data, rows, cols)
}

/// Copies a matrix back to the host, row-major, as `f64`.
pub fn to_host(m: &Mat) -> Vec<f64> {
    m.to_host()
}

/// The `(rows, cols)` of a matrix.
pub fn shape(m: &Mat) -> (usize, usize) {
    m.shape()
}

/// The single value of a `1 × 1` matrix.
pub fn scalar(m: &Mat) -> f64 {
    m.scalar()
}
