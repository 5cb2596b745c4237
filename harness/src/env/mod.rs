//! The machine the harness runs on: where the cache is and who holds its locks
//! ([`cache`]), child processes that die with us ([`process`]), tools installed when missing
//! ([`provision`], Python tools in a virtualenv: [`pytools`]), the harness's private apt
//! ([`apt`]), and Ctrl-C ([`interrupt`]).
//!
//! Imports: [`crate::error`] only. Everything else may import this folder.

pub mod apt;
pub mod cache;
pub mod interrupt;
pub mod process;
pub mod provision;
pub mod pytools;
