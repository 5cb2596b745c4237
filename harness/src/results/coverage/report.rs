//! A coverage run's report: every case's counters summed by gcov-tool, then gcovr (from PyPI,
//! in the harness's virtualenv) writes the HTML pages, its JSON, a JSON summary and
//! Cobertura XML; the per-file table comes from gcovr's summary, the per-function one and
//! "which cases ran this line" (`lines.json`) from the line map.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};

use super::lines::LineMap;
use super::Build;
use crate::error::{Error, Result};

/// What a coverage run wrote and what it found.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// `coverage/` of the run.
    pub dir: PathBuf,
    /// Per file, as gcovr counts it.
    pub files: Vec<FileRow>,
    /// How many cases sent counters.
    pub cases: usize,
}

/// One file's line, branch and function coverage.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FileRow {
    /// The source file, relative to the tree.
    pub file: String,
    /// Lines executed, and executable.
    pub lines: (u64, u64),
    /// Branches taken, and there.
    pub branches: (u64, u64),
    /// Functions entered, and there.
    pub functions: (u64, u64),
}

impl FileRow {
    /// Covered as a percentage of the total (100 for an empty total).
    pub fn percent((hit, total): (u64, u64)) -> f64 {
        if total == 0 {
            100.0
        } else {
            hit as f64 * 100.0 / total as f64
        }
    }
}

use super::PROFILED;

/// The HTML report's first page (below the run's `coverage/`), a page per file beside it.
pub const HTML: &str = "html/index.html";
/// gcovr's own JSON: every line's count, for CI tools that read gcovr.
pub const GCOVR_JSON: &str = "gcovr.json";
/// gcovr's per-file summary, which the terminal table shows.
pub const SUMMARY_JSON: &str = "summary.json";
/// Cobertura XML, for CI systems' coverage views.
pub const COBERTURA: &str = "cobertura.xml";
/// Every executable line with its count and the cases that executed it.
pub const LINES_JSON: &str = "lines.json";

/// Sum every case's counters (`case_dirs`) into `<dir>/merged`, and write gcovr's report
/// there.
pub fn write(build: &Build, case_dirs: &[PathBuf], dir: &Path) -> Result<Report> {
    let merged = merge(case_dirs, dir)?;
    gcovr(build, &merged, dir)?;
    let files = summary(&dir.join(SUMMARY_JSON))?;
    Ok(Report {
        dir: dir.to_path_buf(),
        files,
        cases: case_dirs.len(),
    })
}

/// `lines.json`: the line map, for whoever asks which cases ran a line.
pub fn write_lines(map: &LineMap, dir: &Path) -> Result<()> {
    let lines = dir.join(LINES_JSON);
    std::fs::write(
        &lines,
        serde_json::to_string(map).expect("a line map serialises"),
    )
    .map_err(|e| Error::io(lines.display(), e))
}

/// gcov-tool's merge of every case's counters into a copy of the first case's: each merge
/// reads both directories whole before it writes, so the sum is kept in place (fewer
/// files made and removed, which ext4 makes slow).
fn merge(case_dirs: &[PathBuf], dir: &Path) -> Result<PathBuf> {
    let tool = super::gcov_tool("gcov-tool")?;
    let out = dir.join("merged");
    let _ = std::fs::remove_dir_all(&out);
    let Some((first, rest)) = case_dirs.split_first() else {
        return Err(Error::coverage(
            "no case sent gcov counters: the kernel was not built with --coverage, or no case ran",
            None,
        ));
    };
    copy_tree(first, &out)?;
    for case in rest {
        super::run_tool(
            Command::new(&tool)
                .arg("merge")
                .arg("-o")
                .arg(&out)
                .arg(case)
                .arg(&out),
            &format!("summing the counters of {}", case.display()),
        )?;
    }
    Ok(out)
}

/// A copy of `from` (its .gcda files and .gcno links) at `to`.
fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    super::run_tool(
        Command::new("cp").arg("-a").arg(from).arg(to),
        &format!("copying {}", from.display()),
    )
    .map(drop)
}

/// gcovr over the merged counters, the sources read in the build's tree.
fn gcovr(build: &Build, merged: &Path, dir: &Path) -> Result<()> {
    let bin = crate::env::pytools::with(&crate::env::cache::dir(), &["gcovr"])?;
    let html = dir.join(HTML);
    if let Some(p) = html.parent() {
        std::fs::create_dir_all(p).map_err(|e| Error::io(p.display(), e))?;
    }
    let gcov = super::gcov_tool("gcov")?;
    let mut gcovr = Command::new(bin.join("gcovr"));
    gcovr
        .arg("--root")
        .arg(&build.tree)
        .arg("--gcov-executable")
        .arg(&gcov)
        // fs/fuse only: the headers of include/ that it inlines are left out.
        .arg("--filter")
        .arg(PROFILED)
        .arg("--html-details")
        .arg(&html)
        .arg("--html-title")
        .arg(format!("fs/fuse coverage: {}", build.source))
        .arg("--json")
        .arg(dir.join(GCOVR_JSON))
        .arg("--json-summary")
        .arg(dir.join(SUMMARY_JSON))
        .arg("--cobertura")
        .arg(dir.join(COBERTURA))
        .arg("-j")
        .arg("0")
        .arg(merged)
        .current_dir(&build.tree);
    super::run_tool(&mut gcovr, "writing the report with gcovr").map(drop)
}

/// gcovr's `--json-summary`, the fields read here.
#[derive(Deserialize)]
struct Summary {
    files: Vec<SummaryFile>,
}

#[derive(Deserialize)]
struct SummaryFile {
    filename: String,
    line_covered: u64,
    line_total: u64,
    branch_covered: u64,
    branch_total: u64,
    #[serde(default)]
    function_covered: u64,
    #[serde(default)]
    function_total: u64,
}

/// The per-file rows of gcovr's summary, in file order.
pub fn summary(path: &Path) -> Result<Vec<FileRow>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path.display(), e))?;
    let s: Summary = serde_json::from_str(&text).map_err(|e| {
        Error::coverage(
            format!("gcovr's summary {}", path.display()),
            Some(Box::new(e)),
        )
    })?;
    let mut rows: Vec<FileRow> = s
        .files
        .into_iter()
        .map(|f| FileRow {
            file: f.filename,
            lines: (f.line_covered, f.line_total),
            branches: (f.branch_covered, f.branch_total),
            functions: (f.function_covered, f.function_total),
        })
        .collect();
    rows.sort_by(|a, b| a.file.cmp(&b.file));
    Ok(rows)
}

/// The terminal table: one row per file, then the total.
pub fn table(rows: &[FileRow]) -> String {
    let mut out = format!(
        "{:<28} {:>16} {:>16} {:>14}\n",
        "file", "lines", "branches", "functions"
    );
    let cell = |(hit, total): (u64, u64)| {
        format!(
            "{:>5.1}% {:>4}/{:<4}",
            FileRow::percent((hit, total)),
            hit,
            total
        )
    };
    let mut sum = FileRow {
        file: "total".into(),
        ..FileRow::default()
    };
    for r in rows {
        out.push_str(&format!(
            "{:<28} {:>16} {:>16} {:>14}\n",
            r.file,
            cell(r.lines),
            cell(r.branches),
            cell(r.functions)
        ));
        for (s, v) in [
            (&mut sum.lines, r.lines),
            (&mut sum.branches, r.branches),
            (&mut sum.functions, r.functions),
        ] {
            s.0 += v.0;
            s.1 += v.1;
        }
    }
    out.push_str(&format!(
        "{:<28} {:>16} {:>16} {:>14}\n",
        sum.file,
        cell(sum.lines),
        cell(sum.branches),
        cell(sum.functions)
    ));
    out
}

/// Which lines of a run's rows a row of [`side_by_side`] shows (hit, total).
type LinesOf<'a> = dyn Fn(&[FileRow]) -> Option<(u64, u64)> + 'a;

/// Several runs' line coverage side by side (a matrix, a validate of several kernels): one
/// row per file any of them profiled, one column per run, then the total.
pub fn side_by_side(columns: &[(String, Vec<FileRow>)]) -> String {
    let files: std::collections::BTreeSet<&str> = columns
        .iter()
        .flat_map(|(_, rows)| rows.iter().map(|r| r.file.as_str()))
        .collect();
    let mut out = format!("{:<28}", "lines");
    for (label, _) in columns {
        out.push_str(&format!(" {label:>16}"));
    }
    out.push('\n');
    let cell = |lines: Option<(u64, u64)>| match lines {
        Some(l) => format!("{:>5.1}% {:>4}/{:<4}", FileRow::percent(l), l.0, l.1),
        None => "-".into(),
    };
    let mut push = |name: &str, of: &LinesOf<'_>| {
        out.push_str(&format!("{name:<28}"));
        for (_, rows) in columns {
            out.push_str(&format!(" {:>16}", cell(of(rows))));
        }
        out.push('\n');
    };
    for f in &files {
        push(f, &|rows| {
            rows.iter().find(|r| r.file == *f).map(|r| r.lines)
        });
    }
    push("total", &|rows| {
        Some(
            rows.iter()
                .fold((0, 0), |s, r| (s.0 + r.lines.0, s.1 + r.lines.1)),
        )
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_side_by_side_name_what_one_of_them_did_not_build() {
        let row = |file: &str, lines| FileRow {
            file: file.into(),
            lines,
            ..FileRow::default()
        };
        let t = side_by_side(&[
            ("6.12".into(), vec![row("fs/fuse/passthrough.c", (90, 100))]),
            (
                "7.3".into(),
                vec![
                    row("fs/fuse/backing.c", (10, 20)),
                    row("fs/fuse/passthrough.c", (99, 100)),
                ],
            ),
        ]);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].contains("6.12") && lines[0].contains("7.3"), "{t}");
        assert!(
            lines[1].starts_with("fs/fuse/backing.c") && lines[1].contains(" - "),
            "{t}"
        );
        assert!(lines[1].contains("50.0%   10/20"), "{t}");
        assert!(
            lines[3].starts_with("total") && lines[3].contains("90.0%   90/100"),
            "{t}"
        );
        assert!(lines[3].contains("90.8%  109/120"), "{t}");
    }

    #[test]
    fn gcovr_summary_becomes_rows_and_a_table() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        std::fs::write(&path, r#"{"gcovr/summary_format_version":"0.6","files":[{"filename":"fs/fuse/passthrough.c","line_total":100,"line_covered":95,"line_percent":95.0,"function_total":10,"function_covered":9,"function_percent":90.0,"branch_total":40,"branch_covered":30,"branch_percent":75.0},{"filename":"fs/fuse/backing.c","line_total":50,"line_covered":50,"line_percent":100.0,"function_total":5,"function_covered":5,"function_percent":100.0,"branch_total":0,"branch_covered":0,"branch_percent":null}],"line_total":150}"#).unwrap();
        let rows = summary(&path).unwrap();
        assert_eq!(rows[0].file, "fs/fuse/backing.c");
        assert_eq!(rows[1].lines, (95, 100));
        let t = table(&rows);
        assert!(
            t.contains("fs/fuse/passthrough.c         95.0%   95/100"),
            "{t}"
        );
        assert!(t.lines().last().unwrap().starts_with("total"), "{t}");
        assert!(t.contains("96.7%  145/150"), "{t}");
    }
}
