//! A FUSE mount served by our own server thread, and the passthrough ioctls on its
//! connection. One `FuseFs` is one connection: a case may hold several.

pub mod abi;
mod child;
mod ring;
mod server;

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use rustix::mount::{MountFlags, UnmountFlags};

pub use child::ServerProcess;
pub use ring::{
    command_with_segs as ring_command, queues as ring_queues, with_fixed_buffer, Payload, RingEnd,
    POOLED_REQUESTS, RING_SETUP_ERRORS, ZERO_COPIED_REQUESTS,
};
use server::ServerState;
pub use server::{
    backing_open as backing_open_raw, CreateReply, InitExchange, InitReply, OpenReply,
    PROCESS as TRANSPORT_TOTALS,
};

/// The largest payload of a request or answer on the agent's connections (max_write and
/// max_pages pages are both 1 MiB): what a ring entry or buffer pool must hold.
pub const MAX_PAYLOAD: usize = server::MAX_WRITE as usize;

pub struct FuseFs {
    shared: Arc<ServerState>,
    server: Option<std::thread::JoinHandle<()>>,
    /// Where the filesystem is mounted.
    pub mnt: PathBuf,
    /// Where the files behind the served ones live (a directory of the case's tmpfs).
    pub backing_dir: PathBuf,
}

impl FuseFs {
    /// Mount a new FUSE filesystem at `dir/mnt`, served from files in `dir/backing`, and start
    /// its server. The kernel sends INIT during mount(2); [`FuseFs::wait_for_init`] waits for it.
    pub fn mount(dir: &Path, init: InitReply) -> io::Result<FuseFs> {
        let mnt = dir.join("mnt");
        let backing_dir = dir.join("backing");
        std::fs::create_dir_all(&mnt)?;
        std::fs::create_dir_all(&backing_dir)?;
        let dev = rustix::fs::open("/dev/fuse", OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())?;
        mount_fd(&mnt, dev.as_raw_fd())?;
        let shared = ServerState::new(dev, backing_dir.clone(), init);
        let serving = Arc::clone(&shared);
        let server = std::thread::Builder::new()
            .name("fuse-server".into())
            .spawn(move || serving.serve())?;
        Ok(FuseFs {
            shared,
            server: Some(server),
            mnt,
            backing_dir,
        })
    }

    /// Mount as [`FuseFs::mount`] does, but with FUSE_DEV_IOC_SYNC_INIT set on the fd first
    /// (6.18): the server thread starts before mount(2) (its read waits for the mount), and
    /// a BACKING_OPEN of `backing` is issued from another thread before the mount too.
    /// Returns None with the ioctl's error when the kernel has no such ioctl.
    pub fn mount_sync_init(
        dir: &Path,
        init: InitReply,
        backing: std::fs::File,
    ) -> io::Result<Result<(FuseFs, SyncInitSeen), rustix::io::Errno>> {
        let mnt = dir.join("mnt");
        let backing_dir = dir.join("backing");
        std::fs::create_dir_all(&mnt)?;
        std::fs::create_dir_all(&backing_dir)?;
        let dev = rustix::fs::open("/dev/fuse", OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())?;
        if let Err(e) = sync_init(dev.as_raw_fd()) {
            return Ok(Err(e));
        }
        let hold = Duration::from_millis(init.hold_ms.into());
        let raw = dev.as_raw_fd();
        let after = backing.try_clone()?;
        let shared = ServerState::new(dev, backing_dir.clone(), init);
        let early = {
            let state = Arc::clone(&shared);
            std::thread::spawn(move || {
                let map = abi::BackingMap::of(backing.as_raw_fd());
                let got = server::backing_open(&state.dev, &map);
                drop(backing);
                got
            })
        };
        let serving = Arc::clone(&shared);
        let server = std::thread::Builder::new()
            .name("fuse-server".into())
            .spawn(move || serving.serve())?;
        std::thread::sleep(Duration::from_millis(300));
        let waited_for_mount = !early.is_finished();
        let mount_began = std::time::Instant::now();
        mount_fd(&mnt, raw)?;
        let mount_returned = std::time::Instant::now();
        let order = MountOrder::of(&shared, mount_began, mount_returned, hold);
        // Not the server's record of its answer: the server thread writes it after its
        // write(2) returns, and the woken mount may return first.
        let backing_open_after_mount =
            server::backing_open(&shared.dev, &abi::BackingMap::of(after.as_raw_fd()));
        drop(after);
        let backing_open_before_mount = early.join().unwrap_or(Err(rustix::io::Errno::INTR));
        let again_after_mount = sync_init(raw);
        Ok(Ok((
            FuseFs {
                shared,
                server: Some(server),
                mnt,
                backing_dir,
            },
            SyncInitSeen {
                order,
                waited_for_mount,
                backing_open_before_mount,
                backing_open_after_mount,
                again_after_mount,
            },
        )))
    }

    /// The INIT exchange, once the server has answered it.
    pub fn wait_for_init(&self) -> io::Result<InitExchange> {
        self.shared
            .wait_init(Duration::from_secs(10))
            .ok_or_else(|| {
                io::Error::new(io::ErrorKind::TimedOut, "no INIT from the kernel in 10 s")
            })
    }

    /// Serve `name`, backed by a new file `backing_dir/name` holding `contents`.
    pub fn add_file(&self, name: &str, contents: &[u8], reply: OpenReply) -> io::Result<PathBuf> {
        let path = self.backing_dir.join(name);
        std::fs::write(&path, contents)?;
        self.add_file_at(name, &path, reply)?;
        Ok(path)
    }

    /// Serve `name`, backed by an existing file anywhere (another mount, an overlay, ...).
    pub fn add_file_at(&self, name: &str, path: &Path, reply: OpenReply) -> io::Result<()> {
        let backing = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)?;
        self.shared
            .add_file(name, path.to_path_buf(), backing, reply);
        Ok(())
    }

    /// Serve `name` in passthrough mode from the existing file `path`: register it
    /// (BACKING_OPEN) and answer OPEN with FOPEN_PASSTHROUGH and the id, which is returned.
    pub fn add_passthrough_file_at(&self, name: &str, path: &Path) -> io::Result<i32> {
        self.add_file_at(name, path, OpenReply::CACHED)?;
        let id = self.backing_open_path(path)?;
        self.set_open_reply(name, OpenReply::passthrough(id));
        Ok(id)
    }

    /// The connection's /dev/fuse fd, for a case that drives io_uring commands itself.
    pub fn dev(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.shared.dev.as_fd()
    }

    /// Send the notification `code` (`abi::notify`) with `payload`, as the server would.
    pub fn notify(&self, code: i32, payload: &[u8]) -> Result<(), Errno> {
        self.shared.notify(code, payload)
    }

    /// The data each NOTIFY_REPLY (the answer to FUSE_NOTIFY_RETRIEVE) carried so far.
    pub fn retrieved(&self) -> Vec<Vec<u8>> {
        self.shared.retrieved()
    }

    /// The node id of the served file `name`.
    pub fn nodeid(&self, name: &str) -> Option<u64> {
        self.shared.nodeid(name)
    }

    /// Answer every GETXATTR with `errno` from now on (ENOSYS until then).
    pub fn answer_getxattr(&self, errno: Errno) {
        self.shared.answer_getxattr(errno);
    }

    /// Answer every OPEN with `errno` from now on.
    pub fn answer_open(&self, errno: Errno) {
        self.shared.answer_open(errno);
    }

    /// Close the server's own fd of `name`'s backing file, so only the kernel holds it.
    pub fn drop_server_fd(&self, name: &str) {
        self.shared.drop_server_fd(name);
    }

    /// Ids the server registered itself to answer CREATE with passthrough.
    pub fn created_ids(&self) -> Vec<i32> {
        self.shared.created_ids()
    }

    /// The connection's number under /sys/fs/fuse/connections (the mount's device minor),
    /// read from mountinfo: a stat() of the mount would wait on a server that may be stalled.
    pub fn connection(&self) -> io::Result<u32> {
        crate::sys::mount_at(&self.mnt)?
            .map(|m| m.minor)
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{} is not in mountinfo", self.mnt.display()),
                )
            })
    }

    /// Abort the connection through fusectl, as an administrator would.
    pub fn abort(&self) -> io::Result<()> {
        abort_connection(self.connection()?)
    }

    /// Requests waiting on this connection now (fusectl `waiting`).
    pub fn waiting(&self) -> io::Result<u64> {
        waiting(self.connection()?)
    }

    /// Unmount (not lazily: EBUSY if files are open), let the server see the end, and close
    /// the connection's fd: afterwards the kernel has dropped every backing id. Returns how
    /// the connection's ring ended, if it had one.
    pub fn shutdown(mut self) -> Result<Option<RingEnd>, Errno> {
        rustix::mount::unmount(&self.mnt, UnmountFlags::empty())?;
        if let Some(server) = self.server.take() {
            let _ = server.join();
        }
        Ok(self.ring_end())
    }

    pub fn set_open_reply(&self, name: &str, reply: OpenReply) {
        self.shared.set_open_reply(name, reply);
    }

    pub fn set_create_reply(&self, reply: CreateReply) {
        self.shared.set_create_reply(reply);
    }

    /// The path of a served file under the mount point.
    pub fn path(&self, name: &str) -> PathBuf {
        self.mnt.join(name)
    }

    /// FUSE_DEV_IOC_BACKING_OPEN with a well-formed map for `fd`.
    pub fn backing_open(&self, fd: BorrowedFd<'_>) -> Result<i32, Errno> {
        self.backing_open_map(&abi::BackingMap::of(fd.as_raw_fd()))
    }

    /// Open `path` read-write and register it; the fd is closed again at once, which the
    /// kernel allows (it keeps its own reference).
    pub fn backing_open_path(&self, path: &Path) -> Result<i32, Errno> {
        let file = File::options()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| errno(&e))?;
        self.backing_open(std::os::fd::AsFd::as_fd(&file))
    }

    /// FUSE_DEV_IOC_BACKING_OPEN with any map, malformed ones included.
    pub fn backing_open_map(&self, map: &abi::BackingMap) -> Result<i32, Errno> {
        server::backing_open(&self.shared.dev, map)
    }

    /// FUSE_DEV_IOC_BACKING_CLOSE. The id is a u32 in the UAPI; negative ids are passed as
    /// their bit pattern, as a careless server would.
    pub fn backing_close(&self, id: i32) -> Result<(), Errno> {
        let id = id as u32;
        // SAFETY: the ioctl reads a u32 that lives for the call.
        let ret = unsafe {
            libc::ioctl(
                self.shared.dev.as_raw_fd(),
                abi::FUSE_DEV_IOC_BACKING_CLOSE as libc::Ioctl,
                &id as *const u32,
            )
        };
        if ret < 0 {
            Err(Errno::from_raw_os_error(crate::sys::last_errno()))
        } else {
            Ok(())
        }
    }

    /// Requests after INIT read from /dev/fuse (FORGET and INTERRUPT aside), and fetched
    /// through the ring.
    pub fn requests_by_transport(&self) -> (u64, u64) {
        let t = &self.shared.transport;
        (
            t.dev_requests.load(std::sync::atomic::Ordering::SeqCst),
            t.ring_requests.load(std::sync::atomic::Ordering::SeqCst),
        )
    }

    /// Register a ring on this connection though INIT did not agree on FUSE over io_uring,
    /// as a confused server would; the thread's result is how the ring ended.
    pub fn start_ring_unasked(&self) -> io::Result<std::thread::JoinHandle<RingEnd>> {
        let state = Arc::clone(&self.shared);
        std::thread::Builder::new()
            .name("fuse-ring-unasked".into())
            .spawn(move || ring::serve(state, server::MAX_WRITE as usize, Payload::PerEntry))
    }

    /// How the ring ended, once it has (after the unmount).
    pub fn ring_end(&self) -> Option<RingEnd> {
        self.shared.transport.ring_end.lock().unwrap().clone()
    }

    /// Requests of one opcode seen so far.
    pub fn count(&self, opcode: u32) -> u64 {
        self.shared.count(opcode)
    }

    /// All requests seen so far, by opcode name.
    pub fn counts(&self) -> BTreeMap<String, u64> {
        self.shared.counts()
    }

    /// From now on the server reads requests and answers none.
    pub fn stall(&self) {
        self.shared.stall();
    }

    /// From now on the server serves requests of `opcode` read from /dev/fuse (a WRITE's
    /// data reaches its file) but keeps their answers, so their callers wait, until
    /// [`Self::release_held`].
    pub fn hold(&self, opcode: u32) {
        self.shared.hold(opcode);
    }

    /// The uniques of the requests whose answers [`Self::hold`] keeps, in order.
    pub fn held_uniques(&self) -> Vec<u64> {
        self.shared.held_uniques()
    }

    /// Send every answer [`Self::hold`] kept, and hold no more.
    pub fn release_held(&self) {
        self.shared.release_held();
    }

    /// Wait up to `timeout` until the server has seen `n` requests of `opcode`; the kernel
    /// sends some (RELEASE) asynchronously.
    pub fn wait_count(&self, opcode: u32, n: u64, timeout: Duration) -> u64 {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let seen = self.count(opcode);
            if seen >= n || std::time::Instant::now() >= deadline {
                return seen;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for FuseFs {
    fn drop(&mut self) {
        // Abort first, while the mount (still in mountinfo) names our connection: a case
        // process is client and server at once, and exiting with a request in flight to a
        // server thread already gone (one of its own mounts backing another) would wait
        // forever in the kernel. Aborted, every request fails at once.
        if let (Ok(ctl), Ok(conn)) = (fusectl(), self.connection()) {
            let _ = std::fs::write(ctl.join(conn.to_string()).join("abort"), "1");
        }
        // Lazy: a case may still hold files open.
        let _ = rustix::mount::unmount(&self.mnt, UnmountFlags::DETACH);
    }
}

/// /sys/fs/fuse/connections, with fusectl mounted there if nobody has (a case runs in its
/// own mount namespace, and a host may not mount it at all).
pub fn fusectl() -> io::Result<PathBuf> {
    let ctl = Path::new("/sys/fs/fuse/connections");
    if std::fs::read_dir(ctl).map_or(true, |mut d| d.next().is_none()) {
        rustix::mount::mount("fusectl", ctl, "fusectl", MountFlags::empty(), None)?;
    }
    Ok(ctl.to_path_buf())
}

/// When mount(2) returned against when the server's held INIT answer was written.
#[derive(Debug, Clone, Copy)]
pub struct MountOrder {
    /// How long the server held its answer.
    pub hold: Duration,
    /// How long mount(2) took.
    pub mount_took: Duration,
    /// Whether mount(2) returned after the answer's write began (false: before it, or with
    /// no answer yet).
    pub returned_after_answer: bool,
}

impl MountOrder {
    fn of(
        shared: &ServerState,
        began: std::time::Instant,
        returned: std::time::Instant,
        hold: Duration,
    ) -> MountOrder {
        MountOrder {
            hold,
            mount_took: returned - began,
            returned_after_answer: shared.init_answer_began().is_some_and(|a| a <= returned),
        }
    }
}

/// Mount a server whose INIT answer is held for `hold_ms` (in `init`) without
/// FUSE_DEV_IOC_SYNC_INIT: the control of `init.sync_init`, which shows mount(2) returning
/// before the answer where nothing makes it wait.
pub fn mount_order_without_sync_init(
    dir: &Path,
    init: InitReply,
) -> io::Result<(FuseFs, MountOrder)> {
    let mnt = dir.join("mnt");
    let backing_dir = dir.join("backing");
    std::fs::create_dir_all(&mnt)?;
    std::fs::create_dir_all(&backing_dir)?;
    let dev = rustix::fs::open("/dev/fuse", OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())?;
    let raw = dev.as_raw_fd();
    let hold = Duration::from_millis(init.hold_ms.into());
    let shared = ServerState::new(dev, backing_dir.clone(), init);
    // The server starts reading once mount(2) has returned: a read of a /dev/fuse fd no
    // mount has taken fails (EPERM) on some kernels without the ioctl.
    let began = std::time::Instant::now();
    mount_fd(&mnt, raw)?;
    let returned = std::time::Instant::now();
    let serving = Arc::clone(&shared);
    let server = std::thread::Builder::new()
        .name("fuse-server".into())
        .spawn(move || serving.serve())?;
    let order = MountOrder::of(&shared, began, returned, hold);
    let fs = FuseFs {
        shared,
        server: Some(server),
        mnt,
        backing_dir,
    };
    fs.wait_for_init()?;
    Ok((fs, order))
}

/// Requests waiting on connection `connection` (fusectl `waiting`): sent and not answered.
pub fn waiting(connection: u32) -> io::Result<u64> {
    let text = std::fs::read_to_string(fusectl()?.join(connection.to_string()).join("waiting"))?;
    text.trim()
        .parse()
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "fusectl waiting"))
}

/// Abort connection `connection` through fusectl: every waiting request fails.
pub fn abort_connection(connection: u32) -> io::Result<()> {
    std::fs::write(fusectl()?.join(connection.to_string()).join("abort"), "1")
}

/// What a mount with FUSE_DEV_IOC_SYNC_INIT showed.
#[derive(Debug)]
pub struct SyncInitSeen {
    /// mount(2) against the server's held INIT answer.
    pub order: MountOrder,
    /// A BACKING_OPEN issued before mount(2) was still waiting 300 ms later.
    pub waited_for_mount: bool,
    /// What that BACKING_OPEN returned once the mount was there.
    pub backing_open_before_mount: Result<i32, rustix::io::Errno>,
    /// A BACKING_OPEN issued as soon as mount(2) returned: it works only once the INIT
    /// answer has switched passthrough on (EPERM before), so it tells from the kernel's
    /// own state whether mount(2) waited for INIT.
    pub backing_open_after_mount: Result<i32, rustix::io::Errno>,
    /// The ioctl again, on the mounted fd.
    pub again_after_mount: Result<(), rustix::io::Errno>,
}

/// mount(2) of a FUSE file system at `mnt` served through the /dev/fuse fd `fd`.
fn mount_fd(mnt: &Path, fd: i32) -> io::Result<()> {
    let opts = format!("fd={fd},rootmode=40000,user_id=0,group_id=0");
    rustix::mount::mount(
        "fpt",
        mnt,
        "fuse",
        MountFlags::NOSUID | MountFlags::NODEV,
        Some(c(&opts).as_c_str()),
    )?;
    Ok(())
}

fn sync_init(fd: i32) -> Result<(), rustix::io::Errno> {
    // SAFETY: an ioctl without an argument on an fd we own.
    let ret = unsafe { libc::ioctl(fd, abi::FUSE_DEV_IOC_SYNC_INIT as libc::Ioctl) };
    if ret < 0 {
        Err(rustix::io::Errno::from_raw_os_error(
            crate::sys::last_errno(),
        ))
    } else {
        Ok(())
    }
}

fn c(s: &str) -> std::ffi::CString {
    std::ffi::CString::new(s).expect("mount options contain no NUL")
}

pub fn errno(e: &io::Error) -> Errno {
    Errno::from_raw_os_error(e.raw_os_error().unwrap_or(libc::EIO))
}
