//! The file system an I/O case runs against: the agent's own server (the catalog), or the
//! server under test that `cargo xtask validate` names (a library's example, any binary).
//!
//! For a server of its own the agent counts requests itself. For one from outside the count
//! comes from the kernel, never from the server: the `fuse:fuse_request_send` tracepoint in
//! a tracing instance of the case's own, filtered on the mount's connection (every FUSE mount
//! is a connection of its own, a virtio-fs share too).

use proto::observation as key;
use std::cell::RefCell;
use std::fs::File;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use proto::validate::Spec;
use rustix::mount::UnmountFlags;

use super::{unmount_when_released, Stop};
use crate::fuse::FuseFs;

/// What `{source}` sits on, for the validate cases on stacking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    Tmpfs,
    Ext4,
    Overlay,
    /// Another FUSE passthrough mount (the agent's own server, max_stack_depth 1).
    Fuse,
}

/// What an I/O case needs of the file system under test.
pub trait Subject {
    /// A file's path through the mount.
    fn path(&self, name: &str) -> PathBuf;
    /// Requests of `opcode` the kernel has sent on this connection so far; None when that
    /// cannot be known here (no tracefs, or no fuse tracepoint in this kernel).
    fn requests(&self, opcode: u32) -> Option<u64>;
    /// SIGKILL the server process and reap it; false where the server is not a process of
    /// its own.
    fn kill_server(&mut self) -> bool {
        false
    }
    /// The server's process id, where it is a process of its own.
    fn server_pid(&self) -> Option<u32> {
        None
    }
    /// Backing ids the server holds now, by witness: ("kprobes" or "the witness in the
    /// server", ids granted, ids closed). Empty where nothing counts them.
    fn backing_ids(&self) -> Vec<(&'static str, u64, u64)> {
        Vec::new()
    }
    /// What the backing-id witness in the server saw so far; None where none is loaded.
    fn witness(&self) -> Option<Witness> {
        None
    }
}

impl Subject for FuseFs {
    fn path(&self, name: &str) -> PathBuf {
        FuseFs::path(self, name)
    }

    fn requests(&self, opcode: u32) -> Option<u64> {
        Some(self.count(opcode))
    }
}

/// What the end of an outside server's run showed, as observations for the case.
pub type Teardown = Rc<RefCell<Vec<(String, serde_json::Value)>>>;

/// A server from outside, serving `source` at `mountpoint` for one case.
pub struct External {
    child: Child,
    mountpoint: PathBuf,
    source: PathBuf,
    trace: Option<TraceInstance>,
    /// Over the ring: (ring, /dev/fuse) requests counted when the ring was first seen
    /// carrying one; None when it never was, or the run is not over the ring.
    ring_from: Option<(u64, u64)>,
    stderr: PathBuf,
    teardown: Teardown,
    /// Set once the case killed the server on purpose.
    killed: bool,
    /// Where the backing-id witness preloaded into the server writes.
    witness_log: PathBuf,
    /// Aborts the connection if the server stops answering.
    watchdog: super::watchdog::Watchdog,
}

impl External {
    /// Start the server on `source` (a file system of its own, so that its release can be
    /// checked afterwards) and wait until its mount is there.
    pub fn start(
        spec: &Spec,
        source: &Path,
        work: &Path,
        teardown: Teardown,
    ) -> Result<External, Stop> {
        Self::launch(spec, source, work, teardown, false)
    }

    /// As [`External::start`], but the way a server without CAP_SYS_ADMIN runs: the agent
    /// mounts and hands the server the /dev/fuse fd as `/dev/fd/N` (libfuse's and go-fuse's
    /// convention for a mount made by fusermount), and the server starts with CAP_SYS_ADMIN
    /// dropped from its bounding set, so that BACKING_OPEN is refused (EPERM). A server that
    /// does not take `/dev/fd/N` is a skip.
    pub fn start_unprivileged(
        spec: &Spec,
        source: &Path,
        work: &Path,
        teardown: Teardown,
    ) -> Result<External, Stop> {
        Self::launch(spec, source, work, teardown, true)
    }

    fn launch(
        spec: &Spec,
        source: &Path,
        work: &Path,
        teardown: Teardown,
        unprivileged: bool,
    ) -> Result<External, Stop> {
        let mountpoint = work.join("mnt");
        std::fs::create_dir_all(&mountpoint)?;
        let stderr = work.join("server.stderr");
        // Unprivileged: the agent mounts, as fusermount would, and keeps no copy of the fd
        // once the server has it (or the connection would outlive the server).
        let dev = if unprivileged {
            Some(mount_for(&mountpoint)?)
        } else {
            None
        };
        let target = match &dev {
            Some(fd) => format!("/dev/fd/{}", std::os::fd::AsRawFd::as_raw_fd(fd)),
            None => mountpoint.to_string_lossy().into_owned(),
        };
        let args = spec.args_for(&source.to_string_lossy(), &target);
        let mut cmd = Command::new(&spec.server);
        let witness_log = work.join("backing.log");
        if let Some(witness) = &spec.witness {
            cmd.env("LD_PRELOAD", witness)
                .env("FPT_BACKING_LOG", &witness_log);
        }
        cmd.args(&args)
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(File::create(work.join("server.stdout"))?)
            .stderr(File::create(&stderr)?);
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                if unprivileged && libc::prctl(libc::PR_CAPBSET_DROP, CAP_SYS_ADMIN, 0, 0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().map_err(|e| {
            Stop::NoServer(format!(
                "the server could not be started: {} ({e})",
                spec.server
            ))
        })?;
        if dev.is_some() {
            drop(dev);
            // The first request waits for INIT: answered, or the connection is gone with a
            // server that did not take the fd.
            if std::fs::metadata(&mountpoint).is_err() {
                let _ = rustix::mount::unmount(&mountpoint, UnmountFlags::DETACH);
                let _ = child.kill();
                let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
                return Err(Stop::Skip(format!(
                    "the server does not serve a mount handed to it as /dev/fd/N ({status}){}",
                    tail(&stderr)
                )));
            }
        }
        let deadline = Instant::now() + Duration::from_secs(spec.mount_timeout_secs);
        let connection = loop {
            if let Some(c) = fuse_connection(&mountpoint) {
                break c;
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(Stop::NoServer(format!(
                    "the server exited before mounting ({status}){}",
                    tail(&stderr)
                )));
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Stop::NoServer(format!(
                    "the server did not mount within {} s{}",
                    spec.mount_timeout_secs,
                    tail(&stderr)
                )));
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let watchdog = super::watchdog::Watchdog::start(connection, child.id());
        let over_ring = spec.transport == proto::validate::Transport::Uring;
        let trace = TraceInstance::new(connection, over_ring);
        // Over the ring: the server sets its queues up after INIT, and until they are all
        // there the kernel sends on /dev/fuse. Counted from the first request that came
        // over the ring (a STATFS, asked until one does, at most 2 s).
        let ring_from = match (&trace, over_ring) {
            (Some(t), true) => t.ring_ready(&mountpoint),
            _ => None,
        };
        Ok(External {
            watchdog,
            child,
            mountpoint,
            source: source.into(),
            trace,
            ring_from,
            stderr,
            teardown,
            killed: false,
            witness_log,
        })
    }

    /// The server died by a signal it was not sent by the case: a crash, with its last words.
    fn note_crash(&self, status: std::process::ExitStatus) {
        let stderr = tail(&self.stderr);
        self.note(key::SERVER_CRASHED, format!("{}{stderr}", died(status)));
    }

    fn note(&self, key: &str, value: impl serde::Serialize) {
        let value = serde_json::to_value(value).expect("plain data");
        self.teardown.borrow_mut().push((key.into(), value));
    }
}

impl Subject for External {
    fn path(&self, name: &str) -> PathBuf {
        self.mountpoint.join(name)
    }

    fn requests(&self, opcode: u32) -> Option<u64> {
        self.trace.as_ref().map(|t| t.count(opcode))
    }

    fn kill_server(&mut self) -> bool {
        self.killed = true;
        let _ = self.child.kill();
        self.child.wait().is_ok()
    }

    fn server_pid(&self) -> Option<u32> {
        Some(self.child.id())
    }

    fn witness(&self) -> Option<Witness> {
        Witness::read(&self.witness_log)
    }

    fn backing_ids(&self) -> Vec<(&'static str, u64, u64)> {
        let mut out = Vec::new();
        if let Some(trace) = &self.trace {
            if let (Some(opens), Some(closes)) = (
                trace.returns("backing_open"),
                trace.returns("backing_close"),
            ) {
                let ok = |rets: &[i64]| rets.iter().filter(|r| **r >= 0).count() as u64;
                out.push(("kprobes", ok(&opens), ok(&closes)));
            }
        }
        if let Some(w) = Witness::read(&self.witness_log) {
            out.push(("the witness in the server", w.opens, w.closes));
        }
        out
    }
}

/// How a server that a signal ended before its unmount ended, for the crash verdict:
/// "signal 11 (SIGSEGV)".
fn died(status: std::process::ExitStatus) -> String {
    match (status.signal(), status.code()) {
        (Some(sig), _) => {
            let name = match sig {
                libc::SIGSEGV => " (SIGSEGV)",
                libc::SIGABRT => " (SIGABRT)",
                libc::SIGBUS => " (SIGBUS)",
                libc::SIGILL => " (SIGILL)",
                libc::SIGFPE => " (SIGFPE)",
                libc::SIGKILL => " (SIGKILL)",
                libc::SIGTERM => " (SIGTERM)",
                libc::SIGTRAP => " (SIGTRAP)",
                _ => "",
            };
            format!("signal {sig}{name}")
        }
        (None, Some(code)) => format!("exit status {code}"),
        _ => status.to_string(),
    }
}

impl Drop for External {
    /// The end of the server's run, in the order a user's would go: unmount (not lazily),
    /// the server exits by itself, and then the source's own file system must be free: a
    /// backing file the server never closed keeps it busy.
    fn drop(&mut self) {
        // A server already gone (killed by the case) releases nothing more; one that died
        // by itself during the case crashed.
        // An exit of its own is no crash: the case may have unmounted under it.
        // One that stopped answering is killed: it would not exit by itself.
        if let Some(why) = self.watchdog.hung() {
            self.note(key::SERVER_HUNG, format!("{why}{}", tail(&self.stderr)));
            self.kill_server();
        }
        let mut crash_noted = false;
        let alive = match self.child.try_wait() {
            Ok(Some(status)) if !self.killed && status.signal().is_some() => {
                self.note_crash(status);
                crash_noted = true;
                false
            }
            Ok(None) => true,
            _ => false,
        };
        if let (Some(trace), true) = (&self.trace, alive) {
            trace.settle();
        }
        let unmount = unmount_when_released(&self.mountpoint);
        if unmount != "ok" {
            let _ = rustix::mount::unmount(&self.mountpoint, UnmountFlags::DETACH);
        }
        // READ and WRITE requests over the server's whole run, the dirty pages written back
        // at the unmount included (counted mid-case they would race the write-back): any
        // means the server served I/O itself.
        use crate::fuse::abi::op;
        if let Some((ring, dev)) = self.trace.as_ref().and_then(TraceInstance::transport) {
            // Over the ring, from the moment it carried its first request: what the case
            // sent, by transport, the kernel's own count (run.rs makes the verdict).
            let (ring0, dev0) = self.ring_from.unwrap_or((ring, dev));
            self.note(key::RING_REQUESTS, ring - ring0);
            self.note(key::DEV_REQUESTS, dev - dev0);
        }
        if let Some(trace) = &self.trace {
            self.note(key::READ_REQUESTS, trace.count(op::READ));
            self.note(key::WRITE_REQUESTS, trace.count(op::WRITE));
            if let Some((minor, passthrough)) = trace.negotiated() {
                self.note(key::PROTOCOL_MINOR, minor);
                self.note(key::PASSTHROUGH_NEGOTIATED, passthrough);
            }
            // What the library asked of the kernel, and what it was told.
            match (
                trace.returns("backing_open"),
                trace.returns("backing_close"),
            ) {
                (Some(opens), Some(closes)) => {
                    let failed = |rets: &[i64]| -> Vec<String> {
                        let mut names: Vec<String> = rets
                            .iter()
                            .filter(|r| **r < 0)
                            .map(|r| {
                                crate::sys::errno_name(rustix::io::Errno::from_raw_os_error(
                                    -*r as i32,
                                ))
                            })
                            .collect();
                        names.sort();
                        names.dedup();
                        names
                    };
                    let ok = |rets: &[i64]| rets.iter().filter(|r| **r >= 0).count();
                    self.note(key::BACKING_OPENS, ok(&opens));
                    self.note(key::BACKING_OPEN_ERRORS, failed(&opens));
                    self.note(key::BACKING_CLOSES, ok(&closes));
                    self.note(key::BACKING_CLOSE_ERRORS, failed(&closes));
                }
                _ => self.note(key::BACKING_OPENS, "unknown: no kprobe events here"),
            }
        }
        // The other witness, on every kernel: what the server's own ioctls were answered.
        if let Some(w) = Witness::read(&self.witness_log) {
            self.note(key::WITNESS_BACKING_OPENS, w.opens);
            self.note(key::WITNESS_BACKING_CLOSES, w.closes);
            self.note(key::WITNESS_BACKING_CLOSE_ERRORS, w.close_errors);
        }
        self.note("unmount", &unmount);
        let deadline = Instant::now() + Duration::from_secs(3);
        // How it ended goes to the snapshot; its exit code only to the results: after an
        // unmount under it, libfuse's code depends on which of its threads saw ENODEV first.
        let (ended, code) = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => match status.code() {
                    Some(c) => break ("exited".to_string(), Some(c)),
                    None => {
                        // Dying by a signal takes a moment (a core dump under load): its
                        // connection can end before the check above saw it gone.
                        if !self.killed && !crash_noted {
                            self.note_crash(status);
                        }
                        break (status.to_string(), None);
                    }
                },
                _ if Instant::now() >= deadline => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break (
                        "killed: it did not exit within 3 s of the unmount".to_string(),
                        None,
                    );
                }
                _ => std::thread::sleep(Duration::from_millis(10)),
            }
        };
        self.note("server_exit", ended);
        if let Some(code) = code {
            self.note(key::SERVER_EXIT_CODE, code);
        }
        self.note(key::SOURCE_RELEASED, unmount_when_released(&self.source));
        let stderr = tail(&self.stderr);
        if !stderr.is_empty() {
            eprintln!("server stderr{stderr}");
        }
        self.trace.take();
    }
}

/// linux/capability.h: what BACKING_OPEN asks of the server.
const CAP_SYS_ADMIN: libc::c_ulong = 21;

/// Open /dev/fuse (inherited by the server: no CLOEXEC) and mount it at `mountpoint` the way
/// fusermount does.
fn mount_for(mountpoint: &Path) -> Result<rustix::fd::OwnedFd, Stop> {
    use rustix::fs::{Mode, OFlags};
    let fd = rustix::fs::open("/dev/fuse", OFlags::RDWR, Mode::empty())?;
    let data = format!(
        "fd={},rootmode=40000,user_id=0,group_id=0,allow_other",
        std::os::fd::AsRawFd::as_raw_fd(&fd)
    );
    let data = std::ffi::CString::new(data).expect("no NUL");
    rustix::mount::mount(
        "fpt-unprivileged",
        mountpoint,
        "fuse.fpt-unprivileged",
        rustix::mount::MountFlags::NOSUID | rustix::mount::MountFlags::NODEV,
        Some(data.as_c_str()),
    )?;
    Ok(fd)
}

/// The connection number (device minor) of the FUSE mount at `mountpoint`, once mounted.
fn fuse_connection(mountpoint: &Path) -> Option<u32> {
    let mount = crate::sys::mount_at(mountpoint).ok()??;
    mount.fstype.starts_with("fuse").then_some(mount.minor)
}

/// The last lines of a server's stderr, on one line: ": a | b", or nothing.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    match lines.len() {
        0 => String::new(),
        n => format!(": {}", lines[n.saturating_sub(3)..].join(" | ")),
    }
}

/// Append `line` to a tracefs control file in one write.
fn append(file: &Path, line: &str) -> std::io::Result<()> {
    use std::io::Write;
    std::fs::OpenOptions::new()
        .append(true)
        .open(file)?
        .write_all(line.as_bytes())
}

/// A tracing instance of the case's own with `fuse:fuse_request_send` on, for one
/// connection, and where the kernel has kprobe events, return probes on
/// `fuse_backing_open` and `fuse_backing_close` (what the server's BACKING_OPEN and
/// BACKING_CLOSE ioctls returned). Removed when dropped; the probes themselves are defined
/// once per run ([`probe_group`]) and removed at its end ([`remove_probes`]): defining and
/// removing them cost about 300 ms a server start under TCG (each removal waits for RCU).
struct TraceInstance {
    dir: PathBuf,
    /// The kprobe event group, when the probes could be set.
    probes: Option<String>,
    /// Probes on the two ways a request is queued (`fuse_uring_queue_fuse_req`,
    /// `fuse_dev_queue_req`), this connection's alone: set for a server over the ring.
    transport: bool,
}

impl TraceInstance {
    const TRACEFS: &'static str = "/sys/kernel/tracing";

    fn new(connection: u32, over_ring: bool) -> Option<TraceInstance> {
        let root = Path::new(Self::TRACEFS);
        if !root.join("instances").is_dir() {
            let _ = rustix::mount::mount(
                "tracefs",
                root,
                "tracefs",
                rustix::mount::MountFlags::empty(),
                None,
            );
        }
        let dir = root
            .join("instances")
            .join(format!("fpt-{}-{connection}", std::process::id()));
        std::fs::create_dir(&dir).ok()?;
        let mut instance = TraceInstance {
            dir,
            probes: None,
            transport: false,
        };
        let event = instance.dir.join("events/fuse/fuse_request_send");
        // The connection is a dev_t; FUSE's superblocks are anonymous (major 0), so it is the
        // minor itself.
        let ok = std::fs::write(instance.dir.join("buffer_size_kb"), "1024").is_ok()
            && std::fs::write(event.join("filter"), format!("connection == {connection}")).is_ok()
            && std::fs::write(event.join("enable"), "1").is_ok();
        if !ok {
            return None;
        }
        instance.probes = instance.set_probes(connection);
        if over_ring && instance.probes.is_some() {
            instance.transport = instance.set_transport_probes(connection);
        }
        Some(instance)
    }

    /// Probes on `fuse_uring_queue_fuse_req` and `fuse_dev_queue_req` reading the request's
    /// connection through BTF, filtered on this one (without BTF they would count every
    /// mount's: not set).
    fn set_transport_probes(&self, connection: u32) -> bool {
        let Some(group) = &self.probes else {
            return false;
        };
        let events = Path::new(Self::TRACEFS).join("dynamic_events");
        for (name, function) in [
            ("ring_req", "fuse_uring_queue_fuse_req"),
            ("dev_req", "fuse_dev_queue_req"),
        ] {
            let dir = Path::new(Self::TRACEFS)
                .join("events")
                .join(group)
                .join(name);
            // The request's connection: through its channel from 7.3, its mount before.
            let defined = dir.is_dir()
                || ["req->chan->conn->dev", "req->fm->fc->dev"]
                    .iter()
                    .any(|path| {
                        append(
                            &events,
                            &format!("p:{group}/{name} {function} dev={path}\n"),
                        )
                        .is_ok()
                    });
            if !defined {
                let log = std::fs::read_to_string(Path::new(Self::TRACEFS).join("error_log"));
                eprintln!(
                    "fpt-agent: {name} probe on {function}: {}",
                    log.unwrap_or_default().lines().last().unwrap_or("")
                );
                return false;
            }
            let own = self.dir.join("events").join(group).join(name);
            let set = std::fs::write(own.join("filter"), format!("dev == {connection}")).is_ok()
                && std::fs::write(own.join("enable"), "1").is_ok();
            if !set {
                return false;
            }
        }
        true
    }

    /// (requests queued on the ring, on /dev/fuse) so far; None without the probes.
    fn transport(&self) -> Option<(u64, u64)> {
        if !self.transport {
            return None;
        }
        let trace = std::fs::read_to_string(self.dir.join("trace")).unwrap_or_default();
        let n = |name: &str| {
            let needle = format!(" {name}: ");
            trace
                .lines()
                .filter(|l| !l.starts_with('#') && l.contains(&needle))
                .count() as u64
        };
        Some((n("ring_req"), n("dev_req")))
    }

    /// Ask STATFS of `mountpoint` until one goes over the ring (at most 2 s): the counts
    /// then, from which the case's own are counted. None when none did.
    fn ring_ready(&self, mountpoint: &Path) -> Option<(u64, u64)> {
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let (ring, dev) = self.transport()?;
            if ring > 0 {
                return Some((ring, dev));
            }
            if Instant::now() >= deadline {
                return None;
            }
            let _ = rustix::fs::statfs(mountpoint);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Return probes on the backing ioctls' kernel functions, in the run's group (defined
    /// by the run's first case that needs them), and, where the kernel reads arguments
    /// through BTF (6.6+, with module BTF), a probe on `fuse_simple_request` that reads what
    /// the connection negotiated at INIT; each enabled in this instance for this
    /// connection alone.
    fn set_probes(&self, connection: u32) -> Option<String> {
        let group = probe_group(std::os::unix::process::parent_id());
        let events = Path::new(Self::TRACEFS).join("dynamic_events");
        let defined = |name: &str| {
            Path::new(Self::TRACEFS)
                .join("events")
                .join(&group)
                .join(name)
                .is_dir()
        };
        for (name, function) in [
            ("backing_open", "fuse_backing_open"),
            ("backing_close", "fuse_backing_close"),
        ] {
            // One write per definition: tracefs parses each write as whole lines. Where a
            // return probe reads arguments through BTF (6.10+ with module BTF), only this
            // connection's calls count; elsewhere every connection's do (the agent's own
            // mounts are made before the server starts, and nothing else registers then).
            let per_connection =
                format!("r:{group}/{name} {function} ret=$retval:s32 dev=fc->dev\n");
            // Defined by an earlier case of the run, or now: the filter, where the probe
            // has the field, is this instance's.
            if defined(name) || append(&events, &per_connection).is_ok() {
                let _ = std::fs::write(
                    self.dir
                        .join("events")
                        .join(&group)
                        .join(name)
                        .join("filter"),
                    format!("dev == {connection}"),
                );
            } else {
                append(
                    &events,
                    &format!("r:{group}/{name} {function} ret=$retval:s32\n"),
                )
                .ok()?;
                eprintln!("fpt-agent: {name} probe counts every connection's calls (no BTF)");
            }
        }
        // The minor the server announced (the kernel keeps it as it came) and the
        // passthrough bit the kernel granted, from the connection itself.
        let fields = "minor=fm->fc->minor passthrough=fm->fc->passthrough dev=fm->sb->s_dev";
        let negotiated = defined("conn")
            || ["p", "f"].iter().any(|kind| {
                let r = append(
                    &events,
                    &format!("{kind}:{group}/conn __fuse_simple_request {fields}\n"),
                );
                if let Err(e) = &r {
                    let log = std::fs::read_to_string(Path::new(Self::TRACEFS).join("error_log"));
                    eprintln!("fpt-agent: {kind} probe: {e}: {}", log.unwrap_or_default());
                }
                r.is_ok()
            });
        if negotiated {
            let _ = std::fs::write(
                self.dir.join("events").join(&group).join("conn/filter"),
                format!("dev == {connection}"),
            );
        }
        std::fs::write(self.dir.join("events").join(&group).join("enable"), "1").ok()?;
        Some(group)
    }

    /// What the connection negotiated, as the kernel holds it: (protocol minor, passthrough
    /// granted), from the last request the probe saw. None without the probe.
    fn negotiated(&self) -> Option<(u32, bool)> {
        self.probes.as_ref()?;
        let trace = std::fs::read_to_string(self.dir.join("trace")).ok()?;
        let line = trace
            .lines()
            .rev()
            .find(|l| !l.starts_with('#') && l.contains(" conn: "))?;
        let field = |key: &str| -> Option<u32> {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(key)?.parse().ok())
        };
        Some((field("minor=")?, field("passthrough=")? != 0))
    }

    /// Wait (at most 2 s) until the kernel has sent a RELEASE for every OPEN and CREATE,
    /// and the server has closed as many backing ids as it opened (a library that keeps
    /// them on purpose costs the wait): the files' ends are then counted the same way every
    /// run, not raced by the unmount.
    fn settle(&self) {
        use crate::fuse::abi::op;
        let deadline = Instant::now() + Duration::from_secs(2);
        let released = || self.count(op::RELEASE) >= self.count(op::OPEN) + self.count(op::CREATE);
        while !released() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let closed = || {
            let ok = |v: Option<Vec<i64>>| v.map_or(0, |r| r.iter().filter(|x| **x >= 0).count());
            ok(self.returns("backing_close")) >= ok(self.returns("backing_open"))
        };
        let deadline = Instant::now().min(deadline) + Duration::from_millis(500);
        while !closed() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// What `fuse_backing_open` or `fuse_backing_close` (`which`: "backing_open" or
    /// "backing_close") returned each time: ids, or negative errnos. None without probes.
    fn returns(&self, which: &str) -> Option<Vec<i64>> {
        self.probes.as_ref()?;
        let trace = std::fs::read_to_string(self.dir.join("trace")).unwrap_or_default();
        let needle = format!(" {which}: ");
        Some(
            trace
                .lines()
                .filter(|l| !l.starts_with('#') && l.contains(&needle))
                .filter_map(|l| {
                    let ret = l.split_whitespace().find_map(|w| w.strip_prefix("ret="))?;
                    ret.parse().ok()
                })
                .collect(),
        )
    }

    fn count(&self, opcode: u32) -> u64 {
        let trace = std::fs::read_to_string(self.dir.join("trace")).unwrap_or_default();
        let needle = format!(" opcode {opcode} (");
        trace
            .lines()
            .filter(|l| !l.starts_with('#') && l.contains(&needle))
            .count() as u64
    }
}

impl Drop for TraceInstance {
    fn drop(&mut self) {
        let _ = std::fs::write(self.dir.join("events/fuse/fuse_request_send/enable"), "0");
        if let Some(group) = &self.probes {
            let _ = std::fs::write(self.dir.join("events").join(group).join("enable"), "0");
            for name in ["ring_req", "dev_req"] {
                let _ = std::fs::write(
                    self.dir
                        .join("events")
                        .join(group)
                        .join(name)
                        .join("enable"),
                    "0",
                );
            }
        }
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// The kprobe event group of the run whose runner is process `runner` (every case process
/// is its child).
fn probe_group(runner: u32) -> String {
    format!("fpt{runner}")
}

/// Remove the probes this run defined (the runner calls it at the end: on the host they
/// would outlive the agent).
pub fn remove_probes() {
    let group = probe_group(std::process::id());
    let events = Path::new(TraceInstance::TRACEFS).join("dynamic_events");
    for name in [
        "backing_open",
        "backing_close",
        "conn",
        "ring_req",
        "dev_req",
    ] {
        let _ = append(&events, &format!("-:{group}/{name}\n"));
    }
}

/// What the backing-id witness (`targets/backing-witness`, preloaded into the server) saw:
/// BACKING_OPENs the kernel granted, BACKING_CLOSEs it accepted, and the errno names of the
/// closes it refused.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Witness {
    /// Ids granted.
    pub opens: u64,
    /// Closes accepted.
    pub closes: u64,
    /// The closes refused, by errno name ("ENOENT" for an id closed twice).
    pub close_errors: Vec<String>,
    /// The opens refused, by errno name, in order.
    pub open_errors: Vec<String>,
    /// The files whose BACKING_OPEN the witness made without CAP_SYS_ADMIN
    /// (`$FPT_REFUSE_BACKING`).
    pub refused: Vec<String>,
}

impl Witness {
    /// The witness's log; None where it never loaded (a server without libc, or none).
    pub fn read(log: &Path) -> Option<Witness> {
        Self::parse(&std::fs::read_to_string(log).ok()?)
    }

    /// See [`Witness::read`].
    pub fn parse(text: &str) -> Option<Witness> {
        if !text.lines().any(|l| l.starts_with("loaded ")) {
            return None;
        }
        let mut w = Witness::default();
        for line in text.lines() {
            let words: Vec<&str> = line.split(' ').collect();
            match words.as_slice() {
                ["open", ret, errno] => match ret.parse::<i64>() {
                    Ok(r) if r >= 0 => w.opens += 1,
                    _ => w.open_errors.push(errno_name(errno)),
                },
                ["refuse", name] => w.refused.push(name.to_string()),
                ["close", _, ret, errno] => match ret.parse::<i64>() {
                    Ok(r) if r >= 0 => w.closes += 1,
                    _ => w.close_errors.push(errno_name(errno)),
                },
                _ => {}
            }
        }
        w.close_errors.sort();
        w.close_errors.dedup();
        Some(w)
    }
}

/// The name of the errno the witness logged as a number.
fn errno_name(errno: &str) -> String {
    crate::sys::errno_name(rustix::io::Errno::from_raw_os_error(
        errno.parse().unwrap_or(0),
    ))
}

#[cfg(test)]
mod tests {
    use super::Witness;

    #[test]
    fn the_witness_log_counts_granted_ids_and_names_refusals() {
        let log = "loaded 7\nopen 1 0\nrefuse refused\nopen -1 1\nopen 2 0\nclose 1 0 0\n\
                   close 1 -1 2\n";
        let w = Witness::parse(log).unwrap();
        assert_eq!((w.opens, w.closes), (2, 1));
        assert_eq!(w.open_errors, ["EPERM"]);
        assert_eq!(w.close_errors, ["ENOENT"]);
        assert_eq!(w.refused, ["refused"]);
        assert_eq!(
            Witness::parse("open 1 0\n"),
            None,
            "no `loaded`: never loaded"
        );
    }
}
