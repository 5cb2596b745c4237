//! FUSE over io_uring (7.42, Linux 6.14): the same server, its requests fetched and its
//! answers committed with IORING_OP_URING_CMD on the /dev/fuse fd instead of read(2) and
//! write(2).
//!
//! INIT still comes through read(2). Once it is answered with FUSE_OVER_IO_URING, the kernel
//! holds every other request back until each of its queues (one per possible CPU) has an
//! entry registered; it then puts each request in an entry of the queue of the CPU that made
//! it. FORGET and INTERRUPT keep coming through read(2).

use std::sync::Arc;

use io_uring::{cqueue, opcode, squeue, types, IoUring};
use zerocopy::{FromBytes, FromZeros, IntoBytes};

use super::abi::{self, uring};

/// Entries registered per queue: two, so that a queue has one free while the other is being
/// answered.
const PER_QUEUE: usize = 2;

/// One registered entry: its two buffers, and the iovecs that name them to the kernel (they
/// must not move while registered, hence the boxes).
struct Entry {
    qid: u16,
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
}

/// Serve `state`'s connection through a ring until the connection ends; `payload` is the
/// size of each entry's payload buffer (the kernel wants at least max_write).
pub(crate) fn serve(state: Arc<dyn Handler>, payload: usize) -> RingEnd {
    let mut end = RingEnd::default();
    let nqueues = queues();
    let mut entries: Vec<Entry> = (0..nqueues * PER_QUEUE)
        .map(|i| {
            let mut header = Box::new(uring::ReqHeader::new_zeroed());
            let mut payload = vec![0u8; payload];
            let iov = Box::new([
                libc::iovec {
                    iov_base: header.as_mut_bytes().as_mut_ptr().cast(),
                    iov_len: std::mem::size_of::<uring::ReqHeader>(),
                },
                libc::iovec {
                    iov_base: payload.as_mut_ptr().cast(),
                    iov_len: payload.len(),
                },
            ]);
            Entry {
                qid: (i / PER_QUEUE) as u16,
                header,
                payload,
                iov,
            }
        })
        .collect();
    let mut ring: IoUring<squeue::Entry128, cqueue::Entry> =
        match IoUring::builder().build((entries.len() * 2) as u32) {
            Ok(r) => r,
            Err(e) => {
                end.first_error = Some(format!("io_uring_setup: {e}"));
                return end;
            }
        };
    let fd = std::os::fd::AsRawFd::as_raw_fd(&state.dev());
    for (i, e) in entries.iter().enumerate() {
        let req = uring::CmdReq {
            qid: e.qid,
            ..Default::default()
        };
        let sqe = command(
            fd,
            uring::CMD_REGISTER,
            &req,
            Some(e.iov.as_ptr() as u64),
            i,
        );
        // SAFETY: the iovecs and the buffers they name live in `entries` until the ring is
        // dropped at the end of this function.
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
        let done: Vec<(usize, i32)> = ring
            .completion()
            .map(|c| (c.user_data() as usize, c.result()))
            .collect();
        for (i, res) in done {
            if res < 0 {
                // The command ended without a request: the connection is gone (ENOTCONN),
                // the ring is being torn down (ECANCELED), or the kernel refused it.
                live -= 1;
                let name = crate::sys::errno_name(rustix::io::Errno::from_raw_os_error(-res));
                end.first_error.get_or_insert(name);
                continue;
            }
            let e = &mut entries[i];
            let Some(answer) = answer(&*state, e) else {
                // A stalled server keeps the request and answers nothing.
                live -= 1;
                continue;
            };
            let req = uring::CmdReq {
                commit_id: answer,
                qid: e.qid,
                ..Default::default()
            };
            let sqe = command(fd, uring::CMD_COMMIT_AND_FETCH, &req, None, i);
            // SAFETY: as for REGISTER: the entry's buffers outlive the ring.
            unsafe { ring.submission().push(&sqe) }.expect("one command per entry at most");
        }
    }
    end
}

/// Serve the request in `e` and put the answer in its buffers; the commit id to quote, or
/// None when the server answers nothing.
fn answer(state: &dyn Handler, e: &mut Entry) -> Option<u64> {
    let ent = e.header.ent;
    let Ok((h, _)) = abi::InHeader::read_from_prefix(&e.header.in_out[..]) else {
        return Some(ent.commit_id);
    };
    // The header's len counts every argument: what the payload does not hold is the first
    // argument, in op_in (zero bytes for LOOKUP and the other name-only requests).
    let payload_sz = (ent.payload_sz as usize).min(e.payload.len());
    let first = (h.len as usize)
        .saturating_sub(std::mem::size_of::<abi::InHeader>() + payload_sz)
        .min(e.header.op_in.len());
    let mut body = Vec::with_capacity(first + payload_sz);
    body.extend_from_slice(&e.header.op_in[..first]);
    body.extend_from_slice(&e.payload[..payload_sz]);
    let (error, data) = state.handle(&h, &body, true)?;
    let data = &data[..data.len().min(e.payload.len())];
    let out = abi::OutHeader {
        len: (std::mem::size_of::<abi::OutHeader>() + data.len()) as u32,
        error,
        unique: h.unique,
    };
    e.header.in_out[..std::mem::size_of::<abi::OutHeader>()].copy_from_slice(out.as_bytes());
    e.payload[..data.len()].copy_from_slice(data);
    e.header.ent.payload_sz = data.len() as u32;
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
    raw[24..28].copy_from_slice(&uring::IOV_SEGS.to_ne_bytes());
    // SAFETY: the same 128 bytes back, with a plain integer field changed.
    unsafe { std::mem::transmute::<[u8; 128], squeue::Entry128>(raw) }
}

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
}
