//! Where things are kept: downloaded kernels and other slow-to-make things between runs (the
//! cache), and each run's artifacts and each page over runs (`target/fpt-runs`).

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// `$FPT_CACHE`, else `$XDG_CACHE_HOME/fuse-passthrough-harness`, else `~/.cache/...`.
pub fn dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("FPT_CACHE") {
        return dir.into();
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("fuse-passthrough-harness")
}

/// The workspace root (artifacts go under its `target/`).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("harness/ has a parent")
        .to_path_buf()
}

/// An exclusive lock on `dir` (its file `lock`), for what two harnesses on one machine must
/// not do at once in one cache directory (two makes in one output directory, two bisects
/// checking out commits in one worktree). Waits, saying for what; held until the returned
/// file is dropped (the lock goes with the fd, so a killed holder frees it).
pub fn lock(dir: &Path, what: &str) -> Result<std::fs::File> {
    let lock = std::fs::File::create(dir.join("lock")).map_err(|e| Error::io(dir.display(), e))?;
    if rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err() {
        eprintln!("waiting for another {what} in {} to finish", dir.display());
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| Error::io(format!("locking {}", dir.display()), e.into()))?;
    }
    Ok(lock)
}

/// `target/fpt-runs/<unix time>-<label>`, and `target/fpt-runs/latest` pointing at it.
pub fn artifacts_dir(label: &str) -> Result<PathBuf> {
    let dir = pages_dir(label)?;
    let latest = dir.with_file_name("latest");
    let _ = std::fs::remove_file(&latest);
    let _ = std::os::unix::fs::symlink(dir.file_name().expect("has a name"), &latest);
    Ok(dir)
}

/// `target/fpt-runs/<unix time>-<label>` for what is no run (a page over several runs):
/// `latest` keeps pointing at the last run, which `replay` can read.
pub fn pages_dir(label: &str) -> Result<PathBuf> {
    let runs = workspace_root().join("target").join("fpt-runs");
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let label: String = label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut dir = runs.join(format!("{secs}-{label}"));
    let mut n = 1;
    while dir.exists() {
        n += 1;
        dir = runs.join(format!("{secs}-{label}-{n}"));
    }
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(dir.display(), e))?;
    Ok(dir)
}
