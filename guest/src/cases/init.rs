//! INIT negotiation: what the kernel offers and what our answer switches on.

use crate::framework::{Case, Ctx, Stop, NO_PASSTHROUGH};
use crate::fuse::{abi, InitReply};
use crate::sys::outcome;

pub fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "init.offer",
            rule: "the kernel offers FUSE_PASSTHROUGH (flags2 bit 5) in INIT; an answer with \
                   INIT_EXT, PASSTHROUGH and max_stack_depth 1 switches it on; from 6.15 \
                   (7.43) it offers FUSE_REQUEST_TIMEOUT too",
            verdict_rule: "pass when BACKING_OPEN succeeds after that answer and \
                           FUSE_REQUEST_TIMEOUT is offered from 6.15 and not before; skip when \
                           the kernel does not offer passthrough",
            run: offer,
            ..Case::DEFAULT
        },
        Case {
            name: "init.sync_init",
            rule: "FUSE_DEV_IOC_SYNC_INIT (6.18) on a /dev/fuse fd not yet mounted: mount(2) \
                   returns only once INIT is answered, a BACKING_OPEN issued before the mount \
                   waits for it instead of failing with EPERM, and the ioctl on a mounted fd \
                   is EINVAL; before 6.18 the ioctl is unknown (ENOTTY)",
            verdict_rule: "from 6.18: pass when the ioctl works, mount(2) returns after the \
                           server's INIT answer, held back 200 ms, was written (and the same \
                           server without the ioctl sees mount(2) return first: the control), \
                           the early BACKING_OPEN waited, a BACKING_OPEN as soon as mount(2) \
                           returned worked and the second ioctl gave EINVAL; before 6.18: \
                           pass on ENOTTY",
            timeout: std::time::Duration::from_secs(15),
            run: sync_init,
            ..Case::DEFAULT
        },
        Case {
            name: "init.depth_zero",
            rule: "max_stack_depth 0 in the INIT answer leaves passthrough off, silently",
            verdict_rule: "pass when BACKING_OPEN then gives EPERM",
            run: depth_zero,
            ..Case::DEFAULT
        },
        Case {
            name: "init.depth_two",
            rule: "max_stack_depth 2 (FILESYSTEM_MAX_STACK_DEPTH) switches passthrough on",
            verdict_rule: "pass when BACKING_OPEN succeeds",
            run: depth_two,
            ..Case::DEFAULT
        },
        Case {
            name: "init.depth_three",
            rule: "max_stack_depth above 2 leaves passthrough off, silently",
            verdict_rule: "pass when BACKING_OPEN then gives EPERM",
            run: depth_three,
            ..Case::DEFAULT
        },
        Case {
            name: "init.no_init_ext",
            rule: "without FUSE_INIT_EXT in the answer the kernel ignores flags2, so the \
                   PASSTHROUGH bit there does nothing",
            verdict_rule: "pass when BACKING_OPEN then gives EPERM",
            run: no_init_ext,
            ..Case::DEFAULT
        },
        Case {
            name: "init.old_server_minor",
            rule: "the kernel grants passthrough on the flags alone: a server that announces \
                   an older protocol minor (7.28, as go-fuse does) and asks for PASSTHROUGH \
                   gets it",
            verdict_rule: "pass when, after an INIT answer with minor 28, BACKING_OPEN works \
                           and a round trip through the file matches its backing file with 0 \
                           READ and 0 WRITE",
            timeout: std::time::Duration::from_secs(20),
            run: old_server_minor,
            ..Case::DEFAULT
        },
        Case {
            name: "init.writeback_cache",
            rule: "FUSE_WRITEBACK_CACHE together with PASSTHROUGH leaves passthrough off \
                   (since 6.11 and 6.10.10)",
            verdict_rule: "pass when BACKING_OPEN gives EPERM on a fixed kernel; on an older \
                           one, success is the known bug",
            run: writeback_cache,
            ..Case::DEFAULT
        },
    ]
}

fn offer(ctx: &mut Ctx) -> Result<(), Stop> {
    let (fs, init) = ctx.mount(InitReply::passthrough(1))?;
    ctx.observe("kernel_protocol", format!("{}.{}", init.major, init.minor));
    ctx.observe(
        "kernel_offers_passthrough",
        init.kernel_offers_passthrough(),
    );
    ctx.observe(
        "kernel_offers_init_ext",
        init.kernel_flags & abi::init_flags::INIT_EXT != 0,
    );
    // 7.43 (6.15): the kernel can time out requests; it offers the flag always from then.
    let timeout = init.kernel_offers(abi::init_flags::REQUEST_TIMEOUT);
    ctx.observe("kernel_offers_request_timeout", timeout);
    ctx.check(
        timeout == ctx.kernel.at_least(6, 15),
        format!(
            "FUSE_REQUEST_TIMEOUT {} on {:?}: it came in 6.15",
            if timeout { "offered" } else { "not offered" },
            ctx.kernel
        ),
    );
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
    ctx.expect(
        "backing_open",
        outcome(&fs.backing_open_path(&backing)),
        "EPERM",
    );
    Ok(())
}

/// Mount with `init`, then try to register a backing file: "ok" means passthrough is on.
fn backing_open_after(ctx: &mut Ctx, init: InitReply) -> Result<String, Stop> {
    let fs = ctx.mount_offering(init)?;
    let backing = fs.add_file("f", b"x", Default::default())?;
    Ok(outcome(&fs.backing_open_path(&backing)))
}

fn depth_two(ctx: &mut Ctx) -> Result<(), Stop> {
    let got = backing_open_after(ctx, InitReply::passthrough(2))?;
    ctx.expect("backing_open", got, "ok");
    Ok(())
}

fn depth_three(ctx: &mut Ctx) -> Result<(), Stop> {
    let got = backing_open_after(ctx, InitReply::passthrough(3))?;
    ctx.expect("backing_open", got, "EPERM");
    Ok(())
}

fn no_init_ext(ctx: &mut Ctx) -> Result<(), Stop> {
    let mut init = InitReply::passthrough(1);
    init.flags &= !abi::init_flags::INIT_EXT;
    let got = backing_open_after(ctx, init)?;
    ctx.expect("backing_open", got, "EPERM");
    Ok(())
}

fn writeback_cache(ctx: &mut Ctx) -> Result<(), Stop> {
    let mut init = InitReply::passthrough(1);
    init.flags |= abi::init_flags::WRITEBACK_CACHE;
    let got = backing_open_after(ctx, init)?;
    if ctx.kernel.has_fix(&[(6, 10, 10), (6, 11, 0)]) {
        ctx.expect("backing_open", got, "EPERM");
    } else {
        ctx.check(
            false,
            "known bug: passthrough + writeback cache accepted (fixed 6.11, 6.10.10)",
        );
        ctx.observe("backing_open", got);
    }
    Ok(())
}

/// How long `init.sync_init`'s server holds its INIT answer.
const INIT_HOLD_MS: u16 = 200;

fn sync_init(ctx: &mut Ctx) -> Result<(), Stop> {
    // Passthrough at all, or skip.
    drop(ctx.mount_passthrough(1)?);
    let backing = ctx.scratch("sync-init-backing")?.join("f");
    std::fs::write(&backing, b"data")?;
    let file = std::fs::File::open(&backing)?;
    let dir = ctx.scratch("sync-init")?;
    // The server holds its INIT answer back: mount(2) must wait for it, not merely find
    // it already written by a fast server.
    let held = InitReply {
        hold_ms: INIT_HOLD_MS,
        ..InitReply::passthrough(1)
    };
    let seen = match crate::fuse::FuseFs::mount_sync_init(&dir, held, file)? {
        Err(e) => {
            // Added in 6.18: unknown before.
            let want = if ctx.kernel.at_least(6, 18) {
                "ok"
            } else {
                "ENOTTY"
            };
            ctx.expect("sync_init", crate::sys::errno_name(e), want);
            return Ok(());
        }
        Ok((fs, seen)) => {
            if let Ok(id) = seen.backing_open_after_mount {
                let _ = fs.backing_close(id);
            }
            drop(fs);
            seen
        }
    };
    let want = if ctx.kernel.at_least(6, 18) {
        "ok"
    } else {
        "ENOTTY"
    };
    ctx.expect("sync_init", "ok", want);
    // The order, the rule itself: mount(2) returned after the held answer was written, so
    // it took at least the hold.
    let order = seen.order;
    ctx.observe(
        "mount_returned_after_init_answer",
        order.returned_after_answer,
    );
    ctx.check(
        order.returned_after_answer && order.mount_took >= order.hold,
        format!(
            "mount(2) returned after {} ms, before the INIT answer the server held {} ms",
            order.mount_took.as_millis(),
            order.hold.as_millis()
        ),
    );
    // The control: without the ioctl, the same held answer comes after mount(2) returned;
    // were it not so, the check above could not tell a waiting mount(2) from a quick one.
    let (control, unsynced) =
        crate::fuse::mount_order_without_sync_init(&ctx.scratch("no-sync-init")?, held)?;
    drop(control);
    ctx.observe(
        "control_mount_returned_after_init_answer",
        unsynced.returned_after_answer,
    );
    ctx.check(
        !unsynced.returned_after_answer,
        format!(
            "the control without SYNC_INIT: mount(2) returned after the held INIT answer \
             ({} ms), so the order proves nothing here",
            unsynced.mount_took.as_millis()
        ),
    );
    ctx.observe("backing_open_waited_for_mount", seen.waited_for_mount);
    ctx.check(
        seen.waited_for_mount,
        "a BACKING_OPEN before the mount returned at once instead of waiting for it",
    );
    // mount(2) returns only once INIT is answered: passthrough is on by then.
    ctx.expect(
        "backing_open_when_mount_returned",
        outcome(&seen.backing_open_after_mount.map(|_| ())),
        "ok",
    );
    ctx.expect(
        "sync_init_after_mount",
        outcome(&seen.again_after_mount),
        "EINVAL",
    );
    // Woken when the mount installs the fd, before or after INIT has switched passthrough
    // on: EPERM or ok by timing (one vCPU: EPERM; the host's two: either). Not recorded,
    // since it is a race; anything else is wrong.
    let early = outcome(&seen.backing_open_before_mount);
    eprintln!("fpt-agent: init.sync_init: the BACKING_OPEN issued before the mount gave {early}");
    ctx.check(
        early == "ok" || early == "EPERM",
        format!("the BACKING_OPEN issued before the mount gave {early}, not ok or EPERM"),
    );
    Ok(())
}

/// go-fuse announces 7.28 and uses passthrough: the kernel must not read the minor as a
/// refusal of flags it brought in later.
fn old_server_minor(ctx: &mut Ctx) -> Result<(), Stop> {
    let fs = ctx.mount_offering(InitReply {
        minor: 28,
        ..InitReply::passthrough(1)
    })?;
    let backing = fs.backing_dir.join("data");
    std::fs::write(&backing, b"")?;
    let id = fs
        .add_passthrough_file_at("data", &backing)
        .map_err(|e| crate::fuse::errno(&e));
    ctx.expect("backing_open", outcome(&id), "ok");
    if id.is_err() {
        return Ok(());
    }
    crate::framework::fixtures::round_trip(ctx, &fs, &backing)?;
    ctx.expect_bypassed(&fs);
    Ok(())
}
