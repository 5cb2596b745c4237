//! The catalog on several kernels at once: each kernel is one ordinary run (its own
//! artifacts, its own snapshot comparison), `jobs` of them at a time; then the verdicts and
//! observations side by side, in the terminal, `matrix.json` and `matrix.html`.
//!
//! Every kernel is fetched before any guest starts: apt's lists and the cache are shared,
//! the guests are not.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::kernel::KernelChoice;
use crate::run::{Request, Run};
use crate::{CaseResult, Event, Verdict};

/// One column: a kernel and how its run went.
pub struct Column {
    /// What the user named (`debian:6.18`, a path, `host`).
    pub kernel: String,
    /// The column's heading: the series, or the release where two columns share a series.
    pub label: String,
    pub outcome: std::result::Result<Run, Error>,
    pub elapsed: Duration,
}

pub struct Matrix {
    pub columns: Vec<Column>,
    /// Where matrix.json and matrix.html are.
    pub dir: PathBuf,
    pub elapsed: Duration,
}

/// Where the matrix stands, for a progress line.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    pub done: usize,
    pub total: usize,
    /// Kernels running now, with how many of their cases have reported.
    pub running: Vec<(String, usize, usize)>,
}

/// `debian:all` becomes every series Debian's archive has whole; the rest stay as given.
pub fn expand(kernels: &[String]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for k in kernels {
        if k == "debian:all" {
            let apt = crate::debian::Apt::new(&crate::cache::dir())?;
            out.extend(
                crate::debian_kernels::all(&apt)?
                    .into_iter()
                    .map(|s| format!("debian:{s}")),
            );
        } else if !out.contains(k) {
            out.push(k.clone());
        }
    }
    Ok(out)
}

/// Run `template` (its cases, accelerator, ...) on each of `kernels`, `jobs` at a time.
/// A kernel that cannot run at all (not fetchable, does not boot) is a column with its
/// error; the others still run.
pub fn run(
    kernels: &[String],
    jobs: usize,
    template: &Request,
    on_progress: &(dyn Fn(&Progress) + Sync),
) -> Result<Matrix> {
    let started = Instant::now();
    let kernels = expand(kernels)?;
    // Fetch first, one at a time: apt's lists and locks are shared.
    let mut prepared = Vec::new();
    for k in &kernels {
        let choice = KernelChoice::parse(k);
        let fetched = match &choice {
            KernelChoice::Debian(series) => {
                crate::debian_kernels::fetch(series, &crate::cache::dir())
                    .map(|kernel| KernelChoice::Fetched(Box::new(kernel)))
            }
            _ => Ok(choice),
        };
        prepared.push((k.clone(), fetched));
    }
    // Shared by every run: made once here rather than raced by the first few.
    crate::agent::build_with_catalog()?;
    crate::disk::ext4_image(&crate::cache::dir())?;

    let progress = Arc::new(Mutex::new(Progress {
        total: kernels.len(),
        ..Default::default()
    }));
    let queue = Arc::new(Mutex::new(
        prepared.into_iter().enumerate().collect::<Vec<_>>(),
    ));
    let results: Arc<Mutex<Vec<Option<Column>>>> =
        Arc::new(Mutex::new((0..kernels.len()).map(|_| None).collect()));
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1).min(kernels.len().max(1)) {
            let (queue, results, progress) = (queue.clone(), results.clone(), progress.clone());
            scope.spawn(move || loop {
                if crate::interrupt::requested().is_some() {
                    return;
                }
                let next = {
                    let mut q = queue.lock().expect("queue");
                    if q.is_empty() {
                        None
                    } else {
                        Some(q.remove(0))
                    }
                };
                let Some((i, (name, choice))) = next else {
                    return;
                };
                let began = Instant::now();
                progress
                    .lock()
                    .expect("progress")
                    .running
                    .push((name.clone(), 0, 0));
                let outcome = choice.and_then(|kernel| {
                    let req = Request {
                        kernel,
                        ..template.clone()
                    };
                    crate::run::run(&req, &mut |e| {
                        let mut p = progress.lock().expect("progress");
                        if let Some(r) = p.running.iter_mut().find(|r| r.0 == name) {
                            match e {
                                Event::Hello { cases, .. } => r.2 = cases.len(),
                                Event::Result(_) => r.1 += 1,
                                _ => {}
                            }
                        }
                        on_progress(&p);
                    })
                });
                {
                    let mut p = progress.lock().expect("progress");
                    p.running.retain(|r| r.0 != name);
                    p.done += 1;
                    on_progress(&p);
                }
                results.lock().expect("results")[i] = Some(Column {
                    kernel: name,
                    label: String::new(),
                    outcome,
                    elapsed: began.elapsed(),
                });
            });
        }
    });
    let mut columns: Vec<Column> = Arc::try_unwrap(results)
        .map_err(|_| ())
        .expect("every worker has ended")
        .into_inner()
        .expect("results")
        .into_iter()
        .flatten()
        .collect();
    label(&mut columns);
    let dir = crate::run::artifacts_dir("matrix")?;
    let matrix = Matrix {
        columns,
        dir,
        elapsed: started.elapsed(),
    };
    std::fs::write(
        matrix.dir.join("matrix.json"),
        serde_json::to_string_pretty(&matrix.json()).expect("serialises"),
    )
    .map_err(|e| Error::io("matrix.json", e))?;
    std::fs::write(
        matrix.dir.join("matrix.html"),
        crate::matrix_html::page(&matrix),
    )
    .map_err(|e| Error::io("matrix.html", e))?;
    Ok(matrix)
}

/// Headings: the series where it is unique, the release where two columns share one, and
/// the error's kernel name for a column that did not run.
fn label(columns: &mut [Column]) {
    let series: Vec<Option<String>> = columns
        .iter()
        .map(|c| match &c.outcome {
            Ok(run) if run.mode == "host" => Some(format!("host {}", series_of(run))),
            Ok(run) => Some(series_of(run)),
            Err(_) => None,
        })
        .collect();
    for (i, c) in columns.iter_mut().enumerate() {
        c.label = match (&series[i], &c.outcome) {
            (Some(s), Ok(run)) if series.iter().filter(|x| x.as_ref() == Some(s)).count() > 1 => {
                run.kernel_release.clone()
            }
            (Some(s), _) => s.clone(),
            (None, _) => c.kernel.clone(),
        };
    }
}

fn series_of(run: &Run) -> String {
    crate::kernel::series(&run.kernel_release)
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
                    .map(|r| r.and_then(|r| r.observations.get(key)).map(show))
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

    pub fn all_ok(&self) -> bool {
        self.columns
            .iter()
            .all(|c| c.outcome.as_ref().is_ok_and(Run::all_ok))
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
                    mode: c.outcome.as_ref().ok().map(|r| r.mode.clone()),
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
pub fn show(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

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
