//! The observation keys something reads back. A case may record any key it likes for the
//! snapshot; these are the ones another part of the harness steers by (the agent's runner,
//! the validate table, the snapshot filters), so both sides of the boundary name them from
//! here and a rename cannot silently break a reader.

/// Why the server under test did not start (or mount). Its presence alone makes the agent
/// skip the rest of the validate cases and the host report bad input (exit 24).
pub const SERVER_DID_NOT_START: &str = "server_did_not_start";
/// The signal (or its description) that ended the server under test before the teardown:
/// the case is a crash and the later validate cases are not reached.
pub const SERVER_CRASHED: &str = "server_crashed";
/// Why the server under test was found hung (requests waiting while it did not run, the
/// connection then aborted): the case is a hang and the later validate cases are not
/// reached.
pub const SERVER_HUNG: &str = "server_hung";
/// The server under test's exit code after the teardown.
pub const SERVER_EXIT_CODE: &str = "server_exit_code";
/// Whether `{source}` came off after the server's exit: "ok", or what still held it. Its
/// presence means the case got as far as the teardown.
pub const SOURCE_RELEASED: &str = "source_released";
/// Recorded only for a path the server served itself (a cached FUSE file): whether
/// `{source}` showed the bytes written through the mount.
pub const COHERENT_WITH_SOURCE: &str = "coherent_with_source";
/// READ requests the kernel sent the server under test (the fuse tracepoint), and WRITE
/// requests: both zero is "passed through".
pub const READ_REQUESTS: &str = "read_requests";
/// See [`READ_REQUESTS`].
pub const WRITE_REQUESTS: &str = "write_requests";
/// Where no tracepoint can count requests: what could be said about the path instead.
pub const PASSED_THROUGH: &str = "passed_through";
/// The open(2) through the server's mount: "ok" or an errno name.
pub const OPEN_THROUGH_MOUNT: &str = "open_through_mount";
/// The protocol minor the kernel agreed with the server (a BTF probe on the connection).
pub const PROTOCOL_MINOR: &str = "protocol_minor";
/// Whether the connection agreed on FUSE_PASSTHROUGH (the same probe).
pub const PASSTHROUGH_NEGOTIATED: &str = "passthrough_negotiated";
/// Successful BACKING_OPENs of the server's run (a kprobe on fuse_backing_open), or why
/// they could not be counted.
pub const BACKING_OPENS: &str = "backing_opens";
/// The errno names of the BACKING_OPENs that failed.
pub const BACKING_OPEN_ERRORS: &str = "backing_open_errors";
/// Successful BACKING_CLOSEs (a kprobe on fuse_backing_close).
pub const BACKING_CLOSES: &str = "backing_closes";
/// The errno names of the server's BACKING_CLOSEs that failed (an id closed twice, or one
/// never opened): any fails the case.
pub const BACKING_CLOSE_ERRORS: &str = "backing_close_errors";
/// BACKING_OPENs granted to the server, as the backing-id witness preloaded into it saw them
/// (every kernel; absent where the server does not call libc's ioctl).
pub const WITNESS_BACKING_OPENS: &str = "witness_backing_opens";
/// BACKING_CLOSEs accepted, as the witness saw them.
pub const WITNESS_BACKING_CLOSES: &str = "witness_backing_closes";
/// The errno names of the server's BACKING_CLOSEs that failed, as the witness saw them:
/// any fails the case.
pub const WITNESS_BACKING_CLOSE_ERRORS: &str = "witness_backing_close_errors";
/// After one refused BACKING_OPEN: "one file" or "whole mount" fell back to the server.
pub const FALLBACK_SCOPE: &str = "fallback_scope";
/// How `validate.fallback_scope` had the kernel refuse one BACKING_OPEN (ELOOP for a stacked
/// file, or EPERM for one made without CAP_SYS_ADMIN) and with it the errno.
pub const FALLBACK_REFUSAL: &str = "fallback_refusal";
/// Whether a bind under `{source}` came off before the server forgot its inodes.
pub const UNBIND_STACKED: &str = "unbind_stacked";
/// `validate.library_suite`: each test of the library's own suite and its outcome ("pass",
/// "fail: why", "skip: why"); the host makes each a result of its own.
pub const LIBRARY_SUITE: &str = "library_suite";
/// The same, counted: "79 pass, 1 fail, 7 skip".
pub const LIBRARY_SUITE_TOTALS: &str = "library_suite_totals";
/// The group of the results made from [`LIBRARY_SUITE`]: `libfuse_suite.examples.cuse`.
pub const LIBRARY_SUITE_GROUP: &str = "libfuse_suite";
/// The `bench` group's figures (`bench --io` reads them; never in a snapshot).
pub const THROUGHPUT: &str = "throughput";

/// What only a kernel whose probes read arguments through BTF can tell: a run that could
/// not read them is not compared on them.
pub const NEEDS_BTF: [&str; 2] = [PROTOCOL_MINOR, PASSTHROUGH_NEGOTIATED];

/// What the server answered to the requests the validate cases of names, attributes,
/// FALLOCATE and COPY_FILE_RANGE send that it may refuse ("ok" or an errno's name), how
/// an exec through the mount ended, and how many names READDIR listed: its behaviour, kept
/// in a snapshot whether or not the case's I/O passed through.
pub const REQUEST_ANSWERS: [&str; 16] = [
    "rename_noreplace",
    "rename_exchange",
    "mknod_fifo",
    "tmpfile",
    "tmpfile_link",
    "utimens",
    "utimens_symlink",
    "chown",
    "entries",
    "entries_after",
    "exec",
    "exec_written",
    "fallocate",
    "fallocate_keep_size",
    "fallocate_punch_hole",
    "fallocate_zero_range",
];
/// The COPY_FILE_RANGE requests a server got in `validate.copy_file_range` (none: the
/// kernel copied by itself after the server refused, or never asked).
pub const COPY_FILE_RANGE_REQUESTS: &str = "copy_file_range_requests";
/// Over FUSE over io_uring (`validate --transport uring`): the requests the kernel queued
/// on the server's ring during the case, from its first one (the kernel's count, by kprobe).
pub const RING_REQUESTS: &str = "ring_requests";
/// The same run's requests queued for `read(2)` on /dev/fuse instead (FORGET and INTERRUPT
/// always go there, and are not counted).
pub const DEV_REQUESTS: &str = "dev_requests";
