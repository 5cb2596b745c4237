//! `--coverage`: after a run whose kernel was built with gcov, the coverage report made
//! (`harness::results::coverage::of_run`) and printed: the per-file table, each patch's
//! executed and unexecuted lines, where the files are.

use harness::results::coverage::{self, report};
use harness::results::record::Run;

/// Report `run`'s coverage, if it was a coverage run; an exit code (0, or the error's).
pub fn print(run: &Run) -> i32 {
    print_with(run, None)
}

/// A step of `series`: the base's table, then for each patch only its own lines.
pub fn print_step(run: &Run, patch: usize) -> i32 {
    print_with(run, (patch > 0).then_some(patch))
}

fn print_with(run: &Run, only_patch: Option<usize>) -> i32 {
    let cov = match coverage::of_run(&run.artifacts) {
        Ok(Some(c)) => c,
        Ok(None) => return 0,
        Err(e) => return crate::fail::fail(&e),
    };
    if let Some(n) = only_patch {
        let last = cov.patches.get(n - 1..).unwrap_or_default();
        print!("{}", coverage::patch::describe(last, n));
        return 0;
    }
    println!();
    println!(
        "coverage of {} cases ({}):",
        cov.report.cases, run.identity.source
    );
    print!("{}", report::table(&cov.report.files));
    if !cov.patches.is_empty() {
        println!();
        print!("{}", coverage::patch::describe(&cov.patches, 1));
    }
    let dir = &cov.report.dir;
    println!(
        "coverage: {} (HTML), {} {} {} (per line: the cases that ran it)",
        dir.join(report::HTML).display(),
        dir.join(report::SUMMARY_JSON).display(),
        dir.join(report::COBERTURA).display(),
        dir.join(report::LINES_JSON).display(),
    );
    if cov.saved_as_base {
        println!("coverage: kept as the base tree's, for --case reaches-patch");
    }
    0
}

/// `matrix --coverage`, `validate --coverage`: refused before anything runs unless every
/// kernel is built from source (`src:...`).
pub fn refuse(kernels: &[String], coverage: bool) -> Result<(), harness::Error> {
    for k in kernels {
        harness::run::refuse_coverage(&harness::run::Request {
            kernel: harness::kernel::KernelChoice::parse(k),
            coverage,
            ..Default::default()
        })?;
    }
    Ok(())
}

/// Several coverage runs (a matrix's columns, a validate's kernels): their line coverage
/// side by side, then where each run's report is. An exit code (0, or the error's).
pub fn print_side_by_side(runs: &[(String, &Run)]) -> i32 {
    let mut columns = Vec::new();
    let mut dirs = Vec::new();
    for (label, run) in runs {
        match coverage::of_run(&run.artifacts) {
            Ok(Some(cov)) => {
                columns.push((label.clone(), cov.report.files));
                dirs.push((label, cov.report.dir));
            }
            Ok(None) => {}
            Err(e) => return crate::fail::fail(&e),
        }
    }
    if columns.is_empty() {
        return 0;
    }
    println!("\ncoverage of fs/fuse, lines executed:");
    print!("{}", report::side_by_side(&columns));
    for (label, dir) in dirs {
        println!("coverage: {label}: {}", dir.join(report::HTML).display());
    }
    0
}

/// `bench --coverage`: the coverage loop's rows, printed as `bench` prints its table.
pub fn bench(target: &harness::run::Request, runs: u32) -> i32 {
    eprintln!("warm-up runs, then {runs} rounds");
    match harness::loops::bench::coverage_table(target, runs, &mut |what, v| {
        eprintln!("  {what}: {v:.2}")
    }) {
        Ok(table) => {
            print!("{}", table.render());
            0
        }
        Err(e) => crate::fail::fail(&e),
    }
}
