//! Turns the agent's event stream into one result per case, whatever happened to the guest:
//! the case that was running when it went down is a crash with the console's last lines, and
//! the cases it never reached say so.

use std::time::{Duration, Instant};

use guest::report::{CaseResult, Event, Verdict};

#[derive(Debug)]
pub struct Collector {
    started: Instant,
    /// Cases in the order the run will take them.
    planned: Vec<String>,
    pub kernel_release: Option<String>,
    pub modules: Vec<String>,
    pub results: Vec<CaseResult>,
    /// The case started and not yet reported, with when it started.
    pub running: Option<(String, Instant)>,
    pub first_result_after: Option<Duration>,
    pub done: bool,
}

impl Collector {
    pub fn new(planned: Vec<String>) -> Self {
        Collector {
            started: Instant::now(),
            planned,
            kernel_release: None,
            modules: Vec::new(),
            results: Vec::new(),
            running: None,
            first_result_after: None,
            done: false,
        }
    }

    pub fn hello_seen(&self) -> bool {
        self.kernel_release.is_some()
    }

    pub fn take(&mut self, event: Event) {
        match event {
            Event::Hello { kernel_release, modules, .. } => {
                self.kernel_release = Some(kernel_release);
                self.modules = modules;
            }
            Event::Start { case } => self.running = Some((case, Instant::now())),
            Event::Result(r) => {
                self.first_result_after.get_or_insert(self.started.elapsed());
                if self.running.as_ref().is_some_and(|(c, _)| *c == r.case) {
                    self.running = None;
                }
                self.results.push(r);
            }
            Event::Done => self.done = true,
        }
    }

    /// Close the run. `why` says how the guest went down if the agent did not finish; the
    /// running case gets it (with `console` lines), the cases never reached get a pointer.
    pub fn finish(mut self, why: Option<String>, console: &[String]) -> Vec<CaseResult> {
        let why = match (self.done, why) {
            (true, _) => return self.results,
            (false, Some(w)) => w,
            (false, None) => "the guest went away without a word".to_string(),
        };
        let mut crashed_in = None;
        if let Some((case, since)) = self.running.take() {
            let reason = format!("{why}; last console lines:\n{}", console.join("\n"));
            self.results.push(crash(&case, reason, since.elapsed()));
            crashed_in = Some(case);
        }
        let reported: Vec<String> = self.results.iter().map(|r| r.case.clone()).collect();
        for case in self.planned.iter().filter(|c| !reported.contains(c)) {
            let reason = match &crashed_in {
                Some(c) => format!("not reached: the guest went down during {c}"),
                None => format!("not reached: {why}"),
            };
            self.results.push(crash(case, reason, Duration::ZERO));
        }
        self.results
    }
}

/// A guest that hung: the case it hung in is `hang`, with the tasks sysrq showed blocked
/// (state D) and their stacks.
pub fn mark_hang(results: &mut [CaseResult], dump: &[String]) {
    let Some(r) = results.iter_mut().find(|r| r.verdict == Verdict::Crash && !r.reason.starts_with("not reached")) else {
        return;
    };
    let mut blocked = Vec::new();
    let mut stacks = Vec::new();
    let mut in_blocked = false;
    for line in dump.iter().map(|l| crate::console::strip_timestamp(l)) {
        if line.starts_with("task:") {
            in_blocked = line.contains("state:D");
            if in_blocked {
                let name = line["task:".len()..].split_whitespace().next().unwrap_or("?");
                let pid = line.split("pid:").nth(1).and_then(|p| p.split_whitespace().next()).unwrap_or("?");
                blocked.push(format!("{name} (pid {pid})"));
            }
        } else if line.starts_with("sysrq:") {
            in_blocked = false;
        }
        if in_blocked {
            stacks.push(line.to_string());
        }
    }
    r.verdict = Verdict::Hang;
    let head = r.reason.split("; last console lines:").next().unwrap_or("").to_string();
    let tasks = if blocked.is_empty() { "none in state D".to_string() } else { blocked.join(", ") };
    r.reason = format!("{head}; blocked tasks: {tasks} (task-dump.txt has every task)\n{}", stacks.join("\n"));
}

/// The kernel's reports make the case they appeared in fail (crash for a panic), with the
/// report's kind and first line as the reason; an earlier reason follows it.
pub fn apply_findings(results: &mut [CaseResult], findings: &[(Option<String>, crate::classify::Finding)]) {
    for (case, f) in findings {
        let Some(r) = results.iter_mut().find(|r| Some(&r.case) == case.as_ref()) else { continue };
        let headline = format!("kernel reported {}: {}", f.kind.name(), f.headline);
        // One mention per kind: a hung task is reported again every timeout period.
        let already = format!("kernel reported {}:", f.kind.name());
        if r.reason.contains(&already) || r.reason.contains(&f.headline) && r.verdict == Verdict::Crash {
            continue;
        }
        r.reason = if r.reason.is_empty() { headline } else { format!("{headline}; {}", r.reason) };
        r.verdict = if f.kind.is_fatal() || r.verdict == Verdict::Crash { Verdict::Crash } else { Verdict::Fail };
    }
}

fn crash(case: &str, reason: String, took: Duration) -> CaseResult {
    CaseResult {
        case: case.to_string(),
        verdict: Verdict::Crash,
        reason,
        observations: Default::default(),
        duration_ms: took.as_millis() as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(case: &str) -> Event {
        Event::Result(CaseResult {
            case: case.into(),
            verdict: Verdict::Pass,
            reason: String::new(),
            observations: Default::default(),
            duration_ms: 1,
        })
    }

    #[test]
    fn a_guest_that_dies_mid_case_keeps_earlier_results() {
        let mut c = Collector::new(vec!["a".into(), "b".into(), "c".into()]);
        c.take(Event::Hello { kernel_release: "6.12".into(), cases: vec![], modules: vec![] });
        c.take(Event::Start { case: "a".into() });
        c.take(result("a"));
        c.take(Event::Start { case: "b".into() });
        let out = c.finish(Some("Kernel panic - not syncing: x".into()), &["[1.0] trace".into()]);
        assert_eq!(out.len(), 3);
        assert_eq!(out[0].verdict, Verdict::Pass);
        assert_eq!(out[1].verdict, Verdict::Crash);
        assert!(out[1].reason.starts_with("Kernel panic - not syncing: x; last console lines:\n[1.0] trace"));
        assert_eq!(out[2].reason, "not reached: the guest went down during b");
    }

    #[test]
    fn a_finished_run_is_taken_as_is() {
        let mut c = Collector::new(vec!["a".into()]);
        c.take(Event::Start { case: "a".into() });
        c.take(result("a"));
        c.take(Event::Done);
        assert!(c.first_result_after.is_some());
        assert_eq!(c.finish(Some("ignored".into()), &[]).len(), 1);
    }
}
