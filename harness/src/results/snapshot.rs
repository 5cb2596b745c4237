//! Observations as text, compared with the snapshot kept per kernel release series in
//! `tests/snapshots/linux-<major>.<minor>.snap` (insta's file format). This module is the
//! only reader and the only writer of those files: `cargo xtask run` compares the cases it
//! ran (and `--bless` writes), the end-to-end tests compare whole runs with [`check_whole`].

use proto::observation as key;
use std::collections::BTreeMap;
use std::path::PathBuf;

use proto::{CaseResult, Verdict};

use crate::error::{Error, Result};
use crate::results::record::Run;

/// The snapshot name for a kernel release: one per series, so a patched or rebuilt 6.12 is
/// compared with what 6.12 did before.
pub fn name(release: &str) -> String {
    format!("linux-{}", crate::kernel::series(release))
}

/// The name a run's observations are kept under: its series, or its target and series.
/// Host mode has its own (`host-<series>`): it has no virtio-fs share and no VM, so cases
/// that need them skip there, which says nothing about the kernel.
pub fn name_of(run: &Run) -> String {
    let release = if run.mode.is_host() {
        format!("host-{}", crate::kernel::series(&run.kernel_release))
    } else {
        crate::kernel::series(&run.kernel_release)
    };
    match &run.target {
        Some(target) => format!("validate/{target}-{release}"),
        None if run.mode.is_host() => release,
        None => format!("linux-{release}"),
    }
}

/// The snapshot file of `name`.
pub fn path(name: &str) -> PathBuf {
    crate::env::cache::workspace_root()
        .join("tests")
        .join("snapshots")
        .join(format!("{name}.snap"))
}

/// One block per case, in run order: its observations, one per line, values as JSON.
/// Verdicts stay out (they are asserted, not snapshotted), except that a skip is named: it
/// is why a block is empty.
pub fn render(results: &[CaseResult]) -> String {
    render_as("", results)
}

/// Counts a validate snapshot keeps as "some" or 0: how many READs a served path takes
/// follows readahead and timing, and how many backing ids a library opens follows whether
/// its RELEASE was handled before the next OPEN.
const VALIDATE_COUNTS: [&str; 6] = [
    key::READ_REQUESTS,
    key::WRITE_REQUESTS,
    key::BACKING_OPENS,
    key::COPY_FILE_RANGE_REQUESTS,
    key::RING_REQUESTS,
    key::DEV_REQUESTS,
];

/// What a validate snapshot leaves out (results.json keeps it): the server's exit code and
/// how many backing ids it closed itself, which after a kill or an unmount under it depend on
/// which of its threads saw the end first.
/// Whether a bind under `{source}` came off before the server forgot its inodes is timing too.
const VALIDATE_DROPPED: [&str; 6] = [
    key::SERVER_EXIT_CODE,
    key::BACKING_CLOSES,
    key::UNBIND_STACKED,
    // The witness's counts are results.json's; its refused closes make a verdict.
    key::WITNESS_BACKING_OPENS,
    key::WITNESS_BACKING_CLOSES,
    key::WITNESS_BACKING_CLOSE_ERRORS,
];

/// What a validate snapshot keeps of a path the server served itself. Its READ and WRITE
/// counts are not kept apart: whether a read-back hit the page cache or went to the server
/// follows timing; that the server served the path (`served_requests`) does not.
const SERVED_KEPT: [&str; 10] = [
    key::PROTOCOL_MINOR,
    key::PASSTHROUGH_NEGOTIATED,
    key::FALLBACK_SCOPE,
    key::BACKING_OPENS,
    key::BACKING_OPEN_ERRORS,
    "backing_close_errors",
    key::OPEN_THROUGH_MOUNT,
    "server_exit",
    key::SOURCE_RELEASED,
    "unmount",
];

/// `render` for the snapshot `name` (see [`VALIDATE_COUNTS`]).
fn render_as(name: &str, results: &[CaseResult]) -> String {
    let validate = name.starts_with("validate/");
    let volatile = |k: &str| validate && VALIDATE_COUNTS.contains(&k);
    let mut out = String::new();
    for r in results {
        // Figures, not behaviour: never in a snapshot.
        if proto::catalog::group_of(&r.case) == proto::catalog::MEASUREMENTS {
            continue;
        }
        // A path the server served itself (a cached FUSE file): what it showed of {source}
        // depends on when the write-back ran, so only where its I/O went and how the
        // server's run ended are compared.
        let served = validate && r.observations.contains_key(key::COHERENT_WITH_SOURCE);
        if r.verdict == Verdict::Skip && r.observations.is_empty() {
            out.push_str(&format!("{}: skipped\n", r.case));
            continue;
        }
        out.push_str(&format!("{}:\n", r.case));
        for (k, v) in &r.observations {
            if validate && VALIDATE_DROPPED.contains(&k.as_str()) {
                continue;
            }
            let answer = key::REQUEST_ANSWERS.contains(&k.as_str())
                || [
                    key::COPY_FILE_RANGE_REQUESTS,
                    key::RING_REQUESTS,
                    key::DEV_REQUESTS,
                ]
                .contains(&k.as_str());
            if served && !SERVED_KEPT.contains(&k.as_str()) && !answer {
                continue;
            }
            if volatile(k) && v.as_u64().is_some_and(|n| n > 0) {
                out.push_str(&format!("  {k}: \"some\"\n"));
            } else {
                out.push_str(&format!("  {k}: {v}\n"));
            }
        }
        if served {
            out.push_str("  served_requests: \"some\"\n");
        }
    }
    out
}

/// The body of an insta snapshot file (what follows its `---` header).
pub fn body(file_text: &str) -> &str {
    let Some(rest) = file_text.strip_prefix("---\n") else {
        return file_text;
    };
    match rest.find("\n---\n") {
        Some(i) => &rest[i + 5..],
        None => file_text,
    }
}

/// Rendered text split into case blocks.
/// The case blocks of the snapshot `name` (case -> its lines), or None where there is none.
pub fn load(name: &str) -> Option<BTreeMap<String, String>> {
    let file = std::fs::read_to_string(path(name)).ok()?;
    Some(blocks(body(&file)))
}

fn blocks(text: &str) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    let mut current = None;
    for line in text.lines() {
        if !line.starts_with(' ') && !line.is_empty() {
            let case = line.split(':').next().unwrap_or(line).to_string();
            current = Some(case.clone());
            out.entry(case).or_default();
        }
        if let Some(c) = &current {
            let block = out.get_mut(c).expect("inserted above");
            block.push_str(line);
            block.push('\n');
        }
    }
    out
}

/// How a run compared with its snapshot.
#[derive(Debug)]
pub enum Comparison {
    /// Every compared case matches; `unknown` ran but has no block in the snapshot.
    Match {
        /// Cases that ran but have no block in the snapshot.
        unknown: Vec<String>,
    },
    /// No snapshot for this series yet, or none of the cases that ran are in it.
    Missing(PathBuf),
    /// The observations differ.
    Differs {
        /// The snapshot.
        path: PathBuf,
        /// A unified diff, snapshot to this run.
        diff: String,
    },
}

/// Compare the cases in `results` (a subset run is fine) with the series' snapshot. Cases
/// that never reported (crash, hang, not reached) have nothing to compare (their verdict
/// already fails the run), and cases the
/// snapshot does not know are listed, not failed.
pub fn compare(name: &str, results: &[CaseResult]) -> Comparison {
    let path = path(name);
    let Ok(file) = std::fs::read_to_string(&path) else {
        return Comparison::Missing(path);
    };
    let expected = blocks(body(&file));
    let got = blocks(&render_as(name, results));
    let (mut old, mut new, mut unknown) = (String::new(), String::new(), Vec::new());
    for r in results.iter().filter(|r| {
        !matches!(
            r.verdict,
            Verdict::Crash | Verdict::Hang | Verdict::NotReached
        )
    }) {
        match expected.get(&r.case) {
            Some(e) => {
                for line in e.lines() {
                    let name = line.trim_start().split(':').next().unwrap_or("");
                    let unreadable = line.starts_with("  ")
                        && key::NEEDS_BTF.contains(&name)
                        && !r.observations.contains_key(name);
                    if !unreadable {
                        old.push_str(line);
                        old.push('\n');
                    }
                }
                new.push_str(got.get(&r.case).map_or("", String::as_str));
            }
            None => unknown.push(r.case.clone()),
        }
    }
    if old.is_empty() {
        return Comparison::Missing(path);
    }
    if old == new {
        return Comparison::Match { unknown };
    }
    let diff = similar::TextDiff::from_lines(&old, &new)
        .unified_diff()
        .context_radius(2)
        .header("snapshot", "this run")
        .to_string();
    Comparison::Differs { path, diff }
}

/// What a command does with its runs' observations, decided once from its command line and
/// before anything runs: `run`, `validate`, `matrix` and `replay` share it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Compare each run with its snapshot (a subset of cases is fine).
    Compare,
    /// Write each run's whole snapshot (`--bless`).
    Bless,
}

/// What [`Policy::settle`] did with one run.
#[derive(Debug)]
pub enum Settled {
    /// The snapshot was written here.
    Written(PathBuf),
    /// The run was compared with its snapshot.
    Compared(Comparison),
}

impl Policy {
    /// `--bless` writes whole snapshots, so a selection that is only part of the catalog
    /// (`--case`, `--shard`) is refused before anything runs: blessing it would leave a
    /// snapshot of those cases alone.
    pub fn new(bless: bool, partial: bool) -> Result<Policy> {
        match (bless, partial) {
            (true, true) => Err(Error::PartialBless),
            (true, false) => Ok(Policy::Bless),
            (false, _) => Ok(Policy::Compare),
        }
    }

    /// Write or compare `run`'s snapshot.
    pub fn settle(self, run: &Run) -> Result<Settled> {
        let name = name_of(run);
        match self {
            Policy::Bless => write(&name, &run.results).map(Settled::Written),
            Policy::Compare => Ok(Settled::Compared(compare(&name, &run.results))),
        }
    }
}

impl Settled {
    /// Whether the observations differ from the snapshot.
    pub fn differs(&self) -> bool {
        matches!(self, Settled::Compared(Comparison::Differs { .. }))
    }
}

/// How a command that ran `run` ends: interrupted (128 + the signal), a case failed (1),
/// the observations differ from the snapshot (3), or all is well (0). A failed case wins
/// over a difference: it is the news.
pub fn exit_code(run: &Run, settled: Option<&Settled>) -> i32 {
    match crate::env::interrupt::requested() {
        Some(sig) => 128 + sig,
        None if !run.all_ok() => 1,
        None if settled.is_some_and(Settled::differs) => 3,
        None => 0,
    }
}

/// What every snapshot file starts with (insta's header for the e2e test that made them).
const HEADER: &str = "---\nsource: tests/e2e.rs\n---\n";

/// Write the snapshot for this series from a full run, in insta's file format.
pub fn write(name: &str, results: &[CaseResult]) -> Result<PathBuf> {
    let path = path(name);
    write_at(&path, &render_as(name, results))?;
    Ok(path)
}

fn write_at(path: &std::path::Path, text: &str) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir.display(), e))?;
    }
    std::fs::write(path, format!("{HEADER}{text}")).map_err(|e| Error::io(path.display(), e))
}

/// The end-to-end tests' assertion: the whole run's observations equal the series'
/// snapshot. On a difference the diff is returned, and the new text is written beside the
/// snapshot as `<name>.snap.new` (not under CI); `FPT_BLESS=1` writes the snapshot itself.
pub fn check_whole(name: &str, results: &[CaseResult]) -> std::result::Result<(), String> {
    let path = path(name);
    let old = std::fs::read_to_string(&path)
        .map(|t| body(&t).to_string())
        .unwrap_or_default();
    let new = render_as(name, results);
    if old == new {
        return Ok(());
    }
    if std::env::var_os("FPT_BLESS").is_some_and(|v| v == "1") {
        return write_at(&path, &new).map_err(|e| e.to_string());
    }
    if std::env::var_os("CI").is_none() {
        let _ = write_at(&path.with_extension("snap.new"), &new);
    }
    let diff = similar::TextDiff::from_lines(&old, &new)
        .unified_diff()
        .context_radius(2)
        .header("snapshot", "this run")
        .to_string();
    Err(format!(
        "observations differ from {} (FPT_BLESS=1 rewrites it):\n{diff}",
        path.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(case: &str, verdict: Verdict, obs: &[(&str, serde_json::Value)]) -> CaseResult {
        CaseResult {
            observations: obs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            duration_ms: 5,
            ..CaseResult::new(case, verdict, "")
        }
    }

    #[test]
    fn renders_observations_not_verdicts_or_durations() {
        let text = render(&[
            result(
                "a.one",
                Verdict::Fail,
                &[("open", "EIO".into()), ("count", 3.into())],
            ),
            result("a.two", Verdict::Skip, &[]),
        ]);
        assert_eq!(
            text,
            "a.one:\n  count: 3\n  open: \"EIO\"\na.two: skipped\n"
        );
    }

    #[test]
    fn reads_the_body_of_an_insta_file() {
        let file = "---\nsource: tests/e2e.rs\n---\na.one:\n  x: 1\n";
        assert_eq!(body(file), "a.one:\n  x: 1\n");
        assert_eq!(blocks(body(file))["a.one"], "a.one:\n  x: 1\n");
    }

    #[test]
    fn snapshot_names_follow_the_series() {
        assert_eq!(name("6.12.117+deb12-cloud-amd64"), "linux-6.12");
        assert_eq!(name("6.1.0-56-cloud-amd64"), "linux-6.1");
    }
}
