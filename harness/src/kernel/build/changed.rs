//! The lines a build's series changes in the files it profiles, numbered as in the source
//! it started from: what `--case reaches-patch` looks up in the base tree's coverage. Taken
//! while the build holds its entry, before another build can sync the working copy.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// For each file of `dir` (relative to the trees) that differs between `origin` and `tree`,
/// its changed base lines.
pub fn in_dir(origin: &Path, tree: &Path, dir: &str) -> BTreeMap<String, BTreeSet<u32>> {
    let mut out = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(tree.join(dir)) else {
        return out;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !(name.ends_with(".c") || name.ends_with(".h")) {
            continue;
        }
        let rel = format!("{}/{name}", dir.trim_end_matches('/'));
        let changed = changed_base_lines(&origin.join(&rel), &tree.join(&rel));
        if !changed.is_empty() {
            out.insert(rel, changed);
        }
    }
    out
}

/// The lines of `base` (1-based) that `now` changes or removes, and for an insertion the
/// lines on either side of it. Empty when the files are the same.
pub fn changed_base_lines(base: &Path, now: &Path) -> BTreeSet<u32> {
    let (Ok(old), Ok(new)) = (std::fs::read_to_string(base), std::fs::read_to_string(now)) else {
        return BTreeSet::new();
    };
    if old == new {
        return BTreeSet::new();
    }
    let mut out = BTreeSet::new();
    for op in similar::TextDiff::from_lines(&old, &new).ops() {
        match *op {
            similar::DiffOp::Equal { .. } => {}
            similar::DiffOp::Delete {
                old_index, old_len, ..
            }
            | similar::DiffOp::Replace {
                old_index, old_len, ..
            } => out.extend((old_index + 1..=old_index + old_len).map(|n| n as u32)),
            similar::DiffOp::Insert { old_index, .. } => {
                out.extend(
                    [old_index as u32, old_index as u32 + 1]
                        .into_iter()
                        .filter(|n| *n > 0),
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_lines_are_numbered_in_the_base_file() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, "1\n2\n3\n4\n5\n").unwrap();
        std::fs::write(&b, "1\n2 changed\n3\n4\nnew\n5\n").unwrap();
        assert_eq!(changed_base_lines(&a, &b), BTreeSet::from([2, 4, 5]));
        assert!(changed_base_lines(&a, &a).is_empty());
    }
}
