//! `cargo xtask`: the command line. Parsing and printing only; the work is in `harness`.

use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

mod coverage;
mod devloop;
mod matrix;
mod mutate;
mod tidy;
mod validate;
use harness::boot::qemu::{Accel, Machine};
use harness::kernel::build::BuildRequest;
use harness::kernel::KernelChoice;
use harness::results::record::Run;
use harness::results::snapshot::{self, Comparison, Policy, Settled};
use harness::results::table;
use harness::run::Request;
use harness::Event;

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "Conformance and regression harness for Linux FUSE passthrough"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
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
        expect: Option<validate::ExpectArg>,
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
        transports: Vec<validate::TransportArg>,
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
enum KernelCmd {
    /// Configure and build a bzImage (a no-op when nothing changed); prints its identity.
    Build(Source),
    /// Only make the build's .config (base.config, profile, fragments, over tinyconfig or
    /// --config), check it, and print its path.
    Config(Source),
}

/// A kernel built from source; any of these options makes `run` build first.
#[derive(clap::Args, Clone, Default)]
struct Source {
    /// A kernel tree or git checkout (never modified), or `debian:SERIES` for Debian's
    /// `linux-source-SERIES` (6.12, 7.2, 7.3); default: debian:7.3, the newest.
    #[arg(long)]
    src: Option<PathBuf>,
    /// A git format-patch file or mbox series, applied in order (repeatable).
    #[arg(long = "patch")]
    patches: Vec<PathBuf>,
    /// Config profile: minimal (default), vng (for --backend vng), debug, kasan
    /// (images/kernel/profiles/).
    #[arg(long)]
    profile: Option<String>,
    /// An extra config fragment merged last (repeatable).
    #[arg(long = "fragment")]
    fragments: Vec<PathBuf>,
    /// Start from this .config (yours) instead of tinyconfig; what the agent needs is merged
    /// over it, checked, and each option that had to change is listed.
    #[arg(long)]
    config: Option<PathBuf>,
}

impl Source {
    fn given(&self) -> bool {
        self.src.is_some()
            || !self.patches.is_empty()
            || self.profile.is_some()
            || !self.fragments.is_empty()
            || self.config.is_some()
    }

    fn request(&self) -> BuildRequest {
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
struct Target {
    /// `debian:<series>` (`cargo xtask kernels` lists them; `debian-6.12` is the default),
    /// `host` (this kernel, no VM), or a bzImage path. Only `bench --io` takes several.
    #[arg(long = "kernel")]
    kernels: Vec<String>,
    #[command(flatten)]
    source: Source,
    /// `lib/modules/<release>` of the --kernel bzImage, if it needs modules (fuse, overlay, ...).
    #[arg(long)]
    modules: Option<PathBuf>,
    /// Accelerator; by default KVM if a probe boot works, else TCG.
    #[arg(long, value_enum)]
    accel: Option<AccelArg>,
    #[arg(long, value_enum, default_value = "microvm")]
    machine: MachineArg,
    /// Extra words for the kernel command line.
    #[arg(long, allow_hyphen_values = true)]
    append: Vec<String>,
    /// Seconds from QEMU start to the agent's hello.
    #[arg(long)]
    boot_timeout: Option<u64>,
    /// Run only this case (repeatable); `cargo xtask cases` lists them.
    #[arg(long = "case")]
    cases: Vec<String>,
    /// One boot per case: a case that wedges the kernel spoils no other result.
    #[arg(long)]
    isolate: bool,
    /// VMs side by side for this kernel's cases, dealt round-robin (default: one per core;
    /// results merged in catalog order, as one VM gives them).
    #[arg(long)]
    jobs: Option<usize>,
    /// vCPUs of the guest (default 1: multi-vCPU TCG can oops the kernel's code patching).
    #[arg(long)]
    cpus: Option<u32>,
    /// Who boots the kernel: our QEMU set-up (default), or virtme-ng (`vng --run`, the agent
    /// in host mode on the host's root; the kernel needs the `vng` profile's options).
    #[arg(long, value_enum, default_value = "qemu")]
    backend: BackendArg,
    /// Run only shard I of N of the selected cases (round-robin in catalog order), e.g. 2/4:
    /// one kernel's catalog spread over N CI runners.
    #[arg(long, value_parser = proto::catalog::Deal::parse)]
    shard: Option<proto::catalog::Deal>,
    /// fs/fuse compiled with gcov (a kernel built from source: --src): each case's counters
    /// collected; per-file table, HTML, JSON and Cobertura in the artifacts' coverage/, and
    /// with --patch each patch's executed and unexecuted lines. `--case reaches-patch` then
    /// runs only the cases that executed the patch's lines in the base tree's coverage.
    #[arg(long)]
    coverage: bool,
}

#[derive(clap::Args)]
struct MatrixArgs {
    /// A kernel as `run` takes it (repeatable), or `debian:all` for every Debian series
    /// that can be fetched.
    #[arg(long = "kernel", required = true)]
    kernels: Vec<String>,
    /// How many kernels run at once (default: the number of cores).
    #[arg(long)]
    jobs: Option<usize>,
    /// Run only this case (repeatable).
    #[arg(long = "case")]
    cases: Vec<String>,
    /// Accelerator; by default KVM if a probe boot works, else TCG.
    #[arg(long, value_enum)]
    accel: Option<AccelArg>,
    /// Run only shard I of N of the cases on every kernel (see `run --shard`).
    #[arg(long, value_parser = proto::catalog::Deal::parse)]
    shard: Option<proto::catalog::Deal>,
    /// Write each kernel's observations as the snapshot of its series (whole catalog only).
    #[arg(long)]
    bless: bool,
    /// fs/fuse's coverage on each kernel (each one built from source: `--kernel
    /// src:debian:7.3`, `src:DIR`), side by side, each with its own report (see `run
    /// --coverage`).
    #[arg(long)]
    coverage: bool,
    /// The config profile of every `src:` kernel (default minimal).
    #[arg(long)]
    profile: Option<String>,
    #[command(flatten)]
    reports: Reports,
}

/// `--report ktap,junit,json,kcidb`: reports written beside the artifacts.
#[derive(clap::Args, Clone, Default)]
struct Reports {
    /// Reports to write beside the artifacts, comma-separated: ktap (kunit.py parse reads
    /// it), junit (JUnit XML), json (results.json), kcidb (KCIDB v5).
    #[arg(long = "report", value_parser = parse_reports, default_value = "")]
    formats: ReportList,
}

#[derive(Clone, Default)]
struct ReportList(Vec<harness::results::formats::Format>);

fn parse_reports(s: &str) -> Result<ReportList, String> {
    harness::results::formats::parse(s)
        .map(ReportList)
        .map_err(|e| e.to_string())
}

impl Reports {
    /// Write the reports of `runs` beside each run's artifacts (and, given `dir`, JUnit and
    /// KCIDB merged there too) and list them.
    fn write(&self, runs: &[&Run], dir: Option<&std::path::Path>) -> i32 {
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
struct RunArgs {
    #[command(flatten)]
    target: Target,
    #[command(flatten)]
    reports: Reports,
    /// Write this run's observations as the snapshot of its kernel series.
    #[arg(long)]
    bless: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum AccelArg {
    Kvm,
    Tcg,
}

#[derive(Clone, Copy, ValueEnum)]
enum BackendArg {
    Qemu,
    Vng,
}

#[derive(Clone, Copy, ValueEnum)]
enum MachineArg {
    Microvm,
    Q35,
}

impl Target {
    /// The one kernel of a command that takes one (several: a usage error, exit 2).
    fn kernel(&self) -> &str {
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

    fn request(&self) -> Request {
        self.request_for(self.kernel())
    }

    /// [`Target::request`] on `kernel`.
    fn request_for(&self, kernel: &str) -> Request {
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    harness::env::interrupt::install();
    let code = dispatch(cli);
    ExitCode::from(code as u8)
}

/// Each subcommand to its function; the exit code it returns.
fn dispatch(cli: Cli) -> i32 {
    match cli.command {
        Cmd::Run(args) => run(&args),
        Cmd::Replay {
            dir,
            reports,
            coverage,
        } => replay(&dir, &reports, coverage),
        Cmd::Validate {
            server,
            kernels,
            cases,
            bless,
            expect,
            reports,
            coverage,
            profile,
            transports,
            source,
            args,
        } => validate::validate(
            &server,
            &kernels,
            &cases,
            (bless, coverage, profile, transports, source),
            expect,
            &reports,
            &args,
        ),
        Cmd::Test { full } => test(full),
        Cmd::Bench {
            matrix: true,
            clean,
            ..
        } => matrix::bench(clean),
        Cmd::Bench {
            target,
            io: true,
            server,
            ..
        } => devloop::bench_io(&target, server.as_deref()),
        // `bench --coverage` (the run option): the coverage loop on 7.3 built from source.
        Cmd::Bench { target, runs, .. } if target.coverage => {
            coverage::bench(&target.request(), runs)
        }
        Cmd::Bench {
            target,
            kernel_build: true,
            clean,
            ..
        } => bench_kernel_build(&target, clean),
        Cmd::Bench {
            target,
            runs,
            validate: Some(server),
            clean,
            ..
        } => bench_validate(&target, &server, runs, clean),
        Cmd::Bench {
            target,
            runs,
            all,
            clean,
            ..
        } => bench(&target, runs, all, clean),
        Cmd::Soak { target, runs } => soak(&target, runs),
        Cmd::Repro {
            target,
            runs,
            same_boot,
            server,
            server_args,
        } => repro(&target, runs, same_boot, server.as_deref(), &server_args),
        Cmd::Kernel {
            command: KernelCmd::Build(source),
        } => kernel_build(&source),
        Cmd::Kernel {
            command: KernelCmd::Config(source),
        } => {
            match harness::kernel::build::configure(&source.request(), &harness::env::cache::dir())
            {
                Ok(config) => {
                    println!("config: {}", config.display());
                    0
                }
                Err(e) => fail(&e),
            }
        }
        Cmd::Cases { markdown } => cases(markdown),
        Cmd::Kernels => matrix::kernels(),
        Cmd::Bisect {
            src,
            good,
            bad,
            case,
            observation,
            profile,
            fragments,
            config,
            accel,
        } => devloop::bisect(harness::loops::bisect::Request {
            tree: src,
            good,
            bad,
            case,
            observation,
            build: BuildRequest {
                profile,
                fragments,
                config,
                ..Default::default()
            },
            accel: accel.map(|a| match a {
                AccelArg::Kvm => Accel::Kvm,
                AccelArg::Tcg => Accel::Tcg,
            }),
            step_command: bisect_step_command(),
        }),
        Cmd::BisectStep { state } => harness::loops::bisect::step(&state),
        Cmd::Mutate {
            target,
            files,
            functions,
        } => mutate::mutate(&target, &files, &functions),
        Cmd::Series { target, reports } => {
            if target.source.patches.is_empty() {
                eprintln!("error: series needs --patch (a format-patch file or an mbox series; repeatable)");
                2
            } else {
                devloop::series(&target, &reports)
            }
        }
        Cmd::Matrix(args) => matrix::matrix(&args),
    }
}

fn fail(e: &harness::Error) -> i32 {
    eprintln!("error: {e}");
    if let harness::Error::BootPanic { tail, .. } = e {
        eprintln!("last console lines:");
        for line in tail {
            eprintln!("  {line}");
        }
    }
    e.exit_code()
}

/// Print each result as it arrives.
fn live(event: &Event) {
    match event {
        Event::Hello {
            kernel_release,
            cases,
            ..
        } => {
            eprintln!("agent up on {kernel_release}, {} cases", cases.len())
        }
        Event::Result(r) => {
            eprintln!(
                "  {:5}  {} ({} ms)",
                table::verdict_name(r.verdict),
                r.case,
                r.duration_ms
            )
        }
        Event::Start { .. } | Event::Coverage { .. } | Event::Done => {}
    }
}

fn run(args: &RunArgs) -> i32 {
    let partial = !args.target.cases.is_empty() || args.target.shard.is_some();
    let policy = match Policy::new(args.bless, partial) {
        Ok(p) => p,
        Err(e) => return fail(&e),
    };
    let run = match harness::run::run(&args.target.request(), &mut live) {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };
    let code = conclude(&run, policy);
    let code = match coverage::print(&run) {
        0 => code,
        e => e,
    };
    match args.reports.write(&[&run], None) {
        0 => code,
        e => e,
    }
}

/// Print a run, settle its snapshot (compare, or write with --bless), and say how it ended:
/// what `run` and `replay` share.
fn conclude(run: &Run, policy: Policy) -> i32 {
    print_run(run);
    let settled = match policy.settle(run) {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    print_settled(run, &settled);
    if let Settled::Compared(Comparison::Differs { path, .. }) = &settled {
        eprintln!("error: {}", harness::Error::SnapshotMismatch(path.clone()));
    }
    snapshot::exit_code(run, Some(&settled))
}

/// One run's snapshot line(s): written, matched (and what it does not know), missing, or the
/// diff.
fn print_settled(run: &Run, settled: &Settled) {
    match settled {
        Settled::Written(p) => println!("snapshot written: {}", p.display()),
        Settled::Compared(Comparison::Match { unknown }) => {
            println!("snapshot: matches {}", snapshot::name_of(run));
            if !unknown.is_empty() {
                let more = if unknown.len() > 5 {
                    format!(" and {} more", unknown.len() - 5)
                } else {
                    String::new()
                };
                println!(
                    "snapshot: not in it (not compared): {}{more}",
                    unknown[..unknown.len().min(5)].join(", ")
                );
            }
        }
        Settled::Compared(Comparison::Missing(p)) => println!(
            "snapshot: none for these cases at {} (--bless writes it)",
            p.display()
        ),
        Settled::Compared(Comparison::Differs { diff, .. }) => println!("{diff}"),
    }
}

fn replay(dir: &std::path::Path, reports: &Reports, with_coverage: bool) -> i32 {
    match harness::results::replay::replay(dir) {
        Ok(run) => match (
            conclude(&run, Policy::Compare),
            if with_coverage {
                coverage::print(&run)
            } else {
                0
            },
            reports.write(&[&run], None),
        ) {
            (code, 0, 0) => code,
            (_, 0, e) | (_, e, _) => e,
        },
        Err(e) => fail(&e),
    }
}

/// What `git bisect run` runs for each step: this program's hidden `bisect-step`.
fn bisect_step_command() -> Vec<String> {
    vec![
        std::env::current_exe()
            .unwrap_or_else(|_| "xtask".into())
            .to_string_lossy()
            .into_owned(),
        "bisect-step".into(),
    ]
}

fn kernel_build(source: &Source) -> i32 {
    let started = std::time::Instant::now();
    match harness::kernel::build::build(&source.request(), &harness::env::cache::dir()) {
        Ok(built) => {
            println!("{}", table::identity(&built.kernel.identity, &"built"));
            println!("bzImage: {}", built.kernel.bzimage.display());
            println!("build log: {}", built.dir.join("build.log").display());
            let what = if built.rebuilt { "built" } else { "up to date" };
            println!("{what} in {:.1} s", started.elapsed().as_secs_f64());
            0
        }
        Err(e) => fail(&e),
    }
}

fn print_run(run: &Run) {
    println!();
    println!("{}", table::identity(&run.identity, &run.mode));
    print!("{}", table::table(&run.results));
    println!("{}", table::totals(&run.results));
    for r in &run.results {
        let details = table::details(r);
        if !details.is_empty() {
            print!("\n{details}");
        }
    }
    if let Some(why) = &run.died {
        println!("the guest did not finish: {why}");
    }
    println!("artifacts: {}", run.artifacts.display());
}

/// The tidy gate first (it takes seconds and fails fastest), then unit tests, then the
/// end-to-end suite.
fn test(full: bool) -> i32 {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let root = harness::env::cache::workspace_root();
    // End-to-end tests side by side, one per core: most of their time is spent waiting
    // (boot and case timeouts, kernel timers, downloads), and each builds or boots what it
    // shares under the cache's locks. The throughput suite measures speed: alone.
    let threads = format!(
        "--test-threads={}",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let mut side_by_side: Vec<&str> = vec![
        "test",
        "--package",
        "e2e",
        "--test",
        "e2e",
        "--test",
        "kernels",
        "--test",
        "devloop",
        "--",
        &threads,
    ];
    let mut alone: Vec<&str> = vec![
        "test",
        "--package",
        "e2e",
        "--test",
        "throughput",
        "--",
        "--test-threads=1",
    ];
    if full {
        side_by_side.push("--include-ignored");
        alone.push("--include-ignored");
    }
    let steps: [(&str, &[&str]); 6] = [
        ("tidy: rustfmt", &["fmt", "--all", "--check"]),
        (
            "tidy: clippy",
            &[
                "clippy",
                "--workspace",
                "--all-targets",
                "--quiet",
                "--",
                "-D",
                "warnings",
            ],
        ),
        // RUSTDOCFLAGS below: a doc link that no longer resolves fails the gate.
        (
            "tidy: rustdoc links",
            &["doc", "--workspace", "--no-deps", "--quiet"],
        ),
        (
            "unit and tidy tests",
            &[
                "test",
                "--package",
                "proto",
                "--package",
                "guest",
                "--package",
                "harness",
                "--package",
                "xtask",
            ],
        ),
        ("end-to-end suite", &side_by_side),
        ("end-to-end throughput", &alone),
    ];
    for (what, args) in steps {
        eprintln!("== {what}: cargo {}", args.join(" "));
        let mut cmd = Command::new(&cargo);
        cmd.args(args).current_dir(&root);
        if args[0] == "doc" {
            cmd.env("RUSTDOCFLAGS", "-D rustdoc::broken_intra_doc_links");
        }
        let ok = cmd.status().is_ok_and(|s| s.success());
        if !ok {
            eprintln!("error: {what} failed");
            return 1;
        }
    }
    0
}

/// `bench`: every loop of one kernel in one table, each against the floor (a boot that runs
/// no case) measured in the same rounds; with `all`, validate and the matrix too.
fn bench(target: &Target, runs: u32, all: bool, clean: bool) -> i32 {
    let spec = match all {
        true => {
            match harness::validate::targets::resolve("libfuse", &[], &harness::env::cache::dir()) {
                Ok(s) => Some(s),
                Err(e) => return fail(&e),
            }
        }
        false => None,
    };
    let request = target.request();
    let jobs = request
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    eprintln!("warm-up run, then {runs} paired rounds");
    let table =
        harness::loops::bench::table(&request, runs, jobs, spec.as_ref(), &mut |what, v| {
            eprintln!("  {what}: {v:.2}")
        });
    let mut table = match table {
        Ok(t) => t,
        Err(e) => return fail(&e),
    };
    // Last, each timed once as a child process, so as not to share the CPU with a round
    // (the suite boots kernels of its own).
    let mut once = |what: &str, measured: Result<f64, String>| match measured {
        Ok(secs) => table.rows.push(harness::loops::bench::Row {
            what: what.into(),
            values: vec![secs],
            unit: "s",
            against_floor: true,
        }),
        Err(why) => eprintln!("{what}: not measured: {why}"),
    };
    if all {
        once("test suite warm: `cargo xtask test`", test_suite());
    }
    if clean {
        once(
            "first run: `cargo xtask run`, empty cache and target dir",
            first_run(&request),
        );
    }
    println!("{}", table.render());
    0
}

/// `cargo xtask <args>` in a child process, timed: what `bench` cannot time from inside.
fn xtask_child() -> Command {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(harness::env::cache::workspace_root())
        .args(["run", "--quiet", "--package", "xtask", "--"]);
    cmd
}

/// Run `cmd` and time it: its seconds when its exit code is `ok`, else the code and its
/// last line of stderr.
fn timed(mut cmd: Command, ok: impl Fn(Option<i32>) -> bool) -> Result<f64, String> {
    let started = std::time::Instant::now();
    let out = cmd.output().map_err(|e| e.to_string())?;
    match ok(out.status.code()) {
        true => Ok(started.elapsed().as_secs_f64()),
        false => Err(format!(
            "exit {:?}: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        )),
    }
}

/// `cargo xtask test` as CI runs it, on the caches as they are: its time, or why it failed.
fn test_suite() -> Result<f64, String> {
    let mut cmd = xtask_child();
    cmd.arg("test");
    timed(cmd, |code| code == Some(0))
}

/// `cargo xtask run` (on `request`'s kernel) as a first run: an empty cache (`FPT_CACHE`) and
/// an empty target directory, so xtask, the agent, the kernel's fetch and everything else a
/// new user's first run does are timed; QEMU and the crates already downloaded stay.
fn first_run(request: &Request) -> Result<f64, String> {
    let scratch = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut cmd = xtask_child();
    cmd.env("FPT_CACHE", scratch.path().join("cache"))
        .env("CARGO_TARGET_DIR", scratch.path().join("target"))
        .arg("run");
    match &request.kernel {
        KernelChoice::Debian(series) => cmd.args(["--kernel", &format!("debian:{series}")]),
        KernelChoice::Host => cmd.args(["--kernel", "host"]),
        // Another kernel (a path, a build) is the default's first run.
        _ => &mut cmd,
    };
    // Exit 3 (snapshot differs) is still a whole run; anything above is not.
    timed(cmd, |code| matches!(code, Some(0..=3)))
}

/// `bench --validate`: with --clean, every built-in target fetched and built afresh, timed;
/// then `runs` warm validations of one target on one kernel, command to report.
fn bench_validate(target: &Target, server: &str, runs: u32, clean: bool) -> i32 {
    let cache = harness::env::cache::dir();
    if clean {
        harness::validate::targets::forget_built(&cache);
        let started = std::time::Instant::now();
        for (name, _) in harness::validate::targets::BUILT_IN {
            let one = std::time::Instant::now();
            if let Err(e) = harness::validate::targets::resolve(name, &[], &cache) {
                return fail(&e);
            }
            println!(
                "fetch and build {name}: {:.1} s",
                one.elapsed().as_secs_f64()
            );
        }
        println!(
            "every built-in target, fetched and built: {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    let spec = match harness::validate::targets::resolve(server, &[], &cache) {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    let mut times = Vec::new();
    for i in 0..=runs {
        let started = std::time::Instant::now();
        if let Err(e) = harness::validate::validate(&spec, &[target.request()], &mut |_| {}) {
            return fail(&e);
        }
        // The first run warms the caches (agent, kernel, virtiofsd); it is not counted.
        if i > 0 {
            times.push(started.elapsed().as_secs_f64());
            println!(
                "validate {server} on {}: {:.1} s",
                target.kernel(),
                times[times.len() - 1]
            );
        }
    }
    let (median, min, max) = harness::loops::stats::spread(&times);
    println!("validate, one target on one kernel, warm: median {median:.1} s, min {min:.1} s, max {max:.1} s");
    0
}

fn bench_kernel_build(target: &Target, clean: bool) -> i32 {
    match harness::loops::bench::kernel_build(
        &target.source.request(),
        &target.request(),
        clean,
        &bisect_step_command(),
        &mut |l| println!("{l}"),
    ) {
        Ok(()) => 0,
        Err(e) => fail(&e),
    }
}

fn soak(target: &Target, runs: u32) -> i32 {
    let soak = harness::loops::soak::soak(&target.request(), runs, &mut |i, run| {
        let first = run
            .timings
            .first_result_after
            .map_or(0.0, |d| d.as_secs_f64());
        println!(
            "run {i}/{runs}: {} | guest {:.1} s (first result after {first:.1} s)",
            table::totals(&run.results),
            run.timings.guest_wall.as_secs_f64()
        );
    });
    let soak = match soak {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    for (case, outcomes) in soak.flaky() {
        println!("\nflaky: {case}");
        for (outcome, n) in outcomes {
            println!("  {n}x {}", outcome.replace('\n', "\n      "));
        }
    }
    println!(
        "\nQEMU processes left running: {}; runs with complete artifacts: {}/{runs}",
        soak.qemu_left, soak.complete
    );
    for (case, (worst, timeout)) in &soak.downs {
        println!("{case}: crash/hang reported at most {worst:.1} s after the case started (its timeout: {timeout} s)");
    }
    let (median, min, max) = harness::loops::stats::spread(&soak.guest_secs);
    println!(
        "{runs} runs of {} cases: {} flaky; guest time min {min:.1} s, median {median:.1} s, max {max:.1} s",
        soak.outcomes.len(),
        soak.flaky().len(),
    );
    if soak.ok() {
        0
    } else {
        1
    }
}

fn repro(
    target: &Target,
    runs: u32,
    same_boot: bool,
    server: Option<&str>,
    args: &[String],
) -> i32 {
    if target.cases.len() != 1 {
        eprintln!("error: repro takes exactly one --case");
        return 2;
    }
    let mut request = target.request();
    if let Some(server) = server {
        match harness::validate::targets::resolve(server, args, &harness::env::cache::dir()) {
            Ok(spec) => request.validate = Some(spec),
            Err(e) => return fail(&e),
        }
    }
    let args: Vec<String> = std::env::args().skip(2).collect();
    let rerun = harness::loops::repro::rerun_command(&args);
    let outcome =
        harness::loops::repro::repro(&request, runs, same_boot, &rerun, &mut |round, run| {
            println!("run {round}: {}", table::totals(&run.results));
        });
    match outcome {
        Ok(harness::loops::repro::Repro::Clean { .. }) => {
            println!(
                "{}: no failure and no kernel report in {runs} runs",
                target.cases[0]
            );
            0
        }
        Ok(harness::loops::repro::Repro::Hit {
            round,
            run,
            case,
            how,
        }) => {
            let r = run
                .results
                .iter()
                .find(|r| r.case == case)
                .expect("the hit is a result");
            println!(
                "run {round}: {case} {}: {}",
                table::verdict_name(r.verdict),
                r.reason.lines().next().unwrap_or("")
            );
            println!("{how}\nartifacts: {}", run.artifacts.display());
            1
        }
        Err(e) => fail(&e),
    }
}

/// The catalog, as the built agent reports it.
fn cases(markdown: bool) -> i32 {
    let catalog = match harness::boot::agent::build_with_catalog() {
        Ok((_, c)) => c,
        Err(e) => return fail(&e),
    };
    if markdown {
        let facts_path = harness::env::cache::workspace_root().join("docs/kernel-facts.md");
        let facts = match std::fs::read_to_string(&facts_path) {
            Ok(f) => f,
            Err(e) => return fail(&harness::Error::io(facts_path.display(), e)),
        };
        let uapi_path = harness::env::cache::workspace_root().join("docs/uapi-7.46.md");
        let uapi = match std::fs::read_to_string(&uapi_path) {
            Ok(f) => f,
            Err(e) => return fail(&harness::Error::io(uapi_path.display(), e)),
        };
        let uapi = match proto::catalog::uapi_coverage(&catalog, &uapi) {
            Ok(u) => u,
            // The name the file cites (docs/uapi-7.46.md names the row).
            Err(why) => return fail(&harness::Error::UnknownCase(why)),
        };
        print!("{}", proto::catalog::markdown(&catalog));
        print!("{}", proto::catalog::coverage(&catalog, &facts));
        print!("{uapi}");
        return 0;
    }
    for c in &catalog {
        let one_line = proto::catalog::one_line;
        println!(
            "{}\n  rule: {}\n  verdict: {}\n  timeout: {} s",
            c.name,
            one_line(&c.rule),
            one_line(&c.verdict_rule),
            c.timeout_secs
        );
    }
    0
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_parses() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }

    /// `--bless` writes whole snapshots: with `--case` or `--shard` it is refused (exit 2)
    /// before anything is built, fetched or run, and no snapshot changes.
    #[test]
    fn bless_of_part_of_the_catalog_is_refused_before_anything_runs() {
        use clap::Parser;
        let snapshots = harness::env::cache::workspace_root().join("tests/snapshots");
        let before = listing(&snapshots);
        for line in [
            "validate --server fuser --case validate.round_trip --bless",
            "validate --server /no/such/server --kernel host --case validate.round_trip --bless",
            "run --kernel host --case init.offer --bless",
            "run --kernel host --shard 1/2 --bless",
            "matrix --kernel host --kernel debian:6.12 --case init.offer --bless",
        ] {
            let args = std::iter::once("xtask").chain(line.split(' '));
            let cli = super::Cli::try_parse_from(args).expect(line);
            assert_eq!(super::dispatch(cli), 2, "{line}");
        }
        assert_eq!(listing(&snapshots), before, "a snapshot changed");
    }

    /// Bad input that is found before any work has a code of its own.
    #[test]
    fn a_series_patch_that_does_not_exist_has_its_own_code() {
        use clap::Parser;
        let cli = super::Cli::try_parse_from(["xtask", "series", "--patch", "/no/such/fix.patch"])
            .unwrap();
        assert_eq!(super::dispatch(cli), 34);
    }

    /// Every snapshot file with its contents.
    fn listing(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                out.extend(listing(&path));
            } else {
                out.push((path.clone(), std::fs::read(&path).unwrap()));
            }
        }
        out.sort();
        out
    }
}
