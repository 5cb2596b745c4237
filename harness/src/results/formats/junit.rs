//! JUnit XML through quick-junit: a testsuite per group (per kernel and group when several
//! runs are merged), a failure with its reason for every case that did not pass or skip,
//! the console's tail as system-out.

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use crate::error::{Error, Result};
use crate::results::record::Run;
use crate::Verdict;

/// Console lines kept as a suite's system-out.
const CONSOLE_TAIL: usize = 60;

/// JUnit XML of `runs`: one testsuite per run, one testcase per case.
pub fn render(runs: &[&Run]) -> Result<String> {
    let mut report = Report::new("fuse-passthrough-harness");
    for run in runs {
        let console = super::console_log(run).map(|p| super::tail(&p, CONSOLE_TAIL));
        for (group, cases) in super::groups(&run.results) {
            let name = if runs.len() > 1 {
                format!("{}/{group}", run.kernel_release)
            } else {
                group.to_string()
            };
            let mut suite = TestSuite::new(name);
            for r in cases {
                let status = match r.verdict {
                    Verdict::Pass => TestCaseStatus::success(),
                    Verdict::Skip => {
                        let mut s = TestCaseStatus::skipped();
                        s.set_message(r.reason.as_str());
                        s
                    }
                    Verdict::Fail => {
                        let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                        s.set_message(r.reason.lines().next().unwrap_or(""))
                            .set_type("fail")
                            .set_description(r.reason.as_str());
                        s
                    }
                    v => {
                        let mut s = TestCaseStatus::non_success(NonSuccessKind::Error);
                        s.set_message(r.reason.lines().next().unwrap_or(""))
                            .set_type(v.name())
                            .set_description(r.reason.as_str());
                        s
                    }
                };
                let mut case = TestCase::new(r.case.as_str(), status);
                case.set_classname(format!("fpt.{group}"))
                    .set_time(std::time::Duration::from_millis(r.duration_ms));
                if let Some(c) = &r.crash {
                    case.set_system_out(c.console_tail.join("\n"));
                }
                suite.add_test_case(case);
            }
            if let Some(tail) = &console {
                suite.set_system_out(tail.as_str());
            }
            report.add_test_suite(suite);
        }
    }
    report
        .to_string()
        .map_err(|e| Error::io("junit.xml", std::io::Error::other(e.to_string())))
}
