//! Reports for other tools, written beside a run's artifacts on request (`--report`):
//! KTAP for the kernel's own parser (kunit.py), JUnit XML for CI dashboards, KCIDB JSON for
//! KernelCI, and our own JSON (results.json, written by every run anyway).

pub mod junit;
pub mod kcidb;
pub mod ktap;

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::results::record::Run;
use crate::CaseResult;

/// A report format `--report` takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// KTAP, as kunit.py parses it.
    Ktap,
    /// JUnit XML.
    Junit,
    /// results.json as it is.
    Json,
    /// KCIDB v5 JSON.
    Kcidb,
}

impl Format {
    /// Every format with its name.
    pub const ALL: [(&'static str, Format); 4] = [
        ("ktap", Format::Ktap),
        ("junit", Format::Junit),
        ("json", Format::Json),
        ("kcidb", Format::Kcidb),
    ];

    /// The file each format is written to.
    pub fn file(self) -> &'static str {
        match self {
            Format::Ktap => "results.ktap",
            Format::Junit => "junit.xml",
            Format::Json => "results.json",
            Format::Kcidb => "kcidb.json",
        }
    }
}

/// "ktap,junit" -> the formats, or an error naming the unknown one and the known ones.
pub fn parse(list: &str) -> Result<Vec<Format>> {
    let mut out = Vec::new();
    for word in list.split(',').map(str::trim).filter(|w| !w.is_empty()) {
        let f = Format::ALL
            .iter()
            .find(|(n, _)| *n == word)
            .map(|(_, f)| *f)
            .ok_or_else(|| Error::UnknownReport {
                name: word.into(),
                known: Format::ALL.map(|(n, _)| n).join(", "),
            })?;
        if !out.contains(&f) {
            out.push(f);
        }
    }
    Ok(out)
}

/// The group of a case: "ids" of "ids.close_unknown".
pub fn group(case: &str) -> &str {
    case.split_once('.').map_or(case, |(g, _)| g)
}

/// The results in groups, in the order the groups first appear.
pub fn groups(results: &[CaseResult]) -> Vec<(&str, Vec<&CaseResult>)> {
    let mut out: Vec<(&str, Vec<&CaseResult>)> = Vec::new();
    for r in results {
        let g = group(&r.case);
        match out.iter_mut().find(|(name, _)| *name == g) {
            Some((_, list)) => list.push(r),
            None => out.push((g, vec![r])),
        }
    }
    out
}

/// The console log of a run, if it has one (a VM run; host mode has none).
pub fn console_log(run: &Run) -> Option<PathBuf> {
    let p = run.artifacts.join("console.log");
    p.is_file().then_some(p)
}

/// The last `n` lines of a text file.
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Write `formats` for one run into its artifacts directory; returns the files.
pub fn write(run: &Run, formats: &[Format]) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for f in formats {
        let path = run.artifacts.join(f.file());
        let text = match f {
            // Every run writes it already.
            Format::Json => {
                written.push(path);
                continue;
            }
            Format::Ktap => ktap::render(&run.results),
            Format::Junit => junit::render(&[run])?,
            Format::Kcidb => kcidb::render(&[run]),
        };
        std::fs::write(&path, text).map_err(|e| Error::io(path.display(), e))?;
        written.push(path);
    }
    Ok(written)
}

/// Write `formats` for several runs (a matrix, a validate over kernels) into `dir`: each
/// run's own files go in its artifacts; JUnit and KCIDB are also merged into `dir`.
pub fn write_many(runs: &[&Run], dir: &Path, formats: &[Format]) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for run in runs {
        written.extend(write(run, formats)?);
    }
    for f in formats {
        let text = match f {
            Format::Junit => junit::render(runs)?,
            Format::Kcidb => kcidb::render(runs),
            Format::Ktap | Format::Json => continue,
        };
        let path = dir.join(f.file());
        std::fs::write(&path, text).map_err(|e| Error::io(path.display(), e))?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_by_name_and_unknown_ones_named() {
        assert_eq!(
            parse("ktap, junit,ktap").unwrap(),
            [Format::Ktap, Format::Junit]
        );
        let e = parse("ktap,tap").unwrap_err().to_string();
        assert!(e.contains("tap") && e.contains("kcidb"), "{e}");
    }
}
