//! `run` and `replay`: a run's results as they arrive, its table, its snapshot, its reports.

use harness::results::record::Run;
use harness::results::snapshot::{self, Comparison, Policy, Settled};
use harness::results::table;
use harness::Event;

use crate::args::{Reports, RunArgs};
use crate::coverage;
use crate::fail::fail;

/// Print each result as it arrives.
fn live(event: &Event) {
    match event {
        Event::Hello {
            kernel_release,
            cases,
            ..
        } => {
            eprintln!("agent up on {kernel_release}, {} cases", cases.len())
        }
        Event::Result(r) => {
            eprintln!(
                "  {:5}  {} ({} ms)",
                table::verdict_name(r.verdict),
                r.case,
                r.duration_ms
            )
        }
        Event::Start { .. } | Event::Coverage { .. } | Event::Done => {}
    }
}

pub(crate) fn run(args: &RunArgs) -> i32 {
    let partial = !args.target.cases.is_empty() || args.target.shard.is_some();
    let policy = match Policy::new(args.bless, partial) {
        Ok(p) => p,
        Err(e) => return fail(&e),
    };
    let run = match harness::run::run(&args.target.request(), &mut live) {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };
    let code = conclude(&run, policy);
    let code = match coverage::print(&run) {
        0 => code,
        e => e,
    };
    match args.reports.write(&[&run], None) {
        0 => code,
        e => e,
    }
}

/// Print a run, settle its snapshot (compare, or write with --bless), and say how it ended:
/// what `run` and `replay` share.
fn conclude(run: &Run, policy: Policy) -> i32 {
    print_run(run);
    let settled = match policy.settle(run) {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    print_settled(run, &settled);
    if let Settled::Compared(Comparison::Differs { path, .. }) = &settled {
        eprintln!("error: {}", harness::Error::SnapshotMismatch(path.clone()));
    }
    snapshot::exit_code(run, Some(&settled))
}

/// One run's snapshot line(s): written, matched (and what it does not know), missing, or the
/// diff.
pub(crate) fn print_settled(run: &Run, settled: &Settled) {
    match settled {
        Settled::Written(p) => println!("snapshot written: {}", p.display()),
        Settled::Compared(Comparison::Match { unknown }) => {
            println!("snapshot: matches {}", snapshot::name_of(run));
            if !unknown.is_empty() {
                let more = if unknown.len() > 5 {
                    format!(" and {} more", unknown.len() - 5)
                } else {
                    String::new()
                };
                println!(
                    "snapshot: not in it (not compared): {}{more}",
                    unknown[..unknown.len().min(5)].join(", ")
                );
            }
        }
        Settled::Compared(Comparison::Missing(p)) => println!(
            "snapshot: none for these cases at {} (--bless writes it)",
            p.display()
        ),
        Settled::Compared(Comparison::Differs { diff, .. }) => println!("{diff}"),
    }
}

pub(crate) fn replay(dir: &std::path::Path, reports: &Reports, with_coverage: bool) -> i32 {
    match harness::results::replay::replay(dir) {
        Ok(run) => match (
            conclude(&run, Policy::Compare),
            if with_coverage {
                coverage::print(&run)
            } else {
                0
            },
            reports.write(&[&run], None),
        ) {
            (code, 0, 0) => code,
            (_, 0, e) | (_, e, _) => e,
        },
        Err(e) => fail(&e),
    }
}

fn print_run(run: &Run) {
    println!();
    println!("{}", table::identity(&run.identity, &run.mode));
    print!("{}", table::table(&run.results));
    println!("{}", table::totals(&run.results));
    for r in &run.results {
        let details = table::details(r);
        if !details.is_empty() {
            print!("\n{details}");
        }
    }
    if let Some(why) = &run.died {
        println!("the guest did not finish: {why}");
    }
    println!("artifacts: {}", run.artifacts.display());
}
