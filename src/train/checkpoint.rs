//! Checkpoints: parameters and optimizer state in one safetensors file
//! (loadable from Python with `safetensors`), metadata in its header, written
//! atomically so a crash never leaves a half-written checkpoint.
//!
//! Tensor names: parameters under their own names, optimizer moments under
//! `optimizer.m.<name>` / `optimizer.v.<name>`; metadata keys `step`,
//! `optimizer_steps`, `dim` and any the caller adds.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;

use crate::device::{self, Dev, Mat};
use crate::nn::Param;
use crate::train::optim::Optimizer;

/// Errors reading or writing a checkpoint, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// File system error.
    #[error("checkpoint {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Not a valid safetensors file, or a tensor is missing or misshapen.
    #[error("checkpoint {path}: {message}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

fn bytes_of(m: &Mat) -> Vec<u8> {
    device::to_host(m)
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect()
}

/// Writes parameters, optimizer state and `metadata` to `path` atomically.
pub fn save(
    path: &Path,
    params: &[&Param],
    optimizer: Option<&Optimizer>,
    mut metadata: HashMap<String, String>,
) -> Result<(), CheckpointError> {
    let mut entries: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for p in params {
        let (r, c) = p.shape();
        entries.push((p.name.clone(), vec![r, c], bytes_of(&p.value)));
    }
    if let Some(opt) = optimizer {
        for (prefix, map) in [("optimizer.m.", &opt.m), ("optimizer.v.", &opt.v)] {
            for (name, m) in map {
                let (r, c) = device::shape(m);
                entries.push((format!("{prefix}{name}"), vec![r, c], bytes_of(m)));
            }
        }
        metadata.insert("optimizer_steps".into(), opt.steps.to_string());
    }
    let views: Vec<(String, TensorView<'_>)> = entries
        .iter()
        .map(|(n, shape, data)| {
            let view = TensorView::new(Dtype::F64, shape.clone(), data)
                .expect("tensor byte length matches its shape");
            (n.clone(), view)
        })
        .collect();
    let bytes =
        safetensors::serialize(views, &Some(metadata)).map_err(|e| CheckpointError::Format {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    crate::atomic_file::write_atomic(path, &bytes).map_err(|source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// A loaded checkpoint file.
pub struct Checkpoint {
    path: PathBuf,
    bytes: Vec<u8>,
}

impl Checkpoint {
    /// Reads a checkpoint file.
    pub fn read(path: &Path) -> Result<Self, CheckpointError> {
        let bytes = std::fs::read(path).map_err(|source| CheckpointError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let c = Self {
            path: path.to_path_buf(),
            bytes,
        };
        c.tensors()?;
        Ok(c)
    }

    fn err(&self, message: impl Into<String>) -> CheckpointError {
        CheckpointError::Format {
            path: self.path.clone(),
            message: message.into(),
        }
    }

    fn tensors(&self) -> Result<SafeTensors<'_>, CheckpointError> {
        SafeTensors::deserialize(&self.bytes).map_err(|e| self.err(e.to_string()))
    }

    /// The metadata stored in the header.
    pub fn metadata(&self) -> Result<HashMap<String, String>, CheckpointError> {
        let (_, meta) =
            SafeTensors::read_metadata(&self.bytes).map_err(|e| self.err(e.to_string()))?;
        Ok(meta.metadata().clone().unwrap_or_default())
    }

    /// One metadata value parsed as a number.
    pub fn metadata_usize(&self, key: &str) -> Result<usize, CheckpointError> {
        let meta = self.metadata()?;
        meta.get(key)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| self.err(format!("metadata `{key}` missing or not a number")))
    }

    fn matrix(&self, dev: &Dev, name: &str) -> Result<Option<Mat>, CheckpointError> {
        let st = self.tensors()?;
        let t = match st.tensor(name) {
            Ok(t) => t,
            Err(_) => return Ok(None),
        };
        if t.dtype() != Dtype::F64 || t.shape().len() != 2 {
            return Err(self.err(format!("tensor `{name}` is not a 2-D f64 tensor")));
        }
        let data: Vec<f64> = t
            .data()
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")))
            .collect();
        Ok(Some(device::to_mat(dev, data, t.shape()[0], t.shape()[1])))
    }

    /// Overwrites `params` with the stored values, checking names and shapes.
    pub fn load_params(&self, dev: &Dev, params: Vec<&mut Param>) -> Result<(), CheckpointError> {
        for p in params {
            let m = self
                .matrix(dev, &p.name)?
                .ok_or_else(|| self.err(format!("parameter `{}` is missing", p.name)))?;
            if device::shape(&m) != p.shape() {
                return Err(self.err(format!(
                    "parameter `{}` has shape {:?}, the model expects {:?}",
                    p.name,
                    device::shape(&m),
                    p.shape()
                )));
            }
            p.value = m;
        }
        Ok(())
    }

    /// Restores the optimizer's moments and step count for `params`.
    pub fn load_optimizer(
        &self,
        dev: &Dev,
        params: &[&Param],
        opt: &mut Optimizer,
    ) -> Result<(), CheckpointError> {
        opt.m.clear();
        opt.v.clear();
        for p in params {
            if let Some(m) = self.matrix(dev, &format!("optimizer.m.{}", p.name))? {
                opt.m.insert(p.name.clone(), m);
            }
            if let Some(v) = self.matrix(dev, &format!("optimizer.v.{}", p.name))? {
                opt.v.insert(p.name.clone(), v);
            }
        }
        opt.steps = self.metadata_usize("optimizer_steps").unwrap_or(0) as u64;
        Ok(())
    }
}
