//! The host side of the FUSE passthrough harness, in folders by stage. A folder may import
//! the folders above it in this list, never one below it:
//!
//! - [`error`]: the one error type and its exit codes.
//! - [`env`](mod@env): the machine: the cache, processes, installing tools, apt, interrupts.
//! - [`kernel`]: the kernel under test: Debian's series, any bzImage, a build from source,
//!   its modules, the fixture history.
//! - [`results`]: what a run leaves and what it means: the boot log and its assembly, the
//!   run record, the console classifier, snapshots, the table, KTAP/JUnit/KCIDB, replay.
//! - [`boot`]: getting the agent running on the kernel: the agent's build, the initramfs,
//!   QEMU with its supervisor, virtiofsd, vng, host mode.
//! - [`run`]: one run, start to end: the plan, the backend, the results.
//! - [`validate`]: a FUSE server or library as the subject, and its built-in targets.
//! - [`loops`]: what repeats runs: matrix, series, bisect, soak, repro, bench, throughput.
//!
//! ARCHITECTURE.md has the map.

#![warn(missing_docs)]

pub mod error;

pub mod env;

pub mod kernel;

pub mod results;

pub mod boot;

pub mod run;

pub mod validate;

pub mod loops;

pub use error::{Error, Result};
pub use proto::{CaseInfo, CaseResult, Event, Verdict};
