//! Where the images of an `images` task come from.
//!
//! Data flow: an [`ImageSource`] (parsed from the experiment's RON) is turned
//! into an [`ImageSet`] by [`ImageSource::load`]: MNIST or Fashion-MNIST IDX
//! files from a folder (raw or `.gz`, read by `idx.rs`), scikit-learn's 8×8
//! digits embedded in the `smartcore` crate, or any pair of IDX files. Every
//! problem is a [`ConfigError`] on the source's field that names the file
//! and, for a missing data set, the command that fetches it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;

use super::idx::{self, IdxError, IdxProblem};
use super::transform::Quantization;

/// The command that fetches MNIST into `data/mnist/`.
pub const MNIST_FETCH: &str = "scripts/fetch-mnist.sh";
/// The command that installs Fashion-MNIST into `/usr/share/datasets/fashion-mnist`.
pub const FASHION_FETCH: &str = "apt-get install -y dataset-fashion-mnist";

/// The four IDX files of MNIST and Fashion-MNIST, without a `.gz` suffix.
pub const MNIST_FILES: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];

/// Default folder of [`ImageSource::Mnist`]: `data/mnist` relative to the
/// experiment file's folder (see [`crate::data_path`]).
pub fn default_mnist_dir() -> PathBuf {
    crate::data_path::resolve(PathBuf::from("data/mnist"))
}

/// Default folder of [`ImageSource::FashionMnist`] (Debian's package).
pub fn default_fashion_dir() -> PathBuf {
    PathBuf::from("/usr/share/datasets/fashion-mnist")
}

/// Where the images come from, as written in RON.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub enum ImageSource {
    /// MNIST: 60 000 training and 10 000 test images of 28×28 8-bit pixels,
    /// `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`,
    /// `t10k-images-idx3-ubyte`, `t10k-labels-idx1-ubyte` in `dir`, each raw
    /// or with `.gz` (default `data/mnist`, filled by `scripts/fetch-mnist.sh`).
    Mnist {
        /// The folder (relative paths resolve against the experiment file's folder).
        #[serde(
            default = "default_mnist_dir",
            deserialize_with = "crate::data_path::deserialize"
        )]
        dir: PathBuf,
    },
    /// Fashion-MNIST, same layout as MNIST (default
    /// `/usr/share/datasets/fashion-mnist`, from Debian's
    /// `dataset-fashion-mnist`).
    FashionMnist {
        /// The folder (relative paths resolve against the experiment file's folder).
        #[serde(
            default = "default_fashion_dir",
            deserialize_with = "crate::data_path::deserialize"
        )]
        dir: PathBuf,
    },
    /// scikit-learn's 8×8 digits (1797 images, values 0 … 16), embedded in
    /// the `smartcore` crate. No test set of its own: `test_fraction` of the
    /// images are held out.
    Digits,
    /// Any IDX image file of unsigned bytes with its label file, raw or gzip;
    /// optionally a separate test pair (otherwise `test_fraction` of the
    /// images are held out). Pixels are taken as 8-bit (0 … 255).
    Idx {
        /// The image file (relative paths here resolve against the
        /// experiment file's folder).
        #[serde(deserialize_with = "crate::data_path::deserialize")]
        images: PathBuf,
        /// The label file (one label per image).
        #[serde(deserialize_with = "crate::data_path::deserialize")]
        labels: PathBuf,
        /// The test image file (default none).
        #[serde(default, deserialize_with = "crate::data_path::deserialize_opt")]
        test_images: Option<PathBuf>,
        /// The test label file, required with `test_images`.
        #[serde(default, deserialize_with = "crate::data_path::deserialize_opt")]
        test_labels: Option<PathBuf>,
    },
}

/// Images with one label each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Images {
    /// Number of images.
    pub count: usize,
    /// `count · height · width` pixels, image after image, row-major.
    pub pixels: Vec<u8>,
    /// One label per image.
    pub labels: Vec<u8>,
}

impl Images {
    /// The images at `indices`, in that order.
    pub fn select(&self, indices: &[usize]) -> Images {
        let d = self.pixels.len() / self.count.max(1);
        let mut pixels = Vec::with_capacity(indices.len() * d);
        for &i in indices {
            pixels.extend_from_slice(&self.pixels[i * d..(i + 1) * d]);
        }
        Images {
            count: indices.len(),
            pixels,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
        }
    }
}

/// A loaded data set.
#[derive(Debug, Clone)]
pub struct ImageSet {
    /// Rows of every image.
    pub height: usize,
    /// Columns of every image.
    pub width: usize,
    /// Pixel range and levels.
    pub quantization: Quantization,
    /// The training images (validation is split off them later).
    pub train: Images,
    /// The data set's own test images, if it has some.
    pub test: Option<Images>,
}

/// `dir/name` if it exists, else `dir/name.gz` if that exists, else an error
/// naming both and the command that fetches the data set.
fn find_file(dir: &Path, name: &str, field: &str, fetch: &str) -> Result<PathBuf, ConfigError> {
    let raw = dir.join(name);
    if raw.is_file() {
        return Ok(raw);
    }
    let gz = dir.join(format!("{name}.gz"));
    if gz.is_file() {
        return Ok(gz);
    }
    Err(ConfigError::new(
        field,
        format!(
            "{} (or {}) not found; fetch the data with `{fetch}`",
            raw.display(),
            gz.display()
        ),
    ))
}

fn idx_error(field: &str, e: IdxError, fetch: Option<&str>) -> ConfigError {
    let hint = match (&e.problem, fetch) {
        (IdxProblem::NotFound, Some(f)) => format!("; fetch the data with `{f}`"),
        _ => String::new(),
    };
    ConfigError::new(field, format!("{e}{hint}"))
}

/// A training and test pair of 28×28 IDX files with labels 0 … 9.
fn load_mnist_like(dir: &Path, field: &str, fetch: &str) -> Result<ImageSet, ConfigError> {
    let paths: Vec<PathBuf> = MNIST_FILES
        .iter()
        .map(|n| find_file(dir, n, field, fetch))
        .collect::<Result<_, _>>()?;
    let pair = |i: usize| {
        idx::read_pair(&paths[i], &paths[i + 1], Some((28, 28)), Some(9))
            .map_err(|e| idx_error(field, e, Some(fetch)))
    };
    let (train, train_labels) = pair(0)?;
    let (test, test_labels) = pair(2)?;
    Ok(ImageSet {
        height: 28,
        width: 28,
        quantization: Quantization::EIGHT_BIT,
        train: Images {
            count: train.count,
            pixels: train.pixels,
            labels: train_labels,
        },
        test: Some(Images {
            count: test.count,
            pixels: test.pixels,
            labels: test_labels,
        }),
    })
}

/// scikit-learn's digits from `smartcore`, checked: 64 features, integer
/// values 0 … 16, integer labels 0 … 9.
pub fn load_digits() -> Result<ImageSet, ConfigError> {
    let err = |m: String| ConfigError::new("source", format!("Digits: {m}"));
    let ds = smartcore::dataset::digits::load_dataset();
    let (n, d) = (ds.num_samples, ds.num_features);
    if d != 64 || ds.data.len() != n * d || ds.target.len() != n || n == 0 {
        return Err(err(format!(
            "the embedded table has {n} samples × {d} features ({} values, {} targets); \
             expected 8×8 = 64 features",
            ds.data.len(),
            ds.target.len()
        )));
    }
    let to_u8 = |v: f32, max: f32, what: &str, i: usize| {
        if v.fract() == 0.0 && (0.0..=max).contains(&v) {
            Ok(v as u8)
        } else {
            Err(err(format!(
                "{what} {i} (0-based) is {v}, not an integer in 0 … {max}"
            )))
        }
    };
    let pixels = ds
        .data
        .iter()
        .enumerate()
        .map(|(i, &v)| to_u8(v, 16.0, "value", i))
        .collect::<Result<Vec<u8>, _>>()?;
    let labels = ds
        .target
        .iter()
        .enumerate()
        .map(|(i, &v)| to_u8(v, 9.0, "label", i))
        .collect::<Result<Vec<u8>, _>>()?;
    Ok(ImageSet {
        height: 8,
        width: 8,
        quantization: Quantization::DIGITS,
        train: Images {
            count: n,
            pixels,
            labels,
        },
        test: None,
    })
}

impl ImageSource {
    /// The variant name as written in RON.
    pub fn variant_name(&self) -> &'static str {
        match self {
            ImageSource::Mnist { .. } => "Mnist",
            ImageSource::FashionMnist { .. } => "FashionMnist",
            ImageSource::Digits => "Digits",
            ImageSource::Idx { .. } => "Idx",
        }
    }

    /// A short description, e.g. `Mnist(data/mnist)`.
    pub fn describe(&self) -> String {
        match self {
            ImageSource::Mnist { dir } | ImageSource::FashionMnist { dir } => {
                format!("{}({})", self.variant_name(), dir.display())
            }
            ImageSource::Idx { images, .. } => format!("Idx({})", images.display()),
            ImageSource::Digits => "Digits".into(),
        }
    }

    /// Checks the settings without reading anything.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let ImageSource::Idx {
            test_images,
            test_labels,
            ..
        } = self
        {
            match (test_images, test_labels) {
                (Some(_), None) => {
                    return Err(ConfigError::new(
                        "source.Idx.test_labels",
                        "required with test_images",
                    ))
                }
                (None, Some(_)) => {
                    return Err(ConfigError::new(
                        "source.Idx.test_images",
                        "required with test_labels",
                    ))
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Validates the settings and loads the images.
    pub fn load(&self) -> Result<ImageSet, ConfigError> {
        self.validate()?;
        match self {
            ImageSource::Mnist { dir } => load_mnist_like(dir, "source.Mnist.dir", MNIST_FETCH),
            ImageSource::FashionMnist { dir } => {
                load_mnist_like(dir, "source.FashionMnist.dir", FASHION_FETCH)
            }
            ImageSource::Digits => load_digits(),
            ImageSource::Idx {
                images,
                labels,
                test_images,
                test_labels,
            } => {
                // The field named is the one whose file is wrong.
                let field_of = |e: &IdxError, labels_field, images_field| {
                    if e.path == *labels || test_labels.as_ref() == Some(&e.path) {
                        labels_field
                    } else {
                        images_field
                    }
                };
                let (tr, tr_labels) = idx::read_pair(images, labels, None, None).map_err(|e| {
                    let field = field_of(&e, "source.Idx.labels", "source.Idx.images");
                    idx_error(field, e, None)
                })?;
                let test = match (test_images, test_labels) {
                    (Some(ti), Some(tl)) => {
                        let (te, te_labels) = idx::read_pair(
                            ti,
                            tl,
                            Some((tr.rows, tr.cols)),
                            None,
                        )
                        .map_err(|e| {
                            let field =
                                field_of(&e, "source.Idx.test_labels", "source.Idx.test_images");
                            idx_error(field, e, None)
                        })?;
                        Some(Images {
                            count: te.count,
                            pixels: te.pixels,
                            labels: te_labels,
                        })
                    }
                    _ => None,
                };
                Ok(ImageSet {
                    height: tr.rows,
                    width: tr.cols,
                    quantization: Quantization::EIGHT_BIT,
                    train: Images {
                        count: tr.count,
                        pixels: tr.pixels,
                        labels: tr_labels,
                    },
                    test,
                })
            }
        }
    }
}
