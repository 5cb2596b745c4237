//! Runs cases one by one, each in a child process of its own, and streams the events.
//!
//! The child is a fork of the runner (no exec), takes a private mount namespace and a fresh
//! tmpfs, and prints one result (`fpt-agent case NAME` does the same from a shell). A case that hangs or kills its process
//! takes nothing else down with it.

use proto::observation as key;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use rustix::mount::{MountFlags, MountPropagationFlags};

use proto::layout::{CASE_END_MARKER, CASE_START_MARKER};
use proto::{CaseResult, Event, Verdict};

use crate::cases;
use crate::framework::{self, Case};

/// Whether each case's start and end are written to the kernel log: in the VM, so the
/// console says which case each kernel report belongs to; never on the host's own log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Markers {
    KernelLog,
    None,
}

/// Run `cases` in order, writing a Start and a Result event for each (and with `gcov`, a
/// Coverage event of what the case executed), then Done.
pub fn run_all(
    cases: &[&'static Case],
    out: &mut dyn Write,
    markers: Markers,
    gcov: Option<&crate::coverage::Gcov>,
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
        if let Some(gcov) = gcov {
            if let Err(e) = gcov.reset() {
                eprintln!("fpt-agent: resetting gcov counters: {e}");
            }
        }
        let result = match (no_server, crashed) {
            (Some(first), _) if case.external_server => CaseResult::new(
                case.name,
                Verdict::Skip,
                format!("not run: the server under test did not start in {first}"),
            ),
            (_, Some(first)) if case.external_server => CaseResult::new(
                case.name,
                Verdict::NotReached,
                format!("not reached: the server under test crashed or hung in {first}"),
            ),
            _ => run_isolated(case),
        };
        if result.observations.contains_key(key::SERVER_DID_NOT_START) {
            no_server.get_or_insert(case.name);
        }
        if result.observations.contains_key(key::SERVER_CRASHED)
            || result.observations.contains_key(key::SERVER_HUNG)
        {
            crashed.get_or_insert(case.name);
        }
        mark(markers, CASE_END_MARKER, case.name);
        if let Some(gcov) = gcov {
            let files = gcov.read();
            emit(
                out,
                &Event::Coverage {
                    case: case.name.to_string(),
                    files,
                },
            )?;
        }
        emit(out, &Event::Result(result))?;
    }
    crate::framework::subject::remove_probes();
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
    let connections_before = fuse_connections();
    let child = match Child::fork(case) {
        Ok(c) => c,
        Err(e) => return crash(format!("could not start the case process: {e}")),
    };
    let deadline = start + case.timeout;
    let (status, stdout, stderr) = match child.wait_until(deadline) {
        Ok(done) => done,
        Err(child) => {
            // Where it waits, before the kill changes it.
            let stacks = kernel_stacks(child.pid.as_raw_nonzero().get() as u32);
            let gone = child.kill();
            let stuck = if gone {
                String::new()
            } else {
                // The kernel's own account of every blocked task goes to the console too.
                let _ = std::fs::write("/proc/sysrq-trigger", "w");
                // A case is client and server at once: a thread waiting on a request its
                // own server (dead with it) never answers keeps the process, and so the
                // connection, alive for ever. Aborting the connections the case made ends
                // those requests (in host mode the process would outlive the agent).
                let freed = abort_connections_since(&connections_before) && child.reaped();
                let how = if freed {
                    "; it ended once its FUSE connections were aborted"
                } else {
                    ""
                };
                format!("; {}{how}", proto::wire::STUCK_IN_KERNEL)
            };
            return crash(format!(
                "timed out after {} s{stuck}; its threads then:\n{stacks}",
                case.timeout.as_secs()
            ));
        }
    };
    // Whatever the case said on stderr belongs on the console for whoever reads it.
    let _ = std::io::stderr().write_all(&stderr);
    let text = String::from_utf8_lossy(&stdout);
    match text.lines().last().map(serde_json::from_str::<CaseResult>) {
        Some(Ok(result)) if status == Some(0) => result,
        _ => {
            let tail = String::from_utf8_lossy(&stderr);
            let tail: Vec<&str> = tail.lines().rev().take(5).collect::<Vec<_>>();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            let status = match status {
                Some(code) => format!("exit status: {code}"),
                None => "killed by a signal".to_string(),
            };
            crash(format!(
                "case process ended without a result ({status}): {}",
                tail.join(" | ")
            ))
        }
    }
}

/// A case's process: this one forked (no exec: the binary is already loaded and the catalog
/// built), its stdout and stderr on pipes read by one poll loop with its exit (a pidfd), so
/// that nothing between the case's markers is the runner's own waiting.
struct Child {
    pid: rustix::process::Pid,
    pidfd: std::os::fd::OwnedFd,
    stdout: std::os::fd::OwnedFd,
    stderr: std::os::fd::OwnedFd,
}

impl Child {
    /// Fork, and in the child run the case (`case_main`, which never returns). The runner
    /// is single-threaded, which is what makes a fork without exec sound.
    fn fork(case: &Case) -> std::io::Result<Child> {
        use rustix::pipe::{pipe_with, PipeFlags};
        let (out_r, out_w) = pipe_with(PipeFlags::CLOEXEC)?;
        let (err_r, err_w) = pipe_with(PipeFlags::CLOEXEC)?;
        let _ = std::io::stdout().flush();
        let _ = std::io::stderr().flush();
        // SAFETY: the runner has no other thread, so the child is a whole copy of it; the
        // child only rearranges its fds and then runs the case to its exit.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(std::io::Error::last_os_error());
        }
        if pid == 0 {
            let devnull = std::fs::File::open("/dev/null");
            let moved = (|| -> rustix::io::Result<()> {
                if let Ok(null) = &devnull {
                    rustix::stdio::dup2_stdin(null)?;
                }
                rustix::stdio::dup2_stdout(&out_w)?;
                rustix::stdio::dup2_stderr(&err_w)?;
                Ok(())
            })();
            drop((out_r, err_r, out_w, err_w));
            if moved.is_err() {
                // SAFETY: leaving the forked child without running the parent's exit code.
                unsafe { libc::_exit(3) };
            }
            case_main(case.name);
        }
        drop((out_w, err_w));
        let pid = rustix::process::Pid::from_raw(pid).expect("a child's pid is positive");
        let pidfd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty())?;
        Ok(Child {
            pid,
            pidfd,
            stdout: out_r,
            stderr: err_r,
        })
    }

    /// Read both pipes until the process has exited and they are closed: its exit code
    /// (None for a signal), stdout and stderr; or, past `deadline`, the child back.
    #[allow(clippy::type_complexity)]
    fn wait_until(self, deadline: Instant) -> Result<(Option<i32>, Vec<u8>, Vec<u8>), Child> {
        use rustix::event::{poll, PollFd, PollFlags};
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let (mut out_open, mut err_open, mut exited) = (true, true, None);
        // After the exit, a server process the case left may hold the pipes a moment.
        let mut drain_until: Option<Instant> = None;
        loop {
            let now = Instant::now();
            let until = drain_until.unwrap_or(deadline);
            if (exited.is_some() && !out_open && !err_open) || (exited.is_some() && now >= until) {
                return Ok((exited.flatten(), out, err));
            }
            if now >= deadline && exited.is_none() {
                return Err(self);
            }
            let left = until.saturating_duration_since(now);
            let timeout = rustix::event::Timespec {
                tv_sec: left.as_secs() as i64,
                tv_nsec: left.subsec_nanos() as i64,
            };
            let mut fds = vec![PollFd::new(&self.pidfd, PollFlags::IN)];
            if out_open {
                fds.push(PollFd::new(&self.stdout, PollFlags::IN));
            }
            if err_open {
                fds.push(PollFd::new(&self.stderr, PollFlags::IN));
            }
            match poll(&mut fds, Some(&timeout)) {
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(_) => std::thread::sleep(Duration::from_millis(1)),
            }
            let ready: Vec<bool> = fds.iter().map(|f| !f.revents().is_empty()).collect();
            drop(fds);
            let mut next = 1;
            for (open, buf, fd) in [
                (&mut out_open, &mut out, &self.stdout),
                (&mut err_open, &mut err, &self.stderr),
            ] {
                if !*open {
                    continue;
                }
                if ready[next] {
                    let mut chunk = [0u8; 8192];
                    match rustix::io::read(fd, &mut chunk) {
                        Ok(0) => *open = false,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        Err(rustix::io::Errno::INTR | rustix::io::Errno::AGAIN) => {}
                        Err(_) => *open = false,
                    }
                }
                next += 1;
            }
            if ready[0] && exited.is_none() {
                let status =
                    rustix::process::waitpid(Some(self.pid), rustix::process::WaitOptions::empty());
                exited = Some(match status {
                    Ok(Some((_, st))) => st.exit_status(),
                    _ => None,
                });
                drain_until = Some(Instant::now() + Duration::from_millis(500));
            }
        }
    }

    /// SIGKILL it and wait up to a second; whether it is gone (a task stuck in the kernel
    /// does not die).
    fn kill(&self) -> bool {
        let _ = rustix::process::kill_process(self.pid, rustix::process::Signal::KILL);
        self.reaped()
    }

    /// Whether it has ended (and is reaped) within a second.
    fn reaped(&self) -> bool {
        (0..100).any(|_| {
            std::thread::sleep(Duration::from_millis(10));
            matches!(
                rustix::process::waitpid(Some(self.pid), rustix::process::WaitOptions::NOHANG),
                Ok(Some(_))
            )
        })
    }
}

/// The FUSE connections that exist now (fusectl's directory names).
fn fuse_connections() -> Vec<String> {
    let Ok(ctl) = crate::fuse::fusectl() else {
        return Vec::new();
    };
    std::fs::read_dir(ctl)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Abort every FUSE connection made since `before`: whether there was one.
fn abort_connections_since(before: &[String]) -> bool {
    let Ok(ctl) = crate::fuse::fusectl() else {
        return false;
    };
    let made: Vec<String> = fuse_connections()
        .into_iter()
        .filter(|c| !before.contains(c))
        .collect();
    for c in &made {
        let _ = std::fs::write(ctl.join(c).join("abort"), "1");
    }
    !made.is_empty()
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
    let result = framework::run_case(case, Path::new(WORK));
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
