//! `test`: the tidy gate, the unit tests, then the end-to-end suite.

use std::process::Command;

/// The tidy gate first (it takes seconds and fails fastest), then unit tests, then the
/// end-to-end suite.
pub(crate) fn test(full: bool) -> i32 {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let root = harness::env::cache::workspace_root();
    // End-to-end tests side by side, one per core: most of their time is spent waiting
    // (boot and case timeouts, kernel timers, downloads), and each builds or boots what it
    // shares under the cache's locks. The throughput suite measures speed: alone.
    let threads = format!(
        "--test-threads={}",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let mut side_by_side: Vec<&str> = vec![
        "test",
        "--package",
        "e2e",
        "--test",
        "e2e",
        "--test",
        "kernels",
        "--test",
        "devloop",
        "--",
        &threads,
    ];
    let mut alone: Vec<&str> = vec![
        "test",
        "--package",
        "e2e",
        "--test",
        "throughput",
        "--",
        "--test-threads=1",
    ];
    if full {
        side_by_side.push("--include-ignored");
        alone.push("--include-ignored");
    }
    let steps: [(&str, &[&str]); 6] = [
        ("tidy: rustfmt", &["fmt", "--all", "--check"]),
        (
            "tidy: clippy",
            &[
                "clippy",
                "--workspace",
                "--all-targets",
                "--quiet",
                "--",
                "-D",
                "warnings",
            ],
        ),
        // RUSTDOCFLAGS below: a doc link that no longer resolves fails the gate.
        (
            "tidy: rustdoc links",
            &["doc", "--workspace", "--no-deps", "--quiet"],
        ),
        (
            "unit and tidy tests",
            &[
                "test",
                "--package",
                "proto",
                "--package",
                "guest",
                "--package",
                "harness",
                "--package",
                "xtask",
            ],
        ),
        ("end-to-end suite", &side_by_side),
        ("end-to-end throughput", &alone),
    ];
    for (what, args) in steps {
        eprintln!("== {what}: cargo {}", args.join(" "));
        let mut cmd = Command::new(&cargo);
        cmd.args(args).current_dir(&root);
        if args[0] == "doc" {
            cmd.env("RUSTDOCFLAGS", "-D rustdoc::broken_intra_doc_links");
        }
        let ok = cmd.status().is_ok_and(|s| s.success());
        if !ok {
            eprintln!("error: {what} failed");
            return 1;
        }
    }
    0
}
