//! The case framework: what a case is ([`Case`]), how it stops ([`Stop`]), the context it
//! runs with ([`Ctx`]: observations, checks, mounts), how one runs and becomes a result
//! ([`run_case`]), the release audit after it ([`audit`]), the file system under test
//! ([`subject`]: the agent's own server, or the server under test) and the fixtures cases
//! share ([`fixtures`]: ext4, overlay, the round trip, data patterns).
//!
//! A case records *observations* (what the kernel did: errno names, byte and request counts)
//! and *checks* (what the UAPI promises). The verdict follows from the checks alone; the
//! observations go into the snapshot. The groups of cases are in [`crate::cases`]; nothing
//! here names a group.

pub mod audit;
mod ctx;
pub mod fixtures;
pub mod ring;
mod run_case;
pub mod subject;
pub mod watchdog;

use std::time::Duration;

use rustix::io::Errno;

use proto::CaseInfo;

use crate::fuse::Payload;

pub use ctx::Ctx;
pub use fixtures::{pattern, unmount_when_released, unmount_within};
pub use proto::wire::NO_PASSTHROUGH;
pub use run_case::run_case;

/// One case, declared with named fields and the rest from its group's `DEFAULTS` (itself
/// built on [`Case::DEFAULT`]): `Case { name: "io.x", rule: "...", verdict_rule: "...",
/// run: x, ..DEFAULTS }`. The group is the name's first part.
#[derive(Debug, Clone, Copy)]
pub struct Case {
    /// `group.name`, unique; what `--case` takes.
    pub name: &'static str,
    /// The rule under test, as the UAPI or the kernel states it.
    pub rule: &'static str,
    /// What makes the verdict pass.
    pub verdict_rule: &'static str,
    /// Killed (and reported as crash) after this long.
    pub timeout: Duration,
    /// May take the kernel down: never in a full run, never on the host; name it to run it.
    pub kills_kernel: bool,
    /// Runs against the server under test (`cargo xtask validate`): see [`Ctx::io_file`].
    pub external_server: bool,
    /// Reads the host's root over virtio-fs at `/host`: the harness shares it.
    pub uses_host_share: bool,
    /// What the case leaves busy on purpose after it ends, and why. Every other case must
    /// leave every file system it mounted free to unmount ([`audit`]).
    pub keeps_busy: Option<&'static str>,
    /// Runs with the agent's server on FUSE over io_uring, its payloads in buffers of each
    /// entry's own or in pools (the `uring` group's copies of other groups' cases): [`ring`],
    /// and the `uring` group.
    pub over_ring: Option<Payload>,
    /// Waits on a kernel timer (tens of seconds): not in a run that names no case.
    pub slow: bool,
    pub run: fn(&mut Ctx) -> Result<(), Stop>,
}

impl Case {
    /// What every declaration starts from; a unit test checks that each case replaced the
    /// name, the rule, the verdict rule and the run.
    pub const DEFAULT: Case = Case {
        name: "",
        rule: "",
        verdict_rule: "",
        timeout: Duration::from_secs(10),
        kills_kernel: false,
        external_server: false,
        uses_host_share: false,
        keeps_busy: None,
        over_ring: None,
        slow: false,
        run: undeclared,
    };

    pub fn group(&self) -> &'static str {
        proto::catalog::group_of(self.name)
    }

    /// The rule under test; a copy over the ring says so first.
    pub fn rule(&self) -> String {
        match self.over_ring {
            Some(Payload::PerEntry) => format!("over FUSE io_uring: {}", self.rule),
            Some(Payload::Pool | Payload::ZeroCopy) => {
                format!("over FUSE io_uring with buffer pools: {}", self.rule)
            }
            None => self.rule.into(),
        }
    }

    /// What makes the verdict pass; a copy over the ring also needs every connection
    /// served through it (and over pools, every request's payload in a pool buffer).
    pub fn verdict_rule(&self) -> String {
        let ring = "every connection of the case served through a ring, /dev/fuse read(2) \
                    bringing no request after INIT";
        match self.over_ring {
            Some(Payload::PerEntry) => format!("{}; and {ring}", self.verdict_rule),
            Some(Payload::Pool | Payload::ZeroCopy) => format!(
                "{}; and {ring}, each queue with a buffer pool (ADD_QUEUE, ADD_BUFPOOL) that \
                 every request came in; skip before 7.3 (protocol 7.46)",
                self.verdict_rule
            ),
            None => self.verdict_rule.into(),
        }
    }

    /// What `fpt-agent list --json` says of it.
    pub fn info(&self) -> CaseInfo {
        CaseInfo {
            name: self.name.into(),
            rule: self.rule(),
            verdict_rule: self.verdict_rule(),
            timeout_secs: self.timeout.as_secs(),
            kills_kernel: self.kills_kernel,
            external_server: self.external_server,
            uses_host_share: self.uses_host_share,
            slow: self.slow,
        }
    }
}

fn undeclared(_: &mut Ctx) -> Result<(), Stop> {
    Err(Stop::Broken(
        "this case was declared without a run function".into(),
    ))
}

/// Why a case stopped before its end.
#[derive(Debug)]
pub enum Stop {
    /// The case does not apply to this kernel.
    Skip(String),
    /// The case could not set itself up: a failure, but not one of the rule under test.
    Broken(String),
    /// The server under test did not start or mount: nothing about the kernel or the
    /// library's passthrough can be said.
    NoServer(String),
}

impl From<std::io::Error> for Stop {
    fn from(e: std::io::Error) -> Self {
        Stop::Broken(format!("setup failed: {e}"))
    }
}

impl From<Errno> for Stop {
    fn from(e: Errno) -> Self {
        Stop::Broken(format!("setup failed: {}", crate::sys::errno_name(e)))
    }
}

impl proto::catalog::Selectable for Case {
    fn name(&self) -> &str {
        self.name
    }
    fn kills_kernel(&self) -> bool {
        self.kills_kernel
    }
    fn external_server(&self) -> bool {
        self.external_server
    }
    fn slow(&self) -> bool {
        self.slow
    }
}
