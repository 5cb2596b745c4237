//! One case run in this process, and the [`CaseResult`] it makes: the verdict from how the
//! case stopped and what its checks found.

use proto::observation as key;
use std::path::{Path, PathBuf};
use std::time::Instant;

use proto::{CaseResult, Verdict};

use super::{audit, Case, Ctx, Stop};

/// Run one case in this process and turn what it did into a result.
pub fn run_case(case: &Case, work: &Path) -> CaseResult {
    let start = Instant::now();
    let mounted_before = audit::before();
    let mut ctx = Ctx::new(work);
    if case.external_server {
        match proto_spec() {
            Some(spec) => ctx.server = Some(spec),
            None => {
                return CaseResult::new(
                    case.name,
                    Verdict::Skip,
                    "no server under test: `cargo xtask validate` runs it",
                )
            }
        }
    }
    let ring = match case.over_ring {
        Some(payload) => {
            ctx.over_ring = Some(payload);
            match super::ring::enable_for(&ctx, payload) {
                Ok(on) => Some(on),
                Err(stop) => return finish(case, start, ctx, Err(stop)),
            }
        }
        None => None,
    };
    // A server under test over FUSE over io_uring: the kernel's switch on for the case.
    let server_ring = match server_over_ring(&ctx) {
        Ok(on) => on,
        Err(stop) => return finish(case, start, ctx, Err(stop)),
    };
    let mut stopped = (case.run)(&mut ctx);
    if let (Some(payload), true) = (case.over_ring, ring.is_some() && stopped.is_ok()) {
        super::ring::check_served_through_ring(&mut ctx, payload);
    }
    drop(ring);
    drop(server_ring);
    // The server under test has been stopped (its subject dropped): what did its end show?
    let teardown: Vec<(String, serde_json::Value)> = ctx.teardown.borrow_mut().drain(..).collect();
    let served = teardown.iter().any(|(k, v)| {
        (k == key::READ_REQUESTS || k == key::WRITE_REQUESTS) && v.as_u64().is_some_and(|n| n > 0)
    });
    if served {
        // The server served (some of) the I/O itself: the mount is then a cached FUSE file,
        // whose rule is coherence through the server, not with {source} at every moment (a
        // write-back cache lags behind, a page cache keeps what {source} has since changed).
        // Only passthrough promises the latter, so here it is an observation.
        let mut incoherent = std::mem::take(&mut ctx.failures);
        if let Err(Stop::Broken(why)) = &stopped {
            incoherent.push(why.clone());
            stopped = Ok(());
        }
        ctx.observe(key::COHERENT_WITH_SOURCE, incoherent.is_empty());
        if !incoherent.is_empty() {
            ctx.observe("incoherent", incoherent);
        }
    }
    let firm = std::mem::take(&mut ctx.firm);
    ctx.failures.extend(firm);
    for (key, value) in teardown {
        if key == key::BACKING_CLOSE_ERRORS || key == key::WITNESS_BACKING_CLOSE_ERRORS {
            let errors: Vec<&str> = value
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| e.as_str())
                .collect();
            ctx.check(
                errors.is_empty(),
                format!(
                    "a BACKING_CLOSE of the server failed ({}): an id closed twice, or one it \
                     never opened",
                    errors.join(", ")
                ),
            );
        }
        if key == key::RING_REQUESTS {
            ctx.check(
                value.as_u64().is_some_and(|n| n > 0),
                "over FUSE over io_uring, no request of the case came over the server's ring",
            );
        }
        if key == key::DEV_REQUESTS {
            ctx.check(
                value.as_u64() == Some(0),
                format!(
                    "over FUSE over io_uring, {value} request(s) of the case were queued for \
                     /dev/fuse reads once the ring was up"
                ),
            );
        }
        if key == key::SOURCE_RELEASED {
            ctx.check(
                value == "ok",
                format!("{{source}} still busy after the unmount and the server's exit: {value}"),
            );
        }
        ctx.observe(&key, value);
    }
    // The release audit: the case has ended its connections; what it mounted must come off.
    ctx.keep.clear();
    let found = audit::release_since(&mounted_before);
    match (case.keeps_busy, found.busy.is_empty()) {
        (None, false) => ctx.check(
            false,
            format!(
                "backing file system still busy after the case: {}",
                found.busy.join(", ")
            ),
        ),
        (Some(_), false) => ctx.observe("kept_busy", &found.busy),
        (Some(why), true) => ctx.check(
            false,
            format!("declared to keep a mount busy ({why}), but every mount came off: the declaration is stale"),
        ),
        (None, true) => {}
    }
    ctx.check(
        found.backing_files.is_empty(),
        format!(
            "fusectl backing_files not empty after the case: {}",
            found.backing_files.join("; ")
        ),
    );
    finish(case, start, ctx, stopped)
}

/// The verdict, from how the case stopped and what its checks found.
fn finish(case: &Case, start: Instant, mut ctx: Ctx, stopped: Result<(), Stop>) -> CaseResult {
    let crashed = ctx
        .observations
        .get(key::SERVER_CRASHED)
        .and_then(|v| v.as_str())
        .map(String::from);
    let hung = ctx
        .observations
        .get(key::SERVER_HUNG)
        .and_then(|v| v.as_str())
        .map(String::from);
    let (verdict, reason) = match stopped {
        // Whatever the I/O then showed, the server stopped answering it.
        _ if hung.is_some() => (
            Verdict::Hang,
            format!(
                "the server under test stopped answering during the case: {}",
                hung.unwrap_or_default()
            ),
        ),
        // Whatever the I/O then showed, the server died under it.
        _ if crashed.is_some() => (
            Verdict::Crash,
            format!(
                "the server under test died during the case: {}",
                crashed.unwrap_or_default()
            ),
        ),
        Err(Stop::Skip(why)) => (Verdict::Skip, why),
        Err(Stop::Broken(why)) => (Verdict::Fail, why),
        Err(Stop::NoServer(why)) => {
            ctx.observe(key::SERVER_DID_NOT_START, &why);
            (Verdict::Fail, why)
        }
        Ok(()) if ctx.failures.is_empty() => (Verdict::Pass, String::new()),
        Ok(()) => (Verdict::Fail, ctx.failures.join("; ")),
    };
    CaseResult {
        observations: ctx.observations,
        duration_ms: start.elapsed().as_millis() as u64,
        ..CaseResult::new(case.name, verdict, reason)
    }
}

/// For a server under test over the ring (`validate --transport uring`): `fuse.enable_uring`
/// on until dropped. A server that does not speak it, or a kernel without it: a skip that
/// says so.
fn server_over_ring(ctx: &Ctx) -> Result<Option<super::ring::Enabled>, Stop> {
    let Some(spec) = &ctx.server else {
        return Ok(None);
    };
    if spec.transport != proto::validate::Transport::Uring {
        return Ok(None);
    }
    if spec.uring_args.is_none() {
        return Err(Stop::Skip(format!(
            "{} does not speak FUSE over io_uring here (libfuse 3.18 built with liburing \
             does): nothing to validate over the ring",
            spec.target
        )));
    }
    super::ring::enable(ctx, true).map(Some)
}

/// The server under test, from the spec file `cargo xtask validate` wrote.
fn proto_spec() -> Option<proto::validate::Spec> {
    let path = std::env::var_os(proto::validate::SPEC_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| proto::validate::GUEST_SPEC.into());
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}
