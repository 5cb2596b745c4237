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
use crate::framework::subject::SourceKind;
use crate::framework::{pattern, Case, Ctx, Stop};

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
            name: "validate.many_files",
            rule: "several files of one mount, each with bytes of its own, opened in an \
      interleaved order and alive at once, one reopened after another inode was opened and \
      closed, a hard link, and one looked up again after the kernel forgot its inode: every \
      byte read through the mount is its own file's in {source}, and every byte written \
      through it is in its own file of {source} after the close",
            verdict_rule: "pass when every file's bytes match its own file in {source} at every \
      step, whether the server passed the I/O through or served it; the reason names the file \
      and the first offset that differs",
            run: many_files,
            ..DEFAULTS
        },
        Case {
            name: "validate.backing_ids_released",
            rule: "after its files are closed and the kernel has forgotten their inodes \
      (FORGET), the server holds no backing id for them: each BACKING_OPEN is matched by a \
      BACKING_CLOSE (a library may keep an id until FORGET, not for ever), and open and close \
      cycles do not grow what the kernel holds",
            verdict_rule: "pass when the blocks of the files, unlinked from {source} once \
      closed and forgotten, all come back to {source}'s tmpfs (statfs), save those the \
      server's own open files hold; where kprobe events exist, also when BACKING_OPENs and \
      BACKING_CLOSEs balance",
            run: backing_ids_released,
            ..DEFAULTS
        },
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
            name: "validate.names",
            rule: "MKDIR, RENAME (plain; RENAME_NOREPLACE onto an existing name; \
      RENAME_EXCHANGE), CREATE, LINK, SYMLINK and READLINK, MKNOD (a FIFO), TMPFILE and the \
      LINK that names it, UNLINK and RMDIR through the mount: each name is in {source} as the \
      answer says, with its file's bytes",
            verdict_rule: "pass when after every acknowledged request {source} holds what it \
      says (a RENAME_NOREPLACE onto an existing name never acknowledged, a LINK the same \
      inode); a request refused with an errno is observed by name, not failed",
            run: super::validate_requests::names,
            ..DEFAULTS
        },
        Case {
            name: "validate.readdir",
            rule: "READDIR (or READDIRPLUS) of a directory of 300 files with long names, a \
      subdirectory, a symlink and a FIFO, listed through the mount with getdents64 (several \
      replies, each continued from an offset), then again after a CREATE and an UNLINK \
      through the mount: the names are {source}'s, `.` and `..` included",
            verdict_rule: "pass when every listing holds each of {source}'s names once and no \
      other, each with its type or DT_UNKNOWN; the reason names what it lacks or adds",
            run: super::validate_requests::readdir,
            ..DEFAULTS
        },
        Case {
            name: "validate.exec",
            rule: "a program in {source} run through the mount (its OPEN carries the kernel's \
      __FMODE_EXEC flag), and a program written through the mount and made executable there",
            verdict_rule: "pass when both run and exit with their status, 42; the reason names \
      the exec's errno",
            run: super::validate_requests::exec,
            ..DEFAULTS
        },
        Case {
            name: "validate.attributes",
            rule: "SETATTR through the mount: two modes, atime and mtime, a symlink's own \
      times (AT_SYMLINK_NOFOLLOW), and owner 1:1; OPEN with O_TRUNC (SETATTR's size is validate.truncate_then_read's)",
            verdict_rule: "pass when {source}'s file has each mode, both times and the owner \
      after the request is acknowledged, and the symlink's times are the link's, its target \
      untouched; a request refused is observed",
            run: super::validate_requests::attributes,
            ..DEFAULTS
        },
        Case {
            name: "validate.fallocate",
            rule: "FALLOCATE through the mount: past the end (the size grows), KEEP_SIZE (it \
      does not), PUNCH_HOLE and ZERO_RANGE in the middle",
            verdict_rule: "pass when every mode acknowledged did to {source}'s file what it \
      says: the size, and zeros in the range alone, read in {source} and through the mount; \
      a mode refused is observed by its errno",
            run: super::validate_requests::fallocate,
            ..DEFAULTS
        },
        Case {
            name: "validate.copy_file_range",
            rule: "copy_file_range between two files of the mount, at offsets inside both \
      (COPY_FILE_RANGE to the server, or the kernel's own copy where it refuses it)",
            verdict_rule: "pass when {source}'s destination file and the one read through the \
      mount hold the source's range at the destination offset and their own bytes \
      elsewhere; the COPY_FILE_RANGE requests the server got are observed",
            run: super::validate_requests::copy_file_range,
            ..DEFAULTS
        },
        Case {
            name: "validate.fallback_scope",
            rule: "one mount, three files: a plain one, one whose \
      BACKING_OPEN the kernel refuses, then a second plain one: every byte is right, and the \
      observation says whether the refusal made the server serve that one file or the whole \
      mount from then on. The refused file's backing file sits on another FUSE passthrough \
      mount bound into {source} (ELOOP at stack depth 1); a server that serves no file across \
      a mount point (libfuse's passthrough_hp) instead makes that one BACKING_OPEN without \
      CAP_SYS_ADMIN in its calling thread's effective set, through the witness preloaded \
      into it (EPERM)",
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
            name: "validate.library_suite",
            rule: "the library's own test suite (libfuse 3.18's test/run-tests.py: its mounts, \
      examples, notifications and unit tests) on the kernel under test, in a VM from a \
      chroot of the host's root shared over virtio-fs",
            verdict_rule: "pass when the suite ran; each of its tests is a result of its own \
      (libfuse_suite.<test>) with the suite's verdict, in the table and every report",
            run: library_suite,
            // The whole suite: about 90 s on this host, minutes under TCG.
            timeout: Duration::from_secs(1500),
            slow: true,
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
    let (one, two, three) = (
        pattern(340, 100_000),
        pattern(341, 100_000),
        pattern(342, 100_000),
    );
    let outcome = match refused_by_depth(ctx, &one, &two, &three) {
        // A server that serves no file across a mount point in {source} (libfuse's
        // passthrough_hp) meets its refusal another way, where the witness is loaded.
        // (A server of one fixed file serves no {source} at all: its skip stands.)
        Err(Stop::Skip(why)) => match ctx.server.as_ref() {
            Some(s) if s.witness.is_some() && s.fixed_file.is_none() => {
                refused_by_witness(ctx, &one, &two, &three)?
            }
            _ => return Err(Stop::Skip(why)),
        },
        other => other?,
    };
    ctx.observe(key::FALLBACK_SCOPE, outcome);
    Ok(())
}

/// The refusal the kernel makes for a backing file too deep: the agent's own passthrough
/// mount (depth 1), its file registered before the server under test starts (so the kprobe
/// counts are the server's alone), bound into {source}; a server at depth 1 is refused a
/// backing file there (ELOOP). Files `plain` and `later` are plain ones around it.
fn refused_by_depth(
    ctx: &mut Ctx,
    one: &[u8],
    two: &[u8],
    three: &[u8],
) -> Result<&'static str, Stop> {
    let stacked = ctx.mount_passthrough(1)?;
    let lower = ctx.own_tmpfs("lower")?.join("f");
    std::fs::write(&lower, three)?;
    stacked.add_passthrough_file_at("f", &lower)?;
    let (fs, first) = ctx.io_file("plain", one)?;
    let source = first.parent().expect("a file in {source}").to_path_buf();
    std::fs::write(source.join("later"), two)?;
    let bind = source.join("stacked");
    std::fs::create_dir(&bind)?;
    rustix::mount::mount_bind(stacked.path(""), &bind)?;

    let outcome = scope(
        ctx,
        &*fs,
        [("plain", one), ("stacked/f", three), ("later", two)],
    );
    // A server that keeps an O_PATH fd per inode it looked up (libfuse's passthrough_hp)
    // holds the bind until it forgets, which the kernel asks only at unmount: a short wait
    // (for a release still on its way), then detach it, so that {source} can be released.
    let unbound = crate::framework::unmount_within(&bind, std::time::Duration::from_millis(300));
    if unbound != "ok" {
        let _ = rustix::mount::unmount(&bind, rustix::mount::UnmountFlags::DETACH);
    }
    ctx.observe(key::UNBIND_STACKED, unbound);
    ctx.keep.push(stacked);
    drop(fs);
    if outcome.is_ok() {
        ctx.observe(
            key::FALLBACK_REFUSAL,
            "ELOOP: a backing file on a stacked mount",
        );
    }
    outcome
}

/// The refusal the kernel makes to a server without CAP_SYS_ADMIN, for one file: the
/// witness in the server makes the BACKING_OPEN of `refused` with the capability out of the
/// calling thread's effective set (`$FPT_REFUSE_BACKING`), so the kernel answers EPERM for
/// that file alone while the server's other opens are granted.
fn refused_by_witness(
    ctx: &mut Ctx,
    one: &[u8],
    two: &[u8],
    three: &[u8],
) -> Result<&'static str, Stop> {
    let mut spec = ctx
        .server
        .clone()
        .expect("validate cases run with a server");
    spec.env
        .push(("FPT_REFUSE_BACKING".into(), "refused".into()));
    let source = ctx.own_tmpfs("source-refusing")?;
    for (name, bytes) in [("plain", one), ("refused", three), ("later", two)] {
        std::fs::write(source.join(name), bytes)?;
    }
    let work = ctx.scratch("server-refusing")?;
    let fs =
        crate::framework::subject::External::start(&spec, &source, &work, ctx.teardown.clone())?;
    let outcome = scope(
        ctx,
        &fs,
        [("plain", one), ("refused", three), ("later", two)],
    )?;
    use crate::framework::subject::Subject;
    let seen = fs.witness().unwrap_or_default();
    drop(fs);
    // A server that asks for no backing file meets no refusal: nothing to fall back from.
    if outcome.starts_with("no passthrough") {
        return Ok(outcome);
    }
    // Otherwise the refusal must have happened, and been the kernel's, or the scope says
    // nothing (a rule the harness keeps, whether the server served the path or not).
    let refused = !seen.refused.is_empty() && seen.open_errors.iter().any(|e| e == "EPERM");
    ctx.require(
        refused,
        format!(
            "the witness was to have the kernel refuse the BACKING_OPEN of `refused`, but it \
             saw refusals of {:?} and refused opens {:?}",
            seen.refused, seen.open_errors
        ),
    );
    ctx.observe(
        key::FALLBACK_REFUSAL,
        "EPERM: one BACKING_OPEN made without CAP_SYS_ADMIN",
    );
    Ok(outcome)
}

/// Reads three files in turn, the middle one's BACKING_OPEN refused, and says from the READ
/// requests each cost which files fell back to the server.
fn scope(
    ctx: &mut Ctx,
    fs: &dyn crate::framework::subject::Subject,
    files: [(&str, &[u8]); 3],
) -> Result<&'static str, Stop> {
    use crate::fuse::abi::op;
    let mut served = Vec::new();
    for (name, want) in files {
        let before = fs.requests(op::READ);
        let got = match std::fs::read(fs.path(name)) {
            Ok(g) => g,
            // libfuse's passthrough_hp serves no file across a mount point in {source}
            // (EOPNOTSUPP): a choice. EIO is no choice: the open the kernel was answered
            // failed, which after a refused BACKING_OPEN means the server did not fall back.
            Err(e) => {
                let errno = crate::sys::outcome(&Err::<(), _>(crate::fuse::errno(&e)));
                if errno == "EIO" {
                    return Err(Stop::Broken(format!(
                        "reading {name} gives EIO: after a refused BACKING_OPEN the server's \
                         open reply failed instead of falling back to serving the file"
                    )));
                }
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
        served.push(fs.requests(op::READ).zip(before).map(|(a, b)| a - b));
    }
    Ok(match served[..] {
        [Some(p), _, _] if p > 0 => "no passthrough: the first plain file was served",
        [Some(_), Some(0), _] => "none needed: the refused file passed through",
        [Some(_), Some(_), Some(0)] => "file: only the refused file was served",
        [Some(_), Some(_), Some(_)] => "mount: every file opened after the refusal was served",
        _ => "unknown: no fuse tracepoint here",
    })
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
    let fs = crate::framework::subject::External::start_unprivileged(
        &spec,
        &source,
        &work,
        ctx.teardown.clone(),
    )?;
    use crate::framework::subject::Subject;
    crate::framework::fixtures::round_trip(ctx, &fs, &source.join("data"))?;
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
    let fs =
        crate::framework::subject::External::start(&spec, &source, &work, ctx.teardown.clone())?;
    use crate::framework::subject::Subject;
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
    crate::framework::fixtures::round_trip(ctx, &*fs, &backing)?;
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

/// The files of the many-files cases: names, and bytes derived from each name, so that no
/// two files agree at any offset.
fn named_files(sizes: &[(&str, usize)]) -> Vec<(String, Vec<u8>)> {
    sizes
        .iter()
        .map(|&(name, len)| (name.to_string(), pattern(seed_of(name), len)))
        .collect()
}

/// The bytes of `name` among `files`.
fn bytes_of<'a>(files: &'a [(String, Vec<u8>)], name: &str) -> &'a [u8] {
    files
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, b)| b.as_slice())
        .expect("one of the case's files")
}

/// A seed from a file's name.
fn seed_of(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// Where `got` first differs from `want`, as a reason: "file b: ... at offset N".
fn first_difference(name: &str, what: &str, got: &[u8], want: &[u8]) -> Option<String> {
    if got == want {
        return None;
    }
    let at = got
        .iter()
        .zip(want)
        .position(|(a, b)| a != b)
        .unwrap_or(got.len().min(want.len()));
    Some(format!(
        "file {name}: {what} differs from its own bytes at offset {at} ({} bytes read, {} expected)",
        got.len(),
        want.len()
    ))
}

/// Read `file` whole from offset 0.
fn read_all(file: &File, len: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    let mut done = 0;
    while done < len {
        match file.read_at(&mut buf[done..], done as u64)? {
            0 => break,
            n => done += n,
        }
    }
    buf.truncate(done);
    Ok(buf)
}

/// Open `name` through the mount; a failure is the server's (its open reply), named with
/// the file and the errno.
fn open_through(
    fs: &dyn crate::framework::subject::Subject,
    name: &str,
    write: bool,
) -> Result<File, Stop> {
    File::options()
        .read(true)
        .write(write)
        .open(fs.path(name))
        .map_err(|e| {
            let errno = rustix::io::Errno::from_io_error(&e)
                .map_or_else(|| e.to_string(), crate::sys::errno_name);
            Stop::Broken(format!(
                "file {name}: open through the mount failed: {errno}"
            ))
        })
}

/// Forget the kernel's unused dentries and inodes (FORGET for the server's), and give the
/// server a moment to act on them.
fn forget_inodes() {
    let _ = std::fs::write("/proc/sys/vm/drop_caches", "2");
    std::thread::sleep(Duration::from_millis(200));
}

fn many_files(ctx: &mut Ctx) -> Result<(), Stop> {
    let files = named_files(&[
        ("a", 70_001),
        ("b", 130_000),
        ("c", 3 * 4096 + 5),
        ("d", 200_000),
        ("e", 50_000),
    ]);
    let (fs, source) = ctx.io_files(&files)?;
    let want = |n: &str| bytes_of(&files, n).to_vec();
    let mut wrong: Vec<String> = Vec::new();
    let compare = |wrong: &mut Vec<String>, name: &str, what: &str, got: &[u8], want: &[u8]| {
        if let Some(why) = first_difference(name, what, got, want) {
            wrong.push(why);
        }
    };

    // Three files alive at once, opened and read in an interleaved order, chunk by chunk.
    let order = ["c", "a", "b"];
    let open: Vec<File> = order
        .iter()
        .map(|n| open_through(&*fs, n, true))
        .collect::<Result<_, _>>()?;
    let mut got: Vec<Vec<u8>> = vec![Vec::new(); order.len()];
    let chunk = 16 * 1024;
    for round in 0.. {
        let mut any = false;
        for (i, f) in open.iter().enumerate() {
            let mut buf = vec![0u8; chunk];
            let n = f.read_at(&mut buf, (round * chunk) as u64)?;
            got[i].extend_from_slice(&buf[..n]);
            any |= n > 0;
        }
        if !any {
            break;
        }
    }
    for (i, name) in order.iter().enumerate() {
        compare(
            &mut wrong,
            name,
            "read while three files were open",
            &got[i],
            &want(name),
        );
    }
    // Writes through each open file, each its own bytes.
    let mut expected: Vec<(String, Vec<u8>)> = files.clone();
    for (i, name) in order.iter().enumerate() {
        let data = pattern(seed_of(name) ^ 0x5555, 5000 + 1000 * i);
        let off = 4096 * (i + 1) - 7;
        open[i].write_all_at(&data, off as u64)?;
        let e = &mut expected.iter_mut().find(|(n, _)| n == name).unwrap().1;
        if e.len() < off + data.len() {
            e.resize(off + data.len(), 0);
        }
        e[off..off + data.len()].copy_from_slice(&data);
    }
    drop(open);

    // Another inode opened and closed, then one of the first reopened.
    let d = open_through(&*fs, "d", false)?;
    compare(
        &mut wrong,
        "d",
        "read after three others were closed",
        &read_all(&d, want("d").len() + 1)?,
        &want("d"),
    );
    drop(d);
    let b_expected = bytes_of(&expected, "b").to_vec();
    let b = open_through(&*fs, "b", false)?;
    compare(
        &mut wrong,
        "b",
        "read when reopened after d",
        &read_all(&b, b_expected.len() + 1)?,
        &b_expected,
    );
    drop(b);

    // A hard link made in {source}: through the mount it is the same bytes.
    std::fs::hard_link(source.join("a"), source.join("a_link"))?;
    let a_expected = bytes_of(&expected, "a").to_vec();
    match open_through(&*fs, "a_link", false) {
        Ok(link) => compare(
            &mut wrong,
            "a_link",
            "read through a hard link of a",
            &read_all(&link, a_expected.len() + 1)?,
            &a_expected,
        ),
        Err(Stop::Broken(why)) => wrong.push(format!("{why} (a hard link of a)")),
        Err(other) => return Err(other),
    }

    // The kernel forgets the inodes; c is looked up and opened again.
    forget_inodes();
    let c_expected = bytes_of(&expected, "c").to_vec();
    let c = open_through(&*fs, "c", false)?;
    compare(
        &mut wrong,
        "c",
        "read after its inode was forgotten and looked up again",
        &read_all(&c, c_expected.len() + 1)?,
        &c_expected,
    );
    drop(c);

    // e replaced in {source} (a new file renamed over it); once the kernel has forgotten the
    // inode, an open through the mount reads the new file, not the one replaced.
    let e = open_through(&*fs, "e", false)?;
    compare(
        &mut wrong,
        "e",
        "read before it was replaced",
        &read_all(&e, 50_001)?,
        &want("e"),
    );
    drop(e);
    let replacement = pattern(seed_of("e") ^ 0xaaaa, 40_000);
    std::fs::write(source.join("e.new"), &replacement)?;
    std::fs::rename(source.join("e.new"), source.join("e"))?;
    forget_inodes();
    let e = open_through(&*fs, "e", false)?;
    compare(
        &mut wrong,
        "e",
        "read after it was replaced in {source}",
        &read_all(&e, 40_001)?,
        &replacement,
    );
    drop(e);
    let expected: Vec<(String, Vec<u8>)> = expected
        .into_iter()
        .map(|(n, b)| {
            if n == "e" {
                (n, replacement.clone())
            } else {
                (n, b)
            }
        })
        .collect();

    // After every close, {source} holds what was written through the mount, file by file.
    for (name, bytes) in &expected {
        let on_disk = std::fs::read(source.join(name))?;
        if let Some(why) = first_difference(name, "{source} after the close", &on_disk, bytes) {
            ctx.require(false, why);
        }
    }
    ctx.observe("files", files.len());
    ctx.check(wrong.is_empty(), wrong.join("; "));
    ctx.expect_bypassed(&*fs);
    Ok(())
}

/// Blocks of `dir`'s file system in use, in KiB.
fn used_kib(dir: &std::path::Path) -> Result<u64, Stop> {
    let st = rustix::fs::statfs(dir)?;
    Ok((st.f_blocks - st.f_bfree) * st.f_bsize as u64 / 1024)
}

/// The KiB of deleted files under `source` that the server process itself still has open.
fn held_by_server(pid: Option<u32>, source: &std::path::Path) -> u64 {
    let Some(pid) = pid else { return 0 };
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return 0;
    };
    let mut seen = std::collections::BTreeSet::new();
    let mut kib = 0;
    for fd in fds.flatten() {
        let Ok(target) = std::fs::read_link(fd.path()) else {
            continue;
        };
        let text = target.to_string_lossy();
        if !(target.starts_with(source) && text.ends_with(" (deleted)")) {
            continue;
        }
        if let Ok(meta) = std::fs::metadata(fd.path()) {
            use std::os::unix::fs::MetadataExt;
            if seen.insert(meta.ino()) {
                kib += meta.blocks() * 512 / 1024;
            }
        }
    }
    kib
}

fn backing_ids_released(ctx: &mut Ctx) -> Result<(), Stop> {
    let names = ["f0", "f1", "f2", "f3"];
    let files = named_files(&names.map(|n| (n, 256 * 1024)));
    let (fs, source) = ctx.io_files(&files)?;
    let files_kib = files.len() as u64 * 256;
    // What a tmpfs holding none of the files uses.
    let bare = used_kib(&source)?.saturating_sub(files_kib);
    // Open and close each file three times, reading through it.
    for _ in 0..3 {
        for (name, bytes) in &files {
            let f = open_through(&*fs, name, false)?;
            let got = read_all(&f, bytes.len())?;
            ctx.check(
                got == *bytes,
                format!("file {name}: read through the mount differs"),
            );
        }
    }
    // Closed; the kernel forgets the inodes (FORGET); the files leave {source}. Their blocks
    // come back unless something still holds them: the server's own open files (its
    // business until FORGET, and seen in /proc), or the kernel, for a backing id the
    // server never closed.
    forget_inodes();
    for name in names {
        std::fs::remove_file(source.join(name))?;
    }
    let (mut by_kernel, mut by_server) = (0, 0);
    for _ in 0..30 {
        let still = used_kib(&source)?.saturating_sub(bare);
        by_server = held_by_server(fs.server_pid(), &source);
        by_kernel = still.saturating_sub(by_server);
        if by_kernel == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    ctx.observe("held_by_server_kib", by_server);
    ctx.require(
        by_kernel == 0,
        format!(
            "{by_kernel} KiB of its files, closed, forgotten and unlinked from {{source}}, are \
             still held by the kernel: the server keeps backing ids it no longer needs \
             (BACKING_OPEN without BACKING_CLOSE)"
        ),
    );
    // The ioctls themselves, where kprobes or the witness in the server count them: every
    // id granted has been closed by now, not only at the server's exit.
    for (who, opens, closes) in fs.backing_ids() {
        ctx.require(
            opens == closes,
            format!(
                "{opens} BACKING_OPENs but {closes} BACKING_CLOSEs once every file was closed \
                 and forgotten ({who}): the server keeps backing ids"
            ),
        );
    }
    ctx.expect_bypassed(&*fs);
    Ok(())
}

/// The library's own suite on this kernel: each test's outcome ("pass", "fail: why",
/// "skip: why") under `library_suite`, for the host to turn into results of their own.
fn library_suite(ctx: &mut Ctx) -> Result<(), Stop> {
    let spec = ctx
        .server
        .clone()
        .expect("validate cases run with a server");
    let Some(suite) = spec.suite.clone() else {
        return Err(Stop::Skip(format!(
            "{} has no test suite of its own that the harness runs (libfuse 3.18's \
             test/run-tests.py is the one it knows)",
            spec.target
        )));
    };
    // Inside the chroot the suite writes here; on the host, in the case's own scratch.
    let run_dir = match &suite.chroot {
        Some(root) => {
            let root = std::path::Path::new(root);
            for dir in ["tmp", "var/tmp", "run"] {
                rustix::mount::mount(
                    "tmpfs",
                    root.join(dir),
                    "tmpfs",
                    rustix::mount::MountFlags::empty(),
                    None,
                )?;
            }
            rustix::mount::mount_bind_recursive("/dev", root.join("dev"))?;
            rustix::mount::mount(
                "proc",
                root.join("proc"),
                "proc",
                rustix::mount::MountFlags::empty(),
                None,
            )?;
            rustix::mount::mount(
                "sysfs",
                root.join("sys"),
                "sysfs",
                rustix::mount::MountFlags::empty(),
                None,
            )?;
            // The runner contains each test in a cgroup of its own where cgroup2 is there.
            let _ = rustix::mount::mount(
                "cgroup2",
                root.join("sys/fs/cgroup"),
                "cgroup2",
                rustix::mount::MountFlags::empty(),
                None,
            );
            std::path::PathBuf::from("/tmp/fpt-suite")
        }
        None => ctx.scratch("suite")?,
    };
    let mut cmd = std::process::Command::new("python3");
    cmd.arg(&suite.runner)
        .arg("--build-dir")
        .arg(&suite.build_dir)
        .arg("--run-dir")
        .arg(&run_dir)
        .arg("-j")
        .arg(
            std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .to_string(),
        )
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .stdin(std::process::Stdio::null());
    if let Some(root) = suite.chroot.clone() {
        use std::os::unix::process::CommandExt;
        // SAFETY: chroot and chdir are async-signal-safe; nothing else runs before exec.
        unsafe {
            cmd.pre_exec(move || {
                std::os::unix::fs::chroot(&root)?;
                std::env::set_current_dir("/")
            });
        }
    }
    let out = cmd
        .output()
        .map_err(|e| Stop::Broken(format!("the suite's runner could not start: {e}")))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let outcomes = suite_outcomes(&text);
    let count = |word: &str| outcomes.values().filter(|o| o.starts_with(word)).count();
    ctx.observe(
        key::LIBRARY_SUITE_TOTALS,
        format!(
            "{} pass, {} fail, {} skip",
            count("pass"),
            count("fail"),
            count("skip")
        ),
    );
    ctx.observe(key::LIBRARY_SUITE, &outcomes);
    ctx.check(
        !outcomes.is_empty(),
        format!(
            "the suite ran no test ({}): {} | {}",
            out.status,
            text.lines().rev().take(3).collect::<Vec<_>>().join(" | "),
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .rev()
                .take(4)
                .collect::<Vec<_>>()
                .join(" | ")
        ),
    );
    Ok(())
}

/// run-tests.py's result lines (`+  29.916s FAIL  examples/cuse   29.91s  exit 1`): each
/// test's outcome, "pass", "fail: why" or "skip: why".
fn suite_outcomes(text: &str) -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::new();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let [plus, _at, status, name, _took, why @ ..] = words.as_slice() else {
            continue;
        };
        if *plus != "+" {
            continue;
        }
        let why = why.join(" ");
        let outcome = match *status {
            "PASS" => "pass".to_string(),
            "FAIL" => format!("fail: {why}"),
            "SKIP" => format!("skip: {why}"),
            _ => continue,
        };
        out.insert(name.to_string(), outcome);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn suite_lines_become_outcomes() {
        let text = "+   0.5s START examples/hello\n\
                    +  29.916s FAIL  examples/cuse        29.91s  exit 1\n\
                    +  86.022s SKIP  notify/prune         0.00s  notify_prune not built\n\
                    +  89.134s PASS  unit/test_abi        0.00s\n\
                    87 tests: 79 passed, 1 failed, 7 skipped in 89.8s (-j2)\n";
        let o = super::suite_outcomes(text);
        assert_eq!(o.len(), 3);
        assert_eq!(o["examples/cuse"], "fail: exit 1");
        assert_eq!(o["notify/prune"], "skip: notify_prune not built");
        assert_eq!(o["unit/test_abi"], "pass");
    }
}
