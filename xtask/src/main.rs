//! `cargo xtask`: the command line. Parsing and printing only; the work is in `harness`.

use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use harness::kbuild::BuildRequest;
use harness::kernel::KernelChoice;
use harness::qemu::{Accel, Machine};
use harness::run::{Request, Run};
use harness::snapshot::{self, Comparison};
use harness::{report, Event, Verdict};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Conformance and regression harness for Linux FUSE passthrough")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Boot a kernel (Debian's 6.12 cloud kernel by default), run the cases, compare with the snapshot.
    Run(RunArgs),
    /// Unit tests, then the end-to-end suite: Debian 6.12 and 6.1 in QEMU, then host mode.
    Test,
    /// Time a warm run and its parts: boot to first result, per-case durations, image size.
    /// With --kernel-build: time kernel builds instead (unchanged, after a touch, after a
    /// one-line change plus boot and suite; with --clean also a clean build).
    Bench {
        #[command(flatten)]
        target: Target,
        /// How many runs to time.
        #[arg(long, default_value_t = 3)]
        runs: u32,
        /// Time the kernel build loop on the default source instead of a run.
        #[arg(long)]
        kernel_build: bool,
        /// With --kernel-build: also time a clean build (deletes that build's cache entry).
        #[arg(long)]
        clean: bool,
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
    },
    /// Build a kernel under test from source.
    Kernel {
        #[command(subcommand)]
        command: KernelCmd,
    },
    /// List every case with its group, rule and verdict rule.
    Cases {
        /// Print the Markdown table of docs/cases.md instead.
        #[arg(long)]
        markdown: bool,
    },
}

#[derive(Subcommand)]
enum KernelCmd {
    /// Configure and build a bzImage (a no-op when nothing changed); prints its identity.
    Build(Source),
}

/// A kernel built from source; any of these options makes `run` build first.
#[derive(clap::Args, Clone, Default)]
struct Source {
    /// A kernel tree or git checkout (never modified); default: Debian's linux-source-6.12.
    #[arg(long)]
    src: Option<PathBuf>,
    /// A git format-patch file or mbox series, applied in order (repeatable).
    #[arg(long = "patch")]
    patches: Vec<PathBuf>,
    /// Config profile: minimal (default), debug, kasan (images/kernel/profiles/).
    #[arg(long)]
    profile: Option<String>,
    /// An extra config fragment merged last (repeatable).
    #[arg(long = "fragment")]
    fragments: Vec<PathBuf>,
}

impl Source {
    fn given(&self) -> bool {
        self.src.is_some() || !self.patches.is_empty() || self.profile.is_some() || !self.fragments.is_empty()
    }

    fn request(&self) -> BuildRequest {
        BuildRequest {
            src: self.src.clone(),
            patches: self.patches.clone(),
            profile: self.profile.clone(),
            fragments: self.fragments.clone(),
            progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
        }
    }
}

#[derive(clap::Args, Clone)]
struct Target {
    /// `debian-6.12` (default), `debian-6.1`, `host` (this kernel, no VM), or a bzImage path.
    #[arg(long, default_value = KernelChoice::DEFAULT)]
    kernel: String,
    #[command(flatten)]
    source: Source,
    /// lib/modules/<release> of the --kernel bzImage, if it needs modules (fuse, overlay, ...).
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
    /// vCPUs of the guest (default 1: multi-vCPU TCG can oops the kernel's code patching).
    #[arg(long)]
    cpus: Option<u32>,
}

#[derive(clap::Args)]
struct RunArgs {
    #[command(flatten)]
    target: Target,
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
enum MachineArg {
    Microvm,
    Q35,
}

impl Target {
    fn request(&self) -> Request {
        let kernel = if self.source.given() {
            KernelChoice::Build(self.source.request())
        } else {
            KernelChoice::parse(&self.kernel)
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
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    harness::interrupt::install();
    let code = match cli.command {
        Cmd::Run(args) => run(&args),
        Cmd::Test => test(),
        Cmd::Bench { target, kernel_build: true, clean, .. } => bench_kernel_build(&target, clean),
        Cmd::Bench { target, runs, .. } => bench(&target, runs),
        Cmd::Soak { target, runs } => soak(&target, runs),
        Cmd::Repro { target, runs, same_boot } => repro(&target, runs, same_boot),
        Cmd::Kernel { command: KernelCmd::Build(source) } => kernel_build(&source),
        Cmd::Cases { markdown } => {
            print!("{}", if markdown { cases_markdown() } else { cases_text() });
            0
        }
    };
    ExitCode::from(code as u8)
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
        Event::Hello { kernel_release, cases, .. } => {
            eprintln!("agent up on {kernel_release}, {} cases", cases.len())
        }
        Event::Result(r) => {
            eprintln!("  {:5}  {} ({} ms)", report::verdict_name(r.verdict), r.case, r.duration_ms)
        }
        Event::Start { .. } | Event::Done => {}
    }
}

fn run(args: &RunArgs) -> i32 {
    let run = match harness::run::run(&args.target.request(), &mut live) {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };
    print_run(&run);
    if args.bless {
        if !args.target.cases.is_empty() {
            eprintln!("error: --bless writes the whole snapshot: run every case (no --case)");
            return 2;
        }
        match snapshot::write(&run.kernel_release, &run.results) {
            Ok(p) => println!("snapshot written: {}", p.display()),
            Err(e) => return fail(&e),
        }
    } else {
        match snapshot::compare(&run.kernel_release, &run.results) {
            Comparison::Match { unknown } => {
                println!("snapshot: matches {}", snapshot::name(&run.kernel_release));
                if !unknown.is_empty() {
                    let more = if unknown.len() > 5 { format!(" and {} more", unknown.len() - 5) } else { String::new() };
                    println!("snapshot: not in it (not compared): {}{more}", unknown[..unknown.len().min(5)].join(", "));
                }
            }
            Comparison::Missing(p) => println!("snapshot: none for these cases at {} (--bless writes it)", p.display()),
            Comparison::Differs { path, diff } => {
                println!("{diff}");
                let e = harness::Error::SnapshotMismatch(path);
                if run.all_ok() {
                    return fail(&e);
                }
                eprintln!("error: {e}");
            }
        }
    }
    match harness::interrupt::requested() {
        Some(sig) => 128 + sig,
        None if run.all_ok() => 0,
        None => 1,
    }
}

fn kernel_build(source: &Source) -> i32 {
    let started = std::time::Instant::now();
    match harness::kbuild::build(&source.request(), &harness::cache::dir()) {
        Ok(built) => {
            println!("{}", report::identity(&built.kernel.identity, "built"));
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
    println!("{}", report::identity(&run.identity, &run.mode));
    print!("{}", report::table(&run.results));
    println!("{}", report::totals(&run.results));
    for r in run.results.iter().filter(|r| r.reason.contains('\n')) {
        println!("\n{}: {}", r.case, r.reason.replace('\n', "\n  "));
    }
    if let Some(why) = &run.died {
        println!("the guest did not finish: {why}");
    }
    println!("artifacts: {}", run.artifacts.display());
}

fn test() -> i32 {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let root = harness::cache::workspace_root();
    let steps: [(&str, &[&str]); 2] = [
        ("unit tests", &["test", "--package", "guest", "--package", "harness", "--package", "xtask"]),
        // One at a time: each boots a VM, and two TCG guests on two cores slow each other.
        ("end-to-end suite", &["test", "--package", "e2e", "--", "--test-threads=1"]),
    ];
    for (what, args) in steps {
        eprintln!("== {what}: cargo {}", args.join(" "));
        let ok = Command::new(&cargo).args(args).current_dir(&root).status().is_ok_and(|s| s.success());
        if !ok {
            eprintln!("error: {what} failed");
            return 1;
        }
    }
    0
}

fn bench(target: &Target, runs: u32) -> i32 {
    let req = target.request();
    // A first run warms the caches (kernel download, agent build); it is not counted.
    eprintln!("warm-up run");
    if let Err(e) = harness::run::run(&req, &mut |_| {}) {
        return fail(&e);
    }
    let mut totals = Vec::new();
    let mut last = None;
    for i in 1..=runs {
        match harness::run::run(&req, &mut |_| {}) {
            Ok(run) => {
                let t = &run.timings;
                println!(
                    "run {i}: whole {:.2} s | guest {:.2} s | boot to first result {} | agent build {:.2} s | initramfs {:.3} s | KVM probe {:.2} s",
                    t.total.as_secs_f64(),
                    t.guest_wall.as_secs_f64(),
                    t.first_result_after.map_or("-".into(), |d| format!("{:.2} s", d.as_secs_f64())),
                    t.agent_build.as_secs_f64(),
                    t.initramfs_build.as_secs_f64(),
                    t.accel_probe.as_secs_f64(),
                );
                totals.push(t.total.as_secs_f64());
                last = Some(run);
            }
            Err(e) => return fail(&e),
        }
    }
    let Some(run) = last else { return 0 };
    totals.sort_by(f64::total_cmp);
    println!();
    println!("kernel {} ({})", run.kernel_release, run.mode);
    println!("whole run, warm cache: median {:.2} s, min {:.2} s, max {:.2} s over {runs} runs",
        totals[totals.len() / 2], totals[0], totals[totals.len() - 1]);
    println!("agent binary: {} KiB; initramfs: {} KiB", run.timings.agent_bytes / 1024, run.timings.initramfs_bytes / 1024);
    println!("per-case durations (last run):");
    print!("{}", report::table(&run.results));
    0
}

/// The kernel developer's loop, timed on the tree `--src` names (default: the cached
/// linux-source-6.12, which is ours to touch). fs/fuse/passthrough.c gets its mtime bumped
/// and then one comment line, which is taken out again at the end.
fn bench_kernel_build(target: &Target, clean: bool) -> i32 {
    let cache = harness::cache::dir();
    let mut source = target.source.clone();
    if source.src.is_none() && source.profile.is_none() {
        source.profile = Some("minimal".into());
    }
    let req = BuildRequest { progress: false, ..source.request() };
    let timed = |what: &str| -> Result<harness::kbuild::Built, harness::Error> {
        let started = std::time::Instant::now();
        let built = harness::kbuild::build(&req, &cache)?;
        println!("{what}: {:.1} s", started.elapsed().as_secs_f64());
        Ok(built)
    };
    let result = (|| -> Result<(), harness::Error> {
        if clean {
            let _ = std::fs::remove_dir_all(harness::kbuild::entry_dir(&req, &cache)?);
            timed("clean build")?;
        } else {
            harness::kbuild::build(&req, &cache)?;
        }
        timed("unchanged rebuild")?;
        let file = harness::kbuild::source_dir(&req, &cache)?.join("fs/fuse/passthrough.c");
        let original = std::fs::read(&file).map_err(|e| harness::Error::io(file.display(), e))?;
        std::fs::write(&file, &original).map_err(|e| harness::Error::io(file.display(), e))?;
        timed("rebuild after touching fs/fuse/passthrough.c")?;
        let mut changed = original.clone();
        changed.extend_from_slice(b"/* fpt bench: one-line change */\n");
        std::fs::write(&file, &changed).map_err(|e| harness::Error::io(file.display(), e))?;
        let started = std::time::Instant::now();
        let run = harness::run::run(&Request { kernel: KernelChoice::Build(req.clone()), ..target.request() }, &mut |_| {});
        std::fs::write(&file, &original).map_err(|e| harness::Error::io(file.display(), e))?;
        let run = run?;
        println!("one-line change in fs/fuse, then build + boot + suite: {:.1} s ({})", started.elapsed().as_secs_f64(), report::totals(&run.results));
        Ok(())
    })();
    match result {
        Ok(()) => 0,
        Err(e) => fail(&e),
    }
}

fn soak(target: &Target, runs: u32) -> i32 {
    use std::collections::BTreeMap;
    let req = target.request();
    // case -> each distinct (verdict, observations) seen, with how often.
    let mut seen: BTreeMap<String, BTreeMap<String, u32>> = BTreeMap::new();
    let mut times = Vec::new();
    let mut complete = 0;
    let mut artifact_dirs = Vec::new();
    let mut downs: BTreeMap<String, (f64, u64)> = BTreeMap::new();
    for i in 1..=runs {
        let run = match harness::run::run(&req, &mut |_| {}) {
            Ok(r) => r,
            Err(e) => return fail(&e),
        };
        let has = |f: &str| run.artifacts.join(f).is_file();
        let vm = run.mode.starts_with("qemu");
        if has("results.json") && has("summary.txt") && (!vm || has("findings.json")) {
            complete += 1;
        }
        artifact_dirs.push(run.artifacts.clone());
        let first = run.timings.first_result_after.map_or(0.0, |d| d.as_secs_f64());
        println!(
            "run {i}/{runs}: {} | guest {:.1} s (first result after {first:.1} s)",
            report::totals(&run.results),
            run.timings.guest_wall.as_secs_f64()
        );
        times.push(run.timings.guest_wall.as_secs_f64());
        // How long after its start a case that took the guest down was reported.
        for r in run.results.iter().filter(|r| matches!(r.verdict, Verdict::Hang | Verdict::Crash)) {
            if !r.reason.starts_with("not reached") {
                let timeout = guest::cases::find(&r.case).map_or(0, |c| c.timeout.as_secs());
                let took = r.duration_ms as f64 / 1000.0;
                let worst = downs.entry(r.case.clone()).or_insert((0.0f64, timeout));
                worst.0 = worst.0.max(took);
            }
        }
        for r in &run.results {
            let outcome = format!("{} {}", report::verdict_name(r.verdict), snapshot::render(std::slice::from_ref(r)).trim_end());
            *seen.entry(r.case.clone()).or_default().entry(outcome).or_default() += 1;
        }
    }
    let flaky: Vec<_> = seen.iter().filter(|(_, outcomes)| outcomes.len() > 1).collect();
    for (case, outcomes) in &flaky {
        println!("\nflaky: {case}");
        for (outcome, n) in outcomes.iter() {
            println!("  {n}x {}", outcome.replace('\n', "\n      "));
        }
    }
    // Any QEMU still running one of these runs' images outlived the harness.
    let left = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains("qemu-system") && artifact_dirs.iter().any(|d| c.contains(&*d.to_string_lossy())))
        .count();
    println!("\nQEMU processes left running: {left}; runs with complete artifacts: {complete}/{runs}");
    for (case, (worst, timeout)) in &downs {
        println!("{case}: crash/hang reported at most {worst:.1} s after the case started (its timeout: {timeout} s)");
    }
    times.sort_by(f64::total_cmp);
    println!(
        "{runs} runs of {} cases: {} flaky; guest time min {:.1} s, median {:.1} s, max {:.1} s",
        seen.len(),
        flaky.len(),
        times.first().unwrap_or(&0.0),
        times.get(times.len() / 2).unwrap_or(&0.0),
        times.last().unwrap_or(&0.0)
    );
    if flaky.is_empty() && left == 0 && complete == runs { 0 } else { 1 }
}

fn repro(target: &Target, runs: u32, same_boot: bool) -> i32 {
    let [case] = target.cases.as_slice() else {
        eprintln!("error: repro takes exactly one --case");
        return 2;
    };
    let mut req = target.request();
    let rounds = if same_boot {
        req.cases = vec![case.clone(); runs as usize];
        1
    } else {
        runs
    };
    for round in 1..=rounds {
        let run = match harness::run::run(&req, &mut |_| {}) {
            Ok(r) => r,
            Err(e) => return fail(&e),
        };
        let findings = std::fs::read_to_string(run.artifacts.join("findings.json")).unwrap_or_default();
        let found = run.results.iter().find(|r| r.verdict != harness::Verdict::Pass || findings.trim() != "[]");
        let Some(hit) = found else {
            println!("run {round}/{rounds}: {}", report::totals(&run.results));
            continue;
        };
        // The same command as `run`: repro's own options dropped.
        let mut args = std::env::args().skip(2).peekable();
        let mut again = vec!["run".to_string()];
        while let Some(a) = args.next() {
            match a.as_str() {
                "--runs" => {
                    args.next();
                }
                "--same-boot" => {}
                _ if a.starts_with("--runs=") => {}
                _ => again.push(a),
            }
        }
        let again = again.join(" ");
        let how = format!(
            "{}\nrerun: cargo xtask {again}\nqemu: {}",
            report::identity(&run.identity, &run.mode),
            std::fs::read_to_string(run.artifacts.join("qemu-command.txt")).unwrap_or_default().trim()
        );
        let _ = std::fs::write(run.artifacts.join("repro.txt"), &how);
        println!("run {round}/{rounds}: {} {}: {}", hit.case, report::verdict_name(hit.verdict), hit.reason.lines().next().unwrap_or(""));
        println!("{how}\nartifacts: {}", run.artifacts.display());
        return 1;
    }
    println!("{case}: no failure and no kernel report in {runs} runs");
    0
}

fn cases_text() -> String {
    let mut out = String::new();
    for c in guest::cases::catalog() {
        out.push_str(&format!("{}\n  rule: {}\n  verdict: {}\n  timeout: {} s\n", c.name, one_line(c.rule), one_line(c.verdict_rule), c.timeout.as_secs()));
    }
    out
}

fn cases_markdown() -> String {
    let mut out = String::from(
        "# Cases\n\nGenerated by `cargo xtask cases --markdown`; do not edit by hand.\n\n\
         | case | group | rule | verdict rule |\n|---|---|---|---|\n",
    );
    for c in guest::cases::catalog() {
        out.push_str(&format!("| `{}` | {} | {} | {} |\n", c.name, c.group, one_line(c.rule), one_line(c.verdict_rule)));
    }
    out
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn docs_cases_md_is_current() {
        let path = harness::cache::workspace_root().join("docs/cases.md");
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            on_disk == super::cases_markdown(),
            "docs/cases.md is stale: run `cargo xtask cases --markdown > docs/cases.md`"
        );
    }

    #[test]
    fn the_command_line_parses() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
