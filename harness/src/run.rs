//! One run, start to end: resolve the kernel, build the agent and the image, pick the
//! accelerator, boot (or run on the host), and collect one result per case.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use proto::{CaseInfo, CaseResult, Event};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::kernel::{Identity, Kernel, KernelChoice};
use crate::qemu::{self, Accel, Machine};
use crate::results::RunLog;
use crate::vm::{self, VmOptions};
use crate::{agent, cache, initramfs, modules};

#[derive(Debug, Clone)]
pub struct Request {
    pub kernel: KernelChoice,
    pub modules: Option<PathBuf>,
    /// Case names; empty means all.
    pub cases: Vec<String>,
    /// None: KVM if a probe boot works, else TCG.
    pub accel: Option<Accel>,
    pub machine: Machine,
    pub append: Vec<String>,
    pub boot_timeout: Option<Duration>,
    /// One boot per case, so a case that wedges the kernel spoils no other result.
    pub isolate: bool,
    /// vCPUs; None: the default (1).
    pub cpus: Option<u32>,
    /// The server under test (`cargo xtask validate`): its cases run against it.
    pub validate: Option<proto::validate::Spec>,
    /// Only this shard of the selected cases (`--shard I/N`).
    pub shard: Option<crate::agent::Shard>,
    /// Who boots the kernel: our QEMU set-up, or virtme-ng (`--backend vng`).
    pub backend: Backend,
}

/// Who boots the kernel under test.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Backend {
    /// Our own QEMU command line, the agent as /init ([`crate::vm`]).
    #[default]
    Qemu,
    /// `vng --run`, the agent in host mode on the host's root ([`crate::vng`]).
    Vng,
}

impl Default for Request {
    fn default() -> Self {
        Request {
            kernel: KernelChoice::parse(KernelChoice::DEFAULT),
            modules: None,
            cases: Vec::new(),
            accel: None,
            machine: Machine::Microvm,
            append: Vec::new(),
            boot_timeout: None,
            isolate: false,
            cpus: None,
            validate: None,
            shard: None,
            backend: Backend::Qemu,
        }
    }
}

/// How long each step took, and sizes: what `cargo xtask bench` prints.
#[derive(Debug, Default, Clone)]
pub struct Timings {
    pub kernel_fetch: Duration,
    pub agent_build: Duration,
    pub initramfs_build: Duration,
    pub accel_probe: Duration,
    /// QEMU start (or agent start, in host mode) to the first result.
    pub first_result_after: Option<Duration>,
    /// QEMU start to exit, or the agent's whole run in host mode.
    pub guest_wall: Duration,
    pub total: Duration,
    pub agent_bytes: u64,
    pub initramfs_bytes: u64,
}

#[derive(Debug)]
pub struct Run {
    pub kernel_release: String,
    pub identity: Identity,
    /// "host", or "qemu tcg microvm".
    pub mode: String,
    pub results: Vec<CaseResult>,
    /// Why the guest did not finish, when it did not.
    pub died: Option<String>,
    pub artifacts: PathBuf,
    pub timings: Timings,
    /// The server under test's target name, for a validate run.
    pub target: Option<String>,
    /// Every kernel report, with the case it appeared in (findings.json).
    pub findings: Vec<(Option<String>, crate::classify::Finding)>,
}

impl Run {
    pub fn all_ok(&self) -> bool {
        self.results.iter().all(|r| r.verdict.is_ok())
    }
}

/// What a run directory holds besides the logs: who the kernel was, how it ran, and which
/// cases each boot was to run (one boot, or one per case with `--isolate`). `replay` starts
/// from it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    pub identity: Identity,
    pub mode: String,
    /// The server under test, for a validate run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validate: Option<proto::validate::Spec>,
    pub boots: Vec<PlannedBoot>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlannedBoot {
    /// Relative to the run directory: "." or the case's name.
    pub dir: String,
    pub cases: Vec<String>,
}

impl Plan {
    pub const FILE: &'static str = "plan.json";
}

pub fn run(req: &Request, on_event: &mut dyn FnMut(&Event)) -> Result<Run> {
    let total = Instant::now();
    let mut t = Timings::default();

    // The agent first: its catalog decides what the case names mean.
    let started = Instant::now();
    let (agent, catalog) = agent::build_with_catalog()?;
    t.agent_build = started.elapsed();
    t.agent_bytes = std::fs::metadata(&agent).map(|m| m.len()).unwrap_or(0);
    let mut cases = agent::select(&catalog, &req.cases, req.validate.is_some())?;
    if let Some(shard) = req.shard {
        cases = shard.take(cases);
    }

    let started = Instant::now();
    let kernel = match &req.kernel {
        KernelChoice::Host => None,
        KernelChoice::Path(p) => Some(Kernel::from_path(p, req.modules.as_deref())?),
        KernelChoice::Debian(series) => Some(crate::debian_kernels::fetch(series, &cache::dir())?),
        KernelChoice::Build(b) => Some(crate::kbuild::build(b, &cache::dir())?.kernel),
        KernelChoice::Fetched(k) => Some((**k).clone()),
    };
    t.kernel_fetch = started.elapsed();
    if kernel.is_some() {
        qemu::ensure_installed()?;
    }

    let label = match &kernel {
        Some(k) => k.release.clone(),
        None => format!(
            "host-{}",
            rustix::system::uname().release().to_string_lossy()
        ),
    };
    let artifacts = artifacts_dir(&label)?;

    match (req.backend, &kernel) {
        (Backend::Vng, Some(kernel)) => {
            return run_in_vng(req, kernel, &agent, &cases, artifacts, t, total, on_event)
        }
        (Backend::Vng, None) => {
            return Err(Error::Vng(
                "vng boots a kernel: give --kernel PATH or a build (--profile vng), not host"
                    .into(),
            ))
        }
        _ => {}
    }

    let Some(kernel) = kernel else {
        if let Some(c) = cases.iter().find(|c| c.kills_kernel) {
            return Err(Error::HostRefuses(c.name.clone()));
        }
        let started = Instant::now();
        let ext4 = crate::disk::ext4_image(&cache::dir())?;
        let release = rustix::system::uname()
            .release()
            .to_string_lossy()
            .into_owned();
        let identity = Identity {
            release,
            source: "the running kernel".into(),
            ..Default::default()
        };
        let plan = Plan {
            identity,
            mode: "host".into(),
            validate: req.validate.clone(),
            boots: vec![PlannedBoot {
                dir: ".".into(),
                cases: names(&cases),
            }],
        };
        save_plan(&plan, &artifacts)?;
        let spec = save_spec(req, &artifacts)?;
        let log =
            crate::host::run_cases(&agent, &cases, &ext4, spec.as_deref(), &artifacts, on_event)?;
        t.guest_wall = started.elapsed();
        t.first_result_after = None;
        t.total = total.elapsed();
        return finish(plan, vec![(log, names(&cases))], artifacts, t);
    };

    let started = Instant::now();
    let image = artifacts.join("initramfs.cpio");
    let mods = match &kernel.modules {
        Some(dir) => modules::select(dir, &modules::wanted())?,
        None => Vec::new(),
    };
    let ext4 = crate::disk::ext4_image(&cache::dir())?;
    // The server under test runs from the host's root, shared into the guest.
    let guest_spec = match &req.validate {
        Some(spec) => {
            let (server, args) =
                crate::virtiofsd::guest_command(std::path::Path::new(&spec.server), &spec.args)?;
            let passthrough_off_args = match &spec.passthrough_off_args {
                Some(off) => Some(
                    crate::virtiofsd::guest_command(std::path::Path::new(&spec.server), off)?.1,
                ),
                None => None,
            };
            let guest = proto::validate::Spec {
                server,
                args,
                passthrough_off_args,
                ..spec.clone()
            };
            let text = serde_json::to_string_pretty(&guest).expect("specs serialise");
            std::fs::write(artifacts.join("validate.json"), &text)
                .map_err(|e| Error::io("artifacts", e))?;
            Some(text.into_bytes())
        }
        None => None,
    };
    initramfs::build(&agent, &mods, &ext4, guest_spec.as_deref(), &image)?;
    t.initramfs_build = started.elapsed();
    t.initramfs_bytes = std::fs::metadata(&image).map(|m| m.len()).unwrap_or(0);

    let started = Instant::now();
    let accel = match req.accel {
        Some(a) => a,
        None => choose_accel(&kernel, &image, req.machine, &catalog, &artifacts),
    };
    t.accel_probe = started.elapsed();

    let mut opts = VmOptions::new(accel);
    opts.machine = req.machine;
    opts.append = req.append.clone();
    if let Some(b) = req.boot_timeout {
        opts.boot_timeout = b;
    }
    if let Some(n) = req.cpus {
        opts.cpus = n;
    }
    if req.validate.is_some() {
        opts.share = Some((crate::virtiofsd::ensure(&cache::dir())?, "/".into()));
    } else if cases.iter().any(|c| c.uses_host_share) {
        // A catalog case on the share: without virtiofsd it skips, the run goes on.
        match crate::virtiofsd::ensure(&cache::dir()) {
            Ok(bin) => opts.share = Some((bin, "/".into())),
            Err(e) => eprintln!("no virtio-fs share for this run ({e}): its cases skip"),
        }
    }
    let machine = match req.machine {
        Machine::Microvm => "microvm",
        Machine::Q35 => "q35",
    };
    // One boot for all, or (isolated) one per case, each with its own artifacts directory.
    let groups: Vec<(Vec<&CaseInfo>, String)> = if req.isolate {
        cases.iter().map(|c| (vec![*c], c.name.clone())).collect()
    } else {
        vec![(cases.clone(), ".".to_string())]
    };
    let plan = Plan {
        identity: kernel.identity.clone(),
        mode: format!("qemu {} {machine}", accel.name()),
        validate: req.validate.clone(),
        boots: groups
            .iter()
            .map(|(g, dir)| PlannedBoot {
                dir: dir.clone(),
                cases: names(g),
            })
            .collect(),
    };
    save_plan(&plan, &artifacts)?;
    let mut logs = Vec::new();
    for (group, dir) in &groups {
        let dir = match dir.as_str() {
            "." => artifacts.clone(),
            d => artifacts.join(d),
        };
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(dir.display(), e))?;
        let boot = vm::boot(&kernel, &image, group, &catalog, &opts, &dir, on_event)?;
        t.guest_wall += boot.wall;
        t.first_result_after = t.first_result_after.or(boot.first_result_after);
        // Only a server under test needs the share; a catalog case on it skips without.
        let unshared = boot.log.events.iter().find_map(|e| match e {
            Event::Hello { share, .. } => Some(share.clone().filter(|s| s != "mounted")),
            _ => None,
        });
        if let (Some(Some(why)), true) = (unshared, req.validate.is_some()) {
            return Err(Error::NoVirtioFs {
                release: kernel.release.clone(),
                why,
            });
        }
        logs.push((boot.log, names(group)));
    }
    t.total = total.elapsed();
    finish(plan, logs, artifacts, t)
}

/// `--backend vng`: the agent's host mode inside `vng --run`, then the same post-processing.
#[allow(clippy::too_many_arguments)]
fn run_in_vng(
    req: &Request,
    kernel: &Kernel,
    agent: &Path,
    cases: &[&CaseInfo],
    artifacts: PathBuf,
    mut t: Timings,
    total: Instant,
    on_event: &mut dyn FnMut(&Event),
) -> Result<Run> {
    let ext4 = crate::disk::ext4_image(&cache::dir())?;
    let tcg = req.accel != Some(Accel::Kvm);
    let plan = Plan {
        identity: kernel.identity.clone(),
        mode: format!("vng {}", if tcg { "tcg" } else { "kvm" }),
        validate: req.validate.clone(),
        boots: vec![PlannedBoot {
            dir: ".".into(),
            cases: names(cases),
        }],
    };
    save_plan(&plan, &artifacts)?;
    let spec = save_spec(req, &artifacts)?;
    let started = Instant::now();
    let log = crate::vng::run_cases(
        kernel,
        tcg,
        agent,
        cases,
        &ext4,
        spec.as_deref(),
        &artifacts,
        on_event,
    )?;
    t.guest_wall = started.elapsed();
    t.total = total.elapsed();
    finish(plan, vec![(log, names(cases))], artifacts, t)
}

fn names(cases: &[&CaseInfo]) -> Vec<String> {
    cases.iter().map(|c| c.name.clone()).collect()
}

/// The server under test's spec, as `validate.json` beside the artifacts, for the agent.
fn save_spec(req: &Request, artifacts: &Path) -> Result<Option<PathBuf>> {
    let Some(spec) = &req.validate else {
        return Ok(None);
    };
    let path = artifacts.join("validate.json");
    std::fs::write(
        &path,
        serde_json::to_string_pretty(spec).expect("specs serialise"),
    )
    .map_err(|e| Error::io(path.display(), e))?;
    Ok(Some(path))
}

fn save_plan(plan: &Plan, artifacts: &Path) -> Result<()> {
    let path = artifacts.join(Plan::FILE);
    std::fs::write(
        &path,
        serde_json::to_string_pretty(plan).expect("plans serialise"),
    )
    .map_err(|e| Error::io(path.display(), e))
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
        let part = crate::results::assemble(planned, log);
        release = log.kernel_release().map(String::from).unwrap_or(release);
        results.extend(part.results);
        findings.extend(part.findings);
        died = died.or(part.died);
    }
    Run {
        kernel_release: release,
        identity: plan.identity,
        mode: plan.mode,
        results,
        died,
        artifacts,
        timings,
        target: plan.validate.map(|v| v.target),
        findings,
    }
}

/// results.json, findings.json (VM runs) and summary.txt, beside the logs.
fn save(run: &Run) -> Result<()> {
    if run.mode != "host" {
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
        crate::report::identity(&run.identity, &run.mode),
        crate::report::table(&run.results),
        crate::report::totals(&run.results)
    );
    let path = run.artifacts.join("summary.txt");
    std::fs::write(&path, summary).map_err(|e| Error::io(path.display(), e))
}

/// `target/fpt-runs/<unix time>-<label>`, and `target/fpt-runs/latest` pointing at it.
pub(crate) fn artifacts_dir(label: &str) -> Result<PathBuf> {
    let runs = cache::workspace_root().join("target").join("fpt-runs");
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let label: String = label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut dir = runs.join(format!("{secs}-{label}"));
    let mut n = 1;
    while dir.exists() {
        n += 1;
        dir = runs.join(format!("{secs}-{label}-{n}"));
    }
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(dir.display(), e))?;
    let latest = runs.join("latest");
    let _ = std::fs::remove_file(&latest);
    let _ = std::os::unix::fs::symlink(dir.file_name().expect("has a name"), &latest);
    Ok(dir)
}

/// KVM only when a real boot under it reaches the agent: here /dev/kvm exists but hangs or
/// aborts ordinary guests. The answer is kept for this host boot.
fn choose_accel(
    kernel: &Kernel,
    image: &Path,
    machine: Machine,
    catalog: &[CaseInfo],
    artifacts: &Path,
) -> Accel {
    if !qemu::kvm_device_usable() {
        return Accel::Tcg;
    }
    let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    let memo = cache::dir().join("kvm-probe");
    if let Ok(saved) = std::fs::read_to_string(&memo) {
        if let Some(answer) = saved.strip_prefix(boot_id.trim()) {
            return if answer.trim() == "kvm" {
                Accel::Kvm
            } else {
                Accel::Tcg
            };
        }
    }
    let probe_dir = artifacts.join("kvm-probe");
    let _ = std::fs::create_dir_all(&probe_dir);
    let mut opts = VmOptions::new(Accel::Kvm);
    opts.machine = machine;
    opts.boot_timeout = Duration::from_secs(10);
    let works = vm::boot(kernel, image, &[], catalog, &opts, &probe_dir, &mut |_| {})
        .is_ok_and(|b| b.log.events.contains(&Event::Done));
    let accel = if works { Accel::Kvm } else { Accel::Tcg };
    eprintln!(
        "KVM probe boot {}: using {}",
        if works { "worked" } else { "failed" },
        accel.name()
    );
    let _ = std::fs::create_dir_all(cache::dir());
    let _ = std::fs::write(&memo, format!("{} {}\n", boot_id.trim(), accel.name()));
    accel
}
