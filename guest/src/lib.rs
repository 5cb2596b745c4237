//! The in-guest agent, as a library so the host harness shares its case catalog and its
//! result types. The binary (`fpt-agent`) is a thin entry point in `main.rs`.

pub mod cases;
pub mod disk;
pub mod fuse;
pub mod init;
pub mod report;
pub mod runner;
pub mod sys;
