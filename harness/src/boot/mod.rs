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
