//! The human summary: one row per case, then the totals and where the artifacts are.

use std::fmt::Write;

use proto::{CaseResult, Verdict};

use crate::kernel::Identity;

/// The verdict as the table shows it: failures in capitals.
pub fn verdict_name(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "pass",
        Verdict::Fail => "FAIL",
        Verdict::Skip => "skip",
        Verdict::Crash => "CRASH",
        Verdict::Hang => "HANG",
        Verdict::NotReached => "NOTRUN",
    }
}

/// What a result has beyond its one-line reason, for the end of the summary: the reason's
/// further lines, a crash's console tail, a hang's blocked stacks. Empty when nothing.
pub fn details(r: &CaseResult) -> String {
    let mut out = String::new();
    let mut lines: Vec<&str> = r.reason.lines().skip(1).collect();
    if let Some(c) = &r.crash {
        if !c.blocked_stacks.is_empty() {
            lines.push("blocked tasks:");
            lines.extend(c.blocked_stacks.iter().map(String::as_str));
        }
        if !c.console_tail.is_empty() {
            lines.push("last console lines:");
            lines.extend(c.console_tail.iter().map(String::as_str));
        }
    }
    if lines.is_empty() {
        return out;
    }
    let _ = writeln!(out, "{}: {}", r.case, r.reason.lines().next().unwrap_or(""));
    for l in lines {
        let _ = writeln!(out, "  {l}");
    }
    out
}

/// Who the kernel is, in a few lines: release and mode, source, patches, profile, config.
pub fn identity(id: &Identity, mode: &dyn std::fmt::Display) -> String {
    let mut out = format!("kernel {} ({mode})\nsource: {}", id.release, id.source);
    if !id.profile.is_empty() {
        let _ = write!(out, "\nprofile: {}", id.profile);
    }
    if !id.config_hash.is_empty() {
        let _ = write!(out, "  config: {}", id.config_hash);
    }
    for p in &id.patches {
        let _ = write!(out, "\npatch: {} ({})", p.name, p.sha256);
    }
    out
}

/// A table of `results`, reasons cut to one line (the full text is in results.json).
pub fn table(results: &[CaseResult]) -> String {
    let width = results
        .iter()
        .map(|r| r.case.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:width$}  {:7}  {:>8}  reason",
        "case", "verdict", "time"
    );
    for r in results {
        let reason = r.reason.lines().next().unwrap_or("");
        let reason = if reason.chars().count() > 90 {
            format!("{}...", reason.chars().take(87).collect::<String>())
        } else {
            reason.to_string()
        };
        let _ = writeln!(
            out,
            "{:width$}  {:7}  {:>6}ms  {}",
            r.case,
            verdict_name(r.verdict),
            r.duration_ms,
            reason
        );
    }
    out
}

/// "7 cases: 6 pass, 1 skip, 0 fail, 0 crash" (hang and not reached only when there are).
pub fn totals(results: &[CaseResult]) -> String {
    let n = |v| results.iter().filter(|r| r.verdict == v).count();
    let mut out = format!(
        "{} cases: {} pass, {} skip, {} fail, {} crash",
        results.len(),
        n(Verdict::Pass),
        n(Verdict::Skip),
        n(Verdict::Fail),
        n(Verdict::Crash)
    );
    for v in [Verdict::Hang, Verdict::NotReached] {
        if n(v) > 0 {
            let _ = write!(out, ", {} {}", n(v), v.name());
        }
    }
    out
}

/// An observation's value as a person reads it: a string without its quotes.
pub fn show_value(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_has_one_row_per_case_and_one_line_reasons() {
        let r = CaseResult {
            duration_ms: 12,
            ..CaseResult::new("ids.close_unknown", Verdict::Crash, "guest went down\nmore")
        };
        let t = table(std::slice::from_ref(&r));
        assert_eq!(t.lines().count(), 2);
        assert!(t
            .lines()
            .nth(1)
            .unwrap()
            .ends_with("CRASH        12ms  guest went down"));
        assert_eq!(
            totals(std::slice::from_ref(&r)),
            "1 cases: 0 pass, 0 skip, 0 fail, 1 crash"
        );
        assert_eq!(details(&r), "ids.close_unknown: guest went down\n  more\n");
        let not_run = CaseResult::new("a.b", Verdict::NotReached, "not reached");
        assert_eq!(
            totals(&[not_run]),
            "1 cases: 0 pass, 0 skip, 0 fail, 0 crash, 1 not reached"
        );
    }
}
