//! How the data's own units relate to the coordinates a model sees.
//!
//! A task that preprocesses its data (e.g. `tabular`'s PCA whitening) trains
//! the model on `y = A (x − m)`, not on the user's `x`. The task describes
//! that map as a [`DataMap`] ([`crate::task::Task::data_map`]); the training
//! loop saves it in the run folder when the run starts ([`crate::run_data`]),
//! and whoever reloads the run ([`crate::run_loader`]) converts with it:
//!
//! * points in: `y = A (x − m)` ([`DataMap::to_model`]);
//! * scores out: `∇ₓ log p(x) = Aᵀ s(y)` ([`DataMap::score_to_data`]) — the
//!   chain rule; the Jacobian `|det A|` of the change of variables is a
//!   constant, so it changes log-densities by `log |det A|` but not scores;
//! * samples out: `x = A⁻¹ y + m` ([`DataMap::to_data`]).
//!
//! A map that is not affine (the logit of `images`) is [`DataMap::Opaque`]:
//! conversions refuse with a message naming it, and callers offer the
//! model's own coordinates instead.

use serde::{Deserialize, Serialize};

use crate::linalg;

/// Why points or scores could not be converted to or from the data's units.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum UnitsError {
    /// The map is not affine (or was not recorded).
    #[error("the model's coordinates are not an affine map of the data ({description}); only the model's own coordinates are available")]
    NotAffine {
        /// What the map is.
        description: String,
    },
    /// Points of the wrong width.
    #[error("{values} values are not rows of the map's dimension {dim}")]
    Shape {
        /// The map's dimension.
        dim: usize,
        /// How many values were given.
        values: usize,
    },
}

/// The map from the data's own units `x` to the model's coordinates `y`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum DataMap {
    /// The model sees the data as given: `y = x`.
    Identity,
    /// `y = A (x − m)`.
    Affine(Affine),
    /// Some other map (or one that was not recorded), described in words.
    Opaque {
        /// What the map is, for messages.
        description: String,
    },
}

/// An invertible affine map `y = A (x − m)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "AffineParts", into = "AffineParts")]
pub struct Affine {
    mean: Vec<f64>,
    matrix: Vec<f64>,
    inverse: Vec<f64>,
}

/// What [`Affine`] is written as: `m` and `A` (row-major).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct AffineParts {
    mean: Vec<f64>,
    matrix: Vec<f64>,
}

impl TryFrom<AffineParts> for Affine {
    type Error = String;
    fn try_from(p: AffineParts) -> Result<Self, String> {
        Affine::new(p.mean, p.matrix)
    }
}

impl From<Affine> for AffineParts {
    fn from(a: Affine) -> Self {
        AffineParts {
            mean: a.mean,
            matrix: a.matrix,
        }
    }
}

impl Affine {
    /// The map `y = A (x − m)` with `m = mean` (length `D`) and `A = matrix`
    /// (row-major `D × D`).
    ///
    /// # Errors
    /// A message when the sizes disagree, an entry is not finite, or `A` is
    /// singular.
    pub fn new(mean: Vec<f64>, matrix: Vec<f64>) -> Result<Self, String> {
        let d = mean.len();
        if d == 0 || matrix.len() != d * d {
            return Err(format!(
                "an affine map of dimension {d} needs a {d}×{d} matrix, got {} entries",
                matrix.len()
            ));
        }
        if mean.iter().any(|v| !v.is_finite()) {
            return Err("the mean has a non-finite entry".into());
        }
        let inverse = linalg::inverse(&matrix, d).map_err(|e| format!("the matrix: {e}"))?;
        Ok(Self {
            mean,
            matrix,
            inverse,
        })
    }

    /// Dimension `D`.
    pub fn dim(&self) -> usize {
        self.mean.len()
    }

    /// `m`.
    pub fn mean(&self) -> &[f64] {
        &self.mean
    }

    /// `A`, row-major.
    pub fn matrix(&self) -> &[f64] {
        &self.matrix
    }

    /// `log |det A|`: what the map adds to log-densities,
    /// `log p_x(x) = log p_y(y) + log |det A|`.
    pub fn log_abs_det(&self) -> f64 {
        linalg::determinant(&self.matrix, self.dim())
            .map(|d| d.abs().ln())
            .unwrap_or(f64::NAN)
    }

    /// `M v` for every row `v` of `rows` (row-major), `M` row-major `D × D`.
    fn rows_times(m: &[f64], rows: &[f64], d: usize, transpose: bool) -> Vec<f64> {
        let mut out = Vec::with_capacity(rows.len());
        for v in rows.chunks_exact(d) {
            for i in 0..d {
                let s: f64 = (0..d)
                    .map(|j| {
                        let mij = if transpose {
                            m[j * d + i]
                        } else {
                            m[i * d + j]
                        };
                        mij * v[j]
                    })
                    .sum();
                out.push(s);
            }
        }
        out
    }
}

impl DataMap {
    /// One line saying what the map is.
    pub fn describe(&self) -> String {
        match self {
            DataMap::Identity => "the data as given".into(),
            DataMap::Affine(a) => format!("an affine map y = A (x − m) of dimension {}", a.dim()),
            DataMap::Opaque { description } => description.clone(),
        }
    }

    /// Whether points and scores can be converted (identity or affine).
    pub fn is_convertible(&self) -> bool {
        !matches!(self, DataMap::Opaque { .. })
    }

    fn affine(&self, values: &[f64]) -> Result<Option<&Affine>, UnitsError> {
        match self {
            DataMap::Identity => Ok(None),
            DataMap::Affine(a) => {
                if !values.len().is_multiple_of(a.dim()) {
                    return Err(UnitsError::Shape {
                        dim: a.dim(),
                        values: values.len(),
                    });
                }
                Ok(Some(a))
            }
            DataMap::Opaque { description } => Err(UnitsError::NotAffine {
                description: description.clone(),
            }),
        }
    }

    /// Points in the data's units → the model's coordinates, `A (x − m)`
    /// for every row.
    pub fn to_model(&self, x: &[f64]) -> Result<Vec<f64>, UnitsError> {
        let Some(a) = self.affine(x)? else {
            return Ok(x.to_vec());
        };
        let d = a.dim();
        let centred: Vec<f64> = x
            .chunks_exact(d)
            .flat_map(|r| r.iter().zip(&a.mean).map(|(v, m)| v - m))
            .collect();
        Ok(Affine::rows_times(&a.matrix, &centred, d, false))
    }

    /// Points in the model's coordinates → the data's units, `A⁻¹ y + m`.
    pub fn to_data(&self, y: &[f64]) -> Result<Vec<f64>, UnitsError> {
        let Some(a) = self.affine(y)? else {
            return Ok(y.to_vec());
        };
        let d = a.dim();
        let mut x = Affine::rows_times(&a.inverse, y, d, false);
        for r in x.chunks_exact_mut(d) {
            r.iter_mut().zip(&a.mean).for_each(|(v, m)| *v += m);
        }
        Ok(x)
    }

    /// Scores in the model's coordinates → scores in the data's units,
    /// `∇ₓ log p(x) = Aᵀ s(y)` for every row.
    pub fn score_to_data(&self, s: &[f64]) -> Result<Vec<f64>, UnitsError> {
        match self.affine(s)? {
            None => Ok(s.to_vec()),
            Some(a) => Ok(Affine::rows_times(&a.matrix, s, a.dim(), true)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map() -> DataMap {
        DataMap::Affine(Affine::new(vec![1.0, -2.0], vec![2.0, 1.0, 0.0, 0.5]).unwrap())
    }

    #[test]
    fn round_trips_and_the_chain_rule() {
        let m = map();
        let x = vec![3.0, 4.0, -1.0, 0.5];
        let y = m.to_model(&x).unwrap();
        // A (x − m) for x = (3, 4): A (2, 6) = (10, 3).
        assert_eq!(&y[..2], &[10.0, 3.0]);
        let back = m.to_data(&y).unwrap();
        for (a, b) in back.iter().zip(&x) {
            assert!((a - b).abs() < 1e-12);
        }
        // log p_x(x) = log p_y(A(x − m)) + c with p_y = N(0, I): the data
        // score is −Aᵀ A (x − m); check against finite differences.
        let log_px = |x: &[f64]| -> f64 {
            let y = m.to_model(x).unwrap();
            -0.5 * y.iter().map(|v| v * v).sum::<f64>()
        };
        let sy: Vec<f64> = y[..2].iter().map(|v| -v).collect();
        let sx = m.score_to_data(&sy).unwrap();
        for j in 0..2 {
            let h = 1e-6;
            let mut a = x[..2].to_vec();
            let mut b = x[..2].to_vec();
            a[j] += h;
            b[j] -= h;
            let fd = (log_px(&a) - log_px(&b)) / (2.0 * h);
            assert!((sx[j] - fd).abs() < 1e-6, "{j}: {} vs {fd}", sx[j]);
        }
        assert!((map_det() - 1.0f64.ln()).abs() < 1e-12);
    }

    fn map_det() -> f64 {
        match map() {
            DataMap::Affine(a) => a.log_abs_det(),
            _ => unreachable!(),
        }
    }

    #[test]
    fn serializes_without_the_inverse_and_refuses_bad_maps() {
        let m = map();
        let text = serde_json::to_string(&m).unwrap();
        assert!(!text.contains("inverse"), "{text}");
        let back: DataMap = serde_json::from_str(&text).unwrap();
        assert_eq!(back, m);
        let e = serde_json::from_str::<DataMap>(r#"{"Affine":{"mean":[0,0],"matrix":[1,2,2,4]}}"#)
            .unwrap_err();
        assert!(e.to_string().contains("singular"), "{e}");
        assert!(Affine::new(vec![0.0], vec![1.0, 2.0]).is_err());
        let opaque = DataMap::Opaque {
            description: "a logit".into(),
        };
        let e = opaque.to_model(&[1.0]).unwrap_err().to_string();
        assert!(e.contains("a logit"), "{e}");
        assert_eq!(
            map().to_model(&[1.0, 2.0, 3.0]),
            Err(UnitsError::Shape { dim: 2, values: 3 })
        );
        assert_eq!(DataMap::Identity.to_data(&[1.5]).unwrap(), vec![1.5]);
    }
}
