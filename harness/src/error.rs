//! The errors a run can end with, each with its own exit code so scripts can tell them apart.

use std::path::PathBuf;

/// Exit codes of `cargo xtask`. 0: every case passed or was skipped; 1: a case failed or
/// crashed; 2: bad command line (clap). The rest are below, one per kind of trouble.
///
/// The fields of each variant are what its message names, and say nothing more.
#[allow(missing_docs)]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `--kernel PATH` names no file.
    #[error("kernel {0}: no such file; give a bzImage, `host`, or leave --kernel out for Debian's 6.12 cloud kernel")]
    KernelMissing(PathBuf),
    /// `--kernel PATH` is a file but not an x86 bzImage (no boot signature or `HdrS` header).
    #[error(
        "kernel {path}: not a bzImage ({why}); give an x86 bzImage such as arch/x86/boot/bzImage"
    )]
    NotBzImage { path: PathBuf, why: String },
    /// `--modules DIR` has no `kernel/` inside.
    #[error("modules {0}: not a modules directory (no kernel/ inside); give lib/modules/<release> of the same kernel")]
    BadModules(PathBuf),
    /// A `--case` name that is no case, or a pattern that matches none.
    #[error("unknown case {0}; `cargo xtask cases` lists them")]
    UnknownCase(String),
    /// A tool the harness needs (QEMU, mkfs.ext4, ...) is missing and could not be installed.
    #[error("{tool} is missing and could not be installed here: {fix}")]
    ToolMissing { tool: String, fix: String },
    /// The kernel panicked before the agent said hello.
    #[error("the kernel panicked during boot: {headline} (console: {console})")]
    BootPanic {
        headline: String,
        console: PathBuf,
        tail: Vec<String>,
    },
    /// The guest did not reach the agent within the boot timeout.
    #[error("the guest did not start the agent within {secs} s: {why} (console: {console})")]
    BootTimeout {
        secs: u64,
        why: String,
        console: PathBuf,
    },
    /// QEMU (or virtiofsd beside it) failed to start or died before the result port connected.
    #[error("QEMU failed: {what}{}", because(.source))]
    Qemu {
        what: String,
        #[source]
        source: Option<Cause>,
    },
    /// Fetching from Debian's archive, or unpacking what it gave, failed.
    #[error("fetching the kernel failed: {what}{}", because(.source))]
    Fetch {
        what: String,
        #[source]
        source: Option<Cause>,
    },
    /// Building `fpt-agent`, or reading its catalog, failed.
    #[error("building the agent failed: {what}{}", because(.source))]
    AgentBuild {
        what: String,
        #[source]
        source: Option<Cause>,
    },
    /// A run's observations differ from its series' snapshot.
    #[error("observations differ from the snapshot {0}")]
    SnapshotMismatch(PathBuf),
    /// `--bless` with only part of the catalog selected.
    #[error("--bless writes whole snapshots: run every case (no --case, no --shard), or leave --bless out to compare these cases")]
    PartialBless,
    /// A case that may take the kernel down, asked for in host mode.
    #[error("case {0} can bring the kernel down: it runs only in a VM, never with --kernel host")]
    HostRefuses(String),
    /// `--src` is not a Linux source tree.
    #[error("{dir} is not a kernel tree: {why}; give --src a Linux source tree or git checkout")]
    NotKernelTree { dir: PathBuf, why: String },
    /// A patch of the series does not apply (or holds no diff).
    #[error("patch {patch} does not apply; nothing was built:\n{why}")]
    PatchFailed { patch: String, why: String },
    /// A `--patch` file does not exist or cannot be read.
    #[error("patch {path}: {source}; give the path of a patch file or an mbox of the series")]
    PatchUnreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `--profile` names no profile under images/kernel/profiles.
    #[error("unknown profile {name}; the profiles are: {known}")]
    UnknownProfile { name: String, known: String },
    /// The final .config lacks options a fragment asked for (each named).
    #[error("the kernel config lacks what the fragments ask for:\n  {}", .0.join("\n  "))]
    ConfigMismatch(Vec<String>),
    /// `make` failed; the errors and the log.
    #[error("{what} failed (log: {log}):\n{errors}")]
    BuildFailed {
        what: String,
        errors: String,
        log: PathBuf,
    },
    /// The disk filled up during a kernel build.
    #[error("the disk filled up during the kernel build (log: {0}); free some space (the build cache is in the cache directory) and run again")]
    DiskFull(PathBuf),
    /// Any other I/O error, with what the harness was doing.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// A command could not be started.
    #[error("`{command}` could not be started: {source}")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    /// A command ran and failed.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        command: String,
        status: String,
        stderr: String,
    },
    /// Something that needs root (host mode mounts filesystems).
    #[error("{what} needs root: run it as root (sudo -E cargo xtask ...)")]
    NeedsRoot { what: String },
    /// A `--fragment` file is missing or unreadable, or profiles include each other too deep.
    #[error("fragment {path}: {why}; give an existing config fragment (CONFIG_X=y lines)")]
    BadFragment { path: PathBuf, why: String },
    /// A `--config` file is missing or not a kernel .config.
    #[error("--config {path}: {why}; give a kernel .config (from make, or a /boot/config-*)")]
    BadConfig { path: PathBuf, why: String },
    /// `validate --server PATH`: no such executable.
    #[error("server {path}: {why}; give the path of an executable FUSE server, or a built-in target (`cargo xtask validate --help`)")]
    BadServer { path: PathBuf, why: String },
    /// `validate --server NAME`: no such built-in target.
    #[error("unknown target {name}; the built-in targets are: {known}, or give a server's path")]
    UnknownTarget { name: String, known: String },
    /// The server under test exited before mounting, or did not mount in time.
    #[error("the server under test did not start: {0}")]
    ServerDidNotStart(String),
    /// The kernel could not mount the host's root over virtio-fs.
    #[error("kernel {release} could not mount the host's root over virtio-fs ({why}): it needs CONFIG_VIRTIO_FS (built in, or virtiofs.ko in the directory --modules names)")]
    NoVirtioFs { release: String, why: String },
    /// The kernel has no driver for the virtio-console port the results come back on.
    #[error("kernel {release} has no driver for the virtio-console port the results come back on (CONFIG_VIRTIO_CONSOLE): give its modules with --modules <lib/modules/{release}>, or build the driver in (console: {console})")]
    NoResultPort { release: String, console: PathBuf },
    /// `--backend vng` could not run the cases.
    #[error("--backend vng: {what}")]
    Vng { what: String },
    /// `--report` names no format.
    #[error("unknown report format {name}; the formats are: {known}")]
    UnknownReport { name: String, known: String },
    /// `debian:<series>`: Debian's archive has no such series.
    #[error("Debian's archive has no cloud kernel of series {series}; the series it has: {known}")]
    UnknownSeries { series: String, known: String },
    /// `debian:<series>`: the series' packages are gone from the archive.
    #[error("Debian's cloud kernel {release} (series {series}) cannot be fetched: {missing} gone from the archive; the series it has whole: {known}")]
    SeriesGone {
        series: String,
        release: String,
        missing: String,
        known: String,
    },
    /// `replay DIR`: not a run's artifacts.
    #[error(
        "{dir} is not a run's artifacts directory: {file}{}; give a directory under target/fpt-runs/",
        because(.source)
    )]
    NotARun {
        dir: PathBuf,
        /// The file of the run that could not be read.
        file: String,
        #[source]
        source: Option<Cause>,
    },
    /// `bisect --src` is not a git checkout.
    #[error("{dir} is not a git checkout ({why}); bisect needs --src to be the top of a kernel git tree")]
    NotGitTree { dir: PathBuf, why: String },
    /// `bisect --good/--bad` names no revision of the tree.
    #[error("revision {rev} does not exist in {dir}; give a commit, tag or branch of that tree")]
    UnknownRevision { rev: String, dir: PathBuf },
    /// A bisect that cannot start or go on (both ends alike, say).
    #[error("cannot bisect: {why}")]
    Bisect { why: String },
    /// `bench --io` got no figures from a kernel.
    #[error("no throughput figures from {kernel}: {why}")]
    Throughput { kernel: String, why: String },
    /// `--coverage` on a kernel the harness did not build (a Debian binary, a bzImage, the
    /// host): gcov counters need the build's own objects.
    #[error("--coverage needs a kernel built from source ({given} is not): add --src debian:<series> or --src DIR (matrix and validate: --kernel src:debian:<series>), and --patch as needed")]
    CoverageNeedsSource { given: String },
    /// A coverage run whose counters could not be read or turned into a report.
    #[error("coverage: {why}{}", because(source))]
    Coverage {
        why: String,
        #[source]
        source: Option<Cause>,
    },
    /// `--case reaches-patch` before a coverage run of the base tree was made.
    #[error("--case reaches-patch needs the base tree's coverage, and {entry} has none yet: run `cargo xtask run --src {src} --coverage` (no --patch) once first")]
    NoBaseCoverage { entry: PathBuf, src: String },
    /// A coverage run's patch that changes no file built into this kernel.
    #[error("the patch series changes no file built into this kernel ({files}): nothing for coverage to judge; patch fs/fuse or another built file")]
    PatchTouchesNothingBuilt { files: String },
    /// `mutate` given nothing it can mutate: no series and no file, a file outside fs/fuse
    /// or not in the tree, a function no profiled file has. Said before anything is built.
    #[error("mutate: {what}: {why}")]
    MutateScope { what: String, why: String },
    /// `mutate`: what it was given is built and profiled, but no case of the catalog
    /// executes any of its lines, so no mutant of it could be judged.
    #[error("mutate: no case executes a line of {what}: nothing to judge; write a case that reaches it (cargo xtask run --coverage shows what runs)")]
    MutateNotReached { what: String },
    /// `matrix`: not one of the kernels could run.
    #[error("no kernel could run; the first one's error: {first}")]
    NoKernelRan {
        #[source]
        first: Box<Error>,
    },
    /// `validate --source PATH`: not a library source tree the harness can build.
    #[error("--source {path}: {why}")]
    BadLibrarySource { path: PathBuf, why: String },
}

/// What an error was caused by, when the harness's words alone do not say it all.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// ": <cause>" when there is one: the one-line message keeps the cause, and
/// [`std::error::Error::source`] gives it to whoever walks the chain.
fn because(source: &Option<Cause>) -> String {
    source.as_ref().map_or(String::new(), |s| format!(": {s}"))
}

impl Error {
    /// The exit code of `cargo xtask` for this error (docs/running.md: "Exit codes").
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::PartialBless => 2,
            Error::SnapshotMismatch(_) => 3,
            Error::KernelMissing(_) => 4,
            Error::NotBzImage { .. } => 5,
            Error::BadModules(_) => 5,
            Error::BootPanic { .. } => 6,
            Error::UnknownCase(_) => 7,
            Error::ToolMissing { .. } => 8,
            Error::BootTimeout { .. } => 9,
            Error::Qemu { .. } => 9,
            Error::Fetch { .. } => 10,
            Error::AgentBuild { .. } => 11,
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
            Error::Vng { .. } => 29,
            Error::NotGitTree { .. } => 30,
            Error::UnknownRevision { .. } => 31,
            Error::Bisect { .. } => 32,
            Error::Throughput { .. } => 33,
            Error::PatchUnreadable { .. } => 34,
            Error::CoverageNeedsSource { .. } => 35,
            Error::Coverage { .. } => 36,
            Error::NoBaseCoverage { .. } => 37,
            Error::PatchTouchesNothingBuilt { .. } => 38,
            Error::MutateScope { .. } => 39,
            Error::MutateNotReached { .. } => 40,
            Error::BadLibrarySource { .. } => 41,
            // The first kernel's own code: why nothing ran is usually bad input.
            Error::NoKernelRan { first } => first.exit_code(),
        }
    }

    /// Wrap an I/O error with what we were doing; the error itself stays the source.
    pub fn io(what: impl std::fmt::Display, source: std::io::Error) -> Error {
        Error::Io {
            what: what.to_string(),
            source,
        }
    }

    /// A coverage step failed, with its cause when there is one.
    pub fn coverage(why: impl Into<String>, source: Option<Cause>) -> Error {
        Error::Coverage {
            why: why.into(),
            source,
        }
    }

    /// QEMU failed, in the harness's words only.
    pub fn qemu(what: impl std::fmt::Display) -> Error {
        Error::Qemu {
            what: what.to_string(),
            source: None,
        }
    }

    /// QEMU failed because of `source`.
    pub fn qemu_from(what: impl std::fmt::Display, source: impl Into<Cause>) -> Error {
        Error::Qemu {
            what: what.to_string(),
            source: Some(source.into()),
        }
    }

    /// Fetching failed, in the harness's words only.
    pub fn fetch(what: impl std::fmt::Display) -> Error {
        Error::Fetch {
            what: what.to_string(),
            source: None,
        }
    }

    /// Fetching failed because of `source` (a command, an unpacking).
    pub fn fetch_from(what: impl std::fmt::Display, source: impl Into<Cause>) -> Error {
        Error::Fetch {
            what: what.to_string(),
            source: Some(source.into()),
        }
    }

    /// Building the agent failed, in the harness's words (cargo's own, say).
    pub fn agent_build(what: impl std::fmt::Display) -> Error {
        Error::AgentBuild {
            what: what.to_string(),
            source: None,
        }
    }

    /// Building the agent, or reading its catalog, failed because of `source`.
    pub fn agent_build_from(what: impl std::fmt::Display, source: impl Into<Cause>) -> Error {
        Error::AgentBuild {
            what: what.to_string(),
            source: Some(source.into()),
        }
    }

    /// `--backend vng` could not run the cases.
    pub fn vng(what: impl std::fmt::Display) -> Error {
        Error::Vng {
            what: what.to_string(),
        }
    }
}

/// The harness's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
