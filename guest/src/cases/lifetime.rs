//! How long the kernel holds a backing file. The observable: a backing file on a tmpfs of
//! its own keeps that tmpfs busy (umount gives EBUSY) while the kernel still holds it.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::mount::UnmountFlags;

use crate::framework::{pattern, unmount_when_released, Case, Ctx, Stop};
use crate::fuse::{FuseFs, OpenReply, ServerProcess};
use crate::sys::outcome;

/// What the cases of this group share.
const DEFAULTS: Case = Case {
    timeout: Duration::from_secs(15),
    ..Case::DEFAULT
};

pub fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "lifetime.outlives_server_fd",
            rule: "the registered file outlives the server's own fd: I/O \
              keeps working after the server closed it",
            verdict_rule: "pass when data round-trips with 0 READ/WRITE",
            run: outlives_server_fd,
            ..DEFAULTS
        },
        Case {
            name: "lifetime.io_after_backing_close",
            rule: "I/O keeps working after BACKING_CLOSE while a \
              passthrough file is open",
            verdict_rule: "pass when data round-trips after the close",
            run: io_after_backing_close,
            ..DEFAULTS
        },
        Case {
            name: "lifetime.released_after_close_and_release",
            rule: "the backing file is released only when \
              the id is closed AND the last passthrough file is released",
            verdict_rule: "pass on EBUSY, EBUSY, \
              then ok for umount of the backing tmpfs",
            run: released_after_close_and_release,
            ..DEFAULTS
        },
        Case {
            name: "lifetime.released_at_connection_end",
            rule: "ids never closed are released when the \
              connection ends (unmount and /dev/fuse closed)",
            verdict_rule: "pass when the backing tmpfs is busy \
              before and unmountable after",
            run: released_at_connection_end,
            ..DEFAULTS
        },
        Case {
            name: "lifetime.abort_with_open_files",
            rule: "aborting the connection (fusectl abort) while \
              passthrough files are open and mapped: read, write and the mapping go on \
              (they need no server), open and stat give ENOTCONN, and everything is released",
            verdict_rule: "pass when read and write succeed, the mapping still shows the \
              data, open and stat give ENOTCONN, nothing hangs and the backing tmpfs is \
              unmountable once the files are closed",
            run: abort_with_open_files,
            ..DEFAULTS
        },
        Case {
            name: "lifetime.server_exit_with_open_files",
            rule: "the server process exiting (SIGKILL) while \
              passthrough files are open and mapped: read, write and the mapping go on \
              (they need no server), open and stat give ENOTCONN, and everything is released",
            verdict_rule: "pass when read and write succeed, the mapping still shows the \
              data, open and stat give ENOTCONN, nothing hangs and the backing tmpfs is \
              unmountable once the files are closed",
            run: server_exit_with_open_files,
            ..DEFAULTS
        },
        Case {
            name: "lifetime.fusectl_backing_files",
            rule: "the proposed fusectl backing_files file lists each \
              registered id and path (\"%5u: <path>\")",
            verdict_rule: "pass when its lines match; skip where the \
              file does not exist (not in mainline)",
            run: fusectl_backing_files,
            ..DEFAULTS
        },
    ]
}

/// A passthrough fs serving "f" from a file on `dir`, the server's own fd already closed.
fn serve_from(ctx: &mut Ctx, dir: &Path, data: &[u8]) -> Result<(FuseFs, PathBuf, i32), Stop> {
    let fs = ctx.mount_passthrough(1)?;
    let path = dir.join("f");
    std::fs::write(&path, data)?;
    let id = fs.add_passthrough_file_at("f", &path)?;
    fs.drop_server_fd("f");
    Ok((fs, path, id))
}

/// Try to unmount `dir` once (not lazily): "ok" or the errno.
fn umount_probe(dir: &Path) -> String {
    outcome(&rustix::mount::unmount(dir, UnmountFlags::empty()))
}

fn outlives_server_fd(ctx: &mut Ctx) -> Result<(), Stop> {
    let dir = ctx.own_tmpfs("b")?;
    let (fs, path, _) = serve_from(ctx, &dir, &[])?;
    let file = File::options().read(true).write(true).open(fs.path("f"))?;
    let data = pattern(100, 50_000);
    file.write_all_at(&data, 10)?;
    let mut back = vec![0u8; data.len()];
    file.read_exact_at(&mut back, 10)?;
    ctx.check(back == data, "read back other bytes");
    ctx.check(
        std::fs::read(&path)?[10..] == data[..],
        "the backing file lacks the data",
    );
    ctx.expect_bypassed(&fs);
    Ok(())
}

fn io_after_backing_close(ctx: &mut Ctx) -> Result<(), Stop> {
    let dir = ctx.own_tmpfs("b")?;
    let (fs, path, id) = serve_from(ctx, &dir, &pattern(101, 4096))?;
    let file = File::options().read(true).write(true).open(fs.path("f"))?;
    ctx.expect("backing_close", outcome(&fs.backing_close(id)), "ok");
    let data = pattern(102, 4096);
    file.write_all_at(&data, 4096)?;
    let mut back = vec![0u8; 8192];
    file.read_exact_at(&mut back, 0)?;
    ctx.check(
        back[..4096] == pattern(101, 4096)[..] && back[4096..] == data[..],
        "read back other bytes",
    );
    ctx.check(
        std::fs::read(&path)?[4096..] == data[..],
        "the backing file lacks the data",
    );
    ctx.expect_bypassed(&fs);
    Ok(())
}

fn released_after_close_and_release(ctx: &mut Ctx) -> Result<(), Stop> {
    let dir = ctx.own_tmpfs("b")?;
    let (fs, _path, id) = serve_from(ctx, &dir, b"data")?;
    let file = File::open(fs.path("f"))?;
    ctx.expect("umount_with_id_and_file", umount_probe(&dir), "EBUSY");
    fs.backing_close(id)?;
    ctx.expect("umount_with_file_only", umount_probe(&dir), "EBUSY");
    drop(file);
    let last = unmount_when_released(&dir);
    ctx.expect("umount_after_both", last, "ok");
    Ok(())
}

fn released_at_connection_end(ctx: &mut Ctx) -> Result<(), Stop> {
    let dir = ctx.own_tmpfs("b")?;
    let (fs, _path, _id) = serve_from(ctx, &dir, b"data")?;
    ctx.expect("umount_with_id", umount_probe(&dir), "EBUSY");
    ctx.expect("fuse_unmount", outcome(&fs.shutdown()), "ok");
    let last = unmount_when_released(&dir);
    ctx.expect("umount_after_connection_end", last, "ok");
    Ok(())
}

fn abort_with_open_files(ctx: &mut Ctx) -> Result<(), Stop> {
    let dir = ctx.own_tmpfs("b")?;
    let data = pattern(103, 8192);
    let (fs, _path, _id) = serve_from(ctx, &dir, &data)?;
    let abort = || outcome(&fs.abort().map_err(|e| crate::fuse::errno(&e)));
    let aborted = open_and_mapped_through(ctx, &fs.path("f"), &data, "abort", abort)?;
    ctx.check(
        aborted == "ok",
        format!("abort: expected ok, got {aborted}"),
    );
    let _ = rustix::mount::unmount(&fs.mnt, UnmountFlags::DETACH);
    drop(fs);
    ctx.expect("backing_released", unmount_when_released(&dir), "ok");
    Ok(())
}

fn server_exit_with_open_files(ctx: &mut Ctx) -> Result<(), Stop> {
    let dir = ctx.own_tmpfs("b")?;
    let data = pattern(104, 8192);
    std::fs::write(dir.join("f"), &data)?;
    let server_dir = ctx.scratch("server")?;
    let mut server = ServerProcess::spawn_passthrough(&server_dir, "f", &dir.join("f"))?
        .ok_or_else(|| Stop::Skip(crate::framework::NO_PASSTHROUGH.into()))?;
    let mnt = server.mnt.clone();
    let exit =
        open_and_mapped_through(ctx, &mnt.join("f"), &data, "server_exit", || server.kill())?;
    ctx.check(exit == "killed by SIGKILL", format!("server_exit: {exit}"));
    let _ = rustix::mount::unmount(&mnt, UnmountFlags::DETACH);
    ctx.expect("backing_released", unmount_when_released(&dir), "ok");
    Ok(())
}

/// Open `path` (a passthrough file holding `data`) and map it, do `fault` (observed as
/// `fault_key`), then record what the mapping, read, write, open and stat give afterwards.
/// Everything is closed again on return; returns the fault's outcome.
fn open_and_mapped_through(
    ctx: &mut Ctx,
    path: &Path,
    data: &[u8],
    fault_key: &str,
    fault: impl FnOnce() -> String,
) -> Result<String, Stop> {
    use rustix::mm::{MapFlags, ProtFlags};
    use std::os::fd::AsFd;
    let errno = |e: std::io::Error| crate::fuse::errno(&e);
    let file = File::options().read(true).write(true).open(path)?;
    let len = data.len();
    // SAFETY: a shared read-only mapping of `len` bytes; unmapped below.
    let map = unsafe {
        rustix::mm::mmap(
            std::ptr::null_mut(),
            len,
            ProtFlags::READ,
            MapFlags::SHARED,
            file.as_fd(),
            0,
        )?
    };
    let fault_outcome = fault();
    ctx.observe(fault_key, &fault_outcome);
    // SAFETY: the mapping is `len` readable bytes.
    let mapped_ok = unsafe { std::slice::from_raw_parts(map as *const u8, len) } == data;
    // The rule: I/O on what is open goes on without the server; what needs it does not.
    ctx.observe("mapping_still_shows_data", mapped_ok);
    ctx.check(
        mapped_ok,
        format!("the mapping lost its data after {fault_key}"),
    );
    let mut buf = vec![0u8; 4096];
    ctx.expect(
        &format!("read_after_{fault_key}"),
        outcome(&file.read_at(&mut buf, 0).map_err(errno)),
        "ok",
    );
    ctx.expect(
        &format!("write_after_{fault_key}"),
        outcome(&file.write_at(b"x", 0).map_err(errno)),
        "ok",
    );
    ctx.expect(
        &format!("open_after_{fault_key}"),
        outcome(&File::open(path).map(drop).map_err(errno)),
        "ENOTCONN",
    );
    ctx.expect(
        &format!("stat_after_{fault_key}"),
        outcome(&std::fs::metadata(path).map(drop).map_err(errno)),
        "ENOTCONN",
    );
    // SAFETY: unmapping what was mapped above.
    unsafe { rustix::mm::munmap(map, len)? };
    Ok(fault_outcome)
}

fn fusectl_backing_files(ctx: &mut Ctx) -> Result<(), Stop> {
    let fs = ctx.mount_passthrough(1)?;
    let listing = crate::fuse::fusectl()?
        .join(fs.connection()?.to_string())
        .join("backing_files");
    if !listing.exists() {
        return Err(Stop::Skip(
            "this kernel has no fusectl backing_files file (proposed, not merged)".into(),
        ));
    }
    let a = fs.add_file("a", b"a", OpenReply::CACHED)?;
    let b = fs.add_file("b", b"b", OpenReply::CACHED)?;
    let ids = [fs.backing_open_path(&a)?, fs.backing_open_path(&b)?];
    let text = std::fs::read_to_string(&listing)?;
    let want: Vec<String> = ids
        .iter()
        .zip([&a, &b])
        .map(|(id, p)| format!("{id:5}: {}", p.display()))
        .collect();
    let lines: Vec<String> = text.lines().map(String::from).collect();
    ctx.observe("lines", lines.len());
    ctx.check(
        want.iter().all(|w| lines.contains(w)),
        format!("expected lines {want:?}, got {lines:?}"),
    );
    Ok(())
}
