//! The command line: every subcommand and option, and what each turns into for the
//! harness (a `Request`, a `BuildRequest`, the reports to write).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use harness::boot::qemu::{Accel, Machine};
use harness::kernel::build::BuildRequest;
use harness::kernel::KernelChoice;
use harness::results::record::Run;
use harness::run::Request;

use crate::fail::fail;

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "Conformance and regression harness for Linux FUSE passthrough"
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Cmd,
}

#[derive(Subcommand)]
pub(crate) enum Cmd {
    /// Boot a kernel (Debian's 6.12 cloud kernel by default), run the cases, compare with the snapshot.
    Run(RunArgs),
    /// Re-derive a run's results from its saved artifacts (console.log, events.jsonl,
    /// task-dump.txt, ending.json): classifier, results, snapshot comparison, report.
    Replay {
        /// A run's directory, e.g. target/fpt-runs/latest.
        dir: PathBuf,
        #[command(flatten)]
        reports: Reports,
        /// A coverage run's report made again from its saved counters (writes its
        /// coverage/ directory; nothing else is written).
        #[arg(long)]
        coverage: bool,
    },
    /// Validate a FUSE server or library: the validate cases (every I/O path, byte-compared
    /// with {source}; where the I/O went, counted by the kernel; what was left open) against
    /// the server, on each kernel; one table per target, one column per kernel.
    Validate {
        /// A built-in target (libfuse, libfuse-3.17, libfuse-3.14, go-fuse, go-fuse-2.8,
        /// go-fuse-2.4, fuser, fuser-mirror, fuse-backend-rs) or the path of any server binary.
        #[arg(long)]
        server: String,
        /// A kernel as `run` takes it (repeatable; default debian-6.12): one column each.
        #[arg(long = "kernel", default_value = KernelChoice::DEFAULT)]
        kernels: Vec<String>,
        /// Run only this validate case (repeatable).
        #[arg(long = "case")]
        cases: Vec<String>,
        /// Write the observations as the snapshot of this target and kernel series.
        #[arg(long)]
        bless: bool,
        /// `passthrough`: every I/O path the target's snapshot has passed through must stay
        /// passed through; one the server now serves itself is a failed verdict.
        #[arg(long, value_enum)]
        expect: Option<ExpectArg>,
        #[command(flatten)]
        reports: Reports,
        /// fs/fuse's coverage of what the server made the kernel do, on each kernel (each
        /// built from source: `--kernel src:debian:7.3`), per file and per line with the
        /// validate cases that ran it (see `run --coverage`).
        #[arg(long)]
        coverage: bool,
        /// The config profile of every `src:` kernel (default minimal).
        #[arg(long)]
        profile: Option<String>,
        /// How the kernel hands the server its requests: `/dev/fuse` (default), or FUSE over
        /// io_uring (kernels 6.14 on, `fuse.enable_uring` set for the run; libfuse 3.18 with
        /// `-o io_uring`). A server or kernel without it: every case skips, saying why.
        /// Repeatable: a column per kernel and transport.
        #[arg(long = "transport", value_enum, default_value = "dev")]
        transports: Vec<TransportArg>,
        /// `--server libfuse` built from this libfuse source tree (a checkout at any tag or
        /// commit) instead of Debian's package: validate any version of the library.
        #[arg(long)]
        source: Option<std::path::PathBuf>,
        /// The server's arguments after `--`; `{source}` and `{mountpoint}` are filled in.
        /// A built-in target has its own.
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// The tidy gate (rustfmt, clippy, tidy tests), unit tests, then the end-to-end suite:
    /// Debian 6.12 and 6.1 in QEMU, the built kernel, then host mode.
    Test {
        /// Also the full tier: every built-in validate target on Debian 6.12 and the host
        /// (the default covers one library).
        #[arg(long)]
        full: bool,
    },
    /// Time a warm run and its parts: boot to first result, per-case durations, image size.
    /// With --kernel-build: time kernel builds instead (unchanged, after a touch, after a
    /// one-line change plus boot and suite; with --clean also a clean build). With
    /// --coverage: the coverage loop on 7.3 built from source instead (the catalog with and
    /// without --coverage, warm, paired; a patch to its verdicts, whole and reaches-patch).
    Bench {
        #[command(flatten)]
        target: Target,
        /// How many runs to time.
        #[arg(long, default_value_t = 3)]
        runs: u32,
        /// Also time, in the same table: an fs/fuse edit and a series grown by one patch to
        /// their verdicts (7.3 built from source), validate of libfuse on --kernel, the
        /// matrix of every Debian series and `cargo xtask test` (warm).
        #[arg(long)]
        all: bool,
        /// Time the kernel build loop on the default source instead of a run.
        #[arg(long)]
        kernel_build: bool,
        /// With --kernel-build: also time a clean build (deletes that build's cache entry).
        /// With --validate: also time fetching and building every built-in target afresh.
        /// Alone: also time a first `cargo xtask run` from an empty cache and target dir.
        #[arg(long)]
        clean: bool,
        /// Time `validate` of this target (a built-in name or a path) on --kernel, command to
        /// report, instead of a run.
        #[arg(long)]
        validate: Option<String>,
        /// Time `matrix --kernel debian:all --jobs 2` (warm), with each kernel's time; with
        /// --clean, also the first fetch of one series (7.3: its cached copy is deleted).
        #[arg(long)]
        matrix: bool,
        /// Throughput instead: six workloads on tmpfs and ext4 through the backing file, a
        /// passthrough FUSE file and plain FUSE, on each --kernel (repeatable): a table,
        /// throughput.json and SVG plots.
        #[arg(long)]
        io: bool,
        /// With --io: measure this server (a built-in target or a path) instead of the
        /// agent's own: its mount with passthrough on, and off where it has a switch.
        #[arg(long)]
        server: Option<String>,
    },
    /// Run the same target N times and report every case whose verdict or observations
    /// were not the same each time (flaky), and the run time of each.
    Soak {
        #[command(flatten)]
        target: Target,
        #[arg(long, default_value_t = 10)]
        runs: u32,
    },
    /// Run one case again and again (a fresh boot each time, or --same-boot) until it does
    /// not pass or the kernel reports something; keep that run's artifacts and say how to
    /// rerun it.
    Repro {
        #[command(flatten)]
        target: Target,
        #[arg(long, default_value_t = 10)]
        runs: u32,
        /// Run the case N times in one boot instead of one boot per run.
        #[arg(long)]
        same_boot: bool,
        /// Rerun a validate case against this server (a built-in target or a path), e.g. to
        /// reproduce a shutdown or stacking hang of your server in a VM.
        #[arg(long)]
        server: Option<String>,
        /// The server's arguments after `--` (as for validate).
        #[arg(last = true)]
        server_args: Vec<String>,
    },
    /// Build a kernel under test from source.
    Kernel {
        #[command(subcommand)]
        command: KernelCmd,
    },
    /// Build and run the catalog on the base tree and after each patch of a series, in
    /// order, incrementally; print, per patch, its subject and every verdict and observation
    /// that changed from the step before.
    Series {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        reports: Reports,
    },
    /// Mutation testing: mutants of the lines the --patch series adds or changes (or of
    /// whole --file or --function), each one more patch built incrementally and run on the
    /// cases whose coverage reaches its line: killed (a verdict, a crash, a hang, or only an
    /// observation), survived, not reached, not compiled. Survivors are printed as review
    /// comments; mutants.json and mutants.html beside. Resumes after Ctrl-C.
    Mutate {
        #[command(flatten)]
        target: Target,
        /// Every line gcov counts in this file of fs/fuse, instead of the series' lines
        /// (repeatable; the series still applies).
        #[arg(long = "file")]
        files: Vec<String>,
        /// Every line gcov counts in this function of fs/fuse (repeatable).
        #[arg(long = "function")]
        functions: Vec<String>,
    },
    /// The first commit between --good and --bad at which a case's verdict (or one of its
    /// observations) changed: `git bisect run` in a worktree of the harness's own, each step
    /// built incrementally, a commit that does not build skipped.
    Bisect {
        /// The top of a kernel git checkout (left as it is: the harness bisects in its own
        /// worktree).
        #[arg(long)]
        src: PathBuf,
        #[arg(long)]
        good: String,
        #[arg(long)]
        bad: String,
        /// The case to watch.
        #[arg(long)]
        case: String,
        /// Watch this observation of the case instead of its verdict.
        #[arg(long)]
        observation: Option<String>,
        /// Config profile (default minimal).
        #[arg(long)]
        profile: Option<String>,
        /// An extra config fragment merged last (repeatable).
        #[arg(long = "fragment")]
        fragments: Vec<PathBuf>,
        /// Start from this .config instead of tinyconfig.
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long, value_enum)]
        accel: Option<AccelArg>,
    },
    /// One step of `git bisect run` (what `bisect` runs; not for direct use).
    #[command(hide = true)]
    BisectStep { state: PathBuf },
    /// Run the catalog on several kernels, --jobs at a time: a verdict grid of the cases
    /// that differ, every observation that differs side by side, matrix.json and matrix.html.
    Matrix(MatrixArgs),
    /// List Debian's cloud kernel series: the newest release of each, its packaging, and
    /// whether it is cached, fetchable, or gone from the archive (`--kernel debian:<series>`).
    Kernels,
    /// List every case with its group, rule and verdict rule.
    Cases {
        /// Print docs/cases.md instead: the Markdown table, then the statement of coverage
        /// of docs/kernel-facts.md's rules.
        #[arg(long)]
        markdown: bool,
    },
}

#[derive(Subcommand)]
pub(crate) enum KernelCmd {
    /// Configure and build a bzImage (a no-op when nothing changed); prints its identity.
    Build(Source),
    /// Only make the build's .config (base.config, profile, fragments, over tinyconfig or
    /// --config), check it, and print its path.
    Config(Source),
}

/// A kernel built from source; any of these options makes `run` build first.
#[derive(clap::Args, Clone, Default)]
pub(crate) struct Source {
    /// A kernel tree or git checkout (never modified), or `debian:SERIES` for Debian's
    /// `linux-source-SERIES` (6.12, 7.2, 7.3); default: debian:7.3, the newest.
    #[arg(long)]
    pub(crate) src: Option<PathBuf>,
    /// A git format-patch file or mbox series, applied in order (repeatable).
    #[arg(long = "patch")]
    pub(crate) patches: Vec<PathBuf>,
    /// Config profile: minimal (default), vng (for --backend vng), debug, kasan
    /// (images/kernel/profiles/).
    #[arg(long)]
    pub(crate) profile: Option<String>,
    /// An extra config fragment merged last (repeatable).
    #[arg(long = "fragment")]
    pub(crate) fragments: Vec<PathBuf>,
    /// Start from this .config (yours) instead of tinyconfig; what the agent needs is merged
    /// over it, checked, and each option that had to change is listed.
    #[arg(long)]
    pub(crate) config: Option<PathBuf>,
}

impl Source {
    pub(crate) fn given(&self) -> bool {
        self.src.is_some()
            || !self.patches.is_empty()
            || self.profile.is_some()
            || !self.fragments.is_empty()
            || self.config.is_some()
    }

    pub(crate) fn request(&self) -> BuildRequest {
        BuildRequest {
            src: self.src.clone(),
            patches: self.patches.clone(),
            profile: self.profile.clone(),
            fragments: self.fragments.clone(),
            config: self.config.clone(),
            progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
            ..Default::default()
        }
    }
}

#[derive(clap::Args, Clone)]
pub(crate) struct Target {
    /// `debian:<series>` (`cargo xtask kernels` lists them; `debian-6.12` is the default),
    /// `host` (this kernel, no VM), or a bzImage path. Only `bench --io` takes several.
    #[arg(long = "kernel")]
    pub(crate) kernels: Vec<String>,
    #[command(flatten)]
    pub(crate) source: Source,
    /// `lib/modules/<release>` of the --kernel bzImage, if it needs modules (fuse, overlay, ...).
    #[arg(long)]
    pub(crate) modules: Option<PathBuf>,
    /// Accelerator; by default KVM if a probe boot works, else TCG.
    #[arg(long, value_enum)]
    pub(crate) accel: Option<AccelArg>,
    #[arg(long, value_enum, default_value = "microvm")]
    pub(crate) machine: MachineArg,
    /// Extra words for the kernel command line.
    #[arg(long, allow_hyphen_values = true)]
    pub(crate) append: Vec<String>,
    /// Seconds from QEMU start to the agent's hello.
    #[arg(long)]
    pub(crate) boot_timeout: Option<u64>,
    /// Run only this case (repeatable); `cargo xtask cases` lists them.
    #[arg(long = "case")]
    pub(crate) cases: Vec<String>,
    /// One boot per case: a case that wedges the kernel spoils no other result.
    #[arg(long)]
    pub(crate) isolate: bool,
    /// VMs side by side for this kernel's cases, dealt round-robin (default: one per core;
    /// results merged in catalog order, as one VM gives them).
    #[arg(long)]
    pub(crate) jobs: Option<usize>,
    /// vCPUs of the guest (default 1: multi-vCPU TCG can oops the kernel's code patching).
    #[arg(long)]
    pub(crate) cpus: Option<u32>,
    /// Who boots the kernel: our QEMU set-up (default), or virtme-ng (`vng --run`, the agent
    /// in host mode on the host's root; the kernel needs the `vng` profile's options).
    #[arg(long, value_enum, default_value = "qemu")]
    pub(crate) backend: BackendArg,
    /// Run only shard I of N of the selected cases (round-robin in catalog order), e.g. 2/4:
    /// one kernel's catalog spread over N CI runners.
    #[arg(long, value_parser = proto::catalog::Deal::parse)]
    pub(crate) shard: Option<proto::catalog::Deal>,
    /// fs/fuse compiled with gcov (a kernel built from source: --src): each case's counters
    /// collected; per-file table, HTML, JSON and Cobertura in the artifacts' coverage/, and
    /// with --patch each patch's executed and unexecuted lines. `--case reaches-patch` then
    /// runs only the cases that executed the patch's lines in the base tree's coverage.
    #[arg(long)]
    pub(crate) coverage: bool,
}

#[derive(clap::Args)]
pub(crate) struct MatrixArgs {
    /// A kernel as `run` takes it (repeatable), or `debian:all` for every Debian series
    /// that can be fetched.
    #[arg(long = "kernel", required = true)]
    pub(crate) kernels: Vec<String>,
    /// How many kernels run at once (default: the number of cores).
    #[arg(long)]
    pub(crate) jobs: Option<usize>,
    /// Run only this case (repeatable).
    #[arg(long = "case")]
    pub(crate) cases: Vec<String>,
    /// Accelerator; by default KVM if a probe boot works, else TCG.
    #[arg(long, value_enum)]
    pub(crate) accel: Option<AccelArg>,
    /// Run only shard I of N of the cases on every kernel (see `run --shard`).
    #[arg(long, value_parser = proto::catalog::Deal::parse)]
    pub(crate) shard: Option<proto::catalog::Deal>,
    /// Write each kernel's observations as the snapshot of its series (whole catalog only).
    #[arg(long)]
    pub(crate) bless: bool,
    /// fs/fuse's coverage on each kernel (each one built from source: `--kernel
    /// src:debian:7.3`, `src:DIR`), side by side, each with its own report (see `run
    /// --coverage`).
    #[arg(long)]
    pub(crate) coverage: bool,
    /// The config profile of every `src:` kernel (default minimal).
    #[arg(long)]
    pub(crate) profile: Option<String>,
    #[command(flatten)]
    pub(crate) reports: Reports,
}

/// `--report ktap,junit,json,kcidb`: reports written beside the artifacts.
#[derive(clap::Args, Clone, Default)]
pub(crate) struct Reports {
    /// Reports to write beside the artifacts, comma-separated: ktap (kunit.py parse reads
    /// it), junit (JUnit XML), json (results.json), kcidb (KCIDB v5).
    #[arg(long = "report", value_parser = parse_reports, default_value = "")]
    pub(crate) formats: ReportList,
}

#[derive(Clone, Default)]
pub(crate) struct ReportList(pub(crate) Vec<harness::results::formats::Format>);

pub(crate) fn parse_reports(s: &str) -> Result<ReportList, String> {
    harness::results::formats::parse(s)
        .map(ReportList)
        .map_err(|e| e.to_string())
}

impl Reports {
    /// Write the reports of `runs` beside each run's artifacts (and, given `dir`, JUnit and
    /// KCIDB merged there too) and list them.
    pub(crate) fn write(&self, runs: &[&Run], dir: Option<&std::path::Path>) -> i32 {
        if self.formats.0.is_empty() || runs.is_empty() {
            return 0;
        }
        // Without a directory of their own (validate over several kernels), each run's
        // reports go beside its artifacts and nothing is merged: a merged file in one run's
        // directory would overwrite that run's own.
        let written = match dir {
            Some(dir) => harness::results::formats::write_many(runs, dir, &self.formats.0),
            None => runs.iter().try_fold(Vec::new(), |mut all, run| {
                all.extend(harness::results::formats::write(run, &self.formats.0)?);
                Ok(all)
            }),
        };
        match written {
            Ok(files) => {
                for f in files {
                    println!("report: {}", f.display());
                }
                0
            }
            Err(e) => fail(&e),
        }
    }
}

#[derive(clap::Args)]
pub(crate) struct RunArgs {
    #[command(flatten)]
    pub(crate) target: Target,
    #[command(flatten)]
    pub(crate) reports: Reports,
    /// Write this run's observations as the snapshot of its kernel series.
    #[arg(long)]
    pub(crate) bless: bool,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum AccelArg {
    Kvm,
    Tcg,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum BackendArg {
    Qemu,
    Vng,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum MachineArg {
    Microvm,
    Q35,
}

impl Target {
    /// The one kernel of a command that takes one (several: a usage error, exit 2).
    pub(crate) fn kernel(&self) -> &str {
        if self.kernels.len() > 1 {
            eprintln!(
                "error: --kernel given {} times: only `bench --io` takes several (`matrix` runs the catalog on several)",
                self.kernels.len()
            );
            std::process::exit(2);
        }
        self.kernels
            .first()
            .map_or(KernelChoice::DEFAULT, String::as_str)
    }

    pub(crate) fn request(&self) -> Request {
        self.request_for(self.kernel())
    }

    /// [`Target::request`] on `kernel`.
    pub(crate) fn request_for(&self, kernel: &str) -> Request {
        let kernel = if self.source.given() {
            KernelChoice::Build(self.source.request())
        } else {
            KernelChoice::parse(kernel)
        };
        Request {
            kernel,
            modules: self.modules.clone(),
            cases: self.cases.clone(),
            accel: self.accel.map(|a| match a {
                AccelArg::Kvm => Accel::Kvm,
                AccelArg::Tcg => Accel::Tcg,
            }),
            machine: match self.machine {
                MachineArg::Microvm => Machine::Microvm,
                MachineArg::Q35 => Machine::Q35,
            },
            append: self.append.clone(),
            boot_timeout: self.boot_timeout.map(Duration::from_secs),
            isolate: self.isolate,
            cpus: self.cpus,
            validate: None,
            shard: self.shard,
            backend: match self.backend {
                BackendArg::Qemu => harness::run::Backend::Qemu,
                BackendArg::Vng => harness::run::Backend::Vng,
            },
            jobs: self.jobs,
            coverage: self.coverage,
            stop_at: None,
        }
    }
}

/// What `validate --expect` holds a target to.
#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum ExpectArg {
    /// Every path passed through in the target's snapshot stays passed through.
    Passthrough,
}

/// `validate --transport`.
#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum TransportArg {
    /// read(2) and write(2) on /dev/fuse.
    Dev,
    /// FUSE over io_uring.
    Uring,
}
