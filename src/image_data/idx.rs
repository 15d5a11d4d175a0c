//! IDX files: the format of MNIST and Fashion-MNIST (LeCun et al.).
//!
//! An IDX file is a big-endian header followed by the data:
//! * a 4-byte magic number `0x00 0x00 TYPE NDIMS` (`TYPE` 0x08 = unsigned
//!   bytes; image files have `NDIMS` = 3, label files 1), so images start
//!   `0x00000803` and labels `0x00000801`;
//! * `NDIMS` sizes as big-endian `u32` (images: count, rows, columns;
//!   labels: count);
//! * exactly `count · rows · columns` (or `count`) bytes, row-major.
//!
//! Files may be stored raw or gzip-compressed (recognised by the gzip magic
//! bytes `1f 8b`, whatever the name). Anything that does not follow the
//! layout exactly (wrong magic, a zero size, a truncated file, bytes after the
//! data, a label count that differs from the image count) is an [`IdxError`]
//! naming the file and what is wrong.

use std::io::Read;
use std::path::{Path, PathBuf};

/// Magic number of an IDX file of unsigned-byte images (3 dimensions).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX file of unsigned-byte labels (1 dimension).
pub const LABELS_MAGIC: u32 = 0x0000_0801;

/// Images read from an IDX file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxImages {
    /// Number of images.
    pub count: usize,
    /// Rows (height) of every image.
    pub rows: usize,
    /// Columns (width) of every image.
    pub cols: usize,
    /// `count · rows · cols` pixel values, image after image, row-major.
    pub pixels: Vec<u8>,
}

/// What is wrong with an IDX file.
#[derive(Debug, thiserror::Error)]
pub enum IdxProblem {
    /// The file does not exist.
    #[error("file not found")]
    NotFound,
    /// The file exists but cannot be read.
    #[error("cannot read: {0}")]
    Read(std::io::Error),
    /// The file starts like gzip but does not decompress.
    #[error("gzip-compressed but does not decompress (truncated or corrupt): {0}")]
    Gzip(std::io::Error),
    /// Fewer bytes than the header needs.
    #[error("truncated: {len} bytes, but the {what} header alone needs {need}")]
    TruncatedHeader {
        /// Bytes in the (decompressed) file.
        len: usize,
        /// Header bytes needed.
        need: usize,
        /// `"image"` or `"label"`.
        what: &'static str,
    },
    /// The magic number is not the expected one.
    #[error("wrong magic number 0x{found:08x}{hint}: expected 0x{expected:08x} ({what})")]
    Magic {
        /// The first four bytes, big-endian.
        found: u32,
        /// The magic number of the expected kind of file.
        expected: u32,
        /// What the expected magic number means.
        what: &'static str,
        /// What the found magic number looks like, e.g. ` (an IDX label file?)`.
        hint: String,
    },
    /// A size in the header is zero or the total overflows.
    #[error("invalid dimensions {dims}: {why}")]
    Dimensions {
        /// The sizes as written in the header, e.g. `0 × 28 × 28`.
        dims: String,
        /// Why they are refused.
        why: &'static str,
    },
    /// Fewer data bytes than the header declares.
    #[error(
        "truncated: the header declares {dims} = {need} data bytes, but only {have} follow it"
    )]
    Truncated {
        /// The sizes as written in the header.
        dims: String,
        /// Data bytes the header declares.
        need: usize,
        /// Data bytes present.
        have: usize,
    },
    /// More bytes than the header declares.
    #[error("{extra} bytes after the {need} data bytes the header declares ({dims})")]
    Trailing {
        /// The sizes as written in the header.
        dims: String,
        /// Data bytes the header declares.
        need: usize,
        /// Bytes beyond them.
        extra: usize,
    },
    /// The label file does not hold one label per image.
    #[error("{labels} labels, but the image file {} holds {images} images", images_path.display())]
    CountMismatch {
        /// Labels in this file.
        labels: usize,
        /// Images in the matching image file.
        images: usize,
        /// The image file.
        images_path: PathBuf,
    },
    /// The images do not have the size the data set has.
    #[error("images are {rows}×{cols} pixels, expected {want_rows}×{want_cols}")]
    ImageSize {
        /// Rows found.
        rows: usize,
        /// Columns found.
        cols: usize,
        /// Rows expected.
        want_rows: usize,
        /// Columns expected.
        want_cols: usize,
    },
    /// A label outside the classes of the data set.
    #[error("label {value} of item {index} (0-based) is outside 0..={max}")]
    LabelRange {
        /// The label.
        value: u8,
        /// Its position in the file.
        index: usize,
        /// The largest allowed label.
        max: u8,
    },
}

/// An IDX file that cannot be used: the file and what is wrong with it.
#[derive(Debug, thiserror::Error)]
#[error("{}: {problem}", path.display())]
pub struct IdxError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong.
    pub problem: IdxProblem,
}

impl IdxError {
    /// An error about `path`.
    pub fn new(path: &Path, problem: IdxProblem) -> Self {
        Self {
            path: path.to_path_buf(),
            problem,
        }
    }
}

/// Whether `bytes` start with the gzip magic bytes.
pub fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0x1f, 0x8b])
}

/// The file's bytes, decompressed when it is gzip.
pub fn read_file(path: &Path) -> Result<Vec<u8>, IdxError> {
    let raw = std::fs::read(path).map_err(|e| {
        let p = if e.kind() == std::io::ErrorKind::NotFound {
            IdxProblem::NotFound
        } else {
            IdxProblem::Read(e)
        };
        IdxError::new(path, p)
    })?;
    if !is_gzip(&raw) {
        return Ok(raw);
    }
    let mut out = Vec::with_capacity(raw.len() * 4);
    flate2::read::MultiGzDecoder::new(raw.as_slice())
        .read_to_end(&mut out)
        .map_err(|e| IdxError::new(path, IdxProblem::Gzip(e)))?;
    Ok(out)
}

fn be_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// What a magic number looks like, for error messages.
fn magic_hint(found: u32) -> String {
    let [z0, z1, ty, nd] = found.to_be_bytes();
    if found == IMAGES_MAGIC {
        return " (an IDX image file?)".into();
    }
    if found == LABELS_MAGIC {
        return " (an IDX label file?)".into();
    }
    if z0 != 0 || z1 != 0 {
        return " (not an IDX file)".into();
    }
    let ty = match ty {
        0x08 => "unsigned bytes",
        0x09 => "signed bytes",
        0x0B => "i16",
        0x0C => "i32",
        0x0D => "f32",
        0x0E => "f64",
        _ => return " (not an IDX file: unknown type code)".into(),
    };
    format!(" (IDX {ty} with {nd} dimensions)")
}

/// Checks the magic number and reads `ndims` sizes; returns the sizes and
/// the data bytes after the header, which must hold exactly their product.
fn parse_header<'a>(
    bytes: &'a [u8],
    path: &Path,
    expected: u32,
    what: &'static str,
    meaning: &'static str,
) -> Result<(Vec<usize>, &'a [u8]), IdxError> {
    let ndims = (expected & 0xff) as usize;
    let header = 4 + 4 * ndims;
    let err = |p| IdxError::new(path, p);
    if bytes.len() < 4 {
        return Err(err(IdxProblem::TruncatedHeader {
            len: bytes.len(),
            need: header,
            what,
        }));
    }
    let found = be_u32(&bytes[..4]);
    if found != expected {
        return Err(err(IdxProblem::Magic {
            found,
            expected,
            what: meaning,
            hint: magic_hint(found),
        }));
    }
    if bytes.len() < header {
        return Err(err(IdxProblem::TruncatedHeader {
            len: bytes.len(),
            need: header,
            what,
        }));
    }
    let sizes: Vec<usize> = (0..ndims)
        .map(|i| be_u32(&bytes[4 + 4 * i..8 + 4 * i]) as usize)
        .collect();
    let dims = sizes
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>()
        .join(" × ");
    if sizes.contains(&0) {
        return Err(err(IdxProblem::Dimensions {
            dims,
            why: "every size must be ≥ 1",
        }));
    }
    let need = sizes
        .iter()
        .try_fold(1usize, |a, &s| a.checked_mul(s))
        .ok_or_else(|| {
            err(IdxProblem::Dimensions {
                dims: dims.clone(),
                why: "the product overflows",
            })
        })?;
    let data = &bytes[header..];
    if data.len() < need {
        return Err(err(IdxProblem::Truncated {
            dims,
            need,
            have: data.len(),
        }));
    }
    if data.len() > need {
        return Err(err(IdxProblem::Trailing {
            dims,
            need,
            extra: data.len() - need,
        }));
    }
    Ok((sizes, data))
}

/// Parses the bytes of an IDX image file (already decompressed); `path`
/// names it in errors.
pub fn parse_images(bytes: &[u8], path: &Path) -> Result<IdxImages, IdxError> {
    let (s, data) = parse_header(
        bytes,
        path,
        IMAGES_MAGIC,
        "image",
        "IDX images: unsigned bytes, 3 dimensions",
    )?;
    Ok(IdxImages {
        count: s[0],
        rows: s[1],
        cols: s[2],
        pixels: data.to_vec(),
    })
}

/// Parses the bytes of an IDX label file (already decompressed).
pub fn parse_labels(bytes: &[u8], path: &Path) -> Result<Vec<u8>, IdxError> {
    let (_, data) = parse_header(
        bytes,
        path,
        LABELS_MAGIC,
        "label",
        "IDX labels: unsigned bytes, 1 dimension",
    )?;
    Ok(data.to_vec())
}

/// Reads an IDX image file, raw or gzip.
pub fn read_images(path: &Path) -> Result<IdxImages, IdxError> {
    parse_images(&read_file(path)?, path)
}

/// Reads an IDX label file, raw or gzip.
pub fn read_labels(path: &Path) -> Result<Vec<u8>, IdxError> {
    parse_labels(&read_file(path)?, path)
}

/// Reads an image file and its label file, checking that they hold the
/// same number of items, that the images are `rows × cols` when `size` is
/// given and that every label is ≤ `max_label` when given.
pub fn read_pair(
    images_path: &Path,
    labels_path: &Path,
    size: Option<(usize, usize)>,
    max_label: Option<u8>,
) -> Result<(IdxImages, Vec<u8>), IdxError> {
    let images = read_images(images_path)?;
    if let Some((want_rows, want_cols)) = size {
        if (images.rows, images.cols) != (want_rows, want_cols) {
            return Err(IdxError::new(
                images_path,
                IdxProblem::ImageSize {
                    rows: images.rows,
                    cols: images.cols,
                    want_rows,
                    want_cols,
                },
            ));
        }
    }
    let labels = read_labels(labels_path)?;
    if labels.len() != images.count {
        return Err(IdxError::new(
            labels_path,
            IdxProblem::CountMismatch {
                labels: labels.len(),
                images: images.count,
                images_path: images_path.to_path_buf(),
            },
        ));
    }
    if let Some(max) = max_label {
        if let Some((index, &value)) = labels.iter().enumerate().find(|(_, &l)| l > max) {
            return Err(IdxError::new(
                labels_path,
                IdxProblem::LabelRange { value, index, max },
            ));
        }
    }
    Ok((images, labels))
}

/// The bytes of an IDX image file (uncompressed) holding `images`.
pub fn encode_images(images: &IdxImages) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + images.pixels.len());
    out.extend_from_slice(&IMAGES_MAGIC.to_be_bytes());
    for s in [images.count, images.rows, images.cols] {
        out.extend_from_slice(&(s as u32).to_be_bytes());
    }
    out.extend_from_slice(&images.pixels);
    out
}

/// The bytes of an IDX label file (uncompressed) holding `labels`.
pub fn encode_labels(labels: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + labels.len());
    out.extend_from_slice(&LABELS_MAGIC.to_be_bytes());
    out.extend_from_slice(&(labels.len() as u32).to_be_bytes());
    out.extend_from_slice(labels);
    out
}

/// `bytes` gzip-compressed (for writing `.gz` IDX files).
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).expect("writing to memory");
    enc.finish().expect("writing to memory")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn images() -> IdxImages {
        IdxImages {
            count: 3,
            rows: 2,
            cols: 4,
            pixels: (0..24).map(|i| (i * 11) as u8).collect(),
        }
    }

    #[test]
    fn round_trips_in_memory() {
        let p = Path::new("x");
        assert_eq!(
            parse_images(&encode_images(&images()), p).unwrap(),
            images()
        );
        assert_eq!(
            parse_labels(&encode_labels(&[1, 2, 9]), p).unwrap(),
            [1, 2, 9]
        );
    }

    #[test]
    fn header_errors_name_the_problem() {
        let p = Path::new("f.idx");
        let b = encode_images(&images());
        let e = parse_images(&b[..2], p).unwrap_err();
        assert!(matches!(
            e.problem,
            IdxProblem::TruncatedHeader {
                len: 2,
                need: 16,
                ..
            }
        ));
        let e = parse_images(&b[..10], p).unwrap_err();
        assert!(matches!(
            e.problem,
            IdxProblem::TruncatedHeader { len: 10, .. }
        ));
        let e = parse_labels(&b, p).unwrap_err();
        assert!(e.to_string().contains("(an IDX image file?)"), "{e}");
        let mut f32s = b.clone();
        f32s[2] = 0x0D;
        let e = parse_images(&f32s, p).unwrap_err();
        assert!(e.to_string().contains("IDX f32 with 3 dimensions"), "{e}");
        let mut zero = b.clone();
        zero[11] = 0;
        let e = parse_images(&zero, p).unwrap_err();
        assert!(e.to_string().contains("3 × 0 × 4"), "{e}");
        let mut huge = b;
        huge[4..16].fill(0xff);
        let e = parse_images(&huge, p).unwrap_err();
        assert!(e.to_string().contains("overflows"), "{e}");
    }
}
