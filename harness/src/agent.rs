//! Builds the in-guest agent as one static binary (it is `/init`, with no libc beside it).

use std::path::PathBuf;
use std::process::Command;

use crate::error::{Error, Result};

pub const TARGET: &str = "x86_64-unknown-linux-gnu";

/// `cargo build` the agent (a no-op when nothing changed) and return its path.
pub fn build() -> Result<PathBuf> {
    let root = crate::cache::workspace_root();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(&root)
        .args(["build", "--quiet", "--release", "--package", "guest", "--bin", "fpt-agent", "--target", TARGET])
        // --target keeps these flags off build scripts and proc macros, which cannot be static.
        .env("CARGO_ENCODED_RUSTFLAGS", "-Ctarget-feature=+crt-static")
        .output()
        .map_err(|e| Error::AgentBuild(format!("cargo: {e}")))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = err.lines().rev().take(20).collect();
        return Err(Error::AgentBuild(tail.into_iter().rev().collect::<Vec<_>>().join("\n")));
    }
    let target_dir = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target"));
    Ok(target_dir.join(TARGET).join("release").join("fpt-agent"))
}
