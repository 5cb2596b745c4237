//! The errors a run can end with, each with its own exit code so scripts can tell them apart.

use std::path::PathBuf;

/// Exit codes of `cargo xtask`. 0: every case passed or was skipped; 1: a case failed or
/// crashed; 2: bad command line (clap). The rest are below, one per kind of trouble.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kernel {0}: no such file; give a bzImage, `host`, or leave --kernel out for Debian's 6.12 cloud kernel")]
    KernelMissing(PathBuf),
    #[error(
        "kernel {path}: not a bzImage ({why}); give an x86 bzImage such as arch/x86/boot/bzImage"
    )]
    NotBzImage { path: PathBuf, why: String },
    #[error("modules {0}: not a modules directory (no kernel/ inside); give lib/modules/<release> of the same kernel")]
    BadModules(PathBuf),
    #[error("unknown case {0}; `cargo xtask cases` lists them")]
    UnknownCase(String),
    #[error("{tool} is missing and could not be installed here: {fix}")]
    ToolMissing { tool: String, fix: String },
    #[error("the kernel panicked during boot: {headline} (console: {console})")]
    BootPanic {
        headline: String,
        console: PathBuf,
        tail: Vec<String>,
    },
    #[error("the guest did not start the agent within {secs} s: {why} (console: {console})")]
    BootTimeout {
        secs: u64,
        why: String,
        console: PathBuf,
    },
    #[error("QEMU failed: {0}")]
    Qemu(String),
    #[error("fetching the kernel failed: {0}")]
    Fetch(String),
    #[error("building the agent failed: {0}")]
    AgentBuild(String),
    #[error("observations differ from the snapshot {0}")]
    SnapshotMismatch(PathBuf),
    #[error("case {0} can bring the kernel down: it runs only in a VM, never with --kernel host")]
    HostRefuses(String),
    #[error("{dir} is not a kernel tree: {why}; give --src a Linux source tree or git checkout")]
    NotKernelTree { dir: PathBuf, why: String },
    #[error("patch {patch} does not apply; nothing was built:\n{why}")]
    PatchFailed { patch: String, why: String },
    #[error("unknown profile {name}; the profiles are: {known}")]
    UnknownProfile { name: String, known: String },
    #[error("the kernel config lacks what the fragments ask for:\n  {}", .0.join("\n  "))]
    ConfigMismatch(Vec<String>),
    #[error("{what} failed (log: {log}):\n{errors}")]
    BuildFailed {
        what: String,
        errors: String,
        log: PathBuf,
    },
    #[error("the disk filled up during the kernel build (log: {0}); free some space (the build cache is in the cache directory) and run again")]
    DiskFull(PathBuf),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` could not be started: {source}")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("{what} needs root: run it as root (sudo -E cargo xtask ...)")]
    NeedsRoot { what: String },
    #[error("fragment {path}: {why}; give an existing config fragment (CONFIG_X=y lines)")]
    BadFragment { path: PathBuf, why: String },
    #[error("--config {path}: {why}; give a kernel .config (from make, or a /boot/config-*)")]
    BadConfig { path: PathBuf, why: String },
    #[error("server {path}: {why}; give the path of an executable FUSE server, or a built-in target (`cargo xtask validate --help`)")]
    BadServer { path: PathBuf, why: String },
    #[error("unknown target {name}; the built-in targets are: {known}, or give a server's path")]
    UnknownTarget { name: String, known: String },
    #[error("the server under test did not start: {0}")]
    ServerDidNotStart(String),
    #[error("kernel {release} could not mount the host's root over virtio-fs ({why}): it needs CONFIG_VIRTIO_FS (built in, or virtiofs.ko in the directory --modules names)")]
    NoVirtioFs { release: String, why: String },
    #[error("kernel {release} has no driver for the virtio-console port the results come back on (CONFIG_VIRTIO_CONSOLE): give its modules with --modules <lib/modules/{release}>, or build the driver in (console: {console})")]
    NoResultPort { release: String, console: PathBuf },
    #[error("--backend vng: {0}")]
    Vng(String),
    #[error("unknown report format {name}; the formats are: {known}")]
    UnknownReport { name: String, known: String },
    #[error("Debian's archive has no cloud kernel of series {series}; the series it has: {known}")]
    UnknownSeries { series: String, known: String },
    #[error("Debian's cloud kernel {release} (series {series}) cannot be fetched: {missing} gone from the archive; the series it has whole: {known}")]
    SeriesGone {
        series: String,
        release: String,
        missing: String,
        known: String,
    },
    #[error(
        "{dir} is not a run's artifacts directory: {why}; give a directory under target/fpt-runs/"
    )]
    NotARun { dir: PathBuf, why: String },
    #[error("{dir} is not a git checkout ({why}); bisect needs --src to be the top of a kernel git tree")]
    NotGitTree { dir: PathBuf, why: String },
    #[error("revision {rev} does not exist in {dir}; give a commit, tag or branch of that tree")]
    UnknownRevision { rev: String, dir: PathBuf },
    #[error("cannot bisect: {why}")]
    Bisect { why: String },
    #[error("no throughput figures from {kernel}: {why}")]
    Throughput { kernel: String, why: String },
}

impl Error {
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::SnapshotMismatch(_) => 3,
            Error::KernelMissing(_) => 4,
            Error::NotBzImage { .. } => 5,
            Error::BadModules(_) => 5,
            Error::BootPanic { .. } => 6,
            Error::UnknownCase(_) => 7,
            Error::ToolMissing { .. } => 8,
            Error::BootTimeout { .. } => 9,
            Error::Qemu(_) => 9,
            Error::Fetch(_) => 10,
            Error::AgentBuild(_) => 11,
            Error::Io { .. } | Error::Spawn { .. } | Error::Command { .. } => 12,
            Error::HostRefuses(_) => 13,
            Error::PatchFailed { .. } => 14,
            Error::NotKernelTree { .. } => 15,
            Error::ConfigMismatch(_) => 16,
            Error::UnknownProfile { .. } => 17,
            Error::BuildFailed { .. } => 18,
            Error::DiskFull(_) => 19,
            Error::NeedsRoot { .. } => 20,
            Error::BadFragment { .. } | Error::BadConfig { .. } => 21,
            Error::NotARun { .. } => 22,
            Error::BadServer { .. } | Error::UnknownTarget { .. } => 23,
            Error::ServerDidNotStart(_) => 24,
            Error::NoVirtioFs { .. } => 25,
            Error::UnknownSeries { .. } | Error::SeriesGone { .. } => 26,
            Error::UnknownReport { .. } => 27,
            Error::NoResultPort { .. } => 28,
            Error::Vng(_) => 29,
            Error::NotGitTree { .. } => 30,
            Error::UnknownRevision { .. } => 31,
            Error::Bisect { .. } => 32,
            Error::Throughput { .. } => 33,
        }
    }

    /// Wrap an I/O error with what we were doing; the error itself stays the source.
    pub fn io(what: impl std::fmt::Display, source: std::io::Error) -> Error {
        Error::Io {
            what: what.to_string(),
            source,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
