//! `validate` over a grid: each transport asked for, on every kernel asked for (`debian:all`
//! expanded as the matrix expands it), one run per column; then the columns side by side as
//! a page. What xtask's `validate` used to put together itself.

use std::path::PathBuf;

use proto::validate::{Spec, Transport};

use crate::error::Result;
use crate::kernel::KernelChoice;
use crate::results::record::Run;
use crate::run::Request;

/// The columns of a validation and what each run does.
#[derive(Debug, Clone, Default)]
pub struct Grid {
    /// `--kernel` as given (`debian:all`, `src:...`, a path, `host`).
    pub kernels: Vec<String>,
    /// The cases to run; all of the validate group when empty.
    pub cases: Vec<String>,
    /// fs/fuse coverage for each run (kernels built from source only).
    pub coverage: bool,
    /// The profile of a kernel built from source.
    pub profile: Option<String>,
    /// Each transport in turn, each over every kernel.
    pub transports: Vec<Transport>,
}

/// Validate `spec` over `grid`: every run, in order (transport, then kernel). `each` sees
/// each run as it ends.
pub fn run(spec: &Spec, grid: &Grid, each: &mut dyn FnMut(&Run)) -> Result<Vec<Run>> {
    let kernels = KernelChoice::expand(&grid.kernels)?;
    let build = crate::kernel::build::BuildRequest {
        profile: grid.profile.clone(),
        ..Default::default()
    };
    let requests: Vec<Request> = kernels
        .iter()
        .map(|k| Request {
            kernel: KernelChoice::column(k, Some(&build)),
            cases: grid.cases.clone(),
            coverage: grid.coverage,
            ..Default::default()
        })
        .collect();
    let mut runs = Vec::new();
    for transport in &grid.transports {
        let on = spec.clone().on(*transport);
        runs.extend(crate::validate::validate(&on, &requests, each)?);
    }
    Ok(runs)
}

/// `--expect passthrough`: each run held to what its snapshot passed through (a path that
/// no longer is fails its case); the release and those paths of each run that lost any.
pub fn expect_passthrough(runs: &mut [Run]) -> Result<Vec<(String, Vec<String>)>> {
    let mut lost = Vec::new();
    for run in runs {
        let failed = crate::validate::expect_passthrough(run)?;
        if !failed.is_empty() {
            lost.push((run.kernel_release.clone(), failed));
        }
    }
    Ok(lost)
}

/// The runs side by side as a page (our verdicts, and the library's own tests where
/// `validate.library_suite` ran): the page's path.
pub fn page(spec: &Spec, runs: Vec<Run>) -> Result<PathBuf> {
    let heading = format!("validate {}: {}", spec.target, spec.version);
    let matrix = super::matrix::of_runs(runs, "validate", &heading)?;
    Ok(matrix.dir.join("validate.html"))
}
