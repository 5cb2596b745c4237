//! `cargo xtask kernels` and `cargo xtask matrix`: printing only; the work is in
//! `harness::kernel::debian` and `harness::loops::matrix`.

use std::time::Duration;

use harness::boot::qemu::Accel;
use harness::results::record::Run;
use harness::results::snapshot::{self, Comparison, Policy, Settled};
use harness::results::table;
use harness::run::Request;

use crate::args::{AccelArg, MatrixArgs};
use crate::fail::fail;

pub fn kernels() -> i32 {
    let cache = harness::env::cache::dir();
    let offers = match harness::env::apt::Apt::new(&cache)
        .and_then(|apt| harness::kernel::debian::available(&apt))
    {
        Ok(o) => o,
        Err(e) => return fail(&e),
    };
    println!(
        "{:<7} {:<28} {:<8} {:<20} state",
        "series", "newest release", "packages", "version"
    );
    for o in &offers {
        let packaging = match o.packaging {
            harness::kernel::debian::Packaging::Image(_) => "image",
            harness::kernel::debian::Packaging::Split { .. } => "split",
        };
        let state = if !o.missing.is_empty() {
            format!("gone: {} not in the archive", o.missing.join(", "))
        } else if o.cached(&cache) {
            "cached".to_string()
        } else {
            "fetchable".to_string()
        };
        println!(
            "{:<7} {:<28} {:<8} {:<20} {state}",
            o.series,
            o.release,
            packaging,
            o.version.as_deref().unwrap_or("-")
        );
    }
    let cached = harness::kernel::debian::cached(&cache);
    if !cached.is_empty() {
        println!("\nin the cache ({}):", cache.join("kernels").display());
        for c in cached {
            println!("  {c}");
        }
    }
    0
}

pub fn matrix(args: &MatrixArgs) -> i32 {
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let policy = match Policy::new(args.bless, !args.cases.is_empty() || args.shard.is_some()) {
        Ok(p) => p,
        Err(e) => return fail(&e),
    };
    if let Err(e) = crate::coverage::refuse(&args.kernels, args.coverage) {
        return fail(&e);
    }
    let template = Request {
        // The recipe of every `src:` kernel (harness::loops::matrix::run).
        kernel: match &args.profile {
            Some(profile) => {
                harness::kernel::KernelChoice::Build(harness::kernel::build::BuildRequest {
                    profile: Some(profile.clone()),
                    ..Default::default()
                })
            }
            None => harness::kernel::KernelChoice::parse(harness::kernel::KernelChoice::DEFAULT),
        },
        cases: args.cases.clone(),
        shard: args.shard,
        coverage: args.coverage,
        accel: args.accel.map(|a| match a {
            AccelArg::Kvm => Accel::Kvm,
            AccelArg::Tcg => Accel::Tcg,
        }),
        ..Default::default()
    };
    let bar = indicatif::ProgressBar::new(0);
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let last_done = std::sync::Mutex::new(0);
    let progress = |p: &harness::loops::matrix::Progress| {
        let running: Vec<String> = p
            .running
            .iter()
            .map(|(k, n, of)| format!("{k} {n}/{of}"))
            .collect();
        bar.set_length(p.total as u64);
        bar.set_position(p.done as u64);
        bar.set_message(running.join(", "));
        let mut last = last_done.lock().expect("progress");
        if p.done != *last {
            *last = p.done;
            if bar.is_hidden() {
                eprintln!("matrix: {}/{} kernels done", p.done, p.total);
            }
        }
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("matrix {pos}/{len} kernels done · {msg}")
            .expect("template"),
    );
    bar.enable_steady_tick(Duration::from_millis(500));
    let m = match harness::loops::matrix::run(&args.kernels, jobs, &template, &progress) {
        Ok(m) => m,
        Err(e) => return fail(&e),
    };
    bar.finish_and_clear();
    let mut code = 0;
    println!(
        "kernels ({} at a time, {:.0} s in all):",
        jobs,
        m.elapsed.as_secs_f64()
    );
    for c in &m.columns {
        match &c.outcome {
            Ok(run) => {
                let snap = match policy.settle(run) {
                    Ok(Settled::Written(p)) => format!("written: {}", p.display()),
                    Ok(Settled::Compared(Comparison::Match { .. })) => {
                        format!("matches {}", snapshot::name_of(run))
                    }
                    Ok(Settled::Compared(Comparison::Missing(_))) => "none yet".to_string(),
                    Ok(Settled::Compared(Comparison::Differs { path, .. })) => {
                        code = code.max(3);
                        format!("DIFFERS from {}", path.display())
                    }
                    Err(e) => return fail(&e),
                };
                if !run.all_ok() {
                    code = 1;
                }
                println!(
                    "  {:<10} {:<28} {:>5.0} s  {}; snapshot {snap}",
                    c.label,
                    run.kernel_release,
                    c.elapsed.as_secs_f64(),
                    table::totals(&run.results)
                );
            }
            Err(e) => {
                code = 1;
                println!("  {:<10} did not run: {e}", c.label);
            }
        }
    }
    let labels: Vec<&str> = m.columns.iter().map(|c| c.label.as_str()).collect();
    let width = |cells: &[String]| cells.iter().map(String::len).max().unwrap_or(0);
    let grid = m.differing_verdicts();
    if grid.is_empty() {
        println!("\nverdicts: the same on every kernel");
    } else {
        println!("\nverdicts that differ:");
        let names: Vec<String> = grid.iter().map(|(c, _)| c.clone()).collect();
        let w = width(&names).max(4);
        print!("  {:<w$}", "case");
        for l in &labels {
            print!("  {l:<10}");
        }
        println!();
        for (case, cells) in &grid {
            print!("  {case:<w$}");
            for c in cells {
                print!("  {:<10}", c.map_or("-", |v| table::verdict_name(v)));
            }
            println!();
        }
    }
    let obs = m.differing_observations();
    if !obs.is_empty() {
        println!("\nobservations that differ:");
        for (case, key, cells) in &obs {
            println!("  {case} {key}");
            for (l, v) in labels.iter().zip(cells) {
                let v = v.as_deref().unwrap_or("(none)");
                let v = if v.chars().count() > 100 {
                    format!("{}...", v.chars().take(100).collect::<String>())
                } else {
                    v.to_string()
                };
                println!("    {l:<10} {v}");
            }
        }
    }
    println!("\nmatrix: {}", m.dir.join("matrix.html").display());
    let covered: Vec<(String, &Run)> = m
        .columns
        .iter()
        .filter_map(|c| Some((c.label.clone(), c.outcome.as_ref().ok()?)))
        .collect();
    let coverage_code = crate::coverage::print_side_by_side(&covered);
    if coverage_code != 0 && code == 0 {
        code = coverage_code;
    }
    let runs: Vec<&Run> = covered.iter().map(|(_, r)| *r).collect();
    let written = args.reports.write(&runs, Some(&m.dir));
    if written != 0 && code == 0 {
        code = written;
    }
    match harness::env::interrupt::requested() {
        Some(sig) => 128 + sig,
        None => code,
    }
}

/// `bench --matrix`: the catalog on every Debian series, two at a time, warm (a first,
/// uncounted pass fetches what is missing); with `clean`, first the fetch of one series
/// afresh.
pub fn bench(clean: bool) -> i32 {
    let cache = harness::env::cache::dir();
    if clean {
        // The lists' lock is let go before the fetch takes it again.
        let offer = harness::env::apt::Apt::new(&cache)
            .and_then(|apt| harness::kernel::debian::offer(&apt, "7.3"));
        match offer {
            Ok(offer) => {
                offer.forget(&cache);
                let started = std::time::Instant::now();
                if let Err(e) = harness::kernel::debian::fetch("7.3", &cache) {
                    return fail(&e);
                }
                println!(
                    "first fetch of series 7.3 ({}): {:.1} s",
                    offer.packaging.packages().join(" + "),
                    started.elapsed().as_secs_f64()
                );
            }
            Err(e) => return fail(&e),
        }
    }
    let kernels = vec!["debian:all".to_string()];
    let quiet = |_: &harness::loops::matrix::Progress| {};
    // Warm-up: fetches, agent build, KVM probe.
    if let Err(e) = harness::loops::matrix::run(&kernels, 2, &Request::default(), &quiet) {
        return fail(&e);
    }
    let m = match harness::loops::matrix::run(&kernels, 2, &Request::default(), &quiet) {
        Ok(m) => m,
        Err(e) => return fail(&e),
    };
    for c in &m.columns {
        match &c.outcome {
            Ok(run) => println!(
                "  {:<6} {:<28} {:>5.1} s  {}",
                c.label,
                run.kernel_release,
                c.elapsed.as_secs_f64(),
                table::totals(&run.results)
            ),
            Err(e) => println!("  {:<6} did not run: {e}", c.label),
        }
    }
    println!(
        "matrix of {} series, --jobs 2, warm: {:.1} s",
        m.columns.len(),
        m.elapsed.as_secs_f64()
    );
    if m.all_ok() {
        0
    } else {
        1
    }
}
