//! The catalog on several kernels at once: each kernel is one ordinary run (its own
//! artifacts, its own snapshot comparison), `jobs` of them at a time; then the verdicts and
//! observations side by side, in the terminal, `matrix.json` and `matrix.html`.
//!
//! Every kernel is fetched before any guest starts: apt's lists and the cache are shared,
//! the guests are not.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::error::{Error, Result};
use crate::kernel::KernelChoice;
use crate::results::record::Run;
use crate::run::Request;
use crate::Event;

pub mod grid;
pub mod page;

pub use grid::{Column, Matrix};

/// Where the matrix stands, for a progress line.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    /// Kernels done.
    pub done: usize,
    /// Kernels in all.
    pub total: usize,
    /// Kernels running now, with how many of their cases have reported.
    pub running: Vec<(String, usize, usize)>,
}

/// "debian:6.12" -> (6, 12); any other kernel: None (taken after every series).
fn series_number(kernel: &str) -> Option<(u32, u32)> {
    let (major, minor) = kernel.strip_prefix("debian:")?.split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// Run `template` (its cases, accelerator, ...) on each of `kernels`, `jobs` at a time; a
/// kernel built from source (`src:...`) with the template's profile if its kernel is a build.
/// A kernel that cannot run at all (not fetchable, does not boot) is a column with its
/// error; the others still run.
pub fn run(
    kernels: &[String],
    jobs: usize,
    template: &Request,
    on_progress: &(dyn Fn(&Progress) + Sync),
) -> Result<Matrix> {
    let started = Instant::now();
    let kernels = KernelChoice::expand(kernels)?;
    // Fetch first, one at a time: apt's lists and locks are shared.
    let template_build = match &template.kernel {
        KernelChoice::Build(t) => Some(t),
        _ => None,
    };
    let prepared: Vec<_> = kernels
        .iter()
        .map(|k| (k.clone(), KernelChoice::column(k, template_build).fetched()))
        .collect();
    // Shared by every run: made once here rather than raced by the first few.
    crate::boot::agent::build_with_catalog()?;
    crate::boot::disk::ext4_image(&crate::env::cache::dir())?;

    let progress = Arc::new(Mutex::new(Progress {
        total: kernels.len(),
        ..Default::default()
    }));
    // Newest series first: the catalog's cases are gated on the features a series has, so
    // an old series runs few of them and, taken last, fills the end of the run.
    let mut queue: Vec<_> = prepared.into_iter().enumerate().collect();
    queue.sort_by_key(|(_, (name, _))| std::cmp::Reverse(series_number(name)));
    let queue = Arc::new(Mutex::new(queue));
    // Kernels side by side, so one VM each unless the template says otherwise.
    let template = &Request {
        jobs: template.jobs.or(Some(1)),
        ..template.clone()
    };
    let results: Arc<Mutex<Vec<Option<Column>>>> =
        Arc::new(Mutex::new((0..kernels.len()).map(|_| None).collect()));
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1).min(kernels.len().max(1)) {
            let (queue, results, progress) = (queue.clone(), results.clone(), progress.clone());
            scope.spawn(move || loop {
                if crate::env::interrupt::requested().is_some() {
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
    // Not one kernel ran: there is nothing to compare, and the cause is most often bad
    // input (a series Debian does not have), so the first kernel's error is the answer.
    if !columns.is_empty() && columns.iter().all(|c| c.outcome.is_err()) {
        if let Some(Err(first)) = columns.into_iter().next().map(|c| c.outcome) {
            return Err(Error::NoKernelRan {
                first: Box::new(first),
            });
        }
        unreachable!("the first column was an error");
    }
    label(&mut columns);
    let dir = crate::env::cache::artifacts_dir("matrix")?;
    let matrix = Matrix {
        columns,
        dir,
        elapsed: started.elapsed(),
    };
    std::fs::write(matrix.dir.join("matrix.json"), matrix.json_text())
        .map_err(|e| Error::io("matrix.json", e))?;
    std::fs::write(
        matrix.dir.join("matrix.html"),
        crate::loops::matrix::page::page(&matrix),
    )
    .map_err(|e| Error::io("matrix.html", e))?;
    Ok(matrix)
}

/// The runs one after another made (validate's, one per kernel) as a matrix, labelled as
/// `run`'s columns are, its pages written to a new artifacts folder `<name>-...` as
/// `<name>.json` and `<name>.html` (with `heading`); `latest` stays at the last run.
pub fn of_runs(runs: Vec<Run>, name: &str, heading: &str) -> Result<Matrix> {
    let dir = crate::env::cache::pages_dir(name)?;
    let mut columns: Vec<Column> = runs
        .into_iter()
        .map(|run| Column {
            kernel: run.kernel_release.clone(),
            label: String::new(),
            elapsed: run.timings.total,
            outcome: Ok(run),
        })
        .collect();
    label(&mut columns);
    let elapsed = columns.iter().map(|c| c.elapsed).sum();
    let matrix = Matrix {
        columns,
        dir,
        elapsed,
    };
    let json = format!("{name}.json");
    std::fs::write(matrix.dir.join(&json), matrix.json_text()).map_err(|e| Error::io(&json, e))?;
    let html = format!("{name}.html");
    std::fs::write(
        matrix.dir.join(&html),
        page::titled(&matrix, heading, heading),
    )
    .map_err(|e| Error::io(&html, e))?;
    Ok(matrix)
}

/// Headings: the series where it is unique, the release where two columns share one, and
/// the error's kernel name for a column that did not run; a validate run over FUSE over
/// io_uring says so.
fn label(columns: &mut [Column]) {
    let series: Vec<Option<String>> = columns
        .iter()
        .map(|c| match &c.outcome {
            Ok(run) => {
                let host = if run.mode.is_host() { "host " } else { "" };
                let ring = match run.transport {
                    Some(proto::validate::Transport::Uring) => " over io_uring",
                    _ => "",
                };
                Some(format!("{host}{}{ring}", series_of(run)))
            }
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
