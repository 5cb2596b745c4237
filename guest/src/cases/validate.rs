//! The `validate` group: the I/O paths of the `io` group, run against the server under test
//! (`cargo xtask validate --server ...`) instead of the agent's own. Each case starts the
//! server on a fresh `{source}` (a tmpfs of its own), runs its I/O through the mount, compares
//! every byte with the file in `{source}`, and then stops the server the way a user would:
//! unmount, the server exits, and `{source}` must then be free (a backing file the library
//! never closed keeps it busy: a leak).
//!
//! Verdicts: the data, and the release. Where the I/O went (READ and WRITE requests on the
//! connection, counted by the kernel's tracepoint) is an observation: whether to use
//! passthrough is the library's choice, and the report shows it per path.

use proto::observation as key;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::time::Duration;

use super::io;
use crate::case::subject::SourceKind;
use crate::case::{pattern, Case, Ctx, Stop};

/// What every validate case shares.
const DEFAULTS: Case = Case {
    verdict_rule: "pass when every byte read back matches, when the I/O passed through also with \
                   the file in {source} at every step (a served path's cache may lag {source}: \
                   an observation), and when {source} is released after the unmount and the \
                   server's exit; where the I/O went is an observation",
    timeout: Duration::from_secs(40),
    external_server: true,
    ..Case::DEFAULT
};

/// One validate case per I/O path, each running an `io` function (or one of its own) on
/// the server under test.
pub fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "validate.round_trip",
            rule: "writes through the mount land in {source} and writes to {source} \
      are read through the mount, at several offsets and sizes",
            run: io::passthrough_round_trip,
            ..DEFAULTS
        },
        Case {
            name: "validate.readv_writev",
            rule: "writev and preadv through the mount",
            run: io::readv_writev,
            ..DEFAULTS
        },
        Case {
            name: "validate.append",
            rule: "O_APPEND writes land at the end",
            run: io::append,
            ..DEFAULTS
        },
        Case {
            name: "validate.direct",
            rule: "O_DIRECT reads and writes",
            run: io::direct,
            ..DEFAULTS
        },
        Case {
            name: "validate.aio",
            rule: "Linux AIO reads and writes",
            run: io::aio,
            ..DEFAULTS
        },
        Case {
            name: "validate.io_uring",
            rule: "io_uring reads and writes",
            run: io::io_uring,
            ..DEFAULTS
        },
        Case {
            name: "validate.splice_in",
            rule: "splice from a pipe into the file",
            run: io::splice_in,
            ..DEFAULTS
        },
        Case {
            name: "validate.splice_out",
            rule: "splice from the file into a pipe",
            run: io::splice_out,
            ..DEFAULTS
        },
        Case {
            name: "validate.sendfile",
            rule: "sendfile from the file",
            run: io::sendfile,
            ..DEFAULTS
        },
        Case {
            name: "validate.mmap_shared",
            rule: "a shared mapping: stores reach {source}",
            run: io::mmap_shared,
            ..DEFAULTS
        },
        Case {
            name: "validate.mmap_private",
            rule: "a private mapping: stores stay private",
            run: io::mmap_private,
            ..DEFAULTS
        },
        Case {
            name: "validate.large_file",
            rule: "a 64 MiB file written and read back",
            run: io::large_file,
            ..DEFAULTS
        },
        Case {
            name: "validate.sparse_and_eof",
            rule: "holes read as zeros, reads stop at the end",
            run: io::sparse_and_eof,
            ..DEFAULTS
        },
        Case {
            name: "validate.extending_write_size",
            rule: "an extending write, then stat: the new size",
            run: io::extending_write_size,
            ..DEFAULTS
        },
        Case {
            name: "validate.truncate_then_read",
            rule: "truncate, regrow, read: zeros where it was cut",
            run: io::truncate_then_read,
            ..DEFAULTS
        },
        Case {
            name: "validate.concurrent",
            rule: "four threads writing and reading their own regions at once",
            run: io::concurrent,
            ..DEFAULTS
        },
        Case {
            name: "validate.create_then_write",
            rule: "a file created through the mount, then written",
            run: create_then_write,
            ..DEFAULTS
        },
        Case {
            name: "validate.opened_twice",
            rule: "the same file opened twice: a write through one fd is read \
      through the other",
            run: opened_twice,
            ..DEFAULTS
        },
        Case {
            name: "validate.fallback_scope",
            rule: "one mount, three files: a plain one, one whose \
      backing file sits on another FUSE passthrough mount (BACKING_OPEN gives ELOOP at stack \
      depth 1), then a second plain one: every byte is right, and the observation says whether \
      the refusal made the server serve that one file or the whole mount from then on",
            run: fallback_scope,
            ..DEFAULTS
        },
        Case {
            name: "validate.without_cap_sys_admin",
            rule: "the server started without CAP_SYS_ADMIN (dropped from \
      its bounding set; the agent mounts and hands it /dev/fd/N, as fusermount does): \
      BACKING_OPEN needs the capability, so no I/O passes through, and every byte through the \
      mount is still right",
            run: without_cap_sys_admin,
            ..DEFAULTS
        },
        Case {
            name: "validate.fixed_file",
            rule: "for a server that serves one file of its own (fuser's \
      examples/passthrough.rs): the file read through the mount, whole and at offsets, is its \
      backing file",
            run: fixed_file,
            ..DEFAULTS
        },
        Case {
            name: "validate.server_killed_with_open_files",
            rule: "the server is killed (SIGKILL) while a file is \
      open and mapped through its mount: I/O on it returns, nothing hangs, and {source} is \
      released after the close and the unmount",
            run: server_killed_with_open_files,
            ..DEFAULTS
        },
        Case {
            name: "validate.unmount_with_open_files",
            rule: "the mount is unmounted while a file is open (EBUSY, then \
      umount -l): I/O on the open file returns, and {source} is released after the close and \
      the server's exit",
            run: unmount_with_open_files,
            ..DEFAULTS
        },
        Case {
            name: "validate.source_on_ext4",
            rule: "the round trip with {source} on ext4 (a loop device)",
            run: source_on_ext4,
            ..DEFAULTS
        },
        Case {
            name: "validate.source_on_overlay",
            rule: "the round trip with {source} on overlayfs (stack depth 1): \
      what the library does if BACKING_OPEN gives ELOOP",
            run: source_on_overlay,
            ..DEFAULTS
        },
        Case {
            name: "validate.source_on_fuse",
            rule: "the round trip with {source} on another FUSE passthrough mount \
      (stack depth 1): what the library does if BACKING_OPEN gives ELOOP",
            run: source_on_fuse,
            ..DEFAULTS
        },
    ]
}

fn create_then_write(ctx: &mut Ctx) -> Result<(), Stop> {
    let (fs, source) = ctx.io_file("seed", b"")?;
    let source = source.parent().expect("a file in {source}").join("created");
    let data = pattern(300, 200_000);
    let file = File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(fs.path("created"))?;
    file.write_all_at(&data, 0)?;
    drop(file);
    let back = std::fs::read(&source)?;
    ctx.check(back == data, "the created file in {source} differs");
    let again = std::fs::read(fs.path("created"))?;
    ctx.check(again == data, "reading the created file back differs");
    ctx.observe("bytes", data.len());
    ctx.expect_bypassed(&*fs);
    Ok(())
}

fn opened_twice(ctx: &mut Ctx) -> Result<(), Stop> {
    let (fs, source) = ctx.io_file("f", &pattern(310, 100_000))?;
    let one = File::options().read(true).write(true).open(fs.path("f"))?;
    let two = File::options().read(true).write(true).open(fs.path("f"))?;
    let data = pattern(311, 30_000);
    one.write_all_at(&data, 5000)?;
    let mut back = vec![0u8; data.len()];
    two.read_exact_at(&mut back, 5000)?;
    ctx.check(
        back == data,
        "a write through one fd is not read through the other",
    );
    let on_disk = std::fs::read(&source)?;
    ctx.check(on_disk[5000..35_000] == data[..], "{source} differs");
    ctx.expect_bypassed(&*fs);
    Ok(())
}

fn fallback_scope(ctx: &mut Ctx) -> Result<(), Stop> {
    use crate::fuse::abi::op;
    let (one, two, three) = (
        pattern(340, 100_000),
        pattern(341, 100_000),
        pattern(342, 100_000),
    );
    // The agent's own passthrough mount (depth 1), its file registered before the server
    // under test starts (so the kprobe counts are the server's alone), then bound into
    // {source}: a server at depth 1 is refused a backing file there.
    let stacked = ctx.mount_passthrough(1)?;
    let lower = ctx.own_tmpfs("lower")?.join("f");
    std::fs::write(&lower, &three)?;
    stacked.add_passthrough_file_at("f", &lower)?;
    let (fs, first) = ctx.io_file("plain", &one)?;
    let source = first.parent().expect("a file in {source}").to_path_buf();
    std::fs::write(source.join("later"), &two)?;
    let bind = source.join("stacked");
    std::fs::create_dir(&bind)?;
    rustix::mount::mount_bind(stacked.path(""), &bind)?;

    let reads = |fs: &dyn crate::case::subject::Subject| fs.requests(op::READ);
    let read = |ctx: &mut Ctx, name: &str, want: &[u8]| -> Result<Option<u64>, Stop> {
        let before = reads(&*fs);
        let got = std::fs::read(fs.path(name));
        let got = match got {
            Ok(g) => g,
            // libfuse's passthrough_hp serves no file across a mount point in {source}.
            Err(e) => {
                let errno = crate::sys::outcome(&Err::<(), _>(crate::fuse::errno(&e)));
                return Err(Stop::Skip(format!(
                    "the server does not serve a file on another mount inside {{source}}: \
                     reading {name} gives {errno}"
                )));
            }
        };
        ctx.check(
            got == want,
            format!("{name} read through the mount differs"),
        );
        Ok(reads(&*fs).zip(before).map(|(a, b)| a - b))
    };
    let outcome = (|| {
        let plain = read(ctx, "plain", &one)?;
        let stacked = read(ctx, "stacked/f", &three)?;
        let later = read(ctx, "later", &two)?;
        Ok::<_, Stop>(match (plain, stacked, later) {
            (Some(p), _, _) if p > 0 => "no passthrough: the first plain file was served",
            (Some(_), Some(0), _) => "none needed: the stacked file passed through",
            (Some(_), Some(_), Some(0)) => "file: only the refused file was served",
            (Some(_), Some(_), Some(_)) => "mount: every file opened after the refusal was served",
            _ => "unknown: no fuse tracepoint here",
        })
    })();
    // A server that keeps an O_PATH fd per inode it looked up (libfuse's passthrough_hp)
    // holds the bind until it forgets: detach it then, so that {source} can be released.
    let unbound = crate::case::unmount_when_released(&bind);
    if unbound != "ok" {
        let _ = rustix::mount::unmount(&bind, rustix::mount::UnmountFlags::DETACH);
    }
    ctx.observe(key::UNBIND_STACKED, unbound);
    ctx.keep.push(stacked);
    drop(fs);
    ctx.observe(key::FALLBACK_SCOPE, outcome?);
    Ok(())
}

fn without_cap_sys_admin(ctx: &mut Ctx) -> Result<(), Stop> {
    use crate::fuse::abi::op;
    let spec = ctx
        .server
        .clone()
        .expect("validate cases run with a server");
    if spec.fixed_file.is_some() {
        return ctx.io_file("x", b"").map(drop);
    }
    let source = ctx.own_tmpfs("source")?;
    let data = pattern(350, 300_000);
    std::fs::write(source.join("data"), &data)?;
    let work = ctx.scratch("server")?;
    let fs = crate::case::subject::External::start_unprivileged(
        &spec,
        &source,
        &work,
        ctx.teardown.clone(),
    )?;
    use crate::case::subject::Subject;
    crate::case::fixtures::round_trip(ctx, &fs, &source.join("data"))?;
    // The kernel's rule, where its tracepoint can tell: without the capability nothing is
    // passed through, so every read reached the server.
    if let Some(reads) = fs.requests(op::READ) {
        ctx.check(
            reads > 0,
            "I/O passed through although the server had no CAP_SYS_ADMIN",
        );
    }
    Ok(())
}

fn fixed_file(ctx: &mut Ctx) -> Result<(), Stop> {
    let spec = ctx
        .server
        .clone()
        .expect("validate cases run with a server");
    let Some(fixed) = spec.fixed_file.clone() else {
        return Err(Stop::Skip(
            "the server serves {source}: the other cases test it".into(),
        ));
    };
    let backing = std::path::Path::new(&fixed.backing);
    if !backing.exists() {
        // In the guest the root is the initramfs: give the server the file it names.
        if let Some(dir) = backing.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(backing, pattern(330, 5000))?;
    }
    let expected = std::fs::read(backing)?;
    let source = ctx.own_tmpfs("source")?;
    let work = ctx.scratch("server")?;
    let fs = crate::case::subject::External::start(&spec, &source, &work, ctx.teardown.clone())?;
    use crate::case::subject::Subject;
    let path = fs.path(&fixed.name);
    let whole =
        std::fs::read(&path).map_err(|e| Stop::Broken(format!("read {}: {e}", path.display())))?;
    ctx.check(
        whole == expected,
        "the file read through the mount is not its backing file",
    );
    ctx.observe("bytes", whole.len());
    let file = File::open(&path)?;
    for offset in [
        0u64,
        1,
        4095,
        4096,
        (expected.len() as u64).saturating_sub(10),
    ] {
        let mut buf = vec![0u8; 100];
        let n = file.read_at(&mut buf, offset)?;
        let want = &expected[(offset as usize).min(expected.len())..];
        let want = &want[..want.len().min(100)];
        ctx.check(&buf[..n] == want, format!("the read at {offset} differs"));
    }
    drop(file);
    ctx.expect_bypassed(&fs);
    Ok(())
}

/// The round trip with `{source}` on `source`. A server that cannot open the file there at
/// all (libfuse's passthrough_hp needs file handles, which overlayfs gives only with
/// nfs_export) does not serve that layout: a skip with its errno, not a data failure.
fn on(ctx: &mut Ctx, source: SourceKind) -> Result<(), Stop> {
    ctx.source = source;
    let (fs, backing) = ctx.io_file("data", &[])?;
    let opened = File::options().read(true).write(true).open(fs.path("data"));
    let outcome = crate::sys::outcome(&opened.as_ref().map(drop).map_err(crate::fuse::errno));
    ctx.observe(key::OPEN_THROUGH_MOUNT, &outcome);
    if opened.is_err() {
        return Err(Stop::Skip(format!(
            "the server does not serve a {{source}} on {source:?}: open gives {outcome}"
        )));
    }
    drop(opened);
    crate::case::fixtures::round_trip(ctx, &*fs, &backing)?;
    ctx.expect_bypassed(&*fs);
    Ok(())
}

fn source_on_ext4(ctx: &mut Ctx) -> Result<(), Stop> {
    on(ctx, SourceKind::Ext4)
}

fn source_on_overlay(ctx: &mut Ctx) -> Result<(), Stop> {
    on(ctx, SourceKind::Overlay)
}

fn source_on_fuse(ctx: &mut Ctx) -> Result<(), Stop> {
    on(ctx, SourceKind::Fuse)
}

/// I/O on an open file whose server or mount is gone: its outcome, never a hang.
fn io_outcomes(ctx: &mut Ctx, file: &File, map: Option<&[u8]>) {
    let mut buf = [0u8; 4096];
    let read = file
        .read_at(&mut buf, 0)
        .map_err(|e| crate::fuse::errno(&e));
    ctx.observe("read_after", crate::sys::outcome(&read));
    let wrote = file
        .write_at(&pattern(320, 4096), 8192)
        .map_err(|e| crate::fuse::errno(&e));
    ctx.observe("write_after", crate::sys::outcome(&wrote));
    if let Some(map) = map {
        // A page fault through the mapping: passthrough's goes to {source}'s file.
        ctx.observe("mapped_byte_after", map[100]);
    }
}

fn server_killed_with_open_files(ctx: &mut Ctx) -> Result<(), Stop> {
    let data = pattern(321, 1 << 20);
    let (mut fs, _) = ctx.io_file("f", &data)?;
    let file = File::options().read(true).write(true).open(fs.path("f"))?;
    // SAFETY: a shared read-only mapping of 1 MiB of an open file, unmapped below.
    let map = unsafe {
        rustix::mm::mmap(
            std::ptr::null_mut(),
            1 << 20,
            rustix::mm::ProtFlags::READ,
            rustix::mm::MapFlags::SHARED,
            &file,
            0,
        )
    };
    let map = map.map_err(|e| Stop::Broken(format!("mmap: {e}")))?;
    // SAFETY: the mapping above is 1 MiB long and lives until the munmap below.
    let bytes = unsafe { std::slice::from_raw_parts(map as *const u8, 1 << 20) };
    ctx.check(
        bytes[..4096] == data[..4096],
        "the mapping shows other bytes",
    );
    ctx.check(fs.kill_server(), "the server could not be killed");
    io_outcomes(ctx, &file, Some(bytes));
    // SAFETY: unmapping exactly the mapping made above; `bytes` is not used after.
    unsafe { rustix::mm::munmap(map, 1 << 20) }
        .map_err(|e| Stop::Broken(format!("munmap: {e}")))?;
    drop(file);
    Ok(())
}

fn unmount_with_open_files(ctx: &mut Ctx) -> Result<(), Stop> {
    let (fs, _) = ctx.io_file("f", &pattern(322, 1 << 20))?;
    let file = File::options().read(true).write(true).open(fs.path("f"))?;
    let mountpoint = fs.path("");
    let busy = rustix::mount::unmount(&mountpoint, rustix::mount::UnmountFlags::empty());
    ctx.expect("umount_while_open", crate::sys::outcome(&busy), "EBUSY");
    let lazy = rustix::mount::unmount(&mountpoint, rustix::mount::UnmountFlags::DETACH);
    ctx.expect("umount_lazy", crate::sys::outcome(&lazy), "ok");
    io_outcomes(ctx, &file, None);
    drop(file);
    Ok(())
}
