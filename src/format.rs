//! Text formatting shared by the reports (sweep tables, the scaling
//! benchmark): aligned columns, CSV fields, `mean ± standard error`.

/// Pads columns to equal widths (by characters, so `±` counts as one).
pub fn align_columns(lines: &[Vec<String>]) -> String {
    let cols = lines.iter().map(|l| l.len()).max().unwrap_or(0);
    let width: Vec<usize> = (0..cols)
        .map(|c| {
            lines
                .iter()
                .filter_map(|l| l.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for l in lines {
        let mut s = String::new();
        for (c, cell) in l.iter().enumerate() {
            if c > 0 {
                s.push_str("  ");
            }
            s.push_str(cell);
            if c + 1 < l.len() {
                s.push_str(&" ".repeat(width[c] - cell.chars().count()));
            }
        }
        out.push_str(s.trim_end());
        out.push('\n');
    }
    out
}

/// A CSV field, quoted when it holds a separator, quote or line break.
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// A number for CSV, empty when not finite.
pub fn csv_number(x: f64) -> String {
    if x.is_finite() {
        format!("{x}")
    } else {
        String::new()
    }
}

/// `mean ± se` rounded to the standard error's second significant digit
/// (the format of [`SweepReport::table`](crate::sweep::SweepReport::table)); `mean ± n/a` when `se` is not
/// finite (one run).
pub fn format_mean_se(mean: f64, se: f64) -> String {
    if !mean.is_finite() {
        return format!("{mean}");
    }
    if !se.is_finite() {
        return format!("{} ± n/a", format_sig(mean, 5));
    }
    if se == 0.0 {
        return format!("{} ± 0", format_sig(mean, 5));
    }
    let decimals = (1 - se.abs().log10().floor() as i64).clamp(0, 12) as usize;
    format!("{mean:.decimals$} ± {se:.decimals$}")
}

/// `x` with `digits` significant digits.
pub fn format_sig(x: f64, digits: i64) -> String {
    if x == 0.0 {
        return "0".into();
    }
    let decimals = (digits - 1 - x.abs().log10().floor() as i64).clamp(0, 12) as usize;
    format!("{x:.decimals$}")
}
