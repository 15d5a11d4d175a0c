//! Reading points from CSV (one point per row, optional header) and writing
//! matrices as CSV, for `slicedscore score`.

use std::path::{Path, PathBuf};

/// A CSV file that is missing, unreadable or has a bad row.
#[derive(Debug, thiserror::Error)]
pub enum PointsError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A row has the wrong width or a non-number.
    #[error("{path}:{line}: {message}")]
    Row {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// No data rows.
    #[error("{path}: no data rows")]
    Empty {
        /// The file.
        path: PathBuf,
    },
}

/// Parses CSV text of `dim` numbers per row; a first line that is not
/// numeric is taken as a header. Blank lines are skipped.
pub fn parse_points(text: &str, dim: usize, path: &Path) -> Result<Vec<f64>, PointsError> {
    let mut out = Vec::new();
    let mut rows = 0;
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let parsed: Result<Vec<f64>, _> = fields.iter().map(|f| f.parse::<f64>()).collect();
        let values = match parsed {
            Ok(v) => v,
            Err(_) if rows == 0 && out.is_empty() && i == 0 => continue, // header
            Err(e) => {
                return Err(PointsError::Row {
                    path: path.to_path_buf(),
                    line: i + 1,
                    message: format!("not a number ({e}): {line:?}"),
                })
            }
        };
        if values.len() != dim {
            return Err(PointsError::Row {
                path: path.to_path_buf(),
                line: i + 1,
                message: format!(
                    "expected {dim} values (the model's dimension), found {}",
                    values.len()
                ),
            });
        }
        if let Some(bad) = values.iter().find(|v| !v.is_finite()) {
            return Err(PointsError::Row {
                path: path.to_path_buf(),
                line: i + 1,
                message: format!("value {bad} is not finite"),
            });
        }
        out.extend(values);
        rows += 1;
    }
    if rows == 0 {
        return Err(PointsError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(out)
}

/// Reads a points file (see [`parse_points`]).
pub fn read_points(path: &Path, dim: usize) -> Result<Vec<f64>, PointsError> {
    let text = std::fs::read_to_string(path).map_err(|source| PointsError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_points(&text, dim, path)
}

/// Formats a row-major `rows × cols` matrix as CSV with a header `prefix0,…`.
pub fn to_csv(values: &[f64], cols: usize, prefix: &str) -> String {
    let mut s = (0..cols)
        .map(|j| format!("{prefix}{j}"))
        .collect::<Vec<_>>()
        .join(",");
    s.push('\n');
    for row in values.chunks(cols) {
        let line: Vec<String> = row.iter().map(|v| format!("{v:e}")).collect();
        s.push_str(&line.join(","));
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_rows_and_errors() {
        let p = Path::new("p.csv");
        let v = parse_points("x0,x1\n1,2\n\n3.5,-4e-1\n", 2, p).unwrap();
        assert_eq!(v, vec![1.0, 2.0, 3.5, -0.4]);
        let e = parse_points("1,2\n1,2,3\n", 2, p).unwrap_err().to_string();
        assert!(
            e.contains("p.csv:2") && e.contains("expected 2 values"),
            "{e}"
        );
        let e = parse_points("1,2\n1,x\n", 2, p).unwrap_err().to_string();
        assert!(e.contains("p.csv:2") && e.contains("not a number"), "{e}");
        let e = parse_points("1,NaN\n", 2, p).unwrap_err().to_string();
        assert!(e.contains("not finite"), "{e}");
        assert!(matches!(
            parse_points("a,b\n", 2, p),
            Err(PointsError::Empty { .. })
        ));
    }

    #[test]
    fn csv_round_trip() {
        let s = to_csv(&[1.0, -2.5, 3.0, 4.0], 2, "s");
        let v = parse_points(&s, 2, Path::new("x")).unwrap();
        assert_eq!(v, vec![1.0, -2.5, 3.0, 4.0]);
    }
}
