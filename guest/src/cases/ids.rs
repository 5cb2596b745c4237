//! Backing ids: what BACKING_CLOSE and OPEN replies do with ids the kernel does not know.

use std::time::Duration;

use super::{Case, Ctx, Stop};
use crate::fuse::abi::op;
use crate::fuse::OpenReply;
use crate::sys::outcome;

pub fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "ids.close_unknown",
            group: "ids",
            rule: "BACKING_CLOSE of an id never opened gives ENOENT; closing an id twice gives \
                   ENOENT the second time",
            verdict_rule: "pass on ENOENT, ok, ENOENT",
            timeout: Duration::from_secs(10),
            kills_kernel: false,
            run: close_unknown,
        },
        Case {
            name: "ids.open_reply_unknown_id",
            group: "ids",
            rule: "an OPEN reply with FOPEN_PASSTHROUGH naming an unknown backing id makes \
                   open() fail with EIO, and the kernel releases the file",
            verdict_rule: "pass when open() gives EIO",
            timeout: Duration::from_secs(10),
            kills_kernel: false,
            run: open_reply_unknown_id,
        },
    ]
}

fn close_unknown(ctx: &mut Ctx) -> Result<(), Stop> {
    let fs = ctx.mount_passthrough(1)?;
    // Ids start at 1 on a fresh connection: 1 has never been handed out yet.
    ctx.expect("close_never_opened", outcome(&fs.backing_close(1)), "ENOENT");
    let backing = fs.add_file("f", b"x", Default::default())?;
    let id = fs.backing_open_path(&backing)?;
    ctx.observe("opened_id", id);
    ctx.expect("close_first", outcome(&fs.backing_close(id)), "ok");
    ctx.expect("close_second", outcome(&fs.backing_close(id)), "ENOENT");
    Ok(())
}

fn open_reply_unknown_id(ctx: &mut Ctx) -> Result<(), Stop> {
    let fs = ctx.mount_passthrough(1)?;
    fs.add_file("f", b"data", OpenReply::passthrough(4242))?;
    let opened = std::fs::File::open(fs.path("f")).map_err(|e| crate::fuse::errno(&e));
    ctx.expect("open", outcome(&opened), "EIO");
    ctx.observe("open_requests", fs.count(op::OPEN));
    // RELEASE travels asynchronously: give it a moment, then record what arrived.
    ctx.observe("release_requests", fs.wait_count(op::RELEASE, 1, Duration::from_secs(1)));
    Ok(())
}
