//! I/O through a FUSE file, checked byte for byte against its backing file.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::time::Duration;

use super::{pattern, Case, Ctx, Stop};
use crate::fuse::abi::op;
use crate::fuse::{FuseFs, InitReply, OpenReply};

pub fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "io.passthrough_round_trip",
            group: "io",
            rule: "with FOPEN_PASSTHROUGH, writes to the FUSE file land in the backing file and \
                   writes to the backing file are read through the FUSE file, without READ or \
                   WRITE requests",
            verdict_rule: "pass when every range compares equal both ways and the server saw \
                           0 READ and 0 WRITE",
            timeout: Duration::from_secs(20),
            kills_kernel: false,
            run: passthrough_round_trip,
        },
        Case {
            name: "io.cached_round_trip",
            group: "io",
            rule: "the same file served without passthrough: same data, and READ/WRITE reach \
                   the server (the control for io.passthrough_round_trip)",
            verdict_rule: "pass when every range compares equal both ways and the server saw \
                           READ and WRITE requests",
            timeout: Duration::from_secs(20),
            kills_kernel: false,
            run: cached_round_trip,
        },
    ]
}

/// (offset, length) pairs written through the FUSE file: unaligned, page-sized, and one over
/// 1 MiB that also straddles the 1 MiB max_write. No two ranges (of either list) overlap.
const FUSE_WRITES: &[(u64, usize)] =
    &[(0, 1), (4093, 2), (4096, 4096), (12345, 100_000), (1_048_577, 1_572_864)];
/// Ranges written to the backing file and read back through the FUSE file.
const BACKING_WRITES: &[(u64, usize)] = &[(200_001, 7), (2_700_000, 1_258_291)];

fn passthrough_round_trip(ctx: &mut Ctx) -> Result<(), Stop> {
    let fs = ctx.mount_passthrough(1)?;
    let backing = fs.add_file("data", &[], OpenReply::CACHED)?;
    let id = fs.backing_open_path(&backing)?;
    fs.set_open_reply("data", OpenReply::passthrough(id));
    round_trip(ctx, &fs, &backing)?;
    ctx.expect_count("read_requests", fs.count(op::READ), 0);
    ctx.expect_count("write_requests", fs.count(op::WRITE), 0);
    Ok(())
}

fn cached_round_trip(ctx: &mut Ctx) -> Result<(), Stop> {
    let (fs, _) = ctx.mount(InitReply::plain())?;
    let backing = fs.add_file("data", &[], OpenReply::CACHED)?;
    round_trip(ctx, &fs, &backing)?;
    let (reads, writes) = (fs.count(op::READ), fs.count(op::WRITE));
    ctx.observe("read_requests_seen", reads > 0);
    ctx.observe("write_requests_seen", writes > 0);
    ctx.check(reads > 0, "the server saw no READ: the control did not reach it");
    ctx.check(writes > 0, "the server saw no WRITE: the control did not reach it");
    Ok(())
}

/// Write through the FUSE file and compare the backing file, then the other way round.
/// Each direction uses its own open, so no page cache survives from one to the other.
fn round_trip(ctx: &mut Ctx, fs: &FuseFs, backing: &std::path::Path) -> Result<(), Stop> {
    let fuse_path = fs.path("data");
    let mut mismatched = Vec::new();

    let fuse = File::options().read(true).write(true).open(&fuse_path)?;
    let mut written = 0;
    for &(off, len) in FUSE_WRITES {
        fuse.write_all_at(&pattern(off, len), off)?;
        written += len;
    }
    drop(fuse);
    let direct = File::open(backing)?;
    for &(off, len) in FUSE_WRITES {
        if read_exact_at(&direct, off, len)? != pattern(off, len) {
            mismatched.push(format!("fuse->backing {off}+{len}"));
        }
    }

    let direct = File::options().write(true).open(backing)?;
    for &(off, len) in BACKING_WRITES {
        direct.write_all_at(&pattern(off ^ 0xff, len), off)?;
    }
    drop(direct);
    let fuse = File::open(&fuse_path)?;
    let mut read = 0;
    for &(off, len) in BACKING_WRITES.iter().chain(FUSE_WRITES) {
        let seed = if BACKING_WRITES.contains(&(off, len)) { off ^ 0xff } else { off };
        let got = read_exact_at(&fuse, off, len)?;
        read += got.len();
        if got != pattern(seed, len) {
            mismatched.push(format!("backing->fuse {off}+{len}"));
        }
    }
    let size = fuse.metadata()?.len();

    ctx.observe("bytes_written_through_fuse", written);
    ctx.observe("bytes_read_through_fuse", read);
    ctx.observe("size_seen_through_fuse", size);
    ctx.check(mismatched.is_empty(), format!("data differs: {}", mismatched.join(", ")));
    ctx.observe("mismatched_ranges", mismatched);
    Ok(())
}

fn read_exact_at(f: &File, off: u64, len: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    f.read_exact_at(&mut buf, off)?;
    Ok(buf)
}
