//! `fuser-mirror SOURCE MOUNTPOINT`: SOURCE's files through a FUSE mount, on fuser 0.18's
//! public API. Opens ask for passthrough the way fuser's docs say: `FUSE_PASSTHROUGH` at
//! INIT, one `BackingId` per inode shared by its opens (`ReplyOpen::open_backing`,
//! `opened_passthrough`), dropped (BACKING_CLOSE) with the inode's last release. Where the
//! kernel refuses a backing file (ELOOP, EPERM) that one file is served by READ and WRITE.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::FromRawFd;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, UNIX_EPOCH};

use fuser::{
    BackingId, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation,
    INodeNo, InitFlags, KernelConfig, LockOwner, MountOption, OpenFlags, ReplyAttr, ReplyCreate,
    ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyWrite, Request,
    TimeOrNow, WriteFlags,
};

const TTL: Duration = Duration::from_secs(1);

#[derive(Default)]
struct State {
    paths: HashMap<u64, PathBuf>,
    inodes: HashMap<PathBuf, u64>,
    /// One backing id per inode while any of its opens holds it.
    backing: HashMap<u64, Weak<BackingId>>,
    open: HashMap<u64, Open>,
    next_fh: u64,
}

struct Open {
    file: File,
    /// Held while this open is passed through; the last drop closes the backing id.
    _backing: Option<Arc<BackingId>>,
}

struct Mirror {
    passthrough: bool,
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
        kind: if m.is_dir() {
            FileType::Directory
        } else {
            FileType::RegularFile
        },
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
    fn open_file(
        &self,
        ino: u64,
        file: File,
        open_backing: impl FnOnce(&File) -> std::io::Result<BackingId>,
    ) -> (u64, Option<Arc<BackingId>>) {
        let mut s = self.state.lock().unwrap();
        let backing = if self.passthrough {
            match s.backing.get(&ino).and_then(Weak::upgrade) {
                Some(id) => Some(id),
                None => match open_backing(&file) {
                    Ok(id) => {
                        let id = Arc::new(id);
                        s.backing.insert(ino, Arc::downgrade(&id));
                        Some(id)
                    }
                    Err(e) => {
                        eprintln!("fuser-mirror: BACKING_OPEN failed ({e}): serving inode {ino}");
                        None
                    }
                },
            }
        } else {
            None
        };
        s.next_fh += 1;
        let fh = s.next_fh;
        s.open.insert(
            fh,
            Open {
                file,
                _backing: backing.clone(),
            },
        );
        (fh, backing)
    }

    fn with_file<T>(&self, fh: FileHandle, f: impl FnOnce(&File) -> T) -> Result<T, Errno> {
        let s = self.state.lock().unwrap();
        s.open.get(&fh.0).map(|o| f(&o.file)).ok_or(Errno::EBADF)
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
        self.passthrough = config
            .add_capabilities(InitFlags::FUSE_PASSTHROUGH)
            .is_ok()
            && config.set_max_stack_depth(1).is_ok();
        eprintln!("fuser-mirror: passthrough {}", self.passthrough);
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self
            .child(parent, name)
            .and_then(|(ino, p)| Ok((ino, std::fs::metadata(p).map_err(errno)?)))
        {
            Ok((ino, m)) => reply.entry(&TTL, &attr(ino, &m), Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self
            .path(ino)
            .and_then(|p| std::fs::metadata(p).map_err(errno))
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
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<std::time::SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<std::time::SystemTime>,
        _chgtime: Option<std::time::SystemTime>,
        _bkuptime: Option<std::time::SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let result = self.path(ino).and_then(|p| {
            if let Some(size) = size {
                File::options()
                    .write(true)
                    .open(&p)
                    .and_then(|f| f.set_len(size))
                    .map_err(errno)?;
            }
            if let Some(mode) = mode {
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode & 0o7777))
                    .map_err(errno)?;
            }
            std::fs::metadata(&p).map_err(errno)
        });
        match result {
            Ok(m) => reply.attr(&TTL, &attr(ino.0, &m)),
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self
            .path(parent)
            .and_then(|p| std::fs::remove_file(p.join(name)).map_err(errno))
        {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let file = match self
            .path(ino)
            .and_then(|p| open_options(flags.0).open(p).map_err(errno))
        {
            Ok(f) => f,
            Err(e) => return reply.error(e),
        };
        let (fh, backing) = self.open_file(ino.0, file, |f| reply.open_backing(f));
        match backing {
            Some(id) => reply.opened_passthrough(FileHandle(fh), FopenFlags::empty(), &id),
            None => reply.opened(FileHandle(fh), FopenFlags::empty()),
        }
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
        let (fh, backing) = self.open_file(ino, file, |f| reply.open_backing(f));
        let a = attr(ino, &meta);
        match backing {
            Some(id) => reply.created_passthrough(
                &TTL,
                &a,
                Generation(0),
                FileHandle(fh),
                FopenFlags::empty(),
                &id,
            ),
            None => reply.created(&TTL, &a, Generation(0), FileHandle(fh), FopenFlags::empty()),
        }
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
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let Ok((child, _)) = self.child(ino, &e.file_name()) else {
                continue;
            };
            let kind = match e.file_type() {
                Ok(t) if t.is_dir() => FileType::Directory,
                _ => FileType::RegularFile,
            };
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
    let [_, source, mountpoint] = &args[..] else {
        eprintln!("usage: fuser-mirror SOURCE MOUNTPOINT");
        std::process::exit(2);
    };
    let mut state = State::default();
    state.paths.insert(1, PathBuf::from(source));
    state.inodes.insert(PathBuf::from(source), 1);
    let fs = Mirror {
        passthrough: false,
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
