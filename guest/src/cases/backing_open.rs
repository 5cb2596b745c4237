//! FUSE_DEV_IOC_BACKING_OPEN's argument checks: the map, the fd, and what the fd is.
//!
//! Every object a case hands the ioctl lives on a file system the case mounted itself (a
//! tmpfs of its own, a procfs instance of its own) or, for a socket, has a peer that sees
//! its last reference go: a refused BACKING_OPEN must keep nothing, and the release audit
//! (which unmounts what the case mounted without MNT_DETACH: EBUSY while the kernel holds
//! a file there) or the peer's end of file proves it let go.

use std::os::fd::{AsFd, AsRawFd};

use rustix::fs::{Mode, OFlags};

use crate::framework::{Case, Ctx, Stop};
use crate::fuse::abi::BackingMap;
use crate::sys::outcome;

/// Non-regular files are refused since 6.17, backported to 6.12.48 (and 6.16.y).
const NON_REGULAR_FIX: &[(u32, u32, u32)] = &[(6, 12, 48), (6, 17, 0)];

/// What the cases of this group share.
const DEFAULTS: Case = Case { ..Case::DEFAULT };

pub fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "backing_open.flags_nonzero",
            rule: "fuse_backing_map.flags must be 0",
            verdict_rule: "pass on EINVAL",
            run: flags_nonzero,
            ..DEFAULTS
        },
        Case {
            name: "backing_open.padding_nonzero",
            rule: "fuse_backing_map.padding must be 0 (a non-zero one was \
              accepted before 6.9)",
            verdict_rule: "pass on EINVAL",
            run: padding_nonzero,
            ..DEFAULTS
        },
        Case {
            name: "backing_open.closed_fd",
            rule: "an fd that is not open gives EBADF",
            verdict_rule: "pass on EBADF",
            run: closed_fd,
            ..DEFAULTS
        },
        Case {
            name: "backing_open.o_path_fd",
            rule: "an O_PATH fd of a regular file is accepted from 6.12 (EBADF \
              before)",
            verdict_rule: "pass on ok from 6.12, EBADF before",
            run: o_path_fd,
            ..DEFAULTS
        },
        Case {
            name: "backing_open.directory",
            rule: "a directory is refused with EISDIR (since 6.17 and 6.12.48)",
            verdict_rule:
                "pass on EISDIR on a fixed kernel; success on an older one is the known bug",
            run: directory,
            ..DEFAULTS
        },
        Case {
            name: "backing_open.fifo",
            rule: "a FIFO is refused with EINVAL (since 6.17 and 6.12.48)",
            verdict_rule:
                "pass on EINVAL on a fixed kernel; success on an older one is the known bug",
            run: fifo,
            ..DEFAULTS
        },
        Case {
            name: "backing_open.socket",
            rule: "a socket is refused with EINVAL (since 6.17 and 6.12.48), and keeps no \
              reference: once its fd is closed its peer reads end of file",
            verdict_rule:
                "pass on EINVAL and the peer's end of file on a fixed kernel; success on an \
                 older one is the known bug",
            run: socket,
            ..DEFAULTS
        },
        Case {
            name: "backing_open.char_device",
            rule: "a character device (/dev/null's number, a node on the case's own \
              tmpfs) is refused with EINVAL (since 6.17 and 6.12.48)",
            verdict_rule: "pass on EINVAL on a fixed kernel",
            run: char_device,
            ..DEFAULTS
        },
        Case {
            name: "backing_open.o_path_fifo",
            rule: "a FIFO through an O_PATH fd is refused too (the route \
              of the original bug)",
            verdict_rule: "pass on EINVAL on a fixed kernel",
            run: o_path_fifo,
            ..DEFAULTS
        },
        Case {
            name: "backing_open.proc_file",
            rule: "a /proc file (on a procfs instance the case mounts) is a regular file \
              to the check: what the kernel does is recorded",
            verdict_rule: "pass unless the ioctl hangs or crashes (observation)",
            run: proc_file,
            ..DEFAULTS
        },
        Case {
            name: "backing_open.before_mount",
            rule: "BACKING_OPEN on a /dev/fuse fd not yet attached to a \
              mount gives EPERM",
            verdict_rule: "pass on EPERM",
            run: before_mount,
            ..DEFAULTS
        },
        Case {
            name: "backing_open.ids_not_reused",
            rule: "ids are >= 1 and a closed id is not handed out again \
              at once (cyclic allocation)",
            verdict_rule: "pass when ids are positive and the next id differs \
              from the closed one",
            run: ids_not_reused,
            ..DEFAULTS
        },
    ]
}

/// A passthrough fs, and a regular file (opened read-write) on the case's own tmpfs of
/// objects ([`objects`]), made before the mount so that it is audited after it.
fn setup(ctx: &mut Ctx) -> Result<(crate::fuse::FuseFs, std::fs::File), Stop> {
    let dir = objects(ctx)?;
    let fs = ctx.mount_passthrough(1)?;
    let path = dir.join("f");
    std::fs::write(&path, b"x")?;
    let file = std::fs::File::options().read(true).write(true).open(path)?;
    Ok((fs, file))
}

/// The tmpfs of the case's own that holds what it hands BACKING_OPEN (mounted once).
fn objects(ctx: &mut Ctx) -> Result<std::path::PathBuf, Stop> {
    let dir = ctx.scratch("objects")?;
    if crate::sys::mount_at(&dir)?.is_some() {
        return Ok(dir);
    }
    ctx.own_tmpfs("objects")
}

fn flags_nonzero(ctx: &mut Ctx) -> Result<(), Stop> {
    let (fs, file) = setup(ctx)?;
    let map = BackingMap {
        fd: file.as_raw_fd(),
        flags: 1,
        padding: 0,
    };
    ctx.expect(
        "backing_open",
        outcome(&fs.backing_open_map(&map)),
        "EINVAL",
    );
    Ok(())
}

fn padding_nonzero(ctx: &mut Ctx) -> Result<(), Stop> {
    let (fs, file) = setup(ctx)?;
    let map = BackingMap {
        fd: file.as_raw_fd(),
        flags: 0,
        padding: 1,
    };
    ctx.expect(
        "backing_open",
        outcome(&fs.backing_open_map(&map)),
        "EINVAL",
    );
    Ok(())
}

fn closed_fd(ctx: &mut Ctx) -> Result<(), Stop> {
    let (fs, file) = setup(ctx)?;
    let fd = file.as_raw_fd();
    drop(file);
    let map = BackingMap::of(fd);
    ctx.expect("backing_open", outcome(&fs.backing_open_map(&map)), "EBADF");
    Ok(())
}

fn o_path_fd(ctx: &mut Ctx) -> Result<(), Stop> {
    let (fs, _file) = setup(ctx)?;
    let path = rustix::fs::open(
        objects(ctx)?.join("f"),
        OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let got = outcome(&fs.backing_open(path.as_fd()));
    let expected = if ctx.kernel.at_least(6, 12) {
        "ok"
    } else {
        "EBADF"
    };
    ctx.expect("backing_open", got, expected);
    Ok(())
}

/// Register `fd` and judge it as a non-regular file: `refused_with` on a fixed kernel.
fn non_regular(
    ctx: &mut Ctx,
    fs: &crate::fuse::FuseFs,
    fd: std::os::fd::BorrowedFd<'_>,
    refused_with: &str,
    what: &str,
) {
    let got = outcome(&fs.backing_open(fd));
    if ctx.kernel.has_fix(NON_REGULAR_FIX) {
        ctx.expect("backing_open", got, refused_with);
    } else if ctx.kernel.at_least(6, 13) {
        // 6.13-6.16: fixed in some 6.16.y only; record without a verdict.
        ctx.observe("backing_open", got);
    } else {
        if got == "ok" {
            ctx.check(
                false,
                format!("known bug: {what} accepted as a backing file (fixed 6.17, 6.12.48)"),
            );
        }
        ctx.observe("backing_open", got);
    }
}

fn directory(ctx: &mut Ctx) -> Result<(), Stop> {
    let (fs, _file) = setup(ctx)?;
    let dir = objects(ctx)?.join("dir");
    std::fs::create_dir(&dir)?;
    let dir = rustix::fs::open(
        &dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    non_regular(ctx, &fs, dir.as_fd(), "EISDIR", "a directory");
    Ok(())
}

fn make_fifo(ctx: &mut Ctx) -> Result<std::path::PathBuf, Stop> {
    make_node(ctx, "fifo", rustix::fs::FileType::Fifo, 0)
}

/// A node `name` of `kind` (device number `dev`) on the case's tmpfs of objects.
fn make_node(
    ctx: &mut Ctx,
    name: &str,
    kind: rustix::fs::FileType,
    dev: rustix::fs::Dev,
) -> Result<std::path::PathBuf, Stop> {
    let path = objects(ctx)?.join(name);
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &path,
        kind,
        Mode::from_raw_mode(0o600),
        dev,
    )?;
    Ok(path)
}

fn fifo(ctx: &mut Ctx) -> Result<(), Stop> {
    let (fs, _file) = setup(ctx)?;
    let path = make_fifo(ctx)?;
    // O_RDWR on a FIFO does not block on Linux.
    let fd = rustix::fs::open(&path, OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())?;
    non_regular(ctx, &fs, fd.as_fd(), "EINVAL", "a FIFO");
    Ok(())
}

fn o_path_fifo(ctx: &mut Ctx) -> Result<(), Stop> {
    let (fs, _file) = setup(ctx)?;
    let path = make_fifo(ctx)?;
    let fd = rustix::fs::open(&path, OFlags::PATH | OFlags::CLOEXEC, Mode::empty())?;
    if !ctx.kernel.at_least(6, 12) {
        ctx.expect(
            "backing_open",
            outcome(&fs.backing_open(fd.as_fd())),
            "EBADF",
        );
        return Ok(());
    }
    non_regular(ctx, &fs, fd.as_fd(), "EINVAL", "a FIFO through O_PATH");
    Ok(())
}

fn socket(ctx: &mut Ctx) -> Result<(), Stop> {
    use std::io::Read;
    let (fs, _file) = setup(ctx)?;
    let (a, mut b) = std::os::unix::net::UnixStream::pair()?;
    non_regular(ctx, &fs, a.as_fd(), "EINVAL", "a socket");
    // A socket lives on no file system the audit could unmount: its peer tells instead.
    // Once our only fd is closed, the peer reads end of file, unless the kernel kept a
    // reference to the refused socket's file.
    if ctx.kernel.has_fix(NON_REGULAR_FIX) {
        drop(a);
        b.set_read_timeout(Some(std::time::Duration::from_secs(2)))?;
        let end = b.read(&mut [0u8; 1]);
        ctx.check(
            matches!(end, Ok(0)),
            format!(
                "after the refused BACKING_OPEN and the close of its fd, the peer reads {end:?} \
                 instead of end of file: the kernel kept the socket"
            ),
        );
    }
    Ok(())
}

fn char_device(ctx: &mut Ctx) -> Result<(), Stop> {
    let (fs, _file) = setup(ctx)?;
    // /dev/null's device number, as a node on the case's own tmpfs.
    let node = make_node(
        ctx,
        "null",
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::makedev(1, 3),
    )?;
    let null = std::fs::File::options().read(true).write(true).open(node)?;
    non_regular(ctx, &fs, null.as_fd(), "EINVAL", "a character device");
    Ok(())
}

fn proc_file(ctx: &mut Ctx) -> Result<(), Stop> {
    let (fs, _file) = setup(ctx)?;
    // A procfs instance of the case's own: the audit unmounts it.
    let proc = ctx.scratch("proc")?;
    rustix::mount::mount(
        "proc",
        &proc,
        "proc",
        rustix::mount::MountFlags::empty(),
        None,
    )?;
    let status = std::fs::File::open(proc.join("self/status"))?;
    let got = fs.backing_open(status.as_fd());
    ctx.observe("backing_open", outcome(&got));
    if let Ok(id) = got {
        ctx.observe("backing_close", outcome(&fs.backing_close(id)));
    }
    Ok(())
}

fn before_mount(ctx: &mut Ctx) -> Result<(), Stop> {
    // Learn first whether passthrough exists at all (skip otherwise).
    let (_fs, file) = setup(ctx)?;
    let dev = rustix::fs::open("/dev/fuse", OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())?;
    let map = BackingMap::of(file.as_raw_fd());
    ctx.expect(
        "backing_open",
        outcome(&crate::fuse::backing_open_raw(&dev, &map)),
        "EPERM",
    );
    Ok(())
}

fn ids_not_reused(ctx: &mut Ctx) -> Result<(), Stop> {
    let (fs, file) = setup(ctx)?;
    let first = fs.backing_open(file.as_fd())?;
    fs.backing_close(first)?;
    let second = fs.backing_open(file.as_fd())?;
    let third = fs.backing_open(file.as_fd())?;
    ctx.observe("ids", [first, second, third]);
    ctx.check(first >= 1 && second >= 1 && third >= 1, "an id below 1");
    ctx.check(
        second != first,
        format!("closed id {first} was handed out again at once"),
    );
    ctx.check(third != second, "two open registrations share an id");
    Ok(())
}
