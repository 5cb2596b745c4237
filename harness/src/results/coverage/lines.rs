//! Every executable line of the profiled sources, its count over the run and the cases
//! that executed it (branches are gcovr's, over the summed counters): gcov's JSON intermediate format (`gcov --json-format`) of each case's
//! counters, read with serde. gcov itself decodes the counters; nothing here does.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};
use sha2::Digest;

use crate::error::{Error, Result};

/// The run's lines, by source file relative to the tree (`fs/fuse/file.c`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LineMap {
    /// Per source file.
    pub files: BTreeMap<String, FileLines>,
}

/// One source file's executable lines and functions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FileLines {
    /// Line number to what ran there.
    pub lines: BTreeMap<u32, Line>,
    /// Function name to its first and last line.
    pub functions: BTreeMap<String, (u32, u32)>,
}

/// One executable line.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Line {
    /// Times executed over the whole run.
    pub count: u64,
    /// The cases that executed it, in name order.
    pub cases: BTreeSet<String>,
    /// The function it belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
}

impl LineMap {
    /// Add one gcov JSON document, the counters of every case in `cases`.
    fn add(&mut self, cases: &[String], doc: &GcovDoc, tree: &Path) {
        {
            for file in &doc.files {
                let Some(rel) = relative(&file.file, tree) else {
                    continue;
                };
                // fs/fuse's own files: the headers it inlines are counted as the report counts
                // them, not at all.
                if !rel.starts_with(super::PROFILED) {
                    continue;
                }
                let entry = self.files.entry(rel).or_default();
                for f in &file.functions {
                    entry
                        .functions
                        .insert(f.name.clone(), (f.start_line, f.end_line));
                }
                for l in &file.lines {
                    let line = entry.lines.entry(l.line_number).or_default();
                    line.count += l.count * cases.len() as u64;
                    if l.count > 0 {
                        line.cases.extend(cases.iter().cloned());
                    }
                    if line.function.is_none() {
                        line.function = l.function_name.clone();
                    }
                }
            }
        }
    }

    /// The cases that executed any of `lines` of `file`.
    pub fn cases_at(&self, file: &str, lines: impl IntoIterator<Item = u32>) -> BTreeSet<String> {
        let Some(f) = self.files.get(file) else {
            return BTreeSet::new();
        };
        lines
            .into_iter()
            .filter_map(|n| f.lines.get(&n))
            .flat_map(|l| l.cases.iter().cloned())
            .collect()
    }
}

/// A source path as gcov names it, relative to the tree it was built from; None for what
/// lies outside it (a compiler's own header).
fn relative(file: &str, tree: &Path) -> Option<String> {
    let path = Path::new(file);
    if path.is_relative() {
        return Some(file.trim_start_matches("./").to_string());
    }
    path.strip_prefix(tree)
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

/// The line map of a run: gcov over each case's directory (`cases`: case -> its directory
/// and object paths), two at a time.
pub fn map(cases: &BTreeMap<String, (PathBuf, Vec<PathBuf>)>, tree: &Path) -> Result<LineMap> {
    let gcov = super::gcov_tool("gcov")?;
    // Counters that are the same bytes in several cases (an object none of them entered
    // is all zeros) are read by gcov once, for all of them.
    let mut groups: BTreeMap<(PathBuf, Vec<u8>), Vec<String>> = BTreeMap::new();
    // The group each case directory's object is read for (its first case's).
    let mut read_for: BTreeMap<(PathBuf, PathBuf), (PathBuf, Vec<u8>)> = BTreeMap::new();
    let mut work: Vec<(PathBuf, Vec<PathBuf>)> = Vec::new();
    for (case, (dir, objects)) in cases {
        let mut first = Vec::new();
        for o in objects {
            let bytes = std::fs::read(dir.join(o)).map_err(|e| Error::io(o.display(), e))?;
            let key = (o.clone(), sha2::Sha256::digest(&bytes).to_vec());
            let group = groups.entry(key.clone()).or_default();
            if group.is_empty() {
                first.push(o.clone());
                read_for.insert((dir.clone(), o.clone()), key);
            }
            group.push(case.clone());
        }
        work.push((dir.clone(), first));
    }
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let chunk = work.len().div_ceil(threads).max(1);
    let parsed: Vec<Result<Vec<DirDocs>>> = std::thread::scope(|s| {
        let handles: Vec<_> = work
            .chunks(chunk)
            .map(|part| {
                let gcov = &gcov;
                s.spawn(move || {
                    part.iter()
                        .map(|(dir, objects)| Ok((dir.clone(), run_gcov(gcov, dir, objects)?)))
                        .collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a gcov thread ends"))
            .collect()
    });
    let mut out = LineMap::default();
    for part in parsed {
        for (dir, docs) in part? {
            for doc in docs {
                // gcov names the counters file it read as it was given, relative to `dir`.
                let object = PathBuf::from(&doc.data_file);
                let group = read_for
                    .get(&(dir.clone(), object))
                    .and_then(|key| groups.get(key))
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                out.add(group, &doc, tree);
            }
        }
    }
    Ok(out)
}

/// A case's directory and gcov's documents of the counters read there.
type DirDocs = (PathBuf, Vec<GcovDoc>);

/// gcov's JSON for the objects of one directory, on its stdout: one document per object.
fn run_gcov(gcov: &str, dir: &Path, objects: &[PathBuf]) -> Result<Vec<GcovDoc>> {
    if objects.is_empty() {
        return Ok(Vec::new());
    }
    // Each .gcda beside its .gcno, named relative to the case's directory: gcov finds the
    // notes file itself.
    let out = super::run_tool(
        Command::new(gcov)
            .arg("--json-format")
            .arg("--stdout")
            .args(objects)
            .current_dir(dir),
        &format!("reading the counters in {}", dir.display()),
    )?;
    // One JSON document per line.
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            serde_json::from_str(line).map_err(|e| {
                Error::coverage(
                    format!("{gcov}'s JSON for {}", dir.display()),
                    Some(Box::new(e)),
                )
            })
        })
        .collect()
}

/// gcov's JSON intermediate format (gcc 9 and later), the fields read here.
#[derive(Debug, Deserialize)]
struct GcovDoc {
    /// The counters file, as gcov was given it.
    data_file: String,
    files: Vec<GcovFile>,
}

#[derive(Debug, Deserialize)]
struct GcovFile {
    file: String,
    #[serde(default)]
    functions: Vec<GcovFunction>,
    #[serde(default)]
    lines: Vec<GcovLine>,
}

#[derive(Debug, Deserialize)]
struct GcovFunction {
    name: String,
    start_line: u32,
    end_line: u32,
}

#[derive(Debug, Deserialize)]
struct GcovLine {
    line_number: u32,
    count: u64,
    #[serde(default)]
    function_name: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"{"format_version":"1","gcc_version":"12.2.0","current_working_directory":"/b","data_file":"fs/fuse/x.gcda","files":[{"file":"/t/fs/fuse/x.c","functions":[{"name":"f","demangled_name":"f","start_line":1,"start_column":1,"end_line":4,"end_column":1,"blocks":3,"blocks_executed":2,"execution_count":1}],"lines":[{"line_number":2,"function_name":"f","count":1,"unexecuted_block":false,"branches":[{"count":1,"throw":false,"fallthrough":true},{"count":0,"throw":false,"fallthrough":false}]},{"line_number":3,"function_name":"f","count":0,"unexecuted_block":true,"branches":[]}]},{"file":"/usr/lib/gcc/x.h","functions":[],"lines":[]}]}"#;

    #[test]
    fn gcov_json_becomes_lines_with_their_cases() {
        let doc: GcovDoc = serde_json::from_str(DOC).unwrap();
        let mut map = LineMap::default();
        map.add(&["a.one".to_string()], &doc, Path::new("/t"));
        let doc: GcovDoc = serde_json::from_str(&DOC.replace(
            r#""count":1,"unexecuted_block":false,"branches":[{"count":1"#,
            r#""count":5,"unexecuted_block":false,"branches":[{"count":1"#,
        ))
        .unwrap();
        map.add(&["b.two".to_string()], &doc, Path::new("/t"));
        assert_eq!(map.files.keys().collect::<Vec<_>>(), ["fs/fuse/x.c"]);
        let f = &map.files["fs/fuse/x.c"];
        assert_eq!(f.functions["f"], (1, 4));
        assert_eq!(f.lines[&2].count, 6);
        assert_eq!(
            f.lines[&2].cases.iter().collect::<Vec<_>>(),
            ["a.one", "b.two"]
        );
        assert!(f.lines[&3].cases.is_empty());
        assert_eq!(map.cases_at("fs/fuse/x.c", [3]).len(), 0);
        assert_eq!(map.cases_at("fs/fuse/x.c", [2, 3]).len(), 2);
    }
}
