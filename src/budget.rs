//! Memory a setting would take, checked before anything is allocated.
//!
//! Rust aborts the process when an allocation fails, so a setting such as
//! `batch_size: 100000000000` must be refused before it reaches one. Every
//! place that allocates in proportion to a setting estimates the bytes with
//! [`bytes`] (saturating arithmetic, so no estimate overflows) and calls
//! [`require_fits`], which compares them with the memory this machine has
//! available (`MemAvailable` in `/proc/meminfo`, 90 % of it) and names the
//! field and the size when it does not fit.

use crate::error::ConfigError;

/// The fraction of the available memory one setting may claim.
const SHARE: f64 = 0.9;

/// Bytes the machine has available (`MemAvailable`; 8 GiB when unknown).
pub fn available_bytes() -> u128 {
    let from_proc = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines().find_map(|l| {
                let rest = l.strip_prefix("MemAvailable:")?;
                let kb: u128 = rest.trim().trim_end_matches("kB").trim().parse().ok()?;
                Some(kb * 1024)
            })
        });
    from_proc.unwrap_or(8 << 30)
}

/// The product of `factors` (element counts and bytes per element), saturating.
pub fn bytes(factors: &[usize]) -> u128 {
    factors
        .iter()
        .fold(1u128, |acc, &f| acc.saturating_mul(f as u128))
}

/// A byte count in GiB or MiB for messages.
pub fn human(bytes: u128) -> String {
    let b = bytes as f64;
    if b >= (1u128 << 30) as f64 {
        format!("{:.1} GiB", b / (1u128 << 30) as f64)
    } else {
        format!("{:.1} MiB", b / (1u128 << 20) as f64)
    }
}

/// Checks that `what`, which `field` makes take about `needed` bytes, fits
/// in the memory available.
///
/// # Errors
/// A [`ConfigError`] on `field` naming the estimate and what is available.
pub fn require_fits(field: &str, what: &str, needed: u128) -> Result<(), ConfigError> {
    let limit = (available_bytes() as f64 * SHARE) as u128;
    if needed > limit {
        return Err(ConfigError::new(
            field,
            format!(
                "{what} would take about {}, more than the {} of memory available here",
                human(needed),
                human(limit)
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_settings_are_refused_with_the_field_and_size() {
        let e = require_fits(
            "batch_size",
            "one training step",
            bytes(&[100_000_000_000, 128, 4, 16]),
        )
        .unwrap_err();
        assert_eq!(e.field, "batch_size");
        assert!(e.message.contains("GiB"), "{e}");
        assert!(require_fits("batch_size", "one training step", bytes(&[128, 128, 4, 16])).is_ok());
        assert_eq!(bytes(&[usize::MAX, usize::MAX, usize::MAX]), u128::MAX);
    }
}
