//! The record of a run: the plan it was given (`plan.json`), how long each step took, and
//! the run the boots' logs make ([`assemble`]), saved as `results.json`, `findings.json`
//! and `summary.txt`. Live runs and `replay` both end in [`finish`].

use std::path::PathBuf;
use std::time::Duration;

use proto::CaseResult;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::kernel::Identity;
use crate::results::assemble::RunLog;

/// How long each step took, and sizes: what `cargo xtask bench` prints.
#[derive(Debug, Default, Clone)]
pub struct Timings {
    /// Fetching or building the kernel.
    pub kernel_fetch: Duration,
    /// Building the agent and reading its catalog.
    pub agent_build: Duration,
    /// Making the initramfs.
    pub initramfs_build: Duration,
    /// The KVM probe boot.
    pub accel_probe: Duration,
    /// QEMU start (or agent start, in host mode) to the first result.
    pub first_result_after: Option<Duration>,
    /// QEMU start to exit, or the agent's whole run in host mode.
    pub guest_wall: Duration,
    /// The whole run.
    pub total: Duration,
    /// The agent's size.
    pub agent_bytes: u64,
    /// The initramfs's size.
    pub initramfs_bytes: u64,
}

/// A whole run: its kernel, how it ran, one result per case, and where its files are.
#[derive(Debug)]
pub struct Run {
    /// The release the guest reported (the plan's when it said nothing).
    pub kernel_release: String,
    /// Who the kernel is.
    pub identity: Identity,
    /// How it ran: host, QEMU or vng.
    pub mode: Mode,
    /// One per case, in plan order.
    pub results: Vec<CaseResult>,
    /// Why the guest did not finish, when it did not.
    pub died: Option<String>,
    /// The run's directory under target/fpt-runs.
    pub artifacts: PathBuf,
    /// How long each step took.
    pub timings: Timings,
    /// The server under test's target name, for a validate run.
    pub target: Option<String>,
    /// How a validate run's server got its requests (`validate --transport`).
    pub transport: Option<proto::validate::Transport>,
    /// Every kernel report, with the case it appeared in (findings.json).
    pub findings: Vec<(Option<String>, crate::results::classify::Finding)>,
}

impl Run {
    /// Whether every case passed or skipped.
    pub fn all_ok(&self) -> bool {
        self.results.iter().all(|r| r.verdict.is_ok())
    }
}

/// How a run ran: which backend, with what. Saved in `plan.json` and `results.json` as the
/// words people read ("host", "qemu tcg microvm", "vng kvm"), which replay parses back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum Mode {
    /// The running kernel, no VM: each case in a process of its own.
    Host,
    /// Our QEMU command line, the agent as /init.
    Qemu {
        /// "kvm" or "tcg".
        accel: String,
        /// "microvm" or "q35".
        machine: String,
    },
    /// virtme-ng's VM, the agent in host mode on the host's root.
    Vng {
        /// "kvm" or "tcg".
        accel: String,
    },
}

impl Mode {
    /// Host mode: no VM, no console to classify, no share.
    pub fn is_host(&self) -> bool {
        matches!(self, Mode::Host)
    }

    /// Our own QEMU: the only backend whose QEMU processes the harness starts itself.
    pub fn is_qemu(&self) -> bool {
        matches!(self, Mode::Qemu { .. })
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mode::Host => f.write_str("host"),
            Mode::Qemu { accel, machine } => write!(f, "qemu {accel} {machine}"),
            Mode::Vng { accel } => write!(f, "vng {accel}"),
        }
    }
}

impl From<Mode> for String {
    fn from(mode: Mode) -> String {
        mode.to_string()
    }
}

impl TryFrom<String> for Mode {
    type Error = String;

    fn try_from(text: String) -> std::result::Result<Mode, String> {
        let words: Vec<&str> = text.split(' ').collect();
        match words.as_slice() {
            ["host"] => Ok(Mode::Host),
            ["qemu", accel, machine] => Ok(Mode::Qemu {
                accel: accel.to_string(),
                machine: machine.to_string(),
            }),
            ["vng", accel] => Ok(Mode::Vng {
                accel: accel.to_string(),
            }),
            _ => Err(format!("not a run mode: {text:?}")),
        }
    }
}

/// What a run directory holds besides the logs: who the kernel was, how it ran, and which
/// cases each boot was to run (one boot, or one per case with `--isolate`). `replay` starts
/// from it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    /// Who the kernel is.
    pub identity: Identity,
    /// How it runs.
    pub mode: Mode,
    /// The server under test, for a validate run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validate: Option<proto::validate::Spec>,
    /// One or more boots (one per case with `--isolate`).
    pub boots: Vec<PlannedBoot>,
    /// Where several boots ran side by side (`--jobs`): every case in the order one boot
    /// would have run them, the order of the results. Empty otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub order: Vec<String>,
    /// A coverage run (`--coverage`): the build whose counters the agent sends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coverage: Option<crate::kernel::CoverageBuild>,
    /// Whether the run is the whole default catalog, unsharded: a coverage run of the base
    /// tree is then the base `--case reaches-patch` picks from.
    #[serde(default)]
    pub whole_catalog: bool,
}

/// One boot of a plan.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlannedBoot {
    /// Relative to the run directory: "." or the case's name.
    pub dir: String,
    /// The cases it was to run.
    pub cases: Vec<String>,
}

impl Plan {
    /// Its file name in a run's directory.
    pub const FILE: &'static str = "plan.json";

    /// The plan a run saved in `artifacts`.
    pub fn read(artifacts: &std::path::Path) -> Result<Plan> {
        let path = artifacts.join(Plan::FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(path.display(), e))?;
        serde_json::from_str(&text).map_err(|e| Error::NotARun {
            dir: artifacts.to_path_buf(),
            file: Plan::FILE.into(),
            source: Some(Box::new(e)),
        })
    }
}

/// The post-processing of every boot's log (`results::assemble`), then the results, the
/// findings and the summary saved next to the console log. `replay` ends here too.
pub fn finish(
    plan: Plan,
    logs: Vec<(RunLog, Vec<String>)>,
    artifacts: PathBuf,
    timings: Timings,
) -> Result<Run> {
    let run = assemble(plan, &logs, artifacts, timings);
    save(&run)?;
    Ok(run)
}

/// The run the logs make, saving nothing.
pub fn assemble(
    plan: Plan,
    logs: &[(RunLog, Vec<String>)],
    artifacts: PathBuf,
    timings: Timings,
) -> Run {
    let mut results = Vec::new();
    let mut findings = Vec::new();
    let mut died = None;
    let mut release = plan.identity.release.clone();
    for (log, planned) in logs {
        let part = crate::results::assemble::assemble(planned, log);
        release = log.kernel_release().map(String::from).unwrap_or(release);
        results.extend(part.results);
        findings.extend(part.findings);
        died = died.or(part.died);
    }
    // Boots side by side: the results in the order one boot gives them.
    if !plan.order.is_empty() {
        let at = |case: &str| {
            plan.order
                .iter()
                .position(|c| c == case)
                .unwrap_or(usize::MAX)
        };
        results.sort_by_key(|r| at(&r.case));
    }
    Run {
        kernel_release: release,
        identity: plan.identity,
        mode: plan.mode,
        results,
        died,
        artifacts,
        timings,
        transport: plan.validate.as_ref().map(|v| v.transport),
        // Over the ring, a target of its own: its snapshot is not the /dev/fuse one's.
        target: plan.validate.map(|v| match v.transport {
            proto::validate::Transport::Dev => v.target,
            proto::validate::Transport::Uring => format!("{}-uring", v.target),
        }),
        findings,
    }
}

/// results.json, findings.json (VM runs) and summary.txt, beside the logs (again, after a
/// host-side expectation changed a verdict).
pub fn save(run: &Run) -> Result<()> {
    if !run.mode.is_host() {
        let findings: Vec<_> = run
            .findings
            .iter()
            .map(|(case, f)| serde_json::json!({ "case": case, "finding": f }))
            .collect();
        let path = run.artifacts.join("findings.json");
        std::fs::write(
            &path,
            serde_json::to_string_pretty(&findings).expect("findings serialise"),
        )
        .map_err(|e| Error::io(path.display(), e))?;
    }
    let json =
        serde_json::json!({ "kernel": run.identity, "mode": run.mode, "results": run.results });
    let path = run.artifacts.join("results.json");
    std::fs::write(
        &path,
        serde_json::to_string_pretty(&json).expect("results serialise"),
    )
    .map_err(|e| Error::io(path.display(), e))?;
    let summary = format!(
        "{}\n{}\n{}",
        crate::results::table::identity(&run.identity, &run.mode),
        crate::results::table::table(&run.results),
        crate::results::table::totals(&run.results)
    );
    let path = run.artifacts.join("summary.txt");
    std::fs::write(&path, summary).map_err(|e| Error::io(path.display(), e))
}

#[cfg(test)]
mod tests {
    use super::Mode;

    #[test]
    fn modes_read_back_as_written() {
        for text in ["host", "qemu tcg microvm", "qemu kvm q35", "vng tcg"] {
            let mode = Mode::try_from(text.to_string()).unwrap();
            assert_eq!(mode.to_string(), text);
        }
        assert!(Mode::try_from("qemu".to_string()).is_err());
    }
}
