//! `--coverage`: after a run whose kernel was built with gcov, the coverage report made
//! (`harness::results::coverage::of_run`) and printed: the per-file table, each patch's
//! executed and unexecuted lines, where the files are.

use harness::results::coverage::{self, report};
use harness::results::record::Run;

/// Report `run`'s coverage, if it was a coverage run; an exit code (0, or the error's).
pub fn print(run: &Run) -> i32 {
    let cov = match coverage::of_run(&run.artifacts) {
        Ok(Some(c)) => c,
        Ok(None) => return 0,
        Err(e) => return crate::fail(&e),
    };
    println!();
    println!(
        "coverage of {} cases ({}):",
        cov.report.cases, run.identity.source
    );
    print!("{}", report::table(&cov.report.files));
    if !cov.patches.is_empty() {
        println!();
        print!("{}", coverage::patch::describe(&cov.patches));
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
