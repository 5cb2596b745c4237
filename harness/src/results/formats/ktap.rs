//! KTAP version 1 (Documentation/dev-tools/ktap.rst), as KUnit prints it: one subtest per
//! group, each case a test line; a skip carries `# SKIP` and its reason; a failure, crash,
//! hang or case not reached is `not ok` after diagnostic lines that say why.

use std::fmt::Write;

use crate::{CaseResult, Verdict};

/// A KTAP test name: no `#` (it starts a directive) and no line breaks.
fn name(s: &str) -> String {
    s.replace('#', "_").replace(['\n', '\r'], " ")
}

/// A directive or diagnostic text on one line.
fn one_line(s: &str) -> String {
    s.lines().next().unwrap_or("").replace('#', "_")
}

/// KTAP of `results`: a subtest per group, as kunit.py parses it.
pub fn render(results: &[CaseResult]) -> String {
    let groups = super::groups(results);
    let mut out = String::from("KTAP version 1\n");
    let _ = writeln!(out, "1..{}", groups.len());
    for (i, (group, cases)) in groups.iter().enumerate() {
        let _ = writeln!(out, "    KTAP version 1\n    # Subtest: {}", name(group));
        let _ = writeln!(out, "    1..{}", cases.len());
        let mut group_ok = true;
        for (j, r) in cases.iter().enumerate() {
            let case = name(r.case.split_once('.').map_or(&*r.case, |(_, c)| c));
            let n = j + 1;
            match r.verdict {
                Verdict::Pass => {
                    let _ = writeln!(out, "    ok {n} {case}");
                }
                Verdict::Skip => {
                    let _ = writeln!(out, "    ok {n} {case} # SKIP {}", one_line(&r.reason));
                }
                v => {
                    group_ok = false;
                    // Diagnostics come before the result line, as KUnit prints them.
                    let what = match v {
                        Verdict::Fail => "failed",
                        Verdict::Crash => "crash",
                        Verdict::Hang => "hang",
                        _ => "not reached",
                    };
                    let mut lines = r.reason.lines();
                    let first = lines.next().unwrap_or("").replace('#', "_");
                    let said = match first.strip_prefix(what) {
                        Some(_) => first,
                        None => format!("{what}: {first}"),
                    };
                    let _ = writeln!(out, "    # {case}: {said}");
                    for l in lines {
                        let _ = writeln!(out, "    # {}", l.replace('#', "_"));
                    }
                    let _ = writeln!(out, "    not ok {n} {case}");
                }
            }
        }
        let status = if group_ok { "ok" } else { "not ok" };
        let _ = writeln!(out, "{status} {} {}", i + 1, name(group));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_become_subtests_with_skips_and_diagnostics() {
        let results = [
            CaseResult::new("init.depth_zero", Verdict::Pass, ""),
            CaseResult::new("init.no_flag", Verdict::Skip, "needs 6.14 # or later"),
            CaseResult::new("ids.close_unknown", Verdict::Crash, "guest went down\nOops"),
        ];
        assert_eq!(
            render(&results),
            "KTAP version 1\n1..2\n    KTAP version 1\n    # Subtest: init\n    1..2\n    ok 1 depth_zero\n    ok 2 no_flag # SKIP needs 6.14 _ or later\nok 1 init\n    KTAP version 1\n    # Subtest: ids\n    1..1\n    # close_unknown: crash: guest went down\n    # Oops\n    not ok 1 close_unknown\nnot ok 2 ids\n"
        );
    }
}
