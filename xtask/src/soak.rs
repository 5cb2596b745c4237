//! `soak`: one target run again and again; what was not the same each time.

use harness::results::table;

use crate::args::Target;
use crate::fail::fail;

pub(crate) fn soak(target: &Target, runs: u32) -> i32 {
    let soak = harness::loops::soak::soak(&target.request(), runs, &mut |i, run| {
        let first = run
            .timings
            .first_result_after
            .map_or(0.0, |d| d.as_secs_f64());
        println!(
            "run {i}/{runs}: {} | guest {:.1} s (first result after {first:.1} s)",
            table::totals(&run.results),
            run.timings.guest_wall.as_secs_f64()
        );
    });
    let soak = match soak {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    for (case, outcomes) in soak.flaky() {
        println!("\nflaky: {case}");
        for (outcome, n) in outcomes {
            println!("  {n}x {}", outcome.replace('\n', "\n      "));
        }
    }
    println!(
        "\nQEMU processes left running: {}; runs with complete artifacts: {}/{runs}",
        soak.qemu_left, soak.complete
    );
    for (case, (worst, timeout)) in &soak.downs {
        println!("{case}: crash/hang reported at most {worst:.1} s after the case started (its timeout: {timeout} s)");
    }
    let (median, min, max) = harness::loops::stats::spread(&soak.guest_secs);
    println!(
        "{runs} runs of {} cases: {} flaky; guest time min {min:.1} s, median {median:.1} s, max {max:.1} s",
        soak.outcomes.len(),
        soak.flaky().len(),
    );
    if soak.ok() {
        0
    } else {
        1
    }
}
