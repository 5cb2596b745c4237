//! A kernel git history the harness makes for its own tests and benches of `bisect` and
//! `series`: the default source (Debian's linux-source-7.3) as one commit (`fpt-base`), six
//! commits that only add a comment to fs/fuse/passthrough.c (`fpt-quiet-1` to `-6`; number 4
//! adds a line that does not compile, which 5 takes out: a bisect has to skip it), then the
//! five patches of tests/fixtures/fuse-series.mbox (written against that tree's
//! fs/fuse/backing.c) applied with `git am` (`fpt-patch-1` to `-5`); patch 2 makes
//! BACKING_OPEN refuse map flags with EOPNOTSUPP instead of EINVAL (what
//! `backing_open.flags_nonzero` checks), patch 4 takes that back.
//!
//! Made once in the cache (about a minute: a copy of the tree and `git add` of its 87,000
//! files), kept while its last tag is there.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, Result};

/// Tagged last: a history without it is from an older layout (or unfinished) and is made
/// again.
const LAST_TAG: &str = "fpt-fixture-2";

/// What quiet commit 4 adds and 5 takes out.
const BROKEN: &str = "fpt fixture: this line does not compile\n";

/// The patch series the history ends with (and `cargo xtask series` tests with).
pub fn series_mbox() -> PathBuf {
    crate::env::cache::workspace_root().join("tests/fixtures/fuse-series.mbox")
}

/// The history's checkout, made if needed.
pub fn fuse_history() -> Result<PathBuf> {
    let cache = crate::env::cache::dir();
    let series = crate::kernel::build::source::DEFAULT_SERIES;
    let fixtures = cache.join("fixtures");
    let dir = fixtures.join(format!("linux-{series}-git"));
    if git(&dir, &["rev-parse", "--verify", "--quiet", LAST_TAG]).is_ok() {
        return Ok(dir);
    }
    // Two tests (or benches) asking at once: one makes it, the other waits and takes it.
    std::fs::create_dir_all(&fixtures).map_err(|e| Error::io(fixtures.display(), e))?;
    let _lock = crate::env::cache::lock(&fixtures, "making of the fixture history")?;
    if git(&dir, &["rev-parse", "--verify", "--quiet", LAST_TAG]).is_ok() {
        return Ok(dir);
    }
    let src = crate::kernel::build::source::resolve(None, &cache)?;
    let tmp = dir.with_file_name(format!("linux-{series}-git.new"));
    let _ = std::fs::remove_dir_all(&tmp);
    if let Some(parent) = tmp.parent() {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent.display(), e))?;
    }
    // A copy, not hard links: git rewrites the files it checks out or patches.
    crate::env::process::output(
        Command::new("cp")
            .args(["-a", "--reflink=auto"])
            .arg(&src.dir)
            .arg(&tmp),
    )?;
    git(&tmp, &["init", "-q"])?;
    // -f: Debian's .gitignore ignores everything at the top level.
    git(&tmp, &["add", "-A", "-f"])?;
    git(
        &tmp,
        &[
            "commit",
            "-q",
            "-m",
            &format!("Linux {series} (Debian's {})", src.describe()),
        ],
    )?;
    git(&tmp, &["tag", "fpt-base"])?;
    let file = tmp.join("fs/fuse/passthrough.c");
    let original = std::fs::read_to_string(&file).map_err(|e| Error::io(file.display(), e))?;
    let mut added = String::new();
    for n in 1..=6 {
        // Commit 4 does not compile (a bisect must skip it); commit 5 mends it.
        let (line, subject) = match n {
            4 => (
                BROKEN.to_string(),
                "fuse: passthrough: quiet commit 4 (does not build)".to_string(),
            ),
            _ => (
                format!("/* fpt fixture: quiet commit {n} */\n"),
                format!("fuse: passthrough: quiet commit {n} (a comment)"),
            ),
        };
        added = added.replace(BROKEN, "");
        added.push_str(&line);
        std::fs::write(&file, format!("{original}{added}"))
            .map_err(|e| Error::io(file.display(), e))?;
        git(&tmp, &["commit", "-q", "-a", "-m", &subject])?;
        git(&tmp, &["tag", &format!("fpt-quiet-{n}")])?;
    }
    let mbox = series_mbox();
    git(&tmp, &["am", "-q", &mbox.to_string_lossy()])?;
    for n in 1..=5 {
        git(
            &tmp,
            &["tag", &format!("fpt-patch-{n}"), &format!("HEAD~{}", 5 - n)],
        )?;
    }
    git(&tmp, &["tag", LAST_TAG])?;
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::rename(&tmp, &dir).map_err(|e| Error::io(dir.display(), e))?;
    Ok(dir)
}

fn git(dir: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new("git")
        .current_dir(dir)
        .args(["-c", "user.name=fpt", "-c", "user.email=fpt@example.org"])
        .args(args)
        .output()
        .map_err(|source| Error::Spawn {
            command: "git".into(),
            source,
        })?;
    if !out.status.success() {
        return Err(Error::Command {
            command: format!("git {}", args.join(" ")),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
