//! `cargo xtask validate`: a server or library under validation, over each transport, on
//! each kernel; the harness runs it, this prints the table, settles the snapshots, writes
//! the reports and the page.

use harness::loops::validation::{self, Grid};
use harness::results::record::Run;
use harness::results::snapshot::{self, Comparison, Policy, Settled};
use harness::results::table;

use crate::args::{ExpectArg, Reports, TransportArg};
use crate::coverage;
use crate::fail::fail;
use crate::run::print_settled;

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
    let grid = Grid {
        kernels: kernels.to_vec(),
        cases: cases.to_vec(),
        coverage,
        profile,
        transports: transports
            .iter()
            .map(|t| match t {
                TransportArg::Dev => proto::validate::Transport::Dev,
                TransportArg::Uring => proto::validate::Transport::Uring,
            })
            .collect(),
    };
    let ran = validation::run(&spec, &grid, &mut |run| {
        println!(
            "{} ({}): {}",
            run.kernel_release,
            run.mode,
            table::totals(&run.results)
        );
    });
    let mut runs = match ran {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };
    if let Some(ExpectArg::Passthrough) = expect {
        match validation::expect_passthrough(&mut runs) {
            Ok(lost) => {
                for (release, paths) in lost {
                    println!(
                        "{release}: no longer passed through (--expect passthrough): {}",
                        paths.join(", ")
                    );
                }
            }
            Err(e) => return fail(&e),
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
    match validation::page(&spec, runs) {
        Ok(page) => println!("page: {}", page.display()),
        Err(e) => return fail(&e),
    }
    match code {
        0 if written != 0 => written,
        0 if differs => 3,
        code => code,
    }
}
