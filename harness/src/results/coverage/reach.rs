//! `--case reaches-patch`: the cases whose lines meet a patch's changed lines, from the
//! coverage of the base tree's whole catalog kept in the build entry (made by any coverage
//! run of that tree without a series). The changed lines are the build's
//! (`CoverageBuild::changed`: the working copy against its source, file by file, taken while
//! the build held its entry), so nothing depends on how the patch reads.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::lines::LineMap;
use super::Build;
use crate::error::{Error, Result};

/// What `--case` takes to run only the cases that reach the series.
pub const REACHES_PATCH: &str = "reaches-patch";

/// Where a build entry keeps its base tree's coverage.
fn base_path(build: &Build) -> PathBuf {
    base_in(build.objects.parent().unwrap_or(&build.objects))
}

fn base_in(entry: &Path) -> PathBuf {
    entry.join("coverage-base.json")
}

/// The base tree's coverage a build entry keeps, if a run made it (and it reads).
pub fn base_of_entry(entry: &Path) -> Option<LineMap> {
    serde_json::from_str(&std::fs::read_to_string(base_in(entry)).ok()?).ok()
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
        let Some(changed) = build.changed.get(file) else {
            continue;
        };
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_base_coverage_it_says_which_run_makes_one() {
        let dir = tempfile::tempdir().unwrap();
        let build = Build {
            objects: dir.path().join("out"),
            notes: dir.path().join("notes"),
            tree: dir.path().join("tree"),
            origin: dir.path().join("src"),
            source: "linux-source-7.3 7.3.4".into(),
            src_arg: "debian:7.3".into(),
            series: Vec::new(),
            changed: BTreeMap::new(),
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
        assert_eq!(pick(&build).unwrap_err().exit_code(), 38);
    }
}
