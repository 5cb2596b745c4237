//! A small FUSE server that reads /dev/fuse itself.
//!
//! It serves one flat directory of regular files, each backed by a file on a tmpfs. The case
//! that owns it decides the INIT answer and, per file, the OPEN/CREATE answer, down to the
//! open flags and backing id; the server counts every request by opcode so a case can prove
//! the kernel went around it.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use rustix::io::Errno;
use zerocopy::{FromBytes, IntoBytes};

use super::abi::{self, op};

/// What the server answers to the kernel's INIT.
#[derive(Debug, Clone, Copy)]
pub struct InitReply {
    /// The 64-bit flags we answer with (ANDed with what the kernel offered, as libfuse does,
    /// unless `raw_flags` is set).
    pub flags: u64,
    pub max_stack_depth: u32,
    /// Answer `flags` as given, even bits the kernel did not offer.
    pub raw_flags: bool,
    /// Ask for FUSE over io_uring (when the kernel offers it) and serve every request after
    /// INIT through a ring.
    pub io_uring: bool,
    /// FUSE_REQUEST_TIMEOUT with this many seconds, when not 0 (and the kernel offers it).
    pub request_timeout: u16,
    /// Announce this protocol minor instead of ours (when not 0), as an older library does.
    pub minor: u32,
    /// Hold the INIT answer back this many milliseconds, as a slow server would: what makes
    /// the order of mount(2)'s return and the answer observable.
    pub hold_ms: u16,
    /// With `io_uring`: register no ring entries after INIT; the case drives the ring's
    /// commands itself (and no request but INIT is served).
    pub ring_by_case: bool,
    /// With `io_uring`: where the entries' payloads live. A pool where the kernel offers
    /// FUSE_HAS_IO_URING_BUFPOOL, else (as a server would) a buffer per entry.
    pub ring_payload: super::ring::Payload,
}

impl InitReply {
    /// Ask for passthrough with the given `max_stack_depth`.
    pub fn passthrough(max_stack_depth: u32) -> Self {
        InitReply {
            flags: Self::BASE | abi::init_flags::INIT_EXT | abi::init_flags::PASSTHROUGH,
            max_stack_depth,
            raw_flags: false,
            io_uring: false,
            request_timeout: 0,
            minor: 0,
            hold_ms: 0,
            ring_by_case: false,
            ring_payload: super::ring::Payload::PerEntry,
        }
    }

    /// A plain server: no passthrough asked for.
    pub fn plain() -> Self {
        InitReply {
            flags: Self::BASE | abi::init_flags::INIT_EXT,
            max_stack_depth: 0,
            raw_flags: false,
            io_uring: false,
            request_timeout: 0,
            minor: 0,
            hold_ms: 0,
            ring_by_case: false,
            ring_payload: super::ring::Payload::PerEntry,
        }
    }

    const BASE: u64 =
        abi::init_flags::ASYNC_READ | abi::init_flags::BIG_WRITES | abi::init_flags::MAX_PAGES;
}

/// What the kernel sent in INIT, and what we answered.
#[derive(Debug, Clone, Copy)]
pub struct InitExchange {
    pub major: u32,
    pub minor: u32,
    pub kernel_flags: u64,
    /// The flags we answered with.
    pub answered_flags: u64,
}

impl InitExchange {
    pub fn kernel_offers_passthrough(&self) -> bool {
        self.kernel_flags & abi::init_flags::PASSTHROUGH != 0
    }

    pub fn kernel_offers(&self, flag: u64) -> bool {
        self.kernel_flags & flag != 0
    }

    /// Both sides asked for FUSE over io_uring: requests after INIT go through a ring.
    pub fn over_ring(&self) -> bool {
        self.answered_flags & self.kernel_flags & abi::init_flags::OVER_IO_URING != 0
    }
}

/// Every connection this process served, added up: what a case run over the ring checks
/// once the case has ended (its mounts may be gone by then).
pub struct ProcessTransport {
    /// Connections whose INIT answer was sent.
    pub connections: AtomicU64,
    /// Of which with FUSE over io_uring agreed by both sides.
    pub ring_connections: AtomicU64,
    pub dev_requests: AtomicU64,
    pub ring_requests: AtomicU64,
}

pub static PROCESS: ProcessTransport = ProcessTransport {
    connections: AtomicU64::new(0),
    ring_connections: AtomicU64::new(0),
    dev_requests: AtomicU64::new(0),
    ring_requests: AtomicU64::new(0),
};

/// Where the requests of a connection came from.
#[derive(Debug, Default)]
pub(crate) struct Transport {
    /// Requests other than INIT, FORGET and INTERRUPT read from /dev/fuse.
    pub dev_requests: AtomicU64,
    /// Requests fetched through the ring.
    pub ring_requests: AtomicU64,
    /// How the ring ended, once it has.
    pub ring_end: Mutex<Option<super::ring::RingEnd>>,
}

/// The answer to OPEN/CREATE for one file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpenReply {
    pub open_flags: u32,
    pub backing_id: i32,
}

impl OpenReply {
    /// Page-cache mode, served by READ/WRITE requests.
    pub const CACHED: OpenReply = OpenReply {
        open_flags: 0,
        backing_id: 0,
    };

    pub fn passthrough(backing_id: i32) -> Self {
        OpenReply {
            open_flags: abi::fopen::PASSTHROUGH,
            backing_id,
        }
    }
}

struct Node {
    name: String,
    path: PathBuf,
    /// The server's own fd of the backing file; None once a case let go of it (then each
    /// request opens the path), so that only the kernel holds the file.
    backing: Option<File>,
    open_reply: OpenReply,
}

impl Node {
    fn with_file<T>(&self, f: impl FnOnce(&File) -> std::io::Result<T>) -> Result<T, Errno> {
        match &self.backing {
            Some(file) => f(file),
            None => File::options()
                .read(true)
                .write(true)
                .open(&self.path)
                .and_then(|file| f(&file)),
        }
        .map_err(|e| super::errno(&e))
    }
}

/// What CREATE does with the file it makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateReply {
    /// Answer with these open flags and backing id.
    Fixed(OpenReply),
    /// Register the new backing file (BACKING_OPEN from the server) and answer with
    /// FOPEN_PASSTHROUGH and its id.
    Passthrough,
}

struct Tree {
    /// Index + 2 is the node id; node 1 is the root directory.
    nodes: Vec<Node>,
    create_reply: CreateReply,
    /// Ids the server registered for CREATE, in order.
    created_ids: Vec<i32>,
}

pub(crate) struct ServerState {
    pub(crate) dev: OwnedFd,
    backing_dir: PathBuf,
    init_reply: InitReply,
    tree: Mutex<Tree>,
    counts: Vec<AtomicU64>,
    init: Mutex<Option<InitExchange>>,
    init_done: Condvar,
    /// When the INIT answer's write(2) began (the kernel applies it inside that write).
    init_answer_began: Mutex<Option<std::time::Instant>>,
    /// The data of each NOTIFY_REPLY (the kernel's answer to a FUSE_NOTIFY_RETRIEVE), after
    /// its fuse_notify_retrieve_in.
    retrieved: Mutex<Vec<Vec<u8>>>,
    /// A stalled server reads requests and answers none, as a stopped or wedged one would.
    stalled: std::sync::atomic::AtomicBool,
    /// The errno every GETXATTR gets: ENOSYS (the kernel then stops asking), or what a case
    /// set, such as ENODATA to play a server that has extended attributes.
    getxattr_errno: std::sync::atomic::AtomicI32,
    /// The errno every OPEN gets when not 0: ENOSYS plays a server without an open.
    open_errno: std::sync::atomic::AtomicI32,
    /// While not 0, answers to requests of this opcode read from /dev/fuse are kept in
    /// `held` instead of sent: the request is done, its caller still waits.
    hold_opcode: std::sync::atomic::AtomicU32,
    held: Mutex<Vec<(u64, i32, Vec<u8>)>>,
    pub(crate) transport: Transport,
}

const ROOT: u64 = 1;
pub(crate) const MAX_WRITE: u32 = 1 << 20;
const MAX_PAGES: u16 = 256;
/// The kernel refuses reads of /dev/fuse with a smaller buffer than max_write + headers.
const BUF_SIZE: usize = MAX_WRITE as usize + 4096;

impl ServerState {
    pub(crate) fn new(dev: OwnedFd, backing_dir: PathBuf, init_reply: InitReply) -> Arc<Self> {
        Arc::new(ServerState {
            dev,
            backing_dir,
            init_reply,
            tree: Mutex::new(Tree {
                nodes: Vec::new(),
                create_reply: CreateReply::Fixed(OpenReply::CACHED),
                created_ids: Vec::new(),
            }),
            counts: (0..64).map(|_| AtomicU64::new(0)).collect(),
            init: Mutex::new(None),
            init_done: Condvar::new(),
            init_answer_began: Mutex::new(None),
            retrieved: Mutex::new(Vec::new()),
            stalled: std::sync::atomic::AtomicBool::new(false),
            getxattr_errno: std::sync::atomic::AtomicI32::new(Errno::NOSYS.raw_os_error()),
            open_errno: std::sync::atomic::AtomicI32::new(0),
            hold_opcode: std::sync::atomic::AtomicU32::new(0),
            held: Mutex::new(Vec::new()),
            transport: Transport::default(),
        })
    }

    /// Send the kernel notification `code` with `payload`: the write's outcome.
    pub(crate) fn notify(&self, code: i32, payload: &[u8]) -> Result<(), Errno> {
        let out = abi::OutHeader {
            len: (std::mem::size_of::<abi::OutHeader>() + payload.len()) as u32,
            error: code,
            unique: 0,
        };
        let mut msg = out.as_bytes().to_vec();
        msg.extend_from_slice(payload);
        rustix::io::write(&self.dev, &msg).map(drop)
    }

    /// What the NOTIFY_REPLYs so far carried.
    pub(crate) fn retrieved(&self) -> Vec<Vec<u8>> {
        self.retrieved.lock().unwrap().clone()
    }

    /// The node id the server gave `name`.
    pub(crate) fn nodeid(&self, name: &str) -> Option<u64> {
        let tree = self.tree.lock().unwrap();
        tree.nodes
            .iter()
            .position(|n| n.name == name)
            .map(|i| i as u64 + 2)
    }

    /// When the INIT answer's write began, once it has.
    pub(crate) fn init_answer_began(&self) -> Option<std::time::Instant> {
        *self.init_answer_began.lock().unwrap()
    }

    pub(crate) fn add_file(&self, name: &str, path: PathBuf, backing: File, open_reply: OpenReply) {
        let mut tree = self.tree.lock().unwrap();
        tree.nodes.push(Node {
            name: name.to_string(),
            path,
            backing: Some(backing),
            open_reply,
        });
    }

    /// Close the server's own fd of `name`'s backing file.
    pub(crate) fn drop_server_fd(&self, name: &str) {
        let mut tree = self.tree.lock().unwrap();
        if let Some(node) = tree.nodes.iter_mut().find(|n| n.name == name) {
            node.backing = None;
        }
    }

    pub(crate) fn created_ids(&self) -> Vec<i32> {
        self.tree.lock().unwrap().created_ids.clone()
    }

    pub(crate) fn set_open_reply(&self, name: &str, reply: OpenReply) {
        let mut tree = self.tree.lock().unwrap();
        if let Some(node) = tree.nodes.iter_mut().find(|n| n.name == name) {
            node.open_reply = reply;
        }
    }

    pub(crate) fn set_create_reply(&self, reply: CreateReply) {
        self.tree.lock().unwrap().create_reply = reply;
    }

    pub(crate) fn count(&self, opcode: u32) -> u64 {
        self.counts
            .get(opcode as usize)
            .map_or(0, |c| c.load(Ordering::SeqCst))
    }

    /// Requests seen so far, by opcode name; opcodes never seen are left out.
    pub(crate) fn counts(&self) -> BTreeMap<String, u64> {
        self.counts
            .iter()
            .enumerate()
            .filter_map(|(op, c)| {
                let n = c.load(Ordering::SeqCst);
                (n > 0).then(|| (abi::opcode_name(op as u32), n))
            })
            .collect()
    }

    pub(crate) fn answer_getxattr(&self, errno: Errno) {
        self.getxattr_errno
            .store(errno.raw_os_error(), Ordering::SeqCst);
    }

    pub(crate) fn answer_open(&self, errno: Errno) {
        self.open_errno
            .store(errno.raw_os_error(), Ordering::SeqCst);
    }

    pub(crate) fn stall(&self) {
        self.stalled.store(true, Ordering::SeqCst);
    }

    /// Keep the answers to requests of `opcode` (served, not sent) until [`Self::release_held`].
    pub(crate) fn hold(&self, opcode: u32) {
        self.hold_opcode.store(opcode, Ordering::SeqCst);
    }

    /// Stop holding and send every answer kept so far, in the order they were made.
    pub(crate) fn release_held(&self) {
        // Under the lock `kept` takes: no answer is kept after the list is taken.
        let answers = {
            let mut held = self.held.lock().unwrap();
            self.hold_opcode.store(0, Ordering::SeqCst);
            std::mem::take(&mut *held)
        };
        for (unique, error, data) in answers {
            self.send(unique, error, &data);
        }
    }

    /// The uniques of the requests whose answers are held, in the order they came.
    pub(crate) fn held_uniques(&self) -> Vec<u64> {
        self.held
            .lock()
            .unwrap()
            .iter()
            .map(|(u, _, _)| *u)
            .collect()
    }

    /// Keep the answer to `header` when its opcode is held: whether it was kept.
    fn kept(&self, header: &abi::InHeader, error: i32, data: &[u8]) -> bool {
        let mut held = self.held.lock().unwrap();
        let keep = header.opcode == self.hold_opcode.load(Ordering::SeqCst);
        if keep {
            held.push((header.unique, error, data.to_vec()));
        }
        keep
    }

    pub(crate) fn wait_init(&self, timeout: Duration) -> Option<InitExchange> {
        let guard = self.init.lock().unwrap();
        let (guard, _) = self
            .init_done
            .wait_timeout_while(guard, timeout, |i| i.is_none())
            .unwrap();
        *guard
    }

    /// The request loop; returns when the connection goes away (and its ring, if any, has
    /// ended too: the ring holds the /dev/fuse fd, and with it the backing files).
    pub(crate) fn serve(self: Arc<Self>) {
        let ring = self.read_loop();
        if let Some(ring) = ring {
            let _ = ring.join();
        }
    }

    fn read_loop(self: &Arc<Self>) -> Option<std::thread::JoinHandle<()>> {
        let mut buf = vec![0u8; BUF_SIZE];
        let mut ring = None;
        loop {
            let n = match rustix::io::read(&self.dev, &mut buf) {
                Ok(n) => n,
                // ENOENT: the request was interrupted before we read it.
                Err(Errno::INTR | Errno::NOENT | Errno::AGAIN) => continue,
                // ENODEV: unmounted or aborted. Anything else: nothing more to serve either.
                Err(_) => return ring,
            };
            let Ok((header, body)) = abi::InHeader::read_from_prefix(&buf[..n]) else {
                continue;
            };
            if let Some((error, data)) = self.handle(&header, body, false) {
                if !self.kept(&header, error, &data) {
                    self.send(header.unique, error, &data);
                }
            }
            if header.opcode == op::INIT
                && ring.is_none()
                && self.over_ring()
                && !self.init_reply.ring_by_case
            {
                // The INIT answer is applied: the kernel holds every other request until
                // the ring has registered an entry in each of its queues.
                let state = Arc::clone(self);
                let pools_offered =
                    self.init.lock().unwrap().is_some_and(|i| {
                        i.kernel_flags & abi::init_flags::HAS_IO_URING_BUFPOOL != 0
                    });
                let mode = match self.init_reply.ring_payload {
                    _ if !pools_offered => super::ring::Payload::PerEntry,
                    asked => asked,
                };
                ring = std::thread::Builder::new()
                    .name("fuse-ring".into())
                    .spawn(move || {
                        let handler: Arc<dyn super::ring::Handler> = Arc::clone(&state) as _;
                        let end = super::ring::serve(handler, MAX_WRITE as usize, mode);
                        *state.transport.ring_end.lock().unwrap() = Some(end);
                    })
                    .ok();
            }
            if header.opcode == op::DESTROY {
                return ring;
            }
        }
    }

    fn over_ring(&self) -> bool {
        self.init.lock().unwrap().is_some_and(|i| i.over_ring())
    }

    /// Count a request (by opcode and by where it came from) and serve it: the answer's
    /// error and data, or None when it takes none (or the server is stalled).
    pub(crate) fn handle(
        &self,
        header: &abi::InHeader,
        body: &[u8],
        from_ring: bool,
    ) -> Option<(i32, Vec<u8>)> {
        self.tally(header, from_ring);
        if self.stalled.load(Ordering::SeqCst) {
            return None;
        }
        match self.dispatch(header, body) {
            Reply::None => None,
            Reply::Error(e) => Some((-e.raw_os_error(), Vec::new())),
            Reply::Data(data) => Some((0, data)),
        }
    }

    /// Count a request by opcode and by where it came from.
    fn tally(&self, header: &abi::InHeader, from_ring: bool) {
        if let Some(c) = self.counts.get(header.opcode as usize) {
            c.fetch_add(1, Ordering::SeqCst);
        }
        let counter = if from_ring {
            Some(&self.transport.ring_requests)
        } else if !matches!(
            header.opcode,
            op::INIT | op::FORGET | op::BATCH_FORGET | op::INTERRUPT
        ) {
            Some(&self.transport.dev_requests)
        } else {
            None
        };
        if let Some(c) = counter {
            c.fetch_add(1, Ordering::SeqCst);
            let total = if from_ring {
                &PROCESS.ring_requests
            } else {
                &PROCESS.dev_requests
            };
            total.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn send(&self, unique: u64, error: i32, data: &[u8]) {
        let out = abi::OutHeader {
            len: (std::mem::size_of::<abi::OutHeader>() + data.len()) as u32,
            error,
            unique,
        };
        let mut msg = Vec::with_capacity(out.len as usize);
        msg.extend_from_slice(out.as_bytes());
        msg.extend_from_slice(data);
        // A reply the kernel no longer waits for (interrupted request) fails with ENOENT:
        // nothing to do about it.
        let _ = rustix::io::write(&self.dev, &msg);
    }

    fn dispatch(&self, h: &abi::InHeader, body: &[u8]) -> Reply {
        match h.opcode {
            op::INIT => self.init(h.unique, body),
            op::LOOKUP => self.lookup(h.nodeid, body),
            op::GETATTR => self.getattr(h.nodeid),
            op::SETATTR => self.setattr(h.nodeid, body),
            op::OPEN => self.open(h.nodeid, body),
            op::CREATE => self.create(h.nodeid, body),
            op::READ => self.read(h.nodeid, body),
            op::WRITE => self.write(h.nodeid, body),
            op::OPENDIR => data(abi::OpenOut::default().as_bytes()),
            op::READDIR => self.readdir(h.nodeid, body),
            op::STATFS => self.statfs(),
            op::FLUSH | op::RELEASE | op::RELEASEDIR | op::FSYNC | op::DESTROY => data(&[]),
            op::FORGET | op::BATCH_FORGET | op::INTERRUPT => Reply::None,
            // Takes no answer: the data after fuse_notify_retrieve_in (40 bytes) is kept.
            op::NOTIFY_REPLY => {
                let data = body.get(40..).unwrap_or_default().to_vec();
                self.retrieved.lock().unwrap().push(data);
                Reply::None
            }
            op::GETXATTR => Reply::Error(Errno::from_raw_os_error(
                self.getxattr_errno.load(Ordering::SeqCst),
            )),
            _ => Reply::Error(Errno::NOSYS),
        }
    }

    fn init(&self, unique: u64, body: &[u8]) -> Reply {
        // Kernels before 7.36 send a 16-byte fuse_init_in: pad it out with zeros.
        let mut raw = [0u8; std::mem::size_of::<abi::InitIn>()];
        let len = body.len().min(raw.len());
        raw[..len].copy_from_slice(&body[..len]);
        let Ok(init_in) = abi::InitIn::read_from_bytes(&raw[..]) else {
            return Reply::Error(Errno::INVAL);
        };
        let mut kernel_flags = u64::from(init_in.flags);
        if kernel_flags & abi::init_flags::INIT_EXT != 0 {
            kernel_flags |= u64::from(init_in.flags2) << 32;
        }
        let want = self.init_reply;
        let mut asked = want.flags;
        if want.io_uring {
            asked |= abi::init_flags::OVER_IO_URING;
        }
        if want.request_timeout != 0 {
            asked |= abi::init_flags::REQUEST_TIMEOUT;
        }
        let flags = if want.raw_flags {
            asked
        } else {
            asked & kernel_flags
        };
        let out = abi::InitOut {
            major: abi::KERNEL_VERSION,
            minor: match want.minor {
                0 => abi::OUR_MINOR.min(init_in.minor),
                announced => announced,
            },
            max_readahead: init_in.max_readahead,
            flags: flags as u32,
            max_background: 16,
            congestion_threshold: 12,
            max_write: MAX_WRITE,
            time_gran: 1,
            max_pages: MAX_PAGES,
            map_alignment: 0,
            flags2: (flags >> 32) as u32,
            max_stack_depth: want.max_stack_depth,
            request_timeout: want.request_timeout,
            unused: [0; 11],
        };
        let exchange = InitExchange {
            major: init_in.major,
            minor: init_in.minor,
            kernel_flags,
            answered_flags: flags,
        };
        if want.hold_ms > 0 {
            std::thread::sleep(std::time::Duration::from_millis(want.hold_ms.into()));
        }
        // Kernels before 7.23 take a shorter reply; all the kernels we test are newer.
        // The kernel applies the reply inside our write(2): only after it may a case go on.
        *self.init_answer_began.lock().unwrap() = Some(std::time::Instant::now());
        self.send(unique, 0, out.as_bytes());
        PROCESS.connections.fetch_add(1, Ordering::SeqCst);
        if exchange.over_ring() {
            PROCESS.ring_connections.fetch_add(1, Ordering::SeqCst);
        }
        *self.init.lock().unwrap() = Some(exchange);
        self.init_done.notify_all();
        Reply::None
    }

    fn lookup(&self, parent: u64, body: &[u8]) -> Reply {
        if parent != ROOT {
            return Reply::Error(Errno::NOENT);
        }
        let name = cstr(body);
        let tree = self.tree.lock().unwrap();
        match tree.nodes.iter().position(|n| n.name == name) {
            Some(i) => match node_attr(i as u64 + 2, &tree.nodes[i]) {
                Ok(attr) => data(entry(attr).as_bytes()),
                Err(e) => Reply::Error(e),
            },
            None => Reply::Error(Errno::NOENT),
        }
    }

    fn attr_of(&self, nodeid: u64) -> Result<abi::Attr, Errno> {
        if nodeid == ROOT {
            return Ok(abi::Attr {
                ino: ROOT,
                mode: libc::S_IFDIR | 0o755,
                nlink: 2,
                blksize: 4096,
                ..Default::default()
            });
        }
        let tree = self.tree.lock().unwrap();
        let node = node_index(nodeid)
            .and_then(|i| tree.nodes.get(i))
            .ok_or(Errno::NOENT)?;
        node_attr(nodeid, node)
    }

    fn getattr(&self, nodeid: u64) -> Reply {
        match self.attr_of(nodeid) {
            Ok(attr) => data(attr_out(attr).as_bytes()),
            Err(e) => Reply::Error(e),
        }
    }

    fn setattr(&self, nodeid: u64, body: &[u8]) -> Reply {
        let Ok((set, _)) = abi::SetattrIn::read_from_prefix(body) else {
            return Reply::Error(Errno::INVAL);
        };
        if set.valid & abi::fattr::SIZE != 0 {
            let tree = self.tree.lock().unwrap();
            let Some(node) = node_index(nodeid).and_then(|i| tree.nodes.get(i)) else {
                return Reply::Error(Errno::NOENT);
            };
            if let Err(e) = node.with_file(|f| f.set_len(set.size)) {
                return Reply::Error(e);
            }
        }
        // Mode, owner and times are accepted and ignored: the cases do not depend on them.
        self.getattr(nodeid)
    }

    fn open(&self, nodeid: u64, body: &[u8]) -> Reply {
        let errno = self.open_errno.load(Ordering::SeqCst);
        if errno != 0 {
            return Reply::Error(Errno::from_raw_os_error(errno));
        }
        let tree = self.tree.lock().unwrap();
        let Some(node) = node_index(nodeid).and_then(|i| tree.nodes.get(i)) else {
            return Reply::Error(Errno::NOENT);
        };
        // O_TRUNC reaches OPEN only where INIT agreed FUSE_ATOMIC_O_TRUNC: ours to do.
        let flags = abi::OpenIn::read_from_prefix(body).map_or(0, |(o, _)| o.flags);
        if flags & libc::O_TRUNC as u32 != 0 {
            if let Err(e) = node.with_file(|f| f.set_len(0)) {
                return Reply::Error(e);
            }
        }
        data(open_out(nodeid, node.open_reply).as_bytes())
    }

    fn create(&self, parent: u64, body: &[u8]) -> Reply {
        let Ok((create, rest)) = abi::CreateIn::read_from_prefix(body) else {
            return Reply::Error(Errno::INVAL);
        };
        if parent != ROOT {
            return Reply::Error(Errno::NOENT);
        }
        let name = cstr(rest);
        let path = self.backing_dir.join(&name);
        let backing = match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(create.flags & libc::O_TRUNC as u32 != 0)
            .open(&path)
        {
            Ok(f) => f,
            Err(e) => return Reply::Error(super::errno(&e)),
        };
        let mut tree = self.tree.lock().unwrap();
        let reply = match tree.create_reply {
            CreateReply::Fixed(r) => r,
            CreateReply::Passthrough => {
                let map = abi::BackingMap::of(std::os::fd::AsRawFd::as_raw_fd(&backing));
                match backing_open(&self.dev, &map) {
                    Ok(id) => {
                        tree.created_ids.push(id);
                        OpenReply::passthrough(id)
                    }
                    Err(e) => return Reply::Error(e),
                }
            }
        };
        let index = match tree.nodes.iter().position(|n| n.name == name) {
            Some(i) => i,
            None => {
                tree.nodes.push(Node {
                    name,
                    path,
                    backing: Some(backing),
                    open_reply: reply,
                });
                tree.nodes.len() - 1
            }
        };
        let nodeid = index as u64 + 2;
        match node_attr(nodeid, &tree.nodes[index]) {
            Ok(attr) => {
                let mut out = entry(attr).as_bytes().to_vec();
                out.extend_from_slice(open_out(nodeid, reply).as_bytes());
                Reply::Data(out)
            }
            Err(e) => Reply::Error(e),
        }
    }

    fn read(&self, nodeid: u64, body: &[u8]) -> Reply {
        let Ok((read, _)) = abi::ReadIn::read_from_prefix(body) else {
            return Reply::Error(Errno::INVAL);
        };
        let tree = self.tree.lock().unwrap();
        let Some(node) = node_index(nodeid).and_then(|i| tree.nodes.get(i)) else {
            return Reply::Error(Errno::NOENT);
        };
        let read_all = |file: &File| {
            let mut out = vec![0u8; read.size as usize];
            let mut filled = 0;
            while filled < out.len() {
                match file.read_at(&mut out[filled..], read.offset + filled as u64)? {
                    0 => break,
                    n => filled += n,
                }
            }
            out.truncate(filled);
            Ok(out)
        };
        match node.with_file(read_all) {
            Ok(out) => Reply::Data(out),
            Err(e) => Reply::Error(e),
        }
    }

    fn write(&self, nodeid: u64, body: &[u8]) -> Reply {
        let Ok((write, payload)) = abi::WriteIn::read_from_prefix(body) else {
            return Reply::Error(Errno::INVAL);
        };
        let tree = self.tree.lock().unwrap();
        let Some(node) = node_index(nodeid).and_then(|i| tree.nodes.get(i)) else {
            return Reply::Error(Errno::NOENT);
        };
        let payload = &payload[..(write.size as usize).min(payload.len())];
        if let Err(e) = node.with_file(|f| f.write_all_at(payload, write.offset)) {
            return Reply::Error(e);
        }
        data(
            abi::WriteOut {
                size: payload.len() as u32,
                padding: 0,
            }
            .as_bytes(),
        )
    }

    fn readdir(&self, nodeid: u64, body: &[u8]) -> Reply {
        let Ok((read, _)) = abi::ReadIn::read_from_prefix(body) else {
            return Reply::Error(Errno::INVAL);
        };
        if nodeid != ROOT {
            return Reply::Error(Errno::NOTDIR);
        }
        let tree = self.tree.lock().unwrap();
        let mut entries: Vec<(u64, String, u32)> = vec![
            (ROOT, ".".into(), libc::DT_DIR as u32),
            (ROOT, "..".into(), libc::DT_DIR as u32),
        ];
        for (i, n) in tree.nodes.iter().enumerate() {
            entries.push((i as u64 + 2, n.name.clone(), libc::DT_REG as u32));
        }
        let mut out = Vec::new();
        for (index, (ino, name, typ)) in entries.iter().enumerate().skip(read.offset as usize) {
            let dirent = abi::Dirent {
                ino: *ino,
                off: index as u64 + 1,
                namelen: name.len() as u32,
                typ: *typ,
            };
            let padded = (std::mem::size_of::<abi::Dirent>() + name.len()).div_ceil(8) * 8;
            if out.len() + padded > read.size as usize {
                break;
            }
            out.extend_from_slice(dirent.as_bytes());
            out.extend_from_slice(name.as_bytes());
            out.resize(out.len().div_ceil(8) * 8, 0);
        }
        Reply::Data(out)
    }

    fn statfs(&self) -> Reply {
        let st = abi::Kstatfs {
            blocks: 1 << 20,
            bfree: 1 << 19,
            bavail: 1 << 19,
            files: 1 << 16,
            ffree: 1 << 15,
            bsize: 4096,
            namelen: 255,
            frsize: 4096,
            ..Default::default()
        };
        data(st.as_bytes())
    }
}

enum Reply {
    /// FORGET and INTERRUPT take no reply; INIT sends its own.
    None,
    Error(Errno),
    Data(Vec<u8>),
}

fn data(bytes: &[u8]) -> Reply {
    Reply::Data(bytes.to_vec())
}

fn node_index(nodeid: u64) -> Option<usize> {
    nodeid.checked_sub(2).map(|i| i as usize)
}

fn cstr(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// FUSE_DEV_IOC_BACKING_OPEN on a connection's fd: the id, or the errno.
pub fn backing_open(dev: &OwnedFd, map: &abi::BackingMap) -> Result<i32, Errno> {
    use std::os::fd::AsRawFd;
    // SAFETY: the ioctl reads a 16-byte struct that lives for the call.
    let ret = unsafe {
        libc::ioctl(
            dev.as_raw_fd(),
            abi::FUSE_DEV_IOC_BACKING_OPEN as libc::Ioctl,
            map as *const abi::BackingMap,
        )
    };
    if ret < 0 {
        Err(Errno::from_raw_os_error(crate::sys::last_errno()))
    } else {
        Ok(ret)
    }
}

/// Attributes of a served file: the backing file's size and times, our node id.
fn node_attr(nodeid: u64, node: &Node) -> Result<abi::Attr, Errno> {
    let md = match &node.backing {
        Some(f) => f.metadata(),
        None => std::fs::metadata(&node.path),
    }
    .map_err(|e| super::errno(&e))?;
    Ok(abi::Attr {
        ino: nodeid,
        size: md.size(),
        blocks: md.blocks(),
        atime: md.atime() as u64,
        mtime: md.mtime() as u64,
        ctime: md.ctime() as u64,
        atimensec: md.atime_nsec() as u32,
        mtimensec: md.mtime_nsec() as u32,
        ctimensec: md.ctime_nsec() as u32,
        mode: libc::S_IFREG | 0o644,
        nlink: 1,
        blksize: 4096,
        ..Default::default()
    })
}

/// Entries and attributes are valid for 1 s: long enough that a case's stat() calls do not
/// each cost a LOOKUP, short enough not to matter between cases.
fn entry(attr: abi::Attr) -> abi::EntryOut {
    abi::EntryOut {
        nodeid: attr.ino,
        entry_valid: 1,
        attr_valid: 1,
        attr,
        ..Default::default()
    }
}

fn attr_out(attr: abi::Attr) -> abi::AttrOut {
    abi::AttrOut {
        attr_valid: 1,
        attr,
        ..Default::default()
    }
}

fn open_out(nodeid: u64, reply: OpenReply) -> abi::OpenOut {
    abi::OpenOut {
        fh: nodeid,
        open_flags: reply.open_flags,
        backing_id: reply.backing_id,
    }
}

impl super::ring::Handler for ServerState {
    fn dev(&self) -> std::os::fd::BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(&self.dev)
    }

    fn handle(
        &self,
        header: &abi::InHeader,
        body: &[u8],
        from_ring: bool,
    ) -> Option<(i32, Vec<u8>)> {
        ServerState::handle(self, header, body, from_ring)
    }

    fn zero_copy(
        &self,
        header: &abi::InHeader,
        op_in: &[u8],
    ) -> Result<super::ring::ZeroCopyIo, i32> {
        self.tally(header, true);
        let (offset, len, write) = match header.opcode {
            op::READ => abi::ReadIn::read_from_prefix(op_in)
                .ok()
                .map(|(r, _)| (r.offset, r.size, false)),
            op::WRITE => abi::WriteIn::read_from_prefix(op_in)
                .ok()
                .map(|(w, _)| (w.offset, w.size, true)),
            _ => None,
        }
        .ok_or(-libc::EINVAL)?;
        let tree = self.tree.lock().unwrap();
        let node = node_index(header.nodeid)
            .and_then(|i| tree.nodes.get(i))
            .ok_or(-libc::ENOENT)?;
        let file = node
            .with_file(|f| f.try_clone())
            .map_err(|e| -e.raw_os_error())?;
        Ok(super::ring::ZeroCopyIo {
            file,
            offset,
            len,
            write,
        })
    }
}
