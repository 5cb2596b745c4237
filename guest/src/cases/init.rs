//! INIT negotiation: what the kernel offers and what our answer switches on.

use std::time::Duration;

use super::{Case, Ctx, Stop, NO_PASSTHROUGH};
use crate::fuse::InitReply;
use crate::sys::outcome;

pub fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "init.offer",
            group: "init",
            rule: "the kernel offers FUSE_PASSTHROUGH (flags2 bit 5) in INIT; an answer with \
                   INIT_EXT, PASSTHROUGH and max_stack_depth 1 switches it on",
            verdict_rule: "pass when BACKING_OPEN succeeds after that answer; skip when the \
                           kernel does not offer the flag",
            timeout: Duration::from_secs(10),
            kills_kernel: false,
            run: offer,
        },
        Case {
            name: "init.depth_zero",
            group: "init",
            rule: "max_stack_depth 0 in the INIT answer leaves passthrough off, silently",
            verdict_rule: "pass when BACKING_OPEN then gives EPERM",
            timeout: Duration::from_secs(10),
            kills_kernel: false,
            run: depth_zero,
        },
    ]
}

fn offer(ctx: &mut Ctx) -> Result<(), Stop> {
    let (fs, init) = ctx.mount(InitReply::passthrough(1))?;
    ctx.observe("kernel_protocol", format!("{}.{}", init.major, init.minor));
    ctx.observe("kernel_offers_passthrough", init.kernel_offers_passthrough());
    ctx.observe("kernel_offers_init_ext", init.kernel_flags & crate::fuse::abi::init::INIT_EXT != 0);
    if !init.kernel_offers_passthrough() {
        return Err(Stop::Skip(NO_PASSTHROUGH.into()));
    }
    let backing = fs.add_file("f", b"x", Default::default())?;
    let opened = fs.backing_open_path(&backing);
    ctx.expect("backing_open", outcome(&opened), "ok");
    if let Ok(id) = opened {
        ctx.observe("first_backing_id", id);
    }
    Ok(())
}

fn depth_zero(ctx: &mut Ctx) -> Result<(), Stop> {
    let fs = ctx.mount_passthrough(0)?;
    let backing = fs.add_file("f", b"x", Default::default())?;
    ctx.expect("backing_open", outcome(&fs.backing_open_path(&backing)), "EPERM");
    Ok(())
}
