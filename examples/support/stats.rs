//! Figures shared by the benchmark examples (each includes this file with `#[path]`).

/// The `p` quantile (0..=1) of already sorted values, nearest rank; NaN when there are none.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}
