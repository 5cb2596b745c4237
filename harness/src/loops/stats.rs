//! Figures of repeated measurements, shared by every loop that times something.

/// (median, min, max) of `values`.
pub fn spread(values: &[f64]) -> (f64, f64, f64) {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.as_slice() {
        [] => (0.0, 0.0, 0.0),
        _ => (v[v.len() / 2], v[0], v[v.len() - 1]),
    }
}
