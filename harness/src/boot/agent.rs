//! The in-guest agent: built as one static binary (it is `/init`, with no libc beside it),
//! and asked for its catalog: the host never compiles the guest crate, it reads what the
//! agent it is about to boot says it can run.

use std::path::{Path, PathBuf};
use std::process::Command;

use proto::catalog::Deal;
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

/// The cases one boot runs, and how its guest is told: the whole selection (named by groups
/// where it can be: [`proto::catalog::cases_param`]) and the deals that take this boot's
/// cases from it (a CI runner's `--shard`, then this boot's share of a run over several
/// VMs), which the agent makes the same way. A list of names would outgrow the kernel
/// command line (2048 bytes on x86) once a catalog of 146 cases is dealt.
#[derive(Debug, Clone)]
pub struct BootCases<'a> {
    /// What the boot runs, in order.
    pub cases: Vec<&'a CaseInfo>,
    selection: Vec<&'a CaseInfo>,
    deals: Vec<Deal>,
}

impl<'a> BootCases<'a> {
    /// `selection`, dealt by each of `deals` in turn.
    pub fn dealt(selection: Vec<&'a CaseInfo>, deals: Vec<Deal>) -> Self {
        let cases = deals.iter().fold(selection.clone(), |c, d| d.take(c));
        BootCases {
            cases,
            selection,
            deals,
        }
    }

    /// These cases, named one by one.
    pub fn listed(cases: Vec<&'a CaseInfo>) -> Self {
        Self::dealt(cases, Vec::new())
    }

    /// The kernel command line words that tell the agent which cases to run.
    pub fn params(&self, catalog: &[CaseInfo]) -> Vec<String> {
        let names: Vec<&str> = self.selection.iter().map(|c| c.name.as_str()).collect();
        let mut words = vec![format!(
            "{}={}",
            proto::layout::CASES_PARAM,
            proto::catalog::cases_param(&names, catalog)
        )];
        if !self.deals.is_empty() {
            let deals: Vec<String> = self.deals.iter().map(Deal::to_string).collect();
            words.push(format!("{}={}", proto::layout::DEAL_PARAM, deals.join(",")));
        }
        words
    }
}

#[cfg(test)]
mod boot_cases_tests {
    use super::*;

    #[test]
    fn a_boot_is_told_its_selection_and_deals_not_a_list() {
        let catalog: Vec<CaseInfo> = (0..60)
            .map(|i| CaseInfo {
                name: format!("group_{}.a_case_with_a_long_name_{i}", i / 20),
                ..Default::default()
            })
            .collect();
        let all: Vec<&CaseInfo> = catalog.iter().collect();
        let shard = Deal { index: 2, count: 2 };
        let boot = BootCases::dealt(all.clone(), vec![shard, Deal { index: 1, count: 2 }]);
        assert_eq!(boot.cases.len(), 15);
        assert_eq!(boot.cases[0].name, "group_0.a_case_with_a_long_name_1");
        assert_eq!(boot.params(&catalog), ["fpt.cases=all", "fpt.deal=2/2,1/2"]);
        let one = BootCases::listed(vec![all[3]]);
        assert_eq!(
            one.params(&catalog),
            ["fpt.cases=group_0.a_case_with_a_long_name_3"]
        );
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
