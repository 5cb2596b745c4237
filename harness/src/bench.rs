//! `cargo xtask bench`: how long things take, measured (never asserted in tests).
//!
//! - [`runs`]: a warm-up run, then N timed runs of the same request, with their parts;
//! - [`kernel_build`]: the kernel developer's loop on a tree the harness owns (default: the
//!   cached linux-source-6.12): unchanged rebuild, rebuild after a touch, a one-line change
//!   plus boot and suite, and with `clean` a clean build first. fs/fuse/passthrough.c gets its
//!   mtime bumped and then one comment line, which is taken out again at the end.

use std::time::Instant;

use crate::error::{Error, Result};
use crate::kbuild::BuildRequest;
use crate::kernel::KernelChoice;
use crate::run::{Request, Run};

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

/// (median, min, max) of `values`.
pub fn spread(values: &[f64]) -> (f64, f64, f64) {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.as_slice() {
        [] => (0.0, 0.0, 0.0),
        _ => (v[v.len() / 2], v[0], v[v.len() - 1]),
    }
}

/// The build loop; each measured step is reported through `line` as it ends.
pub fn kernel_build(
    source: &BuildRequest,
    target: &Request,
    clean: bool,
    line: &mut dyn FnMut(String),
) -> Result<()> {
    let cache = crate::cache::dir();
    let mut req = BuildRequest {
        progress: false,
        ..source.clone()
    };
    if req.src.is_none() && req.profile.is_none() {
        req.profile = Some("minimal".into());
    }
    let timed = |what: &str, line: &mut dyn FnMut(String)| -> Result<()> {
        let started = Instant::now();
        crate::kbuild::build(&req, &cache)?;
        line(format!("{what}: {:.1} s", started.elapsed().as_secs_f64()));
        Ok(())
    };
    if clean {
        let _ = std::fs::remove_dir_all(crate::kbuild::entry_dir(&req, &cache)?);
        timed("clean build", line)?;
    } else {
        crate::kbuild::build(&req, &cache)?;
    }
    timed("unchanged rebuild", line)?;
    let file = crate::kbuild::source_dir(&req, &cache)?.join("fs/fuse/passthrough.c");
    let original = std::fs::read(&file).map_err(|e| Error::io(file.display(), e))?;
    std::fs::write(&file, &original).map_err(|e| Error::io(file.display(), e))?;
    timed("rebuild after touching fs/fuse/passthrough.c", line)?;
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
        crate::report::totals(&run.results)
    ));
    Ok(())
}
