//! FUSE over io_uring (7.42, Linux 6.14): the same server, its requests fetched and its
//! answers committed with IORING_OP_URING_CMD on the /dev/fuse fd instead of read(2) and
//! write(2).
//!
//! INIT still comes through read(2). Once it is answered with FUSE_OVER_IO_URING, the kernel
//! holds every other request back until each of its queues (one per possible CPU) has an
//! entry registered; it then puts each request in an entry of the queue of the CPU that made
//! it. FORGET and INTERRUPT keep coming through read(2).
//!
//! From 7.46 (Linux 7.3) a queue may instead be created first (ADD_QUEUE) and given one
//! buffer pool (ADD_BUFPOOL): its entries then register headers only, and the kernel takes
//! a buffer of the pool for each request that carries a payload, saying where in
//! `ent_in_out.offset` (fs/fuse/dev_uring.c: fuse_uring_select_buffer,
//! fuse_uring_args_to_ring); the answer's payload goes back in the same buffer.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use io_uring::{cqueue, opcode, squeue, types, IoUring};
use zerocopy::{FromBytes, FromZeros, IntoBytes};

use super::abi::{self, uring};

/// Entries registered per queue: two, so that a queue has one free while the other is being
/// answered.
const PER_QUEUE: usize = 2;

/// Where an entry's payload lives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Payload {
    /// A buffer of the entry's own, named at REGISTER (7.42).
    #[default]
    PerEntry,
    /// A pool per queue, added before any entry registers (7.46).
    Pool,
    /// Pools, on queues made with FUSE_URING_ZERO_COPY (7.46, CAP_SYS_ADMIN): READ and
    /// WRITE of a file opened with FOPEN_IO_URING_ZERO_COPY bring no data in the payload;
    /// the kernel registers the request's pages in this ring's buffer table at the entry's
    /// index, and the server moves the data with READ_FIXED or WRITE_FIXED on its file.
    ZeroCopy,
}

/// What a zero-copy READ or WRITE asks of the server's file: read `len` bytes at `offset`
/// into the request's pages (READ), or write them there (WRITE).
pub struct ZeroCopyIo {
    pub file: std::fs::File,
    pub offset: u64,
    pub len: u32,
    pub write: bool,
}

/// Requests this process served zero copy (the data moved by a fixed-buffer operation on
/// the kernel's registered pages): what a zero-copy case checks once it has ended.
pub static ZERO_COPIED_REQUESTS: AtomicU64 = AtomicU64::new(0);

/// The user_data of a fixed-buffer operation for entry i: i with this bit.
const DATA_OP: u64 = 1 << 32;

/// Entry i's slot in the ring's buffer table, where the kernel registers a zero-copy
/// request's pages: i + 1 (0 is what a queue without zero copy must give).
fn zero_copy_slot(i: usize) -> u16 {
    i as u16 + 1
}

/// Requests this process served with their payload in a pool buffer: what a case run over
/// buffer pools checks once it has ended.
pub static POOLED_REQUESTS: AtomicU64 = AtomicU64::new(0);

/// What the kernel answered this process's ADD_QUEUE or ADD_BUFPOOL when it refused one.
pub static RING_SETUP_ERRORS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// One registered entry: its two buffers, and the iovecs that name them to the kernel (they
/// must not move while registered, hence the boxes). Over a pool, `payload` is empty and
/// the second iovec names nothing.
struct Entry {
    qid: u16,
    /// A zero-copy request's file while its fixed-buffer operation runs.
    data_op: Option<ZeroCopyIo>,
    header: Box<uring::ReqHeader>,
    payload: Vec<u8>,
    iov: Box<[libc::iovec; 2]>,
}

/// How the ring ended, for the case to report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RingEnd {
    /// The first error a command completed with: ENOTCONN at the unmount, anything else
    /// is worth a look.
    pub first_error: Option<String>,
}

/// Number of queues the kernel makes: one per possible CPU.
pub fn queues() -> usize {
    std::fs::read_to_string("/sys/devices/system/cpu/possible")
        .ok()
        .and_then(|s| parse_cpu_list(s.trim()))
        .unwrap_or(1)
}

/// "0-3,5" → 5 CPUs.
fn parse_cpu_list(list: &str) -> Option<usize> {
    let mut n = 0;
    for part in list.split(',') {
        n += match part.split_once('-') {
            Some((a, b)) => b.parse::<usize>().ok()? - a.parse::<usize>().ok()? + 1,
            None => {
                part.parse::<usize>().ok()?;
                1
            }
        };
    }
    Some(n)
}

/// What the ring needs of a server: the /dev/fuse connection it registers on, and the
/// answer to each request (the same dispatch as read(2)'s). The server implements it, so
/// this module never names the server.
pub(crate) trait Handler: Send + Sync {
    /// The /dev/fuse file of the connection.
    fn dev(&self) -> std::os::fd::BorrowedFd<'_>;
    /// The answer's error and data, or None when the request takes none.
    fn handle(
        &self,
        header: &abi::InHeader,
        body: &[u8],
        from_ring: bool,
    ) -> Option<(i32, Vec<u8>)>;
    /// A READ or WRITE the kernel sent zero copy: counted as `handle` counts, and the file
    /// range its data moves to or from; or the errno to answer with.
    fn zero_copy(&self, header: &abi::InHeader, op_in: &[u8]) -> Result<ZeroCopyIo, i32>;
}

/// Serve `state`'s connection through a ring until the connection ends; `size` is the size
/// of each payload buffer (the kernel wants at least its max payload: max_write, max_pages
/// pages), each entry's own or, with [`Payload::Pool`], one of its queue's pool.
pub(crate) fn serve(state: Arc<dyn Handler>, size: usize, mode: Payload) -> RingEnd {
    let mut end = RingEnd::default();
    let nqueues = queues();
    let mut ring: IoUring<squeue::Entry128, cqueue::Entry> =
        match IoUring::builder().build((nqueues * PER_QUEUE * 2) as u32) {
            Ok(r) => r,
            Err(e) => {
                end.first_error = Some(format!("io_uring_setup: {e}"));
                return end;
            }
        };
    let fd = std::os::fd::AsRawFd::as_raw_fd(&state.dev());
    // One buffer per entry of the queue: never short of one (ENOBUFS). A pool the kernel
    // refuses is noted, and the queues fall back to buffers of each entry's own (the case
    // over pools then fails on it).
    let zero_copy = mode == Payload::ZeroCopy;
    let mut pools = match mode {
        Payload::PerEntry => Vec::new(),
        Payload::Pool | Payload::ZeroCopy => {
            match add_pools(&mut ring, fd, nqueues, size, zero_copy) {
                Ok(pools) => pools,
                Err(why) => {
                    RING_SETUP_ERRORS.lock().unwrap().push(why);
                    Vec::new()
                }
            }
        }
    };
    let pooled = !pools.is_empty();
    let own = if pooled { 0 } else { size };
    let mut entries: Vec<Entry> = (0..nqueues * PER_QUEUE)
        .map(|i| {
            let mut header = Box::new(uring::ReqHeader::new_zeroed());
            let mut payload = vec![0u8; own];
            let iov = Box::new([
                libc::iovec {
                    iov_base: header.as_mut_bytes().as_mut_ptr().cast(),
                    iov_len: std::mem::size_of::<uring::ReqHeader>(),
                },
                libc::iovec {
                    iov_base: match own {
                        0 => std::ptr::null_mut(),
                        _ => payload.as_mut_ptr().cast(),
                    },
                    iov_len: payload.len(),
                },
            ]);
            Entry {
                qid: (i / PER_QUEUE) as u16,
                data_op: None,
                header,
                payload,
                iov,
            }
        })
        .collect();
    for (i, e) in entries.iter().enumerate() {
        let mut req = uring::CmdReq {
            qid: e.qid,
            ..Default::default()
        };
        if zero_copy && pooled {
            req.union[..2].copy_from_slice(&zero_copy_slot(i).to_ne_bytes());
        }
        let sqe = command(
            fd,
            uring::CMD_REGISTER,
            &req,
            Some(e.iov.as_ptr() as u64),
            i,
        );
        // SAFETY: the iovecs and the buffers they name (and the pools) live in `entries`
        // and `pools` until the ring is dropped at the end of this function.
        unsafe { ring.submission().push(&sqe) }.expect("the ring has room for every entry");
    }
    if let Err(e) = ring.submit() {
        end.first_error = Some(format!("io_uring_enter: {e}"));
        return end;
    }
    let mut live = entries.len();
    while live > 0 {
        match ring.submit_and_wait(1) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            Err(e) => {
                end.first_error
                    .get_or_insert(format!("io_uring_enter: {e}"));
                break;
            }
        }
        let done: Vec<(u64, i32)> = ring
            .completion()
            .map(|c| (c.user_data(), c.result()))
            .collect();
        for (tag, res) in done {
            let i = (tag & !DATA_OP) as usize;
            let e = &mut entries[i];
            let payload: &mut [u8] = match pools.get_mut(e.qid as usize) {
                Some(pool) => {
                    // The buffer the kernel took for this request (none for a request
                    // without payload: offset 0, nothing read or written there).
                    let at = (e.header.ent.offset as usize).min(pool.len());
                    let to = (at + size).min(pool.len());
                    &mut pool[at..to]
                }
                None => &mut e.payload,
            };
            let commit = if tag & DATA_OP != 0 {
                // A zero-copy request's data has moved (or not): its answer.
                let io = e
                    .data_op
                    .take()
                    .expect("a data operation has its entry's file");
                Some(zero_copy_answer(&mut e.header, payload, &io, res))
            } else if res < 0 {
                // The command ended without a request: the connection is gone (ENOTCONN),
                // the ring is being torn down (ECANCELED), or the kernel refused it.
                live -= 1;
                let name = crate::sys::errno_name(rustix::io::Errno::from_raw_os_error(-res));
                end.first_error.get_or_insert(name);
                continue;
            } else {
                if pooled {
                    POOLED_REQUESTS.fetch_add(1, Ordering::SeqCst);
                }
                if e.header.ent.flags & uring::ENT_ZERO_COPY != 0 {
                    match start_zero_copy(&*state, &mut e.header) {
                        Ok(io) => {
                            let op = data_op(&io, zero_copy_slot(i)).user_data(DATA_OP | i as u64);
                            e.data_op = Some(io);
                            // SAFETY: the operation names the kernel's registered pages by
                            // index and the entry's file, kept in the entry until it ends.
                            unsafe { ring.submission().push(&op.into()) }
                                .expect("one operation per entry at most");
                            None
                        }
                        Err(commit) => Some(commit),
                    }
                } else {
                    answer(&*state, &mut e.header, payload)
                }
            };
            match commit {
                Some(commit_id) => {
                    let req = uring::CmdReq {
                        commit_id,
                        qid: e.qid,
                        ..Default::default()
                    };
                    let sqe = command(fd, uring::CMD_COMMIT_AND_FETCH, &req, None, i);
                    // SAFETY: as for REGISTER: the entry's buffers outlive the ring.
                    unsafe { ring.submission().push(&sqe) }.expect("one command per entry at most");
                }
                // A stalled server keeps the request and answers nothing.
                None if e.data_op.is_none() => live -= 1,
                // The data operation's completion commits.
                None => {}
            }
        }
    }
    end
}

/// ADD_QUEUE (zero copy or not) and ADD_BUFPOOL for each of `nqueues` queues, one pool of
/// `PER_QUEUE` buffers of `size` bytes each: the pools (which must outlive the ring's
/// serving), or what the kernel refused. Zero copy also gets the ring's buffer table, a
/// slot per entry ([`zero_copy_slot`]), empty until the kernel registers pages there.
fn add_pools(
    ring: &mut IoUring<squeue::Entry128, cqueue::Entry>,
    fd: i32,
    nqueues: usize,
    size: usize,
    zero_copy: bool,
) -> Result<Vec<Vec<u8>>, String> {
    if zero_copy {
        ring.submitter()
            .register_buffers_sparse((nqueues * PER_QUEUE + 1) as u32)
            .map_err(|e| format!("IORING_REGISTER_BUFFERS2 (sparse): {e}"))?;
    }
    let pools: Vec<Vec<u8>> = (0..nqueues).map(|_| vec![0u8; PER_QUEUE * size]).collect();
    for (qid, pool) in pools.iter().enumerate() {
        let queue = uring::CmdReq {
            qid: qid as u16,
            flags: if zero_copy { uring::ZERO_COPY } else { 0 },
            ..Default::default()
        };
        let mut with_pool = uring::CmdReq {
            qid: qid as u16,
            ..Default::default()
        };
        with_pool.union[..8].copy_from_slice(&(pool.as_ptr() as u64).to_ne_bytes());
        with_pool.union[8..12].copy_from_slice(&(pool.len() as u32).to_ne_bytes());
        for (what, op, req) in [
            ("ADD_QUEUE", uring::CMD_ADD_QUEUE, queue),
            ("ADD_BUFPOOL", uring::CMD_ADD_BUFPOOL, with_pool),
        ] {
            one_command(ring, command(fd, op, &req, None, usize::MAX))
                .map_err(|why| format!("{what} of queue {qid}: {why}"))?;
        }
    }
    Ok(pools)
}

/// A zero-copy READ or WRITE: the server's file range from the handler, or (on an error)
/// the answer already written and the commit id to quote.
fn start_zero_copy(state: &dyn Handler, header: &mut uring::ReqHeader) -> Result<ZeroCopyIo, u64> {
    let commit_id = header.ent.commit_id;
    let Ok((h, _)) = abi::InHeader::read_from_prefix(&header.in_out[..]) else {
        return Err(commit_id);
    };
    match state.zero_copy(&h, &header.op_in) {
        Ok(io) => Ok(io),
        Err(error) => {
            write_out_header(header, &h, error, 0);
            header.ent.payload_sz = 0;
            Err(commit_id)
        }
    }
}

/// READ_FIXED from the file into the request's pages, or WRITE_FIXED from them to it: the
/// pages are slot `index` of the buffer table, addressed from 0.
fn data_op(io: &ZeroCopyIo, index: u16) -> squeue::Entry {
    let fd = types::Fd(std::os::fd::AsRawFd::as_raw_fd(&io.file));
    match io.write {
        false => opcode::ReadFixed::new(fd, std::ptr::null_mut(), io.len, index)
            .offset(io.offset)
            .build(),
        true => opcode::WriteFixed::new(fd, std::ptr::null(), io.len, index)
            .offset(io.offset)
            .build(),
    }
}

/// The answer to a zero-copy request whose data operation ended with `res` (bytes, or a
/// negative errno): a READ's data is already in the kernel's pages (`payload_sz` says how
/// much); a WRITE answers `fuse_write_out` in the payload buffer. The commit id to quote.
fn zero_copy_answer(
    header: &mut uring::ReqHeader,
    payload: &mut [u8],
    io: &ZeroCopyIo,
    res: i32,
) -> u64 {
    let commit_id = header.ent.commit_id;
    let Ok((h, _)) = abi::InHeader::read_from_prefix(&header.in_out[..]) else {
        return commit_id;
    };
    if res < 0 {
        write_out_header(header, &h, res, 0);
        header.ent.payload_sz = 0;
        return commit_id;
    }
    ZERO_COPIED_REQUESTS.fetch_add(1, Ordering::SeqCst);
    let moved = res as u32;
    if io.write {
        let out = abi::WriteOut {
            size: moved,
            padding: 0,
        };
        let n = std::mem::size_of::<abi::WriteOut>();
        payload[..n].copy_from_slice(out.as_bytes());
        write_out_header(header, &h, 0, n);
        header.ent.payload_sz = n as u32;
    } else {
        write_out_header(header, &h, 0, moved as usize);
        header.ent.payload_sz = moved;
    }
    commit_id
}

/// `fuse_out_header` of the answer to `h`, with `len` bytes of data after it.
fn write_out_header(header: &mut uring::ReqHeader, h: &abi::InHeader, error: i32, len: usize) {
    let out = abi::OutHeader {
        len: (std::mem::size_of::<abi::OutHeader>() + len) as u32,
        error,
        unique: h.unique,
    };
    header.in_out[..std::mem::size_of::<abi::OutHeader>()].copy_from_slice(out.as_bytes());
}

/// Submit `sqe` alone and wait for its completion: Ok, or the errno it ended with.
fn one_command(
    ring: &mut IoUring<squeue::Entry128, cqueue::Entry>,
    sqe: squeue::Entry128,
) -> Result<(), String> {
    // SAFETY: a setup command: the pool it names lives as long as the ring's serving.
    unsafe { ring.submission().push(&sqe) }.map_err(|_| "no room in the ring".to_string())?;
    ring.submit_and_wait(1)
        .map_err(|e| format!("io_uring_enter: {e}"))?;
    match ring.completion().next().map(|c| c.result()) {
        Some(r) if r >= 0 => Ok(()),
        Some(r) => Err(crate::sys::errno_name(
            rustix::io::Errno::from_raw_os_error(-r),
        )),
        None => Err("no completion".into()),
    }
}

/// Serve the request in `header` (its payload in `payload`) and put the answer in the same
/// buffers; the commit id to quote, or None when the server answers nothing.
fn answer(state: &dyn Handler, header: &mut uring::ReqHeader, payload: &mut [u8]) -> Option<u64> {
    let ent = header.ent;
    let Ok((h, _)) = abi::InHeader::read_from_prefix(&header.in_out[..]) else {
        return Some(ent.commit_id);
    };
    // The header's len counts every argument: what the payload does not hold is the first
    // argument, in op_in (zero bytes for LOOKUP and the other name-only requests).
    let payload_sz = (ent.payload_sz as usize).min(payload.len());
    let first = (h.len as usize)
        .saturating_sub(std::mem::size_of::<abi::InHeader>() + payload_sz)
        .min(header.op_in.len());
    let mut body = Vec::with_capacity(first + payload_sz);
    body.extend_from_slice(&header.op_in[..first]);
    body.extend_from_slice(&payload[..payload_sz]);
    let (error, data) = state.handle(&h, &body, true)?;
    let data = &data[..data.len().min(payload.len())];
    write_out_header(header, &h, error, data.len());
    payload[..data.len()].copy_from_slice(data);
    header.ent.payload_sz = data.len() as u32;
    Some(ent.commit_id)
}

/// An IORING_OP_URING_CMD for the /dev/fuse fd `fd` with `req` in its command area.
fn command(
    fd: i32,
    op: u32,
    req: &uring::CmdReq,
    iov: Option<u64>,
    user_data: usize,
) -> squeue::Entry128 {
    command_with_segs(fd, op, req, iov, uring::IOV_SEGS, user_data)
}

/// `command` with `sqe->len` = `segs` (the iovec count REGISTER reads: 2, unless a case
/// wants it refused).
pub fn command_with_segs(
    fd: i32,
    op: u32,
    req: &uring::CmdReq,
    iov: Option<u64>,
    segs: u32,
    user_data: usize,
) -> squeue::Entry128 {
    let mut cmd = [0u8; 80];
    cmd[..std::mem::size_of::<uring::CmdReq>()].copy_from_slice(req.as_bytes());
    let sqe = opcode::UringCmd80::new(types::Fd(fd), op)
        .cmd(cmd)
        .addr(iov)
        .build()
        .user_data(user_data as u64);
    // The kernel wants sqe->len = 2 (the iovec count) for REGISTER; the builder has no
    // setter for it. An SQE128 is 128 plain bytes with len at offset 24.
    // SAFETY: Entry128 is a repr(C) wrapper of the 128-byte io_uring_sqe pair, and every
    // bit pattern of it is valid.
    let mut raw: [u8; 128] = unsafe { std::mem::transmute(sqe) };
    raw[24..28].copy_from_slice(&segs.to_ne_bytes());
    // SAFETY: the same 128 bytes back, with a plain integer field changed.
    unsafe { std::mem::transmute::<[u8; 128], squeue::Entry128>(raw) }
}

/// `sqe` submitted with IORING_URING_CMD_FIXED and `sqe->buf_index` = `index`: the form
/// every command reaching a queue's payload takes once its pool is an io_uring fixed
/// buffer (7.46: `fuse_uring_cmd_index_ok`).
pub fn with_fixed_buffer(sqe: squeue::Entry128, index: u16) -> squeue::Entry128 {
    // SAFETY: as in `command_with_segs`: 128 plain bytes; uring_cmd_flags is the u32 at
    // offset 28, buf_index the u16 at 40.
    let mut raw: [u8; 128] = unsafe { std::mem::transmute(sqe) };
    let flags = u32::from_ne_bytes(raw[28..32].try_into().expect("4 bytes")) | URING_CMD_FIXED;
    raw[28..32].copy_from_slice(&flags.to_ne_bytes());
    raw[40..42].copy_from_slice(&index.to_ne_bytes());
    // SAFETY: the same 128 bytes back, with two plain integer fields changed.
    unsafe { std::mem::transmute::<[u8; 128], squeue::Entry128>(raw) }
}

/// IORING_URING_CMD_FIXED: the command names a registered buffer by `buf_index`.
const URING_CMD_FIXED: u32 = 1 << 0;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_cpu_lists() {
        assert_eq!(parse_cpu_list("0"), Some(1));
        assert_eq!(parse_cpu_list("0-1"), Some(2));
        assert_eq!(parse_cpu_list("0-3,5,7-8"), Some(7));
        assert_eq!(parse_cpu_list("x"), None);
    }

    #[test]
    fn sqe_carries_the_iovec_count_and_the_command() {
        let req = uring::CmdReq {
            commit_id: 0x1122,
            qid: 3,
            ..Default::default()
        };
        let sqe = command(7, uring::CMD_REGISTER, &req, Some(0xabc0), 5);
        // SAFETY: an SQE128 is 128 plain bytes.
        let raw: [u8; 128] = unsafe { std::mem::transmute(sqe) };
        assert_eq!(raw[0], io_uring::opcode::UringCmd80::CODE);
        assert_eq!(i32::from_ne_bytes(raw[4..8].try_into().unwrap()), 7);
        assert_eq!(u32::from_ne_bytes(raw[8..12].try_into().unwrap()), 1);
        assert_eq!(u64::from_ne_bytes(raw[16..24].try_into().unwrap()), 0xabc0);
        assert_eq!(u32::from_ne_bytes(raw[24..28].try_into().unwrap()), 2);
        assert_eq!(u64::from_ne_bytes(raw[32..40].try_into().unwrap()), 5);
        assert_eq!(u64::from_ne_bytes(raw[56..64].try_into().unwrap()), 0x1122);
        assert_eq!(u16::from_ne_bytes(raw[64..66].try_into().unwrap()), 3);
    }

    #[test]
    fn a_fixed_buffer_command_keeps_the_rest() {
        let req = uring::CmdReq {
            commit_id: 9,
            qid: 1,
            ..Default::default()
        };
        let plain = command(7, uring::CMD_COMMIT_AND_FETCH, &req, None, 4);
        let fixed = with_fixed_buffer(plain.clone(), 6);
        // SAFETY: an SQE128 is 128 plain bytes.
        let (a, b) = unsafe {
            (
                std::mem::transmute::<squeue::Entry128, [u8; 128]>(plain),
                std::mem::transmute::<squeue::Entry128, [u8; 128]>(fixed),
            )
        };
        assert_eq!(u32::from_ne_bytes(b[28..32].try_into().unwrap()), 1);
        assert_eq!(u16::from_ne_bytes(b[40..42].try_into().unwrap()), 6);
        let others = |r: &[u8; 128]| [&r[..28], &r[32..40], &r[42..]].concat();
        assert_eq!(others(&a), others(&b));
    }
}
