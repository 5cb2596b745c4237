//! `cargo xtask mutate`: the progress bar and the report only; the work is in
//! `harness::loops::mutate`.

use std::time::Duration;

use harness::loops::mutate::{self, report, Fate, Scope};

use crate::args::Target;
use crate::fail::fail;

/// Mutants of the series' lines (or of `--file`s, `--function`s), each built and run on the
/// cases that reach it. Exit 0 when every mutant judged was killed or is explained as
/// equivalent in docs/mutants.md, 1 when one survived, 130 when interrupted (the next run with
/// the same arguments goes on from there).
pub fn mutate(target: &Target, files: &[String], functions: &[String]) -> i32 {
    let scope = match (files, functions) {
        ([], []) => Scope::Patch,
        (files, []) => Scope::Files(files.to_vec()),
        ([], functions) => Scope::Functions(functions.to_vec()),
        _ => {
            eprintln!("error: mutate takes --file or --function, not both");
            return 2;
        }
    };
    let mut build = target.source.request();
    // The bar is the progress: make's own live line would fight it.
    build.progress = false;
    let req = mutate::Request {
        build,
        scope,
        template: target.request(),
    };
    let bar = indicatif::ProgressBar::new(0);
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    bar.set_style(
        indicatif::ProgressStyle::with_template("mutants {pos}/{len} · {msg}").expect("template"),
    );
    bar.enable_steady_tick(Duration::from_millis(500));
    let result = mutate::run(&req, &mut |p| {
        bar.set_length(p.total as u64);
        bar.set_position(p.done as u64);
        let left = p
            .left
            .map_or(String::new(), |d| format!("about {} s left", d.as_secs()));
        bar.set_message(left.clone());
        if let Some(o) = p.last {
            // Without a terminal the bar is hidden: each line says where the run stands.
            // (Asked here: the bar is locked while it is suspended.)
            let whereabouts = match (bar.is_hidden(), left.is_empty()) {
                (false, _) => String::new(),
                (true, true) => format!(" ({}/{})", p.done, p.total),
                (true, false) => format!(" ({}/{}, {left})", p.done, p.total),
            };
            bar.suspend(|| {
                eprintln!(
                    "  {:<36} {}:{} {}{whereabouts}",
                    fate(o),
                    o.mutant.file,
                    o.mutant.line,
                    o.mutant.operator,
                )
            });
        }
    });
    bar.finish_and_clear();
    let m = match result {
        Ok(m) => m,
        Err(e) => return fail(&e),
    };
    println!();
    print!("{}", report::text(&m.outcomes));
    println!(
        "\nmutants: {} {}",
        m.dir.join(report::JSON).display(),
        m.dir.join(report::HTML).display()
    );
    println!(
        "baseline: {} (coverage: {})",
        m.baseline.display(),
        m.baseline.join("coverage/html/index.html").display()
    );
    if m.interrupted {
        println!(
            "interrupted: {} of the mutants judged are kept in {}; the same command goes on from there",
            m.outcomes.len(),
            m.state.display()
        );
        return 130;
    }
    let survived = m
        .outcomes
        .iter()
        .any(|o| o.fate == Fate::Survived && o.equivalent.is_none());
    i32::from(survived)
}

/// The report's name for the fate, with the case that noticed; a survivor shouted.
fn fate(o: &mutate::Outcome) -> String {
    match &o.fate {
        Fate::Killed { case, .. } => format!("{} by {case}", report::fate_name(o)),
        Fate::Survived if o.equivalent.is_none() => "SURVIVED".into(),
        _ => report::fate_name(o),
    }
}
