//! A coverage run's part in the guest: the kernel's gcov counters (CONFIG_GCOV_KERNEL, in
//! debugfs) reset before each case and read after it, so each case's counters are its own.
//! The host turns them into line and branch coverage with gcov and gcovr.

use std::path::{Path, PathBuf};

use base64::Engine;
use proto::layout::GCOV_DIR;
use proto::GcdaFile;

/// The gcov directory of this kernel's debugfs, mounted if need be; why not, if it has none.
pub fn enable() -> Result<Gcov, String> {
    let dir = Path::new(GCOV_DIR);
    if !dir.is_dir() {
        let debugfs = "/sys/kernel/debug";
        rustix::mount::mount(
            "debugfs",
            debugfs,
            "debugfs",
            rustix::mount::MountFlags::empty(),
            None,
        )
        .map_err(|e| format!("mount debugfs on {debugfs}: {e}"))?;
    }
    if !dir.is_dir() {
        return Err(format!(
            "{GCOV_DIR}: no such directory (a kernel without CONFIG_GCOV_KERNEL)"
        ));
    }
    Ok(Gcov {
        dir: dir.to_path_buf(),
    })
}

/// The kernel's gcov counters.
pub struct Gcov {
    dir: PathBuf,
}

impl Gcov {
    /// Every counter back to zero (debugfs's `reset`).
    pub fn reset(&self) -> std::io::Result<()> {
        std::fs::write(self.dir.join("reset"), "1")
    }

    /// Every object's counters as they are now, paths relative to the gcov directory.
    pub fn read(&self) -> Vec<GcdaFile> {
        let mut files = Vec::new();
        let mut stack = vec![self.dir.clone()];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in entries.flatten() {
                let path = e.path();
                // The .gcno entries are links into the build tree, which the guest lacks.
                let Ok(kind) = e.file_type() else { continue };
                if kind.is_dir() {
                    stack.push(path);
                } else if kind.is_file() && path.extension().is_some_and(|x| x == "gcda") {
                    let Ok(bytes) = std::fs::read(&path) else {
                        continue;
                    };
                    let rel = path.strip_prefix(&self.dir).unwrap_or(&path);
                    files.push(GcdaFile {
                        path: rel.to_string_lossy().into_owned(),
                        base64: base64::engine::general_purpose::STANDARD.encode(bytes),
                    });
                }
            }
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));
        files
    }
}
