//! Notifications (a server's unasked writes to /dev/fuse) against a passthrough inode: what
//! the kernel does with the backing file, the FUSE page cache of a passthrough inode, and
//! the next open. The rules are read from fs/fuse/notify.c of 7.3: STORE fills the FUSE
//! inode's page cache (and may raise its size) and never writes anywhere else; RETRIEVE sends
//! back what that page cache holds; INVAL_INODE and INVAL_ENTRY drop cached pages and
//! dentries; INC_EPOCH (7.44) makes every dentry of an older epoch stale; PRUNE (7.45) drops
//! the dentries of the inodes it names and, for one no longer in use, the inode (FORGET).

use proto::observation as key;
use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;
use std::time::Duration;

use zerocopy::IntoBytes;

use crate::framework::{pattern, Case, Ctx, Stop};
use crate::fuse::abi::{
    notify, op, DeleteOut, InvalEntryOut, InvalInodeOut, PruneOut, RetrieveOut, StoreOut,
    UNIQUE_RESEND,
};
use crate::fuse::FuseFs;
use crate::sys::outcome;

/// What the cases of this group share.
const DEFAULTS: Case = Case {
    timeout: Duration::from_secs(20),
    ..Case::DEFAULT
};

/// The served file's size: 16 pages of bytes the backing file alone holds.
const SIZE: usize = 65536;

pub fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "notify.store_and_retrieve",
            rule: "FUSE_NOTIFY_STORE into an open and mapped passthrough inode fills the FUSE \
                   inode's page cache only: the backing file keeps its bytes and size, reads \
                   and the mapping (both the backing file's) are unchanged and still never \
                   reach the server; FUSE_NOTIFY_RETRIEVE then sends back what was stored",
            verdict_rule: "pass when STORE is accepted, the backing file's bytes and size are \
                           unchanged, no READ or WRITE reaches the server, and the \
                           NOTIFY_REPLY carries the stored bytes; what read(2), the mapping and \
                           stat(2) show after the STORE is recorded",
            run: store_and_retrieve,
            ..DEFAULTS
        },
        Case {
            name: "notify.inval_inode_while_open",
            rule: "FUSE_NOTIFY_INVAL_INODE of a passthrough inode that is open and mapped is \
                   accepted and changes nothing of its I/O: reads, writes and the mapping go \
                   on through the backing file",
            verdict_rule: "pass when the notification is accepted, the bytes read, written \
                           and mapped afterwards are right and no READ or WRITE reaches the \
                           server",
            run: inval_inode_while_open,
            ..DEFAULTS
        },
        Case {
            name: "notify.inval_entry_then_reopen",
            rule: "FUSE_NOTIFY_INVAL_ENTRY of an open passthrough file's name makes the next \
                   open look the name up again; that open passes through, and the fd opened \
                   before goes on working",
            verdict_rule: "pass when the notification is accepted, a LOOKUP follows the next \
                           open, both fds read the right bytes and no READ reaches the server",
            run: inval_entry_then_reopen,
            ..DEFAULTS
        },
        Case {
            name: "notify.delete",
            rule: "FUSE_NOTIFY_DELETE of an open passthrough file's name, naming its node: \
                   the name goes and the inode's link count drops to 0, while the open fd \
                   goes on passing through; naming another node, it is refused (ENOENT)",
            verdict_rule: "pass on ENOENT for the other node, ok for the file's, nlink 0 by \
                           fstat of the open fd, and its reads right with no READ",
            run: delete,
            ..DEFAULTS
        },
        Case {
            name: "notify.resend",
            rule: "FUSE_NOTIFY_RESEND (protocol 7.40): a request the server has read and not \
                   answered is sent again, its unique with FUSE_UNIQUE_RESEND (bit 63) set; \
                   the answer to the resent unique ends the call, the old unique is no \
                   longer known (ENOENT to its answer)",
            verdict_rule: "pass when the notification is accepted, the held LOOKUP comes a \
                           second time with the old unique and bit 63, and the lookup ends \
                           with the server's ENOENT once both answers are written",
            run: resend,
            ..DEFAULTS
        },
        Case {
            name: "notify.inc_epoch",
            rule: "FUSE_NOTIFY_INC_EPOCH (protocol 7.44) makes every dentry of the older epoch \
                   stale: the next path walk looks the passthrough file up again, and an open \
                   fd goes on passing through; a kernel before 7.44 refuses the code (EINVAL)",
            verdict_rule: "from 7.44: pass when the notification is accepted, a LOOKUP \
                           follows and the reads are right with no READ at the server; \
                           before: pass on EINVAL",
            run: inc_epoch,
            ..DEFAULTS
        },
        Case {
            name: "notify.inc_epoch_with_inval_wq",
            rule: "with the fuse module's inval_wq parameter set (a period of 5 s or more), \
                   FUSE_NOTIFY_INC_EPOCH also has the older epoch's unused dentries dropped \
                   at once, from a work queue: a passthrough file looked up and closed is \
                   forgotten (FORGET) with no path walk",
            verdict_rule: "pass when no FORGET comes before the notification and one comes \
                           within 2 s of it; skip where the kernel has no inval_wq parameter \
                           or no INC_EPOCH (before 7.44)",
            run: inc_epoch_with_inval_wq,
            ..DEFAULTS
        },
        Case {
            name: "notify.prune",
            rule: "FUSE_NOTIFY_PRUNE (protocol 7.45) of a passthrough inode in use (open) \
                   forgets nothing; once it is closed, PRUNE makes the kernel forget it \
                   (FORGET), and the next open looks it up again and passes through with the \
                   server's still registered backing id; a kernel before 7.45 refuses the code \
                   (EINVAL)",
            verdict_rule: "from 7.45: pass when no FORGET comes while the file is open, one \
                           comes after the prune of the closed file, and the next open reads \
                           the right bytes with no READ at the server; before: pass on EINVAL",
            run: prune,
            ..DEFAULTS
        },
    ]
}

/// A passthrough file `f` of [`SIZE`] bytes, open read-write: the fs, the fd, the bytes, and
/// the protocol minor the kernel speaks.
fn open_file(ctx: &mut Ctx) -> Result<(FuseFs, File, Vec<u8>, u32), Stop> {
    let data = pattern(900, SIZE);
    let (fs, _, _) = ctx.passthrough_file("f", &data)?;
    let minor = fs.wait_for_init()?.minor;
    let file = File::options().read(true).write(true).open(fs.path("f"))?;
    Ok((fs, file, data, minor))
}

/// The node id the server gave `name`, or a broken case.
fn nodeid(fs: &FuseFs, name: &str) -> Result<u64, Stop> {
    fs.nodeid(name)
        .ok_or_else(|| Stop::Broken(format!("the server has no node {name}")))
}

/// Bytes `len` at `off` of a shared read mapping of `file`.
fn mapped(file: &File, off: usize, len: usize) -> Result<Vec<u8>, Stop> {
    use rustix::mm::{MapFlags, ProtFlags};
    // SAFETY: a fresh shared read-only mapping, copied out and unmapped here.
    unsafe {
        let p = rustix::mm::mmap(
            std::ptr::null_mut(),
            SIZE,
            ProtFlags::READ,
            MapFlags::SHARED,
            file.as_fd(),
            0,
        )?;
        let out = std::slice::from_raw_parts((p as *const u8).add(off), len).to_vec();
        rustix::mm::munmap(p, SIZE)?;
        Ok(out)
    }
}

/// `what` read at `off` shows: "backing" (its bytes), "stored", or "other".
fn which(got: &[u8], backing: &[u8], stored: &[u8]) -> &'static str {
    if got == backing {
        "backing"
    } else if got == stored {
        "stored"
    } else {
        "other"
    }
}

/// No READ or WRITE reached the server: the I/O passed through.
fn expect_passed_through(ctx: &mut Ctx, fs: &FuseFs) {
    ctx.expect_count(key::READ_REQUESTS, fs.count(op::READ), 0);
    ctx.expect_count(key::WRITE_REQUESTS, fs.count(op::WRITE), 0);
}

fn store_and_retrieve(ctx: &mut Ctx) -> Result<(), Stop> {
    let (fs, file, data, _) = open_file(ctx)?;
    let backing = fs.backing_dir.join("f");
    let node = nodeid(&fs, "f")?;
    // Map it first: the mapping is the backing file's.
    let before = mapped(&file, 0, 4096)?;
    ctx.check(before == data[..4096], "the mapping shows other bytes");
    let stored = pattern(901, 4096);
    let store = |offset: u64, bytes: &[u8]| {
        let out = StoreOut {
            nodeid: node,
            offset,
            size: bytes.len() as u32,
            padding: 0,
        };
        let mut payload = out.as_bytes().to_vec();
        payload.extend_from_slice(bytes);
        outcome(&fs.notify(notify::STORE, &payload))
    };
    ctx.expect("store", store(0, &stored), "ok");
    // RETRIEVE the first page at once: the kernel answers with what the FUSE page cache
    // holds. (Later, a GETATTR whose size or mtime differs from the cached ones drops those
    // pages: the server's attributes win.)
    let out = RetrieveOut {
        notify_unique: 0x5eed,
        nodeid: node,
        offset: 0,
        size: 4096,
        padding: 0,
    };
    ctx.expect(
        "retrieve",
        outcome(&fs.notify(notify::RETRIEVE, out.as_bytes())),
        "ok",
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while fs.retrieved().is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let replies = fs.retrieved();
    let got = replies.first().cloned().unwrap_or_default();
    ctx.observe("retrieved_bytes", got.len());
    ctx.check(
        got == stored,
        format!(
            "RETRIEVE sent back {} bytes ({}), not the {} stored",
            got.len(),
            which(&got, &data[..got.len().min(4096)], &stored),
            stored.len()
        ),
    );
    // Past the end: the kernel raises the FUSE inode's size, not the backing file's.
    ctx.expect("store_past_eof", store(SIZE as u64, &stored), "ok");
    let on_disk = std::fs::read(&backing)?;
    ctx.check(
        on_disk == data,
        "a STORE into the passthrough inode changed its backing file",
    );
    let read = {
        let mut buf = vec![0u8; 4096];
        file.read_exact_at(&mut buf, 0)?;
        buf
    };
    ctx.observe("read_after_store", which(&read, &data[..4096], &stored));
    ctx.observe(
        "mapping_after_store",
        which(&mapped(&file, 0, 4096)?, &data[..4096], &stored),
    );
    ctx.observe("size_after_store_past_eof", file.metadata()?.len());
    ctx.expect_count(
        "backing_size_after_store",
        std::fs::metadata(&backing)?.len(),
        SIZE as u64,
    );
    expect_passed_through(ctx, &fs);
    Ok(())
}

fn inval_inode_while_open(ctx: &mut Ctx) -> Result<(), Stop> {
    let (fs, file, mut data, _) = open_file(ctx)?;
    let node = nodeid(&fs, "f")?;
    ctx.check(
        mapped(&file, 0, SIZE)? == data,
        "the mapping shows other bytes",
    );
    let out = InvalInodeOut {
        ino: node,
        off: 0,
        len: -1,
    };
    ctx.expect(
        "inval_inode",
        outcome(&fs.notify(notify::INVAL_INODE, out.as_bytes())),
        "ok",
    );
    let write = pattern(902, 8192);
    file.write_all_at(&write, 4096)?;
    data[4096..4096 + 8192].copy_from_slice(&write);
    let mut read = vec![0u8; SIZE];
    file.read_exact_at(&mut read, 0)?;
    ctx.check(read == data, "reads after INVAL_INODE show other bytes");
    ctx.check(
        mapped(&file, 0, SIZE)? == data,
        "the mapping after INVAL_INODE shows other bytes",
    );
    ctx.check(
        std::fs::read(fs.backing_dir.join("f"))? == data,
        "the write after INVAL_INODE did not reach the backing file",
    );
    expect_passed_through(ctx, &fs);
    Ok(())
}

/// INVAL_ENTRY of `name` in the root.
fn inval_entry(fs: &FuseFs, name: &str) -> String {
    let out = InvalEntryOut {
        parent: 1,
        namelen: name.len() as u32,
        flags: 0,
    };
    let mut payload = out.as_bytes().to_vec();
    payload.extend_from_slice(name.as_bytes());
    payload.push(0);
    outcome(&fs.notify(notify::INVAL_ENTRY, &payload))
}

fn inval_entry_then_reopen(ctx: &mut Ctx) -> Result<(), Stop> {
    let (fs, first, data, _) = open_file(ctx)?;
    ctx.expect("inval_entry", inval_entry(&fs, "f"), "ok");
    let lookups = fs.count(op::LOOKUP);
    let second = File::open(fs.path("f"))?;
    ctx.check(
        fs.count(op::LOOKUP) > lookups,
        "the open after INVAL_ENTRY did not look the name up again",
    );
    for (which, file) in [("the first fd", &first), ("the reopened fd", &second)] {
        let mut buf = vec![0u8; SIZE];
        file.read_exact_at(&mut buf, 0)?;
        ctx.check(buf == data, format!("{which} reads other bytes"));
    }
    expect_passed_through(ctx, &fs);
    Ok(())
}

fn delete_entry(fs: &FuseFs, name: &str, child: u64) -> String {
    let out = DeleteOut {
        parent: 1,
        child,
        namelen: name.len() as u32,
        padding: 0,
    };
    let mut payload = out.as_bytes().to_vec();
    payload.extend_from_slice(name.as_bytes());
    payload.push(0);
    outcome(&fs.notify(notify::DELETE, &payload))
}

fn delete(ctx: &mut Ctx) -> Result<(), Stop> {
    let (fs, file, data, _) = open_file(ctx)?;
    let node = nodeid(&fs, "f")?;
    // The name is looked up and invalidated before its node is compared: a refused DELETE
    // drops the dentry too, so the refusal is tried on a name of its own.
    fs.add_file("g", b"other", crate::fuse::OpenReply::CACHED)?;
    std::fs::symlink_metadata(fs.path("g"))?;
    ctx.expect(
        "delete_naming_another_node",
        delete_entry(&fs, "g", node),
        "ENOENT",
    );
    ctx.expect("delete", delete_entry(&fs, "f", node), "ok");
    let links = rustix::fs::fstat(&file)?.st_nlink;
    ctx.expect_count("nlink_after_delete", links as u64, 0);
    let mut buf = vec![0u8; SIZE];
    file.read_exact_at(&mut buf, 0)?;
    ctx.check(buf == data, "the open fd reads other bytes after DELETE");
    expect_passed_through(ctx, &fs);
    Ok(())
}

fn resend(ctx: &mut Ctx) -> Result<(), Stop> {
    let (fs, _file, _, _) = open_file(ctx)?;
    let lookups = fs.count(op::LOOKUP);
    fs.hold(op::LOOKUP);
    let absent = fs.path("absent");
    let lookup = std::thread::spawn(move || {
        std::fs::symlink_metadata(absent)
            .map(drop)
            .map_err(|e| crate::fuse::errno(&e))
    });
    if fs.wait_count(op::LOOKUP, lookups + 1, Duration::from_secs(2)) <= lookups {
        fs.release_held();
        return Err(Stop::Broken(
            "the lookup did not reach the server in 2 s".into(),
        ));
    }
    ctx.expect("resend", outcome(&fs.notify(notify::RESEND, &[])), "ok");
    let seen = fs.wait_count(op::LOOKUP, lookups + 2, Duration::from_secs(2));
    let uniques = fs.held_uniques();
    fs.release_held();
    ctx.expect_count("lookups_read", seen - lookups, 2);
    let resent = matches!(uniques[..], [old, new] if new == old | UNIQUE_RESEND);
    ctx.observe("resent_with_old_unique_and_bit_63", resent);
    ctx.check(
        resent,
        format!("the held LOOKUP was not sent again with bit 63 on its unique: {uniques:x?}"),
    );
    let ended = lookup
        .join()
        .map_err(|_| Stop::Broken("the lookup thread panicked".into()))?;
    ctx.expect("lookup_after_resend", outcome(&ended), "ENOENT");
    Ok(())
}

fn inc_epoch(ctx: &mut Ctx) -> Result<(), Stop> {
    let (fs, file, data, minor) = open_file(ctx)?;
    let sent = outcome(&fs.notify(notify::INC_EPOCH, &[]));
    if minor < 44 {
        ctx.expect("inc_epoch", sent, "EINVAL");
        return Ok(());
    }
    ctx.expect("inc_epoch", sent, "ok");
    let lookups = fs.count(op::LOOKUP);
    let again = File::open(fs.path("f"))?;
    ctx.check(
        fs.count(op::LOOKUP) > lookups,
        "the path walk after INC_EPOCH did not look the name up again",
    );
    for f in [&file, &again] {
        let mut buf = vec![0u8; SIZE];
        f.read_exact_at(&mut buf, 0)?;
        ctx.check(buf == data, "a read after INC_EPOCH shows other bytes");
    }
    expect_passed_through(ctx, &fs);
    Ok(())
}

/// The period of the fuse module's dentry invalidation work queue, in seconds (0: off).
const INVAL_WQ: &str = "/sys/module/fuse/parameters/inval_wq";

/// A module parameter written for a case, put back as it was when dropped.
struct ParamSet {
    path: &'static str,
    before: String,
}

impl Drop for ParamSet {
    fn drop(&mut self) {
        let _ = std::fs::write(self.path, &self.before);
    }
}

fn inc_epoch_with_inval_wq(ctx: &mut Ctx) -> Result<(), Stop> {
    // Passthrough first: a kernel without it skips for that, as every case of the group.
    let (fs, _, _) = ctx.passthrough_file("f", &pattern(901, SIZE))?;
    let Ok(before) = std::fs::read_to_string(INVAL_WQ) else {
        return Err(Stop::Skip(format!("this kernel has no {INVAL_WQ}")));
    };
    if fs.wait_for_init()?.minor < 44 {
        return Err(Stop::Skip(
            "FUSE_NOTIFY_INC_EPOCH came in protocol 7.44".into(),
        ));
    }
    drop(File::open(fs.path("f"))?);
    fs.wait_count(op::RELEASE, 1, Duration::from_secs(1));
    let forgets = || fs.count(op::FORGET) + fs.count(op::BATCH_FORGET);
    ctx.expect_count("forgets_before_the_notification", forgets(), 0);
    let set = ParamSet {
        path: INVAL_WQ,
        before: before.trim().to_string(),
    };
    std::fs::write(INVAL_WQ, "5")
        .map_err(|e| Stop::Broken(format!("cannot set {INVAL_WQ}: {e}")))?;
    ctx.expect(
        "inc_epoch",
        outcome(&fs.notify(notify::INC_EPOCH, &[])),
        "ok",
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while forgets() == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(set);
    let forgot = forgets() > 0;
    ctx.observe("forgotten_after_inc_epoch", forgot);
    ctx.check(
        forgot,
        "no FORGET within 2 s of INC_EPOCH with inval_wq set: the unused dentry was kept",
    );
    Ok(())
}

fn prune(ctx: &mut Ctx) -> Result<(), Stop> {
    let (fs, file, data, minor) = open_file(ctx)?;
    let node = nodeid(&fs, "f")?;
    let send_prune = || {
        let out = PruneOut {
            count: 1,
            padding: 0,
            spare: 0,
        };
        let mut payload = out.as_bytes().to_vec();
        payload.extend_from_slice(node.as_bytes());
        outcome(&fs.notify(notify::PRUNE, &payload))
    };
    if minor < 45 {
        ctx.expect("prune", send_prune(), "EINVAL");
        return Ok(());
    }
    let forgets = || fs.count(op::FORGET) + fs.count(op::BATCH_FORGET);
    let before = forgets();
    ctx.expect("prune_while_open", send_prune(), "ok");
    // Nothing comes for an inode in use; give a FORGET the time it would take.
    std::thread::sleep(Duration::from_millis(200));
    ctx.check(
        forgets() == before,
        "PRUNE of an open passthrough inode made the kernel forget it",
    );
    drop(file);
    ctx.expect("prune_after_close", send_prune(), "ok");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while forgets() == before && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    ctx.check(
        forgets() > before,
        "PRUNE of the closed passthrough inode brought no FORGET",
    );
    let lookups = fs.count(op::LOOKUP);
    let again = File::open(fs.path("f"))?;
    ctx.check(
        fs.count(op::LOOKUP) > lookups,
        "the open after the prune did not look the name up again",
    );
    let mut buf = vec![0u8; SIZE];
    again.read_exact_at(&mut buf, 0)?;
    ctx.check(buf == data, "the open after the prune reads other bytes");
    expect_passed_through(ctx, &fs);
    Ok(())
}
