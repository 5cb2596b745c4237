//! `replay` on real saved runs (Debian 6.12 under TCG, taken with `cargo xtask run --case
//! ...` and copied from target/fpt-runs/): the results re-derived from the files alone.
//!
//! - `runs/pass`: init.offer, ids.close_unknown, io.passthrough_round_trip;
//! - `runs/panic`: init.depth_zero, selftest.panic (sysrq c), ids.close_unknown;
//! - `runs/hang`: init.depth_zero, selftest.hang (the guest stops), ids.close_unknown.

use std::path::{Path, PathBuf};

use harness::Verdict;

fn saved(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/runs")
        .join(name)
}

fn verdicts(run: &harness::results::record::Run) -> Vec<Verdict> {
    run.results.iter().map(|r| r.verdict).collect()
}

#[test]
fn a_passing_run_replays_to_the_same_results() {
    let run = harness::results::replay::replay(&saved("pass")).unwrap();
    assert_eq!(verdicts(&run), [Verdict::Pass; 3]);
    assert_eq!(run.kernel_release, "6.12.117+deb13-cloud-amd64");
    assert!(run.died.is_none());
    assert_eq!(run.results[2].observations["read_requests"], 0);
    assert!(matches!(
        harness::results::snapshot::compare(
            &harness::results::snapshot::name_of(&run),
            &run.results
        ),
        harness::results::snapshot::Comparison::Match { .. }
    ));
}

#[test]
fn a_panic_replays_to_a_crash_with_its_console() {
    let run = harness::results::replay::replay(&saved("panic")).unwrap();
    assert_eq!(
        verdicts(&run),
        [Verdict::Pass, Verdict::Crash, Verdict::NotReached]
    );
    let crash = run.results[1].crash.as_ref().unwrap();
    assert_eq!(
        crash.cause,
        "Kernel panic - not syncing: sysrq triggered crash"
    );
    assert_eq!(crash.console_tail.len(), 20);
    assert!(
        crash.console_tail[19].contains("Kernel Offset"),
        "{crash:?}"
    );
    assert!(
        run.results[1].findings.is_empty(),
        "the panic is the cause, not also a finding"
    );
    assert_eq!(
        run.results[2].reason,
        "not reached: the guest went down during selftest.panic"
    );
}

#[test]
fn a_hang_replays_with_its_task_dump() {
    let run = harness::results::replay::replay(&saved("hang")).unwrap();
    assert_eq!(
        verdicts(&run),
        [Verdict::Pass, Verdict::Hang, Verdict::NotReached]
    );
    assert!(
        run.results[1]
            .reason
            .starts_with("the guest stopped responding during selftest.hang; blocked tasks:"),
        "{}",
        run.results[1].reason
    );
    assert_eq!(
        run.results[1].duration_ms, 10_000,
        "from ending.json: how long the case had run"
    );
    assert_eq!(
        run.died.as_deref(),
        Some("the guest stopped responding during selftest.hang")
    );
}

#[test]
fn a_directory_that_is_not_a_run_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let err = harness::results::replay::replay(dir.path()).unwrap_err();
    assert_eq!(err.exit_code(), 22);
    assert!(
        err.to_string()
            .contains("is not a run's artifacts directory: plan.json"),
        "{err}"
    );
}
