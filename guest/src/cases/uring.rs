//! FUSE over io_uring (protocol 7.42, Linux 6.14): the agent's server fetching requests and
//! committing answers through a ring, and the passthrough rules of the other groups again
//! with every OPEN and CREATE answer (backing id included) committed through it.
//!
//! The kernel offers FUSE_OVER_IO_URING in INIT only while the `fuse.enable_uring`
//! parameter is on; a case of this group turns it on for its own run and puts it back.

use crate::framework::ring::enable;
use crate::framework::{Case, Ctx, Stop};
use crate::fuse::abi::init_flags::OVER_IO_URING;
use crate::fuse::abi::uring;
use crate::fuse::{InitReply, OpenReply, Payload};

/// `over_ring!["io.x", ...]`: the triples `("uring.io.x", "uring.pool.io.x", "io.x")`, names
/// made at compile time.
macro_rules! over_ring {
    ($($name:literal),* $(,)?) => {
        [$((concat!("uring.", $name), concat!("uring.pool.", $name), $name)),*]
    };
}

/// Cases of other groups run again with the server on a ring, as `uring.<name>` (a payload
/// buffer per entry) and `uring.pool.<name>` (a buffer pool per queue, 7.3): each triple is
/// the copies' names and their original's.
const OVER_RING: &[(&str, &str, &str)] = &over_ring![
    "io.passthrough_round_trip",
    "io.cached_round_trip",
    "io.mmap_shared",
    "io.splice_in",
    "io.concurrent",
    "ids.open_reply_unknown_id",
    "ids.open_reply_closed_id",
    "ids.open_reply_zero",
    "ids.open_reply_other_connection",
    "ids.reply_then_close",
    "open_reply.create_passthrough",
    "open_reply.cached_on_passthrough_inode",
    "open_reply.passthrough_on_cached_inode",
    "open_reply.second_backing_id",
    "open_reply.passthrough_flag_mask",
    "lifetime.outlives_server_fd",
    "lifetime.io_after_backing_close",
    "lifetime.released_after_close_and_release",
    "lifetime.released_at_connection_end",
    "lifetime.abort_with_open_files",
    "faults.request_timeout",
];

pub fn cases(base: &[Case]) -> Vec<Case> {
    let mut all = vec![
        Case {
            name: "uring.bufpool_and_zero_copy_rules",
            rule: "protocol 7.46 (7.3): INIT offers FUSE_HAS_IO_URING_BUFPOOL with \
                   FUSE_OVER_IO_URING; FUSE_IO_URING_CMD_ADD_QUEUE refuses a qid past the last \
                   queue and unknown flags (EINVAL), FUSE_URING_ZERO_COPY without CAP_SYS_ADMIN \
                   (EPERM), a queue twice (EEXIST); FUSE_IO_URING_CMD_ADD_BUFPOOL refuses flags, \
                   a non-zero reserved word and a pool smaller than one payload (EINVAL), and a \
                   second pool for a queue (EINVAL); before 7.46 both commands are unknown \
                   (EINVAL) and INIT does not offer the flag",
            verdict_rule: "pass when every command gets the answer fuse_uring_add_queue and \
                           fuse_uring_add_bufpool (fs/fuse/dev_uring.c of 7.3) give it, and \
                           the offer matches the protocol; skip without FUSE over io_uring",
            run: bufpool_and_zero_copy_rules,
            ..Case::DEFAULT
        },
        Case {
            name: "uring.zero_copy",
            rule: "protocol 7.46 (7.3): on a queue made with FUSE_URING_ZERO_COPY (and a buffer \
                   pool), READ and WRITE of a file opened with FOPEN_IO_URING_ZERO_COPY come \
                   flagged FUSE_URING_ENT_ZERO_COPY: the kernel registers the request's pages \
                   in the server's io_uring buffer table at the entry's \
                   ent_zero_copy_buf_index, and the server moves the data with READ_FIXED and \
                   WRITE_FIXED; without the flag on the file, or on a pooled queue made \
                   without zero copy, the data is copied as before",
            verdict_rule: "pass when a round trip through the file is right in all three \
                           set-ups, every READ and WRITE of the zero-copy one came zero copy \
                           and none of the other two did; skip before 7.3",
            run: zero_copy,
            ..Case::DEFAULT
        },
        Case {
            name: "uring.offer",
            rule: "the kernel offers FUSE_OVER_IO_URING in INIT while fuse.enable_uring is on, \
                   and only then (6.14)",
            verdict_rule: "pass when INIT lacks the flag with the parameter off and has it \
                           with the parameter on",
            run: offer,
            ..Case::DEFAULT
        },
        Case {
            name: "uring.requests_through_ring",
            rule: "once INIT is answered with FUSE_OVER_IO_URING and every queue (one per \
                   possible CPU) has an entry registered, every request but FORGET and \
                   INTERRUPT comes through the ring, and its answer is committed there",
            verdict_rule: "pass when lookups, reads, writes and a directory listing are right, \
                           /dev/fuse read(2) brought no request after INIT, and the ring's \
                           commands end when the connection does",
            run: requests_through_ring,
            ..Case::DEFAULT
        },
        Case {
            name: "uring.commit_header_rules",
            rule: "an answer committed through the ring (FUSE_IO_URING_CMD_COMMIT_AND_FETCH) \
                   ends its request with what its fuse_out_header allows: unique 0 (a \
                   notification, which the ring does not carry) and an error above 0 or at \
                   or below -ERESTARTSYS give EINVAL, a unique that is not the request's \
                   ENOENT, a plain negative errno that errno (6.14)",
            verdict_rule: "pass when the system call behind each request fails with the \
                           errno fuse_uring_out_header_has_err (fs/fuse/dev_uring.c) gives; \
                           skip without FUSE over io_uring",
            run: commit_header_rules,
            ..Case::DEFAULT
        },
        Case {
            name: "uring.killed_while_queued",
            rule: "a caller killed (SIGKILL) while its request waits in a ring queue for a \
                   free entry: the request is taken out of the queue (its caller ends at \
                   once) and never reaches the server; the entry's next request is the next \
                   caller's (6.14)",
            verdict_rule: "pass when the killed process is reaped within 2 s with the entry \
                           still held, and the entry brings after its commit only the next \
                           caller's LOOKUP, not the killed one's; skip without FUSE \
                           over io_uring",
            run: killed_while_queued,
            ..Case::DEFAULT
        },
        Case {
            name: "uring.registered_pool",
            rule: "a buffer pool that is an io_uring fixed buffer (ADD_BUFPOOL submitted with \
                   IORING_URING_CMD_FIXED, 7.3): every command that reaches the queue's \
                   payload must name the pool's buffer index; a request's payload arrives in \
                   the pool, a COMMIT_AND_FETCH without the index is refused (EINVAL) and \
                   leaves the request for a proper one",
            verdict_rule: "pass when ADD_QUEUE, ADD_BUFPOOL and REGISTER with the index are \
                           taken, the LOOKUP's name is in the pool buffer the entry names, \
                           the commit without the index gives EINVAL with the lookup still \
                           waiting, and the commit with it ends the lookup with its ENOENT; \
                           skip before 7.3 (protocol 7.46)",
            run: registered_pool,
            ..Case::DEFAULT
        },
        Case {
            name: "uring.unmapped_entry_header",
            rule: "a server that unmaps the header buffer of a registered entry: the answer \
                   it then commits cannot be read (its caller gets EFAULT), the next request \
                   cannot be written there (its caller gets EFAULT too), and aborting the \
                   connection still ends everything (6.14)",
            verdict_rule: "pass when both callers get EFAULT (copy_header_from_ring, \
                           copy_header_to_ring) within 5 s and the abort ends the rest; skip \
                           without FUSE over io_uring, and before 6.18.44 and 7.2, where it \
                           oopses the kernel (a known bug, gated)",
            run: unmapped_entry_header,
            ..Case::DEFAULT
        },
        Case {
            name: "uring.register_rules",
            rule: "FUSE_IO_URING_CMD_REGISTER refuses with EINVAL a qid past the last queue, \
                   an SQE whose len is not 2 (iovecs), a header iovec shorter than struct \
                   fuse_uring_req_header and, on a queue without a buffer pool, a payload \
                   iovec shorter than the connection's largest payload; a refused REGISTER \
                   ends FUSE over io_uring on that connection (from 7.2 a later command gets \
                   EOPNOTSUPP). A good REGISTER stays pending until a request comes; \
                   FUSE_IO_URING_CMD_COMMIT_AND_FETCH refuses a qid past the last queue \
                   (EINVAL) and a commit_id no request has (ENOENT) (6.14)",
            verdict_rule: "pass when each command ends as fuse_uring_register, \
                           fuse_uring_create_ring_ent and fuse_uring_commit_fetch \
                           (fs/fuse/dev_uring.c) say; skip without FUSE over io_uring",
            run: register_rules,
            ..Case::DEFAULT
        },
        Case {
            name: "uring.register_without_agreement",
            rule: "FUSE_IO_URING_CMD_REGISTER on a connection whose INIT answer did not ask \
                   for FUSE_OVER_IO_URING: from 7.2 refused (EOPNOTSUPP, \"not enabled on \
                   this connection\") and the connection stays on /dev/fuse; before 7.2 the \
                   kernel took the ring and sent the connection's requests through it",
            verdict_rule: "from 7.2: pass when the commands end with EOPNOTSUPP and the \
                           read comes through /dev/fuse; before: pass when the read comes \
                           through the ring and the commands end with ENOTCONN at the unmount",
            run: register_without_agreement,
            ..Case::DEFAULT
        },
    ];
    for (payload, which) in [(Payload::PerEntry, 0), (Payload::Pool, 1)] {
        for &(copy, pooled, name) in OVER_RING {
            let of = base
                .iter()
                .find(|c| c.name == name)
                .unwrap_or_else(|| panic!("uring: no case {name} to run over the ring"));
            all.push(Case {
                name: [copy, pooled][which],
                over_ring: Some(payload),
                ..*of
            });
        }
    }
    all
}

fn offer(ctx: &mut Ctx) -> Result<(), Stop> {
    let mut init = InitReply::plain();
    init.io_uring = true;
    let guard = enable(ctx, false)?;
    let (fs, off) = ctx.mount(init)?;
    drop(fs);
    drop(guard);
    let guard = enable(ctx, true)?;
    let (fs, on) = ctx.mount(init)?;
    let offered_off = off.kernel_offers(OVER_IO_URING);
    let offered_on = on.kernel_offers(OVER_IO_URING);
    ctx.observe("offered_with_parameter_off", offered_off);
    ctx.observe("offered_with_parameter_on", offered_on);
    ctx.check(
        !offered_off,
        "FUSE_OVER_IO_URING offered with fuse.enable_uring off",
    );
    ctx.check(
        offered_on,
        "FUSE_OVER_IO_URING not offered with fuse.enable_uring on",
    );
    // Served through the ring, the connection still works.
    std::fs::write(fs.backing_dir.join("f"), b"ring")?;
    fs.add_file_at("f", &fs.backing_dir.join("f"), OpenReply::CACHED)?;
    let read = std::fs::read(fs.path("f"));
    ctx.expect(
        "read_over_ring",
        match &read {
            Ok(d) if d == b"ring" => "ok".to_string(),
            Ok(d) => format!("wrong bytes ({} bytes)", d.len()),
            Err(e) => crate::sys::errno_name(crate::fuse::errno(e)),
        },
        "ok",
    );
    drop(fs);
    drop(guard);
    Ok(())
}

fn requests_through_ring(ctx: &mut Ctx) -> Result<(), Stop> {
    let _guard = enable(ctx, true)?;
    let mut init = InitReply::plain();
    init.io_uring = true;
    let (fs, exchange) = ctx.mount(init)?;
    if !exchange.over_ring() {
        return Err(Stop::Broken(
            "the kernel did not offer FUSE_OVER_IO_URING with fuse.enable_uring on".into(),
        ));
    }
    eprintln!(
        "fpt-agent: uring.requests_through_ring: {} queues",
        crate::fuse::ring_queues()
    );
    // A payload larger than a page and an odd size, both ways, and a listing.
    let data = crate::framework::pattern(11, 3 * 4096 + 123);
    let backing = fs.add_file("f", &data, OpenReply::CACHED)?;
    let read = std::fs::read(fs.path("f"))?;
    ctx.check(
        read == data,
        "the bytes read through the ring differ from the file",
    );
    let written = crate::framework::pattern(12, 70_000);
    std::fs::write(fs.path("f"), &written)?;
    ctx.check(
        std::fs::read(&backing)? == written,
        "the bytes written through the ring did not reach the backing file",
    );
    let names: Vec<String> = std::fs::read_dir(fs.path(""))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    ctx.check(
        names == ["f"],
        format!("listing through the ring: {names:?}"),
    );
    let (dev, ring) = fs.requests_by_transport();
    ctx.expect_count("requests_read_from_dev_after_init", dev, 0);
    ctx.check(ring > 0, "no request came through the ring");
    // Which others come (GETXATTR, STATX, FLUSH...) depends on the series and its
    // security modules: only these are required.
    // RELEASE is sent in the background after the last close: wait for both files'.
    fs.wait_count(
        crate::fuse::abi::op::RELEASE,
        2,
        std::time::Duration::from_secs(2),
    );
    let seen = fs.counts();
    for op in ["LOOKUP", "OPEN", "READ", "WRITE", "READDIR", "RELEASE"] {
        ctx.check(
            seen.contains_key(op),
            format!("no {op} came through the ring"),
        );
    }
    // The connection ends: the ring's commands complete with an error and its thread ends
    // (the unmount waits for the server thread, which waits for the ring's).
    let end = fs
        .shutdown()
        .map_err(|e| Stop::Broken(format!("umount: {}", crate::sys::errno_name(e))))?;
    ctx.observe(
        "ring_ended_with",
        end.map(|e| e.first_error.unwrap_or_else(|| "nothing".into()))
            .unwrap_or_else(|| "no ring".into()),
    );
    Ok(())
}

/// The kernel series that refuses a ring on a connection that did not agree on it.
const REFUSES_UNASKED: (u32, u32) = (7, 2);

fn register_without_agreement(ctx: &mut Ctx) -> Result<(), Stop> {
    let _guard = enable(ctx, true)?;
    let (fs, exchange) = ctx.mount(InitReply::plain())?;
    ctx.check(!exchange.over_ring(), "INIT agreed on io_uring unasked");
    fs.add_file("f", b"unasked", OpenReply::CACHED)?;
    let ring = fs.start_ring_unasked()?;
    // Let every queue's entries reach the kernel before the read.
    std::thread::sleep(std::time::Duration::from_millis(200));
    let read = std::fs::read(fs.path("f"));
    ctx.expect(
        "read",
        match &read {
            Ok(d) if d == b"unasked" => "ok".to_string(),
            Ok(_) => "wrong bytes".to_string(),
            Err(e) => crate::sys::errno_name(crate::fuse::errno(e)),
        },
        "ok",
    );
    let (dev, through_ring) = fs.requests_by_transport();
    fs.shutdown()
        .map_err(|e| Stop::Broken(format!("umount: {}", crate::sys::errno_name(e))))?;
    let end = ring
        .join()
        .map_err(|_| Stop::Broken("the ring thread panicked".into()))?;
    let ended = end.first_error.unwrap_or_else(|| "nothing".into());
    let refuses = ctx.kernel.at_least(REFUSES_UNASKED.0, REFUSES_UNASKED.1);
    ctx.expect(
        "ring_ended_with",
        ended,
        if refuses { "EOPNOTSUPP" } else { "ENOTCONN" },
    );
    ctx.observe("requests_through_ring", through_ring > 0);
    ctx.observe("requests_through_dev", dev > 0);
    ctx.check(
        (through_ring > 0) != refuses && (dev > 0) == refuses,
        format!(
            "{through_ring} requests came through the ring and {dev} through /dev/fuse: \
             expected {} (refused from 7.2)",
            if refuses {
                "/dev/fuse only"
            } else {
                "the ring only"
            }
        ),
    );
    Ok(())
}

/// One FUSE_IO_URING_CMD on `dev` through a ring of its own, its answer as an errno name.
fn uring_cmd(dev: std::os::fd::BorrowedFd<'_>, op: u32, req: &uring::CmdReq) -> String {
    use io_uring::{cqueue, opcode, squeue, types, IoUring};
    use zerocopy::IntoBytes;
    let mut ring: IoUring<squeue::Entry128, cqueue::Entry> = match IoUring::builder().build(4) {
        Ok(r) => r,
        Err(e) => return format!("io_uring_setup: {e}"),
    };
    let mut cmd = [0u8; 80];
    cmd[..std::mem::size_of::<uring::CmdReq>()].copy_from_slice(req.as_bytes());
    let fd = std::os::fd::AsRawFd::as_raw_fd(&dev);
    let sqe = opcode::UringCmd80::new(types::Fd(fd), op).cmd(cmd).build();
    // SAFETY: the command carries no pointer the kernel keeps past its completion (a pool's
    // address is only recorded, and the pool outlives the connection's teardown).
    if unsafe { ring.submission().push(&sqe) }.is_err() {
        return "no room in the ring".into();
    }
    if let Err(e) = ring.submit_and_wait(1) {
        return format!("io_uring_enter: {e}");
    }
    let result = ring.completion().next().map(|c| c.result());
    match result {
        Some(r) if r >= 0 => "ok".into(),
        Some(r) => crate::sys::errno_name(rustix::io::Errno::from_raw_os_error(-r)),
        None => "no completion".into(),
    }
}

/// `uring.register_rules`: each refused REGISTER on a mount of its own (a refusal ends
/// io_uring on the connection), then COMMIT_AND_FETCH beside a REGISTER the kernel holds.
fn register_rules(ctx: &mut Ctx) -> Result<(), Stop> {
    use io_uring::{cqueue, squeue, IoUring};
    use zerocopy::{FromZeros, IntoBytes};
    let _guard = enable(ctx, true)?;
    let queues = crate::fuse::ring_queues() as u16;
    let mut header = Box::new(uring::ReqHeader::new_zeroed());
    let mut payload = vec![0u8; crate::fuse::MAX_PAYLOAD];
    let iovec = |base: *mut u8, len: usize| libc::iovec {
        iov_base: base.cast(),
        iov_len: len,
    };
    let (h, p) = (header.as_mut_bytes().as_mut_ptr(), payload.as_mut_ptr());
    let whole = std::mem::size_of::<uring::ReqHeader>();
    let good = [iovec(h, whole), iovec(p, payload.len())];
    // Long enough for a fuse_in_header, short of the whole entry header.
    let short_header = [iovec(h, 64), iovec(p, payload.len())];
    let short_payload = [iovec(h, whole), iovec(p, 4096)];
    let register = |qid: u16| uring::CmdReq {
        qid,
        ..Default::default()
    };
    // One ring per command: a refused command completes at once, a held one stays pending.
    let submit = |ring: &mut IoUring<squeue::Entry128, cqueue::Entry>,
                  dev: std::os::fd::BorrowedFd<'_>,
                  op: u32,
                  req: &uring::CmdReq,
                  iov: Option<(&[libc::iovec; 2], u32)>|
     -> String {
        let fd = std::os::fd::AsRawFd::as_raw_fd(&dev);
        let (addr, segs) = iov.map_or((None, uring::IOV_SEGS), |(v, n)| {
            (Some(v.as_ptr() as u64), n)
        });
        let sqe = crate::fuse::ring_command(fd, op, req, addr, segs, 0);
        // SAFETY: the iovecs and their buffers outlive every ring of this function.
        if unsafe { ring.submission().push(&sqe) }.is_err() {
            return "no room in the ring".into();
        }
        if let Err(e) = ring.submit() {
            return format!("io_uring_enter: {e}");
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(300);
        loop {
            if let Some(c) = ring.completion().next() {
                return match c.result() {
                    r if r >= 0 => "ok".into(),
                    r => crate::sys::errno_name(rustix::io::Errno::from_raw_os_error(-r)),
                };
            }
            if std::time::Instant::now() > deadline {
                return "pending".into();
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    };
    let new_ring = || {
        IoUring::<squeue::Entry128, cqueue::Entry>::builder()
            .build(4)
            .map_err(|e| Stop::Broken(format!("io_uring_setup: {e}")))
    };
    let refused: [(&str, u16, &[libc::iovec; 2], u32); 4] = [
        ("register_qid_past_last", queues, &good, 2),
        ("register_one_iovec", 0, &good, 1),
        ("register_short_header", 0, &short_header, 2),
        ("register_short_payload", 0, &short_payload, 2),
    ];
    for (i, (key, qid, iov, segs)) in refused.into_iter().enumerate() {
        let fs = mount_unserved(ctx)?;
        let mut ring = new_ring()?;
        let got = submit(
            &mut ring,
            fs.dev(),
            uring::CMD_REGISTER,
            &register(qid),
            Some((iov, segs)),
        );
        ctx.expect(key, got, "EINVAL");
        if i == 0 {
            // fuse_uring_cmd clears the connection's io_uring after a refused REGISTER;
            // from 7.2 a command on such a connection is refused before it is looked at.
            let after = submit(
                &mut ring,
                fs.dev(),
                uring::CMD_COMMIT_AND_FETCH,
                &register(queues),
                None,
            );
            ctx.expect(
                "command_after_refused_register",
                after,
                if ctx.kernel.at_least(7, 2) {
                    "EOPNOTSUPP"
                } else {
                    "EINVAL"
                },
            );
        }
        let _ = fs.abort();
        drop(ring);
        drop(fs);
    }
    // The commits, beside a good REGISTER the kernel holds (it makes queue 0).
    let fs = mount_unserved(ctx)?;
    let mut held = new_ring()?;
    let mut ring = new_ring()?;
    // Before 7.3 the first REGISTER makes the connection's ring: commits come after it.
    let registered = submit(
        &mut held,
        fs.dev(),
        uring::CMD_REGISTER,
        &register(0),
        Some((&good, 2)),
    );
    ctx.expect("register_good_entry", registered, "pending");
    let past = submit(
        &mut ring,
        fs.dev(),
        uring::CMD_COMMIT_AND_FETCH,
        &register(queues),
        None,
    );
    ctx.expect("commit_qid_past_last", past, "EINVAL");
    let unknown = uring::CmdReq {
        commit_id: 0xfeed_f00d,
        ..register(0)
    };
    let got = submit(
        &mut ring,
        fs.dev(),
        uring::CMD_COMMIT_AND_FETCH,
        &unknown,
        None,
    );
    ctx.expect("commit_unknown_id", got, "ENOENT");
    // The server's ring closes while its entry waits: io_uring cancels the entry
    // (fuse_uring_cancel), then the connection ends.
    drop(held);
    drop(ring);
    let _ = fs.abort();
    drop(fs);
    drop(header);
    drop(payload);
    Ok(())
}

/// A ring a case drives itself on a mount of its own (`mount_unserved`): one entry per
/// queue (the ring is ready once every queue has one), each command's user data its queue.
type Entry128 = io_uring::squeue::Entry128;

struct CaseRing {
    ring: io_uring::IoUring<Entry128, io_uring::cqueue::Entry>,
    dev: i32,
}

impl CaseRing {
    fn new(fs: &crate::fuse::FuseFs, queues: usize) -> Result<CaseRing, Stop> {
        let ring = io_uring::IoUring::builder()
            .build(2 * queues as u32)
            .map_err(|e| Stop::Broken(format!("io_uring_setup: {e}")))?;
        Ok(CaseRing {
            ring,
            dev: std::os::fd::AsRawFd::as_raw_fd(&fs.dev()),
        })
    }

    /// The command `op` of `req` (with the entry's iovecs at `addr` for REGISTER), its
    /// user data the queue.
    fn command(&self, op: u32, req: &uring::CmdReq, addr: Option<u64>) -> Entry128 {
        crate::fuse::ring_command(self.dev, op, req, addr, uring::IOV_SEGS, req.qid as usize)
    }

    /// Submit the command `op` of `req` (with the entry's iovecs at `addr` for REGISTER).
    fn send(&mut self, op: u32, req: &uring::CmdReq, addr: Option<u64>) -> Result<(), Stop> {
        self.submit(self.command(op, req, addr))
    }

    fn submit(&mut self, sqe: Entry128) -> Result<(), Stop> {
        // SAFETY: the caller keeps the iovecs and the buffers they name alive past the ring.
        unsafe { self.ring.submission().push(&sqe) }
            .map_err(|_| Stop::Broken("no room in the ring".into()))?;
        self.ring
            .submit()
            .map_err(|e| Stop::Broken(format!("io_uring_enter: {e}")))?;
        Ok(())
    }

    /// Submit `sqe`, a command that should complete at once (no other completion may be
    /// pending), and give its result as "ok" or the errno's name; "pending" when it has
    /// not completed within 2 s (the kernel took it as a command that waits).
    fn call(&mut self, sqe: Entry128) -> Result<String, Stop> {
        self.submit(sqe)?;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        loop {
            if let Some(r) = self.ring.completion().next().map(|c| c.result()) {
                return Ok(match r {
                    r if r >= 0 => "ok".into(),
                    r => crate::sys::errno_name(rustix::io::Errno::from_raw_os_error(-r)),
                });
            }
            if std::time::Instant::now() > deadline {
                return Ok("pending".into());
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }

    /// REGISTER one entry per queue, queue `i` with `iovs[i]`.
    fn register(&mut self, iovs: &[[libc::iovec; 2]]) -> Result<(), Stop> {
        for (qid, iov) in iovs.iter().enumerate() {
            let register = uring::CmdReq {
                qid: qid as u16,
                ..Default::default()
            };
            self.send(uring::CMD_REGISTER, &register, Some(iov.as_ptr() as u64))?;
        }
        Ok(())
    }

    /// The queue whose pending command completed with a request in its entry, within 5 s;
    /// `fs` aborted and the case broken otherwise.
    fn next_request(&mut self, fs: &crate::fuse::FuseFs, what: &str) -> Result<usize, Stop> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let (qid, result) = loop {
            if let Some(c) = self.ring.completion().next() {
                break (c.user_data() as usize, c.result());
            }
            if std::time::Instant::now() > deadline {
                let _ = fs.abort();
                return Err(Stop::Broken(format!(
                    "{what}: no request came to the ring's entries in 5 s"
                )));
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        };
        if result < 0 {
            let _ = fs.abort();
            return Err(Stop::Broken(format!(
                "{what}: queue {qid}'s entry ended with {}",
                crate::sys::errno_name(rustix::io::Errno::from_raw_os_error(-result))
            )));
        }
        Ok(qid)
    }
}

/// One entry per queue, each with a header and a payload buffer of its own, registered on a
/// ring the case drives. The buffers are the kernel's to write while the ring lives: drop
/// the ring (and the mount) before them.
struct Entries {
    ring: CaseRing,
    headers: Vec<uring::ReqHeader>,
    payloads: Vec<Vec<u8>>,
    iovs: Vec<[libc::iovec; 2]>,
}

impl Entries {
    /// End the connection, then the ring, then the mount; the buffers go last.
    fn end(self, fs: crate::fuse::FuseFs) {
        let Entries {
            ring,
            headers,
            payloads,
            iovs,
        } = self;
        let _ = fs.abort();
        drop(ring);
        drop(fs);
        drop(iovs);
        drop(headers);
        drop(payloads);
    }

    fn register(fs: &crate::fuse::FuseFs, queues: usize) -> Result<Entries, Stop> {
        use zerocopy::{FromZeros, IntoBytes};
        let mut headers: Vec<uring::ReqHeader> = (0..queues)
            .map(|_| uring::ReqHeader::new_zeroed())
            .collect();
        let mut payloads = payload_buffers(queues);
        let pointers: Vec<*mut libc::c_void> = headers
            .iter_mut()
            .map(|h| h.as_mut_bytes().as_mut_ptr().cast())
            .collect();
        // The iovecs point into the vectors' heap memory, which moving the vectors into the
        // struct does not move (they are never resized).
        let iovs = entry_iovecs(&pointers, &mut payloads);
        let mut ring = CaseRing::new(fs, queues)?;
        ring.register(&iovs)?;
        Ok(Entries {
            ring,
            headers,
            payloads,
            iovs,
        })
    }
}

/// Each entry's two iovecs: its header (at `headers[i]`) and its payload buffer.
fn entry_iovecs(headers: &[*mut libc::c_void], payloads: &mut [Vec<u8>]) -> Vec<[libc::iovec; 2]> {
    headers
        .iter()
        .zip(payloads.iter_mut())
        .map(|(h, p)| {
            [
                libc::iovec {
                    iov_base: *h,
                    iov_len: std::mem::size_of::<uring::ReqHeader>(),
                },
                libc::iovec {
                    iov_base: p.as_mut_ptr().cast(),
                    iov_len: p.len(),
                },
            ]
        })
        .collect()
}

/// A stat of `name` on the mount in a thread of its own (on CPU 0 when `cpu0`): the request
/// a case answers through its ring.
fn stat_in_thread(
    fs: &crate::fuse::FuseFs,
    name: &str,
    cpu0: bool,
) -> std::thread::JoinHandle<Result<std::fs::Metadata, rustix::io::Errno>> {
    let path = fs.path(name);
    std::thread::spawn(move || {
        if cpu0 {
            let mut set = rustix::thread::CpuSet::new();
            set.set(0);
            let _ = rustix::thread::sched_setaffinity(None, &set);
        }
        std::fs::symlink_metadata(path).map_err(|e| crate::fuse::errno(&e))
    })
}

fn payload_buffers(queues: usize) -> Vec<Vec<u8>> {
    (0..queues)
        .map(|_| vec![0u8; crate::fuse::MAX_PAYLOAD])
        .collect()
}

fn commit_header_rules(ctx: &mut Ctx) -> Result<(), Stop> {
    let _guard = enable(ctx, true)?;
    let fs = mount_unserved(ctx)?;
    // Each entry with its own buffers: a request comes to the queue of its caller's CPU.
    let queues = crate::fuse::ring_queues();
    let mut entries = Entries::register(&fs, queues)?;
    // The answer's unique from the request's, its error, and the errno the caller gets.
    type Answer = (&'static str, fn(u64) -> u64, i32, &'static str);
    let variants: [Answer; 5] = [
        ("unique_zero", |_| 0, 0, "EINVAL"),
        ("error_positive", |u| u, 5, "EINVAL"),
        ("error_erestartsys", |u| u, -512, "EINVAL"),
        ("unique_other", |u| u + 2, 0, "ENOENT"),
        ("error_eacces", |u| u, -libc::EACCES, "EACCES"),
    ];
    for (i, (key, unique_of, error, want)) in variants.into_iter().enumerate() {
        let caller = stat_in_thread(&fs, &format!("name-{i}"), false);
        let qid = entries.ring.next_request(&fs, key)?;
        let header = &mut entries.headers[qid];
        let unique = unique_of(request_unique(header));
        commit_answer(&mut entries.ring, header, qid, error, unique)?;
        let got = caller
            .join()
            .map_err(|_| Stop::Broken("the caller's thread panicked".into()))?;
        ctx.expect(&format!("commit_{key}"), crate::sys::outcome(&got), want);
    }
    entries.end(fs);
    Ok(())
}

fn killed_while_queued(ctx: &mut Ctx) -> Result<(), Stop> {
    let _guard = enable(ctx, true)?;
    // Lookups in parallel: otherwise the second caller waits for the first one's lookup on
    // the directory's mutex, not in the ring's queue.
    let plain = InitReply::plain();
    let (fs, _) = mount_on_ring(
        ctx,
        InitReply {
            ring_by_case: true,
            flags: plain.flags | crate::fuse::abi::init_flags::PARALLEL_DIROPS,
            ..plain
        },
    )?;
    let queues = crate::fuse::ring_queues();
    let mut entries = Entries::register(&fs, queues)?;
    // Every caller on CPU 0: the first request takes queue 0's only entry, the next waits.
    let first = stat_in_thread(&fs, "first", true);
    let qid = entries.ring.next_request(&fs, "the first request")?;
    let killed = stat_in_child(&fs.path("second"))?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while fs.waiting().unwrap_or(0) < 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    std::thread::sleep(std::time::Duration::from_millis(50));
    let _ = rustix::process::kill_process(killed, rustix::process::Signal::KILL);
    let ended = reaped_within(killed, std::time::Duration::from_secs(2));
    ctx.expect("queued_caller_killed", ended.clone(), "killed by SIGKILL");
    // The entry is given back with the first request's answer: what it brings next must be
    // the next caller's request, the killed one's having left the queue.
    let third = stat_in_thread(&fs, "third", true);
    commit_enoent(&mut entries.ring, &mut entries.headers[qid], qid)?;
    let got = first
        .join()
        .map_err(|_| Stop::Broken("the caller's thread panicked".into()))?;
    ctx.expect("first_answered", crate::sys::outcome(&got), "ENOENT");
    // Every request the entry brings until the next caller's: only that one, if the killed
    // caller's request left the queue.
    let mut served = Vec::new();
    while served.last().map(String::as_str) != Some("third") && served.len() < 3 {
        let qid = entries
            .ring
            .next_request(&fs, "a request after the commit")?;
        let name = entries.payloads[qid]
            .split(|b| *b == 0)
            .next()
            .unwrap_or_default();
        served.push(String::from_utf8_lossy(name).into_owned());
        commit_enoent(&mut entries.ring, &mut entries.headers[qid], qid)?;
    }
    ctx.expect("requests_after_the_commit", served.join(", "), "third");
    let got = third
        .join()
        .map_err(|_| Stop::Broken("the caller's thread panicked".into()))?;
    ctx.expect("third_answered", crate::sys::outcome(&got), "ENOENT");
    if ended == "still running" {
        // Its request was served after all (a kernel that left it queued): reap it now.
        reaped_within(killed, std::time::Duration::from_secs(2));
    }
    entries.end(fs);
    Ok(())
}

/// The unique of the request in `header` (fuse_in_header: len, opcode, unique).
fn request_unique(header: &uring::ReqHeader) -> u64 {
    u64::from_ne_bytes(header.in_out[8..16].try_into().expect("8 bytes"))
}

/// Commit an answer with no data to the request in queue `qid`'s entry, and fetch the next.
fn commit_answer(
    ring: &mut CaseRing,
    header: &mut uring::ReqHeader,
    qid: usize,
    error: i32,
    unique: u64,
) -> Result<(), Stop> {
    let commit = answer_in_header(header, qid, error, unique);
    ring.send(uring::CMD_COMMIT_AND_FETCH, &commit, None)
}

/// Write an answer with no data into `header`, its fuse_out_header (len, error, unique)
/// over the request's fuse_in_header: the COMMIT_AND_FETCH request that sends it.
fn answer_in_header(
    header: &mut uring::ReqHeader,
    qid: usize,
    error: i32,
    unique: u64,
) -> uring::CmdReq {
    header.in_out[..4].copy_from_slice(&16u32.to_ne_bytes());
    header.in_out[4..8].copy_from_slice(&error.to_ne_bytes());
    header.in_out[8..16].copy_from_slice(&unique.to_ne_bytes());
    header.ent.payload_sz = 0;
    uring::CmdReq {
        commit_id: header.ent.commit_id,
        qid: qid as u16,
        ..Default::default()
    }
}

/// Answer the request in queue `qid`'s entry with ENOENT, and fetch the next.
fn commit_enoent(
    ring: &mut CaseRing,
    header: &mut uring::ReqHeader,
    qid: usize,
) -> Result<(), Stop> {
    let unique = request_unique(header);
    commit_answer(ring, header, qid, -libc::ENOENT, unique)
}

/// A process of its own (a signal kills a whole process, not a thread) that stats `path` on
/// CPU 0 and exits.
fn stat_in_child(path: &std::path::Path) -> Result<rustix::process::Pid, Stop> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| Stop::Broken("a path with a NUL".into()))?;
    // SAFETY: the child makes only async-signal-safe system calls on memory made before
    // the fork, then _exits: no lock another thread held can be touched.
    match unsafe { libc::fork() } {
        -1 => Err(std::io::Error::last_os_error().into()),
        // SAFETY: as above; the stat buffer and the set are the child's own.
        0 => unsafe {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(0, &mut set);
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
            let mut st: libc::stat = std::mem::zeroed();
            libc::stat(c_path.as_ptr(), &mut st);
            libc::_exit(0)
        },
        pid => rustix::process::Pid::from_raw(pid)
            .ok_or_else(|| Stop::Broken("fork gave pid 0".into())),
    }
}

/// How `pid` ended, if it did within `patience`: "killed by SIGKILL", "exited N", or
/// "still running" (a process in an uninterruptible wait is left as it is).
fn reaped_within(pid: rustix::process::Pid, patience: std::time::Duration) -> String {
    use rustix::process::{waitpid, WaitOptions};
    let deadline = std::time::Instant::now() + patience;
    loop {
        match waitpid(Some(pid), WaitOptions::NOHANG) {
            Ok(Some((_, status))) => {
                return match (status.terminating_signal(), status.exit_status()) {
                    (Some(9), _) => "killed by SIGKILL".into(),
                    (Some(sig), _) => format!("killed by signal {sig}"),
                    (None, Some(code)) => format!("exited {code}"),
                    _ => format!("{status:?}"),
                }
            }
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(5))
            }
            Ok(None) => return "still running".into(),
            Err(e) => return format!("waitpid: {}", crate::sys::errno_name(e)),
        }
    }
}

fn registered_pool(ctx: &mut Ctx) -> Result<(), Stop> {
    use crate::fuse::with_fixed_buffer;
    use zerocopy::{FromZeros, IntoBytes};
    let since = crate::framework::ring::POOLS_SINCE;
    if !ctx.kernel.at_least(since.0, since.1) {
        return Err(Stop::Skip(
            "buffer pools for FUSE over io_uring came in 7.3 (protocol 7.46)".into(),
        ));
    }
    let _guard = enable(ctx, true)?;
    let fs = mount_unserved(ctx)?;
    let queues = crate::fuse::ring_queues();
    // A pool of one payload per queue, queue i's pool the ring's fixed buffer i.
    let mut pools = payload_buffers(queues);
    let mut headers: Vec<Box<uring::ReqHeader>> = (0..queues)
        .map(|_| Box::new(uring::ReqHeader::new_zeroed()))
        .collect();
    let mut ring = CaseRing::new(&fs, queues)?;
    let fixed: Vec<libc::iovec> = pools
        .iter_mut()
        .map(|p| libc::iovec {
            iov_base: p.as_mut_ptr().cast(),
            iov_len: p.len(),
        })
        .collect();
    // SAFETY: the pools stay alive, unmoved, until after the ring is dropped below.
    unsafe { ring.ring.submitter().register_buffers(&fixed) }
        .map_err(|e| Stop::Broken(format!("IORING_REGISTER_BUFFERS: {e}")))?;
    let mut setup = Vec::new();
    for (qid, pool) in pools.iter().enumerate() {
        let queue = uring::CmdReq {
            qid: qid as u16,
            ..Default::default()
        };
        let mut with_pool = queue;
        with_pool.union[..8].copy_from_slice(&(pool.as_ptr() as u64).to_ne_bytes());
        with_pool.union[8..12].copy_from_slice(&(pool.len() as u32).to_ne_bytes());
        let add_queue = ring.command(uring::CMD_ADD_QUEUE, &queue, None);
        let add_pool = ring.command(uring::CMD_ADD_BUFPOOL, &with_pool, None);
        setup.push(ring.call(add_queue)?);
        setup.push(ring.call(with_fixed_buffer(add_pool, qid as u16))?);
    }
    let first_refusal = |outcomes: &[String]| {
        outcomes
            .iter()
            .find(|o| *o != "ok")
            .cloned()
            .unwrap_or_else(|| "ok".into())
    };
    ctx.expect("add_queue_and_fixed_bufpool", first_refusal(&setup), "ok");
    // Entries of headers only: the payload comes from the pool.
    let iovs: Vec<[libc::iovec; 2]> = headers
        .iter_mut()
        .map(|h| {
            [
                libc::iovec {
                    iov_base: h.as_mut_bytes().as_mut_ptr().cast(),
                    iov_len: std::mem::size_of::<uring::ReqHeader>(),
                },
                libc::iovec {
                    iov_base: std::ptr::null_mut(),
                    iov_len: 0,
                },
            ]
        })
        .collect();
    for (qid, iov) in iovs.iter().enumerate() {
        let register = uring::CmdReq {
            qid: qid as u16,
            ..Default::default()
        };
        let sqe = ring.command(uring::CMD_REGISTER, &register, Some(iov.as_ptr() as u64));
        ring.submit(with_fixed_buffer(sqe, qid as u16))?;
    }
    let caller = stat_in_thread(&fs, "pooled-name", true);
    let qid = ring.next_request(&fs, "the lookup")?;
    let at = (headers[qid].ent.offset as usize).min(pools[qid].len());
    let name = pools[qid][at..]
        .split(|b| *b == 0)
        .next()
        .unwrap_or_default();
    ctx.expect(
        "lookup_name_in_pool",
        String::from_utf8_lossy(name).into_owned(),
        "pooled-name",
    );
    let unique = request_unique(&headers[qid]);
    let commit = answer_in_header(&mut headers[qid], qid, -libc::ENOENT, unique);
    let plain = ring.command(uring::CMD_COMMIT_AND_FETCH, &commit, None);
    ctx.expect(
        "commit_without_the_index",
        ring.call(plain.clone())?,
        "EINVAL",
    );
    std::thread::sleep(std::time::Duration::from_millis(50));
    ctx.check(!caller.is_finished(), "the refused commit ended the lookup");
    ring.submit(with_fixed_buffer(plain, qid as u16))?;
    let got = caller
        .join()
        .map_err(|_| Stop::Broken("the caller's thread panicked".into()))?;
    ctx.expect(
        "lookup_after_the_commit",
        crate::sys::outcome(&got),
        "ENOENT",
    );
    let _ = fs.abort();
    drop(ring);
    drop(fs);
    drop(iovs);
    drop(headers);
    drop(pools);
    Ok(())
}

fn unmapped_entry_header(ctx: &mut Ctx) -> Result<(), Stop> {
    let _guard = enable(ctx, true)?;
    // Seen 2026-12-07: on Debian's 6.16.12, 6.17.13 and 6.18.15 the caller of the request
    // whose answer could not be read oopses in its path walk (a NULL dereference in
    // step_into after the failed commit); 6.18.44 and 7.2 on do not. The fixing commit is
    // not identified yet, so the gate is where it was seen fixed.
    if !ctx.kernel.has_fix(&[(6, 18, 44), (7, 2, 0)]) {
        return Err(Stop::Skip(
            "known kernel bug: a commit whose header cannot be read oopses its caller's \
             path walk (NULL dereference in step_into) before 6.18.44 and 7.2"
                .into(),
        ));
    }
    let fs = mount_unserved(ctx)?;
    // Every caller on CPU 0, so every request comes to queue 0's entry; the other queues'
    // entries are registered only so that the ring is ready.
    let queues = crate::fuse::ring_queues();
    let page = 4096;
    let headers: Vec<*mut libc::c_void> = (0..queues)
        .map(|_| {
            // SAFETY: a fresh private anonymous mapping, unmapped below or at the end.
            unsafe {
                rustix::mm::mmap_anonymous(
                    std::ptr::null_mut(),
                    page,
                    rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
                    rustix::mm::MapFlags::PRIVATE,
                )
            }
        })
        .collect::<Result<_, _>>()?;
    let mut payloads = payload_buffers(queues);
    let iovs = entry_iovecs(&headers, &mut payloads);
    let mut ring = CaseRing::new(&fs, queues)?;
    ring.register(&iovs)?;
    let first = stat_in_thread(&fs, "first", true);
    let qid = ring.next_request(&fs, "the first request")?;
    // SAFETY: the kernel wrote the whole header before the completion; read it, then take
    // the page away.
    let header: uring::ReqHeader =
        unsafe { std::ptr::read_unaligned(headers[qid] as *const uring::ReqHeader) };
    // SAFETY: the mapping made above, not used again by this process.
    unsafe { rustix::mm::munmap(headers[qid], page)? };
    let commit = uring::CmdReq {
        commit_id: header.ent.commit_id,
        qid: qid as u16,
        ..Default::default()
    };
    ring.send(uring::CMD_COMMIT_AND_FETCH, &commit, None)?;
    let got = first
        .join()
        .map_err(|_| Stop::Broken("the caller's thread panicked".into()))?;
    ctx.expect(
        "commit_from_unmapped_header",
        crate::sys::outcome(&got),
        "EFAULT",
    );
    let second = stat_in_thread(&fs, "second", true);
    let mut waited = 0;
    while !second.is_finished() && waited < 500 {
        std::thread::sleep(std::time::Duration::from_millis(10));
        waited += 1;
    }
    let finished = second.is_finished();
    ctx.observe("request_to_unmapped_header_ended", finished);
    let _ = fs.abort();
    let got = second
        .join()
        .map_err(|_| Stop::Broken("the caller's thread panicked".into()))?;
    ctx.check(
        finished,
        "a request sent to an entry whose header is unmapped did not end in 5 s",
    );
    ctx.expect(
        "request_to_unmapped_header",
        crate::sys::outcome(&got),
        "EFAULT",
    );
    drop(ring);
    drop(fs);
    for (i, h) in headers.into_iter().enumerate() {
        if i != qid {
            // SAFETY: the mappings made above.
            unsafe { rustix::mm::munmap(h, page)? };
        }
    }
    drop(payloads);
    Ok(())
}

/// A mount agreed on io_uring whose ring the case drives itself: the agent registers no entry.
fn mount_unserved(ctx: &mut Ctx) -> Result<crate::fuse::FuseFs, Stop> {
    let (fs, _) = mount_on_ring(
        ctx,
        InitReply {
            ring_by_case: true,
            ..InitReply::plain()
        },
    )?;
    Ok(fs)
}

/// Mount with `init` asking for FUSE over io_uring; broken when INIT does not agree on it.
fn mount_on_ring(
    ctx: &mut Ctx,
    init: InitReply,
) -> Result<(crate::fuse::FuseFs, crate::fuse::InitExchange), Stop> {
    let (fs, exchange) = ctx.mount(InitReply {
        io_uring: true,
        ..init
    })?;
    if !exchange.over_ring() {
        return Err(Stop::Broken("INIT did not agree on io_uring".into()));
    }
    Ok((fs, exchange))
}

fn bufpool_and_zero_copy_rules(ctx: &mut Ctx) -> Result<(), Stop> {
    use crate::fuse::abi::init_flags::HAS_IO_URING_BUFPOOL;
    let _guard = enable(ctx, true)?;
    // The agent registers no entry: the commands below are the ring's only traffic, and no
    // request but INIT is ever served on this mount.
    let (fs, exchange) = mount_on_ring(
        ctx,
        InitReply {
            ring_by_case: true,
            ..InitReply::plain()
        },
    )?;
    // fs/fuse/inode.c: FUSE_HAS_IO_URING_BUFPOOL offered with FUSE_OVER_IO_URING (7.46).
    let has_bufpools = exchange.minor >= 46;
    ctx.expect(
        "init_offers_bufpool",
        exchange.kernel_offers(HAS_IO_URING_BUFPOOL).to_string(),
        &has_bufpools.to_string(),
    );
    let dev = fs.dev();
    let queues = crate::fuse::ring_queues() as u16;
    let req = |qid: u16, flags: u64| uring::CmdReq {
        qid,
        flags,
        ..Default::default()
    };
    // A pool of exactly one payload (max(max_write, max_pages pages) = 1 MiB here), kept
    // until the connection is gone.
    let pool = vec![0u8; crate::fuse::MAX_PAYLOAD];
    let pool_addr = pool.as_ptr() as u64;
    let pool_req = |len: usize, flags: u64, reserved: u32| {
        let mut r = req(0, flags);
        r.union[..8].copy_from_slice(&pool_addr.to_ne_bytes());
        r.union[8..12].copy_from_slice(&(len as u32).to_ne_bytes());
        r.union[12..16].copy_from_slice(&reserved.to_ne_bytes());
        r
    };
    let without_cap = crate::sys::without_cap_sys_admin(|| {
        uring_cmd(dev, uring::CMD_ADD_QUEUE, &req(0, uring::ZERO_COPY))
    })?;
    let answers = [
        (
            "add_queue_qid_past_last",
            uring_cmd(dev, uring::CMD_ADD_QUEUE, &req(queues, 0)),
            "EINVAL",
        ),
        (
            "add_queue_unknown_flag",
            uring_cmd(dev, uring::CMD_ADD_QUEUE, &req(0, 1 << 1)),
            "EINVAL",
        ),
        ("add_queue_zero_copy_without_cap", without_cap, "EPERM"),
        (
            "add_queue_zero_copy",
            uring_cmd(dev, uring::CMD_ADD_QUEUE, &req(0, uring::ZERO_COPY)),
            "ok",
        ),
        (
            "add_queue_again",
            uring_cmd(dev, uring::CMD_ADD_QUEUE, &req(0, 0)),
            "EEXIST",
        ),
        (
            "add_bufpool_flags",
            uring_cmd(dev, uring::CMD_ADD_BUFPOOL, &pool_req(pool.len(), 1, 0)),
            "EINVAL",
        ),
        (
            "add_bufpool_reserved",
            uring_cmd(dev, uring::CMD_ADD_BUFPOOL, &pool_req(pool.len(), 0, 1)),
            "EINVAL",
        ),
        (
            "add_bufpool_smaller_than_a_payload",
            uring_cmd(dev, uring::CMD_ADD_BUFPOOL, &pool_req(4096, 0, 0)),
            "EINVAL",
        ),
        (
            "add_bufpool",
            uring_cmd(dev, uring::CMD_ADD_BUFPOOL, &pool_req(pool.len(), 0, 0)),
            "ok",
        ),
        (
            "add_bufpool_again",
            uring_cmd(dev, uring::CMD_ADD_BUFPOOL, &pool_req(pool.len(), 0, 0)),
            "EINVAL",
        ),
    ];
    for (key, got, want) in answers {
        // Before 7.46 fuse_uring_cmd's switch knows neither command: EINVAL for all.
        ctx.expect(key, got, if has_bufpools { want } else { "EINVAL" });
    }
    // Nothing is registered, so the connection would hold any request: end it first.
    let _ = fs.abort();
    drop(fs);
    drop(pool);
    Ok(())
}

/// `uring.zero_copy`: the round trip of io.cached_round_trip through a cached file, served
/// three ways; the requests the ring served zero copy counted for each.
fn zero_copy(ctx: &mut Ctx) -> Result<(), Stop> {
    use crate::fuse::abi::{fopen, op};
    use crate::fuse::ZERO_COPIED_REQUESTS;
    use std::sync::atomic::Ordering::SeqCst;
    // fs/fuse/dev_uring.c of 7.3: fuse_uring_add_queue (FUSE_URING_ZERO_COPY),
    // can_zero_copy_req and fuse_uring_set_up_zero_copy; fs/fuse/file.c sets
    // args->zero_copy from FOPEN_IO_URING_ZERO_COPY for READ and WRITE.
    let (since, minor) = (crate::framework::ring::POOLS_SINCE, 46);
    if !ctx.kernel.at_least(since.0, since.1) {
        return Err(Stop::Skip(format!(
            "zero copy for FUSE over io_uring came in 7.3 (protocol 7.{minor})"
        )));
    }
    let _guard = enable(ctx, true)?;
    for (label, payload, open_flags, want) in [
        (
            "zero_copy_queue_zero_copy_file",
            Payload::ZeroCopy,
            fopen::IO_URING_ZERO_COPY,
            true,
        ),
        (
            "pooled_queue_zero_copy_file",
            Payload::Pool,
            fopen::IO_URING_ZERO_COPY,
            false,
        ),
        ("zero_copy_queue_plain_file", Payload::ZeroCopy, 0, false),
    ] {
        let before = ZERO_COPIED_REQUESTS.load(SeqCst);
        let (fs, _) = mount_on_ring(
            ctx,
            InitReply {
                ring_payload: payload,
                ..InitReply::plain()
            },
        )?;
        let backing = fs.add_file(
            "data",
            &[],
            OpenReply {
                open_flags,
                backing_id: 0,
            },
        )?;
        crate::framework::fixtures::round_trip(ctx, &fs, &backing)?;
        let data_requests = fs.count(op::READ) + fs.count(op::WRITE);
        drop(fs);
        let zero_copied = ZERO_COPIED_REQUESTS.load(SeqCst) - before;
        let how = match (zero_copied, data_requests) {
            (0, _) => "copied",
            (z, d) if z == d => "zero copy",
            _ => "some zero copy",
        };
        ctx.observe(label, how);
        ctx.check(
            how == if want { "zero copy" } else { "copied" },
            format!(
                "{label}: {zero_copied} of {data_requests} READ and WRITE requests came zero \
                 copy (expected {})",
                if want { "all" } else { "none" }
            ),
        );
    }
    Ok(())
}
