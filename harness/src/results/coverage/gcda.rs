//! Each case's gcov counters, out of the boots' event logs and into a directory of their
//! own (`coverage/cases/<case>/fs/fuse/*.gcda`), each beside a link to the build's `.gcno`:
//! the layout gcov and gcovr read.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine;
use proto::{Event, GcdaFile};

use super::Build;
use crate::error::{Error, Result};

/// The counters of every case that sent some, from the `events.jsonl` of each boot
/// directory in `boots`, in the order they came.
pub fn from_logs(boots: &[PathBuf]) -> Result<Vec<(String, Vec<GcdaFile>)>> {
    let mut out = Vec::new();
    for dir in boots {
        let path = dir.join("events.jsonl");
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(path.display(), e))?;
        for line in text.lines().filter(|l| l.contains("\"coverage\"")) {
            if let Ok(Event::Coverage { case, files }) = serde_json::from_str(line) {
                out.push((case, files));
            }
        }
    }
    Ok(out)
}

/// Write `files` as `<dir>/<object path>.gcda`, each with its `.gcno` linked from the
/// build; the object paths (relative to the build's object directory) written.
pub fn unpack(build: &Build, files: &[GcdaFile], dir: &Path) -> Result<Vec<PathBuf>> {
    let prefix = build.objects.to_string_lossy();
    let prefix = prefix.trim_start_matches('/');
    let mut written = Vec::new();
    for f in files {
        // debugfs names a counter file by its object's absolute path, below gcov/.
        let Some(rel) = f.path.strip_prefix(prefix) else {
            continue;
        };
        let rel = PathBuf::from(rel.trim_start_matches('/'));
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&f.base64)
            .map_err(|e| {
                Error::coverage(
                    format!("the counters of {} are garbled", f.path),
                    Some(Box::new(e)),
                )
            })?;
        let gcda = dir.join(&rel);
        if let Some(parent) = gcda.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent.display(), e))?;
        }
        std::fs::write(&gcda, bytes).map_err(|e| Error::io(gcda.display(), e))?;
        let gcno = gcda.with_extension("gcno");
        let _ = std::fs::remove_file(&gcno);
        std::os::unix::fs::symlink(build.notes.join(&rel).with_extension("gcno"), &gcno)
            .map_err(|e| Error::io(gcno.display(), e))?;
        written.push(rel);
    }
    Ok(written)
}

/// Each case's counters unpacked under `<coverage>/cases/<case>/`; the case directories
/// with the object paths in each.
pub fn unpack_cases(
    build: &Build,
    cases: &[(String, Vec<GcdaFile>)],
    coverage: &Path,
) -> Result<BTreeMap<String, (PathBuf, Vec<PathBuf>)>> {
    let root = coverage.join("cases");
    // A replay's old counters are removed after the new ones are written: ext4 searches
    // long for a free inode right after many were freed.
    let old = coverage.join("cases.old");
    let _ = std::fs::remove_dir_all(&old);
    let _ = std::fs::rename(&root, &old);
    let mut out = BTreeMap::new();
    for (case, files) in cases {
        let dir = root.join(case);
        let objects = unpack(build, files, &dir)?;
        out.insert(case.clone(), (dir, objects));
    }
    let _ = std::fs::remove_dir_all(&old);
    Ok(out)
}
