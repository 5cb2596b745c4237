//! What the kernel accepts in an OPEN/CREATE reply with FOPEN_PASSTHROUGH, and how the
//! inode's I/O mode (cached, passthrough, direct) constrains later opens.

use proto::observation as key;
use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;
use std::time::Duration;

use rustix::mm::{MapFlags, ProtFlags};

use crate::framework::{pattern, Case, Ctx, Stop};
use crate::fuse::abi::{fopen, op};
use crate::fuse::{errno, CreateReply, OpenReply};
use crate::sys::outcome;

/// What the cases of this group share.
const DEFAULTS: Case = Case { ..Case::DEFAULT };

pub fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "open_reply.stream_and_nonseekable",
            rule: "a cached open answered FOPEN_NONSEEKABLE cannot seek or pread (ESPIPE) \
              and reads on from its position; one answered FOPEN_STREAM cannot either, and \
              keeps no position: every read asks from offset 0",
            verdict_rule: "pass on ESPIPE from lseek and pread of both, the nonseekable \
              file's second read at 4096 and the stream's at 0",
            run: stream_and_nonseekable,
            ..DEFAULTS
        },
        Case {
            name: "open_reply.open_enosys",
            rule: "an OPEN answered ENOSYS is an open that needs no server: open() \
              succeeds, the file is cached (read by READ), and the kernel sends no OPEN \
              again on that connection, so a file the server would pass through is cached \
              too",
            verdict_rule: "pass when both opens succeed, their bytes come by READ, and one \
              OPEN was sent in all",
            run: open_enosys,
            ..DEFAULTS
        },
        Case {
            name: "open_reply.atomic_o_trunc",
            rule: "with FUSE_ATOMIC_O_TRUNC agreed at INIT, an O_TRUNC open of a \
              passthrough file sends OPEN with O_TRUNC and no SETATTR, and the kernel takes \
              the size as 0 and the time as now at once: stat, read and a write after it see \
              the emptied file",
            verdict_rule: "pass when no SETATTR is sent, the size is 0 and the mtime new \
              through the mount, a read gives nothing, the backing file holds only what was written after, and \
              the I/O passed through",
            run: atomic_o_trunc,
            ..DEFAULTS
        },
        Case {
            name: "open_reply.mmap_direct_io_twice_then_passthrough",
            rule: "a FOPEN_DIRECT_IO file mapped shared (FUSE_DIRECT_IO_ALLOW_MMAP) enters the \
              cached I/O mode once per open, however often it is mapped: after two mappings \
              and the close, the inode takes a passthrough open again",
            verdict_rule: "pass when both mappings show the file and the passthrough open \
              after the close succeeds",
            run: mmap_direct_io_twice_then_passthrough,
            ..DEFAULTS
        },
        Case {
            name: "open_reply.cached_open_waits_for_parallel_write",
            rule: "a cached open of an inode with a parallel direct write in flight \
              (FOPEN_DIRECT_IO with FOPEN_PARALLEL_DIRECT_WRITES, inside the file's size) \
              waits until that write is answered, then succeeds",
            verdict_rule: "pass when the cached open still waits 300 ms after its OPEN was \
              answered while the server holds the WRITE's answer, and returns ok within 2 s \
              of that answer, the write giving 512",
            run: cached_open_waits_for_parallel_write,
            ..DEFAULTS
        },
        Case {
            name: "open_reply.backing_file_refuses_the_open",
            rule: "a passthrough open the backing file cannot take (an id registered from a \
              read-only mount, the FUSE file opened for writing: the backing open gives \
              EROFS) fails with EIO and puts the reference it took; an open for reading \
              of the same id passes through",
            verdict_rule: "pass on EIO for the open for writing, ok and the file's bytes \
              with no READ for the open for reading, and the read-only mount coming off \
              once that file and the id are closed",
            run: backing_file_refuses_the_open,
            ..DEFAULTS
        },
        Case {
            name: "open_reply.backing_kept_while_open",
            rule: "an inode keeps its backing file while any passthrough open of it lasts: \
              of two opens with one id, the first closed, an open naming another id is still \
              refused (EIO); after the last close it is taken",
            verdict_rule: "pass on EIO for the other id while one open remains, and ok once \
              none does",
            run: backing_kept_while_open,
            ..DEFAULTS
        },
        Case {
            name: "open_reply.keep_cache",
            rule: "FOPEN_PASSTHROUGH with FOPEN_KEEP_CACHE is refused: open() \
              gives EIO",
            verdict_rule: "pass on EIO",
            run: keep_cache,
            ..DEFAULTS
        },
        Case {
            name: "open_reply.passthrough_flag_mask",
            rule: "FOPEN_PASSTHROUGH goes only with FOPEN_DIRECT_IO, \
              FOPEN_PARALLEL_DIRECT_WRITES and FOPEN_NOFLUSH: any other open flag with it \
              (NONSEEKABLE, CACHE_DIR, STREAM, and 7.46's IO_URING_ZERO_COPY, whatever the \
              kernel's minor) makes the open fail with EIO",
            verdict_rule: "pass on ok with NOFLUSH and EIO with each of the others",
            run: passthrough_flag_mask,
            ..DEFAULTS
        },
        Case {
            name: "open_reply.direct_io",
            rule: "FOPEN_PASSTHROUGH with FOPEN_DIRECT_IO: read and write go to \
              the server, mmap goes to the backing file",
            verdict_rule: "pass when READ/WRITE reach the server and \
              a mapping shows the backing file's bytes",
            run: direct_io,
            ..DEFAULTS
        },
        Case {
            name: "open_reply.parallel_direct_writes",
            rule: "FOPEN_PASSTHROUGH with \
              FOPEN_PARALLEL_DIRECT_WRITES is accepted and I/O is passed through",
            verdict_rule: "pass when data round-trips with 0 READ and 0 WRITE",
            run: parallel_direct_writes,
            ..DEFAULTS
        },
        Case {
            name: "open_reply.second_backing_id",
            rule: "a second open of an inode in passthrough mode naming a \
              different backing id fails with EIO (EBUSY inside)",
            verdict_rule: "pass on ok then EIO",
            run: second_backing_id,
            ..DEFAULTS
        },
        Case {
            name: "open_reply.same_backing_id_twice",
            rule: "a second open naming the same backing id shares \
              the inode's backing file",
            verdict_rule: "pass on ok, ok",
            run: same_backing_id_twice,
            ..DEFAULTS
        },
        Case {
            name: "open_reply.cached_on_passthrough_inode",
            rule: "an open without FOPEN_PASSTHROUGH while the inode is in passthrough \
              mode fails with EIO, whatever its other flags: cached, FOPEN_DIRECT_IO, \
              FOPEN_DIRECT_IO with FOPEN_PARALLEL_DIRECT_WRITES",
            verdict_rule: "pass on ok, then EIO for each of the three",
            run: cached_on_passthrough_inode,
            ..DEFAULTS
        },
        Case {
            name: "open_reply.passthrough_on_cached_inode",
            rule: "a passthrough open while the inode is open \
              in cached mode fails with EIO (ETXTBSY inside)",
            verdict_rule: "pass on ok then EIO",
            run: passthrough_on_cached_inode,
            ..DEFAULTS
        },
        Case {
            name: "open_reply.mmap_direct_io_fd",
            rule: "mmap through a direct-I/O (non-passthrough) fd of an \
              inode in passthrough mode gives ENODEV",
            verdict_rule: "pass on ENODEV",
            run: mmap_direct_io_fd,
            ..DEFAULTS
        },
        Case {
            name: "open_reply.create_passthrough",
            rule: "CREATE answered with FOPEN_PASSTHROUGH and a backing id \
              the server registered: writes land in the new backing file, bypassing the server",
            verdict_rule: "pass when one CREATE reaches the server and the data lands with 0 WRITE",
            run: create_passthrough,
            ..DEFAULTS
        },
        Case {
            name: "open_reply.after_release_mode_resets",
            rule: "once every file of an inode is closed, it may \
              be opened in the other mode",
            verdict_rule: "pass on ok for passthrough, then cached, then passthrough",
            run: after_release_mode_resets,
            ..DEFAULTS
        },
    ]
}

/// How an open of "f" for reading and writing ends ("ok" or the errno), closed at once.
fn reopen(fs: &crate::fuse::FuseFs) -> String {
    outcome(&open_rw(fs, "f").map(drop))
}

fn open_rw(fs: &crate::fuse::FuseFs, name: &str) -> Result<File, rustix::io::Errno> {
    File::options()
        .read(true)
        .write(true)
        .open(fs.path(name))
        .map_err(|e| errno(&e))
}

fn atomic_o_trunc(ctx: &mut Ctx) -> Result<(), Stop> {
    use crate::fuse::abi::init_flags;
    let mut init = crate::fuse::InitReply::passthrough(1);
    init.flags |= init_flags::ATOMIC_O_TRUNC;
    let fs = ctx.mount_offering(init)?;
    let backing = fs.backing_dir.join("f");
    std::fs::write(&backing, pattern(32, 8192))?;
    fs.add_passthrough_file_at("f", &backing)?;
    // An old mtime, cached by a stat before the open (attributes stay valid a second): the
    // open must update the time and drop what the kernel cached of the old file.
    let old = rustix::fs::Timespec {
        tv_sec: 1_000_000_000,
        tv_nsec: 0,
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        &backing,
        &rustix::fs::Timestamps {
            last_access: old,
            last_modification: old,
        },
        rustix::fs::AtFlags::empty(),
    )?;
    let before = std::fs::metadata(fs.path("f"))?.len();
    let file = File::options()
        .read(true)
        .write(true)
        .truncate(true)
        .open(fs.path("f"))?;
    let meta = file.metadata()?;
    let size = meta.len();
    ctx.check(
        std::os::unix::fs::MetadataExt::mtime(&meta) > 1_000_000_000,
        "after an atomic O_TRUNC open the file still has the mtime it had before (the \
         kernel kept its cached attributes)",
    );
    let mut buf = [0u8; 16];
    let read = file.read_at(&mut buf, 0)?;
    ctx.expect_count("setattr_requests", fs.count(op::SETATTR), 0);
    ctx.check(
        size == 0 && read == 0,
        format!(
            "after an atomic O_TRUNC open of a {before}-byte file: size {size} through the \
             mount, {read} bytes read"
        ),
    );
    let data = pattern(33, 100);
    file.write_all_at(&data, 0)?;
    drop(file);
    ctx.check(
        std::fs::read(&backing)? == data,
        "the backing file is not the 100 bytes written after the O_TRUNC open",
    );
    ctx.expect_count(key::READ_REQUESTS, fs.count(op::READ), 0);
    ctx.expect_count(key::WRITE_REQUESTS, fs.count(op::WRITE), 0);
    Ok(())
}

fn stream_and_nonseekable(ctx: &mut Ctx) -> Result<(), Stop> {
    let data = pattern(30, 8192);
    // No passthrough needed: these opens are cached, on any kernel.
    let (fs, _) = ctx.mount(crate::fuse::InitReply::passthrough(1))?;
    for (key, flag, second_at) in [
        ("nonseekable", fopen::NONSEEKABLE, 4096),
        ("stream", fopen::STREAM, 0),
    ] {
        fs.add_file(
            key,
            &data,
            OpenReply {
                open_flags: flag,
                backing_id: 0,
            },
        )?;
        let file = File::open(fs.path(key))?;
        let seek = rustix::fs::seek(&file, rustix::fs::SeekFrom::Start(100));
        ctx.expect(&format!("{key}_lseek"), outcome(&seek), "ESPIPE");
        let mut buf = vec![0u8; 4096];
        let pread = rustix::io::pread(&file, &mut buf, 100);
        ctx.expect(&format!("{key}_pread"), outcome(&pread), "ESPIPE");
        let mut first = vec![0u8; 4096];
        let mut second = vec![0u8; 4096];
        std::io::Read::read_exact(&mut &file, &mut first)?;
        std::io::Read::read_exact(&mut &file, &mut second)?;
        let at = (0..=4096)
            .step_by(4096)
            .find(|&o| second == data[o..o + 4096]);
        ctx.observe(&format!("{key}_second_read_at"), at);
        ctx.check(
            first == data[..4096] && at == Some(second_at),
            format!("{key}: the second read gave the bytes at {at:?}, not at {second_at}"),
        );
    }
    Ok(())
}

fn open_enosys(ctx: &mut Ctx) -> Result<(), Stop> {
    let data = pattern(31, 8192);
    let (fs, backing, _) = ctx.passthrough_file("p", &data)?;
    fs.add_file("f", &data, OpenReply::CACHED)?;
    fs.answer_open(rustix::io::Errno::NOSYS);
    for name in ["f", "p"] {
        let got = std::fs::read(fs.path(name)).map_err(|e| errno(&e));
        ctx.expect(&format!("open_{name}"), outcome(&got), "ok");
        ctx.check(
            got.as_deref().ok() == Some(&data[..]),
            format!("{name}: read after an OPEN answered ENOSYS differs"),
        );
    }
    // p's backing id was never given: its bytes came by READ like f's.
    ctx.expect_count("open_requests", fs.count(op::OPEN), 1);
    ctx.observe("read_requests_seen", fs.count(op::READ) > 0);
    ctx.check(
        fs.count(op::READ) > 0,
        "no READ reached the server: the files were not served cached",
    );
    drop(backing);
    Ok(())
}

fn mmap_direct_io_twice_then_passthrough(ctx: &mut Ctx) -> Result<(), Stop> {
    use crate::fuse::abi::init_flags;
    let mut init = crate::fuse::InitReply::passthrough(1);
    init.flags |= init_flags::DIRECT_IO_ALLOW_MMAP;
    let fs = ctx.mount_offering(init)?;
    let data = pattern(34, 4096);
    let backing = fs.backing_dir.join("f");
    std::fs::write(&backing, &data)?;
    let id = fs.add_passthrough_file_at("f", &backing)?;
    fs.set_open_reply(
        "f",
        OpenReply {
            open_flags: fopen::DIRECT_IO,
            backing_id: 0,
        },
    );
    let dio = open_rw(&fs, "f")?;
    for n in ["first", "second"] {
        // SAFETY: a shared read-only mapping of 4096 bytes, unmapped below.
        let mapped = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                4096,
                ProtFlags::READ,
                MapFlags::SHARED,
                dio.as_fd(),
                0,
            )
        };
        ctx.expect(&format!("{n}_mapping"), outcome(&mapped), "ok");
        if let Ok(ptr) = mapped {
            // SAFETY: the mapping is 4096 readable bytes until the munmap.
            let shown = unsafe { std::slice::from_raw_parts(ptr as *const u8, 4096) } == data;
            ctx.check(shown, format!("the {n} mapping does not show the file"));
            // SAFETY: unmapping what was mapped above.
            unsafe { rustix::mm::munmap(ptr, 4096)? };
        }
    }
    drop(dio);
    fs.wait_count(op::RELEASE, 1, Duration::from_secs(1));
    fs.set_open_reply("f", OpenReply::passthrough(id));
    ctx.expect("passthrough_open_after_close", reopen(&fs), "ok");
    Ok(())
}

fn cached_open_waits_for_parallel_write(ctx: &mut Ctx) -> Result<(), Stop> {
    let fs = ctx.mount_passthrough(1)?;
    let parallel = OpenReply {
        open_flags: fopen::DIRECT_IO | fopen::PARALLEL_DIRECT_WRITES,
        backing_id: 0,
    };
    fs.add_file("f", &pattern(35, 8192), parallel)?;
    let dio = open_rw(&fs, "f")?;
    // The WRITE is served (its data reaches the file) but its caller waits for the answer,
    // with the inode's parallel-write count held.
    fs.hold(op::WRITE);
    let writer = std::thread::spawn(move || match dio.write_at(&[7u8; 512], 0) {
        Ok(n) => n.to_string(),
        Err(e) => crate::sys::errno_name(errno(&e)),
    });
    if fs.wait_count(op::WRITE, 1, Duration::from_secs(2)) == 0 {
        fs.release_held();
        return Err(Stop::Broken(
            "the parallel direct write did not reach the server in 2 s".into(),
        ));
    }
    fs.set_open_reply("f", OpenReply::CACHED);
    let path = fs.path("f");
    let opener = std::thread::spawn(move || File::open(path).map(drop).map_err(|e| errno(&e)));
    fs.wait_count(op::OPEN, 2, Duration::from_secs(2));
    std::thread::sleep(Duration::from_millis(300));
    let waited = !opener.is_finished();
    ctx.observe("cached_open_waits_while_write_in_flight", waited);
    ctx.check(
        waited,
        "the cached open returned while a parallel direct write was in flight",
    );
    fs.release_held();
    let written = writer
        .join()
        .map_err(|_| Stop::Broken("the writer's thread panicked".into()))?;
    ctx.expect("parallel_write", written, "512");
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while !opener.is_finished() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    if !opener.is_finished() {
        // Waiting uninterruptibly in the kernel: joining would never return, and the case
        // process will not end either (the runner reports that).
        ctx.check(
            false,
            "the cached open still waited 2 s after the parallel direct write was answered",
        );
        return Ok(());
    }
    let opened = opener
        .join()
        .map_err(|_| Stop::Broken("the opener's thread panicked".into()))?;
    ctx.expect("cached_open_after_write", outcome(&opened), "ok");
    Ok(())
}

fn backing_file_refuses_the_open(ctx: &mut Ctx) -> Result<(), Stop> {
    use rustix::mount::{mount_bind, mount_remount, MountFlags};
    let fs = ctx.mount_passthrough(1)?;
    let data = pattern(36, 4096);
    let backing = fs.add_file("f", &data, OpenReply::CACHED)?;
    // The same directory again, read-only: the id is registered from there.
    let ro = ctx.scratch("ro")?;
    mount_bind(&fs.backing_dir, &ro)?;
    mount_remount(&ro, MountFlags::BIND | MountFlags::RDONLY, "")?;
    let ro_file = File::open(ro.join(backing.file_name().unwrap_or_default()))?;
    let id = fs.backing_open(ro_file.as_fd())?;
    drop(ro_file);
    fs.set_open_reply("f", OpenReply::passthrough(id));
    ctx.expect("open_for_writing", reopen(&fs), "EIO");
    let reader = File::open(fs.path("f"))?;
    let mut buf = vec![0u8; data.len()];
    reader.read_exact_at(&mut buf, 0)?;
    ctx.check(buf == data, "the open for reading shows other bytes");
    ctx.expect_count(key::READ_REQUESTS, fs.count(op::READ), 0);
    // With the reader closed and the id closed, nothing holds the file: the refused open
    // put what it took, so the read-only mount comes off.
    drop(reader);
    ctx.expect("backing_close", outcome(&fs.backing_close(id)), "ok");
    ctx.expect(
        "read_only_mount_after_backing_close",
        crate::framework::unmount_when_released(&ro),
        "ok",
    );
    Ok(())
}

fn backing_kept_while_open(ctx: &mut Ctx) -> Result<(), Stop> {
    let (fs, _, _) = ctx.passthrough_file("f", b"data")?;
    let first = open_rw(&fs, "f")?;
    let second = open_rw(&fs, "f")?;
    drop(first);
    fs.wait_count(op::RELEASE, 1, Duration::from_secs(1));
    let other = fs.add_file("g", b"other", OpenReply::CACHED)?;
    let other_id = fs.backing_open_path(&other)?;
    fs.set_open_reply("f", OpenReply::passthrough(other_id));
    ctx.expect("other_id_while_one_open", reopen(&fs), "EIO");
    drop(second);
    fs.wait_count(op::RELEASE, 2, Duration::from_secs(1));
    ctx.expect("other_id_after_last_close", reopen(&fs), "ok");
    Ok(())
}

fn keep_cache(ctx: &mut Ctx) -> Result<(), Stop> {
    let (fs, _, id) = ctx.passthrough_file("f", b"data")?;
    fs.set_open_reply(
        "f",
        OpenReply {
            open_flags: fopen::PASSTHROUGH | fopen::KEEP_CACHE,
            backing_id: id,
        },
    );
    ctx.expect("open", outcome(&open_rw(&fs, "f")), "EIO");
    Ok(())
}

fn passthrough_flag_mask(ctx: &mut Ctx) -> Result<(), Stop> {
    let (fs, _, id) = ctx.passthrough_file("f", b"data")?;
    for (key, flag, want) in [
        ("noflush", fopen::NOFLUSH, "ok"),
        ("nonseekable", fopen::NONSEEKABLE, "EIO"),
        ("cache_dir", fopen::CACHE_DIR, "EIO"),
        ("stream", fopen::STREAM, "EIO"),
        ("io_uring_zero_copy", fopen::IO_URING_ZERO_COPY, "EIO"),
    ] {
        fs.set_open_reply(
            "f",
            OpenReply {
                open_flags: fopen::PASSTHROUGH | flag,
                backing_id: id,
            },
        );
        // Each open closed before the next: a refused one leaves the inode's mode as it was.
        let got = open_rw(&fs, "f");
        ctx.expect(&format!("open_with_{key}"), outcome(&got), want);
    }
    Ok(())
}

fn direct_io(ctx: &mut Ctx) -> Result<(), Stop> {
    let data = pattern(1, 8192);
    let (fs, _, id) = ctx.passthrough_file("f", &data)?;
    fs.set_open_reply(
        "f",
        OpenReply {
            open_flags: fopen::PASSTHROUGH | fopen::DIRECT_IO,
            backing_id: id,
        },
    );
    let file = open_rw(&fs, "f")?;
    let mut buf = vec![0u8; 4096];
    file.read_exact_at(&mut buf, 0)?;
    file.write_all_at(&pattern(2, 100), 4096)?;
    ctx.check(
        buf == data[..4096],
        "read through the direct-I/O fd returned other bytes",
    );
    let reads = fs.count(op::READ);
    let writes = fs.count(op::WRITE);
    ctx.observe("read_requests_seen", reads > 0);
    ctx.observe("write_requests_seen", writes > 0);
    ctx.check(
        reads > 0 && writes > 0,
        "read/write did not reach the server despite FOPEN_DIRECT_IO",
    );
    // SAFETY: a fresh shared read-only mapping of 4096 bytes, unmapped below.
    let mapped = unsafe {
        rustix::mm::mmap(
            std::ptr::null_mut(),
            4096,
            ProtFlags::READ,
            MapFlags::SHARED,
            file.as_fd(),
            0,
        )
    };
    ctx.observe("mmap", outcome(&mapped));
    if let Ok(ptr) = mapped {
        // SAFETY: the mapping is 4096 readable bytes.
        let seen = unsafe { std::slice::from_raw_parts(ptr as *const u8, 4096) }.to_vec();
        ctx.check(
            seen == data[..4096],
            "the mapping does not show the backing file's bytes",
        );
        // SAFETY: unmapping what was mapped above.
        unsafe { rustix::mm::munmap(ptr, 4096)? };
    }
    ctx.check(
        mapped.is_ok(),
        "mmap of a passthrough + direct-I/O file failed",
    );
    Ok(())
}

fn parallel_direct_writes(ctx: &mut Ctx) -> Result<(), Stop> {
    let (fs, backing, id) = ctx.passthrough_file("f", &[])?;
    fs.set_open_reply(
        "f",
        OpenReply {
            open_flags: fopen::PASSTHROUGH | fopen::PARALLEL_DIRECT_WRITES,
            backing_id: id,
        },
    );
    let file = open_rw(&fs, "f");
    ctx.expect("open", outcome(&file), "ok");
    let file = file?;
    let data = pattern(3, 200_000);
    file.write_all_at(&data, 0)?;
    let mut back = vec![0u8; data.len()];
    file.read_exact_at(&mut back, 0)?;
    ctx.check(
        back == data && std::fs::read(backing)? == data,
        "data differs",
    );
    ctx.expect_bypassed(&fs);
    Ok(())
}

fn second_backing_id(ctx: &mut Ctx) -> Result<(), Stop> {
    let (fs, _, _id) = ctx.passthrough_file("f", b"data")?;
    let first = open_rw(&fs, "f");
    ctx.expect("first_open", outcome(&first), "ok");
    let other = fs.add_file("g", b"other", OpenReply::CACHED)?;
    let other_id = fs.backing_open_path(&other)?;
    fs.set_open_reply("f", OpenReply::passthrough(other_id));
    ctx.expect("second_open", outcome(&open_rw(&fs, "f")), "EIO");
    Ok(())
}

fn same_backing_id_twice(ctx: &mut Ctx) -> Result<(), Stop> {
    let (fs, _, _) = ctx.passthrough_file("f", b"data")?;
    let first = open_rw(&fs, "f");
    ctx.expect("first_open", outcome(&first), "ok");
    ctx.expect("second_open", outcome(&open_rw(&fs, "f")), "ok");
    ctx.expect_bypassed(&fs);
    Ok(())
}

fn cached_on_passthrough_inode(ctx: &mut Ctx) -> Result<(), Stop> {
    let (fs, _, _) = ctx.passthrough_file("f", b"data")?;
    let first = open_rw(&fs, "f");
    ctx.expect("passthrough_open", outcome(&first), "ok");
    fs.set_open_reply("f", OpenReply::CACHED);
    ctx.expect("cached_open", outcome(&open_rw(&fs, "f")), "EIO");
    // iomode.c refuses any open without FOPEN_PASSTHROUGH of an inode with a backing file,
    // before it looks at FOPEN_DIRECT_IO (which alone would take no I/O mode).
    for (key, open_flags) in [
        ("direct_io_open", fopen::DIRECT_IO),
        (
            "parallel_direct_writes_open",
            fopen::DIRECT_IO | fopen::PARALLEL_DIRECT_WRITES,
        ),
    ] {
        fs.set_open_reply(
            "f",
            OpenReply {
                open_flags,
                backing_id: 0,
            },
        );
        ctx.expect(key, outcome(&open_rw(&fs, "f")), "EIO");
    }
    drop(first);
    Ok(())
}

fn passthrough_on_cached_inode(ctx: &mut Ctx) -> Result<(), Stop> {
    let (fs, _, id) = ctx.passthrough_file("f", b"data")?;
    fs.set_open_reply("f", OpenReply::CACHED);
    let first = open_rw(&fs, "f");
    ctx.expect("cached_open", outcome(&first), "ok");
    fs.set_open_reply("f", OpenReply::passthrough(id));
    ctx.expect("passthrough_open", outcome(&open_rw(&fs, "f")), "EIO");
    Ok(())
}

fn mmap_direct_io_fd(ctx: &mut Ctx) -> Result<(), Stop> {
    let (fs, _, id) = ctx.passthrough_file("f", &pattern(4, 4096))?;
    // A direct-I/O open takes no I/O mode, so it may come first; after a passthrough open
    // the kernel refuses it (the rule of open_reply.cached_on_passthrough_inode).
    fs.set_open_reply(
        "f",
        OpenReply {
            open_flags: fopen::DIRECT_IO,
            backing_id: 0,
        },
    );
    let dio = open_rw(&fs, "f");
    ctx.expect("direct_io_open", outcome(&dio), "ok");
    let dio = dio?;
    fs.set_open_reply("f", OpenReply::passthrough(id));
    let passthrough = open_rw(&fs, "f");
    ctx.expect("passthrough_open", outcome(&passthrough), "ok");
    fs.set_open_reply(
        "f",
        OpenReply {
            open_flags: fopen::DIRECT_IO,
            backing_id: 0,
        },
    );
    ctx.expect(
        "direct_io_open_after_passthrough",
        outcome(&open_rw(&fs, "f")),
        "EIO",
    );
    // SAFETY: a shared read-only mapping of 4096 bytes; unmapped below if it succeeds.
    let mapped = unsafe {
        rustix::mm::mmap(
            std::ptr::null_mut(),
            4096,
            ProtFlags::READ,
            MapFlags::SHARED,
            dio.as_fd(),
            0,
        )
    };
    ctx.expect("mmap", outcome(&mapped), "ENODEV");
    if let Ok(ptr) = mapped {
        // SAFETY: unmapping what was mapped above.
        unsafe { rustix::mm::munmap(ptr, 4096)? };
    }
    Ok(())
}

fn create_passthrough(ctx: &mut Ctx) -> Result<(), Stop> {
    let fs = ctx.mount_passthrough(1)?;
    fs.set_create_reply(CreateReply::Passthrough);
    let data = pattern(5, 300_000);
    let created = File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(fs.path("new"));
    ctx.expect(
        "create",
        outcome(&created.as_ref().map(drop).map_err(errno)),
        "ok",
    );
    let file = created?;
    file.write_all_at(&data, 0)?;
    drop(file);
    ctx.expect_count("create_requests", fs.count(op::CREATE), 1);
    ctx.observe("registered_ids", fs.created_ids());
    ctx.check(
        std::fs::read(fs.backing_dir.join("new"))? == data,
        "the new backing file lacks the data",
    );
    ctx.expect_count(key::WRITE_REQUESTS, fs.count(op::WRITE), 0);
    Ok(())
}

fn after_release_mode_resets(ctx: &mut Ctx) -> Result<(), Stop> {
    let (fs, _, id) = ctx.passthrough_file("f", b"data")?;
    ctx.expect("passthrough_open", reopen(&fs), "ok");
    fs.wait_count(op::RELEASE, 1, Duration::from_secs(1));
    fs.set_open_reply("f", OpenReply::CACHED);
    ctx.expect("cached_open", reopen(&fs), "ok");
    fs.wait_count(op::RELEASE, 2, Duration::from_secs(1));
    fs.set_open_reply("f", OpenReply::passthrough(id));
    ctx.expect("passthrough_again", reopen(&fs), "ok");
    Ok(())
}
