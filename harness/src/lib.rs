//! The host side of the FUSE passthrough harness. `run::run` is the path a run takes; the
//! other modules each do one step of it. ARCHITECTURE.md has the map.

pub mod agent;
pub mod bench;
pub mod bisect;
pub mod cache;
pub mod classify;
pub mod console;
pub mod debian;
pub mod debian_kernels;
pub mod disk;
pub mod ending;
pub mod error;
pub mod fixture_tree;
pub mod host;
pub mod initramfs;
pub mod interrupt;
pub mod kbuild;
pub mod kernel;
pub mod matrix;
pub mod matrix_html;
pub mod modules;
pub mod process;
pub mod provision;
pub mod pytools;
pub mod qemu;
pub mod replay;
pub mod report;
pub mod reports;
pub mod repro;
pub mod results;
pub mod run;
pub mod series;
pub mod snapshot;
pub mod soak;
pub mod targets;
pub mod throughput;
pub mod throughput_plot;
pub mod validate;
pub mod virtiofsd;
pub mod vm;
pub mod vng;

pub use error::{Error, Result};
pub use proto::{CaseInfo, CaseResult, Event, Verdict};
