//! `fuser-mirror SOURCE MOUNTPOINT`: SOURCE's files through a FUSE mount, on fuser 0.18's
//! public API. Opens ask for passthrough the way fuser's docs say: `FUSE_PASSTHROUGH` at
//! INIT, one `BackingId` per inode shared by its opens (`ReplyOpen::open_backing`,
//! `opened_passthrough`), dropped (BACKING_CLOSE) with the inode's last release. Where the
//! kernel refuses a backing file (ELOOP, EPERM) that one file is served by READ and WRITE.
//!
//! `fuser-mirror --bug NAME SOURCE MOUNTPOINT` plants one bug of the kind a library could
//! ship ([`Bug`]): the harness's broken-server suite, each of which validation must fail.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::FromRawFd;
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, UNIX_EPOCH};

use fuser::{
    BackingId, CopyFileRangeFlags, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags,
    Generation, INodeNo, InitFlags, KernelConfig, LockOwner, MountOption, OpenFlags, RenameFlags,
    ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen,
    ReplyWrite, Request, TimeOrNow, WriteFlags,
};
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

const TTL: Duration = Duration::from_secs(1);

#[derive(Default)]
struct State {
    paths: HashMap<u64, PathBuf>,
    inodes: HashMap<PathBuf, u64>,
    /// One backing id per inode while any of its opens holds it.
    backing: HashMap<u64, Weak<Shared>>,
    open: HashMap<u64, Open>,
    next_fh: u64,
    /// `--bug wrong-backing`: the last inode opened, and its path.
    last_opened: Option<(u64, PathBuf)>,
    /// `--bug never-close`: every backing id ever opened, held for ever.
    leaked: Vec<Arc<Shared>>,
    /// `--bug stale-backing`: each inode's first backing id, held and reused for ever.
    stale: HashMap<u64, Arc<Shared>>,
    /// `--bug close-reuse`: the last id closed right after its reply, and its inode.
    closed_early: Option<(u32, u64)>,
}

struct Open {
    file: File,
    /// Held while this open is passed through; the last drop closes the backing id.
    _backing: Option<Arc<Shared>>,
}

/// A backing id shared by an inode's opens.
struct Shared {
    id: BackingId,
    /// `--bug close-twice`: a second wrapper of the same id, closed with it.
    _twin: Option<BackingId>,
}

/// How an open is answered.
enum Backing {
    /// Served by READ and WRITE.
    Served,
    /// Passed through with an id its opens hold.
    Held(Arc<Shared>),
    /// Passed through with an id nobody holds (a bug's): closed after the reply when the
    /// flag says so, else let go of unclosed.
    Loose(BackingId, bool),
}

impl Backing {
    fn id(&self) -> Option<&BackingId> {
        match self {
            Backing::Served => None,
            Backing::Held(shared) => Some(&shared.id),
            Backing::Loose(id, _) => Some(id),
        }
    }

    /// After the reply: a loose id is closed, or let go of without a BACKING_CLOSE.
    fn after_reply(self) {
        if let Backing::Loose(id, close) = self {
            if close {
                drop(id);
            } else {
                id.into_raw();
            }
        }
    }
}

/// The bugs `--bug` plants; validation must fail each.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Bug {
    None,
    /// The backing file handed to the kernel is the previous other inode's file.
    WrongBacking,
    /// Backing ids are never closed (BACKING_CLOSE never sent).
    NeverClose,
    /// One backing id per inode for the server's whole run, reused after the file was
    /// replaced in SOURCE (and never closed).
    StaleBacking,
    /// SETATTR with a size is acknowledged, the file left as it was.
    IgnoreTruncate,
    /// Every backing id is closed twice (the second BACKING_CLOSE fails).
    CloseTwice,
    /// A backing id is closed right after the open reply, while its file is open, and its
    /// number is then given to another inode's open.
    CloseReuse,
    /// Where BACKING_OPEN is refused, the open is answered FOPEN_PASSTHROUGH with id 0.
    RefusedZeroId,
    /// FOPEN_KEEP_CACHE in the open reply together with FOPEN_PASSTHROUGH.
    KeepCache,
    /// Writable opens are served, not passed through, and WRITE is acknowledged unwritten.
    DropWrites,
    /// The second OPEN aborts the server (SIGABRT), as a library's failed assertion would.
    CrashOnOpen,
    /// The second OPEN is never answered: its handler sleeps for ever.
    HangOnOpen,
    /// RENAME's flags (RENAME_NOREPLACE, RENAME_EXCHANGE) are dropped: a plain rename.
    RenameFlagsDropped,
    /// SETATTR with a mode is acknowledged, the mode left as it was.
    IgnoreChmod,
    /// FALLOCATE with FALLOC_FL_PUNCH_HOLE is acknowledged, the bytes left in place.
    IgnorePunchHole,
    /// COPY_FILE_RANGE copies from the start of the source file, whatever its offset.
    CopyFromStart,
    /// READDIR leaves out `.` and `..` (libfuse's passthrough_hp before 3.17.1).
    NoDotEntries,
    /// An OPEN carrying `__FMODE_EXEC` is refused with EINVAL, as openat2 refuses the flag
    /// it does not know (go-fuse 2.8.0's loopback).
    RefuseExec,
    /// SETATTR's times on a symlink are set on its target (go-fuse before 2.6.0).
    TimesFollowSymlink,
}

impl Bug {
    fn parse(name: &str) -> Option<Bug> {
        Some(match name {
            "wrong-backing" => Bug::WrongBacking,
            "never-close" => Bug::NeverClose,
            "stale-backing" => Bug::StaleBacking,
            "ignore-truncate" => Bug::IgnoreTruncate,
            "close-twice" => Bug::CloseTwice,
            "close-reuse" => Bug::CloseReuse,
            "refused-zero-id" => Bug::RefusedZeroId,
            "keep-cache" => Bug::KeepCache,
            "drop-writes" => Bug::DropWrites,
            "crash-on-open" => Bug::CrashOnOpen,
            "hang-on-open" => Bug::HangOnOpen,
            "rename-flags-dropped" => Bug::RenameFlagsDropped,
            "ignore-chmod" => Bug::IgnoreChmod,
            "ignore-punch-hole" => Bug::IgnorePunchHole,
            "copy-from-start" => Bug::CopyFromStart,
            "no-dot-entries" => Bug::NoDotEntries,
            "refuse-exec" => Bug::RefuseExec,
            "times-follow-symlink" => Bug::TimesFollowSymlink,
            _ => return None,
        })
    }
}

struct Mirror {
    passthrough: bool,
    bug: Bug,
    /// OPENs so far (the crash and hang bugs strike at the second).
    opens: std::sync::atomic::AtomicU64,
    state: Mutex<State>,
}

fn errno(e: std::io::Error) -> Errno {
    Errno::from(e)
}

fn attr(ino: u64, m: &std::fs::Metadata) -> FileAttr {
    let t = |s: i64, ns: i64| UNIX_EPOCH + Duration::new(s.max(0) as u64, ns as u32);
    FileAttr {
        ino: INodeNo(ino),
        size: m.len(),
        blocks: m.blocks(),
        atime: t(m.atime(), m.atime_nsec()),
        mtime: t(m.mtime(), m.mtime_nsec()),
        ctime: t(m.ctime(), m.ctime_nsec()),
        crtime: UNIX_EPOCH,
        kind: FileType::from_std(m.file_type()).unwrap_or(FileType::RegularFile),
        perm: (m.mode() & 0o7777) as u16,
        nlink: m.nlink() as u32,
        uid: m.uid(),
        gid: m.gid(),
        rdev: m.rdev() as u32,
        blksize: 4096,
        flags: 0,
    }
}

impl Mirror {
    fn path(&self, ino: INodeNo) -> Result<PathBuf, Errno> {
        let s = self.state.lock().unwrap();
        s.paths.get(&ino.0).cloned().ok_or(Errno::ENOENT)
    }

    fn child(&self, parent: INodeNo, name: &OsStr) -> Result<(u64, PathBuf), Errno> {
        let path = self.path(parent)?.join(name);
        let mut s = self.state.lock().unwrap();
        let next = s.paths.len() as u64 + 1;
        let ino = *s.inodes.entry(path.clone()).or_insert(next);
        s.paths.insert(ino, path.clone());
        Ok((ino, path))
    }

    /// Open `path` for `ino` and, where the session negotiated passthrough, its backing id.
    /// `wrap` makes a `BackingId` of a raw id number (what some bugs need).
    fn open_file(
        &self,
        ino: u64,
        file: File,
        writable: bool,
        open_backing: impl FnOnce(&File) -> std::io::Result<BackingId>,
        wrap: impl Fn(u32) -> BackingId,
    ) -> (u64, Backing) {
        let mut s = self.state.lock().unwrap();
        let path = s.paths.get(&ino).cloned().unwrap_or_default();
        // What the kernel is handed as the backing file: the open's own file, but for a bug.
        let backing_file = match self.bug {
            Bug::WrongBacking => match &s.last_opened {
                Some((other, p)) if *other != ino => File::open(p).ok(),
                _ => None,
            },
            _ => None,
        };
        if self.bug == Bug::WrongBacking {
            s.last_opened = Some((ino, path));
        }
        let served = self.bug == Bug::DropWrites && writable;
        let held = s
            .stale
            .get(&ino)
            .cloned()
            .or_else(|| s.backing.get(&ino).and_then(Weak::upgrade));
        let backing = match (self.passthrough && !served, held) {
            (false, _) => Backing::Served,
            (true, Some(shared)) => Backing::Held(shared),
            (true, None)
                if self.bug == Bug::CloseReuse && s.closed_early.is_some_and(|(_, i)| i != ino) =>
            {
                let (raw, _) = s.closed_early.expect("checked");
                Backing::Loose(wrap(raw), false)
            }
            (true, None) => match open_backing(backing_file.as_ref().unwrap_or(&file)) {
                Ok(id) if self.bug == Bug::CloseReuse => {
                    let raw = id.into_raw();
                    s.closed_early = Some((raw, ino));
                    Backing::Loose(wrap(raw), true)
                }
                Ok(id) => {
                    let shared = match self.bug {
                        Bug::CloseTwice => {
                            let raw = id.into_raw();
                            Shared {
                                id: wrap(raw),
                                _twin: Some(wrap(raw)),
                            }
                        }
                        _ => Shared { id, _twin: None },
                    };
                    let shared = Arc::new(shared);
                    s.backing.insert(ino, Arc::downgrade(&shared));
                    if self.bug == Bug::NeverClose {
                        s.leaked.push(Arc::clone(&shared));
                    }
                    if self.bug == Bug::StaleBacking {
                        s.stale.insert(ino, Arc::clone(&shared));
                    }
                    Backing::Held(shared)
                }
                Err(e) if self.bug == Bug::RefusedZeroId => {
                    eprintln!("fuser-mirror: BACKING_OPEN failed ({e}): answering id 0");
                    Backing::Loose(wrap(0), false)
                }
                Err(e) => {
                    eprintln!("fuser-mirror: BACKING_OPEN failed ({e}): serving inode {ino}");
                    Backing::Served
                }
            },
        };
        s.next_fh += 1;
        let fh = s.next_fh;
        let kept = match &backing {
            Backing::Held(shared) => Some(Arc::clone(shared)),
            _ => None,
        };
        s.open.insert(
            fh,
            Open {
                file,
                _backing: kept,
            },
        );
        (fh, backing)
    }

    /// The open reply's flags beside FOPEN_PASSTHROUGH.
    fn open_flags(&self) -> FopenFlags {
        match self.bug {
            Bug::KeepCache => FopenFlags::FOPEN_KEEP_CACHE,
            _ => FopenFlags::empty(),
        }
    }

    /// MKDIR, MKNOD, SYMLINK or LINK: `name` made in `parent` by `make` (given its path),
    /// answered with its entry.
    fn make(
        &self,
        parent: INodeNo,
        name: &OsStr,
        reply: ReplyEntry,
        make: impl FnOnce(&Path) -> Result<(), Errno>,
    ) {
        let made = self
            .path(parent)
            .and_then(|p| make(&p.join(name)))
            .and_then(|()| self.entry(parent, name));
        match made {
            Ok(a) => reply.entry(&TTL, &a, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    /// The entry of a name just made in `parent` (mkdir, mknod, symlink, link).
    fn entry(&self, parent: INodeNo, name: &OsStr) -> Result<FileAttr, Errno> {
        let (ino, path) = self.child(parent, name)?;
        let m = std::fs::symlink_metadata(path).map_err(errno)?;
        Ok(attr(ino, &m))
    }

    /// UNLINK or RMDIR (`remove`) of `name` in `parent`, and its inode number let go of.
    fn remove(
        &self,
        parent: INodeNo,
        name: &OsStr,
        remove: fn(&Path) -> std::io::Result<()>,
        reply: ReplyEmpty,
    ) {
        let gone = self.path(parent).and_then(|p| {
            let path = p.join(name);
            remove(&path).map_err(errno)?;
            self.forget_name(&path);
            Ok(())
        });
        match gone {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    /// A name gone from SOURCE: a later one of that name is another inode.
    fn forget_name(&self, path: &Path) {
        self.state.lock().unwrap().inodes.remove(path);
    }

    /// Paths under `from` now under `to` (and, exchanged, the other way round).
    fn moved(&self, from: &Path, to: &Path, exchange: bool) {
        let mut s = self.state.lock().unwrap();
        // `join("")` would add a slash: the moved path itself is the new name as it is.
        let under = |base: &Path, rest: &Path| match rest.as_os_str().is_empty() {
            true => base.to_path_buf(),
            false => base.join(rest),
        };
        let swap = |p: &Path| -> Option<PathBuf> {
            if let Ok(rest) = p.strip_prefix(from) {
                Some(under(to, rest))
            } else if exchange {
                p.strip_prefix(to).ok().map(|rest| under(from, rest))
            } else {
                None
            }
        };
        if !exchange {
            s.inodes.remove(to);
        }
        let paths: Vec<(u64, PathBuf)> = s
            .paths
            .iter()
            .filter_map(|(ino, p)| swap(p).map(|n| (*ino, n)))
            .collect();
        for (ino, path) in paths {
            if let Some(old) = s.paths.insert(ino, path.clone()) {
                if s.inodes.get(&old) == Some(&ino) {
                    s.inodes.remove(&old);
                }
            }
            s.inodes.insert(path, ino);
        }
    }

    fn with_file<T>(&self, fh: FileHandle, f: impl FnOnce(&File) -> T) -> Result<T, Errno> {
        let s = self.state.lock().unwrap();
        s.open.get(&fh.0).map(|o| f(&o.file)).ok_or(Errno::EBADF)
    }
}

fn c_path(p: &Path) -> Result<CString, Errno> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)
}

/// SETATTR's times, each given, now, or left (UTIME_OMIT).
/// utimensat of `p`; of the link itself, not its target, when `own` (AT_SYMLINK_NOFOLLOW).
fn set_times(
    p: &Path,
    atime: Option<TimeOrNow>,
    mtime: Option<TimeOrNow>,
    own: bool,
) -> Result<(), Errno> {
    let ts = |t: Option<TimeOrNow>| match t {
        None => libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_OMIT,
        },
        Some(TimeOrNow::Now) => libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_NOW,
        },
        Some(TimeOrNow::SpecificTime(t)) => {
            let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
            libc::timespec {
                tv_sec: d.as_secs() as libc::time_t,
                tv_nsec: d.subsec_nanos() as libc::c_long,
            }
        }
    };
    let times = [ts(atime), ts(mtime)];
    let path = c_path(p)?;
    // SAFETY: a valid C string and two timespecs.
    let rc = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            path.as_ptr(),
            times.as_ptr(),
            if own { libc::AT_SYMLINK_NOFOLLOW } else { 0 },
        )
    };
    match rc {
        0 => Ok(()),
        _ => Err(errno(std::io::Error::last_os_error())),
    }
}

fn open_options(flags: i32) -> std::fs::OpenOptions {
    let mut o = std::fs::OpenOptions::new();
    o.read(true);
    if flags & libc::O_ACCMODE != libc::O_RDONLY {
        o.write(true);
    }
    o.custom_flags(flags & (libc::O_APPEND | libc::O_DIRECT));
    o
}

impl Filesystem for Mirror {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        // A kernel without passthrough: every file is served.
        self.passthrough = config.add_capabilities(InitFlags::FUSE_PASSTHROUGH).is_ok()
            && config.set_max_stack_depth(1).is_ok();
        eprintln!("fuser-mirror: passthrough {}", self.passthrough);
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self
            .child(parent, name)
            .and_then(|(ino, p)| Ok((ino, std::fs::symlink_metadata(p).map_err(errno)?)))
        {
            Ok((ino, m)) => reply.entry(&TTL, &attr(ino, &m), Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self
            .path(ino)
            .and_then(|p| std::fs::symlink_metadata(p).map_err(errno))
        {
            Ok(m) => reply.attr(&TTL, &attr(ino.0, &m)),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<std::time::SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<std::time::SystemTime>,
        _chgtime: Option<std::time::SystemTime>,
        _bkuptime: Option<std::time::SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let result = self.path(ino).and_then(|p| {
            if let (Some(size), false) = (size, self.bug == Bug::IgnoreTruncate) {
                File::options()
                    .write(true)
                    .open(&p)
                    .and_then(|f| f.set_len(size))
                    .map_err(errno)?;
            }
            if let (Some(mode), false) = (mode, self.bug == Bug::IgnoreChmod) {
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode & 0o7777))
                    .map_err(errno)?;
            }
            if uid.is_some() || gid.is_some() {
                std::os::unix::fs::lchown(&p, uid, gid).map_err(errno)?;
            }
            if atime.is_some() || mtime.is_some() {
                set_times(&p, atime, mtime, self.bug != Bug::TimesFollowSymlink)?;
            }
            std::fs::symlink_metadata(&p).map_err(errno)
        });
        match result {
            Ok(m) => reply.attr(&TTL, &attr(ino.0, &m)),
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.remove(parent, name, |p| std::fs::remove_file(p), reply);
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.remove(parent, name, |p| std::fs::remove_dir(p), reply);
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        self.make(parent, name, reply, |path| {
            std::fs::DirBuilder::new()
                .mode(mode & !umask & 0o7777)
                .create(path)
                .map_err(errno)
        });
    }

    fn mknod(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        self.make(parent, name, reply, |path| {
            let path = c_path(path)?;
            // SAFETY: a valid C string; mknod only reads it.
            let rc = unsafe { libc::mknod(path.as_ptr(), mode & !umask, libc::dev_t::from(rdev)) };
            match rc {
                0 => Ok(()),
                _ => Err(errno(std::io::Error::last_os_error())),
            }
        });
    }

    fn symlink(
        &self,
        _req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        self.make(parent, link_name, reply, |path| {
            std::os::unix::fs::symlink(target, path).map_err(errno)
        });
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self
            .path(ino)
            .and_then(|p| std::fs::read_link(p).map_err(errno))
        {
            Ok(target) => reply.data(target.as_os_str().as_bytes()),
            Err(e) => reply.error(e),
        }
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let from = self.path(ino);
        self.make(newparent, newname, reply, |to| {
            std::fs::hard_link(from?, to).map_err(errno)
        });
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let flags = match self.bug {
            Bug::RenameFlagsDropped => RenameFlags::empty(),
            _ => flags,
        };
        let done = self.path(parent).and_then(|p| {
            let (from, to) = (p.join(name), self.path(newparent)?.join(newname));
            let (cf, ct) = (c_path(&from)?, c_path(&to)?);
            // SAFETY: valid C strings; renameat2 only reads them.
            let rc = unsafe {
                libc::renameat2(
                    libc::AT_FDCWD,
                    cf.as_ptr(),
                    libc::AT_FDCWD,
                    ct.as_ptr(),
                    flags.bits(),
                )
            };
            if rc != 0 {
                return Err(errno(std::io::Error::last_os_error()));
            }
            self.moved(&from, &to, flags.contains(RenameFlags::RENAME_EXCHANGE));
            Ok(())
        });
        match done {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn fallocate(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        if self.bug == Bug::IgnorePunchHole && mode & libc::FALLOC_FL_PUNCH_HOLE != 0 {
            return reply.ok();
        }
        let done = self.with_file(fh, |f| {
            use std::os::fd::AsRawFd;
            // SAFETY: an open fd of ours.
            let rc = unsafe {
                libc::fallocate(
                    f.as_raw_fd(),
                    mode,
                    offset as libc::off_t,
                    length as libc::off_t,
                )
            };
            match rc {
                0 => Ok(()),
                _ => Err(std::io::Error::last_os_error()),
            }
        });
        match done {
            Ok(Ok(())) => reply.ok(),
            Ok(Err(e)) => reply.error(errno(e)),
            Err(e) => reply.error(e),
        }
    }

    fn copy_file_range(
        &self,
        _req: &Request,
        _ino_in: INodeNo,
        fh_in: FileHandle,
        offset_in: u64,
        _ino_out: INodeNo,
        fh_out: FileHandle,
        offset_out: u64,
        len: u64,
        _flags: CopyFileRangeFlags,
        reply: ReplyWrite,
    ) {
        let offset_in = match self.bug {
            Bug::CopyFromStart => 0,
            _ => offset_in,
        };
        // Read and written here: the two opens may be the same file.
        let mut buf = vec![0u8; len.min(1 << 20) as usize];
        let copied = self
            .with_file(fh_in, |f| f.read_at(&mut buf, offset_in))
            .and_then(|r| r.map_err(errno))
            .and_then(|n| {
                self.with_file(fh_out, |f| {
                    f.write_all_at(&buf[..n], offset_out).map(|()| n)
                })
                .and_then(|r| r.map_err(errno))
            });
        match copied {
            Ok(n) => reply.written(n as u32),
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let nth = 1 + self
            .opens
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        match self.bug {
            Bug::CrashOnOpen if nth == 2 => {
                eprintln!("fuser-mirror: assertion failed: open of inode {ino:?} (planted crash)");
                std::process::abort();
            }
            Bug::HangOnOpen if nth >= 2 => {
                eprintln!(
                    "fuser-mirror: stops answering at the open of inode {ino:?} (planted hang)"
                );
                loop {
                    std::thread::sleep(Duration::from_secs(3600));
                }
            }
            // The kernel's flag for an open to execute; openat2 knows no such flag.
            Bug::RefuseExec if flags.0 & 0o40 != 0 => return reply.error(Errno::EINVAL),
            _ => {}
        }
        let file = match self
            .path(ino)
            .and_then(|p| open_options(flags.0).open(p).map_err(errno))
        {
            Ok(f) => f,
            Err(e) => return reply.error(e),
        };
        let writable = flags.0 & libc::O_ACCMODE != libc::O_RDONLY;
        // SAFETY (wrap): a bug's deliberate misuse of raw ids; the kernel checks every id it
        // is given, which is what the broken-server suite tests.
        let wrap = |raw| unsafe { reply.wrap_backing(raw) };
        let (fh, backing) = self.open_file(ino.0, file, writable, |f| reply.open_backing(f), wrap);
        match backing.id() {
            Some(id) => reply.opened_passthrough(FileHandle(fh), self.open_flags(), id),
            None => reply.opened(FileHandle(fh), FopenFlags::empty()),
        }
        backing.after_reply();
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let (ino, path) = match self.child(parent, name) {
            Ok(c) => c,
            Err(e) => return reply.error(e),
        };
        let mut options = open_options(flags);
        options.create(true).mode(mode & !umask);
        if flags & libc::O_EXCL != 0 {
            options.create_new(true);
        }
        let made = options
            .open(&path)
            .and_then(|f| Ok((f.metadata()?, f)))
            .map_err(errno);
        let (meta, file) = match made {
            Ok(m) => m,
            Err(e) => return reply.error(e),
        };
        let writable = flags & libc::O_ACCMODE != libc::O_RDONLY;
        // SAFETY (wrap): as in `open`.
        let wrap = |raw| unsafe { reply.wrap_backing(raw) };
        let (fh, backing) = self.open_file(ino, file, writable, |f| reply.open_backing(f), wrap);
        let a = attr(ino, &meta);
        match backing.id() {
            Some(id) => reply.created_passthrough(
                &TTL,
                &a,
                Generation(0),
                FileHandle(fh),
                self.open_flags(),
                id,
            ),
            None => reply.created(&TTL, &a, Generation(0), FileHandle(fh), FopenFlags::empty()),
        }
        backing.after_reply();
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let mut buf = vec![0u8; size as usize];
        match self.with_file(fh, |f| f.read_at(&mut buf, offset)) {
            Ok(Ok(n)) => reply.data(&buf[..n]),
            Ok(Err(e)) => reply.error(errno(e)),
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        if self.bug == Bug::DropWrites {
            return reply.written(data.len() as u32);
        }
        match self.with_file(fh, |f| f.write_at(data, offset)) {
            Ok(Ok(n)) => reply.written(n as u32),
            Ok(Err(e)) => reply.error(errno(e)),
            Err(e) => reply.error(e),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        match self.with_file(fh, |f| f.sync_all()) {
            Ok(Ok(())) => reply.ok(),
            Ok(Err(e)) => reply.error(errno(e)),
            Err(e) => reply.error(e),
        }
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        // Dropping the open drops its share of the backing id: the last one closes it.
        self.state.lock().unwrap().open.remove(&fh.0);
        reply.ok();
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let dir = match self.path(ino) {
            Ok(d) => d,
            Err(e) => return reply.error(e),
        };
        let mut entries = vec![
            (ino.0, FileType::Directory, ".".into()),
            (ino.0, FileType::Directory, "..".into()),
        ];
        if self.bug == Bug::NoDotEntries {
            entries.clear();
        }
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let Ok((child, _)) = self.child(ino, &e.file_name()) else {
                continue;
            };
            let kind = e
                .file_type()
                .ok()
                .and_then(FileType::from_std)
                .unwrap_or(FileType::RegularFile);
            entries.push((child, kind, e.file_name()));
        }
        for (i, (child, kind, name)) in entries.into_iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(child), (i + 1) as u64, kind, name) {
                break;
            }
        }
        reply.ok();
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (bug, source, mountpoint) = match &args[..] {
        [_, source, mountpoint] => (Bug::None, source, mountpoint),
        [_, flag, name, source, mountpoint] if flag == "--bug" => match Bug::parse(name) {
            Some(bug) => (bug, source, mountpoint),
            None => {
                eprintln!("fuser-mirror: unknown bug {name}");
                std::process::exit(2);
            }
        },
        _ => {
            eprintln!("usage: fuser-mirror [--bug NAME] SOURCE MOUNTPOINT");
            std::process::exit(2);
        }
    };
    if bug != Bug::None {
        eprintln!("fuser-mirror: planted bug: {bug:?}");
    }
    let mut state = State::default();
    state.paths.insert(1, PathBuf::from(source));
    state.inodes.insert(PathBuf::from(source), 1);
    let fs = Mirror {
        passthrough: false,
        bug,
        opens: Default::default(),
        state: Mutex::new(state),
    };
    let mut config = fuser::Config::default();
    config
        .mount_options
        .extend([MountOption::FSName("fuser-mirror".into())]);
    // `/dev/fd/N`: a /dev/fuse fd somebody else mounted (libfuse's convention for a server
    // without the privilege to mount), served through `Session::from_fd`.
    let served = match mountpoint.strip_prefix("/dev/fd/").map(str::parse::<i32>) {
        Some(Ok(fd)) => {
            // SAFETY: the fd was handed to us open, and nothing else in this process owns it.
            let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
            fuser::Session::from_fd(fs, fd, fuser::SessionACL::All, config).and_then(|s| s.run())
        }
        _ => fuser::mount(fs, mountpoint, &config),
    };
    if let Err(e) = served {
        eprintln!("fuser-mirror: {e}");
        std::process::exit(1);
    }
}
