//! The in-guest agent: built as one static binary (it is `/init`, with no libc beside it),
//! and asked for its catalog: the host never compiles the guest crate, it reads what the
//! agent it is about to boot says it can run.

use std::path::{Path, PathBuf};
use std::process::Command;

use proto::CaseInfo;

use crate::error::{Error, Result};

pub const TARGET: &str = "x86_64-unknown-linux-gnu";

/// `cargo build` the agent (a no-op when nothing changed) and return its path.
pub fn build() -> Result<PathBuf> {
    let root = crate::cache::workspace_root();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(&root)
        .args([
            "build",
            "--quiet",
            "--release",
            "--package",
            "guest",
            "--bin",
            "fpt-agent",
            "--target",
            TARGET,
        ])
        // --target keeps these flags off build scripts and proc macros, which cannot be static.
        .env("CARGO_ENCODED_RUSTFLAGS", "-Ctarget-feature=+crt-static")
        .output()
        .map_err(|e| Error::AgentBuild(format!("cargo: {e}")))?;
    if !out.status.success() {
        return Err(Error::AgentBuild(crate::process::tail(&out.stderr, 20)));
    }
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    Ok(target_dir.join(TARGET).join("release").join("fpt-agent"))
}

/// What `agent list --json` says: every case, in the order a full run takes them.
pub fn catalog(agent: &Path) -> Result<Vec<CaseInfo>> {
    let out = crate::process::output(Command::new(agent).args(["list", "--json"]))?;
    serde_json::from_slice(&out.stdout)
        .map_err(|e| Error::AgentBuild(format!("{} list --json: {e}", agent.display())))
}

/// The built agent and its catalog: what `cases`, `run` and the tests start from.
pub fn build_with_catalog() -> Result<(PathBuf, Vec<CaseInfo>)> {
    let agent = build()?;
    let catalog = catalog(&agent)?;
    Ok((agent, catalog))
}

/// The cases `names` picks from `catalog`, in the order given; with no names, every case a
/// default run takes, or with `validating`, every case of a validate run.
pub fn select<'a>(
    catalog: &'a [CaseInfo],
    names: &[String],
    validating: bool,
) -> Result<Vec<&'a CaseInfo>> {
    use proto::catalog::{in_default_run, in_validate_run};
    if names.is_empty() {
        return Ok(catalog
            .iter()
            .filter(|c| match validating {
                true => in_validate_run(c.external_server),
                false => in_default_run(c.kills_kernel, c.external_server),
            })
            .collect());
    }
    names
        .iter()
        .map(|n| {
            catalog
                .iter()
                .find(|c| &c.name == n)
                .ok_or_else(|| Error::UnknownCase(n.clone()))
        })
        .collect()
}
