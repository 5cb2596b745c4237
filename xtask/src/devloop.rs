//! `cargo xtask series`, `cargo xtask bisect` and `cargo xtask bench --io`: the kernel
//! developer's loop and what passthrough buys. Printing only; the work is in
//! `harness::loops::series`, `harness::loops::bisect` and `harness::loops::throughput`.

use harness::loops::series::{Outcome, Step};
use harness::results::table;

use crate::args::{Reports, Target};
use crate::fail::fail;

/// The catalog on the base tree and after each patch; per patch, what changed.
pub fn series(target: &Target, reports: &Reports) -> i32 {
    let req = target.request();
    let harness::kernel::KernelChoice::Build(build) = &req.kernel else {
        unreachable!("series always builds: --patch is required");
    };
    let mut worst = 0;
    let steps = harness::loops::series::run(build, &req, &mut |step| {
        print_step(step);
        if let Outcome::Ran { run, .. } = &step.outcome {
            if reports.write(&[run], None) != 0 {
                worst = worst.max(1);
            }
            // With --coverage: the base's table, then each patch's own lines.
            if crate::coverage::print_step(run, step.index) != 0 {
                worst = worst.max(1);
            }
        }
    });
    let steps = match steps {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    match harness::loops::series::write(&steps) {
        Ok(path) => println!("\nseries: {}", path.display()),
        Err(e) => eprintln!("{e}"),
    }
    // A patch that does not apply, or a step that does not build, is the developer's to fix:
    // its own exit code. Changed verdicts are what the command reports, not an error.
    for s in &steps {
        let code = match &s.outcome {
            Outcome::DoesNotApply { .. } => 14,
            Outcome::DoesNotBuild { .. } => 13,
            Outcome::Ran { .. } => 0,
        };
        worst = worst.max(code);
    }
    worst
}

fn print_step(step: &Step) {
    let head = match step.index {
        0 => "base".to_string(),
        i => format!("patch {i}"),
    };
    println!(
        "\n{head}: {} (build {:.1} s, run {:.1} s)",
        step.subject,
        step.build_time.as_secs_f64(),
        step.run_time.as_secs_f64()
    );
    match &step.outcome {
        Outcome::Ran { run, changes } => {
            println!(
                "  {}; artifacts {}",
                table::totals(&run.results),
                run.artifacts.display()
            );
            if step.index > 0 && changes.is_empty() {
                println!("  nothing changed");
            }
            for c in changes {
                println!("  {} {}: {} -> {}", c.case, c.what, c.before, c.after);
            }
        }
        Outcome::DoesNotApply { why } => {
            println!("  does not apply; the series ends here:");
            for l in why.lines() {
                println!("    {l}");
            }
        }
        Outcome::DoesNotBuild { errors, log } => {
            println!("  does not build (log {}):", log.display());
            for l in errors.lines() {
                println!("    {l}");
            }
        }
    }
}

/// Bisect a case between two commits and name the first that changed it.
pub fn bisect(req: harness::loops::bisect::Request) -> i32 {
    let watched = match &req.observation {
        Some(k) => format!("{} observation {k}", req.case),
        None => format!("{}'s verdict", req.case),
    };
    println!(
        "bisecting {watched} between {} (good) and {} (bad)",
        req.good, req.bad
    );
    let outcome = harness::loops::bisect::run(&req, &mut |s| {
        println!(
            "  {} {}: {}",
            &s.commit[..12.min(s.commit.len())],
            s.subject,
            s.result
        );
    });
    match outcome {
        Ok(o) => {
            println!(
                "\nfirst bad commit: {} {}\n  {watched}: {} at {} -> {} at {}",
                o.first_bad, o.subject, o.good.result, req.good, o.bad.result, req.bad
            );
            println!("steps:");
            for s in &o.steps {
                println!(
                    "  {} {:<5} {} ({}){}",
                    &s.commit[..12.min(s.commit.len())],
                    s.call,
                    s.result,
                    s.subject,
                    s.artifacts
                        .as_ref()
                        .map_or_else(String::new, |a| format!(" artifacts {}", a.display()))
                );
            }
            println!("bisect: {}", o.dir.join("bisect.json").display());
            0
        }
        Err(e) => fail(&e),
    }
}

/// Throughput of the three paths on each kernel: table, throughput.json, plots.
pub fn bench_io(target: &Target, server: Option<&str>) -> i32 {
    let spec = match server
        .map(|s| harness::validate::targets::resolve(s, &[], &harness::env::cache::dir()))
        .transpose()
    {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    let kernels: Vec<String> = if target.kernels.is_empty() {
        vec![harness::kernel::KernelChoice::DEFAULT.to_string()]
    } else {
        target.kernels.clone()
    };
    let started = std::time::Instant::now();
    let template = target.request_for(&kernels[0]);
    let figs = harness::loops::throughput::run(&kernels, &template, spec.as_ref(), &mut |k| {
        print!(
            "{}",
            harness::loops::throughput::table(std::slice::from_ref(k))
        );
    });
    let figs = match figs {
        Ok(f) => f,
        Err(e) => return fail(&e),
    };
    match harness::loops::throughput::write(&figs) {
        Ok(dir) => {
            println!(
                "\nthroughput: {} (throughput.json, throughput-tmpfs.svg, throughput-ext4.svg)",
                dir.display()
            );
            println!("bench --io: {:.1} s", started.elapsed().as_secs_f64());
            0
        }
        Err(e) => fail(&e),
    }
}

/// What `git bisect run` runs for each step: this program's hidden `bisect-step`.
pub(crate) fn bisect_step_command() -> Vec<String> {
    vec![
        std::env::current_exe()
            .unwrap_or_else(|_| "xtask".into())
            .to_string_lossy()
            .into_owned(),
        "bisect-step".into(),
    ]
}
