//! Fault scenarios: the connection or the mount goes away while passthrough I/O is in
//! flight. What a correct kernel does: the I/O returns (data or an error), nothing hangs,
//! and everything is released (the backing file's own tmpfs unmounts afterwards).
//! A scenario that might wedge an unfixed kernel is marked `kills_kernel`: run it with
//! `--isolate`, never on the host.

use proto::observation as key;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustix::mount::UnmountFlags;

use crate::framework::{pattern, unmount_when_released, Case, Ctx, Stop};
use crate::fuse::{FuseFs, InitReply, OpenReply, ServerProcess};
use crate::sys::outcome;

/// What the cases of this group share.
const DEFAULTS: Case = Case {
    verdict_rule: "pass when every I/O thread returns, each one's last I/O after the fault \
                   succeeded (passthrough I/O on an open file needs no server), nothing \
                   hangs, and the backing tmpfs unmounts once the files are closed",
    timeout: Duration::from_secs(30),
    ..Case::DEFAULT
};

pub fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "faults.abort_during_io",
            rule: "the connection is aborted (fusectl) while passthrough \
              reads, writes, splices and page faults run in a loop",
            run: abort_during_io,
            ..DEFAULTS
        },
        Case {
            name: "faults.lazy_umount_during_io",
            rule: "umount -l of the FUSE mount while passthrough I/O \
              runs on open files",
            run: lazy_umount_during_io,
            ..DEFAULTS
        },
        Case {
            name: "faults.stalled_server_open_then_abort",
            rule: "the server stops answering while a \
              passthrough open is in progress: the open waits for the OPEN answer; aborting \
              the connection ends it with ECONNABORTED",
            verdict_rule: "pass when the open still waits after 500 ms, fails with \
                           ECONNABORTED after the abort, and the backing tmpfs unmounts",
            run: stalled_server_open,
            ..DEFAULTS
        },
        Case {
            name: "faults.request_timeout",
            rule: "with FUSE_REQUEST_TIMEOUT (6.15, protocol 7.43) a request the server leaves \
                   unanswered past the timeout (15 s at least, looked at every 15 s) aborts \
                   the connection; passthrough reads, which send no request, go on while the \
                   server is stalled and after the abort",
            verdict_rule: "pass when a lookup to the stalled server still waits after 2 s and \
                           ends with ECONNABORTED within 50 s, every passthrough read during \
                           the wait returned the file's bytes with no READ, a read after the \
                           abort succeeds and an open gives ENOTCONN; skip before 6.15",
            timeout: Duration::from_secs(70),
            slow: true,
            run: request_timeout,
            ..DEFAULTS
        },
        Case {
            name: "faults.server_exit_during_io",
            rule: "the server process exits (SIGKILL) while a \
              passthrough file is open, mapped and being read, written, spliced and faulted in",
            run: server_exit_during_io,
            ..DEFAULTS
        },
        Case {
            name: "faults.backing_on_asking_servers_mounts",
            rule: "the server that asks for a backing \
                   file also serves the mount it is on: a passthrough mount (ELOOP) and a plain \
                   one (allowed: its I/O reaches that mount's server)",
            verdict_rule: "pass on ELOOP for a backing file on the server's other passthrough \
                           mount, and when the one on its plain mount works without a hang",
            run: backing_on_asking_servers_mounts,
            ..DEFAULTS
        },
        Case {
            name: "faults.overlay_fuse_overlay_teardown",
            rule: "overlayfs over a passthrough FUSE mount \
                   whose files sit on another overlayfs, torn down (umount -l) in every order with \
                   a file open through the top; with the backing files registered (depth 2) \
                   the upper overlay is refused",
            verdict_rule: "pass when every unmount and read returns and the bottom tmpfs is \
                           released after each order",
            run: overlay_fuse_overlay_teardown,
            ..DEFAULTS
        },
        Case {
            name: "faults.parallel_dio_cached_open_mmap",
            rule: "parallel direct writes (FOPEN_DIRECT_IO | \
                   FOPEN_PARALLEL_DIRECT_WRITES) together with a cached open and an mmap of the \
                   same inode",
            verdict_rule:
                "pass when the cached open and the mmap return while parallel direct \
                           writes run (before 6.12 the open could wait forever: run with --isolate)",
            kills_kernel: true,
            run: parallel_dio_cached_open_mmap,
            ..DEFAULTS
        },
    ]
}

/// A tmpfs of its own holding "f", the backing file of the fault cases.
fn backing_tmpfs(ctx: &mut Ctx) -> Result<PathBuf, Stop> {
    let dir = ctx.own_tmpfs("backing-tmpfs")?;
    std::fs::write(dir.join("f"), pattern(200, 1 << 20))?;
    Ok(dir)
}

/// A passthrough file whose backing file sits alone on its own tmpfs.
fn setup(ctx: &mut Ctx) -> Result<(FuseFs, PathBuf), Stop> {
    let dir = backing_tmpfs(ctx)?;
    let fs = ctx.mount_passthrough(1)?;
    let path = dir.join("f");
    fs.add_passthrough_file_at("f", &path)?;
    fs.drop_server_fd("f");
    Ok((fs, dir))
}

/// Loop one kind of I/O on `file` until `stop`, counting its rounds in `rounds`; return the
/// last outcome.
fn io_loop(
    kind: &'static str,
    file: Arc<File>,
    stop: Arc<AtomicBool>,
    rounds: Arc<AtomicU64>,
) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut last = String::from("not run");
        let mut buf = vec![0u8; 65536];
        while !stop.load(Ordering::SeqCst) {
            rounds.fetch_add(1, Ordering::SeqCst);
            let r: Result<(), rustix::io::Errno> = match kind {
                "read" => file
                    .read_at(&mut buf, 4096)
                    .map(drop)
                    .map_err(|e| crate::fuse::errno(&e)),
                "write" => file
                    .write_at(&buf[..4096], 8192)
                    .map(drop)
                    .map_err(|e| crate::fuse::errno(&e)),
                "splice" => (|| {
                    let (r, w) = rustix::pipe::pipe()?;
                    let mut off = 0u64;
                    rustix::pipe::splice(
                        &*file,
                        Some(&mut off),
                        &w,
                        None,
                        4096,
                        rustix::pipe::SpliceFlags::empty(),
                    )?;
                    drop(r);
                    Ok(())
                })(),
                _ => (|| {
                    use rustix::mm::{MapFlags, ProtFlags};
                    // SAFETY: map, touch one byte, unmap: the mapping lives only here.
                    unsafe {
                        let p = rustix::mm::mmap(
                            std::ptr::null_mut(),
                            65536,
                            ProtFlags::READ,
                            MapFlags::SHARED,
                            &*file,
                            0,
                        )?;
                        std::ptr::read_volatile((p as *const u8).add(40_000));
                        rustix::mm::munmap(p, 65536)?;
                    }
                    Ok(())
                })(),
            };
            last = outcome(&r);
        }
        last
    })
}

/// Run all four I/O kinds, do `fault` once each has made some rounds, let each make some
/// more (so the last outcome is one that began after the fault), stop them, and record what
/// each returned last. Counted in rounds, not waited for in time: the fault cannot come
/// before the I/O is under way, nor the end before the I/O has met the fault.
fn under_io(ctx: &mut Ctx, path: &Path, fault: impl FnOnce() -> String) -> Result<(), Stop> {
    /// Rounds of each kind before the fault and again after it.
    const ROUNDS: u64 = 3;
    let file = Arc::new(File::options().read(true).write(true).open(path)?);
    let stop = Arc::new(AtomicBool::new(false));
    let kinds = ["read", "write", "splice", "page_fault"];
    let rounds: Vec<Arc<AtomicU64>> = kinds.iter().map(|_| Arc::default()).collect();
    let threads: Vec<_> = kinds
        .iter()
        .zip(&rounds)
        .map(|(k, n)| io_loop(k, Arc::clone(&file), Arc::clone(&stop), Arc::clone(n)))
        .collect();
    let until_each = |at_least: &[u64]| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline
            && rounds
                .iter()
                .zip(at_least)
                .any(|(n, min)| n.load(Ordering::SeqCst) < *min)
        {
            std::thread::sleep(Duration::from_millis(1));
        }
    };
    until_each(&[ROUNDS; 4]);
    let fault_outcome = fault();
    ctx.observe("fault", fault_outcome);
    // A round under way at the fault may have begun before it: ROUNDS more after it.
    let now: Vec<u64> = rounds
        .iter()
        .map(|n| n.load(Ordering::SeqCst) + ROUNDS)
        .collect();
    until_each(&now);
    stop.store(true, Ordering::SeqCst);
    for (kind, t) in kinds.iter().zip(threads) {
        let last = t
            .join()
            .map_err(|_| Stop::Broken(format!("the {kind} thread panicked")))?;
        // Passthrough I/O on an open file never needs the server: it goes on.
        ctx.expect(&format!("{kind}_after_fault"), last, "ok");
    }
    Ok(())
}

/// Wait up to `timeout` until a request waits on `fs`'s connection (fusectl `waiting`).
fn wait_for_waiting(fs: &FuseFs, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if fs.waiting().is_ok_and(|w| w > 0) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    false
}

/// After everything is closed, the backing tmpfs must unmount.
fn expect_released(ctx: &mut Ctx, dir: &Path) {
    ctx.expect("backing_released", unmount_when_released(dir), "ok");
}

fn abort_during_io(ctx: &mut Ctx) -> Result<(), Stop> {
    let (fs, dir) = setup(ctx)?;
    under_io(ctx, &fs.path("f"), || {
        outcome(&fs.abort().map_err(|e| crate::fuse::errno(&e)))
    })?;
    let _ = rustix::mount::unmount(&fs.mnt, UnmountFlags::DETACH);
    drop(fs);
    expect_released(ctx, &dir);
    Ok(())
}

fn lazy_umount_during_io(ctx: &mut Ctx) -> Result<(), Stop> {
    let (fs, dir) = setup(ctx)?;
    under_io(ctx, &fs.path("f"), || {
        outcome(&rustix::mount::unmount(&fs.mnt, UnmountFlags::DETACH))
    })?;
    drop(fs);
    expect_released(ctx, &dir);
    Ok(())
}

fn stalled_server_open(ctx: &mut Ctx) -> Result<(), Stop> {
    let (fs, dir) = setup(ctx)?;
    // Look the file up while the server still answers, then stop it: the open waits.
    std::fs::metadata(fs.path("f"))?;
    fs.stall();
    let path = fs.path("f");
    let opener = std::thread::spawn(move || {
        File::open(path)
            .map(drop)
            .map_err(|e| crate::fuse::errno(&e))
    });
    // The OPEN is queued for the server (fusectl counts it waiting); given a moment more
    // to finish, it must still wait.
    let queued = wait_for_waiting(&fs, Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(100));
    let waiting = queued && !opener.is_finished();
    ctx.observe("open_still_waiting", waiting);
    ctx.check(
        waiting,
        "the open did not wait for the stalled server's OPEN answer",
    );
    ctx.expect(
        "abort",
        outcome(&fs.abort().map_err(|e| crate::fuse::errno(&e))),
        "ok",
    );
    let opened = opener
        .join()
        .map_err(|_| Stop::Broken("the opener panicked".into()))?;
    ctx.expect("open_after_abort", outcome(&opened), "ECONNABORTED");
    let _ = rustix::mount::unmount(&fs.mnt, UnmountFlags::DETACH);
    drop(fs);
    expect_released(ctx, &dir);
    Ok(())
}

fn server_exit_during_io(ctx: &mut Ctx) -> Result<(), Stop> {
    // The server is forked before any thread of this case exists (see ServerProcess).
    let dir = backing_tmpfs(ctx)?;
    let server_dir = ctx.scratch("server")?;
    let mut server = ServerProcess::spawn_passthrough(&server_dir, "f", &dir.join("f"))?
        .ok_or_else(|| Stop::Skip(crate::framework::NO_PASSTHROUGH.into()))?;
    let mnt = server.mnt.clone();
    under_io(ctx, &mnt.join("f"), || server.kill())?;
    let _ = rustix::mount::unmount(&mnt, UnmountFlags::DETACH);
    expect_released(ctx, &dir);
    Ok(())
}

fn backing_on_asking_servers_mounts(ctx: &mut Ctx) -> Result<(), Stop> {
    // One process (this one) serves all three connections.
    let asking = ctx.mount_passthrough(1)?;
    let data = pattern(201, 20_000);
    let passthrough = ctx.mount_passthrough(1)?;
    passthrough.add_file("b", &data, OpenReply::CACHED)?;
    let got = outcome(&asking.backing_open_path(&passthrough.path("b")));
    ctx.expect("backing_open_on_own_passthrough_mount", got, "ELOOP");

    let (plain, _) = ctx.mount(InitReply::plain())?;
    let lower = plain.add_file("b", &data, OpenReply::CACHED)?;
    let got = asking.backing_open_path(&plain.path("b"));
    ctx.expect("backing_open_on_own_plain_mount", outcome(&got), "ok");
    let Ok(id) = got else { return Ok(()) };
    asking.add_file_at("f", &plain.path("b"), OpenReply::passthrough(id))?;
    let file = File::options()
        .read(true)
        .write(true)
        .open(asking.path("f"))?;
    let mut back = vec![0u8; data.len()];
    file.read_exact_at(&mut back, 0)?;
    ctx.check(
        back == data,
        "a read through the chain returned other bytes",
    );
    let more = pattern(202, 5000);
    file.write_all_at(&more, 1000)?;
    drop(file);
    ctx.check(
        std::fs::read(&lower)?[1000..6000] == more[..],
        "a write through the chain did not land",
    );
    ctx.expect_bypassed(&asking);
    use crate::fuse::abi::op;
    ctx.observe("plain_mount_read_requests_seen", plain.count(op::READ) > 0);
    ctx.observe(
        "plain_mount_write_requests_seen",
        plain.count(op::WRITE) > 0,
    );
    Ok(())
}

/// One stack for the teardown scenario, bottom up, with a file open through its top.
struct Stack {
    /// (name, mount point) of each layer that can be unmounted, bottom up.
    layers: Vec<(&'static str, PathBuf)>,
    file: File,
    _fs: FuseFs,
    bottom: PathBuf,
}

/// tmpfs <- overlay "o1" <- FUSE <- overlay "o2". With `registered`, the FUSE mount (depth 2)
/// passes its file through to o1's, and o2 (it would be depth 3) must fail to mount; without,
/// the FUSE mount (depth 1) serves o1's file itself, and o2 sits on top.
fn build_stack(ctx: &mut Ctx, tag: &str, registered: bool) -> Result<(Stack, String), Stop> {
    use crate::framework::fixtures::overlay;
    let bottom = ctx.own_tmpfs(&format!("{tag}-tmpfs"))?;
    let lower = bottom.join("lower");
    std::fs::create_dir(&lower)?;
    std::fs::write(lower.join("f"), pattern(203, 1 << 20))?;
    let fs = ctx.mount_passthrough(if registered { 2 } else { 1 })?;
    let o1 = overlay(ctx, &format!("{tag}-o1"), &lower)?
        .map_err(|e| Stop::Broken(format!("overlay o1: {e}")))?;
    fs.add_file_at("f", &o1.join("f"), OpenReply::CACHED)?;
    if registered {
        let id = fs.backing_open_path(&o1.join("f"))?;
        fs.set_open_reply("f", OpenReply::passthrough(id));
    }
    fs.drop_server_fd("f");
    let o2 = overlay(ctx, &format!("{tag}-o2"), &fs.mnt)?;
    let o2_outcome = outcome(&o2);
    let mut layers = vec![("o1", o1), ("fuse", fs.mnt.clone())];
    let top = match o2 {
        Ok(o2) => {
            layers.push(("o2", o2.clone()));
            o2
        }
        Err(_) => fs.mnt.clone(),
    };
    let file = File::open(top.join("f"))?;
    Ok((
        Stack {
            layers,
            file,
            _fs: fs,
            bottom,
        },
        o2_outcome,
    ))
}

fn overlay_fuse_overlay_teardown(ctx: &mut Ctx) -> Result<(), Stop> {
    let orders: &[&[usize]] = &[
        &[0, 1, 2],
        &[0, 2, 1],
        &[1, 0, 2],
        &[1, 2, 0],
        &[2, 0, 1],
        &[2, 1, 0],
        &[0, 1],
        &[1, 0],
    ];
    for (n, order) in orders.iter().enumerate() {
        let registered = order.len() == 2;
        let (stack, o2) = build_stack(ctx, &format!("s{n}"), registered)?;
        let key = if registered {
            "upper_overlay_over_registered"
        } else {
            "upper_overlay_over_plain"
        };
        ctx.observe(key, &o2);
        ctx.check((o2 == "ok") != registered, format!("{key}: got {o2}"));
        let mut buf = vec![0u8; 4096];
        let first = stack
            .file
            .read_at(&mut buf, 0)
            .map_err(|e| crate::fuse::errno(&e));
        ctx.check(
            first.is_ok() && buf == pattern(203, 4096),
            "the first read through the stack failed",
        );
        let names: Vec<&str> = order.iter().map(|&i| stack.layers[i].0).collect();
        // One key per step: teardown.<order>.<step>.<layer>.{umount,read}, and
        // teardown.<order>.bottom_released.
        let prefix = format!("teardown.{}", names.join("_"));
        for (step, &i) in order.iter().enumerate() {
            let (name, at) = &stack.layers[i];
            let umount = outcome(&rustix::mount::unmount(at, UnmountFlags::DETACH));
            // Each read 256 KiB further on, past what readahead may have cached.
            let off = (step as u64 + 1) << 18;
            let read = outcome(
                &stack
                    .file
                    .read_at(&mut buf, off)
                    .map_err(|e| crate::fuse::errno(&e)),
            );
            // A read the server fails (its own fd dropped, it reopens o1/f, gone once o1 is
            // detached: ENOENT) reaches read(2) as the server's errno up to 6.18; from 6.19
            // (03e9618e8240 "fuse: use iomap for read_folio") fuse_read_folio returns 0 and
            // filemap_read_folio answers EIO for the folio left not up to date.
            let failed_read = if ctx.kernel.at_least(6, 19) {
                "EIO"
            } else {
                "ENOENT"
            };
            ctx.check(
                read == "ok" || read == failed_read,
                format!(
                    "order {names:?}, step {}: read gave {read}, not ok or {failed_read}",
                    step + 1
                ),
            );
            ctx.observe(&format!("{prefix}.{}.{name}.umount", step + 1), umount);
            ctx.observe(&format!("{prefix}.{}.{name}.read", step + 1), read);
        }
        let bottom = stack.bottom.clone();
        drop(stack);
        let released = unmount_when_released(&bottom);
        ctx.check(
            released == "ok",
            format!("order {names:?}: the bottom tmpfs stayed busy ({released})"),
        );
        ctx.observe(&format!("{prefix}.bottom_released"), released);
    }
    Ok(())
}

fn parallel_dio_cached_open_mmap(ctx: &mut Ctx) -> Result<(), Stop> {
    use crate::fuse::abi::fopen;
    let (fs, _) = ctx.mount(InitReply::plain())?;
    let dio = OpenReply {
        open_flags: fopen::DIRECT_IO | fopen::PARALLEL_DIRECT_WRITES,
        backing_id: 0,
    };
    fs.add_file("f", &pattern(210, 1 << 20), dio)?;
    let file = Arc::new(File::options().read(true).write(true).open(fs.path("f"))?);
    fs.set_open_reply("f", OpenReply::CACHED);
    let stop = Arc::new(AtomicBool::new(false));
    // Writes inside the file's size: only those run in parallel (shared inode lock).
    let writers: Vec<_> = (0..2u64)
        .map(|i| {
            let (file, stop) = (Arc::clone(&file), Arc::clone(&stop));
            std::thread::spawn(move || {
                let buf = pattern(211 + i, 65536);
                let mut last = Ok(0);
                while !stop.load(Ordering::SeqCst) && last.is_ok() {
                    last = file.write_at(&buf, i * 65536);
                }
                outcome(&last.map(drop).map_err(|e| crate::fuse::errno(&e)))
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let path = fs.path("f");
    let opener = std::thread::spawn(move || -> String {
        use rustix::mm::{MapFlags, ProtFlags};
        let opened = File::options().read(true).write(true).open(&path);
        let Ok(cached) = opened else {
            return outcome(&opened.map(drop).map_err(|e| crate::fuse::errno(&e)));
        };
        // SAFETY: a shared mapping of one page, written, read and unmapped here.
        let mapped = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                4096,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                &cached,
                1 << 19,
            )
            .map(|p| {
                std::ptr::write_volatile(p as *mut u8, 0x5a);
                let seen = std::ptr::read_volatile(p as *const u8);
                let _ = rustix::mm::munmap(p, 4096);
                seen
            })
        };
        match mapped {
            Ok(0x5a) => "ok".into(),
            Ok(other) => format!("the mapping read back {other:#x}"),
            Err(e) => format!("mmap {}", crate::sys::errno_name(e)),
        }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !opener.is_finished() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let in_time = opener.is_finished();
    ctx.observe("cached_open_returned_within_5s", in_time);
    ctx.check(
        in_time,
        "the cached open did not return within 5 s while parallel direct writes \
                        ran (the hang fixed in 6.12)",
    );
    stop.store(true, Ordering::SeqCst);
    for (i, w) in writers.into_iter().enumerate() {
        let last = w
            .join()
            .map_err(|_| Stop::Broken("a writer panicked".into()))?;
        ctx.observe(&format!("writer_{i}"), last);
    }
    if !in_time {
        // Free the opener so the case can end: an abort fails every request still waiting.
        let _ = fs.abort();
    }
    let opened = opener
        .join()
        .map_err(|_| Stop::Broken("the opener panicked".into()))?;
    ctx.expect("cached_open_and_mmap", opened, "ok");
    Ok(())
}

/// The shortest request timeout the kernel takes (and how often it looks).
const MIN_REQUEST_TIMEOUT: u16 = 15;

fn request_timeout(ctx: &mut Ctx) -> Result<(), Stop> {
    use crate::fuse::abi::{init_flags, op};
    if !ctx.kernel.at_least(6, 15) {
        return Err(Stop::Skip(
            "FUSE_REQUEST_TIMEOUT came in 6.15 (protocol 7.43)".into(),
        ));
    }
    let dir = backing_tmpfs(ctx)?;
    let mut init = InitReply::passthrough(1);
    init.request_timeout = MIN_REQUEST_TIMEOUT;
    let (fs, exchange) = ctx.mount(init)?;
    if !exchange.kernel_offers_passthrough() {
        return Err(Stop::Skip(crate::framework::NO_PASSTHROUGH.into()));
    }
    ctx.check(
        exchange.kernel_offers(init_flags::REQUEST_TIMEOUT),
        "FUSE_REQUEST_TIMEOUT not offered",
    );
    let data = pattern(140, 256 * 1024);
    let backing = dir.join("f");
    std::fs::write(&backing, &data)?;
    fs.add_passthrough_file_at("f", &backing)?;
    fs.drop_server_fd("f");
    let file = File::open(fs.path("f"))?;
    fs.stall();
    // A request the stalled server never answers: a name it does not serve (a negative
    // lookup is not cached, so it is asked every time).
    let absent = fs.path("absent");
    let lookup = std::thread::spawn(move || {
        std::fs::metadata(absent)
            .map(drop)
            .map_err(|e| crate::fuse::errno(&e))
    });
    let start = Instant::now();
    let mut reads = 0u64;
    let mut bad_read = None;
    let mut waited_2s = None;
    while !lookup.is_finished() && start.elapsed() < Duration::from_secs(50) {
        let off = (reads * 4096) % data.len() as u64;
        let mut buf = vec![0u8; 4096];
        match file.read_exact_at(&mut buf, off) {
            Ok(()) if buf[..] == data[off as usize..off as usize + 4096] => {}
            Ok(()) => {
                bad_read.get_or_insert(format!("other bytes at {off}"));
            }
            Err(e) => {
                bad_read.get_or_insert(crate::sys::errno_name(crate::fuse::errno(&e)));
            }
        }
        reads += 1;
        if waited_2s.is_none() && start.elapsed() >= Duration::from_secs(2) {
            waited_2s = Some(!lookup.is_finished());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let waited_2s = waited_2s.unwrap_or(false);
    ctx.observe("lookup_still_waiting_after_2s", waited_2s);
    ctx.check(
        waited_2s,
        "the lookup to the stalled server ended within 2 s",
    );
    if !lookup.is_finished() {
        return Err(Stop::Broken(
            "the lookup to the stalled server still waited 50 s on: no timeout abort".into(),
        ));
    }
    let ended = lookup
        .join()
        .map_err(|_| Stop::Broken("the lookup thread panicked".into()))?;
    ctx.expect("lookup_after_timeout", outcome(&ended), "ECONNABORTED");
    ctx.expect(
        "reads_during_stall",
        bad_read.unwrap_or_else(|| "ok".into()),
        "ok",
    );
    ctx.expect_count(key::READ_REQUESTS, fs.count(op::READ), 0);
    let mut buf = vec![0u8; 4096];
    ctx.expect(
        "read_after_abort",
        outcome(
            &file
                .read_exact_at(&mut buf, 0)
                .map_err(|e| crate::fuse::errno(&e)),
        ),
        "ok",
    );
    ctx.expect(
        "open_after_abort",
        outcome(
            &File::open(fs.path("f"))
                .map(drop)
                .map_err(|e| crate::fuse::errno(&e)),
        ),
        "ENOTCONN",
    );
    drop(file);
    drop(fs);
    expect_released(ctx, &dir);
    Ok(())
}
