//! Independent reader for TensorBoard event files.
//!
//! An event file is a sequence of TFRecords: `u64` LE data length, `u32` LE
//! masked CRC32C of those 8 bytes, the data, `u32` LE masked CRC32C of the
//! data. Each record's data is a protobuf-encoded `tensorflow.Event`, decoded
//! here straight from the wire format (no generated code), so tests can check
//! the writer against an implementation that shares nothing with it.
//!
//! Scalars are read both from `Summary.Value.simple_value` (what
//! `tensorboard-rs` and TF1 write) and from single-element float/double
//! `Summary.Value.tensor`s (what TF2 and PyTorch's newer writers may write).
//! Values of the text plugin are read as their string, values of the hparams
//! plugin as the [`HParamsRecord`] in their metadata.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use super::hparams::{
    HParamInfo, HParamType, HParamValue, HParamsRecord, MetricInfo, SessionStatus, PLUGIN_NAME,
};

/// One scalar found in an event file.
#[derive(Debug, Clone, PartialEq)]
pub struct ScalarEvent {
    /// The summary tag, e.g. `"loss"`.
    pub tag: String,
    /// The training step of the enclosing event.
    pub step: i64,
    /// The value, as stored (32-bit; tensor doubles are rounded to `f32`).
    pub value: f32,
    /// Seconds since the Unix epoch when the event was written.
    pub wall_time: f64,
}

/// One decoded `tensorflow.Event` (only the parts this crate uses).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Event {
    /// Seconds since the Unix epoch.
    pub wall_time: f64,
    /// Training step (0 when absent).
    pub step: i64,
    /// Set on the first event of a file, e.g. `"brain.Event:2"`.
    pub file_version: Option<String>,
    /// The summary values; empty for events without a summary.
    pub values: Vec<SummaryValue>,
}

/// One `Summary.Value`.
#[derive(Debug, Clone, PartialEq)]
pub struct SummaryValue {
    /// The tag.
    pub tag: String,
    /// What the value holds.
    pub kind: ValueKind,
}

/// The payload of a [`SummaryValue`].
#[derive(Debug, Clone, PartialEq)]
pub enum ValueKind {
    /// A scalar, from `simple_value` or a one-element float/double tensor.
    Scalar(f32),
    /// An encoded image (`Summary.Image`), as stored.
    Image {
        /// The `width` field of the message.
        width: i32,
        /// The `height` field of the message.
        height: i32,
        /// The encoded image (PNG for tensorboard-rs).
        png: Vec<u8>,
    },
    /// A text-plugin value: the (Markdown) string of a scalar string tensor.
    Text(String),
    /// An hparams-plugin value: the record in its metadata.
    HParams(HParamsRecord),
    /// Anything else (histograms, audio, other tensors, no value).
    Other,
}

/// Why an event file could not be read. Offsets are byte offsets of the
/// start of the offending record; record indices count from 0.
#[derive(Debug, thiserror::Error)]
pub enum EventReadError {
    /// The file could not be opened or read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The event file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The file ends inside a record.
    #[error(
        "{}: record {record} at byte {offset} is truncated: needs {needed} bytes, {available} left",
        path.display()
    )]
    Truncated {
        /// The event file.
        path: PathBuf,
        /// Index of the record.
        record: usize,
        /// Byte offset of the record.
        offset: u64,
        /// Bytes the record needs (as far as known).
        needed: u64,
        /// Bytes left in the file from `offset`.
        available: u64,
    },
    /// A stored CRC does not match the bytes it covers.
    #[error(
        "{}: record {record} at byte {offset}: {part} CRC mismatch (stored {stored:#010x}, computed {computed:#010x})",
        path.display()
    )]
    Crc {
        /// The event file.
        path: PathBuf,
        /// Index of the record.
        record: usize,
        /// Byte offset of the record.
        offset: u64,
        /// `"length"` or `"data"`.
        part: &'static str,
        /// Masked CRC found in the file.
        stored: u32,
        /// Masked CRC of the bytes read.
        computed: u32,
    },
    /// The record's data is not a valid `Event` protobuf.
    #[error("{}: record {record} at byte {offset}: bad Event protobuf: {message}", path.display())]
    Decode {
        /// The event file.
        path: PathBuf,
        /// Index of the record.
        record: usize,
        /// Byte offset of the record.
        offset: u64,
        /// What is wrong.
        message: String,
    },
}

/// Event files directly inside `dir` (names containing `tfevents`, as
/// TensorBoard matches them), sorted by name, hence by creation second.
/// Subdirectories are not searched. An unreadable `dir` yields no files.
pub fn find_event_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|entry| entry.file_name().to_string_lossy().contains("tfevents"))
        .filter(|entry| entry.file_type().is_ok_and(|t| t.is_file()))
        .map(|entry| entry.path())
        .collect();
    files.sort();
    files
}

/// All scalars in the event file at `path`, in file order.
///
/// Every record's CRCs are verified; a damaged or truncated file is an error
/// (including a partially written last record of a file still being written).
pub fn read_scalars(path: &Path) -> Result<Vec<ScalarEvent>, EventReadError> {
    let events = read_events(path)?;
    Ok(events
        .into_iter()
        .flat_map(|event| {
            event.values.into_iter().filter_map(move |v| match v.kind {
                ValueKind::Scalar(value) => Some(ScalarEvent {
                    tag: v.tag,
                    step: event.step,
                    value,
                    wall_time: event.wall_time,
                }),
                _ => None,
            })
        })
        .collect())
}

/// All events in the event file at `path`, in file order, CRCs verified.
pub fn read_events(path: &Path) -> Result<Vec<Event>, EventReadError> {
    read_events_until_error(path).and_then(|(events, err)| match err {
        Some(e) => Err(e),
        None => Ok(events),
    })
}

/// The complete events at the start of the file at `path` (a file cut
/// short by a killed writer ends in a partial record, which is left out).
pub fn read_complete_events(path: &Path) -> Result<Vec<Event>, EventReadError> {
    read_events_until_error(path).map(|(events, _)| events)
}

/// The events up to the first bad record, and the error there (if any);
/// `Err` only when the file cannot be opened.
fn read_events_until_error(
    path: &Path,
) -> Result<(Vec<Event>, Option<EventReadError>), EventReadError> {
    let io_err = |source| EventReadError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io_err)?;
    let len = file.metadata().map_err(io_err)?.len();
    let mut reader = BufReader::new(file);
    let mut events = Vec::new();
    let mut offset = 0u64;
    while offset < len {
        let record = events.len();
        let data = match read_record(&mut reader, len - offset).map_err(|err| match err {
            RecordError::Io(source) => io_err(source),
            RecordError::Truncated { needed } => EventReadError::Truncated {
                path: path.to_path_buf(),
                record,
                offset,
                needed,
                available: len - offset,
            },
            RecordError::Crc {
                part,
                stored,
                computed,
            } => EventReadError::Crc {
                path: path.to_path_buf(),
                record,
                offset,
                part,
                stored,
                computed,
            },
        }) {
            Ok(d) => d,
            Err(e) => return Ok((events, Some(e))),
        };
        let event = match decode_event(&data) {
            Ok(e) => e,
            Err(message) => {
                let e = EventReadError::Decode {
                    path: path.to_path_buf(),
                    record,
                    offset,
                    message,
                };
                return Ok((events, Some(e)));
            }
        };
        events.push(event);
        offset += RECORD_OVERHEAD + data.len() as u64;
    }
    Ok((events, None))
}

/// The TFRecord masked CRC32C.
fn masked_crc(bytes: &[u8]) -> u32 {
    let crc = crc32c::crc32c(bytes);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// Header (8 + 4) plus footer (4) bytes around each record's data.
const RECORD_OVERHEAD: u64 = 16;

enum RecordError {
    Io(io::Error),
    Truncated {
        needed: u64,
    },
    Crc {
        part: &'static str,
        stored: u32,
        computed: u32,
    },
}

/// Read one record, given the number of bytes left in the file.
fn read_record(reader: &mut impl Read, available: u64) -> Result<Vec<u8>, RecordError> {
    if available < 12 {
        return Err(RecordError::Truncated { needed: 12 });
    }
    let mut header = [0u8; 12];
    reader.read_exact(&mut header).map_err(RecordError::Io)?;
    let (len_bytes, crc_bytes) = header.split_at(8);
    check_crc("length", len_bytes, crc_bytes)?;
    let data_len = u64::from_le_bytes(len_bytes.try_into().unwrap_or_default());
    let needed = data_len.saturating_add(RECORD_OVERHEAD);
    if needed > available {
        return Err(RecordError::Truncated { needed });
    }
    // `needed <= available <= file length`, so this fits in memory terms.
    let mut data = vec![0u8; data_len as usize];
    reader.read_exact(&mut data).map_err(RecordError::Io)?;
    let mut footer = [0u8; 4];
    reader.read_exact(&mut footer).map_err(RecordError::Io)?;
    check_crc("data", &data, &footer)?;
    Ok(data)
}

fn check_crc(part: &'static str, bytes: &[u8], stored: &[u8]) -> Result<(), RecordError> {
    let stored = u32::from_le_bytes(stored.try_into().unwrap_or_default());
    let computed = masked_crc(bytes);
    if stored == computed {
        Ok(())
    } else {
        Err(RecordError::Crc {
            part,
            stored,
            computed,
        })
    }
}

/// One protobuf field value, by wire type.
enum Wire<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
    Fixed32(u32),
}

/// Iterates over the `(field number, value)` pairs of a protobuf message.
struct Fields<'a> {
    buf: &'a [u8],
}

impl<'a> Fields<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if n > self.buf.len() {
            return Err(format!("field needs {n} bytes, {} left", self.buf.len()));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self.take(1)?.first().ok_or("empty")?;
            if shift == 63 && byte > 1 {
                return Err("varint overflows 64 bits".to_string());
            }
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("varint longer than 10 bytes".to_string())
    }

    fn next_field(&mut self) -> Result<Option<(u64, Wire<'a>)>, String> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let field = key >> 3;
        if field == 0 {
            return Err("field number 0".to_string());
        }
        let value = match key & 7 {
            0 => Wire::Varint(self.varint()?),
            1 => Wire::Fixed64(u64::from_le_bytes(le_array(self.take(8)?))),
            2 => {
                let len = self.varint()?;
                let len = usize::try_from(len).map_err(|_| "length overflows usize")?;
                Wire::Bytes(self.take(len)?)
            }
            5 => Wire::Fixed32(u32::from_le_bytes(le_array(self.take(4)?))),
            other => return Err(format!("field {field}: unsupported wire type {other}")),
        };
        Ok(Some((field, value)))
    }
}

fn le_array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    bytes.try_into().unwrap_or([0; N])
}

fn wrong_type(message: &str, field: u64) -> String {
    format!("{message}: field {field} has an unexpected wire type")
}

fn utf8(bytes: &[u8], what: &str) -> Result<String, String> {
    String::from_utf8(bytes.to_vec()).map_err(|_| format!("{what} is not UTF-8"))
}

/// `tensorflow.Event`.
fn decode_event(buf: &[u8]) -> Result<Event, String> {
    let mut event = Event::default();
    let mut fields = Fields::new(buf);
    while let Some((field, value)) = fields.next_field()? {
        match (field, value) {
            (1, Wire::Fixed64(bits)) => event.wall_time = f64::from_bits(bits),
            (2, Wire::Varint(v)) => event.step = v as i64,
            (3, Wire::Bytes(b)) => event.file_version = Some(utf8(b, "file_version")?),
            (5, Wire::Bytes(b)) => event.values = decode_summary(b)?,
            (1 | 2 | 3 | 5, _) => return Err(wrong_type("Event", field)),
            _ => {}
        }
    }
    Ok(event)
}

/// `tensorflow.Summary`.
fn decode_summary(buf: &[u8]) -> Result<Vec<SummaryValue>, String> {
    let mut values = Vec::new();
    let mut fields = Fields::new(buf);
    while let Some((field, value)) = fields.next_field()? {
        match (field, value) {
            (1, Wire::Bytes(b)) => values.push(decode_value(b)?),
            (1, _) => return Err(wrong_type("Summary", field)),
            _ => {}
        }
    }
    Ok(values)
}

/// `tensorflow.Summary.Value`.
fn decode_value(buf: &[u8]) -> Result<SummaryValue, String> {
    let mut tag = String::new();
    let mut kind = ValueKind::Other;
    let mut tensor: Option<Tensor> = None;
    let mut plugin: Option<(String, Vec<u8>)> = None;
    let mut fields = Fields::new(buf);
    while let Some((field, value)) = fields.next_field()? {
        match (field, value) {
            (1, Wire::Bytes(b)) => tag = utf8(b, "tag")?,
            (2, Wire::Fixed32(bits)) => kind = ValueKind::Scalar(f32::from_bits(bits)),
            (4, Wire::Bytes(b)) => kind = decode_image(b)?,
            (8, Wire::Bytes(b)) => tensor = Some(decode_tensor(b)?),
            (9, Wire::Bytes(b)) => plugin = decode_plugin_data(b)?,
            (1 | 2 | 4 | 8 | 9, _) => return Err(wrong_type("Summary.Value", field)),
            _ => {}
        }
    }
    match (plugin.as_ref().map(|(n, c)| (n.as_str(), c)), tensor) {
        (Some((PLUGIN_NAME, content)), _) => {
            kind = ValueKind::HParams(
                decode_hparams(content).map_err(|e| format!("hparams value {tag:?}: {e}"))?,
            );
        }
        (Some(("text", _)), Some(t)) => {
            let [text] = t.strings.as_slice() else {
                return Err(format!(
                    "text value {tag:?} holds {} strings, expected one",
                    t.strings.len()
                ));
            };
            kind = ValueKind::Text(utf8(text, "text")?);
        }
        (None | Some(("scalars", _)), Some(t)) => {
            if let [value] = t.numbers.as_slice() {
                kind = ValueKind::Scalar(*value as f32);
            }
        }
        _ => {}
    }
    Ok(SummaryValue { tag, kind })
}

/// `tensorflow.Summary.Image`.
fn decode_image(buf: &[u8]) -> Result<ValueKind, String> {
    let (mut width, mut height, mut png) = (0, 0, Vec::new());
    let mut fields = Fields::new(buf);
    while let Some((field, value)) = fields.next_field()? {
        match (field, value) {
            (1, Wire::Varint(v)) => height = v as i32,
            (2, Wire::Varint(v)) => width = v as i32,
            (4, Wire::Bytes(b)) => png = b.to_vec(),
            (1 | 2 | 4, _) => return Err(wrong_type("Summary.Image", field)),
            _ => {}
        }
    }
    Ok(ValueKind::Image { width, height, png })
}

/// What this reader takes from a `tensorflow.TensorProto`.
struct Tensor {
    /// Float or double elements (empty for other dtypes).
    numbers: Vec<f64>,
    /// `DT_STRING` elements.
    strings: Vec<Vec<u8>>,
}

/// The float, double or string elements of a `tensorflow.TensorProto`.
fn decode_tensor(buf: &[u8]) -> Result<Tensor, String> {
    const DT_FLOAT: u64 = 1;
    const DT_DOUBLE: u64 = 2;
    const DT_STRING: u64 = 7;
    let (mut dtype, mut content, mut values) = (0, &[][..], Vec::new());
    let mut strings = Vec::new();
    let mut fields = Fields::new(buf);
    while let Some((field, value)) = fields.next_field()? {
        match (field, value) {
            (1, Wire::Varint(v)) => dtype = v,
            (4, Wire::Bytes(b)) => content = b,
            (8, Wire::Bytes(b)) => strings.push(b.to_vec()),
            (5, Wire::Fixed32(bits)) => values.push(f64::from(f32::from_bits(bits))),
            (5, Wire::Bytes(packed)) => values.extend(
                packed
                    .chunks_exact(4)
                    .map(|c| f64::from(f32::from_le_bytes(le_array(c)))),
            ),
            (6, Wire::Fixed64(bits)) => values.push(f64::from_bits(bits)),
            (6, Wire::Bytes(packed)) => values.extend(
                packed
                    .chunks_exact(8)
                    .map(|c| f64::from_le_bytes(le_array(c))),
            ),
            (1 | 4 | 5 | 6 | 8, _) => return Err(wrong_type("TensorProto", field)),
            _ => {}
        }
    }
    let numbers = match dtype {
        DT_FLOAT if !content.is_empty() => content
            .chunks_exact(4)
            .map(|c| f64::from(f32::from_le_bytes(le_array(c))))
            .collect(),
        DT_DOUBLE if !content.is_empty() => content
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(le_array(c)))
            .collect(),
        DT_FLOAT | DT_DOUBLE => values,
        _ => Vec::new(),
    };
    let strings = if dtype == DT_STRING {
        strings
    } else {
        Vec::new()
    };
    Ok(Tensor { numbers, strings })
}

/// `SummaryMetadata.plugin_data`: the plugin name and content, if present.
fn decode_plugin_data(buf: &[u8]) -> Result<Option<(String, Vec<u8>)>, String> {
    let mut found = None;
    let mut fields = Fields::new(buf);
    while let Some((field, value)) = fields.next_field()? {
        if let (1, Wire::Bytes(plugin_data)) = (field, value) {
            let (mut name, mut content) = (String::new(), Vec::new());
            let mut inner = Fields::new(plugin_data);
            while let Some((field, value)) = inner.next_field()? {
                match (field, value) {
                    (1, Wire::Bytes(b)) => name = utf8(b, "plugin_name")?,
                    (2, Wire::Bytes(b)) => content = b.to_vec(),
                    _ => {}
                }
            }
            found = Some((name, content));
        }
    }
    Ok(found)
}

/// Reads a length-delimited string field.
fn string_field(value: Wire<'_>, what: &str) -> Result<String, String> {
    match value {
        Wire::Bytes(b) => utf8(b, what),
        _ => Err(format!("{what} is not a string")),
    }
}

/// Reads a double (`fixed64`) field.
fn double_field(value: Wire<'_>, what: &str) -> Result<f64, String> {
    match value {
        Wire::Fixed64(bits) => Ok(f64::from_bits(bits)),
        _ => Err(format!("{what} is not a double")),
    }
}

/// Reads a varint field.
fn varint_field(value: Wire<'_>, what: &str) -> Result<u64, String> {
    match value {
        Wire::Varint(v) => Ok(v),
        _ => Err(format!("{what} is not a varint")),
    }
}

/// `hparams.HParamsPluginData` (version 0) into a record.
fn decode_hparams(buf: &[u8]) -> Result<HParamsRecord, String> {
    let mut record = None;
    let mut fields = Fields::new(buf);
    while let Some((field, value)) = fields.next_field()? {
        match (field, value) {
            (1, v) => {
                let version = varint_field(v, "version")?;
                if version != 0 {
                    return Err(format!("plugin data version {version}, expected 0"));
                }
            }
            (2, Wire::Bytes(b)) => record = Some(decode_experiment(b)?),
            (3, Wire::Bytes(b)) => record = Some(decode_session_start(b)?),
            (4, Wire::Bytes(b)) => record = Some(decode_session_end(b)?),
            (2..=4, _) => return Err(wrong_type("HParamsPluginData", field)),
            _ => {}
        }
    }
    record.ok_or_else(|| "no experiment, session_start_info or session_end_info".to_string())
}

/// `hparams.Experiment`: hparam_infos (4) and metric_infos (5).
fn decode_experiment(buf: &[u8]) -> Result<HParamsRecord, String> {
    let (mut hparams, mut metrics) = (Vec::new(), Vec::new());
    let mut fields = Fields::new(buf);
    while let Some((field, value)) = fields.next_field()? {
        match (field, value) {
            (4, Wire::Bytes(b)) => {
                let mut info = HParamInfo {
                    name: String::new(),
                    kind: HParamType::Text,
                    description: String::new(),
                };
                let mut f = Fields::new(b);
                while let Some((field, value)) = f.next_field()? {
                    match field {
                        1 => info.name = string_field(value, "HParamInfo.name")?,
                        3 => info.description = string_field(value, "HParamInfo.description")?,
                        4 => {
                            info.kind = match varint_field(value, "HParamInfo.type")? {
                                1 => HParamType::Text,
                                2 => HParamType::Bool,
                                3 => HParamType::Number,
                                other => return Err(format!("HParamInfo.type {other}")),
                            }
                        }
                        _ => {}
                    }
                }
                hparams.push(info);
            }
            (5, Wire::Bytes(b)) => {
                let mut info = MetricInfo {
                    tag: String::new(),
                    description: String::new(),
                };
                let mut f = Fields::new(b);
                while let Some((field, value)) = f.next_field()? {
                    match (field, value) {
                        (1, Wire::Bytes(name)) => {
                            let mut n = Fields::new(name);
                            while let Some((field, value)) = n.next_field()? {
                                match field {
                                    1 => {
                                        let group = string_field(value, "MetricName.group")?;
                                        if !group.is_empty() {
                                            return Err(format!("metric group {group:?}"));
                                        }
                                    }
                                    2 => info.tag = string_field(value, "MetricName.tag")?,
                                    _ => {}
                                }
                            }
                        }
                        (4, v) => info.description = string_field(v, "MetricInfo.description")?,
                        _ => {}
                    }
                }
                metrics.push(info);
            }
            _ => {}
        }
    }
    Ok(HParamsRecord::Experiment { hparams, metrics })
}

/// `hparams.SessionStartInfo`: the hparams map (1) and start_time_secs (5).
fn decode_session_start(buf: &[u8]) -> Result<HParamsRecord, String> {
    let mut hparams = BTreeMap::new();
    let mut start_time_secs = 0.0;
    let mut fields = Fields::new(buf);
    while let Some((field, value)) = fields.next_field()? {
        match (field, value) {
            (1, Wire::Bytes(entry)) => {
                let (mut key, mut val) = (String::new(), None);
                let mut f = Fields::new(entry);
                while let Some((field, value)) = f.next_field()? {
                    match (field, value) {
                        (1, v) => key = string_field(v, "hparams key")?,
                        (2, Wire::Bytes(b)) => val = Some(decode_value_proto(b)?),
                        _ => {}
                    }
                }
                let val = val.ok_or_else(|| format!("hparam {key:?} has no value"))?;
                hparams.insert(key, val);
            }
            (5, v) => start_time_secs = double_field(v, "start_time_secs")?,
            _ => {}
        }
    }
    Ok(HParamsRecord::SessionStart {
        hparams,
        start_time_secs,
    })
}

/// `google.protobuf.Value`: number (2), string (3) or bool (4).
fn decode_value_proto(buf: &[u8]) -> Result<HParamValue, String> {
    let mut out = None;
    let mut fields = Fields::new(buf);
    while let Some((field, value)) = fields.next_field()? {
        out = Some(match field {
            2 => HParamValue::Number(double_field(value, "number_value")?),
            3 => HParamValue::Text(string_field(value, "string_value")?),
            4 => HParamValue::Bool(varint_field(value, "bool_value")? != 0),
            other => return Err(format!("unsupported google.protobuf.Value field {other}")),
        });
    }
    out.ok_or_else(|| "empty google.protobuf.Value".to_string())
}

/// `hparams.SessionEndInfo`: status (1) and end_time_secs (2).
fn decode_session_end(buf: &[u8]) -> Result<HParamsRecord, String> {
    let mut status = SessionStatus::Unknown;
    let mut end_time_secs = 0.0;
    let mut fields = Fields::new(buf);
    while let Some((field, value)) = fields.next_field()? {
        match field {
            1 => {
                status = match varint_field(value, "status")? {
                    0 => SessionStatus::Unknown,
                    1 => SessionStatus::Success,
                    2 => SessionStatus::Failure,
                    3 => SessionStatus::Running,
                    other => return Err(format!("session status {other}")),
                }
            }
            2 => end_time_secs = double_field(value, "end_time_secs")?,
            _ => {}
        }
    }
    Ok(HParamsRecord::SessionEnd {
        status,
        end_time_secs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logging::{Logger, TensorBoardLogger};

    /// Write scalars with the real writer; return the event file.
    fn write_run(dir: &Path, records: &[(&str, u64, f32)]) -> PathBuf {
        let mut logger = TensorBoardLogger::create(dir).unwrap();
        for &(tag, step, value) in records {
            logger.scalar(tag, step, f64::from(value)).unwrap();
        }
        logger.close().unwrap();
        let files = find_event_files(dir);
        assert_eq!(files.len(), 1);
        files[0].clone()
    }

    const RECORDS: &[(&str, u64, f32)] = &[
        ("loss", 0, 0.0),
        ("loss", 1, 1.0 / 3.0),
        ("loss/train", 2, -7.5e-12),
        ("lr", 1_000_000_007, f32::MAX),
        ("lr", 3, f32::MIN_POSITIVE),
        ("weird tag ✓", 4, -0.0),
        ("inf", 5, f32::INFINITY),
    ];

    #[test]
    fn reads_back_exact_scalars() {
        let tmp = tempfile::tempdir().unwrap();
        let before = SystemTimeSecs::now();
        let file = write_run(tmp.path(), RECORDS);
        let scalars = read_scalars(&file).unwrap();
        let got: Vec<(&str, i64, u32)> = scalars
            .iter()
            .map(|s| (s.tag.as_str(), s.step, s.value.to_bits()))
            .collect();
        let want: Vec<(&str, i64, u32)> = RECORDS
            .iter()
            .map(|&(t, s, v)| (t, s as i64, v.to_bits()))
            .collect();
        assert_eq!(got, want);
        for s in &scalars {
            assert!(s.wall_time >= before.0 - 1.0 && s.wall_time < before.0 + 600.0);
        }
        let events = read_events(&file).unwrap();
        assert_eq!(events[0].file_version.as_deref(), Some("brain.Event:2"));
        assert_eq!(events.len(), RECORDS.len() + 1);
    }

    #[test]
    fn nan_passes_through() {
        let tmp = tempfile::tempdir().unwrap();
        let file = write_run(tmp.path(), &[("loss", 1, f32::NAN)]);
        let scalars = read_scalars(&file).unwrap();
        assert_eq!(scalars.len(), 1);
        assert!(scalars[0].value.is_nan());
    }

    #[test]
    fn flipped_byte_is_a_crc_error() {
        let tmp = tempfile::tempdir().unwrap();
        let file = write_run(tmp.path(), RECORDS);
        let clean = fs::read(&file).unwrap();
        let offsets = record_offsets(&clean);

        // A byte inside the data of record 2.
        let mut bytes = clean.clone();
        bytes[offsets[2] as usize + 14] ^= 0x01;
        fs::write(&file, &bytes).unwrap();
        let err = read_scalars(&file).unwrap_err();
        assert!(
            matches!(
                err,
                EventReadError::Crc { record: 2, offset, part: "data", .. } if offset == offsets[2]
            ),
            "{err}"
        );
        assert!(err.to_string().contains("record 2"), "{err}");

        // A byte of the length field of record 1.
        let mut bytes = clean.clone();
        bytes[offsets[1] as usize] ^= 0x40;
        fs::write(&file, &bytes).unwrap();
        let err = read_scalars(&file).unwrap_err();
        assert!(
            matches!(
                err,
                EventReadError::Crc { record: 1, offset, part: "length", .. } if offset == offsets[1]
            ),
            "{err}"
        );
    }

    #[test]
    fn truncation_is_reported() {
        let tmp = tempfile::tempdir().unwrap();
        let file = write_run(tmp.path(), RECORDS);
        let clean = fs::read(&file).unwrap();
        let offsets = record_offsets(&clean);
        let last = offsets.len() - 1;
        // Cut inside the data, then inside the header, of the last record.
        for cut in [clean.len() - 5, offsets[last] as usize + 3] {
            fs::write(&file, &clean[..cut]).unwrap();
            let err = read_scalars(&file).unwrap_err();
            assert!(
                matches!(
                    err,
                    EventReadError::Truncated { record, offset, available, .. }
                        if record == last && offset == offsets[last]
                            && available == (cut as u64 - offsets[last])
                ),
                "{err}"
            );
        }
        // Cutting exactly at a record boundary loses records silently; that
        // is inherent to the format.
        fs::write(&file, &clean[..offsets[last] as usize]).unwrap();
        assert_eq!(read_scalars(&file).unwrap().len(), RECORDS.len() - 1);
    }

    #[test]
    fn missing_file_is_io_error() {
        let tmp = tempfile::tempdir().unwrap();
        let err = read_scalars(&tmp.path().join("nope")).unwrap_err();
        assert!(matches!(err, EventReadError::Io { .. }));
        assert!(find_event_files(&tmp.path().join("nope")).is_empty());
    }

    #[test]
    fn decodes_tensor_scalars_and_skips_unknown_fields() {
        // Hand-encoded TF2-style value: tag, metadata{plugin_data{"scalars"}},
        // tensor{dtype DT_FLOAT, tensor_content 4 bytes}, plus unknown fields
        // of every wire type.
        let mut tensor = vec![0x08, 0x01, 0x22, 0x04];
        tensor.extend(2.5f32.to_le_bytes());
        let plugin = b"\x0a\x09\x0a\x07scalars";
        let mut value = vec![0x0a, 0x01, b'x'];
        value.extend([0x4a, plugin.len() as u8]);
        value.extend(plugin);
        value.extend([0x42, tensor.len() as u8]);
        value.extend(&tensor);
        value.extend([0x50, 0x96, 0x01]); // field 10 varint
        value.extend([0x59, 0, 0, 0, 0, 0, 0, 0, 0]); // field 11 fixed64
        value.extend([0x65, 0, 0, 0, 0]); // field 12 fixed32
        let mut summary = vec![0x0a, value.len() as u8];
        summary.extend(&value);
        let mut event = vec![0x09];
        event.extend(1.0f64.to_le_bytes());
        event.extend([0x10, 0x2a, 0x2a, summary.len() as u8]);
        event.extend(&summary);

        let decoded = decode_event(&event).unwrap();
        assert_eq!(decoded.step, 42);
        assert_eq!(decoded.wall_time, 1.0);
        assert_eq!(
            decoded.values,
            vec![SummaryValue {
                tag: "x".to_string(),
                kind: ValueKind::Scalar(2.5)
            }]
        );

        // A packed double_val tensor from another plugin is not a scalar.
        let mut tensor = vec![0x08, 0x02, 0x32, 0x08];
        tensor.extend(1.0f64.to_le_bytes());
        let mut value = vec![0x0a, 0x01, b'h', 0x4a, 0x0e, 0x0a, 0x0c, 0x0a, 0x0a];
        value.extend(b"histograms");
        value.extend([0x42, tensor.len() as u8]);
        value.extend(&tensor);
        assert_eq!(decode_value(&value).unwrap().kind, ValueKind::Other);
    }

    #[test]
    fn malformed_protobuf_is_a_decode_error() {
        assert!(decode_event(&[0x2a, 0x05, 0x0a]).is_err()); // length past end
        assert!(decode_event(&[0x0b]).is_err()); // wire type 3 (group)
        assert!(decode_event(&[0x10, 0xff]).is_err()); // unterminated varint
        assert!(decode_event(&[0x15, 0, 0, 0, 0]).is_err()); // step as fixed32
    }

    /// Byte offsets of every record, parsed naively from the length fields.
    fn record_offsets(bytes: &[u8]) -> Vec<u64> {
        let mut offsets = Vec::new();
        let mut at = 0usize;
        while at < bytes.len() {
            offsets.push(at as u64);
            let len = u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap()) as usize;
            at += len + 16;
        }
        offsets
    }

    struct SystemTimeSecs(f64);
    impl SystemTimeSecs {
        fn now() -> Self {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap();
            Self(t.as_secs_f64())
        }
    }
}
