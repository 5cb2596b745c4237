//! Where downloaded kernels and other slow-to-make things are kept between runs.

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
