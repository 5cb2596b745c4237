//! Getting the agent running on the kernel under test, and its record saved as it comes:
//! the agent's build and catalog ([`agent`]), the image it boots from ([`initramfs`],
//! [`disk`]), the VM ([`qemu`], [`vm`] with its pure [`vm::supervisor`]), the share
//! ([`virtiofsd`]), and the two other backends ([`vng`], [`host`]).
//!
//! Imports: [`crate::env`], [`crate::kernel`], [`crate::results`] (a boot writes the
//! [`crate::results::assemble::RunLog`] that results reads). Never [`crate::run`] or above.

pub mod agent;
pub mod disk;
pub mod host;
pub mod initramfs;
pub mod qemu;
pub mod virtiofsd;
pub mod vm;
pub mod vng;

use std::path::Path;

use proto::CaseInfo;

/// What the agent's `run` needs where it runs without our QEMU set-up (on this kernel, or
/// inside vng's VM): the agent binary, the cases, the ext4 image, the server under test's
/// spec, and where the run's artifacts go. [`host::run_cases`] and [`vng::run_cases`] take it.
#[derive(Clone, Copy)]
pub struct AgentRun<'a> {
    /// The agent binary.
    pub agent: &'a Path,
    /// The cases to run, in order.
    pub cases: &'a [&'a CaseInfo],
    /// The ext4 image the cases that need a disk file system loop-mount.
    pub ext4_image: &'a Path,
    /// The spec of a server under validation, saved as JSON.
    pub validate_spec: Option<&'a Path>,
    /// The run's artifacts folder.
    pub artifacts: &'a Path,
}
