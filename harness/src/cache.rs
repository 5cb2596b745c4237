//! Where downloaded kernels and other slow-to-make things are kept between runs.

use std::path::PathBuf;

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
