//! The in-guest agent: built as one static binary (it is `/init`, with no libc beside it),
//! and asked for its catalog: the host never compiles the guest crate, it reads what the
//! agent it is about to boot says it can run.

use std::path::{Path, PathBuf};
use std::process::Command;

use proto::CaseInfo;

use crate::error::{Error, Result};

/// The agent's target: built static, so it runs as /init with no libraries.
pub const TARGET: &str = "x86_64-unknown-linux-gnu";

/// `cargo build` the agent (a no-op when nothing changed) and return its path.
pub fn build() -> Result<PathBuf> {
    let root = crate::env::cache::workspace_root();
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
        .map_err(|e| Error::agent_build_from("cargo", e))?;
    if !out.status.success() {
        return Err(Error::agent_build(crate::env::process::tail(
            &out.stderr,
            20,
        )));
    }
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    Ok(target_dir.join(TARGET).join("release").join("fpt-agent"))
}

/// What `agent list --json` says: every case, in the order a full run takes them.
pub fn catalog(agent: &Path) -> Result<Vec<CaseInfo>> {
    let out = crate::env::process::output(Command::new(agent).args(["list", "--json"]))?;
    serde_json::from_slice(&out.stdout)
        .map_err(|e| Error::agent_build_from(format!("{} list --json", agent.display()), e))
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
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    proto::catalog::select(catalog, &names, validating).map_err(|e| match e {
        proto::catalog::Unselectable::Unknown(n) | proto::catalog::Unselectable::NoMatch(n) => {
            Error::UnknownCase(n)
        }
    })
}

/// Which part of a catalog one runner takes: shard `index` of `count` (1-based), so that one
/// kernel's catalog can spread over `count` CI runners.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// Which shard, from 1.
    pub index: u32,
    /// How many shards in all.
    pub count: u32,
}

impl Shard {
    /// "2/4" -> shard 2 of 4.
    pub fn parse(s: &str) -> std::result::Result<Shard, String> {
        let bad = || format!("shard {s}: give I/N with 1 <= I <= N, e.g. 2/4");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count) = (
            i.trim().parse::<u32>().map_err(|_| bad())?,
            n.trim().parse::<u32>().map_err(|_| bad())?,
        );
        if index == 0 || count == 0 || index > count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }

    /// The cases of this shard: every count-th case of the selection, starting at index.
    /// Dealt round-robin in catalog order, so each shard gets a share of every group (the
    /// slow stacking and fault cases do not all land on one runner), and the shards of one
    /// selection partition it exactly.
    pub fn take(self, cases: Vec<&CaseInfo>) -> Vec<&CaseInfo> {
        cases
            .into_iter()
            .enumerate()
            .filter(|(i, _)| (*i as u32) % self.count == self.index - 1)
            .map(|(_, c)| c)
            .collect()
    }
}

#[cfg(test)]
mod shard_tests {
    use super::*;

    #[test]
    fn shards_partition_the_selection() {
        let catalog: Vec<CaseInfo> = (0..7)
            .map(|i| CaseInfo {
                name: format!("g.c{i}"),
                ..Default::default()
            })
            .collect();
        let all: Vec<&CaseInfo> = catalog.iter().collect();
        let mut seen: Vec<String> = Vec::new();
        for index in 1..=3 {
            let shard = Shard { index, count: 3 };
            seen.extend(shard.take(all.clone()).iter().map(|c| c.name.clone()));
        }
        seen.sort();
        let mut names: Vec<String> = catalog.iter().map(|c| c.name.clone()).collect();
        names.sort();
        assert_eq!(seen, names);
        assert_eq!(Shard::parse("2/3"), Ok(Shard { index: 2, count: 3 }));
        assert!(Shard::parse("0/3").is_err());
        assert!(Shard::parse("4/3").is_err());
        assert!(Shard::parse("x").is_err());
    }

    #[test]
    fn patterns_pick_cases() {
        let catalog: Vec<CaseInfo> = ["a.x", "a.y", "b.x"]
            .iter()
            .map(|n| CaseInfo {
                name: n.to_string(),
                kills_kernel: *n == "a.y",
                ..Default::default()
            })
            .collect();
        let names = |p: &[&str]| -> Vec<String> {
            let p: Vec<String> = p.iter().map(|s| s.to_string()).collect();
            select(&catalog, &p, false)
                .unwrap()
                .iter()
                .map(|c| c.name.clone())
                .collect()
        };
        assert_eq!(names(&["*.x"]), ["a.x", "b.x"]);
        assert_eq!(names(&["a.*"]), ["a.x"], "a kernel killer must be named");
        assert_eq!(names(&["b.x", "*.x"]), ["b.x", "a.x"]);
        assert!(select(&catalog, &["c.*".to_string()], false).is_err());
    }
}
