//! The in-guest agent: PID 1 of the test VM, its FUSE server and the cases. The binary
//! (`fpt-agent`) is a thin entry point in `main.rs`. The host does not link this crate: what
//! both sides share is in `proto`, and the host reads the catalog from `fpt-agent list --json`.

pub mod cases;
pub mod coverage;
pub mod disk;
pub mod framework;
pub mod fuse;
pub mod pid1;
pub mod runner;
pub mod sys;
