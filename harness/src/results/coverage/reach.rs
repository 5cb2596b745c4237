//! `--case reaches-patch`: the cases whose lines meet a patch's changed lines, from the
//! coverage of the base tree's whole catalog kept in the build entry (made by any coverage
//! run of that tree without a series). The working copy is compared with its source file
//! by file (the series applied, whatever it is), so nothing depends on how the patch reads.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::lines::LineMap;
use super::Build;
use crate::error::{Error, Result};

/// What `--case` takes to run only the cases that reach the series.
pub const REACHES_PATCH: &str = "reaches-patch";

/// Where a build entry keeps its base tree's coverage.
fn base_path(build: &Build) -> PathBuf {
    build
        .objects
        .parent()
        .unwrap_or(&build.objects)
        .join("coverage-base.json")
}

/// Keep `map` as the base tree's coverage of this build entry.
pub fn save_base(build: &Build, map: &LineMap) -> Result<()> {
    let path = base_path(build);
    let tmp = path.with_extension("new");
    std::fs::write(
        &tmp,
        serde_json::to_string(map).expect("a line map serialises"),
    )
    .map_err(|e| Error::io(tmp.display(), e))?;
    std::fs::rename(&tmp, &path).map_err(|e| Error::io(path.display(), e))
}

/// The cases picked, and why, for people.
#[derive(Debug, Clone)]
pub struct Pick {
    /// The cases that reach the change.
    pub cases: BTreeSet<String>,
    /// How many, and which lines they reach, in one sentence.
    pub why: String,
}

/// The cases of the base coverage that executed a line the series changes (or, where the
/// change has no executable line of its own, a line of the function around it).
pub fn pick(build: &Build) -> Result<Pick> {
    let path = base_path(build);
    let base: LineMap = match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text)
            .map_err(|e| Error::coverage(path.display().to_string(), Some(Box::new(e))))?,
        Err(_) => {
            return Err(Error::NoBaseCoverage {
                entry: path,
                src: build.src_arg.clone(),
            })
        }
    };
    let mut touched: BTreeMap<String, BTreeSet<u32>> = BTreeMap::new();
    for (file, lines) in &base.files {
        let changed = changed_base_lines(&build.origin.join(file), &build.tree.join(file));
        if changed.is_empty() {
            continue;
        }
        // Lines gcov does not count (a comment, a declaration) reach through their function.
        let mut reach: BTreeSet<u32> = changed
            .iter()
            .copied()
            .filter(|n| lines.lines.contains_key(n))
            .collect();
        for (start, end) in lines.functions.values() {
            if changed.iter().any(|n| (start..=end).contains(&n))
                && reach.range(start..=end).next().is_none()
            {
                reach.extend(lines.lines.range(start..=end).map(|(n, _)| *n));
            }
        }
        touched.insert(file.clone(), reach);
    }
    if touched.is_empty() {
        return Err(Error::PatchTouchesNothingBuilt {
            files: format!(
                "no profiled file differs from {} in the working copy",
                build.origin.display()
            ),
        });
    }
    let mut cases = BTreeSet::new();
    let mut where_ = Vec::new();
    for (file, lines) in &touched {
        cases.extend(base.cases_at(file, lines.iter().copied()));
        let listed: Vec<u32> = lines.iter().copied().collect();
        where_.push(format!(
            "{file}:{}",
            super::patch::ranges(&listed).join(",")
        ));
    }
    let why = format!(
        "{} cases executed the changed lines ({}) in the base tree's coverage ({})",
        cases.len(),
        where_.join("; "),
        path.display()
    );
    Ok(Pick { cases, why })
}

/// The lines of `base` (1-based) that `now` changes or removes, and for an insertion the
/// lines on either side of it. Empty when the files are the same.
fn changed_base_lines(base: &Path, now: &Path) -> BTreeSet<u32> {
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

    #[test]
    fn without_a_base_coverage_it_says_which_run_makes_one() {
        let dir = tempfile::tempdir().unwrap();
        let build = Build {
            objects: dir.path().join("out"),
            tree: dir.path().join("tree"),
            origin: dir.path().join("src"),
            source: "linux-source-7.3 7.3.4".into(),
            src_arg: "debian:7.3".into(),
            series: Vec::new(),
        };
        let err = pick(&build).unwrap_err();
        assert_eq!(err.exit_code(), 37);
        assert!(
            err.to_string().contains(
                "run `cargo xtask run --src debian:7.3 --coverage` (no --patch) once first"
            ),
            "{err}"
        );
        // A base whose tree the series leaves as it was: nothing to reach.
        let mut map = LineMap::default();
        map.files.insert("fs/fuse/x.c".into(), Default::default());
        save_base(&build, &map).unwrap();
        for d in [&build.tree, &build.origin] {
            std::fs::create_dir_all(d.join("fs/fuse")).unwrap();
            std::fs::write(d.join("fs/fuse/x.c"), "a\n").unwrap();
        }
        assert_eq!(pick(&build).unwrap_err().exit_code(), 38);
    }
}
