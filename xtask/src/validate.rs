//! `cargo xtask validate`: a server or library under validation, over each transport, on
//! each kernel; the harness runs it, this prints the table, settles the snapshots, writes
//! the reports and the page.

use clap::ValueEnum;
use harness::kernel::KernelChoice;
use harness::results::record::Run;
use harness::results::snapshot::{self, Comparison, Policy, Settled};
use harness::results::table;
use harness::run::Request;

use crate::{coverage, fail, print_settled, Reports};

/// What `validate --expect` holds a target to.
#[derive(Clone, Copy, ValueEnum)]
pub enum ExpectArg {
    /// Every path passed through in the target's snapshot stays passed through.
    Passthrough,
}

/// `validate --transport`.
#[derive(Clone, Copy, ValueEnum)]
pub enum TransportArg {
    /// read(2) and write(2) on /dev/fuse.
    Dev,
    /// FUSE over io_uring.
    Uring,
}

/// `cargo xtask validate`; `(bless, coverage, profile, transports, source)`: its switches,
/// the profile of a `src:` kernel, the transports, and a libfuse source tree.
pub fn validate(
    server: &str,
    kernels: &[String],
    cases: &[String],
    (bless, coverage, profile, transports, source): (
        bool,
        bool,
        Option<String>,
        Vec<TransportArg>,
        Option<std::path::PathBuf>,
    ),
    expect: Option<ExpectArg>,
    reports: &Reports,
    args: &[String],
) -> i32 {
    let policy = match Policy::new(bless, !cases.is_empty()) {
        Ok(p) => p,
        Err(e) => return fail(&e),
    };
    if let Err(e) = coverage::refuse(kernels, coverage) {
        return fail(&e);
    }
    let cache = harness::env::cache::dir();
    let spec = match &source {
        Some(tree) => harness::validate::targets::resolve_source(server, tree, &cache),
        None => harness::validate::targets::resolve(server, args, &cache),
    };
    let spec = match spec {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    // `debian:all`, as the matrix takes it: every series, one column each.
    let kernels = match harness::loops::matrix::expand(kernels) {
        Ok(k) => k,
        Err(e) => return fail(&e),
    };
    let mut requests = Vec::new();
    for k in &kernels {
        let mut kernel = KernelChoice::parse(k);
        if let KernelChoice::Build(b) = &mut kernel {
            b.profile = profile.clone();
        }
        requests.push(Request {
            kernel,
            cases: cases.to_vec(),
            coverage,
            ..Default::default()
        });
    }
    // Each transport in turn, each over every kernel: a column per kernel and transport.
    let mut runs = Vec::new();
    for t in &transports {
        let on = spec.clone().on(match t {
            TransportArg::Dev => proto::validate::Transport::Dev,
            TransportArg::Uring => proto::validate::Transport::Uring,
        });
        let done = harness::validate::validate(&on, &requests, &mut |run| {
            println!(
                "{} ({}): {}",
                run.kernel_release,
                run.mode,
                table::totals(&run.results)
            );
        });
        match done {
            Ok(r) => runs.extend(r),
            Err(e) => return fail(&e),
        }
    }
    if let Some(ExpectArg::Passthrough) = expect {
        for run in &mut runs {
            match harness::validate::expect_passthrough(run) {
                Ok(failed) if !failed.is_empty() => println!(
                    "{}: no longer passed through (--expect passthrough): {}",
                    run.kernel_release,
                    failed.join(", ")
                ),
                Ok(_) => {}
                Err(e) => return fail(&e),
            }
        }
    }
    println!();
    print!("{}", harness::validate::table(&spec, &runs));
    let mut differs = false;
    for run in &runs {
        println!("artifacts: {}", run.artifacts.display());
        for r in run.results.iter().filter(|r| !r.verdict.is_ok()) {
            println!(
                "  {} {}: {}",
                r.case,
                table::verdict_name(r.verdict),
                r.reason.lines().next().unwrap_or("")
            );
        }
        match policy.settle(run) {
            Ok(settled) => {
                print_settled(run, &settled);
                if let Settled::Compared(Comparison::Differs { path, .. }) = &settled {
                    eprintln!("error: {}", harness::Error::SnapshotMismatch(path.clone()));
                    differs = true;
                }
            }
            Err(e) => return fail(&e),
        }
    }
    // One kernel: its whole coverage report; several: their lines side by side.
    let covered = match runs.as_slice() {
        [run] => coverage::print(run),
        _ => coverage::print_side_by_side(
            &runs
                .iter()
                .map(|r| (harness::kernel::series(&r.kernel_release), r))
                .collect::<Vec<_>>(),
        ),
    };
    if covered != 0 {
        return covered;
    }
    let all: Vec<&Run> = runs.iter().collect();
    let written = reports.write(&all, None);
    // As `run`: a failed case first (1), then a snapshot difference (3).
    let code = runs
        .iter()
        .map(|r| snapshot::exit_code(r, None))
        .max()
        .unwrap_or(0);
    // The columns side by side as a page: our verdicts, and the library's own tests where
    // validate.library_suite ran, per kernel.
    let heading = format!("validate {}: {}", spec.target, spec.version);
    let page = harness::loops::matrix::of_runs(runs, "validate", &heading);
    match page {
        Ok(m) => println!("page: {}", m.dir.join("validate.html").display()),
        Err(e) => return fail(&e),
    }
    match code {
        0 if written != 0 => written,
        0 if differs => 3,
        code => code,
    }
}
