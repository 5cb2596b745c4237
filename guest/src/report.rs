//! What the agent tells the host: one JSON object per line on the result channel.
//!
//! The host harness reads the same types, so the two sides cannot drift apart.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Fail,
    Skip,
    /// The case never reported: its process died, timed out, or the guest went down.
    Crash,
    /// The whole guest stopped making progress during the case (the harness took a task
    /// dump and stopped it).
    Hang,
}

impl Verdict {
    pub fn is_ok(self) -> bool {
        matches!(self, Verdict::Pass | Verdict::Skip)
    }
}

/// Data, not prose: errno names, byte counts, request counts by opcode. Sorted by key so that
/// a snapshot of them is stable.
pub type Observations = BTreeMap<String, serde_json::Value>;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseResult {
    pub case: String,
    pub verdict: Verdict,
    /// Why it failed or was skipped; empty on a pass.
    pub reason: String,
    pub observations: Observations,
    pub duration_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The agent is up and about to run `cases`.
    Hello { kernel_release: String, cases: Vec<String>, modules: Vec<String> },
    /// A case has started: if nothing follows, this is the case that was running.
    Start { case: String },
    Result(CaseResult),
    /// Every case has reported; the guest powers off next.
    Done,
}

impl Event {
    pub fn to_line(&self) -> String {
        let mut line = serde_json::to_string(self).expect("events always serialise");
        line.push('\n');
        line
    }
}
