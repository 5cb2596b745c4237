//! `cargo xtask bench`: how long things take, measured (never asserted in tests).
//!
//! - [`runs`]: a warm-up run, then N timed runs of the same request, with their parts;
//! - [`kernel_build`]: the kernel developer's loop on a tree the harness owns (default: the
//!   cached linux-source-6.12): unchanged rebuild, rebuild after a touch, a one-line change
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

/// Timed runs of `req` after a warm-up; `each` sees each timed run.
pub fn runs(req: &Request, n: u32, each: &mut dyn FnMut(u32, &Run)) -> Result<Vec<Run>> {
    // The warm-up fills the caches (kernel download, agent build); it is not counted.
    crate::run::run(req, &mut |_| {})?;
    let mut out = Vec::new();
    for i in 1..=n {
        let run = crate::run::run(req, &mut |_| {})?;
        each(i, &run);
        out.push(run);
    }
    Ok(out)
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
    std::fs::write(&file, &original).map_err(|e| Error::io(file.display(), e))?;
    let run = run?;
    line(format!(
        "one-line change in fs/fuse, then build + boot + suite: {:.1} s ({})",
        started.elapsed().as_secs_f64(),
        crate::results::table::totals(&run.results)
    ));
    if req.src.is_some() {
        return Ok(());
    }
    // The series loop on the same entry: tests/fixtures/fuse-series.mbox, five patches to
    // fs/fuse/passthrough.c.
    let with_series = BuildRequest {
        patches: vec![crate::kernel::fixture::series_mbox()],
        first_patches: Some(4),
        ..req.clone()
    };
    crate::kernel::build::build(&with_series, &cache)?;
    let five = BuildRequest {
        first_patches: Some(5),
        ..with_series.clone()
    };
    let started = Instant::now();
    let run = crate::run::run(
        &Request {
            kernel: KernelChoice::Build(five.clone()),
            ..target.clone()
        },
        &mut |_| {},
    )?;
    line(format!(
        "series changed by one patch (4 -> 5 patches), then build + boot + suite: {:.1} s ({})",
        started.elapsed().as_secs_f64(),
        crate::results::table::totals(&run.results)
    ));
    let started = Instant::now();
    let steps = crate::loops::series::run(
        &BuildRequest {
            first_patches: None,
            ..with_series
        },
        target,
        &mut |_| {},
    )?;
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
