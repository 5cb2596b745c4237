//! What a run leaves and what it means. A boot's saved log ([`assemble::RunLog`]) becomes
//! one result per case ([`assemble`]), with the kernel's reports read from the console
//! ([`console`], [`classify`]) and how the boot ended ([`ending`]); the whole run is a
//! [`record::Run`]. Views of it: the terminal table ([`table`]), the snapshots
//! ([`snapshot`]), KTAP/JUnit/KCIDB ([`formats`]); [`replay`] re-derives a run from its files.
//!
//! Imports: [`crate::env`], [`crate::kernel`] (a run's identity). Never a boot, a run or a
//! loop: everything here works from saved files alone.

pub mod assemble;
pub mod classify;
pub mod console;
pub mod coverage;
pub mod ending;
pub mod formats;
pub mod record;
pub mod replay;
pub mod snapshot;
pub mod table;
