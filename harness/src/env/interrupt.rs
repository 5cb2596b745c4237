//! Ctrl-C, SIGTERM and SIGHUP end a run cleanly: the VM is stopped, the results so far are
//! reported, the artifacts kept. A second signal is not needed, and SIGKILL is covered by
//! QEMU's PR_SET_PDEATHSIG.

use std::sync::atomic::{AtomicI32, Ordering};

static SIGNAL: AtomicI32 = AtomicI32::new(0);

extern "C" fn note(sig: libc::c_int) {
    SIGNAL.store(sig, Ordering::SeqCst);
}

/// Catch the signals (call once, early in main).
pub fn install() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: the handler only stores into an atomic, which is async-signal-safe.
        unsafe { libc::signal(sig, note as *const () as libc::sighandler_t) };
    }
}

/// The signal that asked us to stop, if one did.
pub fn requested() -> Option<i32> {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}
