//! How a boot (or a host-mode run) ended, as the supervisor decided it. Saved with the
//! artifacts as `ending.json`, so `replay` re-derives the results from saved files alone.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How a boot ended, as the run loop decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "how", rename_all = "snake_case")]
pub enum How {
    /// The agent said Done.
    Finished,
    /// Its streams closed before Done: QEMU exited (a panic with panic=-1 reboots, and
    /// -no-reboot ends QEMU), or the host-mode agent ended.
    WentAway {
        /// What QEMU or the agent said last, when anything.
        detail: Option<String>,
    },
    /// No progress within a deadline after the agent said hello: during a case, or between
    /// cases. The harness took a task dump (a hang).
    Unresponsive {
        /// The case that was running, if one was.
        during: Option<String>,
    },
    /// The agent never said hello within the boot timeout.
    BootTimeout {
        /// The boot timeout.
        secs: u64,
        /// Whether the console said nothing at all.
        console_silent: bool,
    },
    /// The whole-run bound ran out.
    RunLimit {
        /// The bound.
        secs: u64,
    },
    /// Ctrl-C, SIGTERM or SIGHUP.
    Interrupted {
        /// The signal.
        signal: i32,
    },
    /// The run's caller had what it needed: a result that settles it (`StopAt`), in this
    /// boot or another of the run. What was left is not run, not lost.
    Stopped,
}

/// How a boot ended, saved as `ending.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ending {
    /// How.
    #[serde(flatten)]
    pub how: How,
    /// How long the case that was running at the end had run, in ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running_case_ms: Option<u64>,
}

impl How {
    /// One line for people: why the agent did not finish.
    pub fn describe(&self) -> String {
        match self {
            How::Finished => "the agent finished".into(),
            How::WentAway { detail: Some(d) } => d.clone(),
            How::WentAway { detail: None } => {
                "the guest powered off before the agent finished".into()
            }
            How::Unresponsive { during: Some(case) } => {
                format!("the guest stopped responding during {case}")
            }
            How::Unresponsive { during: None } => {
                "the guest stopped responding between cases".into()
            }
            How::BootTimeout {
                console_silent: true,
                ..
            } => "no output from the guest".into(),
            How::BootTimeout {
                console_silent: false,
                ..
            } => "the agent never started".into(),
            How::RunLimit { secs } => format!("the whole-run limit of {secs} s ran out"),
            How::Interrupted { signal } => format!("interrupted by signal {signal}"),
            How::Stopped => "stopped at a result that settles the run".into(),
        }
    }

    /// A guest that stopped making progress (rather than going down): a task dump was taken.
    pub fn is_hang(&self) -> bool {
        matches!(self, How::Unresponsive { .. } | How::RunLimit { .. })
    }
}

impl Ending {
    /// Its file name in a boot's directory.
    pub const FILE: &'static str = "ending.json";

    /// Save it in `dir`.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let path = dir.join(Self::FILE);
        std::fs::write(
            &path,
            serde_json::to_string_pretty(self).expect("endings serialise"),
        )
        .map_err(|e| Error::io(path.display(), e))
    }

    /// Read it from `dir`.
    pub fn load(dir: &Path) -> Result<Ending> {
        let path = dir.join(Self::FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(path.display(), e))?;
        serde_json::from_str(&text).map_err(|e| Error::NotARun {
            dir: dir.into(),
            file: Self::FILE.into(),
            source: Some(Box::new(e)),
        })
    }
}
