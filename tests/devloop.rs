//! The kernel developer's loop end to end: `cargo xtask series` on a real patch series and
//! `cargo xtask bisect` on a real kernel git history (harness::kernel::fixture), each step a
//! real build and a real boot; `--coverage` on a build from source (the whole catalog, a
//! patch's lines, `--case reaches-patch`). The working copy's own invariants (any switch of
//! series gives the tree a fresh copy would) are unit-tested in
//! harness::kernel::build::workcopy.

use std::process::Command;

use e2e::xtask;

/// The cases the series changes (and one it does not), to keep each step's boot short; built
/// with the vng profile, so the main suite's build from source and the kernels suite's
/// `--backend vng` boot this same build entry (one build of 6.12 from source, not three).
const CASES: [&str; 6] = [
    "--profile",
    "vng",
    "--case",
    "backing_open.flags_nonzero",
    "--case",
    "backing_open.padding_nonzero",
];

#[test]
fn series_names_what_each_patch_changed() {
    let mbox = harness::kernel::fixture::series_mbox();
    let mut args = vec!["series", "--patch", mbox.to_str().unwrap()];
    args.extend(CASES);
    let out = xtask(&args);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let steps = blocks(&out.stdout);
    assert_eq!(steps.len(), 6, "{}", out.stdout);
    assert!(steps[0].starts_with("base: base"));
    assert!(steps[1].contains("say why a backing file must be regular"));
    assert!(steps[1].contains("nothing changed"), "{}", steps[1]);
    assert!(steps[2].contains("refuse unknown map flags with EOPNOTSUPP"));
    assert!(
        steps[2].contains("backing_open.flags_nonzero verdict: pass -> FAIL")
            && steps[2].contains("backing_open.flags_nonzero backing_open: EINVAL -> EOPNOTSUPP"),
        "{}",
        steps[2]
    );
    assert!(!steps[2].contains("padding_nonzero"), "{}", steps[2]);
    assert!(steps[3].contains("nothing changed"), "{}", steps[3]);
    assert!(
        steps[4].contains("flags_nonzero verdict: FAIL -> pass"),
        "{}",
        steps[4]
    );
    assert!(steps[5].contains("nothing changed"), "{}", steps[5]);
    let json_path = out.paths("series: ");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json_path[0]).unwrap()).unwrap();
    let steps = json["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 6);
    for s in steps {
        assert_eq!(s["outcome"], "ran");
        assert!(std::path::Path::new(s["artifacts"].as_str().unwrap()).is_dir());
    }
    assert_eq!(steps[2]["changes"][0]["after"], "FAIL");
}

#[test]
fn a_patch_that_does_not_apply_ends_the_series_and_names_its_hunk() {
    let dir = tempfile::tempdir().unwrap();
    let mbox = std::fs::read_to_string(harness::kernel::fixture::series_mbox()).unwrap();
    let mails: Vec<&str> = mbox.split("\nFrom 00000").collect();
    // Patch 1, then patch 4 (which takes back a change patch 2 never made here), then 5.
    let bad = format!(
        "{}\nFrom 00000{}\nFrom 00000{}",
        mails[0], mails[3], mails[4]
    );
    let file = dir.path().join("broken.mbox");
    std::fs::write(&file, bad).unwrap();
    let mut args = vec!["series", "--patch", file.to_str().unwrap()];
    args.extend(CASES);
    let out = xtask(&args);
    assert_eq!(out.code, 14, "{}\n{}", out.stdout, out.stderr);
    let steps = blocks(&out.stdout);
    assert_eq!(steps.len(), 3, "{}", out.stdout);
    assert!(steps[1].contains("nothing changed"), "{}", steps[1]);
    assert!(
        steps[2].contains("does not apply; the series ends here")
            && steps[2].contains("broken.mbox [2/3]")
            && steps[2].contains("fs/fuse/passthrough.c"),
        "{}",
        steps[2]
    );
}

#[test]
fn bisect_names_the_first_commit_that_changed_a_case() {
    let tree = harness::kernel::fixture::fuse_history().expect("the fixture history");
    let head = git(&tree, &["rev-parse", "HEAD"]);
    // Two commits in the range: one step.
    let out = xtask(&[
        "bisect",
        "--src",
        tree.to_str().unwrap(),
        "--good",
        "fpt-quiet-6",
        "--bad",
        "fpt-patch-2",
        "--case",
        "backing_open.flags_nonzero",
    ]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let first = git(&tree, &["rev-parse", "fpt-patch-2"]);
    assert!(
        out.stdout.contains(&format!(
            "first bad commit: {first} fuse: passthrough: refuse unknown map flags with EOPNOTSUPP"
        )),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains(
        "backing_open.flags_nonzero's verdict: pass at fpt-quiet-6 -> FAIL at fpt-patch-2"
    ));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out.paths("bisect: ")[0]).unwrap()).unwrap();
    let steps = json["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 1, "{json}");
    assert_eq!(steps[0]["call"], "good");
    // The user's checkout: same HEAD, nothing changed in it.
    assert_eq!(git(&tree, &["rev-parse", "HEAD"]), head);
    assert_eq!(git(&tree, &["status", "--porcelain"]), "");
}

#[test]
#[ignore = "full tier: cargo xtask test --full"]
fn bisect_over_eight_commits_on_an_observation() {
    let tree = harness::kernel::fixture::fuse_history().expect("the fixture history");
    let out = xtask(&[
        "bisect",
        "--src",
        tree.to_str().unwrap(),
        "--good",
        "fpt-base",
        "--bad",
        "fpt-patch-2",
        "--case",
        "backing_open.flags_nonzero",
        "--observation",
        "backing_open",
    ]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(out
        .stdout
        .contains("refuse unknown map flags with EOPNOTSUPP"));
    assert!(out
        .stdout
        .contains("observation backing_open: EINVAL at fpt-base -> EOPNOTSUPP"));
    // The middle of the eight is quiet commit 4, which does not build: skipped.
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out.paths("bisect: ")[0]).unwrap()).unwrap();
    let skipped: Vec<&serde_json::Value> = json["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["call"] == "skip")
        .collect();
    assert_eq!(skipped.len(), 1, "{json}");
    assert_eq!(skipped[0]["result"], "does not build");
    assert!(skipped[0]["subject"]
        .as_str()
        .unwrap()
        .contains("quiet commit 4"));
}

#[test]
fn bisect_refuses_bad_input_with_its_own_exit_codes() {
    let tree = harness::kernel::fixture::fuse_history().expect("the fixture history");
    let tree = tree.to_str().unwrap();
    let bisect = |src: &str, good: &str, bad: &str| {
        xtask(&[
            "bisect",
            "--src",
            src,
            "--good",
            good,
            "--bad",
            bad,
            "--case",
            "backing_open.flags_nonzero",
        ])
    };
    let plain = harness::kernel::build::source::resolve(None, &harness::env::cache::dir())
        .unwrap()
        .dir;
    let out = bisect(plain.to_str().unwrap(), "a", "b");
    assert_eq!(out.code, 30, "{}", out.stderr);
    assert!(
        out.error().contains("is not a git checkout"),
        "{}",
        out.stderr
    );
    let out = bisect(tree, "no-such-rev", "fpt-patch-2");
    assert_eq!(out.code, 31, "{}", out.stderr);
    assert!(
        out.error().contains("revision no-such-rev does not exist"),
        "{}",
        out.stderr
    );
    let out = bisect(tree, "fpt-patch-2", "fpt-quiet-6");
    assert_eq!(out.code, 32, "{}", out.stderr);
    assert!(out.error().contains("wrong way round"), "{}", out.stderr);
    assert!(out.stderr.contains("git bisect says"), "{}", out.stderr);
}

/// The step blocks of `series` output: each starts with "base:" or "patch N:".
fn blocks(stdout: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in stdout.lines() {
        if line.starts_with("base:") || line.starts_with("patch ") {
            out.push(String::new());
        }
        if let Some(last) = out.last_mut() {
            last.push_str(line);
            last.push('\n');
        }
    }
    out
}

fn git(dir: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn your_own_config_gets_what_the_agent_needs_and_says_what_changed() {
    let out = xtask(&["kernel", "config"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let minimal = std::fs::read_to_string(&out.paths("config: ")[0]).unwrap();
    // A developer's config: the minimal one with FUSE and overlayfs off, and a local version
    // of their own.
    let mine = minimal
        .replace("CONFIG_FUSE_FS=y", "# CONFIG_FUSE_FS is not set")
        .replace("CONFIG_OVERLAY_FS=y", "# CONFIG_OVERLAY_FS is not set")
        .replace("CONFIG_LOCALVERSION=\"\"", "CONFIG_LOCALVERSION=\"-mine\"");
    assert_ne!(mine, minimal);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("my.config");
    std::fs::write(&file, &mine).unwrap();
    let out = xtask(&["kernel", "config", "--config", file.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("CONFIG_FUSE_FS: n -> y"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("CONFIG_OVERLAY_FS: n -> y"),
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("CONFIG_LOCALVERSION"),
        "{}",
        out.stderr
    );
    let made = std::fs::read_to_string(&out.paths("config: ")[0]).unwrap();
    assert!(made.contains("CONFIG_FUSE_FS=y") && made.contains("CONFIG_LOCALVERSION=\"-mine\""));
    // Not a config at all.
    let junk = dir.path().join("junk");
    std::fs::write(&junk, "hello\n").unwrap();
    let out = xtask(&["kernel", "config", "--config", junk.to_str().unwrap()]);
    assert_eq!(out.code, 21, "{}", out.stderr);
    assert!(
        out.error().contains("not a kernel .config"),
        "{}",
        out.stderr
    );
}

/// One source series' coverage loop, end to end: the whole catalog with `--coverage` (its
/// verdicts and the series' snapshot: a gcov build behaves as the plain one), the table,
/// HTML, JSON, Cobertura and the per-line cases; then a patch's executed and unexecuted
/// lines; then `--case reaches-patch`, whose verdicts must be the whole run's for the cases
/// it picks. Returns the whole run's line map.
struct Loop<'a> {
    /// `--src` and `--profile` (the build entry).
    build: [&'a str; 4],
    series: &'a str,
    files: &'a [&'a str],
    patch: &'a str,
    subject: &'a str,
    /// "passthrough.c:N" the patch adds and no case runs, and one every splice write runs.
    unexecuted: &'a str,
    executed: &'a str,
}

fn coverage_loop(l: &Loop) -> harness::results::coverage::lines::LineMap {
    let with = |more: &[&str]| {
        let mut args = vec!["run"];
        args.extend(l.build);
        args.push("--coverage");
        args.extend(more);
        xtask(&args)
    };
    let whole = with(&[]);
    assert_eq!(whole.code, 0, "{}\n{}", whole.stdout, whole.stderr);
    let says = |out: &e2e::Output, what: &str| {
        assert!(out.stdout.contains(what), "no {what:?} in:\n{}", out.stdout);
    };
    says(&whole, &format!("snapshot: matches linux-{}", l.series));
    says(&whole, "coverage of 147 cases");
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
    let patched = with(&["--patch", &patch]);
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
    let picked = with(&["--patch", &patch, "--case", "reaches-patch"]);
    assert_eq!(picked.code, 0, "{}\n{}", picked.stdout, picked.stderr);
    let said = picked
        .stderr
        .lines()
        .find(|l| l.starts_with("reaches-patch: "))
        .unwrap_or_else(|| panic!("{}", picked.stderr));
    assert!(said.contains("fs/fuse/passthrough.c:"), "{said}");
    let run_of = |out: &e2e::Output| -> Vec<(String, String)> {
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
    let (subset, all) = (run_of(&picked), run_of(&patched));
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

/// The coverage loop on the build entry the series and bisect tests share (6.12, the vng
/// profile): coverage is a patch there, so it costs fs/fuse's rebuild, not a kernel's.
#[test]
fn coverage_of_6_12_a_patch_and_the_cases_that_reach_it() {
    coverage_loop(&Loop {
        build: ["--src", "debian:6.12", "--profile", "vng"],
        series: "6.12",
        files: &["fs/fuse/passthrough.c", "fs/fuse/iomode.c"],
        patch: "6.12-splice-write-empty.patch",
        subject: "fuse: passthrough: no inode lock for an empty splice write",
        unexecuted: "passthrough.c:120",
        executed: "passthrough.c:119",
    });
}

/// The newest source series Debian carries, built from source with the coverage loop, and
/// docs/coverage.md held to its numbers. Full tier: a kernel build of its own (about 6
/// minutes here) would take the default tier past its 20 minutes.
#[test]
#[ignore = "full tier: cargo xtask test --full"]
fn linux_source_7_3_with_coverage_a_patch_and_the_cases_that_reach_it() {
    let lines = coverage_loop(&Loop {
        build: ["--src", "debian:7.3", "--profile", "minimal"],
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
    });
    docs_coverage_is_current(&lines);
}

/// Coverage asked of a kernel the harness did not build: refused before anything runs.
#[test]
fn coverage_needs_a_kernel_built_from_source() {
    for kernel in ["debian:6.12", "host"] {
        let out = xtask(&["run", "--kernel", kernel, "--coverage"]);
        assert_eq!(out.code, 35, "{kernel}: {}", out.stderr);
        assert!(
            out.error()
                .contains("--coverage needs a kernel built from source"),
            "{}",
            out.error()
        );
    }
    let out = xtask(&["run", "--case", "reaches-patch"]);
    assert_eq!(out.code, 36, "{}", out.stderr);
    assert!(out.error().contains("add --coverage"), "{}", out.error());
}

fn fixture(name: &str) -> String {
    harness::env::cache::workspace_root()
        .join("tests/fixtures")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

/// The run directory a `cargo xtask run` printed.
fn artifacts_of(stdout: &str) -> std::path::PathBuf {
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("artifacts: "))
        .unwrap_or_else(|| panic!("no artifacts line:\n{stdout}"));
    harness::env::cache::workspace_root().join(line.trim())
}

/// Every source series Debian's archive carries, with every profile: the config (where an
/// option renamed or removed between versions would fail, by name), then the minimal build
/// and its catalog against that series' snapshot.
#[test]
#[ignore = "full tier: cargo xtask test --full"]
fn every_debian_source_series_builds_with_every_profile() {
    let cache = harness::env::cache::dir();
    let series = harness::kernel::build::source::debian_series(&cache).expect("apt lists");
    assert!(series.len() >= 3, "{series:?}");
    for s in &series {
        let src = format!("debian:{s}");
        for profile in harness::kernel::build::profile_names() {
            let out = xtask(&["kernel", "config", "--src", &src, "--profile", &profile]);
            assert_eq!(out.code, 0, "{src} {profile}: {}", out.stderr);
        }
        let out = xtask(&["run", "--src", &src]);
        assert_eq!(out.code, 0, "{src}: {}\n{}", out.stdout, out.stderr);
    }
}

/// docs/coverage.md against a whole 7.3 run: its unexecuted lines of passthrough.c,
/// backing.c and iomode.c are exactly the run's, and its function table names every
/// function of dev_uring.c and only functions that exist.
fn docs_coverage_is_current(lines: &harness::results::coverage::lines::LineMap) {
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
    for l in doc.lines().filter(|l| l.starts_with("| fs/fuse/")) {
        let c = cells(l);
        match c[0].split_once(':') {
            Some((file, ranges)) => {
                let set = listed.entry(file.to_string()).or_default();
                for r in ranges.split(',') {
                    let (a, b) = r.split_once('-').unwrap_or((r, r));
                    set.extend(a.parse::<u32>().unwrap()..=b.parse::<u32>().unwrap());
                }
            }
            None => {
                functions.insert((c[0].clone(), c[1].trim_matches('`').to_string()));
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
}
