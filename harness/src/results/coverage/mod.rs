//! Coverage of a run whose kernel was built with gcov (`--coverage`): which lines of fs/fuse
//! each case executed, and the whole run's per-file and per-function line and branch
//! coverage. Everything here works from the run's saved files (the agent's `coverage`
//! events in `events.jsonl`) and the build's objects, so `replay` makes the same report.
//!
//! - [`gcda`]: each case's counters out of the event log, as `.gcda` files beside the
//!   build's `.gcno` files;
//! - [`lines`]: gcov's own JSON of each case (the tool that wrote the format reads it), one
//!   map of every executable line to its count and the cases that ran it;
//! - [`report`]: the whole run through gcovr (HTML, JSON, Cobertura), and the terminal table;
//! - [`patch`]: a series' changed lines against that map;
//! - [`reach`]: the cases whose base-tree lines a series changes (`--case reaches-patch`).

pub mod gcda;
pub mod lines;
pub mod patch;
pub mod reach;
pub mod report;

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::results::record::Plan;

pub use crate::kernel::CoverageBuild as Build;

/// What coverage covers, relative to the tree: the directory `fuse-gcov.patch` profiles.
pub const PROFILED: &str = "fs/fuse/";

/// A coverage run's whole result.
#[derive(Debug, Clone)]
pub struct Coverage {
    /// The files written and the per-file rows.
    pub report: report::Report,
    /// Every executable line and the cases that ran it.
    pub map: lines::LineMap,
    /// Per patch of the series, what ran its lines (empty without a series).
    pub patches: Vec<patch::PatchCoverage>,
    /// Whether this run's map became the base tree's coverage for `--case reaches-patch`.
    pub saved_as_base: bool,
    /// The build it measured (its tree, source, series), as the run's plan records it.
    pub build: Build,
}

/// The coverage of the run saved in `artifacts`, if it was a coverage run: its counters
/// from each boot's `events.jsonl`, gcov, gcovr, the series' lines. Writes `coverage/`.
pub fn of_run(artifacts: &Path) -> Result<Option<Coverage>> {
    // gcovr runs in the build's tree: every path it is given must stand on its own.
    let artifacts = &artifacts
        .canonicalize()
        .map_err(|e| Error::io(artifacts.display(), e))?;
    let plan: Plan = serde_json::from_str(
        &std::fs::read_to_string(artifacts.join(Plan::FILE))
            .map_err(|e| Error::io(artifacts.join(Plan::FILE).display(), e))?,
    )
    .map_err(|e| Error::coverage("plan.json", Some(Box::new(e))))?;
    let Some(build) = plan.coverage.as_ref() else {
        return Ok(None);
    };
    let boots: Vec<PathBuf> = plan.boots.iter().map(|b| artifacts.join(&b.dir)).collect();
    let counters = gcda::from_logs(&boots)?;
    // A run of no case (`--case none`, or `reaches-patch` that found none) has nothing to
    // report; a run of some that sent nothing is an error, said by the merge below.
    if counters.is_empty() && plan.boots.iter().all(|b| b.cases.is_empty()) {
        return Ok(None);
    }
    let dir = dir(artifacts);
    let cases = gcda::unpack_cases(build, &counters, &dir)?;
    let case_dirs: Vec<PathBuf> = cases.values().map(|(d, _)| d.clone()).collect();
    // The summed report (gcov-tool, gcovr) and the per-case line map (gcov) are apart:
    // side by side.
    let (map, report) = std::thread::scope(|s| {
        let report = s.spawn(|| report::write(build, &case_dirs, &dir));
        let map = lines::map(&cases, &build.tree);
        (map, report.join().expect("the report thread ends"))
    });
    let (map, report) = (map?, report?);
    report::write_lines(&map, &dir)?;
    let patches = patch::judge(&build.series, &map, &build.objects);
    let json = dir.join(patch::PATCHES_JSON);
    std::fs::write(
        &json,
        serde_json::to_string_pretty(&patches).expect("serialises"),
    )
    .map_err(|e| Error::io(json.display(), e))?;
    // The base tree's whole catalog: what `--case reaches-patch` picks from later.
    let saved_as_base = build.series.is_empty() && plan.whole_catalog;
    if saved_as_base {
        reach::save_base(build, &map)?;
    }
    Ok(Some(Coverage {
        report,
        map,
        patches,
        saved_as_base,
        build: build.clone(),
    }))
}

/// The directory of a run's coverage files.
pub fn dir(artifacts: &Path) -> PathBuf {
    artifacts.join("coverage")
}

/// The gcov of the compiler that built the kernel: `gcov-<major>` of `gcc`, else `gcov`.
fn gcov_tool(name: &str) -> Result<String> {
    let out = std::process::Command::new("gcc")
        .arg("-dumpversion")
        .output()
        .map_err(|e| Error::coverage("running gcc -dumpversion", Some(Box::new(e))))?;
    let major = String::from_utf8_lossy(&out.stdout)
        .trim()
        .split('.')
        .next()
        .unwrap_or_default()
        .to_string();
    let versioned = format!("{name}-{major}");
    let found = |t: &str| {
        std::process::Command::new(t)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if found(&versioned) {
        Ok(versioned)
    } else if found(name) {
        Ok(name.to_string())
    } else {
        Err(Error::ToolMissing {
            tool: name.into(),
            fix: "it comes with gcc (`apt-get install gcc`), the compiler that built the kernel"
                .into(),
        })
    }
}

/// Run one of the coverage tools (gcov, gcov-tool, gcovr, cp) to its end: its output, or a
/// coverage error (exit 36) saying `what` and keeping the command's own error, with its
/// stderr, as the cause.
fn run_tool(cmd: &mut std::process::Command, what: &str) -> Result<std::process::Output> {
    crate::env::process::output(cmd).map_err(|e| Error::coverage(what, Some(Box::new(e))))
}
