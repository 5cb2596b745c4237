//! The end-to-end crate: four suites of real kernels in QEMU and on the host. `e2e.rs` (runs,
//! faults, kernels built, validate; observations compared with the insta snapshots in
//! `snapshots/`), `kernels.rs` (kernels by name, the matrix, vng, every report read back by
//! its real consumer), `devloop.rs` (series, bisect, --config, coverage), `throughput.rs`
//! (bench --io).
//! This file holds what they share. Run it with
//! `cargo xtask test` (it boots VMs, so plain `cargo test` at the root leaves it out).

use std::path::{Path, PathBuf};
use std::process::Command;

/// What a `cargo xtask` command did.
#[derive(Clone)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// The paths the command printed after `prefix` ("report: ", "matrix: ").
    pub fn paths(&self, prefix: &str) -> Vec<PathBuf> {
        self.stdout
            .lines()
            .filter_map(|l| l.strip_prefix(prefix))
            .map(|p| harness::env::cache::workspace_root().join(p.trim()))
            .collect()
    }

    /// The first `error: ` line on stderr.
    pub fn error(&self) -> &str {
        self.stderr
            .lines()
            .find(|l| l.starts_with("error: "))
            .unwrap_or_default()
    }
}

/// `cargo xtask ARGS` at the workspace root.
pub fn xtask(args: &[&str]) -> Output {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(harness::env::cache::workspace_root())
        .args(["run", "--quiet", "--package", "xtask", "--"])
        .args(args)
        .output()
        .expect("cargo runs");
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A Python tool's `bin` directory, the packages installed into the harness's virtualenv.
pub fn python_with(packages: &[&str]) -> PathBuf {
    harness::env::pytools::with(&harness::env::cache::dir(), packages)
        .expect("PyPI packages install")
}

/// kunit_tool's `kunit.py` in the default source tree, Debian's linux-source-7.3 (fetched by
/// the harness).
pub fn kunit_py() -> PathBuf {
    let source = harness::kernel::build::source::resolve(None, &harness::env::cache::dir())
        .expect("Debian's default source package");
    source.dir.join("tools/testing/kunit/kunit.py")
}

/// Run `program ARGS`; its stdout, or a panic with its stderr.
pub fn run_ok(program: &Path, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", program.display()));
    assert!(
        out.status.success(),
        "{} {}: {}\n{}",
        program.display(),
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Run `program ARGS` whatever its exit status (kunit.py exits 1 when a test failed); its
/// stdout.
pub fn run_any(program: &Path, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", program.display()));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What headless Chromium makes of the page or picture at `path`: its DOM, and a screenshot
/// of `size` kept at `shot` (checked to be more than a blank page).
pub fn chromium(path: &Path, size: &str, shot: &Path) -> String {
    harness::env::provision::ensure("chromium", "chromium").expect("chromium installs");
    let url = format!("file://{}", path.display());
    let browser = Path::new("chromium");
    let dom = run_ok(
        browser,
        &[
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--dump-dom",
            &url,
        ],
    );
    run_ok(
        browser,
        &[
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            &format!("--window-size={size}"),
            &format!("--screenshot={}", shot.display()),
            &url,
        ],
    );
    assert!(
        std::fs::metadata(shot).unwrap().len() > 10_000,
        "a screenshot of {}",
        path.display()
    );
    dom
}

/// "Ran 92 tests: passed: 91, skipped: 1" from kunit.py's summary, as (key, count) pairs.
pub fn kunit_counts(ktap: &Path) -> Vec<(String, u64)> {
    let out = run_any(
        Path::new("python3"),
        &[
            kunit_py().to_str().unwrap(),
            "parse",
            ktap.to_str().unwrap(),
        ],
    );
    let line = out
        .lines()
        .find(|l| l.contains("Testing complete. Ran "))
        .unwrap_or_else(|| panic!("kunit.py parse gave no summary:\n{out}"));
    let tail = line.split("Testing complete. Ran ").nth(1).unwrap();
    let (total, rest) = tail.split_once(" tests").unwrap();
    let mut counts = vec![("total".to_string(), total.trim().parse().unwrap())];
    for part in rest.trim_start_matches(':').split(',') {
        if let Some((k, v)) = part.split_once(':') {
            counts.push((k.trim().to_string(), v.trim().parse().unwrap()));
        }
    }
    counts
}

/// The count kunit.py gave for `key` ("passed", "failed", "total"), 0 when absent.
pub fn count(counts: &[(String, u64)], key: &str) -> u64 {
    counts.iter().find(|(k, _)| k == key).map_or(0, |(_, v)| *v)
}

/// One source series' coverage loop, end to end: the whole catalog with `--coverage` (its
/// verdicts and the series' snapshot: a gcov build behaves as the plain one), the table,
/// HTML, JSON, Cobertura and the per-line cases; then a patch's executed and unexecuted
/// lines; then `--case reaches-patch`, whose verdicts must be the whole run's for the cases
/// it picks. Returns the whole run's line map.
pub struct Loop<'a> {
    /// `--src` and `--profile` (the build entry).
    pub build: [&'a str; 4],
    pub series: &'a str,
    pub files: &'a [&'a str],
    pub patch: &'a str,
    pub subject: &'a str,
    /// "passthrough.c:N" the patch adds and no case runs, and one every splice write runs.
    pub unexecuted: &'a str,
    pub executed: &'a str,
    /// Whether the patched tree also runs the whole catalog (the reaches-patch verdicts are
    /// then held to that run's, else to the base run's: the fixtures change no behaviour).
    pub patched_whole: bool,
}

pub fn coverage_loop(l: &Loop) -> harness::results::coverage::lines::LineMap {
    let with = |more: &[&str]| {
        let mut args = vec!["run"];
        args.extend(l.build);
        args.push("--coverage");
        args.extend(more);
        crate::xtask(&args)
    };
    let whole = with(&[]);
    assert_eq!(whole.code, 0, "{}\n{}", whole.stdout, whole.stderr);
    let says = |out: &crate::Output, what: &str| {
        assert!(out.stdout.contains(what), "no {what:?} in:\n{}", out.stdout);
    };
    says(&whole, &format!("snapshot: matches linux-{}", l.series));
    // Every case the run ran has its counters in the report.
    let ran = whole
        .stdout
        .lines()
        .find_map(|l| l.split_once(" cases: ").map(|(n, _)| n.to_string()))
        .expect("a totals line");
    says(&whole, &format!("coverage of {ran} cases"));
    says(&whole, "kept as the base tree's");
    for file in l.files.iter().chain(&["total"]) {
        let row = whole.stdout.lines().find(|r| r.starts_with(file));
        assert!(
            row.is_some_and(|r| r.contains('%')),
            "no row for {file}:\n{}",
            whole.stdout
        );
    }
    let cov = artifacts_of(&whole.stdout).join("coverage");
    for f in [
        "html/index.html",
        "summary.json",
        "cobertura.xml",
        "gcovr.json",
        "lines.json",
    ] {
        assert!(cov.join(f).is_file(), "{} missing", cov.join(f).display());
    }
    // Cobertura as CI systems read it: XML with a line-rate.
    let xml = std::fs::read_to_string(cov.join("cobertura.xml")).unwrap();
    assert!(
        xml.contains("<coverage") && xml.contains("line-rate="),
        "{}",
        &xml[..300.min(xml.len())]
    );
    let lines: harness::results::coverage::lines::LineMap =
        serde_json::from_str(&std::fs::read_to_string(cov.join("lines.json")).unwrap()).unwrap();
    // fuse_passthrough_read_iter runs for every read of a passthrough file.
    let passthrough = &lines.files["fs/fuse/passthrough.c"];
    let (start, end) = passthrough.functions["fuse_passthrough_read_iter"];
    let ran: std::collections::BTreeSet<&String> = passthrough
        .lines
        .range(start..=end)
        .flat_map(|(_, l)| &l.cases)
        .collect();
    assert!(
        ran.iter()
            .any(|c| c.as_str() == "io.passthrough_round_trip"),
        "{ran:?}"
    );

    let patch = fixture(l.patch);
    // The patch's lines: with the whole catalog, or with the cases that reach it.
    let patched = match l.patched_whole {
        true => with(&["--patch", &patch]),
        false => with(&["--patch", &patch, "--case", "reaches-patch"]),
    };
    assert_eq!(patched.code, 0, "{}\n{}", patched.stdout, patched.stderr);
    says(&patched, &format!("patch 1: {}", l.subject));
    let missed = patched
        .stdout
        .lines()
        .find(|r| r.ends_with(" not executed by any case"));
    assert!(
        missed.is_some_and(|r| r.trim().starts_with(l.unexecuted)),
        "no {} among the unexecuted lines:\n{}",
        l.unexecuted,
        patched.stdout
    );
    says(&patched, &format!("{} executed by ", l.executed));
    assert!(
        !patched.stdout.contains("kept as the base tree's"),
        "{}",
        patched.stdout
    );

    // Only the cases that executed splice_write in the base tree, and their verdicts as
    // the whole run gave them.
    let (picked, against) = match l.patched_whole {
        true => (
            with(&["--patch", &patch, "--case", "reaches-patch"]),
            &patched,
        ),
        false => (patched.clone(), &whole),
    };
    assert_eq!(picked.code, 0, "{}\n{}", picked.stdout, picked.stderr);
    let said = picked
        .stderr
        .lines()
        .find(|l| l.starts_with("reaches-patch: "))
        .unwrap_or_else(|| panic!("{}", picked.stderr));
    assert!(said.contains("fs/fuse/passthrough.c:"), "{said}");
    let run_of = |out: &crate::Output| -> Vec<(String, String)> {
        let dir = artifacts_of(&out.stdout);
        let saved: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap())
                .unwrap();
        saved["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let field = |k: &str| r[k].as_str().unwrap().to_string();
                (field("case"), field("verdict"))
            })
            .collect()
    };
    let (subset, all) = (run_of(&picked), run_of(against));
    assert!(
        !subset.is_empty() && subset.len() < all.len() / 4,
        "{subset:?}"
    );
    assert!(
        subset.iter().any(|(c, _)| c.contains("splice")),
        "{subset:?}"
    );
    for s in &subset {
        assert!(all.contains(s), "{s:?} differs from the whole run");
    }
    lines
}

pub fn fixture(name: &str) -> String {
    harness::env::cache::workspace_root()
        .join("tests/fixtures")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

/// The run directory a `cargo xtask run` printed.
pub fn artifacts_of(stdout: &str) -> std::path::PathBuf {
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("artifacts: "))
        .unwrap_or_else(|| panic!("no artifacts line:\n{stdout}"));
    harness::env::cache::workspace_root().join(line.trim())
}

/// docs/coverage.md against a whole 7.3 run: its unexecuted lines of passthrough.c,
/// backing.c and iomode.c are exactly the run's; its function table names every function of
/// dev_uring.c and only functions that exist; every line a function below the target (or
/// varying about it) leaves unexecuted has its reason, and each line given a reason is one of
/// that function's.
pub fn docs_coverage_is_current(lines: &harness::results::coverage::lines::LineMap) {
    use std::collections::{BTreeMap, BTreeSet};
    let doc =
        std::fs::read_to_string(harness::env::cache::workspace_root().join("docs/coverage.md"))
            .unwrap();
    let cells = |l: &str| -> Vec<String> {
        l.trim()
            .trim_matches('|')
            .split('|')
            .map(|c| c.trim().to_string())
            .collect()
    };
    let mut listed: BTreeMap<String, BTreeSet<u32>> = BTreeMap::new();
    let mut functions: BTreeSet<(String, String)> = BTreeSet::new();
    // (file, function) of the function table's "below" and "varies" rows.
    let mut short: BTreeSet<(String, String)> = BTreeSet::new();
    // (file, function) -> the lines the reasons table gives.
    let mut reasons: BTreeMap<(String, String), BTreeSet<u32>> = BTreeMap::new();
    let parse = |ranges: &str| -> BTreeSet<u32> {
        let mut set = BTreeSet::new();
        for r in ranges.split(',') {
            let (a, b) = r.split_once('-').unwrap_or((r, r));
            set.extend(a.parse::<u32>().unwrap()..=b.parse::<u32>().unwrap());
        }
        set
    };
    for l in doc.lines().filter(|l| l.starts_with("| fs/fuse/")) {
        let c = cells(l);
        let named = c[1].trim_matches('`').to_string();
        match c[0].split_once(':') {
            // The reasons table: lines, then the function they are in.
            Some((file, ranges)) if named.chars().all(|ch| ch.is_alphanumeric() || ch == '_') => {
                reasons
                    .entry((file.to_string(), named))
                    .or_default()
                    .extend(parse(ranges));
            }
            Some((file, ranges)) => {
                listed
                    .entry(file.to_string())
                    .or_default()
                    .extend(parse(ranges));
            }
            None => {
                if c[3] != "meets" {
                    short.insert((c[0].clone(), named.clone()));
                }
                functions.insert((c[0].clone(), named));
            }
        }
    }
    for file in [
        "fs/fuse/passthrough.c",
        "fs/fuse/backing.c",
        "fs/fuse/iomode.c",
    ] {
        let unexecuted: BTreeSet<u32> = lines.files[file]
            .lines
            .iter()
            .filter(|(_, l)| l.cases.is_empty())
            .map(|(n, _)| *n)
            .collect();
        assert_eq!(
            listed.get(file).cloned().unwrap_or_default(),
            unexecuted,
            "docs/coverage.md's unexecuted lines of {file} are not the run's: update the page"
        );
    }
    for (file, function) in &functions {
        assert!(
            lines.files[file].functions.contains_key(function),
            "docs/coverage.md names {function} of {file}, which the kernel no longer has"
        );
    }
    for function in lines.files["fs/fuse/dev_uring.c"].functions.keys() {
        assert!(
            functions.contains(&("fs/fuse/dev_uring.c".to_string(), function.clone())),
            "docs/coverage.md does not name {function} of dev_uring.c"
        );
    }
    for (file, function) in &short {
        let f = &lines.files[file];
        let (start, end) = f.functions[function];
        let counted: BTreeSet<u32> = f.lines.range(start..=end).map(|(n, _)| *n).collect();
        let unexecuted: BTreeSet<u32> = f
            .lines
            .range(start..=end)
            .filter(|(_, l)| l.cases.is_empty())
            .map(|(n, _)| *n)
            .collect();
        let given = reasons
            .get(&(file.clone(), function.clone()))
            .cloned()
            .unwrap_or_default();
        let without: Vec<&u32> = unexecuted.difference(&given).collect();
        assert!(
            without.is_empty(),
            "docs/coverage.md gives no reason for {file}:{without:?} ({function}), which no case executed"
        );
        let stale: Vec<&u32> = given.difference(&counted).collect();
        assert!(
            stale.is_empty(),
            "docs/coverage.md gives a reason for {file}:{stale:?}, not a line of {function} gcov counts"
        );
    }
}
