//! `bench`: the loops timed, and what can only be timed from outside (a child `cargo xtask`).

use std::process::Command;

use harness::kernel::KernelChoice;
use harness::run::Request;

use crate::args::Target;
use crate::fail::fail;

/// `bench`: every loop of one kernel in one table, each against the floor (a boot that runs
/// no case) measured in the same rounds; with `all`, validate and the matrix too.
pub(crate) fn bench(target: &Target, runs: u32, all: bool, clean: bool) -> i32 {
    let spec = match all {
        true => {
            match harness::validate::targets::resolve("libfuse", &[], &harness::env::cache::dir()) {
                Ok(s) => Some(s),
                Err(e) => return fail(&e),
            }
        }
        false => None,
    };
    let request = target.request();
    let jobs = request
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    eprintln!("warm-up run, then {runs} paired rounds");
    let table =
        harness::loops::bench::table(&request, runs, jobs, spec.as_ref(), &mut |what, v| {
            eprintln!("  {what}: {v:.2}")
        });
    let mut table = match table {
        Ok(t) => t,
        Err(e) => return fail(&e),
    };
    // Last, each timed once as a child process, so as not to share the CPU with a round
    // (the suite boots kernels of its own).
    let mut once = |what: &str, measured: Result<f64, String>| match measured {
        Ok(secs) => table.rows.push(harness::loops::bench::Row {
            what: what.into(),
            values: vec![secs],
            unit: "s",
            against_floor: true,
        }),
        Err(why) => eprintln!("{what}: not measured: {why}"),
    };
    if all {
        once("test suite warm: `cargo xtask test`", test_suite());
    }
    if clean {
        once(
            "first run: `cargo xtask run`, empty cache and target dir",
            first_run(&request),
        );
    }
    println!("{}", table.render());
    0
}

/// `cargo xtask <args>` in a child process, timed: what `bench` cannot time from inside.
fn xtask_child() -> Command {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(harness::env::cache::workspace_root())
        .args(["run", "--quiet", "--package", "xtask", "--"]);
    cmd
}

/// Run `cmd` and time it: its seconds when its exit code is `ok`, else the code and its
/// last line of stderr.
fn timed(mut cmd: Command, ok: impl Fn(Option<i32>) -> bool) -> Result<f64, String> {
    let started = std::time::Instant::now();
    let out = cmd.output().map_err(|e| e.to_string())?;
    match ok(out.status.code()) {
        true => Ok(started.elapsed().as_secs_f64()),
        false => Err(format!(
            "exit {:?}: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        )),
    }
}

/// `cargo xtask test` as CI runs it, on the caches as they are: its time, or why it failed.
fn test_suite() -> Result<f64, String> {
    let mut cmd = xtask_child();
    cmd.arg("test");
    timed(cmd, |code| code == Some(0))
}

/// `cargo xtask run` (on `request`'s kernel) as a first run: an empty cache (`FPT_CACHE`) and
/// an empty target directory, so xtask, the agent, the kernel's fetch and everything else a
/// new user's first run does are timed; QEMU and the crates already downloaded stay.
fn first_run(request: &Request) -> Result<f64, String> {
    let scratch = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut cmd = xtask_child();
    cmd.env("FPT_CACHE", scratch.path().join("cache"))
        .env("CARGO_TARGET_DIR", scratch.path().join("target"))
        .arg("run");
    match &request.kernel {
        KernelChoice::Debian(series) => cmd.args(["--kernel", &format!("debian:{series}")]),
        KernelChoice::Host => cmd.args(["--kernel", "host"]),
        // Another kernel (a path, a build) is the default's first run.
        _ => &mut cmd,
    };
    // Exit 3 (snapshot differs) is still a whole run; anything above is not.
    timed(cmd, |code| matches!(code, Some(0..=3)))
}

/// `bench --validate`: with --clean, every built-in target fetched and built afresh, timed;
/// then `runs` warm validations of one target on one kernel, command to report.
pub(crate) fn validate(target: &Target, server: &str, runs: u32, clean: bool) -> i32 {
    let cache = harness::env::cache::dir();
    if clean {
        harness::validate::targets::forget_built(&cache);
        let started = std::time::Instant::now();
        for (name, _) in harness::validate::targets::BUILT_IN {
            let one = std::time::Instant::now();
            if let Err(e) = harness::validate::targets::resolve(name, &[], &cache) {
                return fail(&e);
            }
            println!(
                "fetch and build {name}: {:.1} s",
                one.elapsed().as_secs_f64()
            );
        }
        println!(
            "every built-in target, fetched and built: {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    let spec = match harness::validate::targets::resolve(server, &[], &cache) {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    let measured = harness::loops::bench::validate_warm(&spec, &target.request(), runs, &mut |s| {
        println!("validate {server} on {}: {s:.1} s", target.kernel())
    });
    let times = match measured {
        Ok(t) => t,
        Err(e) => return fail(&e),
    };
    let (median, min, max) = harness::loops::stats::spread(&times);
    println!("validate, one target on one kernel, warm: median {median:.1} s, min {min:.1} s, max {max:.1} s");
    0
}

pub(crate) fn kernel_build(target: &Target, clean: bool) -> i32 {
    match harness::loops::bench::kernel_build(
        &target.source.request(),
        &target.request(),
        clean,
        &crate::devloop::bisect_step_command(),
        &mut |l| println!("{l}"),
    ) {
        Ok(()) => 0,
        Err(e) => fail(&e),
    }
}
