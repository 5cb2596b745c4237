//! The run loop's decisions, apart from any process: a state machine that takes what the
//! guest sent (and the time) and says what to do next. It owns every deadline: the boot
//! timeout, each case's own timeout plus slack, the wait between cases, the grace after the
//! agent finished, the whole-run bound, and the task dump's pacing. It reads no clock: the
//! caller passes `now`, so the unit tests drive it through hangs and crashes in microseconds.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use proto::Event;

use crate::results::ending::{Ending, How};

/// Every deadline of a boot.
#[derive(Debug, Clone)]
pub struct Limits {
    /// From QEMU start to the agent's hello.
    pub boot: Duration,
    /// Added to each case's own timeout (the agent enforces that one itself; this covers its
    /// report's way out), and the most the guest may be silent between cases.
    pub slack: Duration,
    /// How long a guest that finished may take to power off.
    pub after_done: Duration,
    /// Each sysrq dump: at most this long...
    pub dump_max: Duration,
    /// ...and over once the console has been quiet this long.
    pub dump_quiet: Duration,
}

impl Limits {
    /// The deadlines for a boot timeout and a slack; the rest fixed.
    pub fn new(boot: Duration, slack: Duration) -> Limits {
        Limits {
            boot,
            slack,
            after_done: Duration::from_secs(10),
            dump_max: Duration::from_secs(3),
            dump_quiet: Duration::from_millis(800),
        }
    }
}

/// What happened since the last step.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// Nothing: a wait ran out, or this is the first step.
    Tick,
    /// A line on the kernel console.
    Console,
    /// An event from the agent (boxed: a result is large, the other inputs small).
    Event(Box<Event>),
    /// Both streams ended: QEMU is gone.
    Closed,
    /// A sysrq key could not be sent (QEMU already gone, or its monitor refused).
    SysrqFailed,
    /// The harness was asked to stop.
    Interrupt(i32),
    /// The run has the result it needed (`StopAt`).
    Stop,
}

/// What the process side does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Wait for input until then (a Tick if none comes).
    Wait {
        /// The deadline.
        until: Instant,
    },
    /// Send this magic SysRq key to the guest (a task dump: `w` then `t`).
    Sysrq(u8),
    /// Stop QEMU: the boot is over.
    Stop(Ending),
}

#[derive(Debug)]
enum Phase {
    Running,
    /// The guest stopped making progress: dumping its tasks, one key at a time.
    Dumping {
        ending: Ending,
        keys: Vec<u8>,
        until: Instant,
        quiet_by: Instant,
    },
}

/// The run loop's decisions, from what the guest sent and the time alone.
#[derive(Debug)]
pub struct Supervisor {
    limits: Limits,
    started: Instant,
    run_deadline: Instant,
    timeouts: HashMap<String, Duration>,
    hello: bool,
    console_seen: bool,
    running: Option<(String, Instant)>,
    last_event: Instant,
    done_at: Option<Instant>,
    phase: Phase,
}

impl Supervisor {
    /// A boot of the cases in `plan` (name, own timeout), starting at `now`.
    pub fn new(plan: &[(String, Duration)], limits: Limits, now: Instant) -> Supervisor {
        // However the guest misbehaves, the harness is done by then.
        let run_limit = limits.boot
            + plan
                .iter()
                .map(|(_, t)| *t + limits.slack)
                .sum::<Duration>()
            + Duration::from_secs(10);
        Supervisor {
            run_deadline: now + run_limit,
            timeouts: plan.iter().cloned().collect(),
            limits,
            started: now,
            hello: false,
            console_seen: false,
            running: None,
            last_event: now,
            done_at: None,
            phase: Phase::Running,
        }
    }

    /// Take one input at `now`; what to do next.
    pub fn step(&mut self, input: Input, now: Instant) -> Action {
        if let Phase::Dumping { .. } = self.phase {
            return self.dump_step(input, now);
        }
        match input {
            Input::Tick | Input::SysrqFailed => {}
            Input::Console => self.console_seen = true,
            Input::Event(e) => self.take(*e, now),
            Input::Closed => {
                let how = if self.done_at.is_some() {
                    How::Finished
                } else {
                    How::WentAway { detail: None }
                };
                return Action::Stop(self.ending(how, now));
            }
            Input::Interrupt(signal) => {
                return Action::Stop(self.ending(How::Interrupted { signal }, now))
            }
            Input::Stop => return Action::Stop(self.ending(How::Stopped, now)),
        }
        let deadline = self.deadline().min(self.run_deadline);
        if now < deadline {
            return Action::Wait { until: deadline };
        }
        if self.done_at.is_some() {
            // Finished but did not power off: not the cases' problem.
            return Action::Stop(self.ending(How::Finished, now));
        }
        let how = if now >= self.run_deadline {
            How::RunLimit {
                secs: (self.run_deadline - self.started).as_secs(),
            }
        } else if !self.hello {
            return Action::Stop(self.ending(
                How::BootTimeout {
                    secs: self.limits.boot.as_secs(),
                    console_silent: !self.console_seen,
                },
                now,
            ));
        } else {
            How::Unresponsive {
                during: self.running.as_ref().map(|(c, _)| c.clone()),
            }
        };
        if !self.hello {
            return Action::Stop(self.ending(how, now));
        }
        // A guest that stopped making progress: ask it for its blocked tasks, then all of
        // them, before stopping it; the dump is the evidence of what it was stuck on.
        let ending = self.ending(how, now);
        self.phase = Phase::Dumping {
            ending,
            keys: vec![b't'],
            until: now + self.limits.dump_max,
            quiet_by: now + self.limits.dump_max,
        };
        Action::Sysrq(b'w')
    }

    fn dump_step(&mut self, input: Input, now: Instant) -> Action {
        let Phase::Dumping {
            ending,
            keys,
            until,
            quiet_by,
        } = &mut self.phase
        else {
            unreachable!("called while dumping")
        };
        match input {
            Input::Console => *quiet_by = now + self.limits.dump_quiet,
            Input::Closed | Input::SysrqFailed | Input::Interrupt(_) | Input::Stop => {
                return Action::Stop(ending.clone())
            }
            Input::Tick | Input::Event(_) => {}
        }
        let end = (*until).min(*quiet_by);
        if now < end {
            return Action::Wait { until: end };
        }
        match keys.pop() {
            Some(key) => {
                *until = now + self.limits.dump_max;
                *quiet_by = *until;
                Action::Sysrq(key)
            }
            None => Action::Stop(ending.clone()),
        }
    }

    fn take(&mut self, event: Event, now: Instant) {
        self.last_event = now;
        match event {
            Event::Hello { .. } => self.hello = true,
            Event::Start { case } => self.running = Some((case, now)),
            Event::Result(r) => {
                if self.running.as_ref().is_some_and(|(c, _)| *c == r.case) {
                    self.running = None;
                }
            }
            Event::Done => self.done_at = Some(now),
            // Progress, nothing to decide on: the case's result follows.
            Event::Coverage { .. } => {}
        }
    }

    /// When the guest must next be heard from.
    fn deadline(&self) -> Instant {
        if !self.hello {
            self.started + self.limits.boot
        } else if let Some(at) = self.done_at {
            at + self.limits.after_done
        } else if let Some((case, since)) = &self.running {
            let own = self
                .timeouts
                .get(case)
                .copied()
                .unwrap_or(Duration::from_secs(60));
            *since + own + self.limits.slack
        } else {
            self.last_event + self.limits.slack
        }
    }

    fn ending(&self, how: How, now: Instant) -> Ending {
        let running_case_ms = self
            .running
            .as_ref()
            .map(|(_, since)| (now - *since).as_millis() as u64);
        Ending {
            how,
            running_case_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::{CaseResult, Verdict};

    const S: Duration = Duration::from_secs(1);

    fn plan() -> Vec<(String, Duration)> {
        vec![("a.one".into(), 10 * S), ("a.two".into(), 2 * S)]
    }

    fn sup(t0: Instant) -> Supervisor {
        Supervisor::new(&plan(), Limits::new(60 * S, 8 * S), t0)
    }

    fn hello() -> Input {
        Input::Event(Box::new(Event::Hello {
            kernel_release: "6.12".into(),
            cases: vec![],
            modules: vec![],
            share: None,
        }))
    }

    fn start(case: &str) -> Input {
        Input::Event(Box::new(Event::Start { case: case.into() }))
    }

    fn result(case: &str) -> Input {
        Input::Event(Box::new(Event::Result(CaseResult::new(
            case,
            Verdict::Pass,
            "",
        ))))
    }

    #[test]
    fn a_silent_guest_hits_the_boot_timeout() {
        let t0 = Instant::now();
        let mut s = sup(t0);
        assert_eq!(s.step(Input::Tick, t0), Action::Wait { until: t0 + 60 * S });
        let Action::Stop(end) = s.step(Input::Tick, t0 + 60 * S) else {
            panic!()
        };
        assert_eq!(
            end.how,
            How::BootTimeout {
                secs: 60,
                console_silent: true
            }
        );
        // With console output but no agent, it says so.
        let mut s = sup(t0);
        s.step(Input::Console, t0 + S);
        let Action::Stop(end) = s.step(Input::Tick, t0 + 61 * S) else {
            panic!()
        };
        assert_eq!(end.how.describe(), "the agent never started");
    }

    #[test]
    fn a_case_gets_its_own_timeout_plus_slack_then_a_task_dump() {
        let t0 = Instant::now();
        let mut s = sup(t0);
        s.step(hello(), t0 + 5 * S);
        assert_eq!(
            s.step(start("a.one"), t0 + 6 * S),
            Action::Wait { until: t0 + 24 * S }
        );
        // Console lines do not move the deadline.
        assert_eq!(
            s.step(Input::Console, t0 + 20 * S),
            Action::Wait { until: t0 + 24 * S }
        );
        assert_eq!(s.step(Input::Tick, t0 + 24 * S), Action::Sysrq(b'w'));
        // The dump: lines keep it open, 0.8 s of quiet ends the key, at most 3 s each.
        let t = t0 + 24 * S;
        assert_eq!(
            s.step(Input::Console, t + S),
            Action::Wait {
                until: t + S + Duration::from_millis(800)
            }
        );
        assert_eq!(s.step(Input::Tick, t + 2 * S), Action::Sysrq(b't'));
        let t = t + 2 * S;
        assert_eq!(s.step(Input::Tick, t), Action::Wait { until: t + 3 * S });
        let Action::Stop(end) = s.step(Input::Tick, t + 3 * S) else {
            panic!()
        };
        assert_eq!(
            end.how,
            How::Unresponsive {
                during: Some("a.one".into())
            }
        );
        assert_eq!(end.running_case_ms, Some(18_000));
    }

    #[test]
    fn a_guest_silent_between_cases_is_unresponsive_after_the_slack() {
        let t0 = Instant::now();
        let mut s = sup(t0);
        s.step(hello(), t0);
        s.step(start("a.one"), t0);
        assert_eq!(
            s.step(result("a.one"), t0 + S),
            Action::Wait { until: t0 + 9 * S }
        );
        assert_eq!(s.step(Input::Tick, t0 + 9 * S), Action::Sysrq(b'w'));
        let Action::Stop(end) = s.step(Input::SysrqFailed, t0 + 9 * S) else {
            panic!()
        };
        assert_eq!(end.how, How::Unresponsive { during: None });
        assert_eq!(end.running_case_ms, None);
    }

    #[test]
    fn a_panic_mid_case_ends_the_boot_when_qemu_goes() {
        let t0 = Instant::now();
        let mut s = sup(t0);
        s.step(hello(), t0);
        s.step(start("a.two"), t0 + S);
        let Action::Stop(end) = s.step(Input::Closed, t0 + 2 * S) else {
            panic!()
        };
        assert_eq!(end.how, How::WentAway { detail: None });
        assert_eq!(end.running_case_ms, Some(1000));
    }

    #[test]
    fn ctrl_c_stops_at_once_and_done_waits_for_power_off() {
        let t0 = Instant::now();
        let mut s = sup(t0);
        s.step(hello(), t0);
        let Action::Stop(end) = s.step(Input::Interrupt(2), t0 + S) else {
            panic!()
        };
        assert_eq!(end.how.describe(), "interrupted by signal 2");

        let mut s = sup(t0);
        s.step(hello(), t0);
        assert_eq!(
            s.step(Input::Event(Box::new(Event::Done)), t0 + S),
            Action::Wait { until: t0 + 11 * S }
        );
        let Action::Stop(end) = s.step(Input::Closed, t0 + 2 * S) else {
            panic!()
        };
        assert_eq!(end.how, How::Finished);
        let mut s = sup(t0);
        s.step(hello(), t0);
        s.step(Input::Event(Box::new(Event::Done)), t0);
        let Action::Stop(end) = s.step(Input::Tick, t0 + 10 * S) else {
            panic!()
        };
        assert_eq!(
            end.how,
            How::Finished,
            "finished but never powered off: still finished"
        );
    }

    #[test]
    fn the_whole_run_bound_holds_whatever_the_guest_does() {
        let t0 = Instant::now();
        // 60 + (10 + 8) + (2 + 8) + 10 = 98 s.
        let mut s = sup(t0);
        s.step(hello(), t0);
        let mut t = t0;
        // A guest that keeps sending events never passes a per-case deadline.
        while t < t0 + 97 * S {
            t += S;
            assert!(matches!(s.step(start("a.one"), t), Action::Wait { .. }));
        }
        assert_eq!(s.step(start("a.one"), t0 + 98 * S), Action::Sysrq(b'w'));
        let Action::Stop(end) = s.step(Input::Closed, t0 + 98 * S) else {
            panic!()
        };
        assert_eq!(end.how, How::RunLimit { secs: 98 });
    }
}
