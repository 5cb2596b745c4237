//! Runs cases one by one, each in a child process of its own, and streams the events.
//!
//! The child re-executes this binary as `fpt-agent case NAME`, takes a private mount
//! namespace and a fresh tmpfs, and prints one result. A case that hangs or kills its process
//! takes nothing else down with it.

use proto::observation as key;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rustix::mount::{MountFlags, MountPropagationFlags};

use proto::layout::{CASE_END_MARKER, CASE_START_MARKER};
use proto::{CaseResult, Event, Verdict};

use crate::case::{self, Case};
use crate::cases;

/// Whether each case's start and end are written to the kernel log: in the VM, so the
/// console says which case each kernel report belongs to; never on the host's own log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Markers {
    KernelLog,
    None,
}

/// Run `cases` in order, writing a Start and a Result event for each, then Done.
pub fn run_all(
    cases: &[&'static Case],
    out: &mut dyn Write,
    markers: Markers,
) -> std::io::Result<()> {
    // A server under test that did not start once will not start for the next case either:
    // its cases are then reported at once instead of each waiting for a mount. One that
    // crashed is not trusted with the next case: those are not reached.
    let mut no_server: Option<&str> = None;
    let mut crashed: Option<&str> = None;
    for case in cases {
        mark(markers, CASE_START_MARKER, case.name);
        emit(
            out,
            &Event::Start {
                case: case.name.to_string(),
            },
        )?;
        let result = match (no_server, crashed) {
            (Some(first), _) if case.external_server => CaseResult::new(
                case.name,
                Verdict::Skip,
                format!("not run: the server under test did not start in {first}"),
            ),
            (_, Some(first)) if case.external_server => CaseResult::new(
                case.name,
                Verdict::NotReached,
                format!("not reached: the server under test crashed in {first}"),
            ),
            _ => run_isolated(case),
        };
        if result.observations.contains_key(key::SERVER_DID_NOT_START) {
            no_server.get_or_insert(case.name);
        }
        if result.observations.contains_key(key::SERVER_CRASHED) {
            crashed.get_or_insert(case.name);
        }
        mark(markers, CASE_END_MARKER, case.name);
        emit(out, &Event::Result(result))?;
    }
    emit(out, &Event::Done)
}

/// One line in the kernel log, at notice level so the console shows it.
fn mark(markers: Markers, marker: &str, case: &str) {
    if markers == Markers::KernelLog {
        let _ = std::fs::write("/dev/kmsg", format!("<5>{marker}{case}\n"));
    }
}

pub fn emit(out: &mut dyn Write, event: &Event) -> std::io::Result<()> {
    out.write_all(event.to_line().as_bytes())?;
    out.flush()
}

fn run_isolated(case: &Case) -> CaseResult {
    let start = Instant::now();
    let crash = |reason: String| CaseResult {
        duration_ms: start.elapsed().as_millis() as u64,
        ..CaseResult::new(case.name, Verdict::Crash, reason)
    };
    let exe = std::env::current_exe().unwrap_or_else(|_| "/proc/self/exe".into());
    let mut child = match Command::new(exe)
        .args(["case", case.name])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => return crash(format!("could not start the case process: {e}")),
    };
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());

    let deadline = start + case.timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(2)),
            _ => break None,
        }
    };
    let Some(status) = status else {
        // Where it waits, before the kill changes it.
        let stacks = kernel_stacks(child.id());
        let _ = child.kill();
        // A task stuck in the kernel (D state) does not die on SIGKILL: do not wait for it.
        let gone = (0..100).any(|_| {
            std::thread::sleep(Duration::from_millis(10));
            matches!(child.try_wait(), Ok(Some(_)))
        });
        let stuck = if gone {
            String::new()
        } else {
            // The kernel's own account of every blocked task goes to the console too.
            let _ = std::fs::write("/proc/sysrq-trigger", "w");
            "; the process did not die (stuck in the kernel)".to_string()
        };
        return crash(format!(
            "timed out after {} s{stuck}; its threads then:\n{stacks}",
            case.timeout.as_secs()
        ));
    };
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    // Whatever the case said on stderr belongs on the console for whoever reads it.
    let _ = std::io::stderr().write_all(&stderr);
    let text = String::from_utf8_lossy(&stdout);
    match text.lines().last().map(serde_json::from_str::<CaseResult>) {
        Some(Ok(result)) if status.success() => result,
        _ => {
            let tail = String::from_utf8_lossy(&stderr);
            let tail: Vec<&str> = tail.lines().rev().take(5).collect::<Vec<_>>();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            crash(format!(
                "case process ended without a result ({status}): {}",
                tail.join(" | ")
            ))
        }
    }
}

fn drain(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_end(&mut buf);
        }
        buf
    })
}

/// The child side: isolate, run the case, print its result, exit without waiting for the
/// case's server threads.
pub fn case_main(name: &str) -> ! {
    let Some(case) = cases::find(name) else {
        eprintln!("fpt-agent: unknown case {name}");
        std::process::exit(2);
    };
    if let Err(e) = sandbox() {
        eprintln!("fpt-agent: cannot isolate case {name}: {e}");
        std::process::exit(3);
    }
    let result = case::run_case(case, Path::new(WORK));
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "{}",
        serde_json::to_string(&result).expect("results serialise")
    );
    let _ = out.flush();
    std::process::exit(0)
}

const WORK: &str = "/tmp/fpt";

/// A private mount namespace with a tmpfs of its own: mounts made by the case vanish with it.
fn sandbox() -> std::io::Result<()> {
    // SAFETY: NEWNS only touches this process's mount namespace; no fd table is unshared.
    unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNS)? };
    rustix::mount::mount_change(
        "/",
        MountPropagationFlags::PRIVATE | MountPropagationFlags::REC,
    )?;
    std::fs::create_dir_all(WORK)?;
    rustix::mount::mount("fpt-work", WORK, "tmpfs", MountFlags::empty(), None)?;
    Ok(())
}

/// State and kernel stack of every thread of `pid` and of its child processes (a case may
/// fork a server), from /proc: what a timed-out case was waiting for.
fn kernel_stacks(pid: u32) -> String {
    let mut out = String::new();
    let mut pids = vec![pid.to_string()];
    let children = std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok());
    pids.extend(children.flat_map(|c| c.split_whitespace().map(String::from).collect::<Vec<_>>()));
    for p in pids {
        for task in std::fs::read_dir(format!("/proc/{p}/task"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let read = |f: &str| std::fs::read_to_string(task.path().join(f)).unwrap_or_default();
            let stat = read("stat");
            // The state is the first field after the parenthesised comm.
            let state = stat.rsplit_once(") ").map_or("?", |(_, rest)| &rest[..1]);
            out.push_str(&format!(
                "{}/{} {} state {state}\n",
                p,
                task.file_name().to_string_lossy(),
                read("comm").trim()
            ));
            for frame in read("stack").lines() {
                out.push_str(&format!("    {frame}\n"));
            }
        }
    }
    out
}
