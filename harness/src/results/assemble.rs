//! The post-processing: from what a boot saw (a [`RunLog`]: the events, the console, the
//! task dump, how it ended) to one result per planned case. The same function serves a live
//! run and `replay`, which loads the log from a run's saved artifacts.
//!
//! - the cases that reported keep their results;
//! - the case that was running when the guest went down is a crash, with a crash record
//!   (the kernel's fatal line or what the harness saw, and the console's tail); after a hang,
//!   a hang with the tasks the dump showed blocked; the cases never reached say so;
//! - each kernel report on the console belongs to the case whose markers enclose it, and
//!   fails it (crash for a panic).

use std::path::Path;

use proto::layout::{marker, Marker};
use proto::{CaseResult, Crash, Event, Finding, Verdict};

use crate::error::{Error, Result};
use crate::results::classify::Classifier;
use crate::results::ending::Ending;

/// Everything one boot (or one host-mode run) produced, as saved in its artifacts.
#[derive(Debug, Default)]
pub struct RunLog {
    /// `events.jsonl`
    pub events: Vec<Event>,
    /// `console.log` (none in host mode)
    pub console: Vec<String>,
    /// `task-dump.txt`, when the guest stopped making progress
    pub task_dump: Option<Vec<String>>,
    /// `ending.json`
    pub ending: Option<Ending>,
}

impl RunLog {
    /// The log saved in `dir`.
    pub fn load(dir: &Path) -> Result<RunLog> {
        let events_path = dir.join("events.jsonl");
        let events = std::fs::read_to_string(&events_path).map_err(|e| Error::NotARun {
            dir: dir.into(),
            file: "events.jsonl".into(),
            source: Some(Box::new(e)),
        })?;
        let read_lines = |name: &str| {
            std::fs::read_to_string(dir.join(name))
                .ok()
                .map(|t| t.lines().map(String::from).collect())
        };
        Ok(RunLog {
            // A line that is not an event was garbled in transit; the live run skipped it too.
            events: events
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect(),
            console: read_lines("console.log").unwrap_or_default(),
            task_dump: read_lines("task-dump.txt"),
            ending: Ending::load(dir).ok(),
        })
    }

    /// The release the agent said hello from.
    pub fn kernel_release(&self) -> Option<&str> {
        self.events.iter().find_map(|e| match e {
            Event::Hello { kernel_release, .. } => Some(kernel_release.as_str()),
            _ => None,
        })
    }
}

/// The results of one boot.
#[derive(Debug)]
pub struct Assembled {
    /// One per planned case, in plan order.
    pub results: Vec<CaseResult>,
    /// Every kernel report, with the case it appeared in (none: between cases or at boot).
    pub findings: Vec<(Option<String>, Finding)>,
    /// Why the agent did not finish, when it did not.
    pub died: Option<String>,
}

/// How many console lines a crash record keeps.
const CRASH_TAIL: usize = 20;

/// The results `log` makes of the `planned` cases: each case's result, crash record or
/// hang, the ones never reached, and the kernel's findings by case.
pub fn assemble(planned: &[String], log: &RunLog) -> Assembled {
    let mut results: Vec<CaseResult> = Vec::new();
    let mut running: Option<String> = None;
    let mut done = false;
    for e in &log.events {
        match e {
            Event::Start { case } => running = Some(case.clone()),
            Event::Result(r) => {
                if running.as_deref() == Some(&r.case) {
                    running = None;
                }
                results.push(r.clone());
            }
            Event::Done => done = true,
            // The counters are the coverage report's (`results::coverage`).
            Event::Hello { .. } | Event::Coverage { .. } => {}
        }
    }
    let findings = findings_by_case(&log.console);
    let mut died = None;
    let stopped = log
        .ending
        .as_ref()
        .is_some_and(|e| e.how == crate::results::ending::How::Stopped);
    if !done && stopped {
        // Asked to stop: the case that was running and the ones after it are not run,
        // which is neither a crash nor a failure of theirs.
        let reported: Vec<String> = results.iter().map(|r| r.case.clone()).collect();
        for case in planned.iter().filter(|c| !reported.contains(c)) {
            results.push(CaseResult::new(
                case.clone(),
                Verdict::Skip,
                "not run: the run stopped at a result that settles it".to_string(),
            ));
        }
    } else if !done {
        let ending = log.ending.as_ref();
        // The kernel's own fatal line, from the reports just classified.
        let panic = findings.iter().find(|(_, f)| f.kind.is_fatal());
        let cause = panic
            .map(|(_, f)| f.headline.clone())
            .or_else(|| ending.map(|e| e.how.describe()))
            .unwrap_or_else(|| "the guest went away without a word".into());
        if let Some(case) = &running {
            let mut r = CaseResult::new(case.clone(), Verdict::Crash, cause.clone());
            r.duration_ms = ending.and_then(|e| e.running_case_ms).unwrap_or(0);
            // The console as it was when the guest went down: before any task dump.
            let before_dump = log.console.len()
                - log
                    .task_dump
                    .as_ref()
                    .map_or(0, Vec::len)
                    .min(log.console.len());
            r.crash = Some(Crash {
                cause: cause.clone(),
                console_tail: crate::results::console::last(
                    &log.console[..before_dump],
                    CRASH_TAIL,
                ),
                ..Default::default()
            });
            if let (Some(dump), true) = (&log.task_dump, ending.is_some_and(|e| e.how.is_hang())) {
                mark_hang(&mut r, dump);
            }
            results.push(r);
        }
        let reported: Vec<String> = results.iter().map(|r| r.case.clone()).collect();
        for case in planned.iter().filter(|c| !reported.contains(c)) {
            let reason = match &running {
                Some(c) => format!("not reached: the guest went down during {c}"),
                None => format!("not reached: {cause}"),
            };
            results.push(CaseResult::new(case.clone(), Verdict::NotReached, reason));
        }
        died = Some(cause);
    }
    apply_findings(&mut results, &findings);
    Assembled {
        results,
        findings,
        died,
    }
}

/// The kernel's reports on `console`, each with the case whose start and end markers
/// enclose its first line.
pub fn findings_by_case(console: &[String]) -> Vec<(Option<String>, Finding)> {
    let mut classifier = Classifier::default();
    let mut context: Option<String> = None;
    // The case a report was open in when it started.
    let mut open_in: Option<String> = None;
    let mut out = Vec::new();
    for line in console {
        match marker(line) {
            Some(Marker::Start(case)) => context = Some(case.to_string()),
            Some(Marker::End(_)) => context = None,
            None => {
                let starts = crate::results::classify::starts_report(line);
                if let Some(f) = classifier.push(line) {
                    out.push((open_in.take(), f));
                }
                if starts {
                    open_in = context.clone();
                }
            }
        }
    }
    out.extend(classifier.finish().map(|f| (open_in, f)));
    out
}

/// The kernel's own fatal line (a panic's headline), if the console has one.
pub fn fatal_headline(console: &[String]) -> Option<String> {
    Classifier::all(&console.join("\n"))
        .into_iter()
        .find(|f| f.kind.is_fatal())
        .map(|f| f.headline)
}

/// A guest that hung: its running case is `hang`, with the tasks sysrq showed blocked
/// (state D) and their stacks.
fn mark_hang(r: &mut CaseResult, dump: &[String]) {
    let crash = r.crash.get_or_insert_with(Default::default);
    let mut in_blocked = false;
    for line in dump
        .iter()
        .map(|l| crate::results::console::strip_timestamp(l))
    {
        if let Some(rest) = line.strip_prefix("task:") {
            in_blocked = line.contains("state:D");
            if in_blocked {
                let name = rest.split_whitespace().next().unwrap_or("?");
                let pid = line
                    .split("pid:")
                    .nth(1)
                    .and_then(|p| p.split_whitespace().next())
                    .unwrap_or("?");
                crash.blocked_tasks.push(format!("{name} (pid {pid})"));
            }
        } else if line.starts_with("sysrq:") {
            in_blocked = false;
        }
        if in_blocked {
            crash.blocked_stacks.push(line.to_string());
        }
    }
    r.verdict = Verdict::Hang;
    let tasks = if crash.blocked_tasks.is_empty() {
        "none in state D".to_string()
    } else {
        crash.blocked_tasks.join(", ")
    };
    r.reason = format!(
        "{}; blocked tasks: {tasks} (task-dump.txt has every task)",
        crash.cause
    );
}

/// The kernel's reports make the case they appeared in fail (crash for a panic), each kind
/// once (a hung task is reported again every timeout period), with the report's kind and
/// first line before the earlier reason.
fn apply_findings(results: &mut [CaseResult], findings: &[(Option<String>, Finding)]) {
    for (case, f) in findings {
        let Some(r) = results.iter_mut().find(|r| Some(&r.case) == case.as_ref()) else {
            continue;
        };
        let already_cause = r.crash.as_ref().is_some_and(|c| c.cause == f.headline);
        if r.findings.iter().any(|seen| seen.kind == f.kind) || already_cause {
            continue;
        }
        r.findings.push(f.clone());
        let headline = format!("kernel reported {}: {}", f.kind.name(), f.headline);
        r.reason = if r.reason.is_empty() {
            headline
        } else {
            format!("{headline}; {}", r.reason)
        };
        r.verdict = match r.verdict {
            _ if f.kind.is_fatal() => Verdict::Crash,
            v if v.is_ok() => Verdict::Fail,
            v => v,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::ending::How;

    fn pass(case: &str) -> Event {
        Event::Result(CaseResult::new(case, Verdict::Pass, ""))
    }

    fn hello() -> Event {
        Event::Hello {
            kernel_release: "6.12".into(),
            cases: vec!["a".into(), "b".into(), "c".into()],
            modules: vec![],
            share: None,
        }
    }

    fn planned() -> Vec<String> {
        vec!["a".into(), "b".into(), "c".into()]
    }

    #[test]
    fn a_guest_that_dies_mid_case_keeps_earlier_results() {
        let log = RunLog {
            events: vec![
                hello(),
                Event::Start { case: "a".into() },
                pass("a"),
                Event::Start { case: "b".into() },
            ],
            console: vec![
                "[1.0] fpt-agent: start b".into(),
                "[1.1] Kernel panic - not syncing: x".into(),
                "[1.2] trace".into(),
            ],
            ending: Some(Ending {
                how: How::WentAway { detail: None },
                running_case_ms: Some(1500),
            }),
            task_dump: None,
        };
        let out = assemble(&planned(), &log);
        let v: Vec<Verdict> = out.results.iter().map(|r| r.verdict).collect();
        assert_eq!(v, [Verdict::Pass, Verdict::Crash, Verdict::NotReached]);
        let crash = out.results[1].crash.as_ref().unwrap();
        assert_eq!(crash.cause, "Kernel panic - not syncing: x");
        assert_eq!(crash.console_tail.last().unwrap(), "[1.2] trace");
        assert_eq!(out.results[1].duration_ms, 1500);
        assert_eq!(
            out.results[1].findings.len(),
            0,
            "the panic is the cause, not a second finding"
        );
        assert_eq!(
            out.results[2].reason,
            "not reached: the guest went down during b"
        );
        assert_eq!(out.died.as_deref(), Some("Kernel panic - not syncing: x"));
    }

    #[test]
    fn a_stopped_boot_leaves_the_rest_not_run_and_did_not_die() {
        let log = RunLog {
            events: vec![
                hello(),
                Event::Start { case: "a".into() },
                pass("a"),
                Event::Start { case: "b".into() },
            ],
            console: vec!["[1.0] fpt-agent: start b".into()],
            ending: Some(Ending {
                how: How::Stopped,
                running_case_ms: Some(10),
            }),
            task_dump: None,
        };
        let out = assemble(&planned(), &log);
        let v: Vec<Verdict> = out.results.iter().map(|r| r.verdict).collect();
        assert_eq!(v, [Verdict::Pass, Verdict::Skip, Verdict::Skip]);
        assert!(out.results[1]
            .reason
            .starts_with("not run: the run stopped"));
        assert_eq!(out.died, None);
    }

    /// One boot of several, stopped before its agent said hello (another boot settled the
    /// run): none of its cases ran, and nothing died.
    #[test]
    fn a_boot_stopped_before_its_agent_started_ran_nothing() {
        let log = RunLog {
            ending: Some(Ending {
                how: How::Stopped,
                running_case_ms: None,
            }),
            ..Default::default()
        };
        let out = assemble(&planned(), &log);
        assert!(out.results.iter().all(|r| r.verdict == Verdict::Skip));
        assert_eq!(out.results.len(), planned().len());
        assert_eq!(out.died, None);
    }

    #[test]
    fn a_finished_run_is_taken_as_is() {
        let log = RunLog {
            events: vec![hello(), pass("a"), pass("b"), pass("c"), Event::Done],
            ..Default::default()
        };
        let out = assemble(&planned(), &log);
        assert!(out.died.is_none());
        assert!(out.results.iter().all(|r| r.verdict == Verdict::Pass));
    }

    #[test]
    fn a_hang_names_the_blocked_tasks() {
        let log = RunLog {
            events: vec![hello(), Event::Start { case: "a".into() }],
            console: vec![],
            task_dump: Some(vec![
                "[5.0] sysrq: Show Blocked State".into(),
                "[5.0] task:fpt-agent       state:D stack:0     pid:57    tgid:57".into(),
                "[5.0]  fuse_simple_request+0x1/0x2".into(),
                "[5.1] sysrq: Show State".into(),
            ]),
            ending: Some(Ending {
                how: How::Unresponsive {
                    during: Some("a".into()),
                },
                running_case_ms: Some(10_000),
            }),
        };
        let out = assemble(&planned(), &log);
        let r = &out.results[0];
        assert_eq!(r.verdict, Verdict::Hang);
        assert_eq!(r.reason, "the guest stopped responding during a; blocked tasks: fpt-agent (pid 57) (task-dump.txt has every task)");
        assert_eq!(r.crash.as_ref().unwrap().blocked_stacks.len(), 2);
    }

    #[test]
    fn reports_belong_to_the_case_their_markers_enclose() {
        let console: Vec<String> = [
            "[1.0] fpt-agent: start a",
            "[1.1] INFO: task x:5 blocked for more than 2 seconds.",
            "[1.2] Call Trace:",
            "[1.3] fpt-agent: end a",
            "[1.4] INFO: task x:5 blocked for more than 2 seconds.",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let found = findings_by_case(&console);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].0.as_deref(), Some("a"));
        assert_eq!(found[1].0, None);
        let log = RunLog {
            events: vec![hello(), pass("a"), pass("b"), pass("c"), Event::Done],
            console,
            ..Default::default()
        };
        let out = assemble(&planned(), &log);
        assert_eq!(out.results[0].verdict, Verdict::Fail);
        assert_eq!(
            out.results[0].reason,
            "kernel reported hung task: INFO: task x:5 blocked for more than 2 seconds."
        );
    }
}
