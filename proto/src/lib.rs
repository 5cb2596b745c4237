//! The one boundary between the host harness and the guest agent. Everything both sides must
//! agree on lives here and nowhere else:
//!
//! - [`wire`]: the events and results the agent streams, one JSON object per line;
//! - [`catalog`]: what the agent says about its cases (`fpt-agent list --json`), and which of
//!   them a run takes by default;
//! - [`layout`]: names and paths: the result port, the initramfs layout, the kernel command
//!   line parameter, the console markers;
//! - [`sparse`]: the format the ext4 image travels in;
//! - [`validate`]: the server under test, when `cargo xtask validate` runs;
//! - [`observation`]: the observation keys something reads back (runner, validate table,
//!   snapshot filters).
//!
//! The host never compiles the guest crate: it asks the built agent for its catalog.

pub mod catalog;
pub mod layout;
pub mod observation;
pub mod sparse;
pub mod validate;
pub mod wire;

pub use catalog::CaseInfo;
pub use wire::{CaseResult, Crash, Event, Finding, FindingKind, GcdaFile, Observations, Verdict};
