//! The /dev/fuse wire format: the subset of `include/uapi/linux/fuse.h` the agent speaks.
//!
//! Written out by hand (no libfuse, no fuser) so a case can put any byte it likes into an
//! INIT or OPEN reply, including the ones a well-behaved library would refuse to send.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

pub const KERNEL_VERSION: u32 = 7;
/// The minor we announce. The kernel uses min(ours, its own).
pub const OUR_MINOR: u32 = 45;

/// Opcodes (`enum fuse_opcode`).
#[allow(dead_code)]
pub mod op {
    pub const LOOKUP: u32 = 1;
    pub const FORGET: u32 = 2;
    pub const GETATTR: u32 = 3;
    pub const SETATTR: u32 = 4;
    pub const OPEN: u32 = 14;
    pub const READ: u32 = 15;
    pub const WRITE: u32 = 16;
    pub const STATFS: u32 = 17;
    pub const RELEASE: u32 = 18;
    pub const FSYNC: u32 = 20;
    pub const GETXATTR: u32 = 22;
    pub const LISTXATTR: u32 = 23;
    pub const FLUSH: u32 = 25;
    pub const INIT: u32 = 26;
    pub const OPENDIR: u32 = 27;
    pub const READDIR: u32 = 28;
    pub const RELEASEDIR: u32 = 29;
    pub const ACCESS: u32 = 34;
    pub const CREATE: u32 = 35;
    pub const INTERRUPT: u32 = 36;
    pub const DESTROY: u32 = 38;
    pub const BATCH_FORGET: u32 = 42;
    pub const FALLOCATE: u32 = 43;
    pub const READDIRPLUS: u32 = 44;
    pub const LSEEK: u32 = 46;
    pub const COPY_FILE_RANGE: u32 = 47;
    pub const STATX: u32 = 52;
    /// 7.45 (6.18): COPY_FILE_RANGE with a 64-bit length.
    pub const COPY_FILE_RANGE_64: u32 = 53;
    /// What the kernel sends back for a FUSE_NOTIFY_RETRIEVE: the pages it had.
    pub const NOTIFY_REPLY: u32 = 41;
}

/// `enum fuse_notify_code`: what a server sends the kernel unasked (a write with unique 0
/// and the code in the error field).
/// The bit a resent request's unique carries (FUSE_UNIQUE_RESEND).
pub const UNIQUE_RESEND: u64 = 1 << 63;

pub mod notify {
    pub const INVAL_INODE: i32 = 2;
    pub const INVAL_ENTRY: i32 = 3;
    pub const STORE: i32 = 4;
    pub const RETRIEVE: i32 = 5;
    pub const DELETE: i32 = 6;
    /// 7.40: every request the server has read and not answered is sent again, its unique
    /// with [`super::UNIQUE_RESEND`] set.
    pub const RESEND: i32 = 7;
    /// 7.44.
    pub const INC_EPOCH: i32 = 8;
    /// 7.45.
    pub const PRUNE: i32 = 9;
}

/// Name of an opcode as it appears in observations ("READ", "WRITE", ...).
pub fn opcode_name(opcode: u32) -> String {
    let name = match opcode {
        1 => "LOOKUP",
        2 => "FORGET",
        3 => "GETATTR",
        4 => "SETATTR",
        5 => "READLINK",
        6 => "SYMLINK",
        8 => "MKNOD",
        9 => "MKDIR",
        10 => "UNLINK",
        11 => "RMDIR",
        12 => "RENAME",
        13 => "LINK",
        14 => "OPEN",
        15 => "READ",
        16 => "WRITE",
        17 => "STATFS",
        18 => "RELEASE",
        20 => "FSYNC",
        21 => "SETXATTR",
        22 => "GETXATTR",
        23 => "LISTXATTR",
        24 => "REMOVEXATTR",
        25 => "FLUSH",
        26 => "INIT",
        27 => "OPENDIR",
        28 => "READDIR",
        29 => "RELEASEDIR",
        30 => "FSYNCDIR",
        31 => "GETLK",
        32 => "SETLK",
        33 => "SETLKW",
        34 => "ACCESS",
        35 => "CREATE",
        36 => "INTERRUPT",
        37 => "BMAP",
        38 => "DESTROY",
        39 => "IOCTL",
        40 => "POLL",
        42 => "BATCH_FORGET",
        43 => "FALLOCATE",
        44 => "READDIRPLUS",
        45 => "RENAME2",
        46 => "LSEEK",
        47 => "COPY_FILE_RANGE",
        50 => "SYNCFS",
        51 => "TMPFILE",
        52 => "STATX",
        53 => "COPY_FILE_RANGE_64",
        other => return format!("OP_{other}"),
    };
    name.to_string()
}

/// INIT flags (the 64-bit value is `flags | flags2 << 32`).
pub mod init_flags {
    pub const ASYNC_READ: u64 = 1 << 0;
    /// OPEN carries O_TRUNC and the server truncates; no SETATTR of the size follows.
    pub const ATOMIC_O_TRUNC: u64 = 1 << 3;
    pub const BIG_WRITES: u64 = 1 << 5;
    pub const WRITEBACK_CACHE: u64 = 1 << 16;
    /// Lookups and readdirs of one directory run in parallel (without it the kernel takes
    /// the directory's own mutex around each, uninterruptibly).
    pub const PARALLEL_DIROPS: u64 = 1 << 18;
    pub const MAX_PAGES: u64 = 1 << 22;
    /// The server kills suid/sgid/capabilities itself; the kernel may then mark an inode
    /// found without them S_NOSEC and stop asking (SB_NOSEC).
    pub const HANDLE_KILLPRIV_V2: u64 = 1 << 28;
    pub const INIT_EXT: u64 = 1 << 30;
    /// A FOPEN_DIRECT_IO file may be mapped shared (it enters the cached I/O mode then).
    pub const DIRECT_IO_ALLOW_MMAP: u64 = 1 << 36;
    pub const PASSTHROUGH: u64 = 1 << 37;
    /// 7.42 (6.14): requests may be fetched and answered through io_uring.
    pub const OVER_IO_URING: u64 = 1 << 41;
    /// 7.43 (6.15): a request unanswered for `request_timeout` seconds aborts the connection.
    pub const REQUEST_TIMEOUT: u64 = 1 << 42;
    /// 7.46 (7.3): the kernel takes io_uring buffer pools (offered with OVER_IO_URING).
    pub const HAS_IO_URING_BUFPOOL: u64 = 1 << 43;
}

/// `fuse_open_out.open_flags`.
#[allow(dead_code)]
pub mod fopen {
    pub const DIRECT_IO: u32 = 1 << 0;
    pub const KEEP_CACHE: u32 = 1 << 1;
    pub const NONSEEKABLE: u32 = 1 << 2;
    pub const CACHE_DIR: u32 = 1 << 3;
    pub const STREAM: u32 = 1 << 4;
    pub const NOFLUSH: u32 = 1 << 5;
    pub const PARALLEL_DIRECT_WRITES: u32 = 1 << 6;
    pub const PASSTHROUGH: u32 = 1 << 7;
    /// 7.46 (7.3): io_uring zero-copy reads and writes for this file.
    pub const IO_URING_ZERO_COPY: u32 = 1 << 8;
}

/// `FATTR_*` bits of `fuse_setattr_in.valid`.
pub mod fattr {
    pub const SIZE: u32 = 1 << 3;
}

/// `struct fuse_backing_map` and the two ioctls on the /dev/fuse fd.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, IntoBytes, FromBytes, Immutable, KnownLayout)]
pub struct BackingMap {
    pub fd: i32,
    pub flags: u32,
    pub padding: u64,
}

impl BackingMap {
    /// The map a server sends: `fd`, no flags, zero padding.
    pub fn of(fd: i32) -> Self {
        BackingMap {
            fd,
            ..Default::default()
        }
    }
}
/// `_IOW(229, 1, struct fuse_backing_map)`
pub const FUSE_DEV_IOC_BACKING_OPEN: u64 = 0x4010_E501;
/// `_IOW(229, 2, uint32_t)`
pub const FUSE_DEV_IOC_BACKING_CLOSE: u64 = 0x4004_E502;
/// `_IO(229, 3)` (6.18): INIT is sent synchronously during mount(2), and a /dev/fuse fd not
/// yet mounted waits for its mount instead of failing.
pub const FUSE_DEV_IOC_SYNC_INIT: u64 = 0xE503;

#[repr(C)]
#[derive(Debug, Default, Clone, Copy, IntoBytes, FromBytes, Immutable, KnownLayout)]
pub struct InHeader {
    pub len: u32,
    pub opcode: u32,
    pub unique: u64,
    pub nodeid: u64,
    pub uid: u32,
    pub gid: u32,
    pub pid: u32,
    pub total_extlen: u16,
    pub padding: u16,
}

#[repr(C)]
#[derive(Debug, Default, Clone, Copy, IntoBytes, FromBytes, Immutable, KnownLayout)]
pub struct OutHeader {
    pub len: u32,
    pub error: i32,
    pub unique: u64,
}

/// `fuse_init_in`; kernels before 7.36 send only the first four fields.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, IntoBytes, FromBytes, Immutable, KnownLayout)]
pub struct InitIn {
    pub major: u32,
    pub minor: u32,
    pub max_readahead: u32,
    pub flags: u32,
    pub flags2: u32,
    pub unused: [u32; 11],
}

#[repr(C)]
#[derive(Debug, Default, Clone, Copy, IntoBytes, FromBytes, Immutable, KnownLayout)]
pub struct InitOut {
    pub major: u32,
    pub minor: u32,
    pub max_readahead: u32,
    pub flags: u32,
    pub max_background: u16,
    pub congestion_threshold: u16,
    pub max_write: u32,
    pub time_gran: u32,
    pub max_pages: u16,
    pub map_alignment: u16,
    pub flags2: u32,
    pub max_stack_depth: u32,
    /// 7.43: seconds, with FUSE_REQUEST_TIMEOUT.
    pub request_timeout: u16,
    pub unused: [u16; 11],
}

#[repr(C)]
#[derive(Debug, Default, Clone, Copy, IntoBytes, FromBytes, Immutable, KnownLayout)]
pub struct Attr {
    pub ino: u64,
    pub size: u64,
    pub blocks: u64,
    pub atime: u64,
    pub mtime: u64,
    pub ctime: u64,
    pub atimensec: u32,
    pub mtimensec: u32,
    pub ctimensec: u32,
    pub mode: u32,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    pub rdev: u32,
    pub blksize: u32,
    pub flags: u32,
}

#[repr(C)]
#[derive(Debug, Default, Clone, Copy, IntoBytes, FromBytes, Immutable, KnownLayout)]
pub struct EntryOut {
    pub nodeid: u64,
    pub generation: u64,
    pub entry_valid: u64,
    pub attr_valid: u64,
    pub entry_valid_nsec: u32,
    pub attr_valid_nsec: u32,
    pub attr: Attr,
}

#[repr(C)]
#[derive(Debug, Default, Clone, Copy, IntoBytes, FromBytes, Immutable, KnownLayout)]
pub struct AttrOut {
    pub attr_valid: u64,
    pub attr_valid_nsec: u32,
    pub dummy: u32,
    pub attr: Attr,
}

#[repr(C)]
#[derive(Debug, Default, Clone, Copy, IntoBytes, FromBytes, Immutable, KnownLayout)]
pub struct SetattrIn {
    pub valid: u32,
    pub padding: u32,
    pub fh: u64,
    pub size: u64,
    pub lock_owner: u64,
    pub atime: u64,
    pub mtime: u64,
    pub ctime: u64,
    pub atimensec: u32,
    pub mtimensec: u32,
    pub ctimensec: u32,
    pub mode: u32,
    pub unused4: u32,
    pub uid: u32,
    pub gid: u32,
    pub unused5: u32,
}

#[repr(C)]
#[derive(Debug, Default, Clone, Copy, IntoBytes, FromBytes, Immutable, KnownLayout)]
pub struct OpenIn {
    pub flags: u32,
    pub open_flags: u32,
}

#[repr(C)]
#[derive(Debug, Default, Clone, Copy, IntoBytes, FromBytes, Immutable, KnownLayout)]
pub struct CreateIn {
    pub flags: u32,
    pub mode: u32,
    pub umask: u32,
    pub open_flags: u32,
}

#[repr(C)]
#[derive(Debug, Default, Clone, Copy, IntoBytes, FromBytes, Immutable, KnownLayout)]
pub struct OpenOut {
    pub fh: u64,
    pub open_flags: u32,
    pub backing_id: i32,
}

/// `fuse_read_in`, also the argument of READDIR.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, IntoBytes, FromBytes, Immutable, KnownLayout)]
pub struct ReadIn {
    pub fh: u64,
    pub offset: u64,
    pub size: u32,
    pub read_flags: u32,
    pub lock_owner: u64,
    pub flags: u32,
    pub padding: u32,
}

#[repr(C)]
#[derive(Debug, Default, Clone, Copy, IntoBytes, FromBytes, Immutable, KnownLayout)]
pub struct WriteIn {
    pub fh: u64,
    pub offset: u64,
    pub size: u32,
    pub write_flags: u32,
    pub lock_owner: u64,
    pub flags: u32,
    pub padding: u32,
}

#[repr(C)]
#[derive(Debug, Default, Clone, Copy, IntoBytes, FromBytes, Immutable, KnownLayout)]
pub struct WriteOut {
    pub size: u32,
    pub padding: u32,
}

#[repr(C)]
#[derive(Debug, Default, Clone, Copy, IntoBytes, FromBytes, Immutable, KnownLayout)]
pub struct ReleaseIn {
    pub fh: u64,
    pub flags: u32,
    pub release_flags: u32,
    pub lock_owner: u64,
}

#[repr(C)]
#[derive(Debug, Default, Clone, Copy, IntoBytes, FromBytes, Immutable, KnownLayout)]
pub struct Kstatfs {
    pub blocks: u64,
    pub bfree: u64,
    pub bavail: u64,
    pub files: u64,
    pub ffree: u64,
    pub bsize: u32,
    pub namelen: u32,
    pub frsize: u32,
    pub padding: u32,
    pub spare: [u32; 6],
}

/// Fixed part of `struct fuse_dirent`; the name follows, padded to 8 bytes.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, IntoBytes, FromBytes, Immutable, KnownLayout)]
pub struct Dirent {
    pub ino: u64,
    pub off: u64,
    pub namelen: u32,
    pub typ: u32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::size_of;

    // Sizes from include/uapi/linux/fuse.h; a wrong one corrupts every reply after it.
    #[test]
    fn struct_sizes_match_the_uapi_header() {
        assert_eq!(size_of::<InHeader>(), 40);
        assert_eq!(size_of::<OutHeader>(), 16);
        assert_eq!(size_of::<InitIn>(), 64);
        assert_eq!(size_of::<InitOut>(), 64);
        assert_eq!(size_of::<Attr>(), 88);
        assert_eq!(size_of::<EntryOut>(), 128);
        assert_eq!(size_of::<AttrOut>(), 104);
        assert_eq!(size_of::<SetattrIn>(), 88);
        assert_eq!(size_of::<OpenOut>(), 16);
        assert_eq!(size_of::<ReadIn>(), 40);
        assert_eq!(size_of::<WriteIn>(), 40);
        assert_eq!(size_of::<ReleaseIn>(), 24);
        assert_eq!(size_of::<Kstatfs>(), 80);
        assert_eq!(size_of::<BackingMap>(), 16);
    }

    #[test]
    fn ioctl_numbers_are_iow_229() {
        // _IOW(type, nr, size) = (1 << 30) | (size << 16) | (type << 8) | nr
        let iow = |nr: u64, size: u64| (1u64 << 30) | (size << 16) | (229 << 8) | nr;
        assert_eq!(FUSE_DEV_IOC_BACKING_OPEN, iow(1, 16));
        assert_eq!(FUSE_DEV_IOC_BACKING_CLOSE, iow(2, 4));
    }
}

/// FUSE over io_uring (7.42): the commands of IORING_OP_URING_CMD on a /dev/fuse fd and the
/// buffers an entry registers.
pub mod uring {
    use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

    /// Register an entry's buffers and wait for a request in them.
    pub const CMD_REGISTER: u32 = 1;
    /// Answer the request in an entry and wait for the next one.
    pub const CMD_COMMIT_AND_FETCH: u32 = 2;
    /// 7.46: create a queue (optionally zero copy) before any entry is registered in it.
    pub const CMD_ADD_QUEUE: u32 = 3;
    /// 7.46: give a queue a buffer pool for its entries' payloads.
    pub const CMD_ADD_BUFPOOL: u32 = 4;
    /// 7.46, ADD_QUEUE's flag: the queue's payloads are zero copy (CAP_SYS_ADMIN, bufpools).
    pub const ZERO_COPY: u64 = 1 << 0;
    /// `sqe->len`: the entry's buffers are two iovecs, headers then payload.
    pub const IOV_SEGS: u32 = 2;
    /// 7.46, `fuse_uring_ent_in_out.flags`: the request's pages are registered in the
    /// server's buffer table at the entry's index instead of copied into its payload.
    pub const ENT_ZERO_COPY: u64 = 1 << 0;

    /// `struct fuse_uring_ent_in_out`.
    #[repr(C)]
    #[derive(Debug, Default, Clone, Copy, IntoBytes, FromBytes, Immutable, KnownLayout)]
    pub struct EntInOut {
        pub flags: u64,
        /// What the answer must quote to be matched with its request.
        pub commit_id: u64,
        /// Bytes of the payload buffer used, in either direction.
        pub payload_sz: u32,
        pub offset: u32,
        pub reserved: u64,
    }

    /// `struct fuse_uring_req_header`: the first iovec of an entry.
    #[repr(C)]
    #[derive(Clone, Copy, IntoBytes, FromBytes, Immutable, KnownLayout)]
    pub struct ReqHeader {
        /// `fuse_in_header` of the request, then `fuse_out_header` of the answer.
        pub in_out: [u8; 128],
        /// The request's first argument (its per-opcode header), when it has one.
        pub op_in: [u8; 128],
        pub ent: EntInOut,
    }

    /// `struct fuse_uring_cmd_req`, in the SQE's command area.
    #[repr(C)]
    #[derive(Debug, Default, Clone, Copy, IntoBytes, FromBytes, Immutable, KnownLayout)]
    pub struct CmdReq {
        pub flags: u64,
        pub commit_id: u64,
        pub qid: u16,
        pub padding: [u8; 6],
        pub union: [u8; 16],
    }
}

/// `struct fuse_notify_store_out`.
#[derive(zerocopy::IntoBytes, zerocopy::Immutable)]
#[repr(C)]
pub struct StoreOut {
    pub nodeid: u64,
    pub offset: u64,
    pub size: u32,
    pub padding: u32,
}

/// `struct fuse_notify_retrieve_out`.
#[derive(zerocopy::IntoBytes, zerocopy::Immutable)]
#[repr(C)]
pub struct RetrieveOut {
    pub notify_unique: u64,
    pub nodeid: u64,
    pub offset: u64,
    pub size: u32,
    pub padding: u32,
}

/// `struct fuse_notify_inval_inode_out`.
#[derive(zerocopy::IntoBytes, zerocopy::Immutable)]
#[repr(C)]
pub struct InvalInodeOut {
    pub ino: u64,
    pub off: i64,
    pub len: i64,
}

/// `struct fuse_notify_delete_out`.
#[derive(zerocopy::IntoBytes, zerocopy::Immutable)]
#[repr(C)]
pub struct DeleteOut {
    pub parent: u64,
    pub child: u64,
    pub namelen: u32,
    pub padding: u32,
}

/// `struct fuse_notify_inval_entry_out`.
#[derive(zerocopy::IntoBytes, zerocopy::Immutable)]
#[repr(C)]
pub struct InvalEntryOut {
    pub parent: u64,
    pub namelen: u32,
    pub flags: u32,
}

/// `struct fuse_notify_prune_out`.
#[derive(zerocopy::IntoBytes, zerocopy::Immutable)]
#[repr(C)]
pub struct PruneOut {
    pub count: u32,
    pub padding: u32,
    pub spare: u64,
}
