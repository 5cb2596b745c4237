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

/// kunit_tool's `kunit.py` in Debian's linux-source-6.12 (fetched by the harness).
pub fn kunit_py() -> PathBuf {
    let source = harness::kernel::build::source::resolve(None, &harness::env::cache::dir())
        .expect("Debian's linux-source-6.12");
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
