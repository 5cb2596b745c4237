//! One case per known, since-fixed bug of KERNEL-FACTS.md that no rule case already
//! triggers. The others are found by rule cases, whose reasons name the bug:
//! backing_open.padding_nonzero (non-zero padding accepted, fixed 6.9),
//! backing_open.o_path_fifo (non-regular files via O_PATH, fixed 6.17/6.12.48),
//! io.extending_write_size (size not updated, fixed 6.12/6.11.6),
//! init.writeback_cache (passthrough + writeback cache, fixed 6.11/6.10.10). The hang of a
//! cached open during parallel direct writes (fixed 6.12) belongs to the fault cases.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::time::Duration;

use super::{pattern, Case, Ctx, Stop};
use crate::fuse::OpenReply;

pub fn cases() -> Vec<Case> {
    vec![Case {
        name: "regression.splice_write_overlay_backing",
        group: "regression",
        rule: "splice into a passthrough file whose backing file is on overlayfs goes to the \
               backing file (before 6.11 it took the generic path)",
        verdict_rule: "pass when the spliced bytes land in the backing file with 0 WRITE",
        timeout: Duration::from_secs(15),
        kills_kernel: false,
        run: splice_write_overlay_backing,
    }]
}

fn splice_write_overlay_backing(ctx: &mut Ctx) -> Result<(), Stop> {
    // Overlay is depth 1, so the FUSE mount needs max_stack_depth 2.
    let fs = ctx.mount_passthrough(2)?;
    let lower = ctx.scratch("lower")?;
    std::fs::write(lower.join("f"), [])?;
    let merged = super::stacking::overlay(ctx, "ovl", &lower)?.map_err(|e| Stop::Broken(format!("overlay mount: {e}")))?;
    let backing = merged.join("f");
    fs.add_file_at("f", &backing, OpenReply::CACHED)?;
    let id = fs.backing_open_path(&backing)?;
    fs.set_open_reply("f", OpenReply::passthrough(id));
    let file = File::options().read(true).write(true).open(fs.path("f"))?;
    let data = pattern(110, 40_000);
    let moved = super::io::splice_into(&file, &data, 0)?;
    ctx.expect_count("bytes_spliced", moved as u64, data.len() as u64);
    let mut back = vec![0u8; data.len()];
    File::open(&backing)?.read_exact_at(&mut back, 0)?;
    ctx.check(back == data, "the overlay backing file lacks the spliced bytes");
    ctx.expect_bypassed(&fs);
    Ok(())
}
