//! The end-to-end suite lives in `e2e.rs`: real kernels in QEMU and on the host, their
//! observations compared with the insta snapshots in `snapshots/`. Run it with
//! `cargo xtask test` (it boots VMs, so plain `cargo test` at the root leaves it out).
