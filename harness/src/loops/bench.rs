//! `cargo xtask bench`: how long things take, measured (never asserted in tests).
//!
//! - [`table`]: every loop of one kernel against its floor, measured paired in the same
//!   rounds: a boot that runs no case (`--case none`), the catalog in one VM and in one VM
//!   per core, the per-case overhead ([`overhead_per_case`]) and boot to first result; with
//!   `all`, an edit in fs/fuse and a series grown by one patch to their verdicts
//!   ([`edit_to_verdict`], [`series_edit_to_verdict`]), validate of one target and the
//!   matrix of every series too;
//! - [`kernel_build`]: the kernel developer's loop on a tree the harness owns (default: the
//!   cached linux-source-7.3): unchanged rebuild, rebuild after a touch, a one-line change
//!   plus boot and suite, and with `clean` a clean build first. fs/fuse/passthrough.c gets its
//!   mtime bumped and then one comment line, which is taken out again at the end. Then the
//!   series loop on the same build entry (tests/fixtures/fuse-series.mbox): one more patch
//!   plus boot and suite, the whole `series`, and a `bisect` over eight commits of
//!   [`crate::kernel::fixture`].

use std::time::Instant;

use crate::error::{Error, Result};
use crate::kernel::build::BuildRequest;
use crate::kernel::KernelChoice;
use crate::results::record::Run;
use crate::run::Request;

/// One row of the bench table: a loop and its times (seconds, or for a per-case figure,
/// milliseconds), and whether it is held to the floor.
#[derive(Debug, Clone)]
pub struct Row {
    /// What was timed.
    pub what: String,
    /// Each round's figure.
    pub values: Vec<f64>,
    /// "s" or "ms".
    pub unit: &'static str,
    /// Whether the table gives it as a multiple of the floor (a whole loop: yes; a part of
    /// one, as the overhead a case: no).
    pub against_floor: bool,
}

impl Row {
    fn new(what: impl Into<String>, unit: &'static str, against_floor: bool) -> Row {
        Row {
            what: what.into(),
            values: Vec::new(),
            unit,
            against_floor,
        }
    }
}

/// The whole table: the floor first.
#[derive(Debug, Clone)]
pub struct Table {
    /// The kernel every row ran on.
    pub kernel: String,
    /// The floor, then the loops.
    pub rows: Vec<Row>,
}

impl Table {
    /// The table as text: median, spread, and the median as a multiple of the floor's.
    pub fn render(&self) -> String {
        use std::fmt::Write;
        let floor = self
            .rows
            .first()
            .map(|r| crate::loops::stats::spread(&r.values).0);
        let mut out = format!("kernel {}\n", self.kernel);
        let _ = writeln!(
            out,
            "{:<58} {:>9} {:>17} {:>8}",
            "loop", "median", "min - max", "x floor"
        );
        for r in &self.rows {
            let (median, min, max) = crate::loops::stats::spread(&r.values);
            let ratio = match (floor, r.against_floor) {
                (Some(f), true) if f > 0.0 => format!("{:.2}x", median / f),
                _ => String::new(),
            };
            let (digits, u) = if r.unit == "ms" { (1, "ms") } else { (2, "s") };
            let _ = writeln!(
                out,
                "{:<58} {:>7.digits$} {u:<2}{:>8.digits$} - {:<7.digits$}{:>7}",
                r.what, median, min, max, ratio
            );
        }
        out
    }
}

/// The time each case of `run` spent around itself, in its boot: from the first case's start
/// marker to the last one's end (the kernel's timestamps on the console), less the cases' own
/// durations, over the number of cases; averaged over the run's boots. None where no console
/// holds markers (host mode).
pub fn overhead_per_case(run: &Run) -> Option<std::time::Duration> {
    let duration: std::collections::HashMap<&str, u64> = run
        .results
        .iter()
        .map(|r| (r.case.as_str(), r.duration_ms))
        .collect();
    let mut consoles = vec![run.artifacts.join("console.log")];
    for i in 1.. {
        let c = run.artifacts.join(format!("boot-{i}")).join("console.log");
        if !c.exists() {
            break;
        }
        consoles.push(c);
    }
    let (mut around, mut cases) = (0.0f64, 0u64);
    for console in consoles {
        let Ok(text) = std::fs::read_to_string(&console) else {
            continue;
        };
        let (mut first, mut last, mut own, mut n) = (None, None, 0u64, 0u64);
        for line in text.lines() {
            let Some(marker) = proto::layout::marker(line) else {
                continue;
            };
            let Some(at) = timestamp(line) else {
                continue;
            };
            match marker {
                proto::layout::Marker::Start(_) => {
                    first.get_or_insert(at);
                }
                proto::layout::Marker::End(case) => {
                    last = Some(at);
                    own += duration.get(case).copied().unwrap_or(0);
                    n += 1;
                }
            }
        }
        if let (Some(a), Some(b), true) = (first, last, n > 0) {
            around += (b - a) - own as f64 / 1000.0;
            cases += n;
        }
    }
    (cases > 0).then(|| std::time::Duration::from_secs_f64((around / cases as f64).max(0.0)))
}

/// The kernel's timestamp of a console line, `[   12.345678] ...`, in seconds.
fn timestamp(line: &str) -> Option<f64> {
    let rest = line.trim_start().strip_prefix('[')?;
    rest[..rest.find(']')?].trim().parse().ok()
}

/// Paired rounds on `target`'s kernel: in each, a bare boot (the floor), the catalog in one
/// VM, and the catalog in `jobs` VMs; then, with `all`, validate of `server` and the matrix
/// of every Debian series, each timed `n` times after a warm-up. `each` sees every figure as
/// it comes.
pub fn table(
    target: &Request,
    n: u32,
    jobs: usize,
    all: Option<&proto::validate::Spec>,
    each: &mut dyn FnMut(&str, f64),
) -> Result<Table> {
    let floor = Request {
        cases: vec![proto::catalog::NONE.into()],
        jobs: Some(1),
        ..target.clone()
    };
    let one = Request {
        jobs: Some(1),
        ..target.clone()
    };
    let many = Request {
        jobs: Some(jobs),
        ..target.clone()
    };
    // The warm-up fills the caches (kernel, agent, KVM probe); it is not counted.
    let warm = crate::run::run(&one, &mut |_| {})?;
    let mut rows = vec![
        Row::new("floor: a boot that runs no case (--case none)", "s", true),
        Row::new("catalog warm, one VM", "s", true),
        Row::new(format!("catalog warm, --jobs {jobs}"), "s", true),
        Row::new(
            "overhead per case (console markers - case time)",
            "ms",
            false,
        ),
        Row::new(format!("boot to first result, --jobs {jobs}"), "s", false),
    ];
    let mut note = |rows: &mut Vec<Row>, i: usize, v: f64| {
        each(&rows[i].what, v);
        rows[i].values.push(v);
    };
    for _ in 0..n {
        for (i, req) in [&floor, &one, &many].into_iter().enumerate() {
            let run = crate::run::run(req, &mut |_| {})?;
            note(&mut rows, i, run.timings.total.as_secs_f64());
            if i == 1 {
                if let Some(o) = overhead_per_case(&run) {
                    note(&mut rows, 3, o.as_secs_f64() * 1000.0);
                }
            }
            if let (2, Some(first)) = (i, run.timings.first_result_after) {
                note(&mut rows, 4, first.as_secs_f64());
            }
        }
    }
    if let Some(spec) = all {
        // The kernel developer's loops on linux-source-7.3 built with the minimal profile;
        // its first build is a warm-up, not counted.
        let build = BuildRequest {
            profile: Some("minimal".into()),
            ..Default::default()
        };
        crate::kernel::build::build(&build, &crate::env::cache::dir())?;
        let mut edit = Row::new(
            "fs/fuse edited: build, boot, catalog (7.3 from source)",
            "s",
            true,
        );
        let mut series = Row::new(
            "series edited, one patch more: build, boot, catalog",
            "s",
            true,
        );
        for _ in 0..n {
            for (row, f) in [
                (&mut edit, edit_to_verdict as fn(&_, &_) -> _),
                (&mut series, series_edit_to_verdict),
            ] {
                let (secs, _) = f(&build, &many)?;
                each(&row.what, secs);
                row.values.push(secs);
            }
        }
        rows.extend([edit, series]);
        rows.extend(coverage_rows(&many, n, each)?);
        let mut row = Row::new(format!("validate {}, one kernel", spec.target), "s", true);
        // Validated as the catalog with --jobs is run.
        let req = &many;
        crate::validate::validate(spec, std::slice::from_ref(req), &mut |_| {})?;
        for _ in 0..n {
            let started = Instant::now();
            crate::validate::validate(spec, std::slice::from_ref(req), &mut |_| {})?;
            row.values.push(started.elapsed().as_secs_f64());
            each(&row.what, row.values[row.values.len() - 1]);
        }
        rows.push(row);
        let kernels = vec!["debian:all".to_string()];
        let quiet = |_: &crate::loops::matrix::Progress| {};
        let template = Request {
            cases: target.cases.clone(),
            accel: target.accel,
            ..Request::default()
        };
        let m = crate::loops::matrix::run(&kernels, jobs, &template, &quiet)?;
        let mut row = Row::new(
            format!("matrix of {} series, --jobs {jobs}, warm", m.columns.len()),
            "s",
            true,
        );
        row.values.push(m.elapsed.as_secs_f64());
        each(&row.what, m.elapsed.as_secs_f64());
        rows.push(row);
    }
    Ok(Table {
        kernel: format!("{} ({})", warm.kernel_release, warm.mode),
        rows,
    })
}

/// The newest source series (7.3) with and without `--coverage`, warm, paired round by
/// round, and a patch to its first verdicts with `--case reaches-patch` against the whole
/// catalog (each a real incremental build: the patch comes and goes between them).
fn coverage_rows(target: &Request, n: u32, each: &mut dyn FnMut(&str, f64)) -> Result<Vec<Row>> {
    let src = BuildRequest {
        src: Some("debian:7.3".into()),
        ..Default::default()
    };
    let patched = BuildRequest {
        patches: vec![crate::env::cache::workspace_root()
            .join("tests/fixtures/7.3-splice-write-unlock.patch")],
        ..src.clone()
    };
    let on = |build: &BuildRequest, coverage: bool, cases: Vec<String>| Request {
        kernel: KernelChoice::Build(build.clone()),
        coverage,
        cases,
        ..target.clone()
    };
    let reaches = vec![crate::results::coverage::reach::REACHES_PATCH.to_string()];
    let mut rows = vec![
        Row::new("catalog on 7.3 built from source, warm", "s", true),
        Row::new("the same with --coverage (its report included)", "s", true),
        Row::new(
            "patch to verdicts, --coverage, whole catalog (7.3)",
            "s",
            true,
        ),
        Row::new("patch to verdicts, --case reaches-patch (7.3)", "s", true),
    ];
    // Warm-ups: both builds made, the base coverage kept.
    timed_run(&on(&src, false, Vec::new()))?;
    timed_run(&on(&src, true, Vec::new()))?;
    for _ in 0..n {
        // Coverage is a patch in the same build entry: a switch rebuilds fs/fuse. None is a
        // run not counted, the switch's, so that the warm rows time runs alone.
        let steps = [
            (None, on(&src, false, Vec::new())),
            (Some(0), on(&src, false, Vec::new())),
            (None, on(&src, true, Vec::new())),
            (Some(1), on(&src, true, Vec::new())),
            (Some(2), on(&patched, true, Vec::new())),
            (None, on(&src, true, Vec::new())),
            (Some(3), on(&patched, true, reaches.clone())),
        ];
        for (row, req) in steps {
            let secs = timed_run(&req)?;
            if let Some(row) = row {
                each(&rows[row].what, secs);
                rows[row].values.push(secs);
            }
        }
    }
    Ok(rows)
}

/// `bench --coverage`: the coverage rows alone, the plain catalog on 7.3 built from source
/// as their floor (so the coverage row's multiple is its cost).
pub fn coverage_table(target: &Request, n: u32, each: &mut dyn FnMut(&str, f64)) -> Result<Table> {
    let rows = coverage_rows(target, n, each)?;
    Ok(Table {
        kernel: "7.3 built from source (linux-source-7.3, minimal profile)".into(),
        rows,
    })
}

/// One run, its coverage report included, timed.
fn timed_run(req: &Request) -> Result<f64> {
    let started = Instant::now();
    let run = crate::run::run(req, &mut |_| {})?;
    crate::results::coverage::of_run(&run.artifacts)?;
    Ok(started.elapsed().as_secs_f64())
}

/// An edit in fs/fuse to its verdicts: one comment line appended to fs/fuse/passthrough.c
/// of `req`'s tree, then build, boot and `target`'s cases on that kernel, timed; the file is
/// put back whatever happened. Each call pays a real rebuild (the edit is new to make).
pub fn edit_to_verdict(req: &BuildRequest, target: &Request) -> Result<(f64, Run)> {
    let cache = crate::env::cache::dir();
    let file = crate::kernel::build::source_dir(req, &cache)?.join("fs/fuse/passthrough.c");
    let original = std::fs::read(&file).map_err(|e| Error::io(file.display(), e))?;
    let mut changed = original.clone();
    changed.extend_from_slice(b"/* fpt bench: one-line change */\n");
    std::fs::write(&file, &changed).map_err(|e| Error::io(file.display(), e))?;
    let started = Instant::now();
    let run = crate::run::run(
        &Request {
            kernel: KernelChoice::Build(req.clone()),
            ..target.clone()
        },
        &mut |_| {},
    );
    let secs = started.elapsed().as_secs_f64();
    std::fs::write(&file, &original).map_err(|e| Error::io(file.display(), e))?;
    Ok((secs, run?))
}

/// A patch series grown by one patch to its verdicts: `req` with the first four patches of
/// tests/fixtures/fuse-series.mbox is built (not timed), then the fifth added and built,
/// booted and `target`'s cases run, timed: what `cargo xtask series` pays per patch.
pub fn series_edit_to_verdict(req: &BuildRequest, target: &Request) -> Result<(f64, Run)> {
    let four = BuildRequest {
        patches: vec![crate::kernel::fixture::series_mbox()],
        first_patches: Some(4),
        ..req.clone()
    };
    crate::kernel::build::build(&four, &crate::env::cache::dir())?;
    let five = BuildRequest {
        first_patches: Some(5),
        ..four
    };
    let started = Instant::now();
    let run = crate::run::run(
        &Request {
            kernel: KernelChoice::Build(five),
            ..target.clone()
        },
        &mut |_| {},
    )?;
    Ok((started.elapsed().as_secs_f64(), run))
}

/// The build loop; each measured step is reported through `line` as it ends.
pub fn kernel_build(
    source: &BuildRequest,
    target: &Request,
    clean: bool,
    step_command: &[String],
    line: &mut dyn FnMut(String),
) -> Result<()> {
    let cache = crate::env::cache::dir();
    let mut req = BuildRequest {
        progress: false,
        ..source.clone()
    };
    if req.src.is_none() && req.profile.is_none() {
        req.profile = Some("minimal".into());
    }
    let timed = |what: &str, line: &mut dyn FnMut(String)| -> Result<()> {
        let started = Instant::now();
        crate::kernel::build::build(&req, &cache)?;
        line(format!("{what}: {:.1} s", started.elapsed().as_secs_f64()));
        Ok(())
    };
    if clean {
        let _ = std::fs::remove_dir_all(crate::kernel::build::entry_dir(&req, &cache)?);
        timed("clean build", line)?;
    } else {
        crate::kernel::build::build(&req, &cache)?;
    }
    timed("unchanged rebuild", line)?;
    let file = crate::kernel::build::source_dir(&req, &cache)?.join("fs/fuse/passthrough.c");
    let original = std::fs::read(&file).map_err(|e| Error::io(file.display(), e))?;
    std::fs::write(&file, &original).map_err(|e| Error::io(file.display(), e))?;
    timed(
        "rebuild after rewriting fs/fuse/passthrough.c unchanged (make rebuilds it only while the working copy links it; a copy of the same content is kept)",
        line,
    )?;
    let (secs, run) = edit_to_verdict(&req, target)?;
    line(format!(
        "one-line change in fs/fuse, then build + boot + suite: {secs:.1} s ({})",
        crate::results::table::totals(&run.results)
    ));
    if req.src.is_some() {
        return Ok(());
    }
    let (secs, run) = series_edit_to_verdict(&req, target)?;
    line(format!(
        "series changed by one patch (4 -> 5 patches), then build + boot + suite: {secs:.1} s ({})",
        crate::results::table::totals(&run.results)
    ));
    let with_series = BuildRequest {
        patches: vec![crate::kernel::fixture::series_mbox()],
        ..req.clone()
    };
    let started = Instant::now();
    let steps = crate::loops::series::run(&with_series, target, &mut |_| {})?;
    line(format!(
        "series of 5 patches (base and each patch built, booted, whole suite): {:.1} s ({} steps)",
        started.elapsed().as_secs_f64(),
        steps.len()
    ));
    if step_command.is_empty() {
        return Ok(());
    }
    let tree = crate::kernel::fixture::fuse_history()?;
    let started = Instant::now();
    let outcome = crate::loops::bisect::run(
        &crate::loops::bisect::Request {
            tree,
            good: "fpt-base".into(),
            bad: "fpt-patch-2".into(),
            case: "backing_open.flags_nonzero".into(),
            observation: None,
            build: BuildRequest {
                profile: req.profile.clone(),
                ..Default::default()
            },
            accel: target.accel,
            step_command: step_command.to_vec(),
        },
        &mut |_| {},
    )?;
    line(format!(
        "bisect over 8 commits in fs/fuse (the ends, then {} steps): {:.1} s, first bad {}",
        outcome.steps.len(),
        started.elapsed().as_secs_f64(),
        outcome.subject
    ));
    Ok(())
}

/// `bench --validate`: `runs` warm validations of `spec` on `request`'s kernel, command to
/// report, after one that warms the caches (agent, kernel, virtiofsd) and is not counted.
/// `each` sees each counted run's seconds as it ends; the seconds of all of them.
pub fn validate_warm(
    spec: &proto::validate::Spec,
    request: &Request,
    runs: u32,
    each: &mut dyn FnMut(f64),
) -> Result<Vec<f64>> {
    let mut times = Vec::new();
    for i in 0..=runs {
        let started = Instant::now();
        crate::validate::validate(spec, std::slice::from_ref(request), &mut |_| {})?;
        if i > 0 {
            let secs = started.elapsed().as_secs_f64();
            each(secs);
            times.push(secs);
        }
    }
    Ok(times)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_timestamps_are_read() {
        assert_eq!(
            timestamp("[    2.383692] fpt-agent: start init.offer"),
            Some(2.383692)
        );
        assert_eq!(timestamp("fpt-agent: start init.offer"), None);
    }

    #[test]
    fn the_table_gives_loops_as_multiples_of_the_floor() {
        let row = |what: &str, values: Vec<f64>, unit, against_floor| Row {
            what: what.into(),
            values,
            unit,
            against_floor,
        };
        let t = Table {
            kernel: "6.12".into(),
            rows: vec![
                row("floor", vec![2.0, 2.2, 1.9], "s", true),
                row("catalog", vec![5.0, 4.0, 4.4], "s", true),
                row("overhead", vec![5.0], "ms", false),
            ],
        };
        let text = t.render();
        assert!(text.contains("2.20x"), "{text}");
        assert!(text
            .lines()
            .any(|l| l.starts_with("floor") && l.contains("1.00x")));
        assert!(!text
            .lines()
            .any(|l| l.starts_with("overhead") && l.contains('x')));
    }
}
