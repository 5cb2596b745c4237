//! One run, start to end: resolve the kernel, build the agent and the image, pick the
//! accelerator, boot (or run on the host), and collect one result per case.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use proto::catalog::Deal;
use proto::{CaseInfo, Event};

use crate::boot::agent::{self, BootCases};
use crate::boot::initramfs;
use crate::boot::qemu::{self, Accel, Machine};
use crate::boot::vm::{self, VmOptions};
use crate::env::cache;
use crate::error::{Error, Result};
use crate::kernel::modules;
use crate::kernel::{Identity, Kernel, KernelChoice};
use crate::results::coverage;
use crate::results::record::{finish, Mode, Plan, PlannedBoot, Run, Timings};

/// What to run: the kernel, the cases, how to boot.
#[derive(Debug, Clone)]
pub struct Request {
    /// `--kernel`.
    pub kernel: KernelChoice,
    /// `--modules`: the kernel's modules directory.
    pub modules: Option<PathBuf>,
    /// Case names; empty means all.
    pub cases: Vec<String>,
    /// None: KVM if a probe boot works, else TCG.
    pub accel: Option<Accel>,
    /// The machine type.
    pub machine: Machine,
    /// Extra kernel command line words.
    pub append: Vec<String>,
    /// QEMU start to the agent's hello; None: 60 s.
    pub boot_timeout: Option<Duration>,
    /// One boot per case, so a case that wedges the kernel spoils no other result.
    pub isolate: bool,
    /// vCPUs; None: the default (1).
    pub cpus: Option<u32>,
    /// The server under test (`cargo xtask validate`): its cases run against it.
    pub validate: Option<proto::validate::Spec>,
    /// Only this shard of the selected cases (`--shard I/N`).
    pub shard: Option<proto::catalog::Deal>,
    /// Who boots the kernel: our QEMU set-up, or virtme-ng (`--backend vng`).
    pub backend: Backend,
    /// VMs side by side for one kernel's cases (QEMU only); None: one per core.
    pub jobs: Option<usize>,
    /// fs/fuse built with gcov, each case's counters collected (`--coverage`): a kernel
    /// built from source only.
    pub coverage: bool,
    /// End the run at the first result that settles it (our QEMU only; `mutate`).
    pub stop_at: Option<crate::boot::vm::StopAt>,
}

/// Who boots the kernel under test.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Backend {
    /// Our own QEMU command line, the agent as /init ([`crate::boot::vm`]).
    #[default]
    Qemu,
    /// `vng --run`, the agent in host mode on the host's root ([`crate::boot::vng`]).
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
            jobs: None,
            coverage: false,
            stop_at: None,
        }
    }
}

/// One run, start to end: the agent and its catalog, the selection, the kernel, the
/// backend (chosen once), the plan, the boots, the results saved beside the logs;
/// `on_event` sees every event as it comes.
pub fn run(req: &Request, on_event: &mut dyn FnMut(&Event)) -> Result<Run> {
    let total = Instant::now();
    let mut t = Timings::default();
    refuse_coverage(req)?;
    let reaches_patch = req
        .cases
        .iter()
        .any(|c| c == coverage::reach::REACHES_PATCH);
    if reaches_patch && !req.coverage {
        return Err(Error::coverage(
            "--case reaches-patch picks cases by coverage: add --coverage (and --src, --patch)",
            None,
        ));
    }

    // What a run needs and a first run installs or builds, side by side: the agent (its
    // catalog decides what the case names mean), the kernel, QEMU, the ext4 image. Errors
    // are reported in that order.
    let ready = ready(req)?;
    t.agent_build = ready.agent_took;
    t.kernel_fetch = ready.kernel_took;
    let (agent, catalog, ext4) = (ready.agent, ready.catalog, ready.ext4);
    t.agent_bytes = std::fs::metadata(&agent).map(|m| m.len()).unwrap_or(0);
    let cover = ready.kernel.as_ref().and_then(|k| k.coverage.clone());
    let asked: Vec<String> = match (&cover, reaches_patch) {
        (Some(build), true) => reaching(build)?,
        _ => req.cases.clone(),
    };
    let mut selection = agent::select(&catalog, &asked, req.validate.is_some())?;
    if reaches_patch {
        // A set, in no order of its own: catalog order, which the command line carries
        // however many cases it names (proto::catalog::cases_param).
        selection.sort_by_key(|c| catalog.iter().position(|k| k.name == c.name));
    }
    let cases = match req.shard {
        Some(shard) => shard.take(selection.clone()),
        None => selection.clone(),
    };
    let target = Target::choose(req.backend, ready.kernel, &cases)?;
    let artifacts = cache::artifacts_dir(&target.label())?;

    match target {
        Target::Host | Target::Vng(_) => {
            let tcg = req.accel != Some(Accel::Kvm);
            let (identity, mode) = match &target {
                Target::Vng(kernel) => (
                    kernel.identity.clone(),
                    Mode::Vng {
                        accel: if tcg { Accel::Tcg } else { Accel::Kvm }.name().into(),
                    },
                ),
                _ => (identity_of_host(), Mode::Host),
            };
            let plan = one_boot(identity, mode, req, &cases);
            save_plan(&plan, &artifacts)?;
            let spec = save_spec(req, &artifacts)?;
            let started = Instant::now();
            // The agent's `run` subcommand, on this kernel or inside vng's VM.
            let run = crate::boot::AgentRun {
                agent: &agent,
                cases: &cases,
                ext4_image: &ext4,
                validate_spec: spec.as_deref(),
                artifacts: &artifacts,
            };
            let log = match &target {
                Target::Vng(kernel) => crate::boot::vng::run_cases(kernel, tcg, &run, on_event)?,
                _ => crate::boot::host::run_cases(&run, on_event)?,
            };
            t.guest_wall = started.elapsed();
            t.total = total.elapsed();
            finish(plan, vec![(log, names(&cases))], artifacts, t)
        }
        Target::Qemu(kernel) => {
            let (image, opts) = prepare_qemu(
                req, &kernel, &agent, &ext4, &catalog, &cases, &artifacts, &mut t,
            )?;
            let groups = boots(&selection, req.shard, req.isolate, jobs(req));
            let plan = Plan {
                identity: kernel.identity.clone(),
                mode: Mode::Qemu {
                    accel: opts.accel.name().into(),
                    machine: req.machine.name().into(),
                },
                validate: req.validate.clone(),
                boots: groups
                    .iter()
                    .map(|(g, dir)| PlannedBoot {
                        dir: dir.clone(),
                        cases: names(&g.cases),
                    })
                    .collect(),
                // Several boots side by side: results in the order one boot gives them.
                order: match groups.len() > 1 && !req.isolate {
                    true => names(&cases),
                    false => Vec::new(),
                },
                coverage: cover.clone(),
                whole_catalog: whole_catalog(req),
            };
            save_plan(&plan, &artifacts)?;
            let mut logs = Vec::new();
            let started = Instant::now();
            let booted = boot_all(
                &kernel,
                &image,
                &groups,
                &catalog,
                &opts,
                &artifacts,
                req.isolate,
                on_event,
            );
            t.guest_wall = started.elapsed();
            for ((group, _), boot) in groups.iter().zip(booted) {
                let boot = boot?;
                t.first_result_after = match (t.first_result_after, boot.first_result_after) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
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
                logs.push((boot.log, names(&group.cases)));
            }
            t.total = total.elapsed();
            finish(plan, logs, artifacts, t)
        }
    }
}

/// How many VMs side by side: `--jobs`, else one per core.
fn jobs(req: &Request) -> usize {
    req.jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1)
}

/// The boots of a QEMU run, each with its directory: one per case (`--isolate`), or with
/// `jobs` > 1 the cases (`selection`, of which `shard` when given) dealt round-robin in
/// catalog order over that many boots (`boot-1`, ...), or one boot for all ("."). A
/// selection holding a case that may take the kernel down keeps one boot, so that what
/// comes after it is reported not reached, as the crash reports promise; `--isolate` gives
/// such a case a boot of its own.
fn boots<'a>(
    selection: &[&'a CaseInfo],
    shard: Option<Deal>,
    isolate: bool,
    jobs: usize,
) -> Vec<(BootCases<'a>, String)> {
    let sharded: Vec<Deal> = shard.into_iter().collect();
    let cases = BootCases::dealt(selection.to_vec(), sharded.clone()).cases;
    if isolate {
        return cases
            .iter()
            .map(|c| (BootCases::listed(vec![*c]), c.name.clone()))
            .collect();
    }
    let jobs = jobs.min(cases.len()).max(1);
    if jobs == 1 || cases.iter().any(|c| c.kills_kernel) {
        return vec![(BootCases::dealt(selection.to_vec(), sharded), ".".into())];
    }
    (0..jobs)
        .map(|j| {
            let mut deals = sharded.clone();
            deals.push(Deal {
                index: j as u32 + 1,
                count: jobs as u32,
            });
            (
                BootCases::dealt(selection.to_vec(), deals),
                format!("boot-{}", j + 1),
            )
        })
        .collect()
}

/// Every boot of `groups`, side by side, each in its own directory under `artifacts`;
/// their events reach `on_event` on this thread as they come. One result per group, in order.
#[allow(clippy::too_many_arguments)]
fn boot_all(
    kernel: &Kernel,
    image: &Path,
    groups: &[(BootCases, String)],
    catalog: &[CaseInfo],
    opts: &VmOptions,
    artifacts: &Path,
    isolate: bool,
    on_event: &mut dyn FnMut(&Event),
) -> Vec<Result<vm::Boot>> {
    let dir_of = |dir: &str| match dir {
        "." => artifacts.to_path_buf(),
        d => artifacts.join(d),
    };
    // --isolate boots one after the other: a case that wedges the kernel, alone.
    if isolate || groups.len() == 1 {
        return groups
            .iter()
            .map(|(group, dir)| {
                let dir = dir_of(dir);
                std::fs::create_dir_all(&dir).map_err(|e| Error::io(dir.display(), e))?;
                vm::boot(kernel, image, group, catalog, opts, &dir, on_event)
            })
            .collect();
    }
    let (tx, rx) = std::sync::mpsc::channel::<Event>();
    std::thread::scope(|s| {
        let handles: Vec<_> = groups
            .iter()
            .map(|(group, dir)| {
                let tx = tx.clone();
                let dir = dir_of(dir);
                s.spawn(move || {
                    std::fs::create_dir_all(&dir).map_err(|e| Error::io(dir.display(), e))?;
                    vm::boot(kernel, image, group, catalog, opts, &dir, &mut |e| {
                        let _ = tx.send(e.clone());
                    })
                })
            })
            .collect();
        drop(tx);
        for event in rx {
            on_event(&event);
        }
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(Error::qemu("a boot's thread panicked")))
            })
            .collect()
    })
}

/// Where the agent runs, chosen once from `--backend` and `--kernel`.
enum Target {
    /// The running kernel, no VM.
    Host,
    /// Our QEMU, the agent as /init.
    Qemu(Kernel),
    /// virtme-ng, the agent in host mode inside.
    Vng(Kernel),
}

impl Target {
    fn choose(backend: Backend, kernel: Option<Kernel>, cases: &[&CaseInfo]) -> Result<Target> {
        match (backend, kernel) {
            (Backend::Qemu, Some(k)) => Ok(Target::Qemu(k)),
            (Backend::Vng, Some(k)) => Ok(Target::Vng(k)),
            (Backend::Vng, None) => Err(Error::vng(
                "vng boots a kernel: give --kernel PATH or a build (--profile vng), not host",
            )),
            (Backend::Qemu, None) => match cases.iter().find(|c| c.kills_kernel) {
                Some(c) => Err(Error::HostRefuses(c.name.clone())),
                None => Ok(Target::Host),
            },
        }
    }

    /// The artifacts directory's name: the kernel's release.
    fn label(&self) -> String {
        match self {
            Target::Host => format!("host-{}", host_release()),
            Target::Qemu(k) | Target::Vng(k) => k.release.clone(),
        }
    }
}

/// What [`ready`] made.
struct Ready {
    agent: PathBuf,
    catalog: Vec<CaseInfo>,
    agent_took: Duration,
    kernel: Option<Kernel>,
    kernel_took: Duration,
    ext4: PathBuf,
}

/// The agent built, the kernel fetched or built, QEMU installed (unless the kernel is the
/// host's) and the ext4 image made, each on a thread of its own: on a first run they are
/// minutes of downloads and builds that wait on nothing but themselves. Each says when it
/// is done, with its time, once the whole took more than a moment.
fn ready(req: &Request) -> Result<Ready> {
    let started = Instant::now();
    let say = |what: &str, took: Duration| {
        if took > Duration::from_secs(2) {
            eprintln!("{what}: ready in {:.1} s", took.as_secs_f64());
        }
    };
    let timed = |what: &str, f: &dyn Fn() -> Result<()>| -> Result<Duration> {
        let began = Instant::now();
        f()?;
        let took = began.elapsed();
        say(what, took);
        Ok(took)
    };
    let needs_qemu = !matches!(req.kernel, KernelChoice::Host);
    std::thread::scope(|s| {
        let kernel = s.spawn(|| {
            let began = Instant::now();
            let k = req.kernel.resolve(req.coverage, req.modules.as_deref());
            say("kernel", began.elapsed());
            k.map(|k| (k, began.elapsed()))
        });
        let qemu = s.spawn(move || match needs_qemu {
            true => timed("QEMU", &|| qemu::ensure_installed()).map(drop),
            false => Ok(()),
        });
        let ext4 = s.spawn(|| crate::boot::disk::ext4_image(&cache::dir()));
        let began = Instant::now();
        let agent = agent::build_with_catalog();
        let agent_took = began.elapsed();
        say("agent", agent_took);
        let (agent, catalog) = agent?;
        let (kernel, kernel_took) = kernel.join().expect("the kernel thread ends")?;
        qemu.join().expect("the QEMU thread ends")?;
        let ext4 = ext4.join().expect("the ext4 thread ends")?;
        say("everything a run needs", started.elapsed());
        Ok(Ready {
            agent,
            catalog,
            agent_took,
            kernel,
            kernel_took,
            ext4,
        })
    })
}

fn host_release() -> String {
    rustix::system::uname()
        .release()
        .to_string_lossy()
        .into_owned()
}

fn identity_of_host() -> Identity {
    Identity {
        release: host_release(),
        source: "the running kernel".into(),
        ..Default::default()
    }
}

/// `--coverage` needs a kernel built here, booted by our QEMU: refused before anything runs
/// (a matrix or validate asks it of every kernel before the first starts).
pub fn refuse_coverage(req: &Request) -> Result<()> {
    if !req.coverage {
        return Ok(());
    }
    let given = match &req.kernel {
        KernelChoice::Build(_) => None,
        KernelChoice::Host => Some("host".to_string()),
        KernelChoice::Debian(series) => Some(format!("debian:{series}")),
        KernelChoice::Path(p) => Some(p.display().to_string()),
        KernelChoice::Fetched(k) => Some(k.release.clone()),
    };
    if let Some(given) = given {
        return Err(Error::CoverageNeedsSource { given });
    }
    if req.backend == Backend::Vng {
        return Err(Error::vng(
            "--coverage collects counters in our own QEMU set-up: leave out --backend vng",
        ));
    }
    Ok(())
}

/// The whole default catalog, unsharded: what a base tree's coverage must be made of.
fn whole_catalog(req: &Request) -> bool {
    req.cases.is_empty() && req.shard.is_none() && req.validate.is_none()
}

/// `--case reaches-patch`: the names of the cases that reach the series, said on stderr.
fn reaching(build: &crate::kernel::CoverageBuild) -> Result<Vec<String>> {
    let pick = coverage::reach::pick(build)?;
    eprintln!("reaches-patch: {}", pick.why);
    Ok(match pick.cases.is_empty() {
        // No case reaches it: a boot that runs none says so, rather than every case.
        true => vec![proto::catalog::NONE.to_string()],
        false => pick.cases.into_iter().collect(),
    })
}

/// The plan of a backend that runs every case in one go (host or vng: never a coverage
/// run, which `refuse_coverage` keeps to our QEMU).
fn one_boot(identity: Identity, mode: Mode, req: &Request, cases: &[&CaseInfo]) -> Plan {
    Plan {
        identity,
        mode,
        validate: req.validate.clone(),
        boots: vec![PlannedBoot {
            dir: ".".into(),
            cases: names(cases),
        }],
        order: Vec::new(),
        coverage: None,
        whole_catalog: whole_catalog(req),
    }
}

/// The initramfs (agent, modules, ext4 image, the server under test's spec), the
/// accelerator and the VM's options.
#[allow(clippy::too_many_arguments)]
fn prepare_qemu(
    req: &Request,
    kernel: &Kernel,
    agent: &Path,
    ext4: &Path,
    catalog: &[CaseInfo],
    cases: &[&CaseInfo],
    artifacts: &Path,
    t: &mut Timings,
) -> Result<(PathBuf, VmOptions)> {
    let started = Instant::now();
    let image = artifacts.join("initramfs.cpio");
    let mods = match &kernel.modules {
        Some(dir) => modules::select(dir, &modules::wanted())?,
        None => Vec::new(),
    };
    // The server under test runs from the host's root, shared into the guest.
    let guest_spec = match &req.validate {
        Some(spec) => {
            let (server, args) =
                crate::boot::virtiofsd::guest_command(Path::new(&spec.server), &spec.args)?;
            let passthrough_off_args = match &spec.passthrough_off_args {
                Some(off) => {
                    Some(crate::boot::virtiofsd::guest_command(Path::new(&spec.server), off)?.1)
                }
                None => None,
            };
            // The witness is loaded from the share too.
            let witness = spec
                .witness
                .as_ref()
                .map(|w| format!("{}{w}", proto::layout::HOST_ROOT));
            // The library's suite runs in a chroot of the shared root, at its own paths.
            let suite = spec.suite.clone().map(|s| proto::validate::LibrarySuite {
                chroot: Some(proto::layout::HOST_ROOT.into()),
                ..s
            });
            let guest = proto::validate::Spec {
                server,
                args,
                passthrough_off_args,
                witness,
                suite,
                ..spec.clone()
            };
            let text = serde_json::to_string_pretty(&guest).expect("specs serialise");
            std::fs::write(artifacts.join("validate.json"), &text)
                .map_err(|e| Error::io("artifacts", e))?;
            Some(text.into_bytes())
        }
        None => None,
    };
    initramfs::build(agent, &mods, ext4, guest_spec.as_deref(), &image)?;
    t.initramfs_build = started.elapsed();
    t.initramfs_bytes = std::fs::metadata(&image).map(|m| m.len()).unwrap_or(0);

    let started = Instant::now();
    let accel = match req.accel {
        Some(a) => a,
        None => choose_accel(kernel, &image, req.machine, catalog, artifacts),
    };
    t.accel_probe = started.elapsed();

    let mut opts = VmOptions::new(accel);
    opts.machine = req.machine;
    opts.append = req.append.clone();
    opts.stop_at = req.stop_at.clone();
    if kernel.coverage.is_some() {
        opts.append
            .push(format!("{}=1", proto::layout::COVERAGE_PARAM));
    }
    if let Some(b) = req.boot_timeout {
        opts.boot_timeout = b;
    }
    if let Some(n) = req.cpus {
        opts.cpus = n;
    }
    if req.validate.is_some() {
        opts.share = Some((crate::boot::virtiofsd::ensure(&cache::dir())?, "/".into()));
    } else if cases.iter().any(|c| c.uses_host_share) {
        // A catalog case on the share: without virtiofsd it skips, the run goes on.
        match crate::boot::virtiofsd::ensure(&cache::dir()) {
            Ok(bin) => opts.share = Some((bin, "/".into())),
            Err(e) => eprintln!("no virtio-fs share for this run ({e}): its cases skip"),
        }
    }
    Ok((image, opts))
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
    let none = BootCases::listed(Vec::new());
    let works = vm::boot(
        kernel,
        image,
        &none,
        catalog,
        &opts,
        &probe_dir,
        &mut |_| {},
    )
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

#[cfg(test)]
mod tests {
    use super::*;

    fn case(name: &str, kills_kernel: bool) -> CaseInfo {
        CaseInfo {
            name: name.into(),
            rule: String::new(),
            verdict_rule: String::new(),
            timeout_secs: 10,
            kills_kernel,
            external_server: false,
            uses_host_share: false,
            slow: false,
        }
    }

    fn shape(groups: &[(BootCases, String)]) -> Vec<(String, Vec<String>)> {
        groups
            .iter()
            .map(|(g, dir)| {
                (
                    dir.clone(),
                    g.cases.iter().map(|c| c.name.clone()).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn cases_are_dealt_round_robin_over_the_jobs() {
        let all: Vec<CaseInfo> = ["a", "b", "c", "d", "e"].map(|n| case(n, false)).to_vec();
        let cases: Vec<&CaseInfo> = all.iter().collect();
        assert_eq!(
            shape(&boots(&cases, None, false, 2)),
            [
                (
                    "boot-1".to_string(),
                    vec!["a".to_string(), "c".into(), "e".into()]
                ),
                ("boot-2".to_string(), vec!["b".to_string(), "d".into()]),
            ]
        );
        assert_eq!(shape(&boots(&cases, None, false, 1))[0].0, ".");
        assert_eq!(
            shape(&boots(&cases[..1], None, false, 4)),
            [(".".to_string(), vec!["a".to_string()])]
        );
        assert_eq!(boots(&cases, None, true, 2).len(), 5);
        // A CI shard first, then the boots: shard 1 of 2 is a, c, e.
        assert_eq!(
            shape(&boots(&cases, Some(Deal { index: 1, count: 2 }), false, 2)),
            [
                ("boot-1".to_string(), vec!["a".to_string(), "e".into()]),
                ("boot-2".to_string(), vec!["c".to_string()]),
            ]
        );
    }

    #[test]
    fn a_case_that_can_take_the_kernel_down_keeps_one_boot() {
        let all = [case("a", false), case("down", true), case("c", false)];
        let cases: Vec<&CaseInfo> = all.iter().collect();
        assert_eq!(
            shape(&boots(&cases, None, false, 2)),
            [(
                ".".to_string(),
                vec!["a".to_string(), "down".into(), "c".into()]
            )]
        );
    }
}
