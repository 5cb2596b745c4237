//! End to end: real kernels, real QEMU, real /dev/fuse. Each test runs every case on one
//! kernel, asserts the verdicts, and compares the observations with that kernel series'
//! snapshot. The bad-input tests drive `cargo xtask` itself and check its exit codes.

use proto::observation as key;
use std::process::Command;

use harness::kernel::KernelChoice;
use harness::results::record::Run;
use harness::results::snapshot;
use harness::run::Request;
use harness::Verdict;

fn run_on(kernel: &str) -> Run {
    let req = Request {
        kernel: KernelChoice::parse(kernel),
        ..Default::default()
    };
    let run = harness::run::run(&req, &mut |_| {}).unwrap_or_else(|e| panic!("{kernel}: {e}"));
    eprintln!(
        "{}\n{}\nartifacts: {}",
        harness::results::table::table(&run.results),
        harness::results::table::totals(&run.results),
        run.artifacts.display()
    );
    run
}

/// The snapshot first (so a change in behaviour shows as a diff), then the verdicts.
fn check(run: &Run) {
    if let Err(diff) = snapshot::check_whole(&snapshot::name_of(run), &run.results) {
        panic!("{diff}");
    }
    let bad: Vec<String> = run
        .results
        .iter()
        .filter(|r| !r.verdict.is_ok())
        .map(|r| format!("{} {:?}: {}", r.case, r.verdict, r.reason))
        .collect();
    assert!(
        bad.is_empty(),
        "cases failed on {}:\n{}",
        run.kernel_release,
        bad.join("\n")
    );
}

#[test]
fn debian_6_12_in_qemu() {
    let run = run_on("debian-6.12");
    check(&run);
    assert_nothing_skipped_for_want_of_passthrough(&run);
}

/// A kernel with passthrough: no case may skip for want of it (other skips, such as a
/// fusectl file that mainline does not have, are fine).
fn assert_nothing_skipped_for_want_of_passthrough(run: &Run) {
    let skipped: Vec<&str> = run
        .results
        .iter()
        .filter(|r| r.verdict == Verdict::Skip && r.reason == proto::wire::NO_PASSTHROUGH)
        .map(|r| r.case.as_str())
        .collect();
    assert!(
        skipped.is_empty(),
        "skipped for want of passthrough on {}: {skipped:?}",
        run.kernel_release
    );
}

#[test]
fn debian_6_1_in_qemu_skips_every_passthrough_case() {
    let run = run_on("debian-6.1");
    check(&run);
    for r in &run.results {
        // The controls: files the server serves itself.
        if [
            "io.cached_round_trip",
            "io.mmap_without_passthrough",
            "io.splice_into_cached",
            "io.writeback_cache_flushed_at_release",
            "open_reply.stream_and_nonseekable",
        ]
        .contains(&r.case.as_str())
        {
            assert_eq!(
                r.verdict,
                Verdict::Pass,
                "{}: a control needs no passthrough",
                r.case
            );
        } else if r.case.starts_with("uring.") {
            // Newer than passthrough: its own gate says why first (buffer pools: 7.3).
            let pools = ["uring.zero_copy", "uring.registered_pool"];
            let since = match r.case.starts_with("uring.pool.") || pools.contains(&r.case.as_str())
            {
                true => "7.3",
                false => "6.14",
            };
            assert_eq!(r.verdict, Verdict::Skip, "{}", r.case);
            assert!(r.reason.contains(since), "{}: {}", r.case, r.reason);
        } else {
            assert_eq!(r.verdict, Verdict::Skip, "{}", r.case);
            assert_eq!(r.reason, proto::wire::NO_PASSTHROUGH, "{}", r.case);
        }
    }
}

#[test]
fn host_kernel() {
    let run = run_on("host");
    check(&run);
    assert_nothing_skipped_for_want_of_passthrough(&run);
}

/// A slow case (one that waits on a kernel timer) stays out of a run that names no case and
/// runs when a pattern takes it.
#[test]
fn a_slow_case_runs_when_a_pattern_names_it() {
    let host = harness::run::run(
        &Request {
            kernel: KernelChoice::parse("host"),
            cases: vec!["faults.request_*".into()],
            ..Default::default()
        },
        &mut |_| {},
    )
    .expect("the host runs cases");
    let names: Vec<&str> = host.results.iter().map(|r| r.case.as_str()).collect();
    assert_eq!(names, ["faults.request_timeout"]);
    let r = &host.results[0];
    assert_eq!(r.verdict, Verdict::Pass, "{}", r.reason);
    let (_, catalog) = harness::boot::agent::build_with_catalog().expect("the agent builds");
    let default = harness::boot::agent::select(&catalog, &[], false).unwrap();
    assert!(default.iter().all(|c| c.name != "faults.request_timeout"));
}

/// A selection longer than the kernel command line carries as names (every other case of
/// the default run, no group whole: over a thousand bytes) reaches the guest whole, as the
/// bitmap `proto::catalog::cases_param` makes of it, and runs in catalog order.
#[test]
fn a_long_selection_reaches_the_guest_whole() {
    let (_, catalog) = harness::boot::agent::build_with_catalog().expect("the agent builds");
    let picked: Vec<String> = harness::boot::agent::select(&catalog, &[], false)
        .unwrap()
        .iter()
        .step_by(2)
        .map(|c| c.name.clone())
        .collect();
    let names: Vec<&str> = picked.iter().map(String::as_str).collect();
    let param = proto::catalog::cases_param(&names, &catalog);
    assert!(param.starts_with('@'), "{param}");
    let run = harness::run::run(
        &Request {
            cases: picked.clone(),
            jobs: Some(1),
            ..Default::default()
        },
        &mut |_| {},
    )
    .expect("the guest booted");
    let ran: Vec<&str> = run.results.iter().map(|r| r.case.as_str()).collect();
    assert_eq!(ran, names);
}

/// `cargo xtask run ARGS`: (exit code, stderr).
fn xtask(args: &[&str]) -> (i32, String) {
    xtask_with_env(args, &[])
}

fn xtask_with_env(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(harness::env::cache::workspace_root())
        .envs(env.iter().copied())
        .args(["run", "--quiet", "--package", "xtask", "--"])
        .args(if args.first() == Some(&"validate") {
            &[][..]
        } else {
            &["run"][..]
        })
        .args(args)
        .output()
        .expect("cargo runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Run `cases` in one boot of the default kernel: the run and its verdicts, in order.
fn run_cases(cases: &[&str]) -> (Run, Vec<Verdict>) {
    let req = Request {
        cases: cases.iter().map(|c| c.to_string()).collect(),
        ..Default::default()
    };
    let run = harness::run::run(&req, &mut |_| {}).expect("the guest booted");
    let verdicts = run.results.iter().map(|r| r.verdict).collect();
    (run, verdicts)
}

fn assert_error(args: &[&str], code: i32, says: &str) {
    let (got, stderr) = xtask(args);
    assert_eq!(
        got,
        code,
        "exit code of `xtask run {}`; stderr:\n{stderr}",
        args.join(" ")
    );
    let line = stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_default();
    assert!(
        line.contains(says),
        "`xtask run {}` said {line:?}, expected it to mention {says:?}",
        args.join(" ")
    );
}

#[test]
fn bad_input_gets_a_one_line_error_and_its_own_exit_code() {
    assert_error(&["--kernel", "/nonexistent/bzImage"], 4, "no such file");
    assert_error(&["--kernel", "Cargo.toml"], 5, "not a bzImage");
    assert_error(
        &["--kernel", "host", "--case", "no.such_case"],
        7,
        "unknown case no.such_case",
    );
    let (code, stderr) = xtask_with_env(&[], &[("FPT_QEMU", "/nonexistent/qemu-system-x86_64")]);
    assert_eq!(code, 8, "missing QEMU: {stderr}");
}

#[test]
fn a_kernel_that_panics_at_boot_is_reported_with_its_console() {
    // No init where the kernel looks: it panics with "VFS: Unable to mount root fs".
    let (code, stderr) = xtask(&["--append", "rdinit=/nonexistent", "--case", "init.offer"]);
    assert_eq!(code, 6, "stderr:\n{stderr}");
    assert!(
        stderr.contains("the kernel panicked during boot: Kernel panic - not syncing"),
        "{stderr}"
    );
    assert!(
        stderr.contains("console.log"),
        "the error names the console log: {stderr}"
    );
}

#[test]
fn a_panic_mid_case_keeps_earlier_results_and_names_the_case() {
    let cases = ["init.depth_zero", "selftest.panic", "ids.close_unknown"];
    let (run, verdicts) = run_cases(&cases);
    assert_eq!(
        verdicts,
        [Verdict::Pass, Verdict::Crash, Verdict::NotReached]
    );
    let crash = run.results[1].crash.as_ref().expect("a crash record");
    assert_eq!(
        crash.cause,
        "Kernel panic - not syncing: sysrq triggered crash"
    );
    assert_eq!(run.results[1].reason, crash.cause);
    assert!(
        crash.console_tail.len() > 5,
        "the console tail comes with it: {crash:?}"
    );
    assert_eq!(
        run.results[2].reason,
        "not reached: the guest went down during selftest.panic"
    );
    let console = std::fs::read_to_string(run.artifacts.join("console.log")).unwrap();
    assert!(
        console.contains("sysrq: Trigger a crash"),
        "the whole console log is kept"
    );
}

/// The release audit after every case: a mount left busy fails the case that left it, by
/// name; a case declared to keep one busy that leaves none fails too.
#[test]
fn the_release_audit_names_what_a_case_left_busy() {
    let cases = [
        "init.depth_zero",
        "selftest.leak_busy_mount",
        "selftest.stale_keeps_busy",
    ];
    let (run, verdicts) = run_cases(&cases);
    assert_eq!(verdicts, [Verdict::Pass, Verdict::Fail, Verdict::Fail]);
    let busy = &run.results[1].reason;
    assert!(
        busy.starts_with("backing file system still busy after the case: /tmp/fpt/leaked (tmpfs)"),
        "{busy}"
    );
    assert!(
        run.results[2].reason.contains("the declaration is stale"),
        "{}",
        run.results[2].reason
    );
}

#[test]
fn a_hung_guest_is_stopped_and_keeps_earlier_results() {
    let cases = ["init.depth_zero", "selftest.hang", "ids.close_unknown"];
    let (run, verdicts) = run_cases(&cases);
    assert_eq!(
        verdicts,
        [Verdict::Pass, Verdict::Hang, Verdict::NotReached]
    );
    let hang = &run.results[1].reason;
    assert!(
        hang.starts_with("the guest stopped responding during selftest.hang; blocked tasks:"),
        "{hang}"
    );
    assert_eq!(
        run.results[1].crash.as_ref().unwrap().cause,
        "the guest stopped responding during selftest.hang"
    );
    let dump = std::fs::read_to_string(run.artifacts.join("task-dump.txt")).unwrap();
    assert!(
        dump.contains("sysrq: Show Blocked State"),
        "sysrq w answered: {dump}"
    );
    assert!(dump.contains("sysrq: Show State"), "sysrq t answered");
}

#[test]
fn linux_source_7_3_built_from_source() {
    // The vng profile (minimal and what virtme-ng needs): the build entry the devloop
    // suite's series and the kernels suite's vng backend use too, so it is built once.
    let req = Request {
        kernel: KernelChoice::Build(harness::kernel::build::BuildRequest {
            profile: Some("vng".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let run = harness::run::run(&req, &mut |_| {}).unwrap_or_else(|e| panic!("built kernel: {e}"));
    eprintln!(
        "{}\n{}",
        harness::results::table::identity(&run.identity, &run.mode),
        harness::results::table::table(&run.results)
    );
    assert!(
        run.identity.source.starts_with("linux-source-7.3 "),
        "{:?}",
        run.identity
    );
    assert_eq!(run.identity.profile, "vng");
    assert_eq!(run.identity.config_hash.len(), 16);
    // Compared with the same snapshot as Debian's 7.3 build: the same kernel series.
    check(&run);
    assert_nothing_skipped_for_want_of_passthrough(&run);
}

#[test]
fn bad_kernel_sources_get_their_own_errors() {
    let scratch = tempfile::tempdir().unwrap();
    let not_a_tree = scratch.path().join("empty");
    std::fs::create_dir_all(&not_a_tree).unwrap();
    assert_error(
        &["--src", not_a_tree.to_str().unwrap()],
        15,
        "is not a kernel tree",
    );

    let patch = scratch.path().join("0001-does-not-apply.patch");
    std::fs::write(
        &patch,
        "From 0 Mon Sep 17 00:00:00 2001\nSubject: [PATCH] no\n\n---\n\
         diff --git a/fs/fuse/passthrough.c b/fs/fuse/passthrough.c\n\
         --- a/fs/fuse/passthrough.c\n+++ b/fs/fuse/passthrough.c\n\
         @@ -1,3 +1,3 @@\n no such line one\n-no such line two\n+replaced\n no such line three\n",
    )
    .unwrap();
    assert_error(
        &["--patch", patch.to_str().unwrap()],
        14,
        "patch 0001-does-not-apply.patch does not apply",
    );

    assert_error(&["--profile", "nope"], 17, "unknown profile nope");

    // A series that applies but leaves a tree that does not build (here its Kconfig, so the
    // failure comes in seconds): make's errors and exit 18.
    let breaks = scratch.path().join("0001-breaks-kconfig.patch");
    std::fs::write(
        &breaks,
        "From 0 Mon Sep 17 00:00:00 2001\nSubject: [PATCH] break\n\n---\n\
         diff --git a/arch/x86/Kconfig b/arch/x86/Kconfig\n\
         --- a/arch/x86/Kconfig\n+++ b/arch/x86/Kconfig\n\
         @@ -1,2 +1,3 @@\n # SPDX-License-Identifier: GPL-2.0\n+this is not kconfig\n # Select 32 or 64 bit\n",
    )
    .unwrap();
    let (code, stderr) = xtask(&["--patch", breaks.to_str().unwrap()]);
    assert_eq!(code, 18, "{stderr}");
    // The entry's config is made already (the series is not part of it): kbuild's
    // syncconfig in make bzImage is what reads the broken Kconfig.
    assert!(
        stderr.contains("error: make bzImage failed (log: ") && stderr.contains("syncconfig"),
        "{stderr}"
    );

    let fragment = scratch.path().join("bad.config");
    std::fs::write(
        &fragment,
        "CONFIG_FPT_NO_SUCH_OPTION=y\n# CONFIG_FUSE_FS is not set\n",
    )
    .unwrap();
    let (code, stderr) = xtask(&["--fragment", fragment.to_str().unwrap()]);
    assert_eq!(code, 16, "{stderr}");
    assert!(
        stderr.contains("CONFIG_FPT_NO_SUCH_OPTION (bad.config): unknown option"),
        "{stderr}"
    );
    assert!(
        stderr.contains("CONFIG_FUSE_PASSTHROUGH=y (base.config): did not survive olddefconfig"),
        "{stderr}"
    );
}

#[test]
fn a_kernel_report_fails_the_case_it_appeared_in() {
    // A real hung task: a writer stuck on the inode lock behind a stalled FUSE server.
    let cases = ["init.depth_zero", "selftest.hung_task", "ids.close_unknown"];
    let (run, verdicts) = run_cases(&cases);
    assert_eq!(
        verdicts,
        [Verdict::Pass, Verdict::Fail, Verdict::Pass],
        "{:?}",
        run.results
    );
    assert!(
        run.results[1]
            .reason
            .starts_with("kernel reported hung task: INFO: task "),
        "{}",
        run.results[1].reason
    );
    assert_eq!(
        run.results[1].findings[0].kind,
        proto::FindingKind::HungTask
    );
    let findings = std::fs::read_to_string(run.artifacts.join("findings.json")).unwrap();
    assert!(
        findings.contains("\"case\": \"selftest.hung_task\""),
        "{findings}"
    );
    assert!(findings.contains("\"kind\": \"hung_task\""), "{findings}");
}

#[test]
fn a_case_that_can_wedge_the_kernel_runs_in_a_boot_of_its_own() {
    // Parallel direct writes + a cached open + mmap of one inode: the hang fixed in 6.12.
    // On Debian's 6.12 the open returns; `--isolate` gives the case (and each other) its boot.
    let cases = ["faults.parallel_dio_cached_open_mmap", "init.depth_zero"];
    let req = Request {
        cases: cases.iter().map(|c| c.to_string()).collect(),
        isolate: true,
        ..Default::default()
    };
    let run = harness::run::run(&req, &mut |_| {}).expect("the guests booted");
    let verdicts: Vec<Verdict> = run.results.iter().map(|r| r.verdict).collect();
    assert_eq!(
        verdicts,
        [Verdict::Pass, Verdict::Pass],
        "{:?}",
        run.results
    );
    for case in cases {
        assert!(
            run.artifacts.join(case).join("console.log").is_file(),
            "{case} has its own boot and console"
        );
    }
}

/// libfuse 3.18 on Debian's 6.12 and on this machine's kernel: the default tier's one
/// library. `cargo xtask test --full` runs every built-in target the same way.
#[test]
fn validate_libfuse_on_debian_6_12_and_the_host_kernel() {
    validate_target("libfuse");
}

/// libfuse 3.18 over FUSE over io_uring (`validate --transport uring`) on Debian's 7.3: every
/// validate case, each with the kernel's own count of the requests it queued on the
/// server's ring (and none for /dev/fuse once the ring is up), against its snapshot. The
/// same binary given by path without `-o io_uring` fails the ring's verdict; a kernel
/// before 6.14 and a server without the transport skip, saying why.
#[test]
fn validate_libfuse_over_io_uring() {
    use proto::validate::Transport;
    let cache = harness::env::cache::dir();
    let on = |kernel: &str, spec: &proto::validate::Spec, cases: &[&str]| {
        let req = Request {
            kernel: KernelChoice::parse(kernel),
            cases: cases.iter().map(|c| c.to_string()).collect(),
            ..Default::default()
        };
        let runs =
            harness::validate::validate(&spec.clone().on(Transport::Uring), &[req], &mut |_| {})
                .expect("the server under test runs");
        runs.into_iter().next().expect("one run")
    };
    let libfuse = harness::validate::targets::resolve("libfuse", &[], &cache).unwrap();
    assert!(
        libfuse.uring_args.is_some(),
        "libfuse 3.18 is built with liburing"
    );
    let run = on("debian:7.3", &libfuse, &[]);
    check(&run);
    for r in run.results.iter().filter(|r| r.verdict == Verdict::Pass) {
        let ring = r
            .observations
            .get(key::RING_REQUESTS)
            .and_then(|v| v.as_u64());
        assert!(
            ring.is_some_and(|n| n > 0),
            "{}: {ring:?} over the ring",
            r.case
        );
    }

    // Without its ring switch: the kernel's count says no request came over a ring.
    let plain = harness::validate::targets::resolve(
        &libfuse.server,
        &[
            "{source}".into(),
            "{mountpoint}".into(),
            "--foreground".into(),
        ],
        &cache,
    )
    .unwrap();
    let run = on("debian:7.3", &plain, &["validate.round_trip"]);
    assert_eq!(
        run.results[0].verdict,
        Verdict::Fail,
        "{}",
        run.results[0].reason
    );
    assert!(run.results[0]
        .reason
        .contains("no request of the case came over the server's ring"));

    // No transport: a kernel before 6.14, a server that does not speak it.
    let mirror = harness::validate::targets::resolve("fuser-mirror", &[], &cache).unwrap();
    for (kernel, spec, says) in [
        ("debian:6.12", &libfuse, "FUSE over io_uring came in 6.14"),
        ("debian:7.3", &mirror, "does not speak FUSE over io_uring"),
    ] {
        let run = on(kernel, spec, &["validate.round_trip"]);
        assert_eq!(run.results[0].verdict, Verdict::Skip, "{kernel}");
        assert!(
            run.results[0].reason.contains(says),
            "{}",
            run.results[0].reason
        );
    }
}

#[test]
#[ignore = "full tier: cargo xtask test --full"]
fn validate_libfuse_3_17() {
    validate_target("libfuse-3.17");
}

/// libfuse 3.14.0's passthrough_hp leaves `.` and `..` out of READDIR (fixed in 3.17.1 by
/// 170edc6a, "passthrough_hp: include . and .. in readdir"; 3.17 passes).
#[test]
#[ignore = "full tier: cargo xtask test --full"]
fn validate_libfuse_3_14() {
    validate_release(
        "libfuse-3.14",
        &[(
            "validate.readdir",
            "READDIR through the mount lacks 2 of {source}'s names: ., ..",
        )],
    );
}

#[test]
#[ignore = "full tier: cargo xtask test --full"]
fn validate_go_fuse() {
    validate_target("go-fuse");
}

/// go-fuse 2.8.0's loopback opens with openat2, which refuses the kernel's `__FMODE_EXEC`
/// (EINVAL): no program on the mount runs (fixed in 2.9.0 by fa6ae5a0, "fs: filter out
/// FMODE_EXEC from Open calls"; go-fuse passes).
#[test]
#[ignore = "full tier: cargo xtask test --full"]
fn validate_go_fuse_2_8() {
    validate_release(
        "go-fuse-2.8",
        &[(
            "validate.exec",
            "exec of {source}'s program through the mount: EINVAL",
        )],
    );
}

/// go-fuse 2.4.2's loopback sets a symlink's times on its target (fixed in 2.6.0 by
/// 1e27f6dd, "fs: fix setting timestamps on broken symlinks"; go-fuse passes).
#[test]
#[ignore = "full tier: cargo xtask test --full"]
fn validate_go_fuse_2_4() {
    validate_release(
        "go-fuse-2.4",
        &[(
            "validate.attributes",
            "SETATTR mtime of symlink l (AT_SYMLINK_NOFOLLOW)",
        )],
    );
}

#[test]
#[ignore = "full tier: cargo xtask test --full"]
fn validate_fuser_mirror() {
    validate_target("fuser-mirror");
}

#[test]
#[ignore = "full tier: cargo xtask test --full"]
fn validate_fuser_example() {
    validate_target("fuser");
}

/// fuse-backend-rs 0.14's PassthroughFs leaves `.` and `..` out of READDIR on purpose
/// (`sync_io.rs`: "We don't want to report the "." and ".." entries"), as libfuse's
/// passthrough_hp did before 3.17.1.
#[test]
#[ignore = "full tier: cargo xtask test --full"]
fn validate_fuse_backend_rs() {
    validate_release(
        "fuse-backend-rs",
        &[(
            "validate.readdir",
            "READDIR through the mount lacks 2 of {source}'s names: ., ..",
        )],
    );
}

/// `target` on Debian's 6.12 and on this machine's kernel: the data is right and `{source}`
/// released in every case; every I/O path passes through for a target that negotiates
/// passthrough and none for those that do not (libfuse 3.14 and go-fuse 2.4 predate it,
/// fuse-backend-rs speaks 7.33); the observations match the target's snapshots.
fn validate_target(target: &str) {
    validate_release(target, &[]);
}

/// [`validate_target`] of a release that shipped `bugs`: each (case, reason) fails on every
/// kernel for that reason, and every other case passes.
fn validate_release(target: &str, bugs: &[(&str, &str)]) {
    let passthrough = !matches!(target, "libfuse-3.14" | "go-fuse-2.4" | "fuse-backend-rs");
    let spec = harness::validate::targets::resolve(target, &[], &harness::env::cache::dir())
        .unwrap_or_else(|e| panic!("{target}: {e}"));
    let kernels = [
        Request {
            kernel: KernelChoice::parse("debian-6.12"),
            ..Default::default()
        },
        Request {
            kernel: KernelChoice::Host,
            ..Default::default()
        },
    ];
    let runs = harness::validate::validate(&spec, &kernels, &mut |_| {})
        .unwrap_or_else(|e| panic!("{target}: {e}"));
    eprintln!("{}", harness::validate::table(&spec, &runs));
    for run in &runs {
        if let Err(diff) = snapshot::check_whole(&snapshot::name_of(run), &run.results) {
            panic!("{diff}");
        }
        for r in &run.results {
            match bugs.iter().find(|(case, _)| *case == r.case) {
                Some((_, reason)) => assert!(
                    r.verdict == Verdict::Fail && r.reason.contains(reason),
                    "{target} {}: {:?} {:?}, expected its shipped bug: {reason}",
                    r.case,
                    r.verdict,
                    r.reason
                ),
                None => assert!(
                    r.verdict.is_ok(),
                    "{target} {} {:?} on {}: {}",
                    r.case,
                    r.verdict,
                    run.kernel_release,
                    r.reason
                ),
            }
        }
        assert_eq!(run.results.len(), 34, "{target}: every validate case ran");
        for r in &run.results {
            let obs = |k: &str| r.observations.get(k);
            if r.verdict == Verdict::Skip {
                continue;
            }
            assert_eq!(
                obs(key::SOURCE_RELEASED).and_then(|v| v.as_str()),
                Some("ok"),
                "{target} {}: {{source}} released",
                r.case
            );
            let count = |k: &str| obs(k).and_then(|v| v.as_u64()).unwrap_or(0);
            let served = count(key::READ_REQUESTS) + count(key::WRITE_REQUESTS);
            match r.case.as_str() {
                // A backing file at stack depth 1 (ELOOP), or no CAP_SYS_ADMIN (EPERM): what
                // was refused is served.
                "validate.source_on_overlay"
                | "validate.source_on_fuse"
                | "validate.fallback_scope"
                | "validate.without_cap_sys_admin" => {
                    assert!(served > 0, "{target} {}: served after a refusal", r.case)
                }
                // Requests the server serves itself; whether the file of a TMPFILE or a
                // copy's read-back passed through is the library's choice, observed.
                "validate.names"
                | "validate.attributes"
                | "validate.fallocate"
                | "validate.copy_file_range" => {}
                _ => assert_eq!(
                    served == 0,
                    passthrough,
                    "{target} {}: served {served} requests",
                    r.case
                ),
            }
        }
        let ran = run.results.iter().filter(|r| r.verdict == Verdict::Pass);
        assert!(ran.count() > 0, "{target}: some case ran");
    }
}

/// The broken-server suite, validation's own mutation score: fuser-mirror with one bug
/// planted each (`harness::validate::targets::BROKEN`), validated on this machine's kernel
/// with the case that must catch it. Each must fail that case for its own reason, and leave
/// nothing mounted and no server running.
#[test]
fn every_broken_server_fails_for_its_own_reason() {
    let cache = harness::env::cache::dir();
    let mut missed = Vec::new();
    for broken in harness::validate::targets::BROKEN {
        let spec = harness::validate::targets::resolve(broken.name, &[], &cache)
            .unwrap_or_else(|e| panic!("{}: {e}", broken.name));
        let request = Request {
            kernel: KernelChoice::Host,
            cases: vec![broken.caught_by.to_string()],
            ..Default::default()
        };
        let runs = harness::validate::validate(&spec, &[request], &mut |_| {})
            .unwrap_or_else(|e| panic!("{}: {e}", broken.name));
        let result = runs[0]
            .results
            .iter()
            .find(|r| r.case == broken.caught_by)
            .unwrap_or_else(|| panic!("{}: {} did not run", broken.name, broken.caught_by));
        eprintln!(
            "{:<28} {:<32} {} {}",
            broken.name,
            broken.caught_by,
            result.verdict.name(),
            result.reason.lines().next().unwrap_or("")
        );
        // A server that died or hung: its own last words are in the reason too.
        let stderr_shown = broken.verdict == Verdict::Fail || result.reason.contains("planted");
        if result.verdict != broken.verdict
            || !result.reason.contains(broken.reason)
            || !stderr_shown
        {
            missed.push(format!(
                "{} ({}): {} {} {:?}, expected {} naming {:?}",
                broken.name,
                broken.what,
                broken.caught_by,
                result.verdict.name(),
                result.reason,
                broken.verdict.name(),
                broken.reason
            ));
        }
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains("fuser-mirror"),
        "a broken server's mount was left behind"
    );
    let running: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|p| std::fs::read(p.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains("fuser-mirror") && c.contains("--bug"))
        .collect();
    assert!(
        running.is_empty(),
        "a broken server outlived its case: {running:?}"
    );
    assert!(
        missed.is_empty(),
        "validation passed a broken server:\n{}",
        missed.join("\n")
    );
    assert!(harness::validate::targets::BROKEN.len() >= 8);
}

/// `--expect passthrough`: libfuse with its passthrough switched off (`--nopassthrough`, as a
/// release that lost it would behave) passes every verdict (only its snapshot differs: exit
/// 3), and with the expectation fails every path its snapshot has passed through (exit 1).
#[test]
fn expect_passthrough_fails_a_library_that_stopped_passing_through() {
    let args = [
        "validate",
        "--server",
        "libfuse",
        "--kernel",
        "host",
        "--case",
        "validate.round_trip",
        "--case",
        "validate.many_files",
    ];
    let off = [
        "--",
        "{source}",
        "{mountpoint}",
        "--foreground",
        "--nopassthrough",
    ];
    let plain = e2e::xtask(&[&args[..], &off[..]].concat());
    assert_eq!(plain.code, 3, "{}{}", plain.stdout, plain.stderr);
    assert!(plain.stdout.contains("2 cases: 2 pass"), "{}", plain.stdout);
    let expecting = e2e::xtask(&[&args[..], &["--expect", "passthrough"], &off[..]].concat());
    let out = &expecting.stdout;
    assert_eq!(expecting.code, 1, "{out}{}", expecting.stderr);
    assert!(
        out.contains("no longer passed through (--expect passthrough): validate.round_trip, validate.many_files"),
        "{out}"
    );
    assert!(
        out.contains("but passed through in validate/libfuse-host-"),
        "{out}"
    );
}

/// libfuse 3.18's own test suite (`test/run-tests.py`) on this machine's kernel: every test
/// a result of its own (`libfuse_suite.*`), read back from the KTAP report by kunit.py's
/// parser like ours. Debian's kernels run it in the full tier (`libfuse_own_suite_on_every_debian_series`).
#[test]
fn libfuse_own_suite_on_the_host_kernel() {
    let out = e2e::xtask(&[
        "validate",
        "--server",
        "libfuse",
        "--kernel",
        "host",
        "--case",
        "validate.library_suite",
        "--report",
        "ktap,junit",
    ]);
    let text = &out.stdout;
    assert!(
        text.contains("the library's own tests"),
        "{text}{}",
        out.stderr
    );
    let run = text
        .lines()
        .find_map(|l| l.strip_prefix("artifacts: "))
        .map(std::path::PathBuf::from)
        .expect("artifacts line");
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("results.json")).unwrap()).unwrap();
    let suite: Vec<&serde_json::Value> = results["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["case"].as_str().unwrap().starts_with("libfuse_suite."))
        .collect();
    assert!(
        suite.len() >= 50,
        "the suite's tests are results: {}",
        suite.len()
    );
    let passed = suite.iter().filter(|r| r["verdict"] == "pass").count();
    assert!(
        passed >= 50,
        "most of libfuse's own tests pass on this kernel: {passed}"
    );
    let counts = e2e::kunit_counts(&run.join("results.ktap"));
    assert!(
        e2e::count(&counts, "passed") >= passed as u64,
        "kunit.py reads the suite's results: {counts:?}"
    );
    // The page puts the suite's tests beside our verdicts, one column per kernel.
    let page = out.paths("page: ");
    let dom = e2e::chromium(
        &page[0],
        "1400,1000",
        &page[0].with_file_name("validate.png"),
    );
    assert!(
        dom.contains("data-case=\"validate.library_suite\"")
            && dom.matches("data-case=\"libfuse_suite.").count() == suite.len(),
        "validate.html shows our case and each of the suite's tests"
    );
}

/// The same suite on every Debian series, inside VMs, from a chroot of the host's root
/// shared over virtio-fs (about 8 minutes a series under TCG): every series runs it, and
/// validate.html shows the suite's tests beside our verdicts, one column per series.
#[test]
#[ignore = "full tier: cargo xtask test --full"]
fn libfuse_own_suite_on_every_debian_series() {
    let out = e2e::xtask(&[
        "validate",
        "--server",
        "libfuse",
        "--kernel",
        "debian:all",
        "--case",
        "validate.library_suite",
    ]);
    let text = &out.stdout;
    let row = text
        .lines()
        .find(|l| l.starts_with("the library's own tests"))
        .unwrap_or_else(|| panic!("{text}{}", out.stderr));
    let columns: Vec<u64> = row
        .split("pass")
        .filter_map(|cell| cell.split_whitespace().last()?.parse().ok())
        .collect();
    assert!(columns.len() >= 7, "every series ran the suite: {row}");
    assert!(columns.iter().all(|p| *p >= 50), "{row}");
    let page = out.paths("page: ");
    let dom = e2e::chromium(
        &page[0],
        "1800,1000",
        &page[0].with_file_name("validate.png"),
    );
    for series in ["6.1", "6.12", "7.3"] {
        assert!(
            dom.contains(&format!(
                "data-case=\"validate.library_suite\" data-kernel=\"{series}\""
            )),
            "a column for {series}"
        );
    }
}

/// A server that dies during a case (here libfuse's, killed with SIGSEGV once it has
/// mounted): that case is a crash with the signal, the next are not reached.
#[test]
fn a_server_that_dies_during_a_case_is_a_crash_with_its_signal() {
    let libfuse =
        harness::validate::targets::resolve("libfuse", &[], &harness::env::cache::dir()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("dies-once-mounted");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n{} \"$@\" &\npid=$!\nwhile ! mountpoint -q \"$2\"; do sleep 0.01; done\n\
             kill -SEGV $pid\nwait $pid\nkill -SEGV $$\n",
            libfuse.server
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let args = ["{source}", "{mountpoint}", "--foreground"].map(String::from);
    let spec =
        harness::validate::targets::resolve(&script.to_string_lossy(), &args, dir.path()).unwrap();
    let host = Request {
        kernel: KernelChoice::Host,
        cases: vec!["validate.large_file".into(), "validate.round_trip".into()],
        ..Default::default()
    };
    let runs = harness::validate::validate(&spec, &[host], &mut |_| {}).unwrap();
    let results = &runs[0].results;
    assert_eq!(results[0].verdict, Verdict::Crash, "{results:?}");
    assert!(
        results[0].reason.contains("signal 11 (SIGSEGV)"),
        "{}",
        results[0].reason
    );
    assert_eq!(results[1].verdict, Verdict::NotReached, "{results:?}");
}

/// A kernel without virtio-fs cannot run a server from the host: the error says what it
/// needs. Here Debian's 6.1, whose virtio-fs is a module (6.12's is built in), with a module
/// tree that lacks virtiofs.ko (hard links of the real one, `--modules`).
#[test]
fn validate_on_a_kernel_without_virtio_fs_names_what_it_needs() {
    let spec =
        harness::validate::targets::resolve("libfuse", &[], &harness::env::cache::dir()).unwrap();
    let debian = harness::kernel::debian::fetch("6.1", &harness::env::cache::dir()).unwrap();
    let real = debian.modules.clone().expect("Debian's kernel has modules");
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join(real.file_name().unwrap());
    let ok = std::process::Command::new("cp")
        .arg("-al")
        .arg(&real)
        .arg(&copy)
        .status()
        .unwrap()
        .success();
    assert!(ok, "cp -al {}", real.display());
    for entry in std::fs::read_dir(copy.join("kernel/fs/fuse"))
        .unwrap()
        .flatten()
    {
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with("virtiofs.ko")
        {
            std::fs::remove_file(entry.path()).unwrap();
        }
    }
    let without = Request {
        kernel: KernelChoice::Path(debian.bzimage.clone()),
        modules: Some(copy),
        cases: vec!["validate.round_trip".into()],
        ..Default::default()
    };
    let err = harness::validate::validate(&spec, &[without], &mut |_| {}).unwrap_err();
    assert_eq!(err.exit_code(), 25, "{err}");
    assert!(err.to_string().contains("CONFIG_VIRTIO_FS"), "{err}");
}

#[test]
fn a_bad_server_gets_a_one_line_error_and_its_own_exit_code() {
    let (code, stderr) = xtask(&["validate", "--server", "/nonexistent/server"]);
    assert_eq!(code, 23, "{stderr}");
    assert!(
        stderr.contains("error: server /nonexistent/server: no such file"),
        "{stderr}"
    );
    let (code, stderr) = xtask(&["validate", "--server", "/bin/false"]);
    assert_eq!(code, 24, "{stderr}");
    assert!(
        stderr.contains("error: the server under test did not start: the server exited before mounting (exit status: 1)"),
        "{stderr}"
    );
}

/// `validate --server libfuse --source PATH`: libfuse built from a source tree of one's own
/// (here the unpacked Debian 3.18.3 the libfuse target is built from: CI has no other), its
/// version said; a directory that is no libfuse tree, or another server, is exit 41; a tree
/// that does not build is the build's failure, named with its log.
#[test]
fn validate_takes_a_libfuse_source_tree() {
    let cache = harness::env::cache::dir();
    harness::validate::targets::resolve("libfuse", &[], &cache).expect("libfuse builds");
    let src = cache.join("targets/libfuse/src");
    let tree = std::fs::read_dir(&src)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.is_dir()
                && p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("fuse-")
        })
        .expect("the unpacked libfuse source");
    let tree = tree.to_str().unwrap();
    let spec = harness::validate::targets::resolve_source("libfuse", tree.as_ref(), &cache)
        .expect("the tree builds");
    assert!(spec.version.contains("source tree"), "{}", spec.version);
    let req = Request {
        kernel: KernelChoice::Host,
        cases: vec!["validate.round_trip".into()],
        ..Default::default()
    };
    let runs = harness::validate::validate(&spec, &[req], &mut |_| {}).unwrap();
    assert_eq!(
        runs[0].results[0].verdict,
        Verdict::Pass,
        "{}",
        runs[0].results[0].reason
    );

    for (server, source, says) in [
        ("libfuse", "/tmp", "not a libfuse source tree"),
        (
            "libfuse",
            "/nonexistent/tree",
            "give the top of a libfuse checkout",
        ),
        ("go-fuse", tree, "only libfuse is built from a source tree"),
    ] {
        let (code, stderr) = xtask(&["validate", "--server", server, "--source", source]);
        assert_eq!(code, 41, "{stderr}");
        assert!(stderr.contains(says), "{stderr}");
    }

    // A release that does not build: the build's failure (exit 18), its compiler error and
    // the log that holds the whole output, nothing run. The tree is a linked copy with one
    // header replaced (a link is never written through).
    let broken = tempfile::tempdir().unwrap();
    let copy = broken.path().join("libfuse");
    let linked = Command::new("cp")
        .args(["-al", tree])
        .arg(&copy)
        .status()
        .unwrap();
    assert!(linked.success());
    let header = copy.join("include/fuse_common.h");
    let text = std::fs::read_to_string(&header).unwrap();
    std::fs::remove_file(&header).unwrap();
    std::fs::write(
        &header,
        format!("#error planted: this release does not build\n{text}"),
    )
    .unwrap();
    let (code, stderr) = xtask(&[
        "validate",
        "--server",
        "libfuse",
        "--source",
        copy.to_str().unwrap(),
        "--kernel",
        "host",
    ]);
    assert_eq!(code, 18, "{stderr}");
    for says in [
        "building libfuse",
        "planted: this release does not build",
        "ninja.log",
    ] {
        assert!(stderr.contains(says), "{says}: {stderr}");
    }
}

/// No QEMU, virtiofsd or server under test outlives the harness, whatever kills it: the
/// harness is killed with SIGKILL (no handler runs) once its children are up, in a VM run
/// (QEMU and virtiofsd) and in a host run (the server under test), and within seconds no
/// process that inherited its marker is left.
#[test]
fn nothing_outlives_a_killed_harness() {
    let root = harness::env::cache::workspace_root();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let built = Command::new(cargo)
        .current_dir(&root)
        .args(["build", "--quiet", "--package", "xtask"])
        .status()
        .unwrap();
    assert!(built.success());
    for (kernel, wanted) in [
        ("debian:6.12", &["qemu-system", "virtiofsd"][..]),
        ("host", &["release/fuser-mirror "][..]),
    ] {
        let mark = format!("FPT_KILL_MARK={}-{kernel}", std::process::id());
        let (key, value) = mark.split_once('=').unwrap();
        let mut harness = Command::new(root.join("target/debug/xtask"))
            .current_dir(&root)
            .args(["validate", "--server", "fuser-mirror", "--kernel", kernel])
            .env(key, value)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // The harness's children (its own command line names the server too).
        let children = || -> Vec<String> {
            let own = format!("{} ", harness.id());
            marked(&mark)
                .into_iter()
                .filter(|c| !c.starts_with(&own))
                .collect()
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        while !wanted
            .iter()
            .all(|w| children().iter().any(|c| c.contains(w)))
        {
            assert!(
                std::time::Instant::now() < deadline,
                "{kernel}: {wanted:?} never started: {:?}",
                marked(&mark)
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let short: Vec<String> = children()
            .iter()
            .map(|c| c.chars().take(90).collect())
            .collect();
        eprintln!("{kernel}: killing the harness under {short:?}");
        harness.kill().unwrap();
        harness.wait().unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !marked(&mark).is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        assert_eq!(
            marked(&mark),
            Vec::<String>::new(),
            "{kernel}: outlived the harness"
        );
    }
}

/// The processes whose environment holds `mark`: "PID COMMAND LINE" each.
fn marked(mark: &str) -> Vec<String> {
    let mut out = Vec::new();
    for p in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(env) = std::fs::read(p.path().join("environ")) else {
            continue;
        };
        if env.split(|b| *b == 0).any(|v| v == mark.as_bytes()) {
            if let Ok(cmd) = std::fs::read(p.path().join("cmdline")) {
                let pid = p.file_name().to_string_lossy().into_owned();
                out.push(format!(
                    "{pid} {}",
                    String::from_utf8_lossy(&cmd).replace('\0', " ")
                ));
            }
        }
    }
    out
}

/// The coverage loop on the build entry the devloop series test and this suite's build from
/// source share (7.3, the newest source series, with the vng profile): coverage is a patch
/// there, so it costs fs/fuse's rebuild, not a kernel's. The patch (behaviour-preserving)
/// runs only with `--case reaches-patch`, its verdicts compared with the base run's; and
/// docs/coverage.md is held to the whole run's lines.
#[test]
fn coverage_of_7_3_a_patch_and_the_cases_that_reach_it() {
    let lines = e2e::coverage_loop(&e2e::Loop {
        build: ["--src", "debian:7.3", "--profile", "vng"],
        series: "7.3",
        files: &[
            "fs/fuse/passthrough.c",
            "fs/fuse/backing.c",
            "fs/fuse/iomode.c",
        ],
        patch: "7.3-splice-write-unlock.patch",
        subject: "fuse: passthrough: leave *ppos alone when a splice write fails",
        unexecuted: "passthrough.c:127",
        executed: "passthrough.c:126",
        patched_whole: false,
    });
    e2e::docs_coverage_is_current(&lines);
}
