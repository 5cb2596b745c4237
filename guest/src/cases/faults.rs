//! Fault scenarios: the connection or the mount goes away while passthrough I/O is in
//! flight. What a correct kernel does: the I/O returns (data or an error), nothing hangs,
//! and everything is released (the backing file's own tmpfs unmounts afterwards).
//! A scenario that might wedge an unfixed kernel is marked `kills_kernel`: run it with
//! `--isolate`, never on the host.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rustix::mount::{MountFlags, UnmountFlags};

use super::{pattern, unmount_when_released, Case, Ctx, Stop};
use crate::fuse::{FuseFs, OpenReply};
use crate::sys::outcome;

fn case(name: &'static str, rule: &'static str, run: fn(&mut Ctx) -> Result<(), Stop>) -> Case {
    Case {
        name,
        group: "faults",
        rule,
        verdict_rule: "pass when every I/O thread returns, nothing hangs, and the backing \
                       tmpfs unmounts once the files are closed",
        timeout: Duration::from_secs(30),
        kills_kernel: false,
        run,
    }
}

pub fn cases() -> Vec<Case> {
    vec![
        case("faults.abort_during_io", "the connection is aborted (fusectl) while passthrough \
              reads, writes, splices and page faults run in a loop", abort_during_io),
        case("faults.lazy_umount_during_io", "umount -l of the FUSE mount while passthrough I/O \
              runs on open files", lazy_umount_during_io),
        case("faults.stalled_server_open_then_abort", "the server stops answering while a \
              passthrough open is in progress; aborting the connection ends the open", stalled_server_open),
    ]
}

/// A passthrough file whose backing file sits alone on its own tmpfs.
fn setup(ctx: &mut Ctx) -> Result<(FuseFs, PathBuf), Stop> {
    let dir = ctx.scratch("backing-tmpfs")?;
    rustix::mount::mount("fpt-backing", &dir, "tmpfs", MountFlags::empty(), None)?;
    let fs = ctx.mount_passthrough(1)?;
    let path = dir.join("f");
    std::fs::write(&path, pattern(200, 1 << 20))?;
    fs.add_file_at("f", &path, OpenReply::CACHED)?;
    let id = fs.backing_open_path(&path)?;
    fs.set_open_reply("f", OpenReply::passthrough(id));
    fs.drop_server_fd("f");
    Ok((fs, dir))
}

/// Loop one kind of I/O on `file` until `stop`; return the last outcome.
fn io_loop(kind: &'static str, file: Arc<File>, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut last = String::from("not run");
        let mut buf = vec![0u8; 65536];
        while !stop.load(Ordering::SeqCst) {
            let r: Result<(), rustix::io::Errno> = match kind {
                "read" => file.read_at(&mut buf, 4096).map(drop).map_err(|e| crate::fuse::errno(&e)),
                "write" => file.write_at(&buf[..4096], 8192).map(drop).map_err(|e| crate::fuse::errno(&e)),
                "splice" => (|| {
                    let (r, w) = rustix::pipe::pipe()?;
                    let mut off = 0u64;
                    rustix::pipe::splice(&*file, Some(&mut off), &w, None, 4096, rustix::pipe::SpliceFlags::empty())?;
                    drop(r);
                    Ok(())
                })(),
                _ => (|| {
                    use rustix::mm::{MapFlags, ProtFlags};
                    // SAFETY: map, touch one byte, unmap: the mapping lives only here.
                    unsafe {
                        let p = rustix::mm::mmap(std::ptr::null_mut(), 65536, ProtFlags::READ, MapFlags::SHARED, &*file, 0)?;
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

/// Run all four I/O kinds, do `fault` after a moment, let them go on a little, stop them,
/// and record what each returned last.
fn under_io(ctx: &mut Ctx, fs: &FuseFs, fault: impl FnOnce() -> String) -> Result<(), Stop> {
    let file = Arc::new(File::options().read(true).write(true).open(fs.path("f"))?);
    let stop = Arc::new(AtomicBool::new(false));
    let kinds = ["read", "write", "splice", "page_fault"];
    let threads: Vec<_> = kinds.iter().map(|k| io_loop(k, Arc::clone(&file), Arc::clone(&stop))).collect();
    std::thread::sleep(Duration::from_millis(300));
    let fault_outcome = fault();
    ctx.observe("fault", fault_outcome);
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::SeqCst);
    for (kind, t) in kinds.iter().zip(threads) {
        let last = t.join().map_err(|_| Stop::Broken(format!("the {kind} thread panicked")))?;
        ctx.observe(&format!("{kind}_after_fault"), last);
    }
    Ok(())
}

/// After everything is closed, the backing tmpfs must unmount.
fn expect_released(ctx: &mut Ctx, dir: &Path) {
    ctx.expect("backing_released", unmount_when_released(dir), "ok");
}

fn abort_during_io(ctx: &mut Ctx) -> Result<(), Stop> {
    let (fs, dir) = setup(ctx)?;
    under_io(ctx, &fs, || outcome(&fs.abort().map_err(|e| crate::fuse::errno(&e))))?;
    let _ = rustix::mount::unmount(&fs.mnt, UnmountFlags::DETACH);
    drop(fs);
    expect_released(ctx, &dir);
    Ok(())
}

fn lazy_umount_during_io(ctx: &mut Ctx) -> Result<(), Stop> {
    let (fs, dir) = setup(ctx)?;
    under_io(ctx, &fs, || outcome(&rustix::mount::unmount(&fs.mnt, UnmountFlags::DETACH)))?;
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
    let opener = std::thread::spawn(move || File::open(path).map(drop).map_err(|e| crate::fuse::errno(&e)));
    std::thread::sleep(Duration::from_millis(500));
    ctx.observe("open_still_waiting", !opener.is_finished());
    ctx.expect("abort", outcome(&fs.abort().map_err(|e| crate::fuse::errno(&e))), "ok");
    let opened = opener.join().map_err(|_| Stop::Broken("the opener panicked".into()))?;
    ctx.observe("open_after_abort", outcome(&opened));
    let _ = rustix::mount::unmount(&fs.mnt, UnmountFlags::DETACH);
    drop(fs);
    expect_released(ctx, &dir);
    Ok(())
}
