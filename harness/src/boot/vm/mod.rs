//! One boot of the test VM, in three parts:
//!
//! - `streams`: the process side. QEMU, and two threads that turn its console and the
//!   result port into one channel of messages, each line saved as it comes (`console.log`,
//!   `events.jsonl`);
//! - `supervisor`: the decisions. A pure state machine over those messages and the time:
//!   wait, dump tasks, stop;
//! - `boot` (here): the loop that feeds one to the other and carries out the actions, then
//!   hands the whole record (a [`RunLog`]) to `results::assemble`, the post-processing.

mod streams;
pub mod supervisor;

use std::path::Path;
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use proto::{CaseInfo, Event};

use crate::boot::agent::BootCases;
use crate::boot::qemu::{self, Accel, Machine, VmConfig};
use crate::error::{Error, Result};
use crate::kernel::Kernel;
use crate::results::assemble::RunLog;
use crate::results::ending::How;
use streams::Msg;
use supervisor::{Action, Input, Limits, Supervisor};

/// How to boot: what `run` decides for every boot of a run.
#[derive(Debug, Clone)]
pub struct VmOptions {
    /// The accelerator.
    pub accel: Accel,
    /// The machine type.
    pub machine: Machine,
    /// From QEMU start to the agent's hello.
    pub boot_timeout: Duration,
    /// Added to each case's own timeout before the harness gives up on the guest.
    pub slack: Duration,
    /// Extra kernel command line words.
    pub append: Vec<String>,
    /// Guest memory.
    pub memory_mib: u32,
    /// Guest vCPUs.
    pub cpus: u32,
    /// Share a host directory into the guest at /host, read-only: (virtiofsd binary, dir).
    pub share: Option<(std::path::PathBuf, std::path::PathBuf)>,
    /// End every boot of the run at the first result that settles it.
    pub stop_at: Option<StopAt>,
}

/// A run that ends, in every boot, at its first result `settles` says settles it: `mutate`
/// needs one case that kills a mutant, not the rest of them. The boots of one run share it.
#[derive(Clone)]
pub struct StopAt {
    settles: std::sync::Arc<dyn Fn(&proto::CaseResult) -> bool + Send + Sync>,
    hit: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl StopAt {
    /// Stop at the first result for which `settles` is true.
    pub fn new(settles: impl Fn(&proto::CaseResult) -> bool + Send + Sync + 'static) -> Self {
        StopAt {
            settles: std::sync::Arc::new(settles),
            hit: Default::default(),
        }
    }

    /// Look at one event of a boot.
    fn take(&self, event: &Event) {
        if let Event::Result(r) = event {
            if (self.settles)(r) {
                self.hit.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        }
    }

    /// Whether any boot of the run has seen a result that settles it.
    fn hit(&self) -> bool {
        self.hit.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl std::fmt::Debug for StopAt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StopAt").field("hit", &self.hit).finish()
    }
}

impl VmOptions {
    /// The defaults (60 s boot timeout, 1 vCPU) with `accel`.
    pub fn new(accel: Accel) -> Self {
        VmOptions {
            accel,
            machine: Machine::Microvm,
            boot_timeout: Duration::from_secs(60),
            // The guest enforces each case's timeout itself; this only covers its report's
            // way out. Kept short: a hang is reported within its timeout plus 15 s, dump
            // included.
            slack: Duration::from_secs(8),
            append: Vec::new(),
            memory_mib: 1024,
            // One vCPU: under multi-threaded TCG, the kernel's boot-time code patching
            // (int3-based text_poke) raced the other vCPU and oopsed in about one boot in
            // sixty here. Cases run one at a time anyway; their threads still interleave.
            cpus: 1,
            share: None,
            stop_at: None,
        }
    }
}

/// What one boot gave: everything it saw, and how long it took.
#[derive(Debug)]
pub struct Boot {
    /// Everything the boot saved: events, console, how it ended.
    pub log: RunLog,
    /// QEMU start to the first result.
    pub first_result_after: Option<Duration>,
    /// QEMU start to exit.
    pub wall: Duration,
}

/// Boot `kernel` with `initramfs` and run `cases` (`catalog` is every case, for the
/// command line's `all`); console and events land in `artifacts` as they come. `on_event`
/// sees each event as it arrives (progress output). Errors are for a guest that never got to
/// run the agent; anything after that is in the log.
pub fn boot(
    kernel: &Kernel,
    initramfs: &Path,
    cases: &BootCases,
    catalog: &[CaseInfo],
    opts: &VmOptions,
    artifacts: &Path,
    on_event: &mut dyn FnMut(&Event),
) -> Result<Boot> {
    let start = Instant::now();
    let sock_dir = tempfile::Builder::new()
        .prefix("fpt-")
        .tempdir()
        .map_err(|e| Error::io("temp dir", e))?;
    let cmdline = cmdline(cases, catalog, opts);
    // x86's COMMAND_LINE_SIZE: a longer line is cut or, under microvm, hangs the boot.
    if cmdline.len() >= 2048 {
        return Err(Error::qemu(format!(
            "the kernel command line is {} bytes, and x86 takes 2047: shorten --append",
            cmdline.len()
        )));
    }
    let config = VmConfig {
        accel: opts.accel,
        machine: opts.machine,
        bzimage: kernel.bzimage.clone(),
        initramfs: initramfs.into(),
        cmdline,
        result_socket: sock_dir.path().join("results.sock"),
        monitor_socket: sock_dir.path().join("monitor.sock"),
        memory_mib: opts.memory_mib,
        cpus: opts.cpus,
        acpi: kernel.has_acpi(),
        share: opts
            .share
            .as_ref()
            .map(|_| sock_dir.path().join("virtiofs.sock")),
    };
    // Started before QEMU, which connects to its socket; ended after it (dropped last).
    let _virtiofsd = match (&opts.share, &config.share) {
        (Some((binary, dir)), Some(socket)) => Some(crate::boot::virtiofsd::Virtiofsd::start(
            binary,
            dir,
            socket,
            &artifacts.join("virtiofsd.log"),
        )?),
        _ => None,
    };
    std::fs::write(
        artifacts.join("qemu-command.txt"),
        shell_line(&config.args()),
    )
    .map_err(|e| Error::io("artifacts", e))?;
    let mut guest = streams::Guest::start(&config, artifacts)?;

    let plan: Vec<(String, Duration)> = cases
        .cases
        .iter()
        .map(|c| (c.name.clone(), c.timeout()))
        .collect();
    // The deadlines run from QEMU's start.
    let mut supervisor = Supervisor::new(
        &plan,
        Limits::new(opts.boot_timeout, opts.slack),
        Instant::now(),
    );
    let mut log = RunLog::default();
    let mut first_result_after = None;
    let mut dump_from = None;
    let mut take = |msg: Msg, log: &mut RunLog| -> Input {
        match msg {
            Msg::Console(line) => {
                log.console.push(line);
                Input::Console
            }
            Msg::Event(e) => {
                if matches!(e, Event::Result(_)) {
                    first_result_after.get_or_insert(start.elapsed());
                }
                if let Some(stop) = &opts.stop_at {
                    stop.take(&e);
                }
                on_event(&e);
                log.events.push(e.clone());
                Input::Event(Box::new(e))
            }
            // Kept in events.jsonl as it came; nothing to decide on.
            Msg::Garbled => Input::Tick,
        }
    };
    let mut input = Input::Tick;
    let mut ending = loop {
        let now = Instant::now();
        match supervisor.step(input, now) {
            Action::Wait { until } => {
                if let Some(sig) = crate::env::interrupt::requested() {
                    input = Input::Interrupt(sig);
                    continue;
                }
                if opts.stop_at.as_ref().is_some_and(StopAt::hit) {
                    input = Input::Stop;
                    continue;
                }
                // Wake at least every 100 ms to notice an interrupt.
                let wait = until
                    .saturating_duration_since(now)
                    .min(Duration::from_millis(100));
                input = match guest.messages.recv_timeout(wait) {
                    Ok(msg) => take(msg, &mut log),
                    // Both readers hit end of file: QEMU has gone.
                    Err(RecvTimeoutError::Disconnected) => Input::Closed,
                    Err(RecvTimeoutError::Timeout) => Input::Tick,
                };
            }
            Action::Sysrq(key) => {
                dump_from.get_or_insert(log.console.len());
                input = match guest.sysrq(&config.monitor_socket, key) {
                    Ok(()) => Input::Tick,
                    Err(_) => Input::SysrqFailed,
                };
            }
            Action::Stop(ending) => break ending,
        }
    };
    guest.kill();
    // Keep whatever was still in flight when QEMU went.
    while let Ok(msg) = guest.messages.recv_timeout(Duration::from_millis(200)) {
        take(msg, &mut log);
    }
    let qemu_err = guest.stderr();
    if let How::WentAway { detail } = &mut ending.how {
        *detail = first_line(&qemu_err);
    }
    if let Some(from) = dump_from {
        let dump = log.console[from..].to_vec();
        let path = artifacts.join("task-dump.txt");
        std::fs::write(&path, dump.join("\n")).map_err(|e| Error::io(path.display(), e))?;
        log.task_dump = Some(dump);
    }
    ending.save(artifacts)?;
    log.ending = Some(ending);

    let hello = log.events.iter().any(|e| matches!(e, Event::Hello { .. }));
    // A boot told to stop (another boot of the run settled it) before its agent started
    // ran none of its cases: that is no failure to boot.
    let stopped = matches!(
        log.ending.as_ref().map(|e| &e.how),
        Some(crate::results::ending::How::Stopped)
    );
    if !hello && !stopped {
        let console = artifacts.join("console.log");
        let ending = log.ending.as_ref().expect("set above");
        let panic = crate::results::assemble::fatal_headline(&log.console);
        return Err(match panic {
            Some(headline) => Error::BootPanic {
                headline,
                console,
                tail: crate::results::console::last(&log.console, 15),
            },
            None if !qemu_err.trim().is_empty() && log.console.is_empty() => {
                Error::qemu(first_line(&qemu_err).unwrap_or_default())
            }
            // The agent started but the port its results go through never appeared: the
            // kernel has no virtio-console driver (a module we were not given).
            None if log
                .console
                .iter()
                .any(|l| l.contains("no virtio-console port named")) =>
            {
                Error::NoResultPort {
                    release: kernel.release.clone(),
                    console,
                }
            }
            None => Error::BootTimeout {
                secs: opts.boot_timeout.as_secs(),
                why: ending.how.describe(),
                console,
            },
        });
    }
    Ok(Boot {
        log,
        first_result_after,
        wall: start.elapsed(),
    })
}

fn cmdline(cases: &BootCases, catalog: &[CaseInfo], opts: &VmOptions) -> String {
    let mut words = vec![
        "console=ttyS0".to_string(),
        "rdinit=/init".into(),
        // Reboot at once on panic; with -no-reboot that ends QEMU.
        "panic=-1".into(),
        "reboot=t".into(),
        "random.trust_cpu=on".into(),
        // Task dumps on a hang come through serial sysrq.
        "sysrq_always_enabled".into(),
    ];
    words.extend(cases.params(catalog));
    if opts.share.is_some() {
        words.push(format!(
            "{}={}",
            proto::layout::SHARE_PARAM,
            crate::boot::virtiofsd::TAG
        ));
    }
    if opts.accel == Accel::Tcg {
        if let Some(khz) = qemu::host_tsc_khz() {
            words.push(format!("tsc_early_khz={khz}"));
        }
    }
    words.extend(opts.append.iter().cloned());
    words.join(" ")
}

fn first_line(text: &str) -> Option<String> {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(String::from)
}

/// The command, quoted enough to paste into a shell.
fn shell_line(args: &[String]) -> String {
    let mut line = qemu::binary();
    for a in args {
        line.push(' ');
        if a.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_=,./:".contains(c))
        {
            line.push_str(a);
        } else {
            line.push_str(&format!("'{}'", a.replace('\'', r"'\''")));
        }
    }
    line.push('\n');
    line
}
