//! Telling a run that diverges from one that learns.
//!
//! A quantity diverges when it is NaN or infinite, or when its magnitude
//! exceeds [`EXPLOSION`] times its first value (floored at 1). The loop
//! watches the training loss from its first step and the validation
//! selection metric from its first evaluation; score-matching losses can
//! legitimately fall a few orders of magnitude (NICE on MNIST goes from about
//! −10² to −10⁴), not the ten-thousandfold-and-more growth of an unstable
//! optimizer.

/// How many times its first magnitude (at least 1) a quantity may reach.
pub const EXPLOSION: f64 = 1e6;

/// The first values of the watched quantities.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DivergenceGuard {
    /// The training loss at the first step.
    pub first_loss: Option<f64>,
    /// The selection metric at the first evaluation.
    pub first_metric: Option<f64>,
}

/// A quantity that diverged.
#[derive(Debug, Clone, PartialEq)]
pub struct Divergence {
    /// Its value.
    pub value: f64,
    /// Its first value (when it was finite before).
    pub first: Option<f64>,
}

fn check(first: &mut Option<f64>, value: f64) -> Option<Divergence> {
    if !value.is_finite() {
        return Some(Divergence {
            value,
            first: *first,
        });
    }
    match *first {
        None => {
            *first = Some(value);
            None
        }
        Some(f) if value.abs() > EXPLOSION * f.abs().max(1.0) => Some(Divergence {
            value,
            first: Some(f),
        }),
        Some(_) => None,
    }
}

impl DivergenceGuard {
    /// Checks a training loss.
    pub fn loss(&mut self, value: f64) -> Option<Divergence> {
        check(&mut self.first_loss, value)
    }

    /// Checks the validation selection metric.
    pub fn metric(&mut self, value: f64) -> Option<Divergence> {
        check(&mut self.first_metric, value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explosions_and_non_finite_values_diverge_falls_do_not() {
        let mut g = DivergenceGuard::default();
        assert!(g.loss(-3.0).is_none());
        assert!(g.loss(-300.0).is_none());
        assert!(g.loss(-2.9e6).is_none());
        assert!(g.loss(4e6).is_some());
        assert!(g.loss(f64::NAN).is_some());
        let mut g = DivergenceGuard::default();
        assert!(g.metric(0.01).is_none());
        assert!(g.metric(9e5).is_none(), "floored at 1");
        assert_eq!(g.metric(2e7).unwrap().first, Some(0.01));
    }
}
