//! The guest's kernel console: kept whole in the artifacts, its tail in memory, and read for
//! the line that says why a guest went down.

use std::collections::VecDeque;

/// The last lines of the console, for reports.
#[derive(Debug, Default)]
pub struct Tail {
    lines: VecDeque<String>,
}

impl Tail {
    pub const KEEP: usize = 200;

    pub fn push(&mut self, line: String) {
        if self.lines.len() == Self::KEEP {
            self.lines.pop_front();
        }
        self.lines.push_back(line);
    }

    /// The last `n` lines.
    pub fn last(&self, n: usize) -> Vec<String> {
        self.lines.iter().skip(self.lines.len().saturating_sub(n)).cloned().collect()
    }

    /// The first line that says the kernel went down, if one does.
    pub fn fatal_headline(&self) -> Option<String> {
        self.lines.iter().find(|l| is_fatal(l)).map(|l| strip_timestamp(l).to_string())
    }
}

/// Lines after which the kernel will not come back. Finer classification (Oops, lockdep, hung
/// tasks...) is the console classifier's job.
fn is_fatal(line: &str) -> bool {
    line.contains("Kernel panic - not syncing")
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
    fn finds_the_panic_line() {
        let mut t = Tail::default();
        t.push("[    0.10] Run /init as init process".into());
        t.push("[    1.80] Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)".into());
        t.push("[    1.80] CPU: 0 PID: 1 Comm: swapper/0".into());
        assert_eq!(
            t.fatal_headline().unwrap(),
            "Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)"
        );
        assert_eq!(t.last(1), ["[    1.80] CPU: 0 PID: 1 Comm: swapper/0"]);
    }

    #[test]
    fn keeps_a_bounded_tail() {
        let mut t = Tail::default();
        for i in 0..1000 {
            t.push(i.to_string());
        }
        assert_eq!(t.last(Tail::KEEP + 10).len(), Tail::KEEP);
        assert_eq!(t.last(1), ["999"]);
        assert!(t.fatal_headline().is_none());
    }
}
