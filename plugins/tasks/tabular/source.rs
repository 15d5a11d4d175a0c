//! Where the rows of a `tabular` task come from.
//!
//! Data flow: a [`SourceSpec`] (parsed from the experiment's RON) is turned
//! into a [`Table`] by [`SourceSpec::load`]: the UCI wine tables embedded in
//! the `rustyml` crate (quality column dropped), a UCI Parkinsons
//! Telemonitoring file or any numeric CSV read from disk (by [`read_csv`]),
//! or rows drawn from a synthetic [`TargetSpec`]. Every cell of a loaded table
//! is a finite number; anything else is an error that names the file, the
//! line and the column. Cleaning, splits and whitening happen afterwards, in
//! `preprocess.rs`.
//!
//! Columns are counted from 0 in messages, as in `skip_columns`; lines of a
//! file are counted from 1, as in an editor.

use std::path::{Path, PathBuf};

use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::error::{require_at_least, ConfigError};
use crate::targets::{TargetError, TargetSpec};

/// Where to find `parkinsons_updrs.data`, for error messages and docs.
pub const PARKINSONS_HINT: &str = "download `parkinsons_updrs.data` from the UCI Parkinsons \
     Telemonitoring data set (https://archive.ics.uci.edu/dataset/189/parkinsons+telemonitoring) \
     and put it at that path";

/// The default path of the Parkinsons Telemonitoring file,
/// `data/parkinsons_updrs.data` relative to the experiment file's folder
/// (see [`crate::data_path`]).
pub fn default_parkinsons_path() -> PathBuf {
    crate::data_path::resolve(PathBuf::from("data/parkinsons_updrs.data"))
}

/// The default `|corr|` above which a Parkinsons feature is dropped.
pub fn default_max_correlation() -> f64 {
    0.98
}

fn default_delimiter() -> char {
    ','
}

/// The first column of the Parkinsons file that is kept (as in the original
/// DKEF code: `subject#`, `age` and `sex` are dropped).
pub const PARKINSONS_FIRST_COLUMN: usize = 3;

/// Largest number of rows [`SourceSpec::Synthetic`] accepts.
pub const MAX_SYNTHETIC_CELLS: usize = 1 << 28;

/// Where the rows come from, as written in RON.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub enum SourceSpec {
    /// UCI Wine Quality, red (1599 × 11 after dropping `quality`), embedded
    /// in the `rustyml` crate. Dequantised before the split.
    RedWine,
    /// UCI Wine Quality, white (4898 × 11 after dropping `quality`).
    /// Dequantised before the split.
    WhiteWine,
    /// UCI Parkinsons Telemonitoring (`parkinsons_updrs.data`: a header line,
    /// comma-separated, 22 columns). Columns from index 3 on are kept and a
    /// feature whose `|corr|` with an earlier kept one exceeds
    /// `max_correlation` is dropped.
    Parkinsons {
        /// The file (default `data/parkinsons_updrs.data`; relative paths
        /// resolve against the experiment file's folder).
        #[serde(
            default = "default_parkinsons_path",
            deserialize_with = "crate::data_path::deserialize"
        )]
        path: PathBuf,
        /// Correlation threshold of the feature filter (default 0.98).
        #[serde(default = "default_max_correlation")]
        max_correlation: f64,
    },
    /// Any numeric CSV file.
    Csv {
        /// The file (a relative path resolves against the experiment file's
        /// folder).
        #[serde(deserialize_with = "crate::data_path::deserialize")]
        path: PathBuf,
        /// Whether the first non-blank line holds column names (default false).
        #[serde(default)]
        header: bool,
        /// Columns to ignore, counted from 0 (default none).
        #[serde(default)]
        skip_columns: Vec<usize>,
        /// Cell separator (default `','`; `';'` for the UCI wine files).
        #[serde(default = "default_delimiter")]
        delimiter: char,
        /// Dequantise every column as the wine tables are (default false).
        #[serde(default)]
        dequantize: bool,
    },
    /// `rows` iid draws from a synthetic target (no download needed).
    Synthetic {
        /// The density.
        target: TargetSpec,
        /// Number of rows drawn, before the split.
        rows: usize,
    },
}

/// A dense table of finite numbers, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// Number of rows.
    pub rows: usize,
    /// Number of columns.
    pub cols: usize,
    /// `rows × cols` values, row-major.
    pub data: Vec<f64>,
    /// One label per column for messages, e.g. `column 6 (0-based) "Jitter(%)"`.
    pub labels: Vec<String>,
}

impl Table {
    /// Column `j` as a vector.
    pub fn column(&self, j: usize) -> Vec<f64> {
        self.data
            .iter()
            .skip(j)
            .step_by(self.cols.max(1))
            .copied()
            .collect()
    }

    /// The table with only the columns `keep` (in that order).
    pub fn select_columns(&self, keep: &[usize]) -> Table {
        let mut data = Vec::with_capacity(self.rows * keep.len());
        for row in self.data.chunks_exact(self.cols.max(1)) {
            data.extend(keep.iter().map(|&j| row[j]));
        }
        Table {
            rows: self.rows,
            cols: keep.len(),
            data,
            labels: keep.iter().map(|&j| self.labels[j].clone()).collect(),
        }
    }
}

/// How [`read_csv`] and [`parse_csv`] read a file.
#[derive(Debug, Clone, Copy)]
pub struct CsvOptions<'a> {
    /// The first non-blank line holds column names.
    pub header: bool,
    /// Columns to ignore, counted from 0.
    pub skip_columns: &'a [usize],
    /// Cell separator.
    pub delimiter: char,
}

/// The label of file column `index` with an optional header name.
fn column_label(index: usize, name: Option<&str>) -> String {
    match name {
        Some(n) if !n.is_empty() => format!("column {index} (0-based) {n:?}"),
        _ => format!("column {index} (0-based)"),
    }
}

/// A cell with surrounding blanks and one pair of double quotes removed.
fn clean_cell(cell: &str) -> &str {
    let t = cell.trim();
    t.strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(t)
        .trim()
}

/// Parses CSV text into a [`Table`]. `origin` names the file in messages and
/// errors are reported on `field` (for a bad cell, ragged row or empty file)
/// or `skip_field` (for an out-of-range `skip_columns` entry).
///
/// Blank lines are ignored. Every kept cell must parse as a finite `f64`.
pub fn parse_csv(
    text: &str,
    origin: &str,
    opts: CsvOptions<'_>,
    field: &str,
    skip_field: &str,
) -> Result<Table, ConfigError> {
    let err = |msg: String| ConfigError::new(field, format!("{origin}: {msg}"));
    let mut names: Option<Vec<String>> = None;
    let mut width: Option<(usize, usize)> = None; // (cells, line it was set on)
    let mut keep: Vec<usize> = Vec::new();
    let mut data = Vec::new();
    let mut rows = 0usize;
    let mut header_pending = opts.header;
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let cells: Vec<&str> = line.split(opts.delimiter).collect();
        let (w, first_line) = *width.get_or_insert((cells.len(), line_no));
        if cells.len() != w {
            let what = if opts.header {
                "the header"
            } else {
                "the first row"
            };
            let row = if header_pending {
                String::new()
            } else {
                format!(" (data row {})", rows + 1)
            };
            return Err(err(format!(
                "line {line_no}{row} has {} cells, expected {w} like {what} (line {first_line}); \
                 is the delimiter {:?} right?",
                cells.len(),
                opts.delimiter
            )));
        }
        if keep.is_empty() && w > 0 {
            if let Some(&bad) = opts.skip_columns.iter().find(|&&c| c >= w) {
                return Err(ConfigError::new(
                    skip_field,
                    format!(
                        "column {bad} does not exist: {origin} has {w} columns (0 … {})",
                        w - 1
                    ),
                ));
            }
            keep = (0..w).filter(|c| !opts.skip_columns.contains(c)).collect();
            if keep.is_empty() {
                return Err(ConfigError::new(
                    skip_field,
                    format!("skips every one of the {w} columns of {origin}"),
                ));
            }
        }
        if header_pending {
            names = Some(cells.iter().map(|c| clean_cell(c).to_string()).collect());
            header_pending = false;
            continue;
        }
        rows += 1;
        for &c in &keep {
            let cell = clean_cell(cells[c]);
            let name = names.as_ref().map(|n| n[c].as_str());
            let at = || {
                format!(
                    "line {line_no} (data row {rows}), {}",
                    column_label(c, name)
                )
            };
            if cell.is_empty() {
                return Err(err(format!("{}: empty cell (missing value)", at())));
            }
            let v: f64 = cell.parse().map_err(|_| {
                let hint = if cells.len() == 1 && cell.contains([',', ';', '\t', ' ']) {
                    format!(
                        " (one cell per line: is the delimiter {:?} right?)",
                        opts.delimiter
                    )
                } else {
                    String::new()
                };
                err(format!("{}: {cell:?} is not a number{hint}", at()))
            })?;
            if !v.is_finite() {
                return Err(err(format!("{}: {cell:?} is not a finite number", at())));
            }
            data.push(v);
        }
    }
    if rows == 0 {
        return Err(err("no data rows".into()));
    }
    let labels = keep
        .iter()
        .map(|&c| column_label(c, names.as_ref().map(|n| n[c].as_str())))
        .collect();
    Ok(Table {
        rows,
        cols: keep.len(),
        data,
        labels,
    })
}

/// Reads a CSV file with [`parse_csv`]; a file that cannot be read is an
/// error on `field` naming the path (and `missing_hint`, if given, when the
/// file does not exist).
pub fn read_csv(
    path: &Path,
    opts: CsvOptions<'_>,
    field: &str,
    skip_field: &str,
    missing_hint: Option<&str>,
) -> Result<Table, ConfigError> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        let hint = match missing_hint {
            Some(h) if e.kind() == std::io::ErrorKind::NotFound => format!("; {h}"),
            _ => String::new(),
        };
        ConfigError::new(field, format!("cannot read {origin}: {e}{hint}"))
    })?;
    parse_csv(&text, &origin, opts, field, skip_field)
}

/// A wine table from `rustyml` with the last (`quality`) column dropped.
fn load_wine(red: bool) -> Result<Table, ConfigError> {
    let (name, (headers, features)) = if red {
        ("RedWine", rustyml::dataset::load_red_wine_quality())
    } else {
        ("WhiteWine", rustyml::dataset::load_white_wine_quality())
    };
    let (rows, cols) = features.dim();
    if cols < 2 || headers.len() != cols {
        return Err(ConfigError::new(
            "source",
            format!(
                "{name}: the embedded table has {cols} columns and {} names; expected 12 of each",
                headers.len()
            ),
        ));
    }
    let d = cols - 1;
    let mut data = Vec::with_capacity(rows * d);
    for row in features.rows() {
        data.extend(row.iter().take(d).copied());
    }
    if let Some(i) = data.iter().position(|v| !v.is_finite()) {
        return Err(ConfigError::new(
            "source",
            format!("{name}: row {}, column {} is not finite", i / d, i % d),
        ));
    }
    Ok(Table {
        rows,
        cols: d,
        data,
        labels: headers
            .iter()
            .take(d)
            .enumerate()
            .map(|(j, h)| column_label(j, Some(h)))
            .collect(),
    })
}

impl SourceSpec {
    /// The variant name as written in RON.
    pub fn variant_name(&self) -> &'static str {
        match self {
            SourceSpec::RedWine => "RedWine",
            SourceSpec::WhiteWine => "WhiteWine",
            SourceSpec::Parkinsons { .. } => "Parkinsons",
            SourceSpec::Csv { .. } => "Csv",
            SourceSpec::Synthetic { .. } => "Synthetic",
        }
    }

    /// A short description for `describe()`, e.g. `Csv(data/x.csv)`.
    pub fn describe(&self) -> String {
        match self {
            SourceSpec::Parkinsons { path, .. } | SourceSpec::Csv { path, .. } => {
                format!("{}({})", self.variant_name(), path.display())
            }
            SourceSpec::Synthetic { target, .. } => format!("Synthetic({})", target.variant_name()),
            _ => self.variant_name().to_string(),
        }
    }

    /// Whether every column is dequantised before the split (wine, or a
    /// `Csv` with `dequantize: true`).
    pub fn dequantizes(&self) -> bool {
        match self {
            SourceSpec::RedWine | SourceSpec::WhiteWine => true,
            SourceSpec::Csv { dequantize, .. } => *dequantize,
            _ => false,
        }
    }

    /// The correlation threshold of the feature filter, for sources that use one.
    pub fn correlation_filter(&self) -> Option<f64> {
        match self {
            SourceSpec::Parkinsons {
                max_correlation, ..
            } => Some(*max_correlation),
            _ => None,
        }
    }

    /// Checks the settings without reading anything.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let v = self.variant_name();
        match self {
            SourceSpec::Parkinsons {
                max_correlation, ..
            } => {
                if !(*max_correlation > 0.0 && *max_correlation <= 1.0) {
                    return Err(ConfigError::new(
                        format!("source.{v}.max_correlation"),
                        format!("must lie in (0, 1], got {max_correlation}"),
                    ));
                }
            }
            SourceSpec::Csv { delimiter, .. } => {
                if delimiter.is_alphanumeric() || matches!(delimiter, '.' | '-' | '+' | '"') {
                    return Err(ConfigError::new(
                        format!("source.{v}.delimiter"),
                        format!(
                            "{delimiter:?} can be part of a number; use ',', ';', '\\t' or ' '"
                        ),
                    ));
                }
            }
            SourceSpec::Synthetic { target, rows } => {
                require_at_least(&format!("source.{v}.rows"), *rows, 1)?;
                target.validate().map_err(|e| target_error(v, e))?;
                if rows.saturating_mul(target.dim()) > MAX_SYNTHETIC_CELLS {
                    return Err(ConfigError::new(
                        format!("source.{v}.rows"),
                        format!(
                            "rows × dim must be ≤ {MAX_SYNTHETIC_CELLS}, got {rows} × {}",
                            target.dim()
                        ),
                    ));
                }
            }
            SourceSpec::RedWine | SourceSpec::WhiteWine => {}
        }
        Ok(())
    }

    /// Validates the settings and loads the raw table (before any cleaning).
    /// Only [`SourceSpec::Synthetic`] draws from `rng`.
    pub fn load(&self, rng: &mut dyn RngCore) -> Result<Table, ConfigError> {
        self.validate()?;
        let v = self.variant_name();
        match self {
            SourceSpec::RedWine => load_wine(true),
            SourceSpec::WhiteWine => load_wine(false),
            SourceSpec::Parkinsons { path, .. } => {
                let skip: Vec<usize> = (0..PARKINSONS_FIRST_COLUMN).collect();
                let opts = CsvOptions {
                    header: true,
                    skip_columns: &skip,
                    delimiter: ',',
                };
                let field = format!("source.{v}.path");
                read_csv(path, opts, &field, &field, Some(PARKINSONS_HINT))
            }
            SourceSpec::Csv {
                path,
                header,
                skip_columns,
                delimiter,
                ..
            } => {
                let opts = CsvOptions {
                    header: *header,
                    skip_columns,
                    delimiter: *delimiter,
                };
                read_csv(
                    path,
                    opts,
                    &format!("source.{v}.path"),
                    &format!("source.{v}.skip_columns"),
                    None,
                )
            }
            SourceSpec::Synthetic { target, rows } => {
                let t = target.build(rng).map_err(|e| target_error(v, e))?;
                let d = t.dim();
                Ok(Table {
                    rows: *rows,
                    cols: d,
                    data: t.sample(rng, *rows),
                    labels: (0..d)
                        .map(|j| format!("coordinate {j} (0-based)"))
                        .collect(),
                })
            }
        }
    }
}

/// A target's error as a [`ConfigError`] under `source.<variant>.`.
fn target_error(variant: &str, e: TargetError) -> ConfigError {
    let TargetError::Invalid { field, message } = e;
    ConfigError::new(format!("source.{variant}.{field}"), message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(header: bool, skip: &[usize]) -> CsvOptions<'_> {
        CsvOptions {
            header,
            skip_columns: skip,
            delimiter: ',',
        }
    }

    fn parse(text: &str, header: bool, skip: &[usize]) -> Result<Table, ConfigError> {
        parse_csv(text, "t.csv", opts(header, skip), "f", "s")
    }

    #[test]
    fn reads_header_skips_columns_and_blank_lines() {
        let t = parse("id,a,\"b\"\n\n1, 2.5, -3\n2,1e2,\"4\"\r\n", true, &[0]).unwrap();
        assert_eq!((t.rows, t.cols), (2, 2));
        assert_eq!(t.data, vec![2.5, -3.0, 100.0, 4.0]);
        assert_eq!(t.labels[1], "column 2 (0-based) \"b\"");
        assert_eq!(t.column(1), vec![-3.0, 4.0]);
        let t = parse("1;2\n3;4\n", false, &[]);
        assert!(t.unwrap_err().message.contains("delimiter"));
    }

    #[test]
    fn bad_cells_name_line_row_and_column() {
        let e = parse("a,b\n1,2\n3,x\n", true, &[]).unwrap_err();
        assert_eq!(e.field, "f");
        assert!(e.message.contains("t.csv"), "{e}");
        assert!(e.message.contains("line 3 (data row 2)"), "{e}");
        assert!(e.message.contains("column 1 (0-based) \"b\""), "{e}");
        let e = parse("1,2\nNaN,2\n", false, &[]).unwrap_err();
        assert!(e.message.contains("line 2 (data row 2), column 0"), "{e}");
        assert!(e.message.contains("not a finite number"), "{e}");
        let e = parse("1,2\n3,\n", false, &[]).unwrap_err();
        assert!(e.message.contains("empty cell"), "{e}");
        let e = parse("1,2\n3,4,5\n", false, &[]).unwrap_err();
        assert!(
            e.message
                .contains("line 2 (data row 2) has 3 cells, expected 2"),
            "{e}"
        );
        let e = parse("1,2\n", false, &[2]).unwrap_err();
        assert_eq!(e.field, "s");
        assert!(e.message.contains("column 2 does not exist"), "{e}");
        let e = parse("1,2\n", false, &[0, 1]).unwrap_err();
        assert!(e.message.contains("every one"), "{e}");
        let e = parse("a,b\n\n", true, &[]).unwrap_err();
        assert!(e.message.contains("no data rows"), "{e}");
        // A skipped column may hold anything.
        let t = parse("x,1\ny,2\n", false, &[0]).unwrap();
        assert_eq!(t.data, vec![1.0, 2.0]);
    }

    #[test]
    fn bad_settings_are_refused_by_field() {
        let s = SourceSpec::Csv {
            path: "x".into(),
            header: false,
            skip_columns: vec![],
            delimiter: '.',
            dequantize: false,
        };
        assert_eq!(s.validate().unwrap_err().field, "source.Csv.delimiter");
        let s = SourceSpec::Parkinsons {
            path: "x".into(),
            max_correlation: 1.5,
        };
        assert_eq!(
            s.validate().unwrap_err().field,
            "source.Parkinsons.max_correlation"
        );
        let s = SourceSpec::Synthetic {
            target: TargetSpec::Gaussian {
                dim: 0,
                condition: 10.0,
            },
            rows: 10,
        };
        assert_eq!(
            s.validate().unwrap_err().field,
            "source.Synthetic.target.Gaussian.dim"
        );
    }
}
