//! One boot of the test VM: start QEMU, stream the console and the result port as they come,
//! enforce the timeouts, and end QEMU whatever happens.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use guest::cases::Case;
use guest::report::Event;

use crate::classify::{Classifier, Finding};
use crate::console::Tail;
use crate::error::{Error, Result};
use crate::kernel::Kernel;
use crate::qemu::{self, Accel, Machine, Qemu, VmConfig};
use crate::results::Collector;

#[derive(Debug, Clone)]
pub struct VmOptions {
    pub accel: Accel,
    pub machine: Machine,
    /// From QEMU start to the agent's hello.
    pub boot_timeout: Duration,
    /// Added to each case's own timeout before the harness gives up on the guest.
    pub slack: Duration,
    /// Extra kernel command line words.
    pub append: Vec<String>,
    pub memory_mib: u32,
    pub cpus: u32,
}

impl VmOptions {
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
        }
    }
}

/// What one boot gave.
#[derive(Debug)]
pub struct Boot {
    pub collector: Collector,
    /// The kernel's reports, each with the case that was running when it appeared.
    pub findings: Vec<(Option<String>, Finding)>,
    /// Why the agent did not finish, if it did not.
    pub died: Option<String>,
    /// The guest stopped making progress (rather than crashing): what sysrq w and t
    /// showed before it was stopped.
    pub hang_dump: Option<Vec<String>>,
    pub console_tail: Vec<String>,
    /// QEMU start to the first result.
    pub first_result_after: Option<Duration>,
    pub wall: Duration,
}

enum Msg {
    Console(String),
    Event(Event),
    Garbled(String),
}

/// Boot `kernel` with `initramfs` and run `cases`; console and events land in `artifacts`.
/// `on_event` sees each event as it arrives (progress output). Errors are for a guest that
/// never got to run the agent; anything after that is in the results.
pub fn boot(
    kernel: &Kernel,
    initramfs: &Path,
    cases: &[&'static Case],
    opts: &VmOptions,
    artifacts: &Path,
    on_event: &mut dyn FnMut(&Event),
) -> Result<Boot> {
    let start = Instant::now();
    let sock_dir = tempfile::Builder::new().prefix("fpt-").tempdir().map_err(|e| Error::io("temp dir", e))?;
    let socket = sock_dir.path().join("results.sock");
    let listener = UnixListener::bind(&socket).map_err(|e| Error::io(socket.display(), e))?;
    listener.set_nonblocking(true).map_err(|e| Error::io("result socket", e))?;

    let config = VmConfig {
        accel: opts.accel,
        machine: opts.machine,
        bzimage: kernel.bzimage.clone(),
        initramfs: initramfs.into(),
        cmdline: cmdline(cases, opts),
        result_socket: socket,
        monitor_socket: sock_dir.path().join("monitor.sock"),
        memory_mib: opts.memory_mib,
        cpus: opts.cpus,
        acpi: kernel.has_acpi(),
    };
    std::fs::write(artifacts.join("qemu-command.txt"), shell_line(&config.args()))
        .map_err(|e| Error::io("artifacts", e))?;
    // Created first: its clock (boot to first result) starts with QEMU.
    let mut collector = Collector::new(cases.iter().map(|c| c.name.to_string()).collect());
    let mut vm = Qemu::spawn(&config)?;
    let console_log = artifacts.join("console.log");

    let (tx, rx) = mpsc::channel::<Msg>();
    let stdout = vm.child.stdout.take().expect("piped");
    let mut log = File::create(&console_log).map_err(|e| Error::io(console_log.display(), e))?;
    let console_tx = tx.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).split(b'\n').map_while(|l| l.ok()) {
            let line = String::from_utf8_lossy(&line).trim_end_matches('\r').to_string();
            let _ = writeln!(log, "{line}");
            if console_tx.send(Msg::Console(line)).is_err() {
                break;
            }
        }
    });
    let mut stderr = vm.child.stderr.take().expect("piped");
    let qemu_errors = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });

    // QEMU connects to the result socket as it starts.
    let stream = loop {
        match listener.accept() {
            Ok((s, _)) => break s,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if vm.exited().is_some() || start.elapsed() > Duration::from_secs(20) {
                    vm.kill();
                    let err = qemu_errors.join().unwrap_or_default();
                    return Err(Error::Qemu(first_line_or(&err, "QEMU never connected the result port")));
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(Error::io("result socket", e)),
        }
    };
    stream.set_nonblocking(false).map_err(|e| Error::io("result socket", e))?;
    let mut events_log = File::create(artifacts.join("events.jsonl")).map_err(|e| Error::io("artifacts", e))?;
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(|l| l.ok()) {
            let _ = writeln!(events_log, "{line}");
            let msg = match serde_json::from_str::<Event>(&line) {
                Ok(e) => Msg::Event(e),
                Err(_) => Msg::Garbled(line),
            };
            if tx.send(msg).is_err() {
                break;
            }
        }
    });

    let mut tail = Tail::default();
    let mut classifier = Classifier::default();
    let mut findings: Vec<(Option<String>, Finding)> = Vec::new();
    let mut note = |line: &str, running: Option<&String>, findings: &mut Vec<(Option<String>, Finding)>| {
        findings.extend(classifier.push_in(line, running));
    };
    // The whole-run bound: however the guest misbehaves, the harness is done by then.
    let run_limit = opts.boot_timeout
        + cases.iter().map(|c| c.timeout + opts.slack).sum::<Duration>()
        + Duration::from_secs(10);
    let run_deadline = start + run_limit;
    let mut last_event = Instant::now();
    let mut done_at = None;
    let mut hung = false;
    let died: Option<String> = loop {
        let deadline = if !collector.hello_seen() {
            start + opts.boot_timeout
        } else if let Some(at) = done_at {
            at + Duration::from_secs(10)
        } else if let Some((case, since)) = &collector.running {
            let own = guest::cases::find(case).map_or(Duration::from_secs(60), |c| c.timeout);
            *since + own + opts.slack
        } else {
            last_event + opts.slack
        };
        let deadline = deadline.min(run_deadline);
        if let Some(sig) = crate::interrupt::requested() {
            break Some(format!("interrupted by signal {sig}"));
        }
        // Wake at least every 100 ms to notice an interrupt.
        let wait = deadline.saturating_duration_since(Instant::now()).min(Duration::from_millis(100));
        match rx.recv_timeout(wait) {
            Ok(Msg::Console(line)) => {
                note(&line, collector.running.as_ref().map(|(c, _)| c), &mut findings);
                tail.push(line);
            }
            Ok(Msg::Event(e)) => {
                last_event = Instant::now();
                if e == Event::Done {
                    done_at = Some(last_event);
                }
                on_event(&e);
                collector.take(e);
            }
            Ok(Msg::Garbled(line)) => tail.push(format!("[harness] garbled result line: {line}")),
            // Both readers hit end of file: QEMU has gone.
            Err(RecvTimeoutError::Disconnected) => break None,
            Err(RecvTimeoutError::Timeout) if Instant::now() < deadline => {}
            Err(RecvTimeoutError::Timeout) => {
                if done_at.is_some() {
                    // Finished but did not power off: not the cases' problem.
                    break None;
                }
                hung = collector.hello_seen();
                if Instant::now() >= run_deadline {
                    break Some(format!("the whole-run limit of {} s ran out", run_limit.as_secs()));
                }
                break Some(match &collector.running {
                    Some((case, _)) => format!("the guest stopped responding during {case}"),
                    None if !collector.hello_seen() => {
                        if tail.last(1).is_empty() { "no output from the guest".into() } else { "the agent never started".into() }
                    }
                    None => "the guest stopped responding between cases".into(),
                });
            }
        }
    };
    // A guest that stopped making progress: ask it for its blocked and then all tasks
    // before stopping it; the dump is the evidence of what it was stuck on.
    let mut hang_dump = None;
    if hung && vm.exited().is_none() {
        let mut dump = Vec::new();
        for key in [b'w', b't'] {
            if vm.sysrq(&config.monitor_socket, key).is_err() {
                break;
            }
            // Up to 3 s per dump, but done once the console has been quiet for 0.8 s: the
            // dump time counts against "reported within its timeout plus 15 s".
            let until = Instant::now() + Duration::from_secs(3);
            let mut quiet_by = until;
            while let Ok(msg) = rx.recv_timeout(quiet_by.min(until).saturating_duration_since(Instant::now())) {
                if let Msg::Console(line) = msg {
                    note(&line, collector.running.as_ref().map(|(c, _)| c), &mut findings);
                    dump.push(line.clone());
                    tail.push(line);
                    quiet_by = Instant::now() + Duration::from_millis(800);
                }
            }
        }
        let path = artifacts.join("task-dump.txt");
        std::fs::write(&path, dump.join("\n")).map_err(|e| Error::io(path.display(), e))?;
        hang_dump = Some(dump);
    }
    vm.kill();
    // Keep whatever was still in flight when QEMU went.
    while let Ok(msg) = rx.recv_timeout(Duration::from_millis(200)) {
        match msg {
            Msg::Console(line) => {
                note(&line, collector.running.as_ref().map(|(c, _)| c), &mut findings);
                tail.push(line);
            }
            Msg::Event(e) => {
                on_event(&e);
                collector.take(e);
            }
            Msg::Garbled(_) => {}
        }
    }
    drop(note);
    findings.extend(classifier.finish_in());
    let qemu_err = qemu_errors.join().unwrap_or_default();
    let died = match died {
        _ if collector.done => None,
        Some(why) => Some(tail.fatal_headline().unwrap_or(why)),
        None => Some(tail.fatal_headline().unwrap_or_else(|| {
            first_line_or(&qemu_err, "the guest powered off before the agent finished")
        })),
    };

    if !collector.hello_seen() {
        let why = died.unwrap_or_else(|| "the guest went away".into());
        let console = console_log;
        return Err(match tail.fatal_headline() {
            Some(headline) => Error::BootPanic { headline, console, tail: tail.last(15) },
            None if !qemu_err.trim().is_empty() && tail.last(1).is_empty() => Error::Qemu(first_line_or(&qemu_err, "")),
            None => Error::BootTimeout { secs: opts.boot_timeout.as_secs(), why, console },
        });
    }
    Ok(Boot {
        findings,
        hang_dump,
        first_result_after: collector.first_result_after,
        console_tail: tail.last(20),
        collector,
        died,
        wall: start.elapsed(),
    })
}

fn cmdline(cases: &[&'static Case], opts: &VmOptions) -> String {
    let names: Vec<&str> = cases.iter().map(|c| c.name).collect();
    // The whole default selection is "all": the command line holds 2048 bytes, the catalog's
    // names more.
    let all: Vec<&str> = guest::cases::catalog().iter().filter(|c| !c.kills_kernel).map(|c| c.name).collect();
    let names = if names == all { vec!["all"] } else { names };
    let mut words = vec![
        "console=ttyS0".to_string(),
        "rdinit=/init".into(),
        // Reboot at once on panic; with -no-reboot that ends QEMU.
        "panic=-1".into(),
        "reboot=t".into(),
        "random.trust_cpu=on".into(),
        // Task dumps on a hang come through serial sysrq.
        "sysrq_always_enabled".into(),
        format!("fpt.cases={}", names.join(",")),
    ];
    if opts.accel == Accel::Tcg {
        if let Some(khz) = qemu::host_tsc_khz() {
            words.push(format!("tsc_early_khz={khz}"));
        }
    }
    words.extend(opts.append.iter().cloned());
    words.join(" ")
}

fn first_line_or(text: &str, fallback: &str) -> String {
    text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or(fallback).to_string()
}

/// The command, quoted enough to paste into a shell.
fn shell_line(args: &[String]) -> String {
    let mut line = qemu::binary();
    for a in args {
        line.push(' ');
        if a.chars().all(|c| c.is_ascii_alphanumeric() || "-_=,./:".contains(c)) {
            line.push_str(a);
        } else {
            line.push_str(&format!("'{}'", a.replace('\'', r"'\''")));
        }
    }
    line.push('\n');
    line
}
