//! What repeats runs: several kernels side by side ([`matrix`]), a patch series step by
//! step ([`series`]), the first commit that changed a case ([`bisect`]), the same run again
//! ([`soak`], [`repro`]), timings ([`bench`](mod@bench), with [`stats`]), throughput
//! ([`throughput`]) and a server validated over kernels and transports ([`validation`]).
//!
//! Imports: anything above ([`crate::run`], [`crate::validate`], ...). Nothing imports a loop
//! but xtask.

pub mod bench;
pub mod bisect;
pub mod matrix;
pub mod mutate;
pub mod repro;
pub mod series;
pub mod soak;
pub mod stats;
pub mod throughput;
pub mod validation;
