//! The matrix itself: one column per kernel, and what differs between the columns. The run
//! ([`super::run`]) fills it, the page ([`super::page`]) and the terminal show it.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::error::Error;
use crate::results::record::Run;
use crate::results::table::show_value;
use crate::{CaseResult, Verdict};

/// One column: a kernel and how its run went.
pub struct Column {
    /// What the user named (`debian:6.18`, a path, `host`).
    pub kernel: String,
    /// The column's heading: the series, or the release where two columns share a series.
    pub label: String,
    /// Its run, or why it could not run.
    pub outcome: std::result::Result<Run, Error>,
    /// How long it took, fetch excluded.
    pub elapsed: Duration,
}

/// Every kernel's run, side by side.
pub struct Matrix {
    /// One per kernel, in the order given.
    pub columns: Vec<Column>,
    /// Where matrix.json and matrix.html are.
    pub dir: PathBuf,
    /// The whole matrix, start to end.
    pub elapsed: Duration,
}

impl Matrix {
    /// Every case that ran anywhere, in catalog order (the first column that has it).
    pub fn cases(&self) -> Vec<String> {
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for c in &self.columns {
            if let Ok(run) = &c.outcome {
                for r in &run.results {
                    if seen.insert(r.case.clone()) {
                        out.push(r.case.clone());
                    }
                }
            }
        }
        out
    }

    /// One case's result in each column (None: that column did not run it).
    pub fn row(&self, case: &str) -> Vec<Option<&CaseResult>> {
        self.columns
            .iter()
            .map(|c| {
                c.outcome
                    .as_ref()
                    .ok()
                    .and_then(|run| run.results.iter().find(|r| r.case == case))
            })
            .collect()
    }

    /// The cases whose verdict is not the same in every column.
    pub fn differing_verdicts(&self) -> Vec<(String, Vec<Option<Verdict>>)> {
        self.cases()
            .into_iter()
            .filter_map(|case| {
                let cells: Vec<Option<Verdict>> = self
                    .row(&case)
                    .iter()
                    .map(|r| r.map(|r| r.verdict))
                    .collect();
                let first = cells[0];
                cells.iter().any(|c| *c != first).then_some((case, cells))
            })
            .collect()
    }

    /// Every observation (case, key) whose value is not the same in every column that
    /// observed the case, with each column's value (None: no such observation there).
    pub fn differing_observations(&self) -> Vec<(String, String, Vec<Option<String>>)> {
        let mut out = Vec::new();
        for case in self.cases() {
            let row = self.row(&case);
            let keys: BTreeSet<&String> = row
                .iter()
                .flatten()
                .flat_map(|r| r.observations.keys())
                .collect();
            for key in keys {
                let cells: Vec<Option<String>> = row
                    .iter()
                    .map(|r| r.and_then(|r| r.observations.get(key)).map(show_value))
                    .collect();
                // A column that skipped the case without observing anything has nothing
                // to compare (its verdict is in the grid).
                let present: Vec<&Option<String>> = row
                    .iter()
                    .zip(&cells)
                    .filter(|(r, _)| {
                        r.is_some_and(|r| {
                            !(r.verdict == Verdict::Skip && r.observations.is_empty())
                        })
                    })
                    .map(|(_, c)| c)
                    .collect();
                if present.windows(2).any(|w| w[0] != w[1]) {
                    out.push((case.clone(), key.clone(), cells));
                }
            }
        }
        out
    }

    /// Whether every kernel ran and every case passed or skipped.
    pub fn all_ok(&self) -> bool {
        self.columns
            .iter()
            .all(|c| c.outcome.as_ref().is_ok_and(Run::all_ok))
    }

    /// matrix.json's text.
    pub fn json_text(&self) -> String {
        serde_json::to_string_pretty(&self.json()).expect("serialises")
    }

    fn json(&self) -> MatrixJson {
        MatrixJson {
            seconds: self.elapsed.as_secs_f64(),
            kernels: self
                .columns
                .iter()
                .map(|c| KernelJson {
                    kernel: c.kernel.clone(),
                    label: c.label.clone(),
                    seconds: c.elapsed.as_secs_f64(),
                    release: c.outcome.as_ref().ok().map(|r| r.kernel_release.clone()),
                    identity: c.outcome.as_ref().ok().map(|r| r.identity.clone()),
                    mode: c.outcome.as_ref().ok().map(|r| r.mode.to_string()),
                    artifacts: c.outcome.as_ref().ok().map(|r| r.artifacts.clone()),
                    error: c.outcome.as_ref().err().map(|e| e.to_string()),
                })
                .collect(),
            cases: self
                .cases()
                .into_iter()
                .map(|case| {
                    let results = self.row(&case).into_iter().map(|r| r.cloned()).collect();
                    CaseJson { case, results }
                })
                .collect(),
        }
    }
}

/// An observation's value as one short string: strings without their quotes.
#[derive(Serialize)]
struct MatrixJson {
    seconds: f64,
    kernels: Vec<KernelJson>,
    cases: Vec<CaseJson>,
}

#[derive(Serialize)]
struct KernelJson {
    kernel: String,
    label: String,
    seconds: f64,
    release: Option<String>,
    identity: Option<crate::kernel::Identity>,
    mode: Option<String>,
    artifacts: Option<PathBuf>,
    error: Option<String>,
}

#[derive(Serialize)]
struct CaseJson {
    case: String,
    /// One per kernel, in the kernels' order; null where that kernel did not run the case.
    results: Vec<Option<CaseResult>>,
}
