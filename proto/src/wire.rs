//! What the agent tells the host: one JSON object per line on the result port (or on stdout
//! in host mode). The host adds to a result what only it can see (the kernel's reports on
//! the console, a crash of the whole guest) with the same types, so `results.json` has one
//! shape whatever produced it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The reason every passthrough case gives, as a skip, on a kernel without the feature.
pub const NO_PASSTHROUGH: &str = "kernel does not offer FUSE_PASSTHROUGH";

/// In a crashed case's reason: its process timed out and a SIGKILL did not end it, since it
/// is blocked or spinning in the kernel (a hang of that task, though the guest goes on).
pub const STUCK_IN_KERNEL: &str = "the process did not die (stuck in the kernel)";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Fail,
    Skip,
    /// The case never reported: its process died or timed out, or the guest went down
    /// during it.
    Crash,
    /// The whole guest stopped making progress during the case (the harness took a task
    /// dump and stopped it).
    Hang,
    /// The case never started: the guest went down before it (the host says so), or the
    /// server under test crashed in an earlier case (the agent says so).
    #[serde(rename = "not_reached")]
    NotReached,
}

impl Verdict {
    /// Pass and skip: what a green run is made of.
    pub fn is_ok(self) -> bool {
        matches!(self, Verdict::Pass | Verdict::Skip)
    }

    pub const ALL: [Verdict; 6] = [
        Verdict::Pass,
        Verdict::Skip,
        Verdict::Fail,
        Verdict::Crash,
        Verdict::Hang,
        Verdict::NotReached,
    ];

    /// The word the results table and the totals use.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Skip => "skip",
            Verdict::Crash => "crash",
            Verdict::Hang => "hang",
            Verdict::NotReached => "not reached",
        }
    }
}

/// Data, not prose: errno names, byte counts, request counts by opcode. Sorted by key so that
/// a snapshot of them is stable.
pub type Observations = BTreeMap<String, serde_json::Value>;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseResult {
    pub case: String,
    pub verdict: Verdict,
    /// For people: why it failed, was skipped or crashed; empty on a pass. Built from the
    /// typed fields below and the case's own failed checks; nothing reads it back.
    pub reason: String,
    pub observations: Observations,
    pub duration_ms: u64,
    /// How the guest (or the case's process) went down during this case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crash: Option<Crash>,
    /// The kernel's reports that appeared on the console during this case.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<Finding>,
}

impl CaseResult {
    pub fn new(case: impl Into<String>, verdict: Verdict, reason: impl Into<String>) -> Self {
        CaseResult {
            case: case.into(),
            verdict,
            reason: reason.into(),
            observations: Observations::new(),
            duration_ms: 0,
            crash: None,
            findings: Vec::new(),
        }
    }
}

/// A crash record: what ended the case.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Crash {
    /// One line: the kernel's fatal line ("Kernel panic - not syncing: ..."), or what the
    /// harness saw ("the guest stopped responding during io.large_file").
    pub cause: String,
    /// The console's last lines when it happened.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub console_tail: Vec<String>,
    /// After a hang: the tasks the task dump showed blocked (state D), as "comm (pid N)".
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blocked_tasks: Vec<String>,
    /// After a hang: the dump's lines for those tasks (their stacks).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blocked_stacks: Vec<String>,
}

/// The kinds of report the kernel makes on its console.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    Panic,
    Oops,
    Bug,
    Warning,
    Kasan,
    Lockdep,
    HungTask,
    SoftLockup,
    HardLockup,
    RcuStall,
    Refcount,
}

impl FindingKind {
    pub fn name(self) -> &'static str {
        match self {
            FindingKind::Panic => "kernel panic",
            FindingKind::Oops => "Oops",
            FindingKind::Bug => "BUG",
            FindingKind::Warning => "WARNING",
            FindingKind::Kasan => "KASAN report",
            FindingKind::Lockdep => "lockdep report",
            FindingKind::HungTask => "hung task",
            FindingKind::SoftLockup => "soft lockup",
            FindingKind::HardLockup => "hard lockup",
            FindingKind::RcuStall => "RCU stall",
            FindingKind::Refcount => "refcount warning",
        }
    }

    /// After these the kernel does not come back: the running case is a crash, not a fail.
    pub fn is_fatal(self) -> bool {
        self == FindingKind::Panic
    }
}

/// One report the kernel made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub kind: FindingKind,
    /// Its first line, without the timestamp.
    pub headline: String,
    /// "comm (pid N)" of the task the report names, when it names one.
    pub task: Option<String>,
    /// The report's lines, headline first.
    pub trace: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The agent is up and about to run `cases`. `share`: whether the host's root, asked
    /// for with `fpt.share=`, is mounted at /host ("mounted"), or why not.
    Hello {
        kernel_release: String,
        cases: Vec<String>,
        modules: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        share: Option<String>,
    },
    /// A case has started: if nothing follows, this is the case that was running.
    Start {
        case: String,
    },
    Result(CaseResult),
    /// A coverage run (`fpt.coverage`): the kernel's gcov counters of what `case` executed,
    /// reset before it and read after it, one file per object built with gcov.
    Coverage {
        case: String,
        files: Vec<GcdaFile>,
    },
    /// Every case has reported; the guest powers off next.
    Done,
}

/// One object's gcov counters as the kernel's debugfs gives them (a `.gcda` file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcdaFile {
    /// Its path below the gcov directory of debugfs: the build's object directory, then
    /// the object's own path (`<out>/fs/fuse/file.gcda`).
    pub path: String,
    /// Its bytes, in standard base64.
    pub base64: String,
}

impl Event {
    pub fn to_line(&self) -> String {
        let mut line = serde_json::to_string(self).expect("events always serialise");
        line.push('\n');
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_result_reads_and_writes_without_the_host_fields() {
        let line =
            r#"{"case":"a.b","verdict":"pass","reason":"","observations":{"n":1},"duration_ms":3}"#;
        let r: CaseResult = serde_json::from_str(line).unwrap();
        assert!(r.crash.is_none() && r.findings.is_empty());
        assert_eq!(serde_json::to_string(&r).unwrap(), line);
        assert_eq!(
            serde_json::to_value(Verdict::NotReached).unwrap(),
            "not_reached"
        );
    }
}
