//! Checkpoints: parameters and optimizer state in one safetensors file
//! (loadable from Python with `safetensors`), metadata in its header, written
//! atomically so a crash never leaves a half-written checkpoint.
//!
//! Tensor names: parameters under their names from the model's
//! [`crate::nn::Module`] walk, optimizer moments under `optimizer.m.<name>` /
//! `optimizer.v.<name>`; metadata keys `step`, `optimizer_steps`, `dim`,
//! `precision` and any the caller adds. Tensors are stored in the precision
//! they were trained in (F32 or F64) and load into either: a checkpoint
//! without a `precision` key is an older F64 one.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;

use crate::device::{Device, Mat, Precision};
use crate::nn::module::{for_each_param_mut, named_params};
use crate::nn::{Module, ParamKind};
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

fn bytes_of(m: &Mat) -> (Dtype, Vec<u8>) {
    match m.precision() {
        Precision::F32 => (
            Dtype::F32,
            m.to_host_f32()
                .iter()
                .flat_map(|x| x.to_le_bytes())
                .collect(),
        ),
        Precision::F64 => (
            Dtype::F64,
            m.to_host().iter().flat_map(|x| x.to_le_bytes()).collect(),
        ),
    }
}

/// Writes the parameters and buffers of `module`, the optimizer state and
/// `metadata` to `path` atomically.
pub fn save(
    path: &Path,
    module: &(impl Module + ?Sized),
    optimizer: Option<&Optimizer>,
    mut metadata: HashMap<String, String>,
) -> Result<(), CheckpointError> {
    let mut entries: Vec<(String, Vec<usize>, Dtype, Vec<u8>)> = Vec::new();
    let mut precision = None;
    for (name, p) in named_params(module) {
        let (r, c) = p.shape();
        let (dtype, bytes) = bytes_of(&p.value);
        if p.is_trainable() {
            precision.get_or_insert(p.value.precision());
        }
        entries.push((name, vec![r, c], dtype, bytes));
    }
    if let Some(opt) = optimizer {
        for (prefix, map) in [("optimizer.m.", &opt.m), ("optimizer.v.", &opt.v)] {
            for (name, m) in map {
                let (r, c) = m.shape();
                let (dtype, bytes) = bytes_of(m);
                entries.push((format!("{prefix}{name}"), vec![r, c], dtype, bytes));
            }
        }
        metadata.insert("optimizer_steps".into(), opt.steps.to_string());
        metadata.insert("optimizer_score_steps".into(), opt.score_steps.to_string());
    }
    if let Some(p) = precision {
        metadata.insert("precision".into(), p.name().to_string());
    }
    // A checksum of every tensor's bytes catches corruption that still
    // parses (flipped bits in the data).
    let sums: std::collections::BTreeMap<&str, u32> = entries
        .iter()
        .map(|(n, _, _, data)| (n.as_str(), crc32c::crc32c(data)))
        .collect();
    metadata.insert(
        CHECKSUMS.into(),
        serde_json::to_string(&sums).expect("checksums serialize"),
    );
    let views: Vec<(String, TensorView<'_>)> = entries
        .iter()
        .map(|(n, shape, dtype, data)| {
            let view = TensorView::new(*dtype, shape.clone(), data)
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

/// The metadata key of the per-tensor CRC32C checksums.
const CHECKSUMS: &str = "crc32c";

/// What a safetensors parse error means for a user.
fn describe(e: &safetensors::SafeTensorError) -> String {
    use safetensors::SafeTensorError as E;
    match e {
        E::HeaderTooSmall
        | E::HeaderTooLarge
        | E::InvalidHeaderLength
        | E::MetadataIncompleteBuffer => {
            "the file is truncated or is not a safetensors checkpoint".to_string()
        }
        E::InvalidHeader | E::InvalidHeaderStart | E::InvalidHeaderDeserialization => {
            "its header is not valid safetensors JSON (a damaged or foreign file)".to_string()
        }
        E::TensorInvalidInfo | E::InvalidOffset(_) => {
            "a tensor's offsets are inconsistent (a damaged file)".to_string()
        }
        other => format!("not a readable checkpoint ({other})"),
    }
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
        SafeTensors::deserialize(&self.bytes).map_err(|e| self.err(describe(&e)))
    }

    /// The metadata stored in the header.
    pub fn metadata(&self) -> Result<HashMap<String, String>, CheckpointError> {
        let (_, meta) =
            SafeTensors::read_metadata(&self.bytes).map_err(|e| self.err(describe(&e)))?;
        Ok(meta.metadata().clone().unwrap_or_default())
    }

    /// Checks a tensor's bytes against the checksum written with it (files
    /// without checksums, from older versions, are not checked).
    fn verify(&self, name: &str, data: &[u8]) -> Result<(), CheckpointError> {
        let meta = self.metadata()?;
        let Some(text) = meta.get(CHECKSUMS) else {
            return Ok(());
        };
        let sums: std::collections::BTreeMap<String, u32> = serde_json::from_str(text)
            .map_err(|e| self.err(format!("its checksums are unreadable: {e}")))?;
        match sums.get(name) {
            Some(&sum) if sum != crc32c::crc32c(data) => Err(self.err(format!(
                "tensor `{name}` does not match its checksum: the file is corrupted"
            ))),
            _ => Ok(()),
        }
    }

    /// One metadata value parsed as a number.
    pub fn metadata_usize(&self, key: &str) -> Result<usize, CheckpointError> {
        let meta = self.metadata()?;
        meta.get(key)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| self.err(format!("metadata `{key}` missing or not a number")))
    }

    /// The precision the checkpoint was trained in (`F64` for older files
    /// without the key).
    pub fn precision(&self) -> Result<Precision, CheckpointError> {
        let meta = self.metadata()?;
        match meta.get("precision") {
            None => Ok(Precision::F64),
            Some(p) => Precision::parse(p)
                .ok_or_else(|| self.err(format!("metadata `precision` is {p:?}, not f32 or f64"))),
        }
    }

    /// The tensor `name` on `dev` (converted to its precision), `None` when
    /// the file has no such tensor.
    pub fn tensor(&self, dev: &Device, name: &str) -> Result<Option<Mat>, CheckpointError> {
        self.matrix(dev, name)
    }

    fn matrix(&self, dev: &Device, name: &str) -> Result<Option<Mat>, CheckpointError> {
        let st = self.tensors()?;
        let t = match st.tensor(name) {
            Ok(t) => t,
            Err(_) => return Ok(None),
        };
        if t.shape().len() != 2 {
            return Err(self.err(format!("tensor `{name}` is not 2-D")));
        }
        let (r, c) = (t.shape()[0], t.shape()[1]);
        self.verify(name, t.data())?;
        let m = match t.dtype() {
            Dtype::F64 => {
                let data: Vec<f64> = t
                    .data()
                    .chunks_exact(8)
                    .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")))
                    .collect();
                dev.mat(&data, r, c)
            }
            Dtype::F32 => {
                let data: Vec<f32> = t
                    .data()
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
                    .collect();
                dev.mat_f32(&data, r, c)
            }
            other => {
                return Err(self.err(format!(
                    "tensor `{name}` has dtype {other:?}, not F32 or F64"
                )))
            }
        };
        if !crate::compute::all_finite(&m) {
            return Err(self.err(format!(
                "tensor `{name}` holds non-finite values (a corrupted file?)"
            )));
        }
        Ok(Some(m))
    }

    /// Overwrites the parameters and buffers of `module` with the stored
    /// values on `dev` (converting the precision), checking names and the
    /// shapes of trained parameters (a buffer takes the stored shape).
    pub fn load_params(
        &self,
        dev: &Device,
        module: &mut (impl Module + ?Sized),
    ) -> Result<(), CheckpointError> {
        let mut result = Ok(());
        for_each_param_mut(module, |name, p| {
            if result.is_err() {
                return;
            }
            let dev = match p.kind {
                ParamKind::Trainable => dev.clone(),
                ParamKind::Buffer => dev.with_precision(p.value.precision()),
            };
            result = (|| {
                let m = self
                    .matrix(&dev, name)?
                    .ok_or_else(|| self.err(format!("parameter `{name}` is missing")))?;
                if p.kind == ParamKind::Trainable && m.shape() != p.shape() {
                    return Err(self.err(format!(
                        "parameter `{name}` has shape {:?}, the model expects {:?}",
                        m.shape(),
                        p.shape()
                    )));
                }
                p.value = m;
                Ok(())
            })();
        });
        result
    }

    /// Restores the optimizer's moments and step count for the trainable
    /// parameters of `module`, on `dev`.
    pub fn load_optimizer(
        &self,
        dev: &Device,
        module: &(impl Module + ?Sized),
        opt: &mut Optimizer,
    ) -> Result<(), CheckpointError> {
        opt.m.clear();
        opt.v.clear();
        for (name, p) in named_params(module) {
            if !p.is_trainable() {
                continue;
            }
            if let Some(m) = self.matrix(dev, &format!("optimizer.m.{name}"))? {
                opt.m.insert(name.clone(), m);
            }
            if let Some(v) = self.matrix(dev, &format!("optimizer.v.{name}"))? {
                opt.v.insert(name.clone(), v);
            }
        }
        opt.steps = self.metadata_usize("optimizer_steps").unwrap_or(0) as u64;
        opt.score_steps = self.metadata_usize("optimizer_score_steps").unwrap_or(0) as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compute::Activation;
    use crate::nn::Mlp;
    use rand::SeedableRng;

    fn saved() -> (tempfile::TempDir, PathBuf, Mlp) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.safetensors");
        let dev = Device::cpu(Precision::F32);
        let mlp = Mlp::new(
            &dev,
            &[2, 3, 1],
            Activation::Tanh,
            &mut rand_chacha::ChaCha8Rng::seed_from_u64(1),
        );
        save(&path, &mlp, None, HashMap::new()).unwrap();
        (dir, path, mlp)
    }

    #[test]
    fn a_flipped_data_byte_is_caught_by_the_checksum() {
        let (_dir, path, mut mlp) = saved();
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x01; // the lowest mantissa bit: still finite, still parses
        std::fs::write(&path, &bytes).unwrap();
        let c = Checkpoint::read(&path).unwrap();
        let err = c
            .load_params(&Device::cpu(Precision::F32), &mut mlp)
            .unwrap_err();
        assert!(err.to_string().contains("checksum"), "{err}");
        assert!(err.to_string().contains("model.safetensors"), "{err}");
    }

    #[test]
    fn a_truncated_file_is_a_clear_error() {
        let (_dir, path, _) = saved();
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        let err = Checkpoint::read(&path)
            .err()
            .expect("truncated file rejected");
        assert!(err.to_string().contains("model.safetensors"), "{err}");
        std::fs::write(&path, b"not a checkpoint").unwrap();
        assert!(Checkpoint::read(&path).is_err());
    }

    #[test]
    fn an_intact_file_loads_back_bit_for_bit() {
        let (_dir, path, mlp) = saved();
        let dev = Device::cpu(Precision::F32);
        let mut other = Mlp::new(
            &dev,
            &[2, 3, 1],
            Activation::Tanh,
            &mut rand_chacha::ChaCha8Rng::seed_from_u64(2),
        );
        Checkpoint::read(&path)
            .unwrap()
            .load_params(&dev, &mut other)
            .unwrap();
        let a: Vec<_> = named_params(&mlp)
            .into_iter()
            .map(|(_, p)| p.value.to_host_f32())
            .collect();
        let b: Vec<_> = named_params(&other)
            .into_iter()
            .map(|(_, p)| p.value.to_host_f32())
            .collect();
        assert_eq!(a, b);
    }
}
