//! A patch series' changed lines against a run's line map: per patch, how many lines it
//! adds or changes in files built into the kernel, how many the catalog executed and by
//! which cases, and the changed lines nothing executed.
//!
//! A patch's lines are numbered as they stand after the whole series: each later patch's
//! hunks carry them forward (a line a later patch removes is no longer the first one's).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::lines::LineMap;

/// Where a coverage run writes its series' patch coverage (below `coverage/`).
pub const PATCHES_JSON: &str = "patches.json";

/// One hunk of one file in one patch: where it starts on each side, and its lines (' ', '+'
/// or '-', and the text).
#[derive(Debug, Clone, PartialEq)]
struct Hunk {
    old_start: u32,
    new_start: u32,
    body: Vec<(char, String)>,
}

/// A patch's diff: file (as it is after the patch) to its hunks, in order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Diff {
    files: BTreeMap<String, Vec<Hunk>>,
}

impl Diff {
    /// The unified diff in a mail (`git format-patch`): `+++ b/PATH` and `@@` hunks.
    pub fn parse(text: &str) -> Diff {
        let mut diff = Diff::default();
        let mut file: Option<String> = None;
        let mut lines = text.lines().peekable();
        while let Some(line) = lines.next() {
            if let Some(path) = line.strip_prefix("+++ ") {
                file = path.strip_prefix("b/").map(String::from);
                continue;
            }
            let (Some(f), Some(header)) = (&file, line.strip_prefix("@@ -")) else {
                continue;
            };
            let Some((ranges, _)) = header.split_once(" @@") else {
                continue;
            };
            let Some((old, new)) = ranges.split_once(" +") else {
                continue;
            };
            let range = |r: &str| -> (u32, u32) {
                let (s, n) = r.split_once(',').unwrap_or((r, "1"));
                (s.parse().unwrap_or(0), n.parse().unwrap_or(0))
            };
            let ((old_start, mut old_left), (new_start, mut new_left)) = (range(old), range(new));
            let mut body = Vec::new();
            while old_left + new_left > 0 {
                let Some(l) = lines.next() else { break };
                let (tag, rest) = l.split_at(l.len().min(1));
                let tag = tag.chars().next().unwrap_or(' ');
                match tag {
                    '+' => new_left = new_left.saturating_sub(1),
                    '-' => old_left = old_left.saturating_sub(1),
                    '\\' => continue,
                    _ => {
                        old_left = old_left.saturating_sub(1);
                        new_left = new_left.saturating_sub(1);
                    }
                }
                body.push((
                    if tag == '+' || tag == '-' { tag } else { ' ' },
                    rest.to_string(),
                ));
            }
            diff.files.entry(f.clone()).or_default().push(Hunk {
                old_start,
                new_start,
                body,
            });
        }
        diff
    }

    /// The lines this diff adds, per file, numbered as in the file after it.
    pub fn added(&self) -> BTreeMap<String, BTreeSet<u32>> {
        let mut out: BTreeMap<String, BTreeSet<u32>> = BTreeMap::new();
        for (file, hunks) in &self.files {
            for h in hunks {
                let mut new = h.new_start;
                for (tag, _) in &h.body {
                    match tag {
                        '+' => {
                            out.entry(file.clone()).or_default().insert(new);
                            new += 1;
                        }
                        '-' => {}
                        _ => new += 1,
                    }
                }
            }
        }
        out
    }

    /// Where line `n` of `file`, as it was before this diff, is after it; None if the diff
    /// removes it.
    pub fn carry(&self, file: &str, n: u32) -> Option<u32> {
        let Some(hunks) = self.files.get(file) else {
            return Some(n);
        };
        let mut delta: i64 = 0;
        for h in hunks {
            if n < h.old_start {
                break;
            }
            let (mut old, mut new) = (h.old_start, h.new_start);
            for (tag, _) in &h.body {
                match tag {
                    '+' => new += 1,
                    '-' => {
                        if old == n {
                            return None;
                        }
                        old += 1;
                    }
                    _ => {
                        if old == n {
                            return Some(new);
                        }
                        old += 1;
                        new += 1;
                    }
                }
            }
            delta = new as i64 - old as i64;
        }
        Some((n as i64 + delta) as u32)
    }
}

/// Each patch's added lines, numbered as in the tree after the whole series.
pub fn changed_lines(diffs: &[Diff]) -> Vec<BTreeMap<String, BTreeSet<u32>>> {
    diffs
        .iter()
        .enumerate()
        .map(|(i, d)| {
            d.added()
                .into_iter()
                .map(|(file, lines)| {
                    let carried = lines
                        .into_iter()
                        .filter_map(|n| {
                            diffs[i + 1..]
                                .iter()
                                .try_fold(n, |n, later| later.carry(&file, n))
                        })
                        .collect();
                    (file, carried)
                })
                .collect()
        })
        .collect()
}

/// What the catalog did with one patch's lines.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PatchCoverage {
    /// The mail's subject.
    pub subject: String,
    /// Per file it changes.
    pub files: Vec<FileCoverage>,
}

/// One changed file of a patch.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FileCoverage {
    /// The file, relative to the tree.
    pub file: String,
    /// Whether the kernel was built with it, and profiled: "profiled", "built, not
    /// profiled" (outside fs/fuse), "not built".
    pub status: String,
    /// Every line the patch adds or changes.
    pub changed: Vec<u32>,
    /// Of those, the lines gcov counts (code, not comments or declarations).
    pub executable: Vec<u32>,
    /// Of those, what executed them.
    pub executed: BTreeMap<u32, BTreeSet<String>>,
}

impl FileCoverage {
    /// The executable changed lines no case executed, as ranges ("117-118").
    pub fn unexecuted(&self) -> Vec<String> {
        let missed: Vec<u32> = self
            .executable
            .iter()
            .copied()
            .filter(|n| !self.executed.contains_key(n))
            .collect();
        ranges(&missed)
    }
}

/// "3", "5-7" for runs of consecutive numbers.
pub fn ranges(lines: &[u32]) -> Vec<String> {
    let mut out = Vec::new();
    let mut iter = lines.iter().copied().peekable();
    while let Some(start) = iter.next() {
        let mut end = start;
        while iter.peek() == Some(&(end + 1)) {
            end = iter.next().expect("peeked");
        }
        out.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
    }
    out
}

/// Each patch of the series (subject, mail text) against the run's line map. `objects`
/// tells a file built into the kernel (it has an object there) from one that is not.
pub fn judge(patches: &[(String, String)], map: &LineMap, objects: &Path) -> Vec<PatchCoverage> {
    let diffs: Vec<Diff> = patches.iter().map(|(_, text)| Diff::parse(text)).collect();
    changed_lines(&diffs)
        .into_iter()
        .zip(patches)
        .map(|(files, (subject, _))| PatchCoverage {
            subject: subject.clone(),
            files: files
                .into_iter()
                .map(|(file, changed)| {
                    let profiled = map.files.get(&file);
                    let status = match profiled {
                        Some(_) => "profiled",
                        None if built(objects, &file) => "built, not profiled",
                        None => "not built",
                    };
                    let executable: Vec<u32> = changed
                        .iter()
                        .copied()
                        .filter(|n| profiled.is_some_and(|f| f.lines.contains_key(n)))
                        .collect();
                    let executed = executable
                        .iter()
                        .filter_map(|n| {
                            let l = &profiled?.lines[n];
                            (!l.cases.is_empty()).then(|| (*n, l.cases.clone()))
                        })
                        .collect();
                    FileCoverage {
                        file,
                        status: status.into(),
                        changed: changed.into_iter().collect(),
                        executable,
                        executed,
                    }
                })
                .collect(),
        })
        .collect()
}

/// Whether `file` went into the kernel: a C file with its object in the build, or a
/// header beside one.
fn built(objects: &Path, file: &str) -> bool {
    let path = Path::new(file);
    match path.extension().and_then(|x| x.to_str()) {
        Some("c") => objects.join(path.with_extension("o")).exists(),
        Some("h") => path
            .parent()
            .and_then(|d| std::fs::read_dir(objects.join(d)).ok())
            .is_some_and(|mut d| {
                d.any(|e| e.is_ok_and(|e| e.path().extension().is_some_and(|x| x == "o")))
            }),
        _ => false,
    }
}

/// The text the terminal shows for a series' patch coverage; `first` is the first patch's
/// number in its series.
pub fn describe(patches: &[PatchCoverage], first: usize) -> String {
    let mut out = String::new();
    for (i, p) in patches.iter().enumerate() {
        let (mut changed, mut exe, mut ran) = (0, 0, 0);
        let mut cases: BTreeSet<&String> = BTreeSet::new();
        for f in p.files.iter().filter(|f| f.status == "profiled") {
            changed += f.changed.len();
            exe += f.executable.len();
            ran += f.executed.len();
            cases.extend(f.executed.values().flatten());
        }
        out.push_str(&format!(
            "patch {}: {}\n  {changed} lines added or changed in profiled files, {exe} executable, {ran} executed by {} cases\n",
            first + i,
            p.subject,
            cases.len()
        ));
        for f in &p.files {
            if f.status != "profiled" {
                out.push_str(&format!(
                    "  {}: {} lines changed, {}\n",
                    f.file,
                    f.changed.len(),
                    f.status
                ));
                continue;
            }
            let missed = f.unexecuted();
            let short = f.file.rsplit('/').next().unwrap_or(&f.file);
            if missed.is_empty() {
                out.push_str(&format!(
                    "  {}: every executable changed line executed ({} of {})\n",
                    f.file,
                    f.executed.len(),
                    f.executable.len()
                ));
            } else {
                out.push_str(&format!(
                    "  {short}:{} not executed by any case\n",
                    missed.join(",")
                ));
            }
            for (n, who) in &f.executed {
                let names: Vec<&str> = who.iter().map(String::as_str).take(6).collect();
                let more = who.len().saturating_sub(names.len());
                out.push_str(&format!(
                    "    {short}:{n} executed by {}{}\n",
                    names.join(", "),
                    if more > 0 {
                        format!(" and {more} more")
                    } else {
                        String::new()
                    }
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIRST: &str = "Subject: [PATCH 1/2] one\n---\ndiff --git a/fs/fuse/x.c b/fs/fuse/x.c\n--- a/fs/fuse/x.c\n+++ b/fs/fuse/x.c\n@@ -10,3 +10,4 @@ f\n a\n+b\n c\n d\n";
    const SECOND: &str = "diff --git a/fs/fuse/x.c b/fs/fuse/x.c\n--- a/fs/fuse/x.c\n+++ b/fs/fuse/x.c\n@@ -2,2 +2,3 @@\n p\n+q\n r\n@@ -11,2 +12,2 @@\n-b\n+B\n c\n";

    #[test]
    fn added_lines_are_numbered_after_the_whole_series() {
        let diffs = [Diff::parse(FIRST), Diff::parse(SECOND)];
        assert_eq!(diffs[0].added()["fs/fuse/x.c"], BTreeSet::from([11]));
        // The second patch inserts a line above (11 -> 12) and then replaces it.
        assert_eq!(diffs[1].carry("fs/fuse/x.c", 5), Some(6));
        assert_eq!(diffs[1].carry("fs/fuse/x.c", 11), None);
        assert_eq!(diffs[1].carry("fs/fuse/x.c", 12), Some(13));
        assert_eq!(diffs[1].carry("fs/fuse/y.c", 12), Some(12));
        let changed = changed_lines(&diffs);
        assert!(changed[0]["fs/fuse/x.c"].is_empty(), "{changed:?}");
        assert_eq!(changed[1]["fs/fuse/x.c"], BTreeSet::from([3, 12]));
    }

    #[test]
    fn unexecuted_lines_read_as_ranges() {
        assert_eq!(ranges(&[3, 5, 6, 7, 9]), ["3", "5-7", "9"]);
        let f = FileCoverage {
            executable: vec![117, 118, 120],
            executed: [(120, BTreeSet::from(["a".to_string()]))].into(),
            ..Default::default()
        };
        assert_eq!(f.unexecuted(), ["117-118"]);
    }
}
