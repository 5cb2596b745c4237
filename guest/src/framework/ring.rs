//! What lets any case run over FUSE over io_uring (protocol 7.42, Linux 6.14): the
//! `fuse.enable_uring` parameter switched on around the case ([`enable`]: the runner does it
//! for a case with [`Case::over_ring`](super::Case::over_ring), a case of the `uring` group
//! for itself), and the check afterwards that every connection was served through a ring.

use super::{Ctx, Stop};
use crate::fuse::{Payload, POOLED_REQUESTS, TRANSPORT_TOTALS};

pub const PARAM: &str = "/sys/module/fuse/parameters/enable_uring";

/// The kernel series that brought FUSE over io_uring.
pub const SINCE: (u32, u32) = (6, 14);

/// `fuse.enable_uring` switched on, and back to what it was when dropped.
pub struct Enabled {
    before: String,
}

impl Drop for Enabled {
    fn drop(&mut self) {
        let _ = std::fs::write(PARAM, &self.before);
    }
}

/// Set `fuse.enable_uring` to `on`; skip where the kernel has no FUSE over io_uring.
pub fn enable(ctx: &Ctx, on: bool) -> Result<Enabled, Stop> {
    if !ctx.kernel.at_least(SINCE.0, SINCE.1) {
        return Err(Stop::Skip(
            "FUSE over io_uring came in 6.14 (protocol 7.42)".into(),
        ));
    }
    let before = std::fs::read_to_string(PARAM).map_err(|_| {
        Stop::Skip(format!(
            "this kernel has no FUSE over io_uring (CONFIG_FUSE_IO_URING off: no {PARAM})"
        ))
    })?;
    std::fs::write(PARAM, if on { "Y" } else { "N" })
        .map_err(|e| Stop::Broken(format!("cannot set {PARAM}: {e}")))?;
    Ok(Enabled {
        before: before.trim().to_string(),
    })
}

/// The kernel series that brought buffer pools for the ring's payloads (protocol 7.46):
/// FUSE_IO_URING_CMD_ADD_QUEUE, ADD_BUFPOOL, FUSE_HAS_IO_URING_BUFPOOL in INIT.
pub const POOLS_SINCE: (u32, u32) = (7, 3);

/// [`enable`] for a case copied over the ring with `payload`: pools skip before 7.3.
pub fn enable_for(ctx: &Ctx, payload: Payload) -> Result<Enabled, Stop> {
    if payload == Payload::Pool && !ctx.kernel.at_least(POOLS_SINCE.0, POOLS_SINCE.1) {
        return Err(Stop::Skip(
            "buffer pools for FUSE over io_uring came in 7.3 (protocol 7.46)".into(),
        ));
    }
    enable(ctx, true)
}

/// After a case run over the ring: every connection it made agreed on the ring and was
/// served through it; over pools, every request it fetched came on a queue with a pool.
pub fn check_served_through_ring(ctx: &mut Ctx, payload: Payload) {
    use std::sync::atomic::Ordering::SeqCst;
    let t = &TRANSPORT_TOTALS;
    let (conns, ring_conns) = (t.connections.load(SeqCst), t.ring_connections.load(SeqCst));
    let (dev, ring) = (t.dev_requests.load(SeqCst), t.ring_requests.load(SeqCst));
    ctx.observe("ring_connections", ring_conns);
    ctx.check(
        conns == ring_conns,
        format!(
            "{} of the case's {conns} connections did not agree on io_uring",
            conns - ring_conns
        ),
    );
    // A case may make no request at all after INIT (a BACKING_OPEN and an unmount).
    ctx.observe("requests_through_ring", ring > 0);
    ctx.expect_count("requests_read_from_dev_after_init", dev, 0);
    if payload == Payload::Pool {
        let pooled = POOLED_REQUESTS.load(SeqCst);
        ctx.check(
            pooled == ring,
            format!(
                "{} of the {ring} requests through the ring came on a queue without a buffer \
                 pool (its ADD_QUEUE or ADD_BUFPOOL failed: {:?})",
                ring.saturating_sub(pooled),
                crate::fuse::RING_SETUP_ERRORS.lock().unwrap()
            ),
        );
    }
}
