//! Console lines: their timestamps, and their tail. Recognising what the kernel reported
//! in them is the classifier's job (`classify`), the only place that reads them for that.

/// The last `n` of `lines`.
pub fn last(lines: &[String], n: usize) -> Vec<String> {
    lines[lines.len().saturating_sub(n)..].to_vec()
}

/// "[    1.23] text" -> "text"
pub fn strip_timestamp(line: &str) -> &str {
    match line.strip_prefix('[').and_then(|l| l.split_once("] ")) {
        Some((ts, rest)) if ts.trim().parse::<f64>().is_ok() => rest,
        _ => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_the_timestamp_only() {
        assert_eq!(
            strip_timestamp("[    1.80] Kernel panic - not syncing: x"),
            "Kernel panic - not syncing: x"
        );
        assert_eq!(strip_timestamp("[harness] x"), "[harness] x");
        assert_eq!(last(&["a".into(), "b".into()], 1), ["b"]);
        assert_eq!(last(&["a".into()], 5), ["a"]);
    }
}
