//! One case per known, since-fixed bug (docs/kernel-facts.md) that no rule case already
//! triggers. The others are found by rule cases, whose reasons name the bug:
//! backing_open.padding_nonzero (non-zero padding accepted, fixed 6.9),
//! backing_open.o_path_fifo (non-regular files via O_PATH, fixed 6.17/6.12.48),
//! io.extending_write_size (size not updated, fixed 6.12/6.11.6),
//! init.writeback_cache (passthrough + writeback cache, fixed 6.11/6.10.10). The hang of a
//! cached open during parallel direct writes (fixed 6.12) is the fault case
//! faults.parallel_dio_cached_open_mmap, which runs only when named (with --isolate).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Duration;

use std::sync::Arc;

use crate::framework::{pattern, unmount_when_released, Case, Ctx, Stop};
use crate::fuse::{FuseFs, OpenReply};
use crate::sys::outcome;

/// What the cases of this group share.
const DEFAULTS: Case = Case {
    timeout: Duration::from_secs(15),
    ..Case::DEFAULT
};

pub fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "regression.splice_write_overlay_backing",
            rule: "splice into a passthrough file whose backing \
              file is on overlayfs goes to the backing file (before 6.11 it took the generic path)",
            verdict_rule: "pass when the spliced bytes land in the backing file with 0 WRITE",
            run: splice_write_overlay_backing,
            ..DEFAULTS
        },
        Case {
            name: "regression.splice_write_fuse_backing",
            rule: "splice into a passthrough file whose backing \
              file is on another passthrough FUSE mount goes through both to the bottom file \
              (before 6.11 it took the generic path)",
            verdict_rule: "pass when the spliced bytes land in the \
              bottom file with 0 WRITE on both servers",
            run: splice_write_fuse_backing,
            ..DEFAULTS
        },
        Case {
            name: "regression.parallel_dio_passthrough_iomode",
            rule: "parallel direct writes on passthrough \
              files (FOPEN_PASSTHROUGH | DIRECT_IO | PARALLEL_DIRECT_WRITES) leave the inode's I/O \
              mode right: no false EBUSY on later opens, no leaked backing file (fixed in 6.9)",
            verdict_rule:
                "pass when every open and every parallel direct write succeeds (no false \
                           EBUSY) and the backing tmpfs is released after the last close",
            run: parallel_dio_passthrough_iomode,
            ..DEFAULTS
        },
    ]
}

fn splice_write_overlay_backing(ctx: &mut Ctx) -> Result<(), Stop> {
    // Overlay is depth 1, so the FUSE mount needs max_stack_depth 2.
    let fs = ctx.mount_passthrough(2)?;
    let lower = ctx.scratch("lower")?;
    std::fs::write(lower.join("f"), [])?;
    let merged = crate::framework::fixtures::overlay(ctx, "ovl", &lower)?
        .map_err(|e| Stop::Broken(format!("overlay mount: {e}")))?;
    let backing = merged.join("f");
    splice_lands_in(ctx, &fs, &backing, &backing, 110)
}

fn splice_write_fuse_backing(ctx: &mut Ctx) -> Result<(), Stop> {
    // The lower mount passes "b" through to a tmpfs file; the upper (depth 2) passes "f"
    // through to the lower's "b".
    let upper = ctx.mount_passthrough(2)?;
    let (lower, bottom, _) = ctx.passthrough_file("b", &[])?;
    splice_lands_in(ctx, &upper, &lower.path("b"), &bottom, 111)?;
    ctx.expect_count(
        "lower_write_requests",
        lower.count(crate::fuse::abi::op::WRITE),
        0,
    );
    Ok(())
}

/// Serve "f" on `fs` in passthrough mode from the empty file `backing`, splice 40000 bytes
/// into it, and check they are all of `lands_in` (the file at the bottom of the stack),
/// with 0 READ/WRITE at `fs`.
fn splice_lands_in(
    ctx: &mut Ctx,
    fs: &FuseFs,
    backing: &Path,
    lands_in: &Path,
    seed: u64,
) -> Result<(), Stop> {
    fs.add_passthrough_file_at("f", backing)?;
    let file = File::options().read(true).write(true).open(fs.path("f"))?;
    let data = pattern(seed, 40_000);
    let moved = crate::framework::fixtures::splice_into(&file, &data, 0)?;
    ctx.expect_count("bytes_spliced", moved as u64, data.len() as u64);
    ctx.check(
        std::fs::read(lands_in)? == data,
        format!("{} lacks the spliced bytes", lands_in.display()),
    );
    ctx.expect_bypassed(fs);
    Ok(())
}

fn parallel_dio_passthrough_iomode(ctx: &mut Ctx) -> Result<(), Stop> {
    use crate::fuse::abi::fopen;
    let dir = ctx.own_tmpfs("backing-tmpfs")?;
    let fs = ctx.mount_passthrough(1)?;
    let path = dir.join("f");
    std::fs::write(&path, pattern(112, 1 << 18))?;
    fs.add_file_at("f", &path, OpenReply::CACHED)?;
    let id = fs.backing_open_path(&path)?;
    fs.drop_server_fd("f");
    let flags = fopen::PASSTHROUGH | fopen::DIRECT_IO | fopen::PARALLEL_DIRECT_WRITES;
    fs.set_open_reply(
        "f",
        OpenReply {
            open_flags: flags,
            backing_id: id,
        },
    );
    let errno = |e: std::io::Error| crate::fuse::errno(&e);
    let open = || File::options().read(true).write(true).open(fs.path("f"));
    let (a, b) = (open(), open());
    ctx.expect(
        "first_open",
        outcome(&a.as_ref().map(drop).map_err(crate::fuse::errno)),
        "ok",
    );
    ctx.expect(
        "second_open",
        outcome(&b.as_ref().map(drop).map_err(crate::fuse::errno)),
        "ok",
    );
    let (Ok(a), Ok(b)) = (a, b) else {
        return Ok(());
    };
    // Non-extending writes from two threads at once: the parallel direct-write path.
    let writers: Vec<_> = [Arc::new(a), Arc::new(b)]
        .into_iter()
        .enumerate()
        .map(|(i, f)| {
            std::thread::spawn(move || {
                let buf = pattern(113 + i as u64, 4096);
                (0..64u64)
                    .try_for_each(|k| f.write_all_at(&buf, (i as u64 * 64 + k) * 1024).map(drop))
            })
        })
        .collect();
    for (i, w) in writers.into_iter().enumerate() {
        let r = w
            .join()
            .map_err(|_| Stop::Broken("a writer panicked".into()))?;
        // The bug this guards against: a false EBUSY here.
        ctx.expect(&format!("writer_{i}"), outcome(&r.map_err(errno)), "ok");
    }
    // Both closed: the inode has no I/O mode left. A plain passthrough open, then (after it
    // closes) a cached one must both work.
    fs.set_open_reply("f", OpenReply::passthrough(id));
    ctx.expect(
        "passthrough_open_after",
        outcome(&open().map(drop).map_err(errno)),
        "ok",
    );
    fs.set_open_reply("f", OpenReply::CACHED);
    ctx.expect(
        "cached_open_after",
        outcome(&open().map(drop).map_err(errno)),
        "ok",
    );
    ctx.expect("backing_close", outcome(&fs.backing_close(id)), "ok");
    ctx.expect("backing_released", unmount_when_released(&dir), "ok");
    Ok(())
}
